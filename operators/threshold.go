package operators

import (
	"sort"
	"strconv"
	"strings"

	"github.com/vigil-sec/vigil/pipeline/alert"
	"github.com/vigil-sec/vigil/pipeline/event"
	"github.com/vigil-sec/vigil/rules"
)

// maxThresholdEntries bounds a group's buffer; the oldest go first.
const maxThresholdEntries = 10000

// threshold adds ev to its group and fires when some window satisfies
// having. Sliding windows (default) are checked for every window that can
// contain ev — those ending at an event in [ev.Time, ev.Time+window] —
// so arrival order does not matter. A group that fires is cleared and
// suppressed for one window after the end of the firing window.
//
// The group keeps, per event, only its id hash, time, distinct value
// (interned in the group's dictionary) and sum term — a distinct-only
// threshold not even that for events whose value a newer one repeats
// (forgetRepeats); the events themselves only for the newest
// Options.ThresholdEvidence that can be a firing window's, which the
// alert carries.
func (e *Engine) threshold(ent *entry, ks event.Keyspace, key string, ev *event.Event) []alert.Alert {
	r, rs := ent.r, &ent.rs
	th := r.Threshold
	env := &e.env // the current event
	gk := ""
	if len(th.GroupBy) > 0 {
		gparts := make([]string, 0, len(th.GroupBy))
		for _, g := range th.GroupBy {
			vals := e.values(env, g)
			if len(vals) == 0 && !th.MissingEmpty {
				return nil
			}
			gparts = append(gparts, strings.Join(vals, ","))
		}
		gk = strings.Join(gparts, "\x1f")
	}
	t := nanos(ev.Time)
	if rs.groups == nil {
		rs.groups = map[string]*thGroup{}
	}
	g := rs.groups[gk]
	if g == nil {
		g = &thGroup{}
		rs.groups[gk] = g
	}
	W := int64(r.Window)
	if !th.Tumbling && t < g.suppUntil {
		return nil // nothing changes: a group that fired is quiet for a window
	}
	e.touch(ent)
	i := sort.Search(len(g.entries), func(i int) bool { return g.entries[i].t > t })
	h := idHash(ev.ID)
	if ev.ID != "" {
		for j := i - 1; j >= 0 && g.entries[j].t == t; j-- {
			if g.entries[j].h == h {
				return nil // re-delivery
			}
		}
	}
	en := thEntry{t: t, d: -1, h: h}
	if th.Distinct != nil {
		if v := e.value(env, th.Distinct); v != "" {
			en.d = g.intern(v)
		}
	}
	if th.Sum != nil {
		en.s = e.number(env, th.Sum)
	}
	g.entries = append(g.entries, thEntry{})
	copy(g.entries[i+1:], g.entries[i:])
	g.entries[i] = en
	inOrder := i == len(g.entries)-1 && !th.Tumbling && th.Sum == nil && !e.recount
	if inOrder {
		g.slide(W)
	} else {
		g.agg = nil
	}
	if n := e.opts.ThresholdEvidence; g.agg == nil || canBeEvidence(th, len(g.entries)-g.agg.lo, g.agg.distinct, n) {
		g.addEvidence(e, rs, ev, t, n)
	}

	// Forget entries no window with a future event can reach.
	horizon := e.wmN - W
	j := 0
	for j < len(g.entries) && g.entries[j].t < horizon {
		j++
	}
	if n := len(g.entries) - j; n > maxThresholdEntries {
		j = len(g.entries) - maxThresholdEntries
	}
	if j > 0 {
		if a := g.agg; a != nil {
			for ; a.lo < j; a.lo++ { // dropped from inside the window (the entry cap)
				a.remove(g.entries[a.lo].d)
			}
			a.lo -= j
		}
		g.entries = append(g.entries[:0], g.entries[j:]...)
		i = max(i-j, 0) // ev's entry moved with the others
		k := 0
		for k < len(g.evidence) && g.evidence[k].t < horizon {
			k++
		}
		g.evidence = append(g.evidence[:0], g.evidence[k:]...)
		if len(g.vals) > 2*len(g.entries)+16 {
			g.compactVals()
		}
	}
	if th.DistinctOnly && !th.Tumbling && !e.keepRepeats && len(g.entries) > 2*g.kept+32 {
		if n := g.forgetRepeats(e.wmN); n > 0 {
			i -= n // only entries before ev (older than the watermark) went
			if inOrder {
				g.slide(W)
			}
		}
	}

	if th.Tumbling {
		b := floorDiv(t, W)
		for _, f := range g.fired {
			if f == b {
				return nil
			}
		}
		lo := sort.Search(len(g.entries), func(i int) bool { return g.entries[i].t >= b*W })
		hi := sort.Search(len(g.entries), func(i int) bool { return g.entries[i].t >= (b+1)*W })
		win := g.entries[lo:hi]
		if !e.having(th, g, win) {
			return nil
		}
		g.fired = append(g.fired, b)
		// Drop fired buckets no future event can reach.
		keep := g.fired[:0]
		for _, f := range g.fired {
			if (f+1)*W >= horizon {
				keep = append(keep, f)
			}
		}
		g.fired = keep
		a := e.thresholdAlert(r, ks, key, g, win, b*W)
		g.entries = append(g.entries[:lo], g.entries[hi:]...)
		g.dropEvidence(b*W, (b+1)*W-1)
		return []alert.Alert{a}
	}

	if inOrder && g.agg != nil {
		// The only window ev can complete is the one ending at ev.
		win := g.entries[g.agg.lo:]
		if !e.havingCounts(th, len(win), g.agg.distinct, 0) {
			return nil
		}
		return e.fireSliding(r, ks, key, g, win, t)
	}
	for k := i; k < len(g.entries); k++ {
		end := g.entries[k].t
		if end-t > W {
			break
		}
		// Equal times after k belong to the same window end.
		hi := k + 1
		for hi < len(g.entries) && g.entries[hi].t == end {
			hi++
		}
		lo := sort.Search(len(g.entries), func(i int) bool { return g.entries[i].t >= end-W })
		win := g.entries[lo:hi]
		if !e.having(th, g, win) {
			k = hi - 1
			continue
		}
		return e.fireSliding(r, ks, key, g, win, end)
	}
	return nil
}

