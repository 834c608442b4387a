package operators

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/vigil-sec/vigil/pipeline/event"
	"github.com/vigil-sec/vigil/rules"
)

// State encoding
//
// A state value in the Store is
//
//	expiry   8 bytes, big-endian unix nanoseconds (the sweep reads only this)
//	version  1 byte, stateVersion
//	section* tag byte + body, each section at most once, in any order
//
// with uvarint lengths and counts, zig-zag varint times (unix nanoseconds,
// delta-encoded inside a time-ordered list), strings as uvarint length +
// bytes. Empty sections are not written, so a key with one pending sequence
// step costs one section.
//
// Events (a sequence's buffered steps, a threshold's evidence, an absence
// anchor) are not in the value: the value holds blob numbers, and the
// events are Store keys of their own shared by every state that buffers
// them (blobs.go), written once when they enter and deleted when the last
// state lets go — or, for the steps of a sequence with a short maxspan,
// where the event is in the orphan log (orphanlog.go). A Flush then
// rewrites the small value of every key touched, not every buffered
// event: with events inline, re-encoding the evidence and pending steps
// of busy keys on every batch was a third of the engine's CPU on
// production-like traffic (BENCHMARKS.md). Values of
// versions 2 (events inline) and 3 (same value layout as 4, but one event
// key per rule and key) are still read; their events move to shared blobs
// the next time the key is saved.
//
// Why not JSON: encoding state was 56% of the engine's CPU with JSON, and a
// threshold key that kept whole events as JSON cost ~18–58 KB. The binary
// form is written with append into one reused buffer and decoded only on a
// cache miss.
//
// Evolution: a value whose version byte this build does not know (written
// by a newer release, or the JSON of an older one, whose byte 8 is '{') is
// not misread: the engine starts that key fresh and counts it in
// Stats.StateDiscarded, as it does for a changed rule. A new section gets a
// new tag; a tag is never reused.
const stateVersion = 9

// Earlier versions, still read: events inline (2), events as keys of
// their own per rule and key (3), threshold entries with whole ids
// (tagGroups; 4), sequence entries with whole ids (tagSeq; 5), no orphan
// buffers (6). See blobs.go. Since 6 a sequence entry keeps a 64-bit hash
// of its event's id (re-deliveries are recognised by it); the alert reads
// the ids from the events themselves. 7 adds the orphan section (a
// build that does not know it must not read such a value as malformed),
// 8 the orphan section with events in the orphan log (tagOrphansLog).
// Orphan buffers have since left state values for the orphan log, which
// writes its snapshots with appendOrphans; the sections of 7 and 8 are
// read only to release the blobs of an older layout's buffers at start.
// 9: a sequence entry's blob number 0 is followed by the chunk, offset
// and length of its event in the orphan log (logsEvents); an older build
// must not read that 0 as a blob number.
const (
	stateVersionInline = 2
	stateVersionBlobs  = 3
	stateVersionIDs    = 4
	stateVersionLog    = 9
)

// Section tags. Never reuse or renumber one.
const (
	tagSeq     = 1  // sequence buffer
	tagFired   = 2  // sequence alerts already emitted
	tagGroups  = 3  // threshold groups
	tagAnchors = 4  // absence anchors
	tagExpects = 5  // absence expect times
	tagTerms   = 6  // new_term terms
	tagFirst   = 7  // new_term first sight of the key
	tagSupp    = 8  // suppression
	tagN       = 9  // sequence arrival counter
	tagBlobs   = 10 // last blob number used (version 3)
	tagGroupsH = 11 // threshold groups, entries with id hashes (version 5)
	tagSeqH    = 12 // sequence buffer, entries with id hashes (version 6)
	tagOrphans = 13 // a key's orphan buffer, events as blobs (orphans.go; version 7)
	// tagOrphansLog: a key's orphan buffer, events in the orphan log or
	// as blobs (orphanlog.go; version 8)
	tagOrphansLog = 14
)

// errUnknownStateVersion marks a value this build cannot read; the key
// starts fresh.
var errUnknownStateVersion = errors.New("unknown state version")

