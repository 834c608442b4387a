package operators

import (
	"container/heap"
	"fmt"

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
	r, rs := ent.r, &ent.rs
	W := int64(r.Window)
	t := nanos(ev.Time)
	if mask&2 != 0 {
		keep := rs.anchors[:0]
		for _, a := range rs.anchors {
			if a.t > t || t-a.t > W {
				keep = append(keep, a)
			}
		}
		clear(rs.anchors[len(keep):])
		rs.anchors = keep
		rs.expects = append(rs.expects, t)
		horizon := e.wmN - W - int64(r.Lateness)
		ex := rs.expects[:0]
		for _, x := range rs.expects {
			if x >= horizon {
				ex = append(ex, x)
			}
		}
		rs.expects = ex
		e.touch(ent)
	}
	if mask&1 != 0 {
		for _, a := range rs.anchors {
			if a.id == ev.ID && ev.ID != "" {
				return
			}
		}
		for _, x := range rs.expects {
			if x >= t && x-t <= W {
				return // the expected event already happened
			}
		}
		blob, b := e.encode(ev)
		a := absAnchor{id: ev.ID, t: t, deadline: t + W + int64(r.Lateness), blob: blob, ev: b}
		rs.anchors = append(rs.anchors, a)
		if len(rs.anchors) > maxAnchors {
			rs.anchors = append(rs.anchors[:0], rs.anchors[len(rs.anchors)-maxAnchors:]...)
		}
		heap.Push(&e.timers, timer{at: a.deadline, r: ent.r, key: ent.key})
		e.touch(ent)
	}
}

// fireTimers fires every absence deadline the watermark has passed.
func (e *Engine) fireTimers() ([]alert.Alert, error) {
	var out []alert.Alert
	for e.timers.Len() > 0 && e.wmN > e.timers[0].at {
		t := heap.Pop(&e.timers).(timer)
		ent, err := e.load(t.r, t.key)
		if err != nil {
			return nil, fmt.Errorf("operators: rule %s: %w", t.r.ID, err)
		}
		rs := &ent.rs
		keep := rs.anchors[:0]
		var due []absAnchor
		for _, a := range rs.anchors {
			if e.wmN > a.deadline {
				due = append(due, a)
			} else {
				keep = append(keep, a)
			}
		}
		rs.anchors = keep
		if len(due) > 0 {
			e.touch(ent)
		}
		for _, a := range due {
			ks := t.r.Keyspace
			ev := e.eventAt(a.blob, a.ev, a.id, a.t)
			al := e.buildAlert(t.r, ks, t.key, [][]event.Event{{ev}}, ev.Time, fromNanos(a.t+int64(t.r.Window)), nil)
			got, err := e.emit(t.r, t.key, &ev, al)
			if err != nil {
				return nil, err
			}
			out = append(out, got...)
		}
	}
	return out, nil
}

// storedKeys lists the keys r has state for in the Store.
func (e *Engine) storedKeys(r *crule) ([]string, error) {
	var keys []string
	err := e.st.Scan([]byte(r.prefix), func(k, _ []byte) error {
		keys = append(keys, string(k[len(r.prefix):]))
		return nil
	})
	return keys, err
}

// loadTimers rebuilds the deadline heap of an absence rule from the Store:
// the one piece of state that must be in memory before any event of its
// key arrives.
func (e *Engine) loadTimers(r *crule) error {
	if r.Kind != rules.KindAbsence {
		return nil
	}
	keys, err := e.storedKeys(r)
	if err != nil {
		return fmt.Errorf("operators: load timers of %s: %w", r.ID, err)
	}
	for _, k := range keys {
		ent, err := e.load(r, k)
		if err != nil {
			return fmt.Errorf("operators: load timers of %s: %w", r.ID, err)
		}
		for _, a := range ent.rs.anchors {
			heap.Push(&e.timers, timer{at: a.deadline, r: r, key: k})
		}
	}
	return nil
}

// timer is an absence deadline (unix ns) of one (rule, key).
type timer struct {
	at  int64
	r   *crule
	key string
}

type timerHeap []timer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h timerHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)        { *h = append(*h, x.(timer)) }
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
}