// fireSliding builds the alert of a sliding window win ending at end,
// empties the group and suppresses it for one window after end.
func (e *Engine) fireSliding(r *crule, ks event.Keyspace, key string, g *thGroup, win []thEntry, end int64) []alert.Alert {
	a := e.thresholdAlert(r, ks, key, g, win, win[0].t)
	g.reset()
	g.suppUntil = end + int64(r.Window)
	return []alert.Alert{a}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && (a < 0) {
		q--
	}
	return q
}

// reset empties a group that fired.
func (g *thGroup) reset() {
	g.entries, g.vals, g.evidence = nil, nil, nil
	g.index, g.agg, g.kept = nil, nil, 0
}

// slide moves the aggregates to the window ending at the newest entry,
// just appended in time order, building them if they are missing.
func (g *thGroup) slide(W int64) {
	n := len(g.entries)
	t := g.entries[n-1].t
	a := g.agg
	if a == nil {
		a = &thAgg{lo: n - 1}
		g.agg = a
		for a.lo > 0 && g.entries[a.lo-1].t >= t-W {
			a.lo--
		}
		for k := a.lo; k < n-1; k++ {
			a.add(g.entries[k].d, len(g.vals))
		}
	}
	a.add(g.entries[n-1].d, len(g.vals))
	for g.entries[a.lo].t < t-W {
		a.remove(g.entries[a.lo].d)
		a.lo++
	}
}

func (a *thAgg) remove(d int32) {
	if d < 0 {
		return
	}
	a.counts[d]--
	if a.counts[d] == 0 {
		a.distinct--
	}
}

func (a *thAgg) add(d int32, nvals int) {
	if d < 0 {
		return
	}
	if len(a.counts) < nvals {
		a.counts = append(a.counts, make([]int32, nvals-len(a.counts))...)
	}
	a.counts[d]++
	if a.counts[d] == 1 {
		a.distinct++
	}
}

// intern returns the dictionary index of v.
func (g *thGroup) intern(v string) int32 {
	if g.index == nil {
		g.index = make(map[string]int32, len(g.vals)+1)
		for i, x := range g.vals {
			g.index[x] = int32(i)
		}
	}
	if i, ok := g.index[v]; ok {
		return i
	}
	g.vals = append(g.vals, v)
	g.index[v] = int32(len(g.vals) - 1)
	return int32(len(g.vals) - 1)
}

// idHash is FNV-1a (64 bits) of an event id: what a threshold keeps of
// the id, for re-delivery and for the alert id. Stable across processes
// and releases — alert ids depend on it.
func idHash(id string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= 1099511628211
	}
	return h
}

// idHashes are the strings a threshold alert's id hashes: one per event of
// the window, the hex of its id hash.
func idHashes(win []thEntry) []string {
	ids := make([]string, len(win))
	for i := range win {
		ids[i] = strconv.FormatUint(win[i].h, 16)
	}
	return ids
}

// forgetRepeats drops the entries of a distinct-only threshold that no
// window still to be checked needs, and returns how many went: an entry
// older than the watermark whose value a newer entry also older than the
// watermark repeats. Every window still to be checked ends at or after
// the watermark (no event comes before it), so one that holds the older
// entry holds the newer one too, and the value counts once either way. A
// host that talks to a handful of servers all day then keeps about one
// entry per server plus the events of the allowed lateness, instead of
// every connection of the window. The alert id hashes the ids of the
// entries kept.
func (g *thGroup) forgetRepeats(wm int64) int {
	newest := make([]int, len(g.vals)+1) // per value (d+1): index+1 of its newest entry before wm
	for k := range g.entries {
		if g.entries[k].t >= wm {
			break
		}
		newest[g.entries[k].d+1] = k + 1
	}
	keep := g.entries[:0]
	for k, x := range g.entries {
		if x.t >= wm || newest[x.d+1] == k+1 {
			keep = append(keep, x)
		}
	}
	n := len(g.entries) - len(keep)
	g.entries, g.kept = keep, len(keep)
	if n > 0 {
		g.agg = nil
	}
	return n
}