// ruleState is the state of one (rule, key). Only the fields of the rule's
// kind are used. Times are unix nanoseconds.
type ruleState struct {
	// sequence: recent step events in event-time order, the alerts
	// already emitted, and an arrival counter that orders equal times.
	seq   []seqEntry
	fired []firedID
	n     uint64

	// threshold: one group per group_by value.
	groups map[string]*thGroup

	// absence: pending anchors and recent expect times.
	anchors []absAnchor
	expects []int64

	// new_term: term -> last seen; when the key was first seen.
	terms map[string]int64
	first int64

	// suppression: suppression key -> until.
	supp map[string]int64

	// nb numbers the key's event blobs (blob numbers are never reused).
	nb uint64

	// orphans: the events of the key that only later steps of some
	// sequences want, while those sequences buffer nothing for the key
	// (the state of a keyspace's orphan rule only; orphans.go).
	orphans []orphan
}

// nextBlob returns a fresh blob number for an event entering the state.
func (s *ruleState) nextBlob() uint64 {
	s.nb++
	return s.nb
}

// seqEntry is one buffered sequence event. The event itself is kept
// encoded and decoded only when it ends up in an alert.
type seqEntry struct {
	h     uint64 // idHash of the event's id: re-deliveries are recognised by it
	t     int64
	mask  uint64
	until bool
	n     uint64
	blob  uint64 // its event's blob number; 0 when it is in the orphan log
	ev    []byte // the event, encoded; nil until read from its blob
	// at: where the event is in the orphan log, for a sequence whose
	// maxspan is at most logMaxSpan (logsEvents); zero for a blob.
	at logRef
}

// firedID remembers a completed match by a hash of its entries' arrival
// numbers (seqEntry.n, unique per key): replays find old matches again on
// every event, and this is checked without computing the alert id.
type firedID struct {
	h     uint64
	first int64
}

// thEntry is what a threshold needs of one event: a 64-bit hash of its id
// (re-delivery, alert id), its time, its distinct value (an index into
// thGroup.vals, -1 for none) and its sum term. Not the event: see
// thGroup.evidence. Not the id either: source ids run to 90 bytes (a
// Defender report), a busy group holds thousands, and their hashes serve
// both uses (idHash).
type thEntry struct {
	t int64
	s float64
	h uint64
	d int32
}

// thEvidence is a matched event kept for the alert, encoded.
type thEvidence struct {
	t    int64
	blob uint64
	ev   []byte // nil until read from its blob
}

type thGroup struct {
	entries []thEntry // time order
	vals    []string  // dictionary of distinct values
	// evidence holds the newest Options.ThresholdEvidence matched events
	// (time order), the events the alert carries.
	evidence  []thEvidence
	suppUntil int64
	fired     []int64 // tumbling buckets that fired

	// In memory only, rebuilt when missing: the dictionary's index, and
	// the aggregates of the window that ends at the newest entry.
	index map[string]int32
	agg   *thAgg
	kept  int // entries after the last forgetRepeats
}

// thAgg counts the window ending at a group's newest entry, so an event
// arriving in time order (the common case) is checked in O(1) amortised
// instead of re-counting the window: a port scan's group holds thousands
// of entries, and counting them for every connection was the library's
// single largest cost on flow traffic. Anything else — an out-of-order
// event, entries dropped inside the window, a dictionary compaction —
// drops the aggregates, and the next in-order event rebuilds them.
type thAgg struct {
	lo       int     // first entry of the window
	counts   []int32 // entries per dictionary value in the window
	distinct int
}

type absAnchor struct {
	id       string
	t        int64
	deadline int64
	blob     uint64
	ev       []byte // nil until read from its blob
}

func (s *ruleState) empty() bool {
	return len(s.seq) == 0 && len(s.fired) == 0 && len(s.groups) == 0 && len(s.anchors) == 0 &&
		len(s.expects) == 0 && len(s.terms) == 0 && len(s.supp) == 0 && len(s.orphans) == 0
}

// nanos converts an event time to unix nanoseconds, clamped to the range
// int64 nanoseconds can hold (1678..2262) so absurd times order sensibly.
func nanos(t time.Time) int64 {
	if t.Before(minTime) {
		return math.MinInt64 / 2
	}
	if t.After(maxTime) {
		return math.MaxInt64 / 2
	}
	return t.UnixNano()
}

var (
	minTime = time.Unix(0, math.MinInt64/2)
	maxTime = time.Unix(0, math.MaxInt64/2)
)

func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

