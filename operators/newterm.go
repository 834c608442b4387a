package operators

import (
	"time"

	"github.com/vigil-sec/vigil/pipeline/alert"
	"github.com/vigil-sec/vigil/pipeline/event"
	"github.com/vigil-sec/vigil/rules"
)

// maxTerms bounds the terms remembered per key.
const maxTerms = 5000

// newTerm fires when ev carries a value of the term field not seen for
// this key within the lookback before ev.Time.
func (e *Engine) newTerm(ent *entry, ks event.Keyspace, key string, ev *event.Event) []alert.Alert {
	r, rs := ent.r, ent.rs
	nt := r.NewTerm
	var env rules.Env
	env.Reset(ev)
	terms := e.values(&env, nt.Field)
	if rs.Terms == nil {
		rs.Terms = map[string]time.Time{}
	}
	if rs.First.IsZero() || ev.Time.Before(rs.First) {
		rs.First = ev.Time
		ent.dirty = true
	}
	fresh := false
	for _, t := range terms {
		last, seen := rs.Terms[t]
		if !seen || last.Before(ev.Time.Add(-nt.Lookback)) {
			fresh = true
		}
		if !seen || ev.Time.After(last) {
			rs.Terms[t] = ev.Time
			ent.dirty = true
		}
	}
	// Forget terms outside the lookback of any future event.
	horizon := e.wm.Add(-nt.Lookback)
	for t, last := range rs.Terms {
		if last.Before(horizon) {
			delete(rs.Terms, t)
		}
	}
	if len(rs.Terms) > maxTerms {
		var oldest string
		for t, last := range rs.Terms {
			if oldest == "" || last.Before(rs.Terms[oldest]) {
				oldest = t
			}
		}
		delete(rs.Terms, oldest)
	}
	if !fresh || ev.Time.Sub(rs.First) < nt.MinHistory {
		return nil
	}
	return []alert.Alert{e.buildAlert(r, ks, key, [][]event.Event{{*ev}}, ev.Time, ev.Time)}
}
