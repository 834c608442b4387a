package operators

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
)

// Buffered events (state version 4)
//
// An event a state buffers (a pending sequence step, threshold evidence,
// an absence anchor) is stored once per Process call, under a number the
// engine hands out in arrival order, however many rules buffer it:
//
//	key    "e/" + 8-byte big-endian blob number
//	value  uvarint reference count + the event in the pipeline/event codec
//
// and the states hold the number. Five sequences start on a successful
// sign-in; with one key per (rule, key, event) — version 3 — each wrote
// its own copy, and those copies were 40% of the bytes a Flush wrote on
// production-like traffic and most of the Pebble compaction work. The
// count is the number of saved states that name the blob: a Flush adds
// the references that entered saved states, removes those that left, and
// writes or deletes each blob whose count changed, once. Numbers grow
// with arrival, so new blobs append at the end of the key space and die
// roughly in the order they were born, which is what an LSM compacts
// cheaply.
//
// The count lives in the blob's own value rather than in a key of its
// own: an event is usually referenced by all its rules in one Flush and
// released by them together (they forget it when it passes the
// watermark), so the blob is written once and deleted once.

var blobKeyPrefix = []byte("e/")

// blobRef is one buffered event of a state being saved.
type blobRef struct {
	n  uint64
	ev []byte
}

// blobRec is a blob whose reference count changes in the current Flush.
type blobRec struct {
	n      uint64 // the blob's number
	refs   int64  // references now
	stored int64  // references in the Store (0: no key)
	ev     []byte // the event, encoded
}

// newBlob hands out the next blob number. Numbers are never reused: the
// last one is saved with the watermark, and numbers handed out after the
// last commit belong to states that were not committed either.
func (e *Engine) newBlob() uint64 {
	e.blobN++
	e.metaDirty = true
	return e.blobN
}

// sharedBlobKey returns the Store key of blob n.
func (e *Engine) sharedBlobKey(n uint64) []byte {
	e.bkbuf = binary.BigEndian.AppendUint64(append(e.bkbuf[:0], blobKeyPrefix...), n)
	return e.bkbuf
}

// maxCounts bounds Engine.counts; past it the map starts over (a miss
// costs a Store read, not a wrong count).
const maxCounts = 1 << 18

// readBlob reads blob n from the Store: its count and event (ok false
// when there is no such key).
func (e *Engine) readBlob(n uint64) (refs int64, ev []byte, ok bool, err error) {
	v, err := e.st.Get(e.sharedBlobKey(n))
	if err != nil || v == nil {
		return 0, nil, false, err
	}
	c, k := binary.Uvarint(v)
	if k <= 0 {
		return 0, nil, false, nil
	}
	return int64(c), v[k:], true, nil
}

// blob returns the record of blob n, for a change of its count in this
// Flush. The stored count comes from Engine.counts when this engine wrote
// or read it, else from the Store; the event is read only when the blob
// has to be rewritten (writeBlobs).
func (e *Engine) blob(n uint64) (*blobRec, error) {
	if i, ok := e.blobs[n]; ok {
		return &e.blobRecs[i], nil
	}
	b := blobRec{n: n}
	if c, ok := e.counts[n]; ok {
		b.refs, b.stored = c, c
	} else {
		c, ev, ok, err := e.readBlob(n)
		if err != nil {
			return nil, fmt.Errorf("read event %d: %w", n, err)
		}
		if ok {
			b.refs, b.stored, b.ev = c, c, ev
		}
	}
	return e.addBlobRec(b), nil
}

// addBlobRec records b for this Flush. The pointer it returns is valid
// until the next record is added.
func (e *Engine) addBlobRec(b blobRec) *blobRec {
	e.blobs[b.n] = int32(len(e.blobRecs))
	e.blobRecs = append(e.blobRecs, b)
	return &e.blobRecs[len(e.blobRecs)-1]
}

// ref records a saved state's new reference to blob n holding ev (nil
// when only its number is in memory).
func (e *Engine) ref(n uint64, ev []byte) error {
	var b *blobRec
	if _, ok := e.blobs[n]; !ok && n >= e.unstored {
		// A number handed out since blobs were last written: the Store
		// has no key for it yet.
		b = e.addBlobRec(blobRec{n: n})
	} else {
		// Counted in this Flush already, or an older event joining
		// another state: count from what is stored.
		var err error
		if b, err = e.blob(n); err != nil {
			return err
		}
	}
	b.refs++
	if b.ev == nil {
		b.ev = ev
	}
	return nil
}

// unref records that a saved state no longer references blob n.
func (e *Engine) unref(n uint64) error {
	b, err := e.blob(n)
	if err != nil {
		return err
	}
	b.refs--
	return nil
}

// writeBlobs writes the blobs whose count changed since the last call, in
// number order, and deletes those no state references any more.
func (e *Engine) writeBlobs() error {
	if len(e.blobRecs) == 0 {
		return nil
	}
	ch := e.changed[:0]
	for i := range e.blobRecs {
		if b := &e.blobRecs[i]; b.refs != b.stored {
			ch = append(ch, int32(i))
		}
	}
	slices.SortFunc(ch, func(x, y int32) int { return cmp.Compare(e.blobRecs[x].n, e.blobRecs[y].n) })
	e.changed = ch
	for _, i := range ch {
		b := &e.blobRecs[i]
		n := b.n
		switch {
		case b.refs <= 0 && b.stored > 0:
			if err := e.st.Delete(e.sharedBlobKey(n)); err != nil {
				return fmt.Errorf("delete event %d: %w", n, err)
			}
			delete(e.counts, n)
		case b.refs > 0:
			if b.ev == nil && b.stored > 0 { // a count from Engine.counts: read the event to rewrite it
				_, ev, _, err := e.readBlob(n)
				if err != nil {
					return fmt.Errorf("read event %d: %w", n, err)
				}
				b.ev = ev
			}
			if b.ev == nil {
				continue // counted but never stored: cannot happen short of a corrupt Store
			}
			e.vbuf = append(binary.AppendUvarint(e.vbuf[:0], uint64(b.refs)), b.ev...)
			if err := e.st.Set(e.sharedBlobKey(n), e.vbuf); err != nil {
				return fmt.Errorf("write event %d: %w", n, err)
			}
			if len(e.counts) >= maxCounts {
				clear(e.counts)
			}
			e.counts[n] = b.refs
		}
	}
	clear(e.blobs)
	clear(e.blobRecs) // drop the events for the collector
	e.blobRecs = e.blobRecs[:0]
	e.unstored = e.blobN + 1
	return nil
}

