package operators

import (
	"sort"
	"time"

	"github.com/vigil-sec/vigil/pipeline/alert"
	"github.com/vigil-sec/vigil/pipeline/event"
)

// perStepKeep bounds the sequence buffer: per step, the newest few events
// are kept (EQL keeps one pending match per step; a few more let an
// out-of-order event land between them).
const perStepKeep = 4

// sequence adds ev (matching the steps in mask, and/or the until
// condition) to the key's buffer and replays the buffer in event-time
// order. Replaying, instead of advancing a state machine in arrival order,
// is what makes an out-of-order event within the lateness complete the
// sequence in the right order; alerts already emitted are remembered by id
// and not emitted again.
func (e *Engine) sequence(ent *entry, ks event.Keyspace, key string, ev *event.Event, mask uint64, until bool) []alert.Alert {
	r, rs := ent.r, ent.rs
	for i := range rs.Seq {
		if rs.Seq[i].Ev.ID == ev.ID && ev.ID != "" {
			return nil // re-delivery of an event already in the buffer
		}
	}
	rs.N++
	en := seqEntry{Ev: *ev, Mask: mask, Until: until, N: rs.N}
	en.Ev.Fields = nil
	i := sort.Search(len(rs.Seq), func(i int) bool {
		return rs.Seq[i].Ev.Time.After(ev.Time)
	})
	rs.Seq = append(rs.Seq, seqEntry{})
	copy(rs.Seq[i+1:], rs.Seq[i:])
	rs.Seq[i] = en
	ent.dirty = true

	// Forget what no future event (time >= watermark) can complete.
	horizon := e.wm.Add(-r.MaxSpan)
	keep := rs.Seq[:0]
	for _, s := range rs.Seq {
		if !s.Ev.Time.Before(horizon) {
			keep = append(keep, s)
		}
	}
	rs.Seq = trimSeq(keep, len(r.Steps))
	for id, t := range rs.Fired {
		if t.Before(horizon) {
			delete(rs.Fired, id)
		}
	}

	var matches [][]seqEntry
	if r.Unordered {
		matches = replayUnordered(rs.Seq, len(r.Steps), r.MaxSpan)
	} else {
		matches = replayOrdered(rs.Seq, len(r.Steps), r.MaxSpan)
	}
	var out []alert.Alert
	for _, m := range matches {
		steps := make([][]event.Event, len(m))
		first, last := m[0].Ev.Time, m[0].Ev.Time
		for j, s := range m {
			steps[j] = []event.Event{s.Ev}
			if s.Ev.Time.Before(first) {
				first = s.Ev.Time
			}
			if s.Ev.Time.After(last) {
				last = s.Ev.Time
			}
		}
		ids := make([]string, len(m))
		for j, s := range m {
			ids[j] = s.Ev.ID
		}
		id := alert.MakeID(r.ID, r.Version, ks, key, ids)
		if _, done := rs.Fired[id]; done {
			continue
		}
		if rs.Fired == nil {
			rs.Fired = map[string]time.Time{}
		}
		rs.Fired[id] = first
		out = append(out, e.buildAlert(r, ks, key, steps, first, last))
	}
	return out
}

// trimSeq keeps, per step, the newest perStepKeep entries (until entries
// count as their own step).
func trimSeq(seq []seqEntry, steps int) []seqEntry {
	counts := make([]int, steps+1)
	keep := make([]bool, len(seq))
	for i := len(seq) - 1; i >= 0; i-- {
		s := seq[i]
		for b := 0; b < steps; b++ {
			if s.Mask&(1<<b) != 0 && counts[b] < perStepKeep {
				counts[b]++
				keep[i] = true
			}
		}
		if s.Until && counts[steps] < perStepKeep {
			counts[steps]++
			keep[i] = true
		}
	}
	out := seq[:0]
	for i, s := range seq {
		if keep[i] {
			out = append(out, s)
		}
	}
	return out
}

// replayOrdered runs the EQL state machine over seq (event-time order):
// pending[i] is the one partial match that completed steps 0..i, the
// newest replacing the older; an event advances pending[i-1] to step i if
// it lies within maxspan of the partial's first event; until kills every
// pending partial. Steps are tried from last to first so one event never
// advances the same partial twice.
func replayOrdered(seq []seqEntry, n int, maxspan time.Duration) [][]seqEntry {
	pending := make([][]seqEntry, n)
	var out [][]seqEntry
	for _, s := range seq {
		if s.Until {
			for i := range pending {
				pending[i] = nil
			}
		}
		for i := n - 1; i >= 0; i-- {
			if s.Mask&(1<<i) == 0 {
				continue
			}
			if i == 0 {
				pending[0] = []seqEntry{s}
				if n == 1 {
					out = append(out, pending[0])
					pending[0] = nil
				}
				continue
			}
			p := pending[i-1]
			if p == nil {
				continue
			}
			pending[i-1] = nil
			if s.Ev.Time.Sub(p[0].Ev.Time) > maxspan {
				continue
			}
			np := append(append(make([]seqEntry, 0, i+1), p...), s)
			if i == n-1 {
				out = append(out, np)
			} else {
				pending[i] = np
			}
		}
	}
	return out
}

// replayUnordered fills one slot per step with the newest event for it;
// when every slot is filled within maxspan the match completes.
func replayUnordered(seq []seqEntry, n int, maxspan time.Duration) [][]seqEntry {
	slots := make([]*seqEntry, n)
	var out [][]seqEntry
	for k := range seq {
		s := &seq[k]
		if s.Until {
			for i := range slots {
				slots[i] = nil
			}
		}
		if s.Mask == 0 {
			continue
		}
		for i, sl := range slots {
			if sl != nil && s.Ev.Time.Sub(sl.Ev.Time) > maxspan {
				slots[i] = nil
			}
		}
		// The event takes an empty slot it can fill, else replaces the
		// oldest event among the steps it matches.
		target := -1
		for i := 0; i < n; i++ {
			if s.Mask&(1<<i) == 0 {
				continue
			}
			if slots[i] == nil {
				target = i
				break
			}
			if target < 0 || slots[i].Ev.Time.Before(slots[target].Ev.Time) {
				target = i
			}
		}
		slots[target] = s
		full := true
		for _, sl := range slots {
			if sl == nil {
				full = false
				break
			}
		}
		if full {
			m := make([]seqEntry, n)
			for i, sl := range slots {
				m[i] = *sl
				slots[i] = nil
			}
			out = append(out, m)
		}
	}
	return out
}
