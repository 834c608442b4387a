package operators

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/pipeline/alert"
	"github.com/vigil-sec/vigil/pipeline/event"
)

const (
	rlSeq = "id: t.seq\nname: a then b\n" + hdr + `kind: sequence
by: user
maxspan: 1h
steps:
  - {name: a, where: 'Action == "A"'}
  - {name: b, where: 'Action == "B"'}
`
	rlAbs = "id: t.abs\nname: x without y\n" + hdr + `kind: absence
by: user
window: 10m
anchor: {where: 'Action == "X"'}
expect: {where: 'Action == "Y"'}
`
	rlGone = "id: t.gone\nname: z\n" + hdr + "kind: match\nby: user\nwhere: 'Action == \"Z\"'\n"
	rlNew  = "id: t.new\nname: n\n" + hdr + "kind: match\nby: user\nwhere: 'Action == \"N\"'\n"
)

func rlThreshold(n string) string {
	return "id: t.th\nname: failures\n" + hdr + `kind: threshold
by: user
window: 10m
where: Outcome == "failure"
threshold: {having: count >= ` + n + `}
`
}

// TestReloadKeepsUnchangedState: after a reload, a rule whose id and
// version did not change continues its partial match and its absence
// deadline; a changed rule starts fresh (its stored state is deleted); a
// removed rule's state is deleted; the report names each.
func TestReloadKeepsUnchangedState(t *testing.T) {
	set1 := loadRules(t, rlSeq, rlAbs, rlThreshold("3"), rlGone)
	st := NewMemStore()
	eng, err := NewEngine(set1, st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC)
	var got []alert.Alert
	feed := func(id string, at time.Duration, action string, outcome event.Outcome) {
		t.Helper()
		ev := event.Event{ID: id, Time: t0.Add(at), Action: action, Outcome: outcome, User: "kim"}
		as, err := eng.Process(event.KeyUser, "kim", &ev)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, as...)
	}
	feed("x1", time.Minute, "X", "")
	feed("f1", 2*time.Minute, "", event.OutcomeFailure)
	feed("f2", 3*time.Minute, "", event.OutcomeFailure)
	feed("z1", 3*time.Minute, "Z", "")
	if err := eng.Flush(); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].RuleID != "t.gone" {
		t.Fatalf("before reload: alerts %v", ruleIDs(got))
	}
	got = nil
	oldTh := set1.Rule("t.th").Version
	thPrefix := "s/t.th@" + oldTh + "/"
	if !hasPrefix(st, thPrefix) {
		t.Fatalf("threshold state not stored under %s", thPrefix)
	}
	feed("a1", 3*time.Minute, "A", "") // not flushed: the cached state must carry over

	set2 := loadRules(t, rlSeq, rlAbs, rlThreshold("2"), rlNew)
	ch, err := eng.Reload(set2)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ch.Added, []string{"t.new"}) || !slices.Equal(ch.Changed, []string{"t.th"}) ||
		!slices.Equal(ch.Removed, []string{"t.gone"}) || ch.Kept != 2 || ch.Empty() {
		t.Fatalf("changes = %+v", ch)
	}
	feed("b1", 4*time.Minute, "B", "") // completes t.seq: its unflushed partial match survived
	if err := eng.Flush(); err != nil {
		t.Fatal(err)
	}
	if hasPrefix(st, thPrefix) {
		t.Errorf("state of the changed rule's old version still stored")
	}

	feed("f3", 5*time.Minute, "", event.OutcomeFailure) // t.th (count >= 2) starts fresh: 1 failure
	feed("n1", 5*time.Minute, "N", "")
	feed("z2", 5*time.Minute, "Z", "")
	as, err := eng.Advance(t0.Add(12 * time.Minute)) // past x1 + 10m
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, as...)
	// No t.th (fresh: one failure), no t.gone (removed); t.abs's deadline
	// survived the reload.
	if ids, want := ruleIDs(got), []string{"t.seq", "t.new", "t.abs"}; !slices.Equal(ids, want) {
		t.Fatalf("after reload: alerts %v, want %v", ids, want)
	}
	if evs := got[0].EventIDs(); !slices.Equal(evs, []string{"a1", "b1"}) {
		t.Errorf("sequence events = %v", evs)
	}
}

// TestReloadAbsenceDeadlineSurvives: the pending deadline of an unchanged
// absence rule fires after a reload; a changed one's does not.
func TestReloadAbsenceDeadlineSurvives(t *testing.T) {
	for _, change := range []bool{false, true} {
		set1 := loadRules(t, rlAbs)
		eng, err := NewEngine(set1, NewMemStore(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC)
		ev := event.Event{ID: "x1", Time: t0, Action: "X", User: "kim"}
		if _, err := eng.Process(event.KeyUser, "kim", &ev); err != nil {
			t.Fatal(err)
		}
		abs := rlAbs
		if change {
			abs = strings.Replace(abs, "window: 10m", "window: 20m", 1)
		}
		if _, err := eng.Reload(loadRules(t, abs)); err != nil {
			t.Fatal(err)
		}
		as, err := eng.Advance(t0.Add(30 * time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{false: 1, true: 0}[change]; len(as) != want {
			t.Errorf("changed=%v: %d alerts, want %d", change, len(as), want)
		}
	}
}

func ruleIDs(as []alert.Alert) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.RuleID)
	}
	return out
}

func hasPrefix(st *MemStore, p string) bool {
	found := false
	_ = st.Scan([]byte(p), func(_, _ []byte) error { found = true; return nil })
	return found
}
