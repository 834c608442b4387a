package operators

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/pipeline/alert"
	"github.com/vigil-sec/vigil/pipeline/event"
	"github.com/vigil-sec/vigil/rules"
)

func sampleState(t testing.TB) *ruleState {
	ev := event.Event{ID: "e1", Time: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), User: "kim", Raw: []byte(`{"a":1}`)}
	b, err := event.Marshal(&ev)
	if err != nil {
		t.Fatal(err)
	}
	g := &thGroup{suppUntil: 99, fired: []int64{3, 4}, vals: []string{"x", "unused", "y"}}
	for i, id := range []string{"a", "bb", "ccc"} {
		g.entries = append(g.entries, thEntry{t: int64(100 + i), d: int32([]int{0, 2, -1}[i]), s: float64(i) * 1.5, h: idHash(id)})
	}
	g.evidence = []thEvidence{{t: 101, blob: 3, ev: b}}
	return &ruleState{
		nb:      4,
		seq:     []seqEntry{{h: idHash("s1"), t: -5, mask: 3, until: true, n: 7, blob: 1, ev: b}, {h: idHash("s2"), t: 10, n: 8, blob: 2}},
		fired:   []firedID{{h: 0xdeadbeef, first: 4}},
		n:       8,
		groups:  map[string]*thGroup{"": g, "k2": {}},
		anchors: []absAnchor{{id: "a", t: 1, deadline: 50, blob: 4, ev: b}},
		expects: []int64{1, 2},
		terms:   map[string]int64{"de": 1, "fr": 2},
		first:   -1,
		supp:    map[string]int64{"": 9},
	}
}

var stateRule = &rules.Rule{Window: time.Minute, MaxSpan: time.Hour, NewTerm: &rules.NewTerm{Lookback: time.Hour}}

// TestStateRoundTrip: every section survives encode/decode, the encoding
// is deterministic, and unused dictionary values are not written. Events
// are not in the value, only their blob numbers (the engine stores them
// under keys of their own).
func TestStateRoundTrip(t *testing.T) {
	s := sampleState(t)
	enc := appendState(nil, s, stateRule)
	var d ruleState
	if err := decodeState(bytes.Clone(enc), &d); err != nil {
		t.Fatal(err)
	}
	if again := appendState(nil, &d, stateRule); !bytes.Equal(enc, again) {
		t.Fatalf("re-encoding differs:\n%x\n%x", enc, again)
	}
	g := d.groups[""]
	checks := []struct {
		name string
		ok   bool
	}{
		{"seq", len(d.seq) == 2 && d.seq[0].h == idHash("s1") && d.seq[0].t == -5 && d.seq[0].until && d.seq[0].mask == 3 && d.seq[1].n == 8},
		{"seq blob", d.seq[0].blob == 1 && d.seq[1].blob == 2 && d.nb == 4},
		{"events not inline", d.seq[0].ev == nil && g.evidence[0].ev == nil && d.anchors[0].ev == nil && len(enc) < 170},
		{"n", d.n == 8},
		{"fired", len(d.fired) == 1 && d.fired[0].first == 4 && d.fired[0].h == 0xdeadbeef},
		{"groups", len(d.groups) == 2 && g.suppUntil == 99 && len(g.fired) == 2},
		{"entries", len(g.entries) == 3 && g.entries[1].h == idHash("bb") && g.entries[2].t == 102 && g.entries[1].s == 1.5},
		{"dictionary compacted", len(g.vals) == 2 && g.vals[g.entries[1].d] == "y" && g.entries[2].d == -1},
		{"evidence", len(g.evidence) == 1 && g.evidence[0].blob == 3},
		{"anchors", len(d.anchors) == 1 && d.anchors[0].deadline == 50 && d.anchors[0].blob == 4},
		{"expects", len(d.expects) == 2},
		{"terms", d.terms["fr"] == 2},
		{"first", d.first == -1},
		{"supp", d.supp[""] == 9},
		{"expiry prefix", int64(binary.BigEndian.Uint64(enc)) == s.expiry(stateRule)},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s did not survive the round trip", c.name)
		}
	}
}

// TestDecodeInlineVersion: a value of the previous version (events inline,
// written by the last release: testdata/state-v2.bin) still decodes, its
// events numbered as blobs to be written at the next save.
func TestDecodeInlineVersion(t *testing.T) {
	v, err := os.ReadFile("testdata/state-v2.bin")
	if err != nil {
		t.Fatal(err)
	}
	if v[8] != stateVersionInline {
		t.Fatalf("testdata value has version %d", v[8])
	}
	var d ruleState
	if err := decodeState(v, &d); err != nil {
		t.Fatal(err)
	}
	if len(d.seq) != 2 || decodeEvent(d.seq[0].ev, "", 0).User != "kim" {
		t.Fatalf("inline seq events: %+v", d.seq)
	}
	g := d.groups[""]
	if len(g.evidence) != 1 || decodeEvent(g.evidence[0].ev, "", 0).ID != "e1" || decodeEvent(d.anchors[0].ev, "", 0).ID != "e1" {
		t.Fatal("inline evidence or anchor lost")
	}
	if len(g.entries) != 3 || g.entries[0].h != idHash("a") || g.entries[2].h != idHash("ccc") {
		t.Fatalf("threshold entries with whole ids (tagGroups) not read as their hashes: %+v", g.entries)
	}
	blobs := map[uint64]bool{}
	d.eachEvent(func(b *uint64, _ *[]byte) { blobs[*b] = true })
	if len(blobs) != 4 || d.nb != 4 || blobs[0] {
		t.Fatalf("inline events numbered %v, nb %d", blobs, d.nb)
	}
}