// expiry is the event time (unix ns) after which nothing in s can matter.
func (s *ruleState) expiry(r *rules.Rule) int64 {
	t := int64(math.MinInt64)
	max := func(x int64) {
		if x > t {
			t = x
		}
	}
	span := int64(r.MaxSpan + r.Lateness)
	for i := range s.seq {
		max(s.seq[i].t + span)
	}
	if n := len(s.fired); n > 0 { // ordered by first (markFired)
		max(s.fired[n-1].first + span)
	}
	W := int64(r.Window)
	for _, g := range s.groups {
		if n := len(g.entries); n > 0 {
			max(g.entries[n-1].t + W)
		}
		if n := len(g.evidence); n > 0 {
			max(g.evidence[n-1].t + W)
		}
		max(g.suppUntil)
		for _, b := range g.fired {
			max((b + 1) * W)
		}
	}
	for _, a := range s.anchors {
		max(a.deadline)
	}
	for _, x := range s.expects {
		max(x + int64(r.Window+r.Lateness))
	}
	if r.NewTerm != nil {
		for _, x := range s.terms {
			max(x + int64(r.NewTerm.Lookback))
		}
	}
	for _, x := range s.supp {
		max(x)
	}
	return t
}

// appendState appends the Store value of s (expiry prefix included).
func appendState(b []byte, s *ruleState, r *rules.Rule) []byte {
	var sc encodeScratch
	return sc.appendState(b, s, r)
}

// encodeScratch holds the scratch slices of state encoding, reused from
// one value to the next (an engine keeps one): a Flush encodes thousands
// of values, and fresh slices per threshold group were a tenth of the
// engine's allocations.
type encodeScratch struct {
	keys  []string
	remap []int32
	used  []string
}

// appendState appends the Store value of s (expiry prefix included).
func (sc *encodeScratch) appendState(b []byte, s *ruleState, r *rules.Rule) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(s.expiry(r)))
	b = append(b, stateVersion)
	if len(s.seq) > 0 {
		b = append(b, tagSeqH)
		b = binary.AppendUvarint(b, uint64(len(s.seq)))
		prev := int64(0)
		for i := range s.seq {
			x := &s.seq[i]
			b = binary.LittleEndian.AppendUint64(b, x.h)
			b = binary.AppendVarint(b, x.t-prev)
			prev = x.t
			b = binary.AppendUvarint(b, x.mask)
			if x.until {
				b = append(b, 1)
			} else {
				b = append(b, 0)
			}
			b = binary.AppendUvarint(b, x.n)
			b = binary.AppendUvarint(b, x.blob)
			if x.blob == 0 { // in the orphan log (version 9)
				b = appendLogRef(b, x.at)
			}
		}
	}
	if s.n != 0 {
		b = append(b, tagN)
		b = binary.AppendUvarint(b, s.n)
	}
	if s.nb != 0 {
		b = append(b, tagBlobs)
		b = binary.AppendUvarint(b, s.nb)
	}
	if len(s.fired) > 0 {
		b = append(b, tagFired)
		b = binary.AppendUvarint(b, uint64(len(s.fired)))
		for _, f := range s.fired {
			b = binary.LittleEndian.AppendUint64(b, f.h)
			b = binary.AppendVarint(b, f.first)
		}
	}
	if len(s.groups) > 0 {
		b = append(b, tagGroupsH)
		b = binary.AppendUvarint(b, uint64(len(s.groups)))
		keys := sc.keys[:0]
		for k := range s.groups {
			keys = append(keys, k)
		}
		sort.Strings(keys) // deterministic bytes for the same state
		for _, k := range keys {
			b = appendStr(b, k)
			b = sc.appendGroup(b, s.groups[k])
		}
		clear(keys)
		sc.keys = keys[:0]
	}
	if len(s.anchors) > 0 {
		b = append(b, tagAnchors)
		b = binary.AppendUvarint(b, uint64(len(s.anchors)))
		for _, a := range s.anchors {
			b = appendStr(b, a.id)
			b = binary.AppendVarint(b, a.t)
			b = binary.AppendVarint(b, a.deadline-a.t)
			b = binary.AppendUvarint(b, a.blob)
		}
	}
	if len(s.expects) > 0 {
		b = append(b, tagExpects)
		b = binary.AppendUvarint(b, uint64(len(s.expects)))
		for _, x := range s.expects {
			b = binary.AppendVarint(b, x)
		}
	}
	if len(s.terms) > 0 {
		b = append(b, tagTerms)
		b = appendTimeMap(b, s.terms)
	}
	if s.first != 0 {
		b = append(b, tagFirst)
		b = binary.AppendVarint(b, s.first)
	}
	if len(s.supp) > 0 {
		b = append(b, tagSupp)
		b = appendTimeMap(b, s.supp)
	}
	return b
}

