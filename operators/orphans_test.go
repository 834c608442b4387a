package operators

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/pipeline/alert"
	"github.com/vigil-sec/vigil/pipeline/event"
)

// orphanRules are ordered sequences whose later steps share events (a
// successful logon ends three of them, a device event a fourth), with an
// until, a repeated step and an unordered one beside them.
var orphanTestRules = []string{
	failThenSuccess("t.fs", "fail then success", "10m"),
	"id: t.fsu\nname: fail, success, audit\n" + hdr + `kind: sequence
by: user
maxspan: 20m
steps:
  - {name: fail, where: 'Type == "logon" && Outcome == "failure"'}
  - {name: ok, where: 'Type == "logon" && Outcome == "success"'}
  - {name: audit, where: 'Type == "audit"'}
`,
	"id: t.ffs\nname: two fails then success unless reset\n" + hdr + `kind: sequence
by: user
maxspan: 15m
steps:
  - {name: fail1, where: 'Type == "logon" && Outcome == "failure"'}
  - {name: fail2, where: 'Type == "logon" && Outcome == "failure"'}
  - {name: ok, where: 'Type == "logon" && Outcome == "success"'}
until: 'Type == "reset"'
`,
	"id: t.as\nname: audit then success\n" + hdr + `kind: sequence
by: user
maxspan: 5m
steps:
  - {name: audit, where: 'Type == "audit"'}
  - {name: ok, where: 'Type == "logon" && Outcome == "success"'}
`,
	"id: t.un\nname: success and audit in any order\n" + hdr + `kind: sequence
by: user
maxspan: 5m
unordered: true
steps:
  - {name: ok, where: 'Type == "logon" && Outcome == "success"'}
  - {name: audit, where: 'Type == "audit"'}
`,
}

// TestOrphanBufferMatchesOwnBuffers runs the same random stream — events
// out of order within the lateness, re-deliveries, flushes, restarts from
// the Store, a small cache, reloads without a rule and back — through an
// engine with orphan buffers and the events of its short sequences in the
// orphan log, and one whose sequences keep their orphans themselves and
// every event as a blob, and wants the same alerts from both, and
// consistent event counts in the first one's Store.
func TestOrphanBufferMatchesOwnBuffers(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { orphanDifferential(t, seed) })
	}
}