func TestDecodeStateRefusesBadValues(t *testing.T) {
	good := appendState(nil, sampleState(t), stateRule)
	cases := []struct {
		name    string
		v       []byte
		unknown bool
	}{
		{"short", good[:5], false},
		{"old JSON state", append(good[:8:8], `{"seq":[]}`...), true},
		{"newer version", append(append(good[:8:8], stateVersion+1), good[9:]...), true},
		{"truncated", good[:len(good)-3], false},
		{"unknown section", append(good[:9:9], 15), false},
		{"repeated section", append(append([]byte(nil), good...), tagN, 1), false},
		{"huge count", append(good[:9:9], tagExpects, 0xff, 0xff, 0xff, 0xff, 0x0f), false},
	}
	for _, tc := range cases {
		var s ruleState
		err := decodeState(tc.v, &s)
		if err == nil {
			t.Errorf("%s: decoded", tc.name)
			continue
		}
		if got := errors.Is(err, errUnknownStateVersion); got != tc.unknown {
			t.Errorf("%s: unknown-version = %v (%v)", tc.name, got, err)
		}
	}
}

// FuzzDecodeState: arbitrary bytes never panic the decoder, and what it
// accepts re-encodes to a fixpoint.
func FuzzDecodeState(f *testing.F) {
	f.Add(appendState(nil, sampleState(f), stateRule))
	f.Add(appendState(nil, &ruleState{n: 1}, stateRule))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, stateVersion, tagGroups, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var s ruleState
		if decodeState(b, &s) != nil {
			return
		}
		enc := appendState(nil, &s, stateRule)
		var s2 ruleState
		if err := decodeState(bytes.Clone(enc), &s2); err != nil {
			t.Fatalf("re-encoded state does not decode: %v", err)
		}
		if enc2 := appendState(nil, &s2, stateRule); !bytes.Equal(enc, enc2) {
			t.Fatalf("not a fixpoint:\n%x\n%x", enc, enc2)
		}
	})
}

// TestUnreadableStateStartsFresh: a value of another state version (the
// JSON of the previous release) is counted and the key starts fresh
// instead of failing the partition.
func TestUnreadableStateStartsFresh(t *testing.T) {
	set := loadRules(t, spray)
	st := NewMemStore()
	key := "s/t.spray@" + set.Rule("t.spray").Version + "/u"
	_ = st.Set([]byte(key), append(make([]byte, 8), `{"groups":{}}`...))
	eng, err := NewEngine(set, st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2025, 5, 1, 9, 0, 0, 0, time.UTC)
	for i := 0; i < 2; i++ {
		ev := event.Event{ID: fmt.Sprint(i), Time: t0.Add(time.Duration(i) * time.Second), Outcome: event.OutcomeFailure, User: "u"}
		as, err := eng.Process(event.KeyUser, "u", &ev)
		if err != nil {
			t.Fatal(err)
		}
		if want := i; len(as) != want {
			t.Fatalf("event %d: %d alerts", i, len(as))
		}
	}
	if eng.Stats().StateDiscarded != 1 {
		t.Fatalf("StateDiscarded = %d", eng.Stats().StateDiscarded)
	}
	if err := eng.Flush(); err != nil {
		t.Fatal(err)
	}
}

