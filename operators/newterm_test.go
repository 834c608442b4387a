package operators

import (
	"testing"
	"time"

	"github.com/vigil-sec/vigil/pipeline/event"
)

// TestNewTermResolution: a term seen again within lookback/termResolution
// of its recorded sighting does not rewrite the key's state; a later
// sighting does. The recorded sighting is what the next events are judged
// by — live and after a restart from the Store alike — so the term is new
// again once the lookback has passed since it, even if it was seen (within
// the resolution) after it.
func TestNewTermResolution(t *testing.T) {
	set := loadRules(t, "id: t.nt\nname: new country\n"+hdr+`kind: new_term
by: user
where: Type == "logon" && Country != ""
new_term: {field: Country, lookback: 1024m}
`) // a resolution of one minute
	st := &countingStore{MemStore: NewMemStore()}
	newEngine := func() *Engine {
		t.Helper()
		eng, err := NewEngine(set, st, Options{Lateness: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		return eng
	}
	t0 := time.Date(2025, 5, 1, 9, 0, 0, 0, time.UTC)
	signin := func(eng *Engine, id string, at time.Duration) int {
		t.Helper()
		ev := event.Event{ID: id, Time: t0.Add(at), Type: "logon", User: "u", Country: "DE"}
		as, err := eng.Process(event.KeyUser, "u", &ev)
		if err != nil {
			t.Fatal(err)
		}
		if err := eng.Flush(); err != nil {
			t.Fatal(err)
		}
		return len(as)
	}
	eng := newEngine()
	steps := []struct {
		id     string
		at     time.Duration
		alerts int
		writes int // state writes so far
	}{
		{"a", 0, 1, 1},                 // new: recorded
		{"b", 30 * time.Second, 0, 1},  // within a minute of the record: nothing written
		{"c", 59 * time.Second, 0, 1},  //
		{"d", time.Minute, 0, 2},       // a minute after it: recorded
		{"e", 119 * time.Second, 0, 2}, // not recorded
	}
	for _, s := range steps {
		if n := signin(eng, s.id, s.at); n != s.alerts || st.stateWrites != s.writes {
			t.Fatalf("sign-in %s: %d alerts, %d state writes; want %d and %d", s.id, n, st.stateWrites, s.alerts, s.writes)
		}
	}
	// The lookback since d's recorded sighting has passed, not since e's.
	later := time.Minute + 1024*time.Minute + time.Second
	copied := NewMemStore() // what a restart on another worker reads
	_ = st.Scan(nil, func(k, v []byte) error { return copied.Set(k, v) })
	restarted, err := NewEngine(set, copied, Options{Lateness: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if live, replayed := signin(eng, "f", later), signin(restarted, "f", later); live != 1 || replayed != 1 {
		t.Fatalf("a lookback after the recorded sighting: %d alerts live, %d after a restart; want 1 and 1", live, replayed)
	}
}
