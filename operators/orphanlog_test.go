package operators

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/pipeline/event"
)

// chunkKeys lists the orphan log's chunks in the store.
func chunkKeys(st *MemStore) []string {
	var out []string
	_ = st.Scan(orphanLogPrefix, func(k, _ []byte) error { out = append(out, string(k)); return nil })
	return out
}

// TestOrphanLog: the orphans of a batch are one chunk of the orphan log,
// not blobs; a restarted engine reads an adopted orphan's event back from
// it whole; the chunk stays while the watermark has not passed its newest
// event and goes once it has.
func TestOrphanLog(t *testing.T) {
	set := loadRules(t, orphanTestRules[:4]...) // the ordered ones: t.un buffers its own
	st := NewMemStore()
	opts := Options{Lateness: 2 * time.Minute}
	eng, err := NewEngine(set, st, opts)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2025, 5, 1, 9, 0, 0, 0, time.UTC)
	raw := []byte(`{"big":"` + strings.Repeat("x", 3000) + `"}`)
	for i, u := range []string{"a", "b", "c"} { // three orphans, one chunk
		ok := event.Event{ID: "s-" + u, Time: t0.Add(-time.Duration(i) * time.Second), Type: "logon", Outcome: event.OutcomeSuccess, User: u, Raw: raw}
		if _, err := eng.Process(event.KeyUser, u, &ok); err != nil {
			t.Fatal(err)
		}
	}
	if err := eng.Flush(); err != nil {
		t.Fatal(err)
	}
	if c, b := chunkKeys(st), blobKeys(st); len(c) != 1 || len(b) != 0 {
		t.Fatalf("three orphans: %d chunks and %d blobs, want one chunk and no blob", len(c), len(b))
	}

	// A restarted engine has nothing cached: the failure that makes
	// three sequences adopt a's success reads its event from the chunk.
	eng, err = NewEngine(set, st, opts)
	if err != nil {
		t.Fatal(err)
	}
	fail := event.Event{ID: "f-a", Time: t0.Add(-time.Minute), Type: "logon", Outcome: event.OutcomeFailure, User: "a"}
	as, err := eng.Process(event.KeyUser, "a", &fail)
	if err != nil {
		t.Fatal(err)
	}
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

	// The chunk's newest event is a's success at t0.
	if _, err := eng.Advance(t0); err != nil {
		t.Fatal(err)
	}
	if err := eng.Flush(); err != nil {
		t.Fatal(err)
	}
	if c := chunkKeys(st); len(c) != 1 {
		t.Fatalf("watermark at the chunk's newest event: %d chunks, want it kept", len(c))
	}
	if _, err := eng.Advance(t0.Add(time.Nanosecond)); err != nil {
		t.Fatal(err)
	}
	if err := eng.Flush(); err != nil {
		t.Fatal(err)
	}
	if c := chunkKeys(st); len(c) != 0 {
		t.Fatalf("watermark past the chunk's newest event: %d chunks, want none", len(c))
	}
}
