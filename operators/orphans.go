package operators

import (
	"sort"

	"github.com/vigil-sec/vigil/pipeline/event"
	"github.com/vigil-sec/vigil/rules"
)

// Orphan buffers
//
// An ordered sequence keeps an event that matches only a later step even
// when nothing before it is buffered: within the allowed lateness the
// first step may still arrive with an earlier time — the common case for
// a chain whose first step is another rule's alert, which comes back
// through the alerts topic after the events that follow it. On production
// traffic that is every successful sign-in, kept by each of the five
// identity chains that end in one: five state values written when it
// arrives and five deleted when the watermark passes it, a third of all
// the state writes a Flush made (and as many changelog records).
//
// So while a sequence buffers nothing for a key, such an event goes to the
// key's orphan buffer instead: one per keyspace and key, the state of a
// pseudo-rule of the keyspace, holding each orphan once with its owners —
// the sequences (by a hash of id@version) that want it and the steps it
// matches for each. When something enters the sequence's own buffer for
// the key (a first step, an until), its orphans move there, each as the
// entry it would have been, before the replay; an orphan the watermark
// passes is forgotten, as the sequence forgets a later step with nothing
// before it.
// What a sequence replays is then what it replayed with the orphans in its
// own buffer (TestOrphanBufferMatchesOwnBuffers).
//
// The buffers are not Store values like other states: they stay in memory
// (a lateness of orphans, without their events) and what a batch did to
// them goes to the orphan log with the orphans' events (orphanlog.go). An
// orphan's event becomes a blob only when a sequence adopts it.

// orphanRulePrefix starts the id of a keyspace's orphan rule; a rule id
// cannot begin with '~' (rules.idPattern).
const orphanRulePrefix = "~orphans."

// orphan is an event held for the sequences that own it.
type orphan struct {
	h  uint64 // idHash of its id
	t  int64
	at logRef // where its event is in the orphan log (orphanlog.go)
	// blob is its event's blob in the buffers of state version 7, read
	// only to release it (loadOrphanLog); 0 in the log.
	blob   uint64
	owners []owner
}

// owner is a sequence an orphan is held for: the idHash of its rule's
// id@version (eight bytes where the text is ~50: a sign-in is held for
// five sequences) and the steps the event matches in it.
type owner struct {
	rule uint64
	mask uint64
}

// orphanRule returns the pseudo-rule whose states are the orphan buffers
// of keyspace ks: no steps, no dispatch, nothing kept past the watermark.
func orphanRule(ks event.Keyspace) *crule {
	r := &rules.Rule{ID: orphanRulePrefix + string(ks), Version: "1", Keyspace: ks, Kind: rules.KindSequence}
	return &crule{Rule: r, prefix: "s/" + r.ID + "@" + r.Version + "/", states: map[string]*entry{}, pseudo: true}
}

// addOrphan holds ev for r in the orphan buffer of (ks, key): r buffers
// nothing for the key, and ev is no first step of it and no until (the
// caller, apply, checks).
func (e *Engine) addOrphan(r *crule, ks event.Keyspace, key string, ev *event.Event, mask uint64) error {
	ent, err := e.orphansOf(ks, key)
	if err != nil {
		return err
	}
	rs := &ent.rs
	e.forgetOrphans(rs)
	t, h := nanos(ev.Time), idHash(ev.ID)
	i := sort.Search(len(rs.orphans), func(i int) bool { return rs.orphans[i].t > t })
	var o *orphan
	for j := i - 1; j >= 0 && rs.orphans[j].t == t; j-- {
		if rs.orphans[j].h == h && ev.ID != "" {
			o = &rs.orphans[j]
			break
		}
	}
	if o == nil {
		at := e.logEvent(ev, t) // once per Process
		rs.orphans = append(rs.orphans, orphan{})
		copy(rs.orphans[i+1:], rs.orphans[i:])
		// No copy of the event in memory: until the Flush it is in the
		// pending chunk, then in the Store (loggedEvent).
		rs.orphans[i] = orphan{h: h, t: t, at: at}
		o = &rs.orphans[i]
	}
	if o.owner(r.ref) >= 0 {
		return nil // a re-delivery
	}
	o.owners = append(o.owners, owner{rule: r.ref, mask: mask})
	trimOrphans(rs, r)
	e.touch(ent)
	return nil
}