// TestThresholdStateIsBounded: a busy threshold key keeps ids and times,
// not events: its stored state stays small, the alert carries the newest
// ThresholdEvidence events, and the alert id hashes every event id of the
// window.
func TestThresholdStateIsBounded(t *testing.T) {
	const n = 40
	rule := "id: t.many\nname: many\n" + hdr + `kind: threshold
by: user
window: 1h
where: Outcome == "failure"
threshold: {distinct: SrcIP, having: 'distinct >= 3 && count >= ` + fmt.Sprint(n) + `'}
`
	set := loadRules(t, rule)
	st := NewMemStore()
	eng, err := NewEngine(set, st, Options{ThresholdEvidence: 8})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2025, 5, 1, 9, 0, 0, 0, time.UTC)
	raw := []byte(`{"ResultDescription":"` + string(bytes.Repeat([]byte("x"), 1000)) + `"}`)
	var ids []string
	var got []alert.Alert
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("event-%02d", i)
		ids = append(ids, id)
		ip := "10.0.0.1"
		if i >= n-2 { // the distinct count reaches 3 only at the end
			ip = fmt.Sprintf("10.0.0.%d", i)
		}
		ev := event.Event{ID: id, Time: t0.Add(time.Duration(i) * time.Second), Outcome: event.OutcomeFailure, User: "u", SrcIP: ip, Raw: raw}
		as, err := eng.Process(event.KeyUser, "u", &ev)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, as...)
		if i == n-2 {
			if err := eng.Flush(); err != nil {
				t.Fatal(err)
			}
			// 39 events of 1 KB raw each; the state holds 8 of them.
			if size := st.Size(); size > 8*1200+39*40 {
				t.Errorf("state of a busy threshold key is %d bytes", size)
			}
		}
	}
	if len(got) != 1 {
		t.Fatalf("%d alerts", len(got))
	}
	a := got[0]
	evs := a.EventIDs()
	if len(evs) != 8 || evs[0] != "event-32" || evs[7] != "event-39" {
		t.Errorf("alert events = %v, want the newest 8", evs)
	}
	hashed := make([]string, len(ids))
	for i, id := range ids {
		hashed[i] = fmt.Sprintf("%x", idHash(id))
	}
	if want := alert.MakeID("t.many", a.RuleVersion, event.KeyUser, "u", hashed); a.ID != want {
		t.Errorf("alert id does not hash every event of the window")
	}
	if a.FirstTime != t0 || len(a.Steps[0].Events[0].Raw) != len(raw) {
		t.Errorf("first time %v, evidence raw %d bytes", a.FirstTime, len(a.Steps[0].Events[0].Raw))
	}
}

// TestThresholdEntriesKeepNoIDs: a threshold group keeps a fixed-size
// hash per event, not its id, so a busy key costs the same with 90-byte
// Defender ids as with short ones, and a re-delivered event is still
// recognised by its hash.
func TestThresholdEntriesKeepNoIDs(t *testing.T) {
	rule := "id: t.never\nname: never\n" + hdr + `kind: threshold
by: user
window: 10m
where: Outcome == "failure"
threshold: {having: count >= 1000}
`
	size := func(idLen int) int {
		st := NewMemStore()
		eng, err := NewEngine(loadRules(t, rule), st, Options{})
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Date(2025, 5, 1, 9, 0, 0, 0, time.UTC)
		for i := 0; i < 200; i++ {
			id := fmt.Sprintf("%0*d", idLen, i)
			ev := event.Event{ID: id, Time: t0.Add(time.Duration(i) * time.Second), Outcome: event.OutcomeFailure, User: "u"}
			for range 2 { // the second is a re-delivery
				if _, err := eng.Process(event.KeyUser, "u", &ev); err != nil {
					t.Fatal(err)
				}
			}
		}
		if n := len(eng.rules[0].states["u"].rs.groups[""].entries); n != 200 {
			t.Fatalf("%d entries for 200 events delivered twice", n)
		}
		if err := eng.Flush(); err != nil {
			t.Fatal(err)
		}
		n := 0
		_ = st.Scan([]byte("s/"), func(_, v []byte) error { n += len(v); return nil })
		return n
	}
	if short, long := size(4), size(90); long != short {
		t.Fatalf("state of 200 entries: %d bytes with 4-byte ids, %d with 90-byte ids", short, long)
	}
}

var twoStep = failThenSuccess("t.two", "two steps", "1h")

// failThenSuccess is a sequence by user: a failed logon, then a
// successful one within maxspan.
func failThenSuccess(id, name, maxspan string) string {
	return "id: " + id + "\nname: " + name + "\n" + hdr + `kind: sequence
by: user
maxspan: ` + maxspan + `
steps:
  - {name: fail, where: 'Type == "logon" && Outcome == "failure"'}
  - {name: ok, where: 'Type == "logon" && Outcome == "success"'}
`
}

// blobKeys lists the event keys in the store.
func blobKeys(st *MemStore) []string {
	var out []string
	_ = st.Scan(blobKeyPrefix, func(k, _ []byte) error { out = append(out, string(k)); return nil })
	return out
}