// compactVals drops dictionary values no entry uses.
func (g *thGroup) compactVals() {
	g.index, g.agg = nil, nil
	remap := make([]int32, len(g.vals))
	for i := range remap {
		remap[i] = -1
	}
	var vals []string
	for k := range g.entries {
		d := g.entries[k].d
		if d < 0 {
			continue
		}
		if remap[d] < 0 {
			remap[d] = int32(len(vals))
			vals = append(vals, g.vals[d])
		}
		g.entries[k].d = remap[d]
	}
	g.vals = vals
}

// canBeEvidence reports whether an event that arrived in time order, after
// which the window ending at it holds count events and distinct values,
// can be among the newest n events of a window that fires. Each event adds
// at most one to either, and leaving the window only lowers them, so the
// newest n events before a firing all saw count > MinCount-n and
// distinct > MinDistinct-n. A port scan rule (distinct >= 50) then keeps
// no evidence for the hosts that talk to a handful of servers — most of
// them — instead of encoding and storing every connection of theirs.
// Events out of order keep evidence as before (newest n by time).
func canBeEvidence(th *rules.Threshold, count, distinct, n int) bool {
	return count > th.MinCount-n && distinct > th.MinDistinct-n
}

// addEvidence keeps ev among the newest n matched events of the group,
// encoding it only if it is kept.
func (g *thGroup) addEvidence(e *Engine, rs *ruleState, ev *event.Event, t int64, n int) {
	if len(g.evidence) >= n && t < g.evidence[0].t {
		return
	}
	blob, b := e.encode(ev)
	i := sort.Search(len(g.evidence), func(i int) bool { return g.evidence[i].t > t })
	g.evidence = append(g.evidence, thEvidence{})
	copy(g.evidence[i+1:], g.evidence[i:])
	g.evidence[i] = thEvidence{t: t, blob: blob, ev: b}
	if len(g.evidence) > n {
		g.evidence = append(g.evidence[:0], g.evidence[len(g.evidence)-n:]...)
	}
}

// dropEvidence removes evidence with from <= t <= to.
func (g *thGroup) dropEvidence(from, to int64) {
	keep := g.evidence[:0]
	for _, x := range g.evidence {
		if x.t < from || x.t > to {
			keep = append(keep, x)
		}
	}
	clear(g.evidence[len(keep):])
	g.evidence = keep
}

func (e *Engine) having(th *rules.Threshold, g *thGroup, win []thEntry) bool {
	if len(win) == 0 {
		return false
	}
	distinct := 0
	if th.Distinct != nil {
		if len(e.marks) < len(g.vals) {
			e.marks = make([]uint32, len(g.vals)*2)
			e.epoch = 0
		}
		e.epoch++
		if e.epoch == 0 {
			clear(e.marks)
			e.epoch = 1
		}
		for _, x := range win {
			if x.d >= 0 && e.marks[x.d] != e.epoch {
				e.marks[x.d] = e.epoch
				distinct++
			}
		}
	}
	sum := 0.0
	if th.Sum != nil {
		for _, x := range win {
			sum += x.s
		}
	}
	return e.havingCounts(th, len(win), distinct, sum)
}

// havingCounts runs the having condition on a window's aggregates.
func (e *Engine) havingCounts(th *rules.Threshold, count, distinct int, sum float64) bool {
	if count == 0 || count < th.MinCount || distinct < th.MinDistinct {
		return false
	}
	e.henv = rules.HavingEnv{Count: count, Distinct: distinct, Sum: sum}
	out, err := e.vm.Run(th.Having, &e.henv)
	if err != nil {
		e.stats.EvalErrors++
		return false
	}
	b, _ := out.(bool)
	return b
}

func (e *Engine) number(env *rules.Env, x *rules.Expr) float64 {
	out, ok := e.run(env, x)
	if !ok {
		return 0
	}
	switch v := out.(type) {
	case int:
		return float64(v)
	case int64:
		return float64(v)
	case float64:
		return v
	case string:
		f, _ := strconv.ParseFloat(v, 64)
		return f
	}
	return 0
}

// thresholdAlert builds the alert of a firing window: the id hashes the id
// of every entry the window holds (all its events, less the repeats a
// distinct-only threshold forgot); the events carried are the group's
// evidence that lies in the window.
func (e *Engine) thresholdAlert(r *crule, ks event.Keyspace, key string, g *thGroup, win []thEntry, first int64) alert.Alert {
	ids := idHashes(win)
	lo, hi := win[0].t, win[len(win)-1].t
	evs := make([]event.Event, 0, len(g.evidence))
	for _, x := range g.evidence {
		if x.t >= lo && x.t <= hi {
			evs = append(evs, e.eventAt(x.blob, x.ev, "", x.t))
		}
	}
	return e.buildAlert(r, ks, key, [][]event.Event{evs}, fromNanos(first), fromNanos(hi), ids)
}
