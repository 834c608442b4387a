package operators

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/pipeline/alert"
	"github.com/vigil-sec/vigil/pipeline/event"
)

// Two sequences that start on the same failed logon and keep it for
// different spans, both too long for the orphan log (logsEvents).
var (
	shortSeq = failThenSuccess("t.short", "short", fmt.Sprintf("%dm", int(logMaxSpan/time.Minute)+1))
	longSeq  = failThenSuccess("t.long", "long", "1h")
)

// blobRefs returns the reference count stored in each event key.
func blobRefs(t *testing.T, st *MemStore) []uint64 {
	t.Helper()
	var out []uint64
	for _, k := range blobKeys(st) {
		n, w := binary.Uvarint(st.value(k))
		if w <= 0 {
			t.Fatalf("event key %q: no reference count", k)
		}
		out = append(out, n)
	}
	return out
}

// TestEventSharedByRules: an event two rules buffer under one key is
// stored once, counted twice; it stays while either state holds it (the
// count survives a restart) and its key goes with the last reference —
// whether the state expires or its rule is removed by a reload.
func TestEventSharedByRules(t *testing.T) {
	set := loadRules(t, shortSeq, longSeq)
	st := NewMemStore()
	eng, err := NewEngine(set, st, Options{Lateness: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2025, 5, 1, 9, 0, 0, 0, time.UTC)
	fail := event.Event{ID: "f1", Time: t0, Type: "logon", Outcome: event.OutcomeFailure, User: "eve",
		Raw: []byte(`{"big":"` + strings.Repeat("x", 2000) + `"}`)}
	if _, err := eng.Process(event.KeyUser, "eve", &fail); err != nil {
		t.Fatal(err)
	}
	if err := eng.Flush(); err != nil {
		t.Fatal(err)
	}
	if refs := blobRefs(t, st); len(refs) != 1 || refs[0] != 2 {
		t.Fatalf("one event buffered by two rules: stored counts %v, want [2]", refs)
	}
	if st.Size() > 2000+1000 {
		t.Fatalf("store holds %d bytes: the 2 KB event is stored more than once", st.Size())
	}

	// The short sequence lets go of it (its maxspan passed); the long one
	// still holds it.
	if _, err := eng.Advance(t0.Add(20 * time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := eng.Flush(); err != nil {
		t.Fatal(err)
	}
	if refs := blobRefs(t, st); len(refs) != 1 || refs[0] != 1 {
		t.Fatalf("after the short rule expired: stored counts %v, want [1]", refs)
	}

	// A restarted engine completes the long sequence with the whole event.
	eng2, err := NewEngine(set, st, Options{Lateness: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ok := event.Event{ID: "s1", Time: t0.Add(30 * time.Minute), Type: "logon", Outcome: event.OutcomeSuccess, User: "eve"}
	as, err := eng2.Process(event.KeyUser, "eve", &ok)
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 1 || as[0].RuleID != "t.long" || len(as[0].Steps[0].Events[0].Raw) < 2000 {
		t.Fatalf("after restart: %d alerts %+v", len(as), as)
	}
	if err := eng2.Flush(); err != nil {
		t.Fatal(err)
	}
	// A fresh event after the restart gets a number of its own: numbers
	// are not reused.
	fail2 := fail
	fail2.ID, fail2.Time = "f2", t0.Add(31*time.Minute)
	if _, err := eng2.Process(event.KeyUser, "eve", &fail2); err != nil {
		t.Fatal(err)
	}
	if err := eng2.Flush(); err != nil {
		t.Fatal(err)
	}
	// f1 and s1 (the long rule), f2 (both rules), and s1 again: the
	// short rule held s1 as an orphan (in the orphan log, not a blob: a
	// failure could still arrive out of order), and f2 made it adopt it.
	if refs := blobRefs(t, st); len(refs) != 4 || refs[0] != 1 || refs[1] != 1 || refs[2] != 2 || refs[3] != 1 {
		t.Fatalf("after a second failure: stored counts %v, want [1 1 2 1]", refs)
	}

	// Removing the long rule releases its references: f1 goes, the short
	// rule keeps s1 and f2.
	if _, err := eng2.Reload(loadRules(t, shortSeq)); err != nil {
		t.Fatal(err)
	}
	if err := eng2.Flush(); err != nil {
		t.Fatal(err)
	}
	if refs := blobRefs(t, st); len(refs) != 2 || refs[0] != 1 || refs[1] != 1 {
		t.Fatalf("after removing the long rule: stored counts %v, want [1 1]", refs)
	}
	if _, err := eng2.Advance(t0.Add(3 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := eng2.Flush(); err != nil {
		t.Fatal(err)
	}
	if keys := blobKeys(st); len(keys) != 0 || st.Len() != 1 {
		t.Fatalf("after everything expired: event keys %q, %d keys in all (want the watermark only)", keys, st.Len())
	}
}

// readStoreDump reads testdata written as uvarint-length-prefixed key and
// value pairs.
func readStoreDump(t *testing.T, path string) *MemStore {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	st := NewMemStore()
	next := func() []byte {
		n, w := binary.Uvarint(b)
		if w <= 0 || uint64(len(b)-w) < n {
			t.Fatalf("%s: truncated", path)
		}
		v := b[w : w+int(n)]
		b = b[w+int(n):]
		return v
	}
	for len(b) > 0 {
		k := next()
		st.put(string(k), bytes.Clone(next()))
	}
	return st
}

// TestMigrateVersion3: a Store written by the previous release (state
// version 3: one event key per rule and key; testdata/store-v3.bin holds a
// sequence with two buffered failed logons of eve@x.example) still
// completes the sequence with the whole events, and the next Flush moves
// the events to shared keys and deletes the old ones.
func TestMigrateVersion3(t *testing.T) {
	st := readStoreDump(t, "testdata/store-v3.bin")
	var old int
	_ = st.Scan([]byte("b/"), func(_, _ []byte) error { old++; return nil })
	if old != 2 {
		t.Fatalf("testdata holds %d version 3 event keys, want 2", old)
	}
	eng, err := NewEngine(loadRules(t, twoStep), st, Options{Lateness: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2025, 5, 1, 9, 0, 0, 0, time.UTC)
	ok := event.Event{ID: "s1", Time: t0.Add(5 * time.Minute), Type: "logon", Outcome: event.OutcomeSuccess, User: "eve@x.example"}
	as, err := eng.Process(event.KeyUser, "eve@x.example", &ok)
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 1 {
		t.Fatalf("%d alerts from the migrated state, want 1", len(as))
	}
	if got := as[0].Steps[0].Events[0]; got.ID != "f2" || got.SrcIP != "203.0.113.7" || string(got.Raw) != `{"n":2}` {
		t.Fatalf("step 1 event from a version 3 key: %+v", got)
	}
	if err := eng.Flush(); err != nil {
		t.Fatal(err)
	}
	old = 0
	_ = st.Scan([]byte("b/"), func(_, _ []byte) error { old++; return nil })
	if old != 0 || len(blobKeys(st)) != 3 { // f1, f2, s1
		t.Fatalf("after the save: %d version 3 keys, shared keys %q", old, blobKeys(st))
	}
	var v []byte
	_ = st.Scan([]byte("s/"), func(_, val []byte) error { v = val; return nil })
	if v[8] != stateVersion || eng.Stats().EventsMissing != 0 {
		t.Fatalf("saved state version %d, %d events missing", v[8], eng.Stats().EventsMissing)
	}
}

// checkBlobCounts verifies the Store's invariant: every event key's count
// is the number of saved states that name it, and every named event has a
// key.
func checkBlobCounts(t *testing.T, st *MemStore, when string) {
	t.Helper()
	want := map[uint64]uint64{}
	_ = st.Scan([]byte("s/"), func(k, v []byte) error {
		var rs ruleState
		if err := decodeState(bytes.Clone(v), &rs); err != nil {
			t.Fatalf("%s: state %q: %v", when, k, err)
		}
		seen := map[uint64]bool{}
		rs.eachEvent(func(blob *uint64, _ *[]byte) {
			if !seen[*blob] {
				seen[*blob] = true
				want[*blob]++
			}
		})
		return nil
	})
	got := map[uint64]uint64{}
	_ = st.Scan(blobKeyPrefix, func(k, v []byte) error {
		n, _ := binary.Uvarint(v)
		got[binary.BigEndian.Uint64(k[len(blobKeyPrefix):])] = n
		return nil
	})
	for n, c := range want {
		if got[n] != c {
			t.Fatalf("%s: event %d named by %d states, stored count %d", when, n, c, got[n])
		}
	}
	for n, c := range got {
		if want[n] == 0 {
			t.Fatalf("%s: event %d stored (count %d) but named by no state", when, n, c)
		}
	}
}

// TestBlobCountsUnderChurn runs random events through sequences, a
// threshold and an absence rule that share events, with flushes, watermark
// jumps, restarts and reloads in between, and checks after every Flush
// that the stored counts match the states.
func TestBlobCountsUnderChurn(t *testing.T) {
	th := "id: t.th\nname: failures\n" + hdr + `kind: threshold
by: user
window: 5m
where: Type == "logon" && Outcome == "failure"
threshold: {group_by: [SrcIP], having: count >= 4}
`
	abs := "id: t.abs\nname: fail without ok\n" + hdr + `kind: absence
by: user
window: 3m
anchor: {where: 'Type == "logon" && Outcome == "failure"'}
expect: {where: 'Type == "logon" && Outcome == "success"'}
`
	all := []string{shortSeq, longSeq, th, abs}
	st := NewMemStore()
	opts := Options{Lateness: time.Minute, MaxCached: 20}
	eng, err := NewEngine(loadRules(t, all...), st, opts)
	if err != nil {
		t.Fatal(err)
	}
	next := xorshift(7)
	t0 := time.Date(2025, 5, 1, 9, 0, 0, 0, time.UTC)
	now := t0
	users := []string{"a", "b", "c", "d"}
	for i := 0; i < 4000; i++ {
		now = now.Add(time.Duration(next(20)) * time.Second)
		at := now.Add(-time.Duration(next(50)) * time.Second) // out of order within the lateness
		if at.Before(eng.Watermark()) {
			at = eng.Watermark()
		}
		u := users[next(len(users))]
		out := event.OutcomeFailure
		if next(4) == 0 {
			out = event.OutcomeSuccess
		}
		ev := event.Event{ID: "e" + string(rune('a'+next(26))) + string(rune('a'+i%26)) + time.Duration(i).String(),
			Time: at, Type: "logon", Outcome: out, User: u, SrcIP: []string{"192.0.2.1", "192.0.2.2"}[next(2)]}
		if _, err := eng.Process(event.KeyUser, u, &ev); err != nil {
			t.Fatal(err)
		}
		switch next(40) {
		case 0, 1, 2, 3, 4:
			if _, err := eng.Advance(now.Add(-time.Minute)); err != nil {
				t.Fatal(err)
			}
			if err := eng.Flush(); err != nil {
				t.Fatal(err)
			}
			checkBlobCounts(t, st, "after a flush")
		case 5: // restart from what was flushed
			if err := eng.Flush(); err != nil {
				t.Fatal(err)
			}
			if eng, err = NewEngine(loadRules(t, all...), st, opts); err != nil {
				t.Fatal(err)
			}
		case 6: // a reload without one rule, then with all again
			if _, err := eng.Reload(loadRules(t, slicesWithout(all, next(len(all)))...)); err != nil {
				t.Fatal(err)
			}
			if err := eng.Flush(); err != nil {
				t.Fatal(err)
			}
			checkBlobCounts(t, st, "after a reload")
			if _, err := eng.Reload(loadRules(t, all...)); err != nil {
				t.Fatal(err)
			}
		case 7:
			now = now.Add(10 * time.Minute) // a gap: states expire in the sweep
		}
	}
	if _, err := eng.Advance(now.Add(24 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := eng.Flush(); err != nil {
		t.Fatal(err)
	}
	checkBlobCounts(t, st, "at the end")
	if keys := blobKeys(st); len(keys) != 0 {
		t.Fatalf("after everything expired: %d event keys left", len(keys))
	}
}

func slicesWithout(xs []string, i int) []string {
	out := append([]string(nil), xs[:i]...)
	return append(out, xs[i+1:]...)
}

// failedAddresses is the threshold of the golden stores of versions 4 and
// 5: failed logons of a user from three addresses.
var failedAddresses = "id: t.th\nname: failures\n" + hdr + `kind: threshold
by: user
window: 10m
where: Type == "logon" && Outcome == "failure"
threshold: {distinct: SrcIP, having: distinct >= 3}
`

// TestReadVersion4: a Store written by the previous release (state version
// 4: threshold entries with whole ids; testdata/store-v4.bin holds two
// failed logons of eve@x.example from two addresses, buffered by a
// sequence and by a distinct-address threshold, in shared event keys)
// carries on: the third address fires the threshold with all three events,
// read back from their keys, and the saved values are version 5 with
// consistent counts.
func TestReadVersion4(t *testing.T) {
	st := readStoreDump(t, "testdata/store-v4.bin")
	eng, err := NewEngine(loadRules(t, twoStep, failedAddresses), st, Options{Lateness: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2025, 5, 1, 9, 0, 0, 0, time.UTC)
	f3 := event.Event{ID: "f3", Time: t0.Add(2 * time.Minute), Type: "logon", Outcome: event.OutcomeFailure, User: "eve@x.example", SrcIP: "203.0.113.9"}
	as, err := eng.Process(event.KeyUser, "eve@x.example", &f3)
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 1 || as[0].RuleID != "t.th" {
		t.Fatalf("alerts after the third address: %+v", as)
	}
	evs := as[0].Steps[0].Events
	if len(evs) != 3 || evs[0].ID != "f1" || string(evs[1].Raw) != `{"n":2}` || eng.Stats().EventsMissing != 0 {
		t.Fatalf("threshold alert events: %+v (missing %d)", evs, eng.Stats().EventsMissing)
	}
	var hashed []string
	for _, id := range []string{"f1", "f2", "f3"} {
		hashed = append(hashed, fmt.Sprintf("%x", idHash(id)))
	}
	if want := alert.MakeID("t.th", as[0].RuleVersion, event.KeyUser, "eve@x.example", hashed); as[0].ID != want {
		t.Fatal("alert id does not hash the three events' ids")
	}
	if err := eng.Flush(); err != nil {
		t.Fatal(err)
	}
	_ = st.Scan([]byte("s/"), func(k, v []byte) error {
		if v[8] != stateVersion {
			t.Errorf("%q saved as version %d", k, v[8])
		}
		return nil
	})
	checkBlobCounts(t, st, "after the save")
}

// TestProcessEncodedStoresTheRecord: an event given with its encoding (the
// Kafka record) is buffered as a copy of that encoding, not encoded again —
// fields this build does not know survive — and the caller's buffer is
// not kept.
func TestProcessEncodedStoresTheRecord(t *testing.T) {
	st := NewMemStore()
	eng, err := NewEngine(loadRules(t, twoStep), st, Options{Lateness: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2025, 5, 1, 9, 0, 0, 0, time.UTC)
	fail := event.Event{ID: "f1", Time: t0, Type: "logon", Outcome: event.OutcomeFailure, User: "eve", SrcIP: "192.0.2.1"}
	enc, err := event.Marshal(&fail)
	if err != nil {
		t.Fatal(err)
	}
	enc = append(enc, 0xf5, 0x01, 0x01, 'x') // field 61, bytes "x": unknown to this build
	var ev event.Event
	if err := event.Unmarshal(enc, &ev); err != nil {
		t.Fatal(err)
	}
	want := bytes.Clone(enc)
	if _, err := eng.ProcessEncoded(event.KeyUser, "eve", &ev, enc); err != nil {
		t.Fatal(err)
	}
	clear(enc) // the caller reuses its buffer
	if err := eng.Flush(); err != nil {
		t.Fatal(err)
	}
	keys := blobKeys(st)
	if len(keys) != 1 {
		t.Fatalf("event keys %q", keys)
	}
	v := st.value(keys[0])
	_, w := binary.Uvarint(v)
	if !bytes.Equal(v[w:], want) {
		t.Fatalf("stored event %x, want the record %x", v[w:], want)
	}
	ok := event.Event{ID: "s1", Time: t0.Add(time.Minute), Type: "logon", Outcome: event.OutcomeSuccess, User: "eve"}
	as, err := eng.Process(event.KeyUser, "eve", &ok)
	if err != nil || len(as) != 1 || as[0].Steps[0].Events[0].SrcIP != "192.0.2.1" {
		t.Fatalf("alert from the stored record: %+v, %v", as, err)
	}
}

// TestReadVersion5: a Store written by the previous release (state version
// 5: sequence entries with whole ids; testdata/store-v5.bin holds two
// failed logons of eve@x.example from two addresses, pending in a sequence
// and counted by a distinct-address threshold) carries on: a re-delivered
// failure is recognised against the stored id, the success completes the
// sequence with an alert id over the events' own ids (as version 5 made
// it), and the saved values are version 6 with consistent counts.
func TestReadVersion5(t *testing.T) {
	st := readStoreDump(t, "testdata/store-v5.bin")
	eng, err := NewEngine(loadRules(t, twoStep, failedAddresses), st, Options{Lateness: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2025, 5, 1, 9, 0, 0, 0, time.UTC)
	again := event.Event{ID: "f2", Time: t0.Add(time.Minute), Type: "logon", Outcome: event.OutcomeFailure, User: "eve@x.example", SrcIP: "203.0.113.8"}
	if as, err := eng.Process(event.KeyUser, "eve@x.example", &again); err != nil || len(as) != 0 {
		t.Fatalf("re-delivered failure: %v, %+v", err, as)
	}
	ok := event.Event{ID: "s1", Time: t0.Add(3 * time.Minute), Type: "logon", Outcome: event.OutcomeSuccess, User: "eve@x.example"}
	as, err := eng.Process(event.KeyUser, "eve@x.example", &ok)
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 1 || as[0].RuleID != "t.two" {
		t.Fatalf("alerts after the success: %+v", as)
	}
	if got := as[0].Steps[0].Events[0]; got.ID != "f2" || string(got.Raw) != `{"n":2}` || eng.Stats().EventsMissing != 0 {
		t.Fatalf("step 1 event: %+v (missing %d)", got, eng.Stats().EventsMissing)
	}
	if want := alert.MakeID("t.two", as[0].RuleVersion, event.KeyUser, "eve@x.example", []string{"f2", "s1"}); as[0].ID != want {
		t.Fatal("alert id does not hash the steps' event ids")
	}
	if err := eng.Flush(); err != nil {
		t.Fatal(err)
	}
	_ = st.Scan([]byte("s/"), func(k, v []byte) error {
		var rs ruleState
		if err := decodeState(bytes.Clone(v), &rs); err != nil || v[8] != stateVersion {
			t.Fatalf("%q: version %d, %v", k, v[8], err)
		}
		if len(rs.seq) > 3 { // f1, f2, s1: the re-delivery added nothing
			t.Errorf("%q holds %d sequence entries", k, len(rs.seq))
		}
		return nil
	})
	checkBlobCounts(t, st, "after the save")
}