// orphansOf returns the orphan buffer of (ks, key), from the lookup of
// the current event's previous rule when it asked for the same: a sign-in
// is an orphan of five sequences.
func (e *Engine) orphansOf(ks event.Keyspace, key string) (*entry, error) {
	if o := e.lastOrphans; o != nil && o.r == e.orphanRules[ks] && o.key == key {
		return o, nil
	}
	ent, err := e.load(e.orphanRules[ks], key)
	if err != nil {
		return nil, err
	}
	e.lastOrphans = ent
	return ent, nil
}

// forgetOrphans drops what the watermark passed: no first step can come
// before it any more.
func (e *Engine) forgetOrphans(rs *ruleState) {
	i := 0
	for i < len(rs.orphans) && rs.orphans[i].t < e.wmN {
		i++
	}
	if i > 0 {
		clear(rs.orphans[:i])
		rs.orphans = append(rs.orphans[:0], rs.orphans[i:]...)
	}
}

// trimOrphans keeps r's orphans within trimSeq's bound: per step, the
// newest perStepKeep.
func trimOrphans(rs *ruleState, r *crule) {
	if len(rs.orphans) <= perStepKeep {
		return // no step of r can have more
	}
	var counts [34]int
	for i := len(rs.orphans) - 1; i >= 0; i-- {
		o := &rs.orphans[i]
		k := o.owner(r.ref)
		if k < 0 {
			continue
		}
		keep := false
		for b := 0; b < len(r.Steps); b++ {
			if o.owners[k].mask&(1<<b) != 0 && counts[b] < perStepKeep {
				counts[b]++
				keep = true
			}
		}
		if !keep {
			o.disown(k)
		}
	}
	rs.dropUnowned()
}

// owner returns the index of ref among o's owners, or -1.
func (o *orphan) owner(ref uint64) int {
	for k, w := range o.owners {
		if w.rule == ref {
			return k
		}
	}
	return -1
}

// disown removes o's owner k.
func (o *orphan) disown(k int) {
	o.owners = append(o.owners[:k], o.owners[k+1:]...)
}

// dropUnowned forgets the orphans no sequence holds any more.
func (rs *ruleState) dropUnowned() {
	keep := rs.orphans[:0]
	for _, o := range rs.orphans {
		if len(o.owners) > 0 {
			keep = append(keep, o)
		}
	}
	clear(rs.orphans[len(keep):])
	rs.orphans = keep
}

// adoptOrphans moves r's orphans of (ks, key) into rs, r's buffer for the
// key, which is empty: each becomes the entry it would have been had it
// entered rs on arrival — the same time, steps and event; its arrival
// number is handed out now, in time order, which keeps what the numbers
// are for (a match's hash, unique per key and the same on a replay).
func (e *Engine) adoptOrphans(r *crule, ks event.Keyspace, key string, rs *ruleState) error {
	ent, err := e.orphansOf(ks, key)
	if err != nil {
		return err
	}
	ors := &ent.rs
	if len(ors.orphans) == 0 {
		return nil
	}
	e.forgetOrphans(ors)
	changed := false
	for i := range ors.orphans {
		o := &ors.orphans[i]
		if k := o.owner(r.ref); k >= 0 {
			blob, ev, err := e.adoptedBlob(o)
			if err != nil {
				return err
			}
			rs.n++
			rs.seq = append(rs.seq, seqEntry{h: o.h, t: o.t, mask: o.owners[k].mask, n: rs.n, blob: blob, ev: ev})
			o.disown(k)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	e.adopted++
	ors.dropUnowned()
	e.touch(ent)
	return nil
}

// disownOrphans takes a removed or changed rule's claim off every orphan
// of its keyspace, as drop takes its state: put back with the same
// version, it must not adopt what it held before.
func (e *Engine) disownOrphans(r *crule) {
	pr := e.orphanRules[r.Keyspace]
	if pr == nil {
		return
	}
	for _, ent := range pr.states {
		changed := false
		for i := range ent.rs.orphans {
			o := &ent.rs.orphans[i]
			if k := o.owner(r.ref); k >= 0 {
				o.disown(k)
				changed = true
			}
		}
		if changed {
			ent.rs.dropUnowned()
			e.touch(ent)
		}
	}
}