// appendOrphans appends an orphan buffer: its count, then each orphan in
// time order — a snapshot of the orphan log (orphanlog.go), as the
// section of state version 8 (tagOrphansLog) was.
func appendOrphans(b []byte, orphans []orphan) []byte {
	b = binary.AppendUvarint(b, uint64(len(orphans)))
	prev := int64(0)
	for i := range orphans {
		o := &orphans[i]
		b = binary.LittleEndian.AppendUint64(b, o.h)
		b = binary.AppendVarint(b, o.t-prev)
		prev = o.t
		b = binary.AppendUvarint(b, o.blob)
		if o.blob == 0 {
			b = appendLogRef(b, o.at)
		}
		b = binary.AppendUvarint(b, uint64(len(o.owners)))
		for _, w := range o.owners {
			b = binary.LittleEndian.AppendUint64(b, w.rule)
			b = binary.AppendUvarint(b, w.mask)
		}
	}
	return b
}

// appendGroup writes a threshold group, compacting its dictionary to the
// values its entries still use.
func (sc *encodeScratch) appendGroup(b []byte, g *thGroup) []byte {
	b = binary.AppendVarint(b, g.suppUntil)
	b = binary.AppendUvarint(b, uint64(len(g.fired)))
	for _, f := range g.fired {
		b = binary.AppendVarint(b, f)
	}
	// Dictionary: only referenced values, renumbered in first-use order.
	remap := slices.Grow(sc.remap[:0], len(g.vals))[:len(g.vals)]
	for i := range remap {
		remap[i] = -1
	}
	used := sc.used[:0]
	for _, x := range g.entries {
		if x.d >= 0 && remap[x.d] < 0 {
			remap[x.d] = int32(len(used))
			used = append(used, g.vals[x.d])
		}
	}
	b = binary.AppendUvarint(b, uint64(len(used)))
	for _, v := range used {
		b = appendStr(b, v)
	}
	hasSum := false
	for _, x := range g.entries {
		if x.s != 0 {
			hasSum = true
			break
		}
	}
	b = binary.AppendUvarint(b, uint64(len(g.entries)))
	if hasSum {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	prev := int64(0)
	for _, x := range g.entries {
		b = binary.LittleEndian.AppendUint64(b, x.h)
		b = binary.AppendVarint(b, x.t-prev)
		prev = x.t
		d := int64(-1)
		if x.d >= 0 {
			d = int64(remap[x.d])
		}
		b = binary.AppendVarint(b, d)
		if hasSum {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(x.s))
		}
	}
	b = binary.AppendUvarint(b, uint64(len(g.evidence)))
	prev = 0
	for _, x := range g.evidence {
		b = binary.AppendVarint(b, x.t-prev)
		prev = x.t
		b = binary.AppendUvarint(b, x.blob)
	}
	clear(used)
	sc.remap, sc.used = remap[:0], used[:0]
	return b
}

func appendTimeMap(b []byte, m map[string]int64) []byte {
	b = binary.AppendUvarint(b, uint64(len(m)))
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		b = appendStr(b, k)
		b = binary.AppendVarint(b, m[k])
	}
	return b
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b []byte, p []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}

