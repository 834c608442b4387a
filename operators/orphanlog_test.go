package operators

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/pipeline/alert"
	"github.com/vigil-sec/vigil/pipeline/event"
)

// logon is user u's logon at t.
func logon(id, u string, at time.Time, out event.Outcome) event.Event {
	return event.Event{ID: id, Time: at, Type: "logon", Outcome: out, User: u}
}

// process feeds ev to eng under its user and returns the alerts.
func process(t *testing.T, eng *Engine, ev event.Event) []alert.Alert {
	t.Helper()
	as, err := eng.Process(event.KeyUser, ev.User, &ev)
	if err != nil {
		t.Fatal(err)
	}
	return as
}

// successes feeds eng a successful logon of each of n users u0, u1, …,
// the i-th at t0 + i·step.
func successes(t *testing.T, eng *Engine, n int, t0 time.Time, step time.Duration) {
	t.Helper()
	for i := range n {
		u := fmt.Sprint("u", i)
		process(t, eng, logon("s-"+u, u, t0.Add(time.Duration(i)*step), event.OutcomeSuccess))
	}
}

// advance moves eng's watermark to to and flushes.
func advance(t *testing.T, eng *Engine, to time.Time) {
	t.Helper()
	if _, err := eng.Advance(to); err != nil {
		t.Fatal(err)
	}
	if err := eng.Flush(); err != nil {
		t.Fatal(err)
	}
}

// chunkKeys lists the orphan log's chunks in the store.
func chunkKeys(st *MemStore) []string {
	var out []string
	_ = st.Scan(orphanLogPrefix, func(k, _ []byte) error { out = append(out, string(k)); return nil })
	return out
}

// TestOrphanLog: the orphans of a batch are one chunk of the orphan log
// — their events and buffers — not blobs or state keys; a restarted
// engine rebuilds the buffers from it and reads an adopted orphan's event
// back whole; chunks stay while the watermark has not passed the newest
// event they name and go once it has.
func TestOrphanLog(t *testing.T) {
	set := loadRules(t, orphanTestRules[:3]...) // the sequences that start with a failure
	st := NewMemStore()
	opts := Options{Lateness: 2 * time.Minute}
	// Sequence events all blobs (TestSequenceEventsInLog has them in the
	// log): the chunks hold orphans only.
	newEngine := func() *Engine {
		t.Helper()
		eng, err := NewEngine(set, st, opts)
		if err != nil {
			t.Fatal(err)
		}
		eng.noLog = true
		return eng
	}
	eng := newEngine()
	t0 := time.Date(2025, 5, 1, 9, 0, 0, 0, time.UTC)
	raw := []byte(`{"big":"` + strings.Repeat("x", 3000) + `"}`)
	for i, u := range []string{"a", "b", "c"} { // three orphans, one chunk
		ok := logon("s-"+u, u, t0.Add(-time.Duration(i)*time.Second), event.OutcomeSuccess)
		ok.Raw = raw
		process(t, eng, ok)
	}
	if err := eng.Flush(); err != nil {
		t.Fatal(err)
	}
	if c, b := chunkKeys(st), blobKeys(st); len(c) != 1 || len(b) != 0 || st.Len() != 2 {
		t.Fatalf("three orphans: %d chunks, %d blobs, %d keys in all; want one chunk, no blob, the chunk and the watermark", len(c), len(b), st.Len())
	}

	// A restarted engine has nothing cached: the failure that makes
	// three sequences adopt a's success reads its event from the chunk.
	eng = newEngine()
	as := process(t, eng, logon("f-a", "a", t0.Add(-time.Minute), event.OutcomeFailure))
	if len(as) != 1 || as[0].RuleID != "t.fs" {
		t.Fatalf("failure before an orphaned success: %d alerts %+v, want t.fs", len(as), as)
	}
	if got := as[0].Steps[1].Events[0]; got.ID != "s-a" || !bytes.Equal(got.Raw, raw) {
		t.Fatalf("adopted event %q with %d bytes of raw, want s-a with %d", got.ID, len(got.Raw), len(raw))
	}
	if n := eng.Stats().EventsMissing; n != 0 {
		t.Fatalf("%d events missing", n)
	}
	if err := eng.Flush(); err != nil {
		t.Fatal(err)
	}
	// Adopted by three sequences (t.fs, t.fsu, t.ffs): one blob for it.
	if b := blobRefs(t, st); len(b) != 2 || b[0] != 3 || b[1] != 3 {
		t.Fatalf("after the adoption: stored counts %v, want [3 3] (the failure, the adopted success)", b)
	}

	// Another restart finds b's and c's orphans, and a's no more: the
	// later snapshot of a's buffer (empty) replaces the first.
	eng = newEngine()
	for _, u := range []string{"a", "b", "c"} {
		ent := eng.orphanRules[event.KeyUser].states[u]
		if n := 0; ent != nil {
			n = len(ent.rs.orphans)
			if want := map[bool]int{true: 0, false: 1}[u == "a"]; n != want {
				t.Fatalf("after a restart, %s's buffer holds %d orphans, want %d", u, n, want)
			}
		} else if u != "a" {
			t.Fatalf("after a restart, %s's orphan buffer is gone", u)
		}
	}

	// The newest event the chunks name is a's success at t0.
	if _, err := eng.Advance(t0); err != nil {
		t.Fatal(err)
	}
	if err := eng.Flush(); err != nil {
		t.Fatal(err)
	}
	if c := chunkKeys(st); len(c) != 2 {
		t.Fatalf("watermark at the newest event the chunks name: %d chunks, want both kept (the second, a's empty buffer, must not go before the first)", len(c))
	}
	if _, err := eng.Advance(t0.Add(time.Nanosecond)); err != nil {
		t.Fatal(err)
	}
	if err := eng.Flush(); err != nil {
		t.Fatal(err)
	}
	if c := chunkKeys(st); len(c) != 0 {
		t.Fatalf("watermark past the newest event the chunks name: %d chunks, want none", len(c))
	}
}

