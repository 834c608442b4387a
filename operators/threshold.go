package operators

import (
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/pipeline/alert"
	"github.com/vigil-sec/vigil/pipeline/event"
	"github.com/vigil-sec/vigil/rules"
)

const (
	// maxThresholdEntries bounds a group's buffer; the oldest go first.
	maxThresholdEntries = 10000
	// maxAlertEvents bounds the evidence a threshold alert carries (the
	// id still hashes every event of the window).
	maxAlertEvents = 100
)

// threshold adds ev to its group and fires when some window satisfies
// having. Sliding windows (default) are checked for every window that can
// contain ev — those ending at an event in [ev.Time, ev.Time+window] —
// so arrival order does not matter. A group that fires is cleared and
// suppressed for one window after the end of the firing window.
func (e *Engine) threshold(ent *entry, ks event.Keyspace, key string, ev *event.Event) []alert.Alert {
	r, rs := ent.r, ent.rs
	th := r.Threshold
	var env rules.Env
	env.Reset(ev)
	var gparts []string
	for _, g := range th.GroupBy {
		vals := e.values(&env, g)
		if len(vals) == 0 {
			if !th.MissingEmpty {
				return nil
			}
		}
		gparts = append(gparts, strings.Join(vals, ","))
	}
	gk := strings.Join(gparts, "\x1f")
	en := thEntry{Ev: *ev}
	en.Ev.Fields = nil
	if th.Distinct != nil {
		en.D = strings.Join(e.values(&env, th.Distinct), ",")
	}
	if th.Sum != nil {
		en.S = e.number(&env, th.Sum)
	}
	if rs.Groups == nil {
		rs.Groups = map[string]*thGroup{}
	}
	g := rs.Groups[gk]
	if g == nil {
		g = &thGroup{}
		rs.Groups[gk] = g
	}
	ent.dirty = true
	W := r.Window
	if !th.Tumbling && ev.Time.Before(g.SuppUntil) {
		return nil
	}
	for _, x := range g.Entries {
		if x.Ev.ID == ev.ID && ev.ID != "" {
			return nil // re-delivery
		}
	}
	i := sort.Search(len(g.Entries), func(i int) bool { return g.Entries[i].Ev.Time.After(ev.Time) })
	g.Entries = append(g.Entries, thEntry{})
	copy(g.Entries[i+1:], g.Entries[i:])
	g.Entries[i] = en
	// Forget entries no window with a future event can reach.
	horizon := e.wm.Add(-W)
	j := 0
	for j < len(g.Entries) && g.Entries[j].Ev.Time.Before(horizon) {
		j++
	}
	if n := len(g.Entries) - j; n > maxThresholdEntries {
		j = len(g.Entries) - maxThresholdEntries
	}
	g.Entries = g.Entries[j:]

	if th.Tumbling {
		b := ev.Time.UnixNano() / int64(W)
		for _, f := range g.Fired {
			if f == b {
				return nil
			}
		}
		var win []thEntry
		for _, x := range g.Entries {
			if x.Ev.Time.UnixNano()/int64(W) == b {
				win = append(win, x)
			}
		}
		if !e.having(th, win) {
			return nil
		}
		g.Fired = append(g.Fired, b)
		// Drop fired buckets no future event can reach.
		keep := g.Fired[:0]
		for _, f := range g.Fired {
			if (f+1)*int64(W) >= horizon.UnixNano() {
				keep = append(keep, f)
			}
		}
		g.Fired = keep
		rest := g.Entries[:0]
		for _, x := range g.Entries {
			if x.Ev.Time.UnixNano()/int64(W) != b {
				rest = append(rest, x)
			}
		}
		g.Entries = rest
		start := time.Unix(0, b*int64(W)).UTC()
		return []alert.Alert{e.thresholdAlert(r, ks, key, win, start)}
	}

	for k := range g.Entries {
		end := g.Entries[k].Ev.Time
		if end.Before(ev.Time) {
			continue
		}
		if end.Sub(ev.Time) > W {
			break
		}
		lo := sort.Search(len(g.Entries), func(i int) bool { return !g.Entries[i].Ev.Time.Before(end.Add(-W)) })
		win := g.Entries[lo : k+1]
		// Equal times after k belong to the same window end.
		for k2 := k + 1; k2 < len(g.Entries) && g.Entries[k2].Ev.Time.Equal(end); k2++ {
			win = g.Entries[lo : k2+1]
		}
		if !e.having(th, win) {
			continue
		}
		win = append([]thEntry(nil), win...)
		g.Entries = nil
		g.SuppUntil = end.Add(W)
		return []alert.Alert{e.thresholdAlert(r, ks, key, win, win[0].Ev.Time)}
	}
	return nil
}

func (e *Engine) having(th *rules.Threshold, win []thEntry) bool {
	if len(win) == 0 {
		return false
	}
	env := rules.HavingEnv{Count: len(win)}
	if th.Distinct != nil {
		seen := map[string]bool{}
		for _, x := range win {
			if x.D != "" {
				seen[x.D] = true
			}
		}
		env.Distinct = len(seen)
	}
	for _, x := range win {
		env.Sum += x.S
	}
	out, err := e.vm.Run(th.Having, env)
	if err != nil {
		e.stats.EvalErrors++
		return false
	}
	b, _ := out.(bool)
	return b
}

func (e *Engine) number(env *rules.Env, x *rules.Expr) float64 {
	if x.UsesFields {
		_ = env.Event.DecodeFields()
	}
	out, err := e.vm.Run(x.Program, env)
	if err != nil {
		e.stats.EvalErrors++
		return 0
	}
	switch v := out.(type) {
	case int:
		return float64(v)
	case int64:
		return float64(v)
	case float64:
		return v
	case string:
		f, _ := strconv.ParseFloat(v, 64)
		return f
	}
	return 0
}

func (e *Engine) thresholdAlert(r *crule, ks event.Keyspace, key string, win []thEntry, first time.Time) alert.Alert {
	evs := make([]event.Event, 0, len(win))
	ids := make([]string, 0, len(win))
	for _, x := range win {
		ids = append(ids, x.Ev.ID)
	}
	start := 0
	if len(win) > maxAlertEvents {
		start = len(win) - maxAlertEvents
	}
	for _, x := range win[start:] {
		evs = append(evs, x.Ev)
	}
	a := e.buildAlert(r, ks, key, [][]event.Event{evs}, first, win[len(win)-1].Ev.Time)
	a.ID = alert.MakeID(r.ID, r.Version, ks, key, ids)
	return a
}