// TestEventsStoredOnce: a buffered event is written to the Store once, as
// its own key, not with every save of its key's state; an engine that
// restarts over the Store builds the alert with the whole event from that
// key; when the state lets go of the event its key is deleted; and a state
// of the previous version (events inline) is migrated on its next save.
func TestEventsStoredOnce(t *testing.T) {
	set := loadRules(t, twoStep)
	st := NewMemStore()
	eng, err := NewEngine(set, st, Options{Lateness: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2025, 5, 1, 9, 0, 0, 0, time.UTC)
	fail := event.Event{ID: "f1", Time: t0, Type: "logon", Outcome: event.OutcomeFailure, User: "eve@x.example",
		SrcIP: "203.0.113.7", Raw: []byte(`{"big":"` + strings.Repeat("x", 4000) + `"}`)}
	if _, err := eng.Process(event.KeyUser, "eve@x.example", &fail); err != nil {
		t.Fatal(err)
	}
	if err := eng.Flush(); err != nil {
		t.Fatal(err)
	}
	if keys := blobKeys(st); len(keys) != 1 {
		t.Fatalf("after one buffered event: event keys %q", keys)
	}
	state := func() []byte {
		var v []byte
		_ = st.Scan([]byte("s/"), func(_, val []byte) error { v = val; return nil })
		return v
	}
	if n := len(state()); n > 200 {
		t.Fatalf("state value is %d bytes: the 4 KB event is inline", n)
	}
	// A second failure: one more event key; the first is not rewritten.
	st.put(blobKeys(st)[0], append(bytes.Clone(st.value(blobKeys(st)[0])), 0)) // marks it: a rewrite would drop the mark
	first := blobKeys(st)[0]
	fail2 := fail
	fail2.ID, fail2.Time = "f2", t0.Add(time.Minute)
	if _, err := eng.Process(event.KeyUser, "eve@x.example", &fail2); err != nil {
		t.Fatal(err)
	}
	if err := eng.Flush(); err != nil {
		t.Fatal(err)
	}
	if keys, v := blobKeys(st), st.value(first); len(keys) != 2 || v[len(v)-1] != 0 {
		t.Fatalf("second event: keys %q, first rewritten: %v", keys, v[len(v)-1] != 0)
	}
	st.put(first, st.value(first)[:len(st.value(first))-1])

	// Restart: the new engine reads the state (blob numbers only) and the
	// alert carries the events read back from their keys.
	eng2, err := NewEngine(set, st, Options{Lateness: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ok := event.Event{ID: "s1", Time: t0.Add(2 * time.Minute), Type: "logon", Outcome: event.OutcomeSuccess, User: "eve@x.example"}
	as, err := eng2.Process(event.KeyUser, "eve@x.example", &ok)
	if err != nil {
		t.Fatal(err)
	}
	if len(as) == 0 {
		t.Fatal("no alert after restart")
	}
	got := as[0].Steps[0].Events[0]
	if got.SrcIP != "203.0.113.7" || len(got.Raw) < 4000 || eng2.Stats().EventsMissing != 0 {
		t.Fatalf("step 1 event after restart: id %s ip %q raw %d bytes, missing %d", got.ID, got.SrcIP, len(got.Raw), eng2.Stats().EventsMissing)
	}
	// Past the horizon the state expires and its event keys go with it.
	if _, err := eng2.Advance(t0.Add(3 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := eng2.Flush(); err != nil {
		t.Fatal(err)
	}
	if keys := blobKeys(st); len(keys) != 0 {
		t.Fatalf("expired state left event keys %q", keys)
	}

	// The previous version's value, events inline, read and migrated.
	v2, err := os.ReadFile("testdata/state-v2.bin")
	if err != nil {
		t.Fatal(err)
	}
	k := eng2.storeKey(eng2.rules[0], "kim")
	st.put(string(k), v2)
	ent, err := eng2.load(eng2.rules[0], "kim")
	if err != nil {
		t.Fatal(err)
	}
	if !ent.dirty {
		t.Fatal("a migrated state is not marked for saving")
	}
	if err := eng2.Flush(); err != nil {
		t.Fatal(err)
	}
	if keys := blobKeys(st); len(keys) != 4 { // two seq events, the evidence, the anchor
		t.Fatalf("migrated event keys %q", keys)
	}
	var back ruleState
	if err := decodeState(bytes.Clone(st.value(string(k))), &back); err != nil || back.seq[0].ev != nil {
		t.Fatalf("migrated state: %v", err)
	}
	if e := eng2.eventAt(back.seq[0].blob, nil, "", 0); e.User != "kim" {
		t.Fatalf("migrated event: %+v", e)
	}
}

// TestUnreachableStepsForgotten: a later step of an ordered sequence with
// nothing before it is kept only while an earlier step can still arrive
// (within the lateness), not for the whole maxspan; out-of-order arrival
// within the lateness still completes the sequence.
func TestUnreachableStepsForgotten(t *testing.T) {
	set := loadRules(t, twoStep)
	eng, err := NewEngine(set, NewMemStore(), Options{Lateness: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2025, 5, 1, 9, 0, 0, 0, time.UTC)
	feed := func(id string, at time.Duration, outcome event.Outcome) int {
		t.Helper()
		ev := event.Event{ID: id, Time: t0.Add(at), Type: "logon", Outcome: outcome, User: "u"}
		as, err := eng.Process(event.KeyUser, "u", &ev)
		if err != nil {
			t.Fatal(err)
		}
		return len(as)
	}
	for i := range 10 {
		if n := feed(fmt.Sprintf("ok%d", i), time.Duration(i)*time.Minute, event.OutcomeSuccess); n != 0 {
			t.Fatalf("success %d alone fired", i)
		}
	}
	ent := eng.rules[0].states["u"]
	if n := len(ent.rs.seq); n > 2 {
		t.Errorf("%d lone successes buffered; only those within the lateness can still be preceded", n)
	}
	// Out of order within the lateness: the success first, the failure 30 s
	// before it arrives later.
	if n := feed("ok-late", 20*time.Minute, event.OutcomeSuccess) + feed("fail-early", 20*time.Minute-30*time.Second, event.OutcomeFailure); n != 1 {
		t.Fatalf("out-of-order failure then success: %d alerts", n)
	}
	// A failure, then two successes: one alert, the first success consumes it.
	n := feed("fail", 30*time.Minute, event.OutcomeFailure)
	n += feed("ok-a", 31*time.Minute, event.OutcomeSuccess)
	n += feed("ok-b", 33*time.Minute, event.OutcomeSuccess)
	if n != 1 {
		t.Fatalf("failure then two successes: %d alerts, want 1", n)
	}
}

// TestSweepDeletesEventsOfUnloadedKeys: state that expires without being
// loaded again (another engine wrote it) takes its event keys with it.
func TestSweepDeletesEventsOfUnloadedKeys(t *testing.T) {
	set := loadRules(t, twoStep)
	st := NewMemStore()
	eng, err := NewEngine(set, st, Options{Lateness: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2025, 5, 1, 9, 0, 0, 0, time.UTC)
	for i, u := range []string{"a", "b", "c"} {
		ev := event.Event{ID: u, Time: t0.Add(time.Duration(i) * time.Second), Type: "logon", Outcome: event.OutcomeFailure, User: u}
		if _, err := eng.Process(event.KeyUser, u, &ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := eng.Flush(); err != nil {
		t.Fatal(err)
	}
	if n := len(blobKeys(st)); n != 3 {
		t.Fatalf("%d event keys, want 3", n)
	}
	eng2, err := NewEngine(set, st, Options{Lateness: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng2.Advance(t0.Add(3 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := eng2.Flush(); err != nil {
		t.Fatal(err)
	}
	if keys := blobKeys(st); len(keys) != 0 || st.Len() > 1 {
		t.Fatalf("after expiry: event keys %q, %d keys in all", keys, st.Len())
	}
}

// scanCountingStore counts the scans of state keys, the sweep's read of
// the whole Store.
type scanCountingStore struct {
	*MemStore
	scans int
}

func (s *scanCountingStore) Scan(prefix []byte, fn func(k, v []byte) error) error {
	if string(prefix) == "s/" {
		s.scans++
	}
	return s.MemStore.Scan(prefix, fn)
}

// stateKeys counts the state keys in the store.
func stateKeys(st *MemStore) int {
	n := 0
	_ = st.Scan([]byte("s/"), func(_, _ []byte) error { n++; return nil })
	return n
}

// TestSweepReadsStoreOnlyForUncachedExpiry: the sweep reads the Store's
// state keys once after start (what is there is unknown), then only when
// a key the cache let go may have expired — and it still deletes every
// expired key, cached or not.
func TestSweepReadsStoreOnlyForUncachedExpiry(t *testing.T) {
	set := loadRules(t, twoStep) // maxspan 1h
	t0 := time.Date(2025, 5, 1, 9, 0, 0, 0, time.UTC)
	fail := func(eng *Engine, u string, at time.Time) {
		t.Helper()
		ev := event.Event{ID: u + at.String(), Time: at, Type: "logon", Outcome: event.OutcomeFailure, User: u}
		if _, err := eng.Process(event.KeyUser, u, &ev); err != nil {
			t.Fatal(err)
		}
	}

	// Everything cached: one scan at the first sweep, none after, and
	// the expired keys still go.
	st := &scanCountingStore{MemStore: NewMemStore()}
	eng, err := NewEngine(set, st, Options{SweepEvery: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for i, u := range []string{"a", "b", "c"} {
		fail(eng, u, t0.Add(time.Duration(i)*time.Second))
	}
	for m := 1; m <= 30; m++ {
		advance(t, eng, t0.Add(time.Duration(m)*time.Minute))
	}
	fail(eng, "d", t0.Add(40*time.Minute))
	advance(t, eng, t0.Add(90*time.Minute))
	if st.scans != 1 {
		t.Fatalf("%d scans of the Store with every key cached, want 1 (the first sweep)", st.scans)
	}
	if n := stateKeys(st.MemStore); n != 1 {
		t.Fatalf("%d state keys after a, b and c expired, want 1 (d)", n)
	}

	// A cache that holds one entry lets the others go at each Flush: the
	// Store is read once the earliest of them can have expired, not before.
	st = &scanCountingStore{MemStore: NewMemStore()}
	eng, err = NewEngine(set, st, Options{SweepEvery: time.Minute, MaxCached: 1})
	if err != nil {
		t.Fatal(err)
	}
	advance(t, eng, t0) // the first sweep
	fail(eng, "a", t0.Add(time.Second))
	fail(eng, "b", t0.Add(20*time.Minute))
	advance(t, eng, t0.Add(20*time.Minute)) // evicts a and b
	scans := st.scans
	for m := 21; m <= 60; m++ {
		advance(t, eng, t0.Add(time.Duration(m)*time.Minute))
	}
	if st.scans != scans {
		t.Fatalf("%d scans before an uncached key could expire, want 0", st.scans-scans)
	}
	advance(t, eng, t0.Add(62*time.Minute)) // a expired
	if st.scans != scans+1 || stateKeys(st.MemStore) != 1 {
		t.Fatalf("after a expired: %d scans, %d state keys; want 1 scan and b's key", st.scans-scans, stateKeys(st.MemStore))
	}
	for m := 63; m <= 79; m++ {
		advance(t, eng, t0.Add(time.Duration(m)*time.Minute))
	}
	if st.scans != scans+1 {
		t.Fatalf("%d scans before b could expire, want 1", st.scans-scans)
	}
	advance(t, eng, t0.Add(81*time.Minute))
	if st.scans != scans+2 || stateKeys(st.MemStore) != 0 {
		t.Fatalf("after b expired: %d scans, %d state keys; want 2 and none", st.scans-scans, stateKeys(st.MemStore))
	}
}

// distinctRule is a port-scan-like threshold: one source address reaching
// at least n distinct destination address:port pairs in two minutes.
func distinctRule(id string, n int) string {
	return "id: " + id + "\nname: scan\n" + hdr + `kind: threshold
by: ip
window: 2m
where: Type == "network"
threshold: {distinct: DstIP + ":" + string(DstPort), having: distinct >= ` + strconv.Itoa(n) + "}\n"
}

// TestThresholdAggregatesMatchRecount: the running aggregates of the
// window ending at a group's newest entry give the same alerts as counting
// every window afresh, over random streams with out-of-order and repeated
// events, shared and distinct values, the entry cap and restarts.
func TestThresholdAggregatesMatchRecount(t *testing.T) {
	distinct := distinctRule("t.dist", 12)
	count := "id: t.count\nname: burst\n" + hdr + `kind: threshold
by: ip
window: 1m
where: Type == "network"
threshold: {group_by: [Protocol], having: count >= 20}
`
	for seed := uint64(1); seed <= 20; seed++ {
		run := func(recount bool) []string {
			st := NewMemStore()
			set := loadRules(t, distinct, count)
			eng, err := NewEngine(set, st, Options{Lateness: 30 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			eng.recount = recount
			next := xorshift(seed)
			var got []string
			now := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
			for i := 0; i < 3000; i++ {
				now = now.Add(time.Duration(next(3000)) * time.Millisecond)
				at := now
				if next(5) == 0 {
					at = now.Add(-time.Duration(next(25000)) * time.Millisecond) // out of order, within the lateness
				}
				if at.Before(eng.Watermark()) {
					at = eng.Watermark()
				}
				id := fmt.Sprintf("n%d", i)
				if next(30) == 0 && i > 0 {
					id = fmt.Sprintf("n%d", i-1) // re-delivery of the previous event (another time: a new entry)
				}
				ev := event.Event{ID: id, Time: at, Type: "network", SrcIP: []string{"10.0.0.1", "10.0.0.2"}[next(2)],
					DstIP: fmt.Sprintf("10.1.0.%d", next(8)), DstPort: []int{22, 80, 443}[next(3)], Protocol: []string{"tcp", "udp"}[next(2)]}
				as, err := eng.Process(event.KeyIP, ev.SrcIP, &ev)
				if err != nil {
					t.Fatal(err)
				}
				for _, a := range as {
					got = append(got, a.RuleID+" "+a.ID+" "+a.Time.Format(time.RFC3339Nano))
				}
				if next(100) == 0 {
					if err := eng.Flush(); err != nil {
						t.Fatal(err)
					}
					if eng, err = NewEngine(set, st, Options{Lateness: 30 * time.Second}); err != nil { // restart: aggregates rebuilt
						t.Fatal(err)
					}
					eng.recount = recount
				}
			}
			return got
		}
		fast, slow := run(false), run(true)
		if len(slow) == 0 {
			t.Fatalf("seed %d: no alerts at all: the stream does not exercise the thresholds", seed)
		}
		if strings.Join(fast, "\n") != strings.Join(slow, "\n") {
			t.Fatalf("seed %d: running aggregates and recounting disagree:\n%v\nvs\n%v", seed, fast, slow)
		}
	}
}

// TestThresholdFiresOnTheEventThatPrunes: the event whose arrival drops
// an entry older than the watermark's horizon is itself checked (its
// entry's index moves with the pruning); an earlier build skipped it and
// fired one event late, or never.
func TestThresholdFiresOnTheEventThatPrunes(t *testing.T) {
	pair := "id: t.pair\nname: two\n" + hdr + `kind: threshold
by: ip
window: 1m
lateness: 30s
where: Type == "network"
threshold: {having: count >= 2}
`
	for _, recount := range []bool{false, true} {
		eng, err := NewEngine(loadRules(t, pair), NewMemStore(), Options{Lateness: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		eng.recount = recount
		t0 := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
		var fired []string
		for _, x := range []struct {
			id string
			at time.Duration
		}{{"a", 0}, {"b", 70 * time.Second}, {"c", 95 * time.Second}} {
			ev := event.Event{ID: x.id, Time: t0.Add(x.at), Type: "network", SrcIP: "10.0.0.1"}
			as, err := eng.Process(event.KeyIP, "10.0.0.1", &ev)
			if err != nil {
				t.Fatal(err)
			}
			for range as {
				fired = append(fired, x.id)
			}
		}
		// c drops a (older than watermark 65 s − window) and completes b, c.
		if len(fired) != 1 || fired[0] != "c" {
			t.Fatalf("recount %v: fired on %v, want [c]", recount, fired)
		}
	}
}

// TestThresholdEvidenceOnlyNearFiring: a threshold keeps evidence only for
// events that can be among the newest of a firing window (canBeEvidence).
// On in-order streams its alerts carry exactly the events they carried
// when every event was kept (the recount path keeps every event), and a
// group far below the threshold stores no events at all.
func TestThresholdEvidenceOnlyNearFiring(t *testing.T) {
	scan := distinctRule("t.scan", 24)
	for seed := uint64(1); seed <= 10; seed++ {
		run := func(keepAll bool) (alerts []string, blobs int) {
			st := NewMemStore()
			eng, err := NewEngine(loadRules(t, scan), st, Options{Lateness: 30 * time.Second, ThresholdEvidence: 8})
			if err != nil {
				t.Fatal(err)
			}
			eng.recount = keepAll
			next := xorshift(seed)
			now := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
			for i := 0; i < 4000; i++ {
				now = now.Add(time.Duration(1+next(400)) * time.Millisecond)
				src := []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"}[next(3)]
				dsts := 4 // a host talking to a few servers
				if src == "10.0.0.1" {
					dsts = 40 // a scanner
				}
				ev := event.Event{ID: fmt.Sprintf("n%d", i), Time: now, Type: "network", SrcIP: src,
					DstIP: fmt.Sprintf("10.1.0.%d", next(dsts)), DstPort: 445}
				as, err := eng.Process(event.KeyIP, src, &ev)
				if err != nil {
					t.Fatal(err)
				}
				for _, a := range as {
					alerts = append(alerts, a.ID+" "+strings.Join(a.EventIDs(), ","))
				}
				if i%50 == 49 {
					if err := eng.Flush(); err != nil {
						t.Fatal(err)
					}
				}
			}
			_ = st.Scan(blobKeyPrefix, func(k, v []byte) error { blobs++; return nil })
			return alerts, blobs
		}
		gated, gb := run(false)
		all, ab := run(true)
		if len(all) == 0 {
			t.Fatalf("seed %d: no alerts: the stream does not exercise the rule", seed)
		}
		if strings.Join(gated, "\n") != strings.Join(all, "\n") {
			t.Fatalf("seed %d: alerts differ when evidence is kept only near firing:\n%v\nvs\n%v", seed, gated, all)
		}
		// The quiet hosts' groups keep nothing; the scanner's, near firing.
		if gb >= ab || gb > 8 {
			t.Errorf("seed %d: %d events stored (every event kept: %d), want at most the scanner's 8", seed, gb, ab)
		}
	}
}

// TestDistinctThresholdForgetsRepeats: a threshold that counts only
// distinct values forgets entries whose value a newer entry repeats
// before the watermark. Over random streams — repeats, out-of-order
// events, re-deliveries, restarts — it fires at the same times with the
// same evidence as when it keeps every entry, each alert starting no
// earlier, and keeps far fewer entries.
func TestDistinctThresholdForgetsRepeats(t *testing.T) {
	scan := distinctRule("t.scan", 12)
	type fired struct {
		at, first time.Time
		events    string
	}
	// Dense: many connections to the same few servers (what forgetting
	// saves); sparse: about as many servers as the threshold, so whether a
	// window fires depends on single entries near its edges.
	for _, dense := range []bool{true, false} {
		for seed := uint64(1); seed <= 12; seed++ {
			run := func(keep bool) (out []fired, entries int) {
				st := NewMemStore()
				set := loadRules(t, scan)
				eng, err := NewEngine(set, st, Options{Lateness: 20 * time.Second})
				if err != nil {
					t.Fatal(err)
				}
				eng.keepRepeats = keep
				next := xorshift(seed)
				now := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
				for i := 0; i < 5000; i++ {
					gap, late, many := 6000, 19000, 13
					if dense {
						gap, late, many = 400, 15000, 16
					}
					now = now.Add(time.Duration(next(gap)) * time.Millisecond)
					at := now
					if next(3) == 0 {
						at = now.Add(-time.Duration(next(late)) * time.Millisecond)
					}
					if at.Before(eng.Watermark()) {
						at = eng.Watermark()
					}
					id := fmt.Sprintf("n%d", i)
					if next(40) == 0 && i > 0 {
						id = fmt.Sprintf("n%d", i-1)
					}
					dsts := 3 // a few servers for a while, then a sweep
					if (i/500)%2 == 1 {
						dsts = many
					}
					ev := event.Event{ID: id, Time: at, Type: "network", SrcIP: "10.0.0.1",
						DstIP: fmt.Sprintf("10.1.0.%d", next(dsts)), DstPort: 445}
					as, err := eng.Process(event.KeyIP, ev.SrcIP, &ev)
					if err != nil {
						t.Fatal(err)
					}
					for _, a := range as {
						out = append(out, fired{a.Time, a.FirstTime, strings.Join(a.EventIDs(), ",")})
					}
					if next(200) == 0 {
						if err := eng.Flush(); err != nil {
							t.Fatal(err)
						}
						if eng, err = NewEngine(set, st, Options{Lateness: 20 * time.Second}); err != nil {
							t.Fatal(err)
						}
						eng.keepRepeats = keep
					}
					for _, ent := range eng.rules[0].states {
						for _, g := range ent.rs.groups {
							entries += len(g.entries)
						}
					}
				}
				return out, entries
			}
			forget, fe := run(false)
			keep, ke := run(true)
			if len(keep) == 0 {
				t.Fatalf("seed %d: no alerts: the stream does not exercise the rule", seed)
			}
			if len(forget) != len(keep) {
				t.Fatalf("seed %d: %d alerts forgetting repeats, %d keeping them", seed, len(forget), len(keep))
			}
			for i := range keep {
				f, k := forget[i], keep[i]
				if !f.at.Equal(k.at) || f.events != k.events || f.first.Before(k.first) {
					t.Fatalf("seed %d alert %d: %+v forgetting repeats, %+v keeping them", seed, i, f, k)
				}
			}
			if dense && fe*4 > ke*3 {
				t.Errorf("seed %d: %d entries held on average forgetting repeats, %d keeping them", seed, fe/5000, ke/5000)
			}
		}
	}
}

// xorshift returns a deterministic pseudo-random source: next(n) is in
// [0, n). The random-stream tests replay the same stream for both of the
// engines they compare.
func xorshift(seed uint64) func(n int) int {
	rnd := seed
	return func(n int) int {
		rnd ^= rnd << 13
		rnd ^= rnd >> 7
		rnd ^= rnd << 17
		return int(rnd % uint64(n))
	}
}

// TestFiredMatches checks the ordered set of fired matches against a plain
// set over random marks and horizons: markFired says new exactly once per
// match, forgetFired drops exactly the matches older than the horizon,
// expiry sees the newest, and a value whose matches were written in firing
// order (earlier builds) decodes to the same set.
func TestFiredMatches(t *testing.T) {
	r := &rules.Rule{MaxSpan: 10}
	rng := rand.New(rand.NewPCG(1, 2))
	var s ruleState
	ref := map[firedID]bool{}
	horizon := int64(0)
	for i := 0; i < 20000; i++ {
		f := firedID{h: rng.Uint64N(8), first: horizon + rng.Int64N(50)}
		if got, want := s.markFired(f), !ref[f]; got != want {
			t.Fatalf("mark %v: new = %v, want %v", f, got, want)
		}
		ref[f] = true
		if rng.IntN(20) == 0 {
			horizon += rng.Int64N(10)
			s.forgetFired(horizon)
			for f := range ref {
				if f.first < horizon {
					delete(ref, f)
				}
			}
		}
		if len(s.fired) != len(ref) {
			t.Fatalf("step %d: %d matches kept, want %d", i, len(s.fired), len(ref))
		}
		newest := int64(math.MinInt64)
		for f := range ref {
			newest = max(newest, f.first)
		}
		if len(ref) > 0 && s.expiry(r) != newest+10 {
			t.Fatalf("step %d: expiry %d, want %d", i, s.expiry(r), newest+10)
		}
	}

	// Firing order, as earlier builds wrote it.
	old := ruleState{fired: []firedID{{h: 7, first: 30}, {h: 1, first: 10}, {h: 9, first: 20}, {h: 2, first: 10}}}
	var d ruleState
	if err := decodeState(appendState(nil, &old, r), &d); err != nil {
		t.Fatal(err)
	}
	if d.markFired(firedID{h: 9, first: 20}) || d.markFired(firedID{h: 2, first: 10}) {
		t.Fatal("a match of the decoded value counted as new")
	}
	if d.forgetFired(15); len(d.fired) != 2 || d.fired[0] != (firedID{h: 9, first: 20}) {
		t.Fatalf("after forgetting before 15: %v", d.fired)
	}
}

// TestSuppressedGroupNotRewritten: after a threshold group fires, the
// events of its quiet window change nothing, and a Flush writes nothing for
// them (a scanning host would otherwise rewrite its group every batch).
func TestSuppressedGroupNotRewritten(t *testing.T) {
	st := &countingStore{MemStore: NewMemStore()}
	eng, err := NewEngine(loadRules(t, spray), st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2025, 5, 1, 9, 0, 0, 0, time.UTC)
	fired := 0
	for i := 0; i < 12; i++ {
		ev := event.Event{ID: strconv.Itoa(i), Time: t0.Add(time.Duration(i) * time.Second), Type: "logon", Outcome: event.OutcomeFailure, User: "u"}
		as, err := eng.Process(event.KeyUser, "u", &ev)
		if err != nil {
			t.Fatal(err)
		}
		fired += len(as)
		if err := eng.Flush(); err != nil {
			t.Fatal(err)
		}
		if i == 1 && (fired != 1 || st.stateWrites != 2) {
			t.Fatalf("after the second failure: %d alerts, %d state writes; want 1 and 2", fired, st.stateWrites)
		}
	}
	if fired != 1 || st.stateWrites != 2 {
		t.Fatalf("10 failures in the quiet window: %d alerts, %d state writes; want 1 and still 2", fired, st.stateWrites)
	}
}
