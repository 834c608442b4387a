package operators

import (
	"github.com/vigil-sec/vigil/pipeline/alert"
	"github.com/vigil-sec/vigil/pipeline/event"
)

// maxTerms bounds the terms remembered per key.
const maxTerms = 5000

// termResolution divides a lookback into the resolution at which a term's
// last sighting is recorded: a sighting within lookback/termResolution of
// the recorded one (20 minutes of 14 days) changes nothing, so the key's
// state is not rewritten. A user's country is seen on every sign-in —
// non-interactive token refreshes come every few minutes — and rewriting
// the user's terms each time was a fifth of the Store writes on
// production-like traffic. The price: the recorded sighting may be up to
// that much older than the last one, so a term can be new that much
// before its lookback has passed since it was last seen. The same events
// give the same alerts, live or replayed.
const termResolution = 1024

// newTerm fires when ev carries a value of the term field not seen for
// this key within the lookback before ev.Time.
func (e *Engine) newTerm(ent *entry, ks event.Keyspace, key string, ev *event.Event) []alert.Alert {
	r, rs := ent.r, &ent.rs
	nt := r.NewTerm
	terms := e.values(&e.env, nt.Field)
	if rs.terms == nil {
		rs.terms = map[string]int64{}
	}
	t := nanos(ev.Time)
	if rs.first == 0 || t < rs.first {
		rs.first = t
		e.touch(ent)
	}
	lb := int64(nt.Lookback)
	res := max(lb/termResolution, 1)
	fresh := false
	for _, term := range terms {
		last, seen := rs.terms[term]
		if !seen || last < t-lb {
			fresh = true
		}
		if !seen || t >= last+res {
			rs.terms[term] = t
			e.touch(ent)
		}
	}
	// Forget terms outside the lookback of any future event.
	horizon := e.wmN - lb
	for term, last := range rs.terms {
		if last < horizon {
			delete(rs.terms, term)
		}
	}
	if len(rs.terms) > maxTerms {
		var oldest string
		for term, last := range rs.terms {
			if oldest == "" || last < rs.terms[oldest] {
				oldest = term
			}
		}
		delete(rs.terms, oldest)
	}
	if !fresh || t-rs.first < int64(nt.MinHistory) {
		return nil
	}
	return []alert.Alert{e.buildAlert(r, ks, key, [][]event.Event{{*ev}}, ev.Time, ev.Time, nil)}
}