// TestOrphanLogReloadClears: when a reload removes a keyspace's last
// ordered sequence, its orphan buffers go — also from the log, so that
// the sequences put back and restarted do not adopt what they held.
func TestOrphanLogReloadClears(t *testing.T) {
	seqs := orphanTestRules[:3]
	st := NewMemStore()
	opts := Options{Lateness: 2 * time.Minute}
	eng, err := NewEngine(loadRules(t, seqs...), st, opts)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2025, 5, 1, 9, 0, 0, 0, time.UTC)
	process(t, eng, logon("s-a", "a", t0, event.OutcomeSuccess))
	for _, set := range [][]string{orphanTestRules[4:], seqs} { // the unordered one alone, then the three back
		if err := eng.Flush(); err != nil {
			t.Fatal(err)
		}
		if _, err := eng.Reload(loadRules(t, set...)); err != nil {
			t.Fatal(err)
		}
	}
	// Removed and put back within one batch, with an orphan held after:
	// that one survives a restart.
	if _, err := eng.Reload(loadRules(t, orphanTestRules[4:]...)); err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Reload(loadRules(t, seqs...)); err != nil {
		t.Fatal(err)
	}
	process(t, eng, logon("s-b", "b", t0, event.OutcomeSuccess))
	if err := eng.Flush(); err != nil {
		t.Fatal(err)
	}
	eng, err = NewEngine(loadRules(t, seqs...), st, opts)
	if err != nil {
		t.Fatal(err)
	}
	as := process(t, eng, logon("f-a", "a", t0.Add(-time.Minute), event.OutcomeFailure))
	if len(as) != 0 {
		t.Fatalf("a failure before a success held by removed sequences: %d alerts, want none", len(as))
	}
	if as := process(t, eng, logon("f-b", "b", t0.Add(-time.Minute), event.OutcomeFailure)); len(as) == 0 {
		t.Fatal("a failure before a success held after the sequences were put back: no alert")
	}
}