// decodeState reads a Store value written by appendState. Event bytes in
// the result alias v, so the caller passes a copy it owns.
func decodeState(v []byte, s *ruleState) error {
	*s = ruleState{}
	if len(v) < 9 {
		return fmt.Errorf("%w: value of %d bytes", errMalformedState, len(v))
	}
	if v[8] < stateVersionInline || v[8] > stateVersion {
		return fmt.Errorf("%w %d (this build reads %d to %d)", errUnknownStateVersion, v[8], stateVersionInline, stateVersion)
	}
	version := v[8]
	d := &reader{b: v, off: 9, inline: version == stateVersionInline}
	seen := uint16(0)
	for d.off < len(d.b) && d.err == nil {
		tag := d.b[d.off]
		d.off++
		if tag >= 16 || seen&(1<<tag) != 0 {
			return fmt.Errorf("%w: section %d at offset %d", errMalformedState, tag, d.off-1)
		}
		seen |= 1 << tag
		switch tag {
		case tagSeq, tagSeqH:
			if seen&(1<<tagSeq) != 0 && seen&(1<<tagSeqH) != 0 {
				return fmt.Errorf("%w: both sequence sections", errMalformedState)
			}
			n := d.count(4)
			s.seq = make([]seqEntry, n)
			prev := int64(0)
			for i := range s.seq {
				x := &s.seq[i]
				if tag == tagSeqH {
					x.h = d.fixed64()
				} else { // up to version 5: the id itself
					x.h = idHash(string(d.bytes()))
				}
				x.t = prev + d.varint()
				prev = x.t
				x.mask = d.uvarint()
				x.until = d.byte() != 0
				x.n = d.uvarint()
				if version >= stateVersionLog {
					if x.blob = d.uvarint(); x.blob == 0 {
						if x.at = d.logRef(); x.at.chunk == 0 {
							d.fail("sequence event in no blob and no chunk")
						}
					}
				} else {
					x.blob, x.ev = d.event()
				}
			}
		case tagN:
			s.n = d.uvarint()
		case tagBlobs:
			s.nb = d.uvarint()
		case tagFired:
			n := d.count(9)
			s.fired = make([]firedID, n)
			for i := range s.fired {
				s.fired[i].h = d.fixed64()
				s.fired[i].first = d.varint()
			}
			// Earlier builds wrote them in the order they fired.
			if !slices.IsSortedFunc(s.fired, cmpFired) {
				slices.SortFunc(s.fired, cmpFired)
			}
		case tagGroups, tagGroupsH:
			if seen&(1<<tagGroups) != 0 && seen&(1<<tagGroupsH) != 0 {
				return fmt.Errorf("%w: both group sections", errMalformedState)
			}
			n := d.count(5)
			s.groups = make(map[string]*thGroup, n)
			for i := 0; i < n && d.err == nil; i++ {
				k := d.str()
				s.groups[k] = d.group(tag == tagGroupsH)
			}
		case tagAnchors:
			n := d.count(4)
			s.anchors = make([]absAnchor, n)
			for i := range s.anchors {
				a := &s.anchors[i]
				a.id = d.str()
				a.t = d.varint()
				a.deadline = a.t + d.varint()
				a.blob, a.ev = d.event()
			}
		case tagExpects:
			n := d.count(1)
			s.expects = make([]int64, n)
			for i := range s.expects {
				s.expects[i] = d.varint()
			}
		case tagTerms:
			s.terms = d.timeMap()
		case tagFirst:
			s.first = d.varint()
		case tagSupp:
			s.supp = d.timeMap()
		case tagOrphans, tagOrphansLog:
			s.orphans = d.orphans(tag == tagOrphansLog)
		default:
			return fmt.Errorf("%w: unknown section %d", errMalformedState, tag)
		}
	}
	if d.err != nil {
		return d.err
	}
	if d.inline { // number the inline events; they become blobs when saved
		s.eachEvent(func(blob *uint64, _ *[]byte) { *blob = s.nextBlob() })
	}
	return nil
}

// eachEvent calls fn for every buffered event of s held as a blob: its
// number and its encoding (nil when only the number was read from the
// Store). Sequence events in the orphan log are not blobs.
func (s *ruleState) eachEvent(fn func(blob *uint64, ev *[]byte)) {
	for i := range s.seq {
		if s.seq[i].at.chunk == 0 { // else in the orphan log, counted by no one
			fn(&s.seq[i].blob, &s.seq[i].ev)
		}
	}
	for i := range s.anchors {
		fn(&s.anchors[i].blob, &s.anchors[i].ev)
	}
	for _, g := range s.groups {
		for i := range g.evidence {
			fn(&g.evidence[i].blob, &g.evidence[i].ev)
		}
	}
	for i := range s.orphans {
		if s.orphans[i].blob != 0 { // a version 7 buffer's (loadOrphanLog releases them); else in the log
			var ev []byte
			fn(&s.orphans[i].blob, &ev)
		}
	}
}

var errMalformedState = errors.New("malformed state")

// reader decodes with a sticky error: after the first problem every read
// returns zero values and d.err says what went wrong.
type reader struct {
	b      []byte
	off    int
	err    error
	inline bool // a version 2 value: events inline, no blob numbers
}

