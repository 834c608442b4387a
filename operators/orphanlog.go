package operators

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/klauspost/compress/s2"

	"github.com/vigil-sec/vigil/pipeline/event"
	"github.com/vigil-sec/vigil/rules"
)

// Orphan log
//
// An orphan lives until the watermark passes it, one lateness of event
// time, and is almost never adopted. Kept like other state, each was a
// blob written on arrival and deleted a lateness later plus its key's
// orphan buffer rewritten: three Store operations (and changelog records)
// per successful sign-in and keyspace, most of the Store operations on
// production-like traffic. So orphan buffers live in memory, whole, and
// what a batch did to them is appended to the orphan log as one Store
// value:
//
//	key    "l/" + 8-byte big-endian chunk number (from the blob counter)
//	value  8-byte big-endian horizon (unix ns): the watermark may pass
//	       it once nothing needs the chunk — the newest orphan's time,
//	       or maxspan after a logged sequence step (below)
//	       then the records, or 'z' and the records as an S2 block
//	       (github.com/klauspost/compress/s2) when that is smaller:
//	         'e' uvarint length + an event in the pipeline/event codec
//	         's' keyspace, key (uvarint length + bytes each), then the
//	             key's whole orphan buffer as appendOrphans writes it
//	         'c' keyspace: every buffer of the keyspace emptied (its
//	             last ordered sequence was removed)
//
// An orphan names the chunk, offset and length of its event in the
// uncompressed value. So does a step of a sequence with a short maxspan
// (logsEvents): such a sequence starts on common events that leave it
// within minutes, and a blob per event was a set, a delete and a
// reference count where the log costs a share of one chunk; the chunk's
// horizon is then maxspan after the step, when the sequence has
// forgotten it. The records of a batch repeat themselves — a
// sign-in's field names and most of its values, the same tenant's
// applications and addresses — and S2 takes them to a fraction (generated
// traffic: 18x) at gigabytes a second; every byte saved is a byte the
// Store, Pebble's memtable and compactions and the changelog do not copy.
// A snapshot replaces the key's earlier ones, so NewEngine rebuilds the buffers by
// reading the chunks in order. A chunk goes once the watermark has passed
// its horizon and every earlier chunk has gone: its orphans are forgotten
// by then (forgetOrphans) or were adopted — and adoption copies the event
// into a blob, where the sequence would have kept it — and no later
// snapshot can be undone by deleting it while an earlier one stays. Chunks
// are never rewritten; what a buffer lets go early stays in its chunk
// until the chunk goes, which bounds the log and the buffers in memory to
// about one lateness of orphans — and the buffers to Options.MaxCached
// keys besides (shedOrphans).
//
// Earlier layouts are not carried over: at start the orphan buffers of
// state versions 7 and 8 ("s/~orphans.<ks>@1/<key>") release their blobs
// and are deleted, and chunks of the first log ("o/<n>", events only) are
// deleted — the orphans of the lateness around an upgrade are lost, as a
// changed rule's state is.

var (
	orphanLogPrefix    = []byte("l/")
	legacyChunkPrefix  = []byte("o/")
	legacyOrphanPrefix = []byte("s/" + orphanRulePrefix)
)

// Record tags of a chunk, and the mark of a compressed one.
const (
	recEvent    = 'e'
	recSnapshot = 's'
	recClear    = 'c'
	chunkS2     = 'z'
)

// chunkHeader is the size of a chunk's horizon, before its records.
const chunkHeader = 8

// maxChunk bounds a chunk: each is one changelog record, and Kafka
// refuses records over a megabyte by default.
const maxChunk = 256 << 10

// logChunk is a chunk of the orphan log: one being filled (b its value
// so far), or one in the Store (b nil).
type logChunk struct {
	n       uint64
	horizon int64 // unix ns
	b       []byte
}

// passed reports whether watermark wm (unix ns) has passed every event c
// names: the orphans in it are forgotten.
func (c *logChunk) passed(wm int64) bool { return c.horizon < wm }

// logRef is where an event is in the log — an orphan's, or a logged
// sequence step's: its chunk, and the offset and length of the event in
// the chunk's uncompressed value. The zero logRef names nothing.
type logRef struct {
	chunk  uint64
	off, n uint32
}

func appendLogRef(b []byte, r logRef) []byte {
	b = binary.AppendUvarint(b, r.chunk)
	b = binary.AppendUvarint(b, uint64(r.off))
	return binary.AppendUvarint(b, uint64(r.n))
}

func (d *reader) logRef() logRef {
	return logRef{chunk: d.uvarint(), off: uint32(d.uvarint()), n: uint32(d.uvarint())}
}

