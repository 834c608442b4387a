package operators

import (
	"container/heap"
	"fmt"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/pipeline/alert"
	"github.com/vigil-sec/vigil/pipeline/event"
	"github.com/vigil-sec/vigil/rules"
)

// maxAnchors bounds the pending anchors of one key; the oldest go first.
const maxAnchors = 16

// absence records an anchor (bit 0) or an expect (bit 1). An expect with
// anchor.Time <= t <= anchor.Time+window cancels the anchor, whichever
// arrives first; an anchor's deadline fires from fireTimers once the
// watermark passes it.
func (e *Engine) absence(ent *entry, ev *event.Event, mask uint64) {
	r, rs := ent.r, ent.rs
	W := r.Window
	if mask&2 != 0 {
		keep := rs.Anchors[:0]
		for _, a := range rs.Anchors {
			if a.Ev.Time.After(ev.Time) || ev.Time.Sub(a.Ev.Time) > W {
				keep = append(keep, a)
			}
		}
		rs.Anchors = keep
		rs.Expects = append(rs.Expects, ev.Time)
		horizon := e.wm.Add(-W - r.Lateness)
		ex := rs.Expects[:0]
		for _, t := range rs.Expects {
			if !t.Before(horizon) {
				ex = append(ex, t)
			}
		}
		rs.Expects = ex
		ent.dirty = true
	}
	if mask&1 != 0 {
		for _, a := range rs.Anchors {
			if a.Ev.ID == ev.ID && ev.ID != "" {
				return
			}
		}
		for _, t := range rs.Expects {
			if !t.Before(ev.Time) && t.Sub(ev.Time) <= W {
				return // the expected event already happened
			}
		}
		a := absAnchor{Ev: *ev, Deadline: ev.Time.Add(W + r.Lateness)}
		a.Ev.Fields = nil
		rs.Anchors = append(rs.Anchors, a)
		if len(rs.Anchors) > maxAnchors {
			rs.Anchors = rs.Anchors[len(rs.Anchors)-maxAnchors:]
		}
		heap.Push(&e.timers, timer{at: a.Deadline, r: ent.r, key: strings.TrimPrefix(ent.key, ent.r.prefix)})
		ent.dirty = true
	}
}

// fireTimers fires every absence deadline the watermark has passed.
func (e *Engine) fireTimers() ([]alert.Alert, error) {
	var out []alert.Alert
	for e.timers.Len() > 0 && e.wm.After(e.timers[0].at) {
		t := heap.Pop(&e.timers).(timer)
		ent, err := e.load(t.r, t.key)
		if err != nil {
			return nil, fmt.Errorf("operators: rule %s: %w", t.r.ID, err)
		}
		rs := ent.rs
		keep := rs.Anchors[:0]
		var due []absAnchor
		for _, a := range rs.Anchors {
			if e.wm.After(a.Deadline) {
				due = append(due, a)
			} else {
				keep = append(keep, a)
			}
		}
		rs.Anchors = keep
		if len(due) > 0 {
			ent.dirty = true
		}
		for _, a := range due {
			ks := t.r.Keyspace
			al := e.buildAlert(t.r, ks, t.key, [][]event.Event{{a.Ev}}, a.Ev.Time, a.Ev.Time.Add(t.r.Window))
			got, err := e.emit(t.r, t.key, &a.Ev, al)
			if err != nil {
				return nil, err
			}
			out = append(out, got...)
		}
	}
	return out, nil
}

// loadTimers rebuilds the deadline heap from the Store: the one piece of
// state that must be in memory before any event of its key arrives.
func (e *Engine) loadTimers() error {
	for _, r := range e.rules {
		if r.Kind != rules.KindAbsence {
			continue
		}
		var keys []string
		err := e.st.Scan([]byte(r.prefix), func(k, _ []byte) error {
			keys = append(keys, strings.TrimPrefix(string(k), r.prefix))
			return nil
		})
		if err != nil {
			return fmt.Errorf("operators: load timers of %s: %w", r.ID, err)
		}
		for _, k := range keys {
			ent, err := e.load(r, k)
			if err != nil {
				return fmt.Errorf("operators: load timers of %s: %w", r.ID, err)
			}
			for _, a := range ent.rs.Anchors {
				heap.Push(&e.timers, timer{at: a.Deadline, r: r, key: k})
			}
		}
	}
	return nil
}

type timer struct {
	at  time.Time
	r   *crule
	key string
}

type timerHeap []timer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h timerHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)        { *h = append(*h, x.(timer)) }
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
}
