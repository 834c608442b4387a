package operators

import (
	"cmp"
	"slices"
	"sort"

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
// and not emitted again. Buffered events are kept encoded and decoded only
// for an alert.
func (e *Engine) sequence(ent *entry, ks event.Keyspace, key string, ev *event.Event, mask uint64, until bool) []alert.Alert {
	r, rs := ent.r, &ent.rs
	t := nanos(ev.Time)
	i := sort.Search(len(rs.seq), func(i int) bool { return rs.seq[i].t > t })
	h := idHash(ev.ID)
	if ev.ID != "" {
		for j := i - 1; j >= 0 && rs.seq[j].t == t; j-- {
			if rs.seq[j].h == h {
				return nil // re-delivery of an event already in the buffer
			}
		}
	}
	rs.n++
	x := seqEntry{h: h, t: t, mask: mask, until: until, n: rs.n}
	if r.logs && !e.noLog {
		x.at = e.logEvent(ev, t+int64(r.MaxSpan))
	} else {
		x.blob, x.ev = e.encode(ev)
	}
	rs.seq = append(rs.seq, seqEntry{})
	copy(rs.seq[i+1:], rs.seq[i:])
	rs.seq[i] = x
	e.touch(ent)

	// Forget what no future event (time >= watermark) can complete.
	horizon := e.wmN - int64(r.MaxSpan)
	keep := rs.seq[:0]
	var chain uint64 // bit j: old entries so far can form steps 0..j in order
	for _, s := range rs.seq {
		if s.t < horizon {
			continue
		}
		if !r.Unordered && s.t < e.wmN && !s.until {
			// An old entry (before the watermark: every future event comes
			// after it) that can be no step of an ordered chain of old
			// entries — a later step with nothing before it — is one the
			// state machine ignores now and forever: a successful sign-in
			// waiting for failures that can no longer arrive before it.
			can := s.mask & (1 | chain<<1)
			chain |= can
			if can == 0 {
				continue
			}
		}
		keep = append(keep, s)
	}
	clear(rs.seq[len(keep):])
	rs.seq = trimSeq(keep, len(r.Steps))
	rs.forgetFired(horizon)

	// A match takes an entry for every step: without one for some step
	// (a successful sign-in that no failure preceded) there is nothing
	// to replay.
	var have uint64
	for _, s := range rs.seq {
		have |= s.mask
	}
	if all := uint64(1)<<len(r.Steps) - 1; have&all != all {
		return nil
	}
	var matches [][]int
	if r.Unordered {
		matches = replayUnordered(rs.seq, len(r.Steps), int64(r.MaxSpan))
	} else {
		matches = replayOrdered(rs.seq, len(r.Steps), int64(r.MaxSpan))
	}
	var out []alert.Alert
	for _, m := range matches {
		first, last := rs.seq[m[0]].t, rs.seq[m[0]].t
		for _, k := range m {
			s := &rs.seq[k]
			first, last = min(first, s.t), max(last, s.t)
		}
		if !rs.markFired(firedID{h: matchHash(rs.seq, m), first: first}) {
			continue
		}
		steps := make([][]event.Event, len(m))
		for j, k := range m {
			s := &rs.seq[k]
			steps[j] = []event.Event{e.seqEvent(s)}
		}
		// The id hashes the steps' event ids, read from their events.
		out = append(out, e.buildAlert(r, ks, key, steps, fromNanos(first), fromNanos(last), nil))
	}
	return out
}

// seqEvent returns a buffered step's event, from its blob or the orphan
// log.
func (e *Engine) seqEvent(s *seqEntry) event.Event {
	if s.at.chunk == 0 {
		return e.eventAt(s.blob, s.ev, "", s.t)
	}
	b, err := e.loggedEvent(s.at)
	if err != nil {
		e.stats.EventsMissing++ // as for a blob the Store cannot read
	}
	return decodeEvent(b, "", s.t)
}

// matchHash is FNV-1a over the arrival numbers of a match's entries.
func matchHash(seq []seqEntry, m []int) uint64 {
	h := uint64(14695981039346656037)
	for _, k := range m {
		n := seq[k].n
		for i := 0; i < 8; i++ {
			h ^= n & 0xff
			h *= 1099511628211
			n >>= 8
		}
	}
	return h
}

// markFired records the match f and reports whether it is new. fired is
// kept ordered by (first, h): a replay finds every buffered match again
// on each event, and a key that completes its sequence often (a spray
// target, a busy host) remembers a hundred matches within maxspan — a
// binary search instead of a scan of all of them, and forgetting the
// ones past the horizon drops a prefix.
func (s *ruleState) markFired(f firedID) bool {
	i, found := slices.BinarySearchFunc(s.fired, f, cmpFired)
	if found {
		return false
	}
	s.fired = slices.Insert(s.fired, i, f)
	return true
}

func cmpFired(a, b firedID) int {
	if c := cmp.Compare(a.first, b.first); c != 0 {
		return c
	}
	return cmp.Compare(a.h, b.h)
}

// forgetFired drops the matches whose first event is before horizon.
func (s *ruleState) forgetFired(horizon int64) {
	i := 0
	for i < len(s.fired) && s.fired[i].first < horizon {
		i++
	}
	if i > 0 {
		s.fired = append(s.fired[:0], s.fired[i:]...)
	}
}

// trimSeq keeps, per step, the newest perStepKeep entries (until entries
// count as their own step).
func trimSeq(seq []seqEntry, steps int) []seqEntry {
	var counts [34]int
	var kb [160]bool
	keep := kb[:0]
	if len(seq) <= len(kb) {
		keep = kb[:len(seq)]
	} else {
		keep = make([]bool, len(seq))
	}
	drop := false
	for i := len(seq) - 1; i >= 0; i-- {
		s := &seq[i]
		for b := 0; b < steps; b++ {
			if s.mask&(1<<b) != 0 && counts[b] < perStepKeep {
				counts[b]++
				keep[i] = true
			}
		}
		if s.until && counts[steps] < perStepKeep {
			counts[steps]++
			keep[i] = true
		}
		if !keep[i] {
			drop = true
		}
	}
	if !drop {
		return seq
	}
	out := seq[:0]
	for i, s := range seq {
		if keep[i] {
			out = append(out, s)
		}
	}
	clear(seq[len(out):])
	return out
}

// replayOrdered runs the EQL state machine over seq (event-time order) and
// returns the completed matches as indices into seq, in step order:
// pending[i] is the one partial match that completed steps 0..i, the
// newest replacing the older; an event advances pending[i-1] to step i if
// it lies within maxspan of the partial's first event; until kills every
// pending partial. Steps are tried from last to first so one event never
// advances the same partial twice.
func replayOrdered(seq []seqEntry, n int, maxspan int64) [][]int {
	// pending[i][:i+1] holds the partial that completed step i; plen[i] is
	// 0 when there is none. Fixed arrays: steps are at most 32.
	var pending [32][32]int
	var plen [32]int
	var out [][]int
	for k := range seq {
		s := &seq[k]
		if s.until {
			plen = [32]int{}
		}
		for i := n - 1; i >= 0; i-- {
			if s.mask&(1<<i) == 0 {
				continue
			}
			if i == 0 {
				if n == 1 {
					out = append(out, []int{k})
					continue
				}
				pending[0][0], plen[0] = k, 1
				continue
			}
			if plen[i-1] == 0 {
				continue
			}
			plen[i-1] = 0
			p := pending[i-1][:i]
			if s.t-seq[p[0]].t > maxspan {
				continue
			}
			if i == n-1 {
				m := make([]int, 0, n)
				out = append(out, append(append(m, p...), k))
			} else {
				copy(pending[i][:i], p)
				pending[i][i], plen[i] = k, i+1
			}
		}
	}
	return out
}

// replayUnordered fills one slot per step with the newest event for it;
// when every slot is filled within maxspan the match completes. Matches
// are indices into seq, in step order.
func replayUnordered(seq []seqEntry, n int, maxspan int64) [][]int {
	var slots [32]int // index+1 into seq, 0 = empty
	var out [][]int
	for k := range seq {
		s := &seq[k]
		if s.until {
			slots = [32]int{}
		}
		if s.mask == 0 {
			continue
		}
		for i := 0; i < n; i++ {
			if slots[i] != 0 && s.t-seq[slots[i]-1].t > maxspan {
				slots[i] = 0
			}
		}
		// The event takes an empty slot it can fill, else replaces the
		// oldest event among the steps it matches.
		target := -1
		for i := 0; i < n; i++ {
			if s.mask&(1<<i) == 0 {
				continue
			}
			if slots[i] == 0 {
				target = i
				break
			}
			if target < 0 || seq[slots[i]-1].t < seq[slots[target]-1].t {
				target = i
			}
		}
		slots[target] = k + 1
		full := true
		for i := 0; i < n; i++ {
			if slots[i] == 0 {
				full = false
				break
			}
		}
		if full {
			m := make([]int, n)
			for i := 0; i < n; i++ {
				m[i] = slots[i] - 1
				slots[i] = 0
			}
			out = append(out, m)
		}
	}
	return out
}
