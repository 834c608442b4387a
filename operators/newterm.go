package operators

import (
	"github.com/vigil-sec/vigil/pipeline/alert"
	"github.com/vigil-sec/vigil/pipeline/event"
)

// maxTerms bounds the terms remembered per key.
const maxTerms = 5000

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
	fresh := false
	for _, term := range terms {
		last, seen := rs.terms[term]
		if !seen || last < t-lb {
			fresh = true
		}
		if !seen || t > last {
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