// orphanLog is the engine's part of the log: chunks filled since the
// last Flush, the chunks in the Store (in number order), and the last
// chunk read (a sign-in is the orphan of several
// sequences, adopted together).
type orphanLog struct {
	pending []logChunk
	live    []logChunk
	free    [][]byte // buffers of written chunks, reused
	zbuf    []byte   // compression scratch
	vbuf    []byte   // a compressed chunk's value
	readN   uint64
	readV   []byte
	// pruneAt is the number of buffers in memory past which the next
	// Flush drops those the watermark emptied.
	pruneAt int
	// adopted memoizes, for the current Process, the blob an orphan's
	// event became: sequences adopting the same orphan share it.
	adoptedAt logRef
	adoptedIn uint64 // Stats.Events when it was adopted
	adoptedN  uint64
	adoptedEv []byte
}

// chunkFor returns the pending chunk with room for n more bytes.
func (e *Engine) chunkFor(n int) *logChunk {
	l := &e.olog
	if k := len(l.pending); k > 0 && (len(l.pending[k-1].b)+n <= maxChunk || len(l.pending[k-1].b) == chunkHeader) {
		return &l.pending[k-1]
	}
	var b []byte
	if k := len(l.free); k > 0 {
		b, l.free = l.free[k-1][:0], l.free[:k-1]
	}
	l.pending = append(l.pending, logChunk{n: e.newBlob(), b: append(b, make([]byte, chunkHeader)...)})
	return &l.pending[len(l.pending)-1]
}

// logMaxSpan bounds the maxspan of the sequences whose buffered events go
// to the orphan log (logsEvents) instead of blobs. Chunks go in order, so
// the log holds about the longest horizon of what is in it: one lateness
// of orphans, and this much of such sequences' events.
const logMaxSpan = 15 * time.Minute

// logsEvents reports whether sequence r keeps its events in the orphan
// log: a short maxspan. Such a sequence starts on common events — every
// browser session to a public address for the AiTM proxy rule — that
// leave it within minutes; as blobs each cost a Store write, a delete and
// a reference count, in the log a share of one chunk written per Flush
// and deleted once the watermark passes maxspan after its newest event,
// when the sequence has forgotten them (an entry goes when its time is
// more than maxspan before the watermark).
func logsEvents(r *rules.Rule) bool {
	return r.Kind == rules.KindSequence && r.MaxSpan > 0 && r.MaxSpan <= logMaxSpan
}

// logEvent puts the current event in the log (once per Process: an orphan
// and the sequences share it) and keeps its chunk until the watermark
// passes horizon.
func (e *Engine) logEvent(ev *event.Event, horizon int64) logRef {
	c := e.current(ev)
	if c.at.chunk == 0 {
		c.at = e.appendLogEvent(e.orphanEncoding(), horizon)
		return c.at
	}
	for i := range e.olog.pending { // logged in this Process: still pending
		if p := &e.olog.pending[i]; p.n == c.at.chunk {
			p.horizon = max(p.horizon, horizon)
		}
	}
	return c.at
}

// appendLogEvent appends an event to the log, kept until the watermark
// passes horizon, and returns where it is.
func (e *Engine) appendLogEvent(ev []byte, horizon int64) logRef {
	c := e.chunkFor(1 + binary.MaxVarintLen32 + len(ev))
	c.b = binary.AppendUvarint(append(c.b, recEvent), uint64(len(ev)))
	at := logRef{chunk: c.n, off: uint32(len(c.b)), n: uint32(len(ev))}
	c.b = append(c.b, ev...)
	c.horizon = max(c.horizon, horizon)
	return at
}

// logSnapshot appends the orphan buffer of ent (a pseudo-rule's entry)
// to the log.
func (e *Engine) logSnapshot(ent *entry) {
	rs := &ent.rs
	e.forgetOrphans(rs)
	ks := ent.r.Keyspace
	c := e.chunkFor(1 + 2*binary.MaxVarintLen32 + len(ks) + len(ent.key) + 48*len(rs.orphans))
	c.b = append(c.b, recSnapshot)
	c.b = appendLogString(c.b, string(ks))
	c.b = appendLogString(c.b, ent.key)
	c.b = appendOrphans(c.b, rs.orphans)
	for i := range rs.orphans {
		c.horizon = max(c.horizon, rs.orphans[i].t)
	}
}

func appendLogString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// clearOrphans forgets every orphan buffer of r, a keyspace's orphan rule
// that a Reload removed, in memory and (from the next Flush) in the log.
func (e *Engine) clearOrphans(r *crule) {
	for _, ent := range r.states {
		ent.dead = true
	}
	r.states = nil
	e.lastOrphans = nil
	// Now, not at the Flush: snapshots of buffers the keyspace gets again
	// later in the batch (a reload that puts a sequence back) come after
	// it.
	c := e.chunkFor(1 + binary.MaxVarintLen32 + len(r.Keyspace))
	c.b = appendLogString(append(c.b, recClear), string(r.Keyspace))
}

