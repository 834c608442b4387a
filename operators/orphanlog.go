package operators

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// Orphan log
//
// An orphan lives until the watermark passes it, one lateness of event
// time, and is almost never adopted. As a blob (blobs.go) its event was a
// Store key written when it arrived and deleted a lateness later: two
// Store operations, two changelog records and a memtable entry that
// outlived its use, per successful sign-in and keyspace — half of all the
// Store operations on production-like traffic. So the events that become
// orphans while one batch is processed are written together, as one value
// of the orphan log:
//
//	key    "o/" + 8-byte big-endian chunk number (from the blob counter)
//	value  8-byte big-endian newest event time (unix ns)
//	       + (uvarint length + the event in the pipeline/event codec)*
//
// and an orphan names its chunk, offset and length. A chunk is deleted
// once the watermark passes its newest event: every orphan in it is
// forgotten by then (forgetOrphans), or was adopted — and adoption copies
// the event into a blob, where the sequence would have kept it. So chunks
// are never rewritten and need no reference counts: what an orphan
// buffer lets go early (trimmed, disowned) stays in its chunk until the
// chunk dies, which bounds the log to about one lateness of orphans. A
// state value naming a deleted chunk names only orphans the watermark
// passed, which are dropped before anything reads them.

var orphanLogPrefix = []byte("o/")

// maxChunk bounds a chunk: each is one changelog record, and Kafka
// refuses records over a megabyte by default.
const maxChunk = 256 << 10

// logChunk is a chunk of the orphan log: one being filled, or one in the
// Store (b nil).
type logChunk struct {
	n      uint64
	newest int64  // unix ns
	b      []byte // header + events, until written
}

// passed reports whether watermark wm (unix ns) has passed every event
// of c: forgetOrphans has let go of them all, so c can go.
func (c *logChunk) passed(wm int64) bool { return c.newest < wm }

// orphanLog is the engine's part of the log: chunks filled since the last
// Flush, the chunks in the Store, and the last chunk read (a sign-in is
// the orphan of several sequences, adopted together).
type orphanLog struct {
	pending []logChunk
	live    []logChunk
	free    [][]byte // buffers of written chunks, reused
	readN   uint64
	readV   []byte
	// adopted memoizes, for the current Process, the blob an orphan's
	// event became: sequences adopting the same orphan share it.
	adoptedAt [2]uint64 // chunk, offset
	adoptedIn uint64    // Stats.Events when it was adopted
	adoptedN  uint64
	adoptedEv []byte
}

// logOrphan appends an orphan's event (time t) to the pending chunk and
// returns where it is.
func (e *Engine) logOrphan(ev []byte, t int64) (chunk uint64, off, n uint32) {
	l := &e.olog
	var c *logChunk
	if k := len(l.pending); k > 0 && len(l.pending[k-1].b)+len(ev)+binary.MaxVarintLen32 <= maxChunk {
		c = &l.pending[k-1]
	} else {
		var b []byte
		if k := len(l.free); k > 0 {
			b, l.free = l.free[k-1][:0], l.free[:k-1]
		}
		l.pending = append(l.pending, logChunk{n: e.newBlob(), newest: t, b: append(b, make([]byte, 8)...)})
		c = &l.pending[len(l.pending)-1]
	}
	c.b = binary.AppendUvarint(c.b, uint64(len(ev)))
	off = uint32(len(c.b))
	c.b = append(c.b, ev...)
	c.newest = max(c.newest, t)
	return c.n, off, uint32(len(ev))
}