func orphanDifferential(t *testing.T, seed uint64) {
	type side struct {
		st      *countingStore
		eng     *Engine
		alerts  []string
		adopted int
		logged  int // sequence entries seen in the orphan log at a flush
	}
	opts := Options{Lateness: 2 * time.Minute, MaxCached: 30}
	build := func(s *side, own bool, rs []string) {
		t.Helper()
		eng, err := NewEngine(loadRules(t, rs...), s.st, opts)
		if err != nil {
			t.Fatal(err)
		}
		eng.noOrphans, eng.noLog = own, own
		s.eng = eng
	}
	sides := [2]*side{{st: &countingStore{MemStore: NewMemStore()}}, {st: &countingStore{MemStore: NewMemStore()}}}
	for i, s := range sides {
		build(s, i == 1, orphanTestRules)
	}
	record := func(s *side, as []alert.Alert) {
		for _, a := range as {
			s.alerts = append(s.alerts, a.RuleID+" "+a.ID+" "+strings.Join(a.EventIDs(), ","))
		}
	}
	next := xorshift(seed * 7919)
	t0 := time.Date(2025, 5, 1, 9, 0, 0, 0, time.UTC)
	now := t0
	users := []string{"a", "b", "c"}
	kinds := []struct {
		typ string
		out event.Outcome
	}{
		{"logon", event.OutcomeFailure}, {"logon", event.OutcomeFailure}, {"logon", event.OutcomeSuccess},
		{"logon", event.OutcomeSuccess}, {"audit", ""}, {"reset", ""},
	}
	var sent []event.Event
	for i := 0; i < 3000; i++ {
		var ev event.Event
		if len(sent) > 0 && next(15) == 0 { // a re-delivery
			ev = sent[len(sent)-1-next(min(len(sent), 5))]
		} else {
			step, k, u := 30, kinds[next(len(kinds))], users[next(len(users))]
			if i%500 < 100 { // a burst of one user's successes: more orphans than a step keeps
				step, k, u = 4, kinds[2+next(4)], users[0]
			}
			now = now.Add(time.Duration(next(step)) * time.Second)
			ev = event.Event{ID: fmt.Sprintf("e%d", i), Time: now.Add(-time.Duration(next(100)) * time.Second),
				Type: k.typ, Outcome: k.out, User: u}
			sent = append(sent, ev)
		}
		for _, s := range sides {
			if ev.Time.Before(s.eng.Watermark()) {
				continue // late for both: the watermarks move together
			}
			e := ev
			as, err := s.eng.Process(event.KeyUser, e.User, &e)
			if err != nil {
				t.Fatal(err)
			}
			record(s, as)
			s.adopted += s.eng.adopted
			s.eng.adopted = 0
		}
		switch next(50) {
		case 0, 1, 2, 3:
			for _, s := range sides {
				as, err := s.eng.Advance(now.Add(-3 * time.Minute))
				if err != nil {
					t.Fatal(err)
				}
				record(s, as)
				if err := s.eng.Flush(); err != nil {
					t.Fatal(err)
				}
			}
			checkBlobCounts(t, sides[0].st.MemStore, fmt.Sprintf("event %d, after a flush", i))
			sides[0].logged += loggedEntries(t, sides[0].st.MemStore)
		case 4: // restart from what was flushed
			for j, s := range sides {
				if err := s.eng.Flush(); err != nil {
					t.Fatal(err)
				}
				build(s, j == 1, orphanTestRules)
			}
		case 5: // a reload without one rule, then with all again
			drop := next(len(orphanTestRules))
			for _, s := range sides {
				if _, err := s.eng.Reload(loadRules(t, slicesWithout(orphanTestRules, drop)...)); err != nil {
					t.Fatal(err)
				}
				if _, err := s.eng.Reload(loadRules(t, orphanTestRules...)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for _, s := range sides {
		as, err := s.eng.Advance(now.Add(24 * time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		record(s, as)
		if err := s.eng.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	checkBlobCounts(t, sides[0].st.MemStore, "at the end")
	if n := sides[0].eng.Stats().EventsMissing; n != 0 {
		t.Fatalf("%d buffered events missing from the Store", n)
	}
	a, b := sides[0].alerts, sides[1].alerts
	if !slices.Equal(a, b) {
		for i := range min(len(a), len(b)) {
			if a[i] != b[i] {
				t.Fatalf("alert %d differs:\n  orphan buffers: %s\n  own buffers:    %s", i, a[i], b[i])
			}
		}
		t.Fatalf("%d alerts with orphan buffers, %d with own buffers", len(a), len(b))
	}
	if len(a) == 0 {
		t.Fatal("no alerts: the stream exercises nothing")
	}
	if sides[0].adopted == 0 || sides[1].adopted != 0 {
		t.Fatalf("orphans adopted: %d with orphan buffers, %d without; want some and none", sides[0].adopted, sides[1].adopted)
	}
	if sides[0].logged == 0 {
		t.Fatal("no sequence state named an event in the orphan log: the stream exercises nothing of it")
	}
	if keys := blobKeys(sides[0].st.MemStore); len(keys) != 0 {
		t.Fatalf("after everything expired: %d event keys left", len(keys))
	}
	if keys := chunkKeys(sides[0].st.MemStore); len(keys) != 0 {
		t.Fatalf("after everything expired: %d orphan log chunks left", len(keys))
	}
}

// countingStore counts the writes (sets and deletes) of state keys.
type countingStore struct {
	*MemStore
	stateWrites int
}

func (s *countingStore) Set(k, v []byte) error {
	if strings.HasPrefix(string(k), "s/") {
		s.stateWrites++
	}
	return s.MemStore.Set(k, v)
}

func (s *countingStore) Delete(k []byte) error {
	if strings.HasPrefix(string(k), "s/") {
		s.stateWrites++
	}
	return s.MemStore.Delete(k)
}

// TestOrphanBufferWritesOnce: a successful logon that is a later step of
// four ordered sequences, for users with nothing else buffered (the common case), is
// one state write when it arrives and one when the watermark passes it —
// not one per sequence — and a late first step still completes each.
func TestOrphanBufferWritesOnce(t *testing.T) {
	set := loadRules(t, orphanTestRules...)
	t0 := time.Date(2025, 5, 1, 9, 0, 0, 0, time.UTC)
	run := func(own bool) (writes int, alerts []string) {
		st := &countingStore{MemStore: NewMemStore()}
		eng, err := NewEngine(set, st, Options{Lateness: 2 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		eng.noOrphans = own
		for i := 0; i < 50; i++ {
			u := fmt.Sprintf("u%d", i)
			ev := event.Event{ID: "ok-" + u, Time: t0.Add(time.Duration(i) * time.Second), Type: "logon", Outcome: event.OutcomeSuccess, User: u}
			if _, err := eng.Process(event.KeyUser, u, &ev); err != nil {
				t.Fatal(err)
			}
		}
		if err := eng.Flush(); err != nil {
			t.Fatal(err)
		}
		// Two first steps, late: before the success they complete.
		for i := 0; i < 2; i++ {
			u := fmt.Sprintf("u%d", 40+i)
			ev := event.Event{ID: "fail-" + u, Time: t0.Add(30 * time.Second), Type: "logon", Outcome: event.OutcomeFailure, User: u}
			as, err := eng.Process(event.KeyUser, u, &ev)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range as {
				alerts = append(alerts, a.RuleID+" "+strings.Join(a.EventIDs(), ","))
			}
		}
		if _, err := eng.Advance(t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := eng.Flush(); err != nil {
			t.Fatal(err)
		}
		if n := stateKeys(st.MemStore); n != 0 {
			t.Fatalf("own buffers %v: %d state keys after everything expired", own, n)
		}
		return st.stateWrites, alerts
	}
	w, a := run(false)
	wOwn, aOwn := run(true)
	if !slices.Equal(a, aOwn) || len(a) != 2 {
		t.Fatalf("alerts with orphan buffers %q, with own buffers %q; want the same two", a, aOwn)
	}
	// Own buffers: per user, four ordered sequences and the unordered
	// one written, then deleted. Orphan buffers: per user the orphan
	// buffer and the unordered sequence; the two users whose failure came
	// adopt into the sequences that start with one — a few more writes.
	if w > 2*2*50+12 || wOwn != 2*5*50 {
		t.Fatalf("state writes: %d with orphan buffers, %d with own buffers", w, wOwn)
	}
	t.Logf("state writes: %d with orphan buffers, %d with own buffers", w, wOwn)
}

// TestOrphanBufferIsBounded: a burst of one user's successes keeps, per
// sequence and step, the newest perStepKeep (what the sequence would keep
// in its own buffer), not the whole burst.
func TestOrphanBufferIsBounded(t *testing.T) {
	eng, err := NewEngine(loadRules(t, orphanTestRules...), NewMemStore(), Options{Lateness: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2025, 5, 1, 9, 0, 0, 0, time.UTC)
	for i := 0; i < 40; i++ {
		ev := event.Event{ID: fmt.Sprint(i), Time: t0.Add(time.Duration(i) * time.Second), Type: "logon", Outcome: event.OutcomeSuccess, User: "u"}
		if _, err := eng.Process(event.KeyUser, "u", &ev); err != nil {
			t.Fatal(err)
		}
	}
	got := eng.orphanRules[event.KeyUser].states["u"].rs.orphans
	if len(got) != perStepKeep {
		t.Fatalf("%d orphans kept of 40, want %d", len(got), perStepKeep)
	}
	for i, o := range got {
		if want := nanos(t0.Add(time.Duration(40-perStepKeep+i) * time.Second)); o.t != want || len(o.owners) != 4 {
			t.Fatalf("orphan %d: time %d (want %d), %d owners (want 4)", i, o.t, want, len(o.owners))
		}
	}
}

// TestOrphanBufferReloadDropsClaims: a sequence removed by a reload and
// put back with the same version has lost what it held, orphans included
// — as it loses its own buffer — while the others keep theirs.
func TestOrphanBufferReloadDropsClaims(t *testing.T) {
	t0 := time.Date(2025, 5, 1, 9, 0, 0, 0, time.UTC)
	run := func(own bool) []string {
		eng, err := NewEngine(loadRules(t, orphanTestRules...), NewMemStore(), Options{Lateness: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		eng.noOrphans = own
		ok := event.Event{ID: "ok", Time: t0.Add(time.Minute), Type: "logon", Outcome: event.OutcomeSuccess, User: "u"}
		if _, err := eng.Process(event.KeyUser, "u", &ok); err != nil {
			t.Fatal(err)
		}
		if err := eng.Flush(); err != nil { // the orphan is in the Store, not only cached
			t.Fatal(err)
		}
		if _, err := eng.Reload(loadRules(t, slicesWithout(orphanTestRules, 0)...)); err != nil {
			t.Fatal(err)
		}
		if _, err := eng.Reload(loadRules(t, orphanTestRules...)); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, ev := range []event.Event{
			{ID: "audit", Time: t0.Add(30 * time.Second), Type: "audit", User: "u"},
			{ID: "fail", Time: t0, Type: "logon", Outcome: event.OutcomeFailure, User: "u"},
		} {
			as, err := eng.Process(event.KeyUser, "u", &ev)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range as {
				out = append(out, a.RuleID)
			}
		}
		return out
	}
	got, want := run(false), run(true)
	if !slices.Equal(got, want) || slices.Contains(got, "t.fs") || !slices.Contains(got, "t.as") {
		t.Fatalf("alerts with orphan buffers %q, with own buffers %q; want the same, t.as and not t.fs", got, want)
	}
}

// loggedEntries counts the sequence entries of the saved states whose
// events are in the orphan log.
func loggedEntries(t *testing.T, st *MemStore) int {
	t.Helper()
	n := 0
	_ = st.Scan(statePrefix, func(k, v []byte) error {
		var rs ruleState
		if err := decodeState(bytes.Clone(v), &rs); err != nil {
			t.Fatalf("state %q: %v", k, err)
		}
		for _, x := range rs.seq {
			if x.at.chunk != 0 {
				n++
			}
		}
		return nil
	})
	return n
}