// saveEvents turns the difference between the events ent's state holds
// now and those its saved value named into reference changes: new ones
// are counted (and written by writeBlobs), ones that left are released.
// Events of a state in the version 3 layout (one key per rule and key)
// move to shared blobs, and their old keys are deleted.
func (e *Engine) saveEvents(ent *entry) error {
	refs := e.refs[:0]
	ent.rs.eachEvent(func(blob *uint64, ev *[]byte) { refs = append(refs, blobRef{*blob, *ev}) })
	slices.SortFunc(refs, func(a, b blobRef) int { return cmp.Compare(a.n, b.n) })
	e.refs = refs
	old, kept := ent.stored, e.kept[:0]
	i := 0
	for j, ref := range refs {
		if j > 0 && refs[j-1].n == ref.n {
			continue // one state names an event once
		}
		for i < len(old) && old[i] < ref.n {
			if err := e.unref(old[i]); err != nil {
				return err
			}
			i++
		}
		if i < len(old) && old[i] == ref.n {
			i++
		} else if err := e.ref(ref.n, ref.ev); err != nil {
			return err
		}
		kept = append(kept, ref.n)
	}
	for ; i < len(old); i++ {
		if err := e.unref(old[i]); err != nil {
			return err
		}
	}
	e.kept = kept
	ent.stored = append(ent.stored[:0], kept...)
	for _, n := range ent.legacy {
		if err := e.st.Delete(e.legacyBlobKey(ent.r.prefix, ent.key, n)); err != nil {
			return err
		}
	}
	ent.legacy = nil
	return nil
}

// legacyBlobKey is the version 3 key of a buffered event: "b/" + rule
// id@version + "/" + the length-prefixed correlation key + the blob
// number. Read (and deleted) only to migrate version 3 states.
func (e *Engine) legacyBlobKey(statePrefix, key string, n uint64) []byte {
	e.bkbuf = binary.BigEndian.AppendUint64(legacyBlobPrefix(e.bkbuf[:0], statePrefix, key), n)
	return e.bkbuf
}

// legacyBlobPrefix appends the prefix of the version 3 event keys of
// (state prefix, key).
func legacyBlobPrefix(b []byte, statePrefix, key string) []byte {
	b = append(b, 'b')
	b = append(b, statePrefix[1:]...) // "s/id@v/" -> "b/id@v/"
	b = binary.AppendUvarint(b, uint64(len(key)))
	return append(b, key...)
}

// migrate gives the events of a state decoded from an older layout fresh
// shared numbers, reading version 3 events from their per-rule keys (and
// remembering those keys for deletion at the next save); inline version 2
// events are already in memory. The entry is marked dirty so the next
// Flush completes the move.
func (e *Engine) migrate(ent *entry, version byte) error {
	var failed error
	ent.rs.eachEvent(func(blob *uint64, ev *[]byte) {
		if failed != nil {
			return
		}
		if version == stateVersionBlobs {
			ent.legacy = append(ent.legacy, *blob)
			b, err := e.st.Get(e.legacyBlobKey(ent.r.prefix, ent.key, *blob))
			if err != nil {
				failed = err
				return
			}
			if b == nil { // cannot happen short of a corrupt Store
				e.stats.EventsMissing++
				b = []byte{} // kept as an undecodable event: the alert names it by id and time
			}
			*ev = b
		}
		*blob = e.newBlob()
	})
	if failed != nil {
		return fmt.Errorf("migrate state %s%s: %w", ent.r.prefix, ent.key, failed)
	}
	ent.rs.nb = 0
	e.touch(ent)
	return nil
}

// releaseEvents releases the events of a state value v stored under k
// ("s/id@v/key") that is being deleted without being loaded: the blob
// numbers come from the value itself, so no scan is needed.
func (e *Engine) releaseEvents(k, v []byte) error {
	rest := k[2:]
	i := 0
	for i < len(rest) && rest[i] != '/' {
		i++
	}
	if i == len(rest) || len(v) < 9 {
		return nil
	}
	var rs ruleState
	if err := decodeState(v, &rs); err != nil {
		return nil // unreadable: its events, if any, stay as orphans
	}
	var failed error
	switch {
	case v[8] >= stateVersionIDs: // shared blobs
		rs.eachEvent(func(blob *uint64, _ *[]byte) {
			if failed == nil {
				failed = e.unref(*blob)
			}
		})
	case v[8] == stateVersionBlobs:
		prefix := legacyBlobPrefix(nil, string(k[:2+i+1]), string(rest[i+1:]))
		rs.eachEvent(func(blob *uint64, _ *[]byte) {
			if failed == nil {
				failed = e.st.Delete(binary.BigEndian.AppendUint64(prefix, *blob))
			}
		})
	}
	return failed
}