// loggedEvent returns a copy of the event at r, from the pending chunk or
// the Store; nil when the Store lost it (counted in Stats.EventsMissing).
func (e *Engine) loggedEvent(r logRef) ([]byte, error) {
	l := &e.olog
	var v []byte
	for i := range l.pending {
		if l.pending[i].n == r.chunk {
			v = l.pending[i].b
		}
	}
	if v == nil && l.readN == r.chunk && l.readV != nil {
		v = l.readV
	}
	if v == nil {
		var err error
		if v, err = e.st.Get(e.chunkKey(r.chunk)); err == nil {
			v, err = chunkRecords(v)
		}
		if err != nil {
			return nil, fmt.Errorf("read orphan log chunk %d: %w", r.chunk, err)
		}
		l.readN, l.readV = r.chunk, v
	}
	end := uint64(r.off) + uint64(r.n)
	if v == nil || end > uint64(len(v)) {
		e.stats.EventsMissing++
		return nil, nil
	}
	return bytes.Clone(v[r.off:end]), nil // not the chunk: a state keeps it
}

// adoptedBlob returns the blob number and event of an orphan a sequence
// adopts: a new blob holding its event, shared by the sequences that
// adopt it in the same Process.
func (e *Engine) adoptedBlob(o *orphan) (uint64, []byte, error) {
	l := &e.olog
	at := o.at
	if l.adoptedN != 0 && l.adoptedIn == e.stats.Events && l.adoptedAt == at {
		return l.adoptedN, l.adoptedEv, nil
	}
	ev, err := e.loggedEvent(o.at)
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

// writeOrphanLog writes the chunks filled since the last Flush, deletes
// those that have gone, and drops from memory the buffers the watermark
// emptied once there are enough of them.
func (e *Engine) writeOrphanLog() error {
	l := &e.olog
	for i := range l.pending {
		c := &l.pending[i]
		binary.BigEndian.PutUint64(c.b, uint64(c.horizon))
		v := c.b
		z := s2.Encode(l.zbuf[:cap(l.zbuf)], c.b[chunkHeader:])
		l.zbuf = z
		if len(z) < (len(c.b)-chunkHeader)*7/8 {
			v = append(append(append(l.vbuf[:0], c.b[:chunkHeader]...), chunkS2), z...)
			l.vbuf = v
		}
		if err := e.st.Set(e.chunkKey(c.n), v); err != nil {
			return fmt.Errorf("write orphan log chunk %d: %w", c.n, err)
		}
		l.live = append(l.live, logChunk{n: c.n, horizon: c.horizon})
		l.free = append(l.free, c.b)
		*c = logChunk{}
	}
	l.pending = l.pending[:0]
	gone := 0
	for gone < len(l.live) && l.live[gone].passed(e.wmN) {
		n := l.live[gone].n
		if err := e.st.Delete(e.chunkKey(n)); err != nil {
			return fmt.Errorf("delete orphan log chunk %d: %w", n, err)
		}
		if l.readN == n {
			l.readN, l.readV = 0, nil
		}
		gone++
	}
	l.live = append(l.live[:0], l.live[gone:]...)
	e.pruneOrphans()
	return nil
}

// pruneOrphans drops the orphan buffers the watermark emptied, once the
// buffers in memory have doubled since the last time: amortized, a
// constant per buffer.
func (e *Engine) pruneOrphans() {
	total := e.orphanBuffers()
	if total <= max(e.olog.pruneAt, 1024) && total <= e.opts.MaxCached*3/4 {
		return
	}
	left := 0
	for _, r := range e.orphanRules {
		for key, ent := range r.states {
			e.forgetOrphans(&ent.rs)
			if len(ent.rs.orphans) == 0 && !ent.dirty {
				delete(r.states, key)
				continue
			}
			left++
		}
	}
	e.lastOrphans = nil
	e.olog.pruneAt = 2 * left
}

// orphanBuffers counts the orphan buffers in memory, with the emptied
// ones pruneOrphans has not dropped yet.
func (e *Engine) orphanBuffers() int {
	n := 0
	for _, r := range e.orphanRules {
		n += len(r.states)
	}
	return n
}

// shedOrphans keeps the orphan buffers within Options.MaxCached keys: past
// it, the buffers whose newest orphan is oldest are emptied (and logged
// empty by this Flush) down to three quarters of it. Out-of-order first
// steps come seconds late, an alert's round trip through the alerts
// topic, so the oldest orphans are the ones least likely to be adopted.
func (e *Engine) shedOrphans() {
	if e.orphanBuffers() <= e.opts.MaxCached {
		return
	}
	var ents []*entry
	for _, r := range e.orphanRules {
		for _, ent := range r.states {
			if len(ent.rs.orphans) > 0 {
				ents = append(ents, ent)
			}
		}
	}
	if len(ents) <= e.opts.MaxCached {
		return
	}
	newest := func(ent *entry) int64 { return ent.rs.orphans[len(ent.rs.orphans)-1].t }
	slices.SortFunc(ents, func(a, b *entry) int { return cmp.Compare(newest(a), newest(b)) })
	for _, ent := range ents[:len(ents)-e.opts.MaxCached*3/4] {
		e.stats.OrphansDropped += uint64(len(ent.rs.orphans))
		clear(ent.rs.orphans)
		ent.rs.orphans = ent.rs.orphans[:0]
		e.touch(ent)
	}
}

// loadOrphanLog rebuilds the orphan buffers from the log at start, and
// deletes the orphan state of earlier layouts.
func (e *Engine) loadOrphanLog() error {
	var legacy [][2][]byte
	err := e.st.Scan(legacyOrphanPrefix, func(k, v []byte) error {
		legacy = append(legacy, [2][]byte{bytes.Clone(k), bytes.Clone(v)})
		return nil
	})
	if err == nil {
		err = e.st.Scan(legacyChunkPrefix, func(k, _ []byte) error {
			legacy = append(legacy, [2][]byte{bytes.Clone(k), nil})
			return nil
		})
	}
	for _, kv := range legacy {
		if err != nil {
			break
		}
		if kv[1] != nil {
			err = e.releaseEvents(kv[0], kv[1])
			e.stats.StateDiscarded++
		}
		if err == nil {
			err = e.st.Delete(kv[0])
		}
	}
	if err != nil {
		return fmt.Errorf("operators: drop orphans of an earlier layout: %w", err)
	}
	err = e.st.Scan(orphanLogPrefix, func(k, v []byte) error {
		if len(k) != len(orphanLogPrefix)+8 || len(v) < chunkHeader {
			return fmt.Errorf("%w: orphan log key %q", errMalformedState, k)
		}
		c := logChunk{n: binary.BigEndian.Uint64(k[len(orphanLogPrefix):]), horizon: int64(binary.BigEndian.Uint64(v))}
		e.olog.live = append(e.olog.live, c)
		v, err := chunkRecords(v)
		if err != nil {
			return fmt.Errorf("chunk %d: %w", c.n, err)
		}
		return e.replayChunk(c.n, v) // in key order: the order they were written
	})
	if err != nil {
		return fmt.Errorf("operators: read orphan log: %w", err)
	}
	return nil
}

// chunkRecords returns a chunk's value as written before compression:
// the header and the records (v itself when it is not compressed).
func chunkRecords(v []byte) ([]byte, error) {
	if len(v) <= chunkHeader || v[chunkHeader] != chunkS2 {
		return v, nil
	}
	n, err := s2.DecodedLen(v[chunkHeader+1:])
	if err != nil {
		return nil, fmt.Errorf("%w: orphan log chunk: %v", errMalformedState, err)
	}
	out := make([]byte, chunkHeader+n)
	copy(out, v[:chunkHeader])
	if _, err := s2.Decode(out[chunkHeader:], v[chunkHeader+1:]); err != nil { // exactly n bytes: decoded in place
		return nil, fmt.Errorf("%w: orphan log chunk: %v", errMalformedState, err)
	}
	return out, nil
}

// replayChunk applies the snapshots and clears of chunk n (value v), as
// the Flush that wrote it left the buffers. The Store scans keys in
// order, so chunks come in the order they were written.
func (e *Engine) replayChunk(n uint64, v []byte) error {
	d := &reader{b: v, off: chunkHeader}
	for d.off < len(d.b) && d.err == nil {
		switch d.byte() {
		case recEvent:
			d.bytes()
		case recSnapshot:
			ks, key := event.Keyspace(d.str()), d.str()
			orphans := d.orphans(true)
			r := e.orphanRules[ks]
			if d.err != nil || r == nil {
				continue // no ordered sequence in the keyspace any more
			}
			keep := orphans[:0]
			for _, o := range orphans {
				if o.t >= e.wmN {
					keep = append(keep, o)
				}
			}
			if len(keep) == 0 {
				delete(r.states, key)
				continue
			}
			ent := r.states[key]
			if ent == nil {
				ent = &entry{key: key, r: r}
				r.states[key] = ent
			}
			ent.rs.orphans = keep
		case recClear:
			if r := e.orphanRules[event.Keyspace(d.str())]; r != nil {
				clear(r.states)
			}
		default:
			d.fail("record tag")
		}
	}
	if d.err != nil {
		return fmt.Errorf("chunk %d: %w", n, d.err)
	}
	return nil
}