// TestOrphanBuffersPruned: once there are many, the buffers the watermark
// emptied leave memory; the others stay, and their orphans are adopted.
func TestOrphanBuffersPruned(t *testing.T) {
	eng, err := NewEngine(loadRules(t, orphanTestRules[:1]...), NewMemStore(), Options{Lateness: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2025, 5, 1, 9, 0, 0, 0, time.UTC)
	const users = 1500
	successes(t, eng, users, t0, time.Millisecond)
	if _, err := eng.Advance(t0.Add(1000 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if err := eng.Flush(); err != nil {
		t.Fatal(err)
	}
	if n := len(eng.orphanRules[event.KeyUser].states); n != users-1000 {
		t.Fatalf("%d orphan buffers in memory, want %d: those the watermark emptied go", n, users-1000)
	}
	as := process(t, eng, logon("f", "u1200", t0.Add(1100*time.Millisecond), event.OutcomeFailure))
	if len(as) != 1 {
		t.Fatalf("a failure before a kept orphan: %d alerts, want 1", len(as))
	}
}

// TestOrphanLogDropsOldLayout: at start, an orphan buffer kept as a state
// value (state version 7, its event a blob) releases the blob and goes,
// and so do the chunks of the first log (o/<n>).
func TestOrphanLogDropsOldLayout(t *testing.T) {
	st := NewMemStore()
	t0 := time.Date(2025, 5, 1, 9, 0, 0, 0, time.UTC)
	old := []orphan{{h: 1, t: nanos(t0), blob: 5, owners: []owner{{rule: 9, mask: 2}}}}
	v := binary.BigEndian.AppendUint64(nil, uint64(nanos(t0)))
	v = appendOrphans(append(v, 7, tagOrphans), old)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(st.Set([]byte("s/"+orphanRulePrefix+"user@1/a"), v))
	must(st.Set(append([]byte("e/"), binary.BigEndian.AppendUint64(nil, 5)...), append([]byte{1}, "an event"...)))
	must(st.Set(append([]byte("o/"), binary.BigEndian.AppendUint64(nil, 6)...), make([]byte, 20)))
	eng, err := NewEngine(loadRules(t, orphanTestRules[:3]...), st, Options{Lateness: time.Minute})
	must(err)
	must(eng.Flush())
	var left []string
	must(st.Scan(nil, func(k, _ []byte) error { left = append(left, string(k)); return nil }))
	if len(left) != 0 {
		t.Fatalf("keys left: %q, want none", left)
	}
	if n := eng.Stats().StateDiscarded; n != 1 {
		t.Fatalf("StateDiscarded %d, want 1", n)
	}
}

// TestOrphanBuffersBounded: past Options.MaxCached keys, a Flush empties
// the buffers whose orphans are oldest — in memory and in the log — and
// counts what it dropped; the newest stay and are adopted.
func TestOrphanBuffersBounded(t *testing.T) {
	st := NewMemStore()
	set := loadRules(t, orphanTestRules[:1]...)
	opts := Options{Lateness: time.Hour, MaxCached: 40}
	eng, err := NewEngine(set, st, opts)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2025, 5, 1, 9, 0, 0, 0, time.UTC)
	const users = 100
	successes(t, eng, users, t0, time.Second)
	if err := eng.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := eng.Flush(); err != nil { // the emptied buffers leave memory
		t.Fatal(err)
	}
	if n := eng.Stats().OrphansDropped; n != users-30 {
		t.Fatalf("%d orphans dropped, want %d (down to three quarters of 40 keys)", n, users-30)
	}
	eng, err = NewEngine(set, st, opts) // the log says the same
	if err != nil {
		t.Fatal(err)
	}
	if n := len(eng.orphanRules[event.KeyUser].states); n != 30 {
		t.Fatalf("after a restart %d orphan buffers, want the newest 30", n)
	}
	for _, c := range []struct {
		u    string
		want int
	}{{"u69", 0}, {"u70", 1}} {
		if as := process(t, eng, logon("f-"+c.u, c.u, t0, event.OutcomeFailure)); len(as) != c.want {
			t.Fatalf("failure before %s's success: %d alerts, want %d", c.u, len(as), c.want)
		}
	}
}

// TestSequenceEventsInLog: a sequence whose maxspan is within logMaxSpan
// keeps its events in the orphan log, not as blobs; its saved state names
// them there, a restarted engine builds the alert with the whole event
// from the chunk, and a chunk stays until the watermark passes maxspan
// after its newest such event — also when the same event is an orphan of
// another sequence, whose horizon alone would let the chunk go sooner.
func TestSequenceEventsInLog(t *testing.T) {
	set := loadRules(t, orphanTestRules[0], orphanTestRules[4]) // t.fs (10m, ordered), t.un (5m, unordered)
	st := NewMemStore()
	opts := Options{Lateness: time.Minute}
	newEngine := func() *Engine {
		t.Helper()
		eng, err := NewEngine(set, st, opts)
		if err != nil {
			t.Fatal(err)
		}
		return eng
	}
	t0 := time.Date(2025, 5, 1, 9, 0, 0, 0, time.UTC)
	raw := []byte(`{"big":"` + strings.Repeat("y", 3000) + `"}`)
	eng := newEngine()
	for i, u := range []string{"a", "b", "c"} {
		f := logon("f-"+u, u, t0.Add(time.Duration(i)*time.Second), event.OutcomeFailure)
		f.Raw = raw
		process(t, eng, f)
	}
	if err := eng.Flush(); err != nil {
		t.Fatal(err)
	}
	if c, b := chunkKeys(st), blobKeys(st); len(c) != 1 || len(b) != 0 {
		t.Fatalf("three first steps: %d chunks, %d blobs; want one chunk, no blob", len(c), len(b))
	}
	if n := loggedEntries(t, st); n != 3 {
		t.Fatalf("saved states name %d events in the log, want 3", n)
	}

	// The watermark passes the failures but not maxspan after them: the
	// chunk stays, and a restarted engine completes a's sequence.
	advance(t, eng, t0.Add(4*time.Minute))
	eng = newEngine()
	as := process(t, eng, logon("s-a", "a", t0.Add(5*time.Minute), event.OutcomeSuccess))
	if len(as) != 1 || as[0].RuleID != "t.fs" {
		t.Fatalf("success after a logged failure: %d alerts %+v, want t.fs", len(as), as)
	}
	if got := as[0].Steps[0].Events[0]; got.ID != "f-a" || !bytes.Equal(got.Raw, raw) {
		t.Fatalf("step 1 from the log: %q with %d bytes of raw, want f-a with %d", got.ID, len(got.Raw), len(raw))
	}
	if n := eng.Stats().EventsMissing; n != 0 {
		t.Fatalf("%d events missing", n)
	}
	if err := eng.Flush(); err != nil {
		t.Fatal(err)
	}

	// The failures' chunk goes once the watermark passes maxspan after the
	// newest of them (c's, t0+2s), not before.
	first := chunkKeys(st)[0]
	advance(t, eng, t0.Add(10*time.Minute+2*time.Second))
	if c := chunkKeys(st); len(c) == 0 || c[0] != first {
		t.Fatalf("watermark at maxspan after the newest failure: chunks %q, want %q kept", c, first)
	}
	advance(t, eng, t0.Add(10*time.Minute+3*time.Second))
	if c := chunkKeys(st); slices.Contains(c, first) {
		t.Fatalf("watermark past maxspan after the newest failure: chunks %q still hold %q", c, first)
	}

	// A success that is an orphan of t.fs (horizon: its time) and a step
	// of t.un (maxspan 5m) in the same Process: one record, kept 5m.
	t1 := t0.Add(time.Hour)
	s := logon("s-x", "x", t1, event.OutcomeSuccess)
	s.Raw = raw
	process(t, eng, s)
	if err := eng.Flush(); err != nil {
		t.Fatal(err)
	}
	advance(t, eng, t1.Add(2*time.Minute)) // past the orphan, within t.un's maxspan
	eng = newEngine()
	as = process(t, eng, event.Event{ID: "au-x", Time: t1.Add(3 * time.Minute), Type: "audit", User: "x"})
	if len(as) != 1 || as[0].RuleID != "t.un" {
		t.Fatalf("audit after the success: %d alerts %+v, want t.un", len(as), as)
	}
	if got := as[0].Steps[0].Events[0]; got.ID != "s-x" || !bytes.Equal(got.Raw, raw) {
		t.Fatalf("t.un's success from the log: %q with %d bytes of raw", got.ID, len(got.Raw))
	}
	if n := eng.Stats().EventsMissing; n != 0 {
		t.Fatalf("%d events missing", n)
	}
}
