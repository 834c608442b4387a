package operators

import (
	"bytes"
	"container/heap"
	"fmt"

	"github.com/vigil-sec/vigil/rules"
)

// Changes says what a Reload did to the running rules, so the caller can
// log "rule X changed; its state starts fresh".
type Changes struct {
	// Added are rules that were not running before (new, or re-enabled).
	Added []string
	// Changed are rules whose version changed: their state was dropped and
	// they start fresh.
	Changed []string
	// Removed are rules no longer running (deleted or disabled): their
	// state was dropped.
	Removed []string
	// Kept counts rules whose id and version did not change; their state
	// carries over.
	Kept int
}

// Empty reports whether the reload changed no rule.
func (c Changes) Empty() bool { return len(c.Added)+len(c.Changed)+len(c.Removed) == 0 }

// Reload swaps the rule set without a restart. A rule whose id and version
// are unchanged keeps its state (cached and stored) and its pending
// absence deadlines, and runs the new set's compiled program from now on
// (so edited lookups apply at once). A changed or removed rule loses its
// state: its cache entries are dropped and its keys deleted from the
// Store (in the current transaction: the stage flushes and commits after a
// reload as after a batch). Call it from the partition's goroutine, between
// batches.
func (e *Engine) Reload(set *rules.Set) (Changes, error) {
	if set == nil {
		return Changes{}, fmt.Errorf("operators: reload: nil rule set")
	}
	old := e.rules
	oldByID := make(map[string]*crule, len(old))
	for _, r := range old {
		oldByID[r.ID] = r
	}
	e.install(set)
	var ch Changes
	var added []*crule
	kept := map[*crule]*crule{}
	for _, r := range e.rules {
		o := oldByID[r.ID]
		switch {
		case o == nil:
			if !r.pseudo {
				ch.Added = append(ch.Added, r.ID)
			}
			added = append(added, r)
		case o.Version == r.Version:
			if !r.pseudo {
				ch.Kept++
			}
			kept[o] = r
			r.states = o.states
			for _, ent := range r.states {
				ent.r = r
			}
			delete(oldByID, r.ID)
		default:
			ch.Changed = append(ch.Changed, r.ID)
			added = append(added, r)
		}
	}
	newByID := map[string]bool{}
	for _, r := range e.rules {
		newByID[r.ID] = true
	}
	for _, o := range old {
		if kept[o] != nil {
			continue
		}
		if !newByID[o.ID] && !o.pseudo {
			ch.Removed = append(ch.Removed, o.ID)
		}
		if o.pseudo {
			e.clearOrphans(o)
			continue
		}
		if err := e.drop(o); err != nil {
			return ch, err
		}
		e.disownOrphans(o)
	}
	// Timers of kept rules move to the new rule values; the others go.
	ts := e.timers[:0]
	for _, t := range e.timers {
		if nr := kept[t.r]; nr != nil {
			t.r = nr
			ts = append(ts, t)
		}
	}
	clear(e.timers[len(ts):])
	e.timers = ts
	heap.Init(&e.timers)
	for _, r := range added {
		// An added or changed rule may find state of an earlier run of the
		// same version (removed or edited, then put back): its deadlines
		// resume, like after a restart.
		if err := e.loadTimers(r); err != nil {
			return ch, err
		}
	}
	dirty := e.dirty[:0]
	for _, ent := range e.dirty {
		if !ent.dead {
			dirty = append(dirty, ent)
		}
	}
	clear(e.dirty[len(dirty):])
	e.dirty = dirty
	return ch, nil
}

// drop forgets a rule version's state, in memory and in the Store, and
// releases the events its states buffered.
func (e *Engine) drop(r *crule) error {
	for _, ent := range r.states {
		ent.dead = true
		e.cached--
	}
	r.states = nil
	type kv struct{ k, v []byte }
	var states []kv
	var legacy [][]byte
	err := e.st.Scan([]byte(r.prefix), func(k, v []byte) error {
		states = append(states, kv{bytes.Clone(k), bytes.Clone(v)})
		return nil
	})
	if err == nil { // events of version 3 states ("b/id@v/…")
		err = e.st.Scan([]byte("b"+r.prefix[1:]), func(k, _ []byte) error {
			legacy = append(legacy, bytes.Clone(k))
			return nil
		})
	}
	if err != nil {
		return fmt.Errorf("operators: reload: drop state of %s: %w", r.ID, err)
	}
	for _, s := range states {
		if err := e.releaseEvents(s.k, s.v); err != nil {
			return fmt.Errorf("operators: reload: drop state of %s: %w", r.ID, err)
		}
		if err := e.st.Delete(s.k); err != nil {
			return fmt.Errorf("operators: reload: drop state of %s: %w", r.ID, err)
		}
	}
	for _, k := range legacy {
		if err := e.st.Delete(k); err != nil {
			return fmt.Errorf("operators: reload: drop state of %s: %w", r.ID, err)
		}
	}
	if err := e.writeBlobs(); err != nil {
		return fmt.Errorf("operators: reload: drop state of %s: %w", r.ID, err)
	}
	return nil
}
