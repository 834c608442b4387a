package enrich

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/vigil-sec/vigil/pipeline/event"
)

// Txn observes events on behalf of one partition's share of a Kafka
// transaction that has not ended yet. The table applies the changes at
// once, as Table.Observe does (the partition's next events, and the other
// partitions, see them), but remembers what each replaced until the
// transaction ends:
//
//   - Commit: the changes reached the entities topic; they are final.
//   - Abort: the transaction aborted (or the process is stopping with it
//     open), so the changes never reached the topic; the table goes back
//     to what it held before them, and re-processing the same records
//     learns and returns the same changes again.
//
// Without Abort the local copy would be ahead of the topic: the records
// re-processed after an abort would find their associations known and
// publish nothing, so no other process would ever learn them.
//
// What a Txn restores is exact when several Txns (the partitions of one
// batch) change the same association: the table keeps, per association,
// the value before the first open Txn changed it and how many open Txns
// did; the last of them to end restores it (Txns open at the same time
// are the partitions of one Kafka transaction, so they normally end the
// same way; when some commit and others abort, the newest committed value
// wins). A record that Apply reads meanwhile (committed by another
// process) replaces that value if newer, so an abort never rolls back
// what the topic holds. A sweep made inside
// an aborted Txn is undone too, and the next Observe sweeps again, so its
// tombstones are published. The event-time clock is not rolled back: it
// only moves forward, and re-processing moves it as far again.
//
// A Txn is used by one goroutine at a time; after Commit or Abort it is
// ready for the next batch. Its zero value is not usable: call Table.Txn.
type Txn struct {
	t      *Table
	writes []txnWrite // in the order they were made
	swept  bool       // a sweep removed associations in this Txn
}

type txnWrite struct {
	key string // forward key
	val []byte // the value written; nil for a removal
}

// undo is what an association held before the first open Txn changed it.
type undo struct {
	prev  []byte // nil: the association did not exist
	refs  int    // writes of open Txns
	dirty bool   // an aborted write's value may still be stored
}

// Txn returns an empty Txn on t.
func (t *Table) Txn() *Txn { return &Txn{t: t} }

// Observe is Table.Observe, remembering the changes until Commit or Abort.
func (x *Txn) Observe(ev *event.Event) ([]Change, error) {
	x.t.mu.Lock()
	defer x.t.mu.Unlock()
	return x.t.observe(ev, x)
}

// Pending is the number of changes made since the last Commit or Abort.
func (x *Txn) Pending() int { return len(x.writes) }

// Commit makes the Txn's changes final: the transaction that published
// them committed. It fails only when it had to restore a value (see
// Txn) and Pebble failed.
func (x *Txn) Commit() error {
	t := x.t
	t.mu.Lock()
	defer t.mu.Unlock()
	var errs []error
	for _, w := range x.writes {
		u := t.undo[w.key]
		if u == nil {
			continue
		}
		// If another open Txn changed it too and aborts, it must come
		// back to this committed value, not to the older one.
		u.settle(w.val)
		if u.refs--; u.refs > 0 {
			continue
		}
		delete(t.undo, w.key)
		if u.dirty {
			// A later writer aborted while this one was open: the
			// table still holds the aborted value.
			if err := t.restore(w.key, u.prev); err != nil {
				errs = append(errs, err)
			}
		}
	}
	x.reset()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("enrich: commit: %w", err)
	}
	return nil
}

// Abort undoes the Txn's changes: the transaction that was to publish them
// aborted. See Txn for what is restored.
func (x *Txn) Abort() error {
	t := x.t
	t.mu.Lock()
	defer t.mu.Unlock()
	var errs []error
	for i := len(x.writes) - 1; i >= 0; i-- {
		w := x.writes[i]
		u := t.undo[w.key]
		if u == nil {
			continue
		}
		if u.refs--; u.refs > 0 {
			// Another open Txn changed it too; the last one to end
			// restores it.
			u.dirty = true
			continue
		}
		delete(t.undo, w.key)
		if err := t.restore(w.key, u.prev); err != nil {
			errs = append(errs, err)
		}
	}
	if x.swept && t.sweep > t.clock {
		t.sweep = t.clock // sweep again, so the tombstones are published
	}
	x.reset()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("enrich: abort: %w", err)
	}
	return nil
}

func (x *Txn) reset() {
	clear(x.writes)
	x.writes = x.writes[:0]
	x.swept = false
}

// settle records a committed value (nil: removed) of the association as
// what an abort restores: a removal always, a value when newer.
func (u *undo) settle(val []byte) {
	if val == nil {
		u.prev = nil
		return
	}
	if u.prev != nil {
		prev, err := decodeValue(u.prev)
		cur, _ := decodeValue(val)
		if err == nil && prev >= cur {
			return
		}
	}
	u.prev = append(u.prev[:0:0], val...)
}

// journal is called under mu before the association (kind, l, r) is set
// to val (nil: removed). With x, it remembers the value the write
// replaces; without (a committed write: Apply, Table.Observe, Expire), it
// updates what an open Txn's abort would restore.
func (t *Table) journal(x *Txn, kind Kind, l, r string, val []byte) error {
	if x == nil {
		if len(t.undo) == 0 {
			return nil
		}
		t.key = appendKey(t.key[:0], byte(kind), l, r)
		if u := t.undo[string(t.key)]; u != nil {
			u.settle(val)
		}
		return nil
	}
	k := string(appendKey(nil, byte(kind), l, r))
	u := t.undo[k]
	if u == nil {
		prev, err := t.raw(kind, l, r)
		if err != nil {
			return err
		}
		u = &undo{prev: prev}
		t.undo[k] = u
	}
	u.refs++
	x.writes = append(x.writes, txnWrite{key: k, val: val})
	return nil
}

// raw reads the stored value of an association from Pebble (nil if none),
// expired or not, so that an abort restores exactly what was there.
func (t *Table) raw(kind Kind, l, r string) ([]byte, error) {
	t.key = localKey(t.key[:0], byte(kind), l, r)
	v, closer, err := t.db.Get(t.key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("enrich: read %s: %w", kind, err)
	}
	defer closer.Close()
	return append([]byte(nil), v...), nil
}

// restore sets the association under forward key k back to prev.
func (t *Table) restore(k string, prev []byte) error {
	kind, l, r, err := parseKey([]byte(k))
	if err != nil {
		return err
	}
	if prev == nil {
		return t.remove(kind, l, r)
	}
	seen, err := decodeValue(prev)
	if err != nil {
		// Not a value this build wrote: the association did not exist
		// for Enrich either.
		return t.remove(kind, l, r)
	}
	return t.store(kind, l, r, prev, seen)
}
