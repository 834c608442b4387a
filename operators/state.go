package operators

import (
	"time"

	"github.com/vigil-sec/vigil/pipeline/event"
	"github.com/vigil-sec/vigil/rules"
)

// ruleState is the state of one (rule, key). Only the fields of the rule's
// kind are used; all are optional so the JSON stays small.
type ruleState struct {
	// sequence: recent step events in event-time order, and the alerts
	// already emitted (id -> time of their first event).
	Seq   []seqEntry           `json:"seq,omitempty"`
	Fired map[string]time.Time `json:"fired,omitempty"`
	N     uint64               `json:"n,omitempty"` // arrival counter, orders equal times

	// threshold: one group per group_by value.
	Groups map[string]*thGroup `json:"groups,omitempty"`

	// absence: pending anchors and recent expect times.
	Anchors []absAnchor `json:"anchors,omitempty"`
	Expects []time.Time `json:"expects,omitempty"`

	// new_term: term -> last seen; when the key was first seen.
	Terms map[string]time.Time `json:"terms,omitempty"`
	First time.Time            `json:"first,omitzero"`

	// suppression: suppression key -> until.
	Supp map[string]time.Time `json:"supp,omitempty"`
}

type seqEntry struct {
	Ev    event.Event `json:"e"`
	Mask  uint64      `json:"m,omitempty"`
	Until bool        `json:"u,omitempty"`
	N     uint64      `json:"n"`
}

type thEntry struct {
	Ev event.Event `json:"e"`
	D  string      `json:"d,omitempty"`
	S  float64     `json:"s,omitempty"`
}

type thGroup struct {
	Entries   []thEntry `json:"entries,omitempty"`
	SuppUntil time.Time `json:"supp_until,omitzero"`
	Fired     []int64   `json:"fired,omitempty"` // tumbling buckets that fired
}

type absAnchor struct {
	Ev       event.Event `json:"e"`
	Deadline time.Time   `json:"deadline"`
}

func (s *ruleState) empty() bool {
	return len(s.Seq) == 0 && len(s.Fired) == 0 && len(s.Groups) == 0 && len(s.Anchors) == 0 &&
		len(s.Expects) == 0 && len(s.Terms) == 0 && len(s.Supp) == 0
}

// expiry is the event time after which nothing in s can matter.
func (s *ruleState) expiry(r *rules.Rule) time.Time {
	var t time.Time
	max := func(x time.Time) {
		if x.After(t) {
			t = x
		}
	}
	for _, e := range s.Seq {
		max(e.Ev.Time.Add(r.MaxSpan + r.Lateness))
	}
	for _, f := range s.Fired {
		max(f.Add(r.MaxSpan + r.Lateness))
	}
	for _, g := range s.Groups {
		for _, e := range g.Entries {
			max(e.Ev.Time.Add(r.Window))
		}
		max(g.SuppUntil)
		for _, b := range g.Fired {
			max(time.Unix(0, (b+1)*int64(r.Window)))
		}
	}
	for _, a := range s.Anchors {
		max(a.Deadline)
	}
	for _, x := range s.Expects {
		max(x.Add(r.Window + r.Lateness))
	}
	if r.NewTerm != nil {
		for _, x := range s.Terms {
			max(x.Add(r.NewTerm.Lookback))
		}
	}
	for _, x := range s.Supp {
		max(x)
	}
	return t
}
