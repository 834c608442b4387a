package incident

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/vigil-sec/vigil/pipeline/alert"
)

// Store is the grouper's state; state.Store implements it.
type Store interface {
	Get(key []byte) ([]byte, error)
	Set(key, value []byte) error
}

// Options tune grouping.
type Options struct {
	// Window is the default grouping window for strong entities (24h).
	Window time.Duration
	// WeakWindow bounds grouping on IPs (1h).
	WeakWindow time.Duration
	// MaxAlerts caps an incident's alerts (150).
	MaxAlerts int
}

func (o *Options) defaults() {
	if o.Window <= 0 {
		o.Window = 24 * time.Hour
	}
	if o.WeakWindow <= 0 {
		o.WeakWindow = time.Hour
	}
	if o.MaxAlerts <= 0 {
		o.MaxAlerts = 150
	}
}

// Grouper assigns alerts to incidents, keeping its index in a Store.
//
// Store layout: a/<alert id> → incident id (seen alerts);
// i/<incident id> → incident JSON; e/<type>\x00<value> → id of the
// incident most recently updated with that entity.
type Grouper struct {
	st   Store
	opts Options
}

// NewGrouper returns a grouper over st.
func NewGrouper(st Store, opts Options) *Grouper {
	opts.defaults()
	return &Grouper{st: st, opts: opts}
}

// Add groups a. It returns the incident a now belongs to, or nil when a was
// seen before (a re-delivery), in which case nothing must be emitted.
func (g *Grouper) Add(a alert.Alert) (*Incident, error) {
	seen, err := g.st.Get([]byte("a/" + a.ID))
	if err != nil {
		return nil, err
	}
	if seen != nil {
		return nil, nil
	}
	in, err := g.candidate(a)
	if err != nil {
		return nil, err
	}
	if in == nil {
		in = &Incident{SchemaVersion: SchemaVersion, ID: NewID(a.ID)}
	}
	in.add(a)
	b, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("incident %s: encode: %w", in.ID, err)
	}
	if err := g.st.Set([]byte("i/"+in.ID), b); err != nil {
		return nil, err
	}
	if err := g.st.Set([]byte("a/"+a.ID), []byte(in.ID)); err != nil {
		return nil, err
	}
	for _, e := range a.Entities {
		if err := g.st.Set(entityKey(e), []byte(in.ID)); err != nil {
			return nil, err
		}
	}
	return in, nil
}

func entityKey(e alert.Entity) []byte {
	return []byte("e/" + string(e.Type) + "\x00" + e.Value)
}

// candidate finds the incident a should join, or nil.
func (g *Grouper) candidate(a alert.Alert) (*Incident, error) {
	if a.Grouping.Disabled {
		return nil, nil
	}
	window := g.opts.Window
	if a.Grouping.Window > 0 {
		window = a.Grouping.Window
	}
	var best *Incident
	for _, e := range a.Entities {
		if !g.groupsOn(a, e.Type) {
			continue
		}
		id, err := g.st.Get(entityKey(e))
		if err != nil {
			return nil, err
		}
		if id == nil {
			continue
		}
		in, err := g.load(string(id))
		if err != nil {
			return nil, err
		}
		if in == nil || in.Status == StatusClosed || len(in.Alerts) >= g.opts.MaxAlerts {
			continue
		}
		w := window
		if !e.Type.Strong() {
			w = min(window, g.opts.WeakWindow)
		}
		if gap := a.Time.Sub(in.LastTime); gap > w || -gap > w {
			continue
		}
		if best == nil || in.LastTime.After(best.LastTime) {
			best = in
		}
	}
	return best, nil
}

func (g *Grouper) groupsOn(a alert.Alert, t alert.EntityType) bool {
	if len(a.Grouping.By) == 0 {
		return true
	}
	for _, b := range a.Grouping.By {
		if b == t {
			return true
		}
	}
	return false
}

func (g *Grouper) load(id string) (*Incident, error) {
	b, err := g.st.Get([]byte("i/" + id))
	if err != nil || b == nil {
		return nil, err
	}
	var in Incident
	if err := json.Unmarshal(b, &in); err != nil {
		return nil, fmt.Errorf("incident %s: decode stored state: %w", id, err)
	}
	return &in, nil
}