// event reads a buffered event: its blob number, or (version 2) its bytes.
func (d *reader) event() (blob uint64, ev []byte) {
	if d.inline {
		return 0, d.bytes()
	}
	return d.uvarint(), nil
}

// orphans reads what appendOrphans wrote (log false: a version 7
// section, every orphan's event a blob).
func (d *reader) orphans(log bool) []orphan {
	out := make([]orphan, d.count(11))
	prev := int64(0)
	for i := range out {
		o := &out[i]
		o.h = d.fixed64()
		o.t = prev + d.varint()
		prev = o.t
		o.blob = d.uvarint()
		if o.blob == 0 && log {
			o.at = d.logRef()
		}
		o.owners = make([]owner, d.count(9))
		for j := range o.owners {
			o.owners[j] = owner{rule: d.fixed64(), mask: d.uvarint()}
		}
	}
	return out
}

func (d *reader) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s at offset %d", errMalformedState, what, d.off)
	}
	d.off = len(d.b)
}

func (d *reader) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.off += n
	return v
}

func (d *reader) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.off += n
	return v
}

func (d *reader) byte() byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.b) {
		d.fail("truncated")
		return 0
	}
	c := d.b[d.off]
	d.off++
	return c
}

// count reads a list length, refusing one that cannot fit in the rest of
// the value (each element takes at least min bytes), so a corrupt value
// cannot make the decoder allocate gigabytes.
func (d *reader) count(min int) int {
	n := d.uvarint()
	if d.err != nil {
		return 0
	}
	if n > uint64((len(d.b)-d.off)/min) {
		d.fail("count larger than the value")
		return 0
	}
	return int(n)
}

func (d *reader) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)-d.off) {
		d.fail("truncated bytes")
		return nil
	}
	p := d.b[d.off : d.off+int(n) : d.off+int(n)]
	d.off += int(n)
	return p
}

func (d *reader) fixed64() uint64 {
	if d.err != nil {
		return 0
	}
	if d.off+8 > len(d.b) {
		d.fail("truncated")
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b[d.off:])
	d.off += 8
	return v
}

func (d *reader) str() string { return string(d.bytes()) }

func (d *reader) timeMap() map[string]int64 {
	n := d.count(2)
	m := make(map[string]int64, n)
	for i := 0; i < n && d.err == nil; i++ {
		k := d.str()
		m[k] = d.varint()
	}
	return m
}

// group reads a threshold group; hashed says its entries hold id hashes
// (tagGroupsH) rather than ids (tagGroups, hashed here).
func (d *reader) group(hashed bool) *thGroup {
	g := &thGroup{suppUntil: d.varint()}
	if n := d.count(1); n > 0 {
		g.fired = make([]int64, n)
		for i := range g.fired {
			g.fired[i] = d.varint()
		}
	}
	if n := d.count(1); n > 0 {
		g.vals = make([]string, n)
		for i := range g.vals {
			g.vals[i] = d.str()
		}
	}
	n := d.count(3)
	hasSum := d.byte() != 0
	g.entries = make([]thEntry, n)
	prev := int64(0)
	for i := range g.entries {
		x := &g.entries[i]
		if hashed {
			x.h = d.fixed64()
		} else {
			x.h = idHash(string(d.bytes()))
		}
		x.t = prev + d.varint()
		prev = x.t
		dv := d.varint()
		if dv < -1 || dv >= int64(len(g.vals)) {
			d.fail("distinct value index out of range")
			return g
		}
		x.d = int32(dv)
		if hasSum {
			if d.off+8 > len(d.b) {
				d.fail("truncated sum")
				return g
			}
			x.s = math.Float64frombits(binary.LittleEndian.Uint64(d.b[d.off:]))
			d.off += 8
		}
	}
	if n := d.count(2); n > 0 {
		g.evidence = make([]thEvidence, n)
		prev = 0
		for i := range g.evidence {
			g.evidence[i].t = prev + d.varint()
			prev = g.evidence[i].t
			g.evidence[i].blob, g.evidence[i].ev = d.event()
		}
	}
	return g
}

// decodeEvent decodes a buffered event for an alert. A buffer that does
// not decode (it cannot happen short of a corrupt Store) yields an event
// holding just the id and time, so the alert still names it.
func decodeEvent(b []byte, id string, t int64) event.Event {
	var ev event.Event
	if err := event.Unmarshal(b, &ev); err != nil {
		return event.Event{ID: id, Time: fromNanos(t)}
	}
	return ev
}