// orphanEvent returns o's event: in memory since it arrived, or read from
// its blob or chunk. nil when the Store lost it (counted in
// Stats.EventsMissing).
func (e *Engine) orphanEvent(o *orphan) ([]byte, error) {
	if o.ev != nil {
		return o.ev, nil
	}
	if o.blob != 0 {
		_, ev, ok, err := e.readBlob(o.blob)
		if err != nil || ok {
			return ev, err
		}
		e.stats.EventsMissing++
		return nil, nil
	}
	l := &e.olog
	var v []byte
	for i := range l.pending {
		if l.pending[i].n == o.chunk {
			v = l.pending[i].b
		}
	}
	if v == nil && l.readN == o.chunk && l.readV != nil {
		v = l.readV
	}
	if v == nil {
		var err error
		if v, err = e.st.Get(e.chunkKey(o.chunk)); err != nil {
			return nil, fmt.Errorf("read orphan log chunk %d: %w", o.chunk, err)
		}
		l.readN, l.readV = o.chunk, v
	}
	end := uint64(o.off) + uint64(o.n)
	if v == nil || end > uint64(len(v)) {
		e.stats.EventsMissing++
		return nil, nil
	}
	return bytes.Clone(v[o.off:end]), nil // not the chunk: a state keeps it
}

// adoptedBlob returns the blob number and event of an orphan a sequence
// adopts: its own blob (state version 7), or a new blob holding the
// event, shared by the sequences that adopt it in the same Process.
func (e *Engine) adoptedBlob(o *orphan) (uint64, []byte, error) {
	if o.blob != 0 {
		return o.blob, o.ev, nil
	}
	l := &e.olog
	at := [2]uint64{o.chunk, uint64(o.off)}
	if l.adoptedN != 0 && l.adoptedIn == e.stats.Events && l.adoptedAt == at {
		return l.adoptedN, l.adoptedEv, nil
	}
	ev, err := e.orphanEvent(o)
	if err != nil {
		return 0, nil, err
	}
	if ev == nil {
		ev = []byte{} // kept as an undecodable event: the alert names it by id and time
	}
	n := e.newBlob()
	l.adoptedAt, l.adoptedIn, l.adoptedN, l.adoptedEv = at, e.stats.Events, n, ev
	return n, ev, nil
}

func (e *Engine) chunkKey(n uint64) []byte {
	e.bkbuf = binary.BigEndian.AppendUint64(append(e.bkbuf[:0], orphanLogPrefix...), n)
	return e.bkbuf
}

// writeOrphanLog writes the chunks filled since the last Flush and
// deletes those the watermark has passed.
func (e *Engine) writeOrphanLog() error {
	l := &e.olog
	for i := range l.pending {
		c := &l.pending[i]
		if !c.passed(e.wmN) { // else dead already: its orphans are forgotten
			binary.BigEndian.PutUint64(c.b, uint64(c.newest))
			if err := e.st.Set(e.chunkKey(c.n), c.b); err != nil {
				return fmt.Errorf("write orphan log chunk %d: %w", c.n, err)
			}
			l.live = append(l.live, logChunk{n: c.n, newest: c.newest})
		}
		l.free = append(l.free, c.b)
		*c = logChunk{}
	}
	l.pending = l.pending[:0]
	keep := l.live[:0]
	for _, c := range l.live {
		if !c.passed(e.wmN) {
			keep = append(keep, c)
			continue
		}
		if err := e.st.Delete(e.chunkKey(c.n)); err != nil {
			return fmt.Errorf("delete orphan log chunk %d: %w", c.n, err)
		}
		if l.readN == c.n {
			l.readN, l.readV = 0, nil
		}
	}
	l.live = keep
	return nil
}

// loadOrphanLog lists the chunks in the Store, at start.
func (e *Engine) loadOrphanLog() error {
	err := e.st.Scan(orphanLogPrefix, func(k, v []byte) error {
		if len(k) != len(orphanLogPrefix)+8 || len(v) < 8 {
			return nil // not a chunk this build wrote; left alone
		}
		e.olog.live = append(e.olog.live, logChunk{
			n:      binary.BigEndian.Uint64(k[len(orphanLogPrefix):]),
			newest: int64(binary.BigEndian.Uint64(v)),
		})
		return nil
	})
	if err != nil {
		return fmt.Errorf("operators: read orphan log: %w", err)
	}
	return nil
}
