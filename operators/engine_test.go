package operators

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/vigil-sec/vigil/pipeline/event"
	"github.com/vigil-sec/vigil/rules"
)

func loadRules(t testing.TB, ys ...string) *rules.Set {
	t.Helper()
	var srcs []rules.Source
	for i, y := range ys {
		srcs = append(srcs, rules.Source{Name: fmt.Sprintf("r%d.yaml", i), Data: []byte(y)})
	}
	set, err := rules.LoadSources(srcs, nil, rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

const hdr = "description: d\nseverity: high\ntactics: [credential-access]\ntechniques: [T1110]\n"

var spray = "id: t.spray\nname: spray\n" + hdr + `kind: threshold
by: user
window: 10m
where: Outcome == "failure"
threshold: {having: count >= 2}
`

var chained = "id: t.chain\nname: spray then success\n" + hdr + `kind: sequence
by: user
maxspan: 1h
steps:
  - {name: spray, rule: t.spray}
  - {name: ok, where: 'Type == "logon" && Outcome == "success"', entities: {ip: SrcIP}}
`

// TestChainingAndCrashRecovery: a threshold alert re-enters as an event
// (AlertEvent) and is step 1 of a sequence; the engine is dropped after
// step 1 (Flush, new Engine over the same store) and step 2 still fires.
func TestChainingAndCrashRecovery(t *testing.T) {
	set := loadRules(t, spray, chained)
	st := NewMemStore()
	eng, err := NewEngine(set, st, Options{Lateness: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2025, 5, 1, 9, 0, 0, 0, time.UTC)
	var alerts []string
	var feed func(eng *Engine, ev event.Event)
	feed = func(eng *Engine, ev event.Event) {
		t.Helper()
		as, err := eng.Process(event.KeyUser, "eve@x.example", &ev)
		if err != nil {
			t.Fatal(err)
		}
		for i := range as {
			alerts = append(alerts, as[i].RuleID)
			if as[i].RuleID == "t.spray" {
				ae := AlertEvent(&as[i])
				if ae.Action != "t.spray" || ae.User != "eve@x.example" || ae.Category != event.CatAlert {
					t.Fatalf("alert event = %+v", ae)
				}
				feed(eng, ae)
			}
		}
	}
	feed(eng, event.Event{ID: "f1", Time: t0, Outcome: event.OutcomeFailure, User: "eve@x.example"})
	feed(eng, event.Event{ID: "f2", Time: t0.Add(time.Minute), Outcome: event.OutcomeFailure, User: "eve@x.example"})
	if err := eng.Flush(); err != nil {
		t.Fatal(err)
	}
	eng2, err := NewEngine(set, st, Options{Lateness: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if !eng2.Watermark().Equal(eng.Watermark()) {
		t.Errorf("watermark not restored: %v vs %v", eng2.Watermark(), eng.Watermark())
	}
	feed(eng2, event.Event{ID: "s1", Time: t0.Add(5 * time.Minute), Type: event.TypeLogon, Outcome: event.OutcomeSuccess, User: "eve@x.example", SrcIP: "198.51.100.4"})
	if fmt.Sprint(alerts) != "[t.spray t.chain]" {
		t.Fatalf("alerts = %v", alerts)
	}
}

func TestLateEventsAreCountedAndRefused(t *testing.T) {
	set := loadRules(t, spray)
	eng, _ := NewEngine(set, NewMemStore(), Options{Lateness: time.Minute})
	t0 := time.Date(2025, 5, 1, 9, 0, 0, 0, time.UTC)
	ev := event.Event{ID: "a", Time: t0, Outcome: event.OutcomeFailure, User: "u"}
	if _, err := eng.Process(event.KeyUser, "u", &ev); err != nil {
		t.Fatal(err)
	}
	old := event.Event{ID: "b", Time: t0.Add(-61 * time.Second), Outcome: event.OutcomeFailure, User: "u"}
	_, err := eng.Process(event.KeyUser, "u", &old)
	if !errors.Is(err, ErrLate) || eng.Stats().Late != 1 {
		t.Fatalf("err = %v, late = %d", err, eng.Stats().Late)
	}
	within := event.Event{ID: "c", Time: t0.Add(-59 * time.Second), Outcome: event.OutcomeFailure, User: "u"}
	as, err := eng.Process(event.KeyUser, "u", &within)
	if err != nil || len(as) != 1 {
		t.Fatalf("within lateness: %v %v", as, err)
	}
}

// TestStateExpires: once the watermark passes a key's horizon its state
// leaves the store (bounded state for keys that go quiet).
func TestStateExpires(t *testing.T) {
	set := loadRules(t, chained, spray)
	st := NewMemStore()
	eng, _ := NewEngine(set, st, Options{SweepEvery: time.Minute})
	t0 := time.Date(2025, 5, 1, 9, 0, 0, 0, time.UTC)
	ev := event.Event{ID: "a", Time: t0, Outcome: event.OutcomeFailure, User: "u"}
	if _, err := eng.Process(event.KeyUser, "u", &ev); err != nil {
		t.Fatal(err)
	}
	if err := eng.Flush(); err != nil {
		t.Fatal(err)
	}
	before := st.Len()
	if before < 2 {
		t.Fatalf("expected state and watermark in store, have %d keys", before)
	}
	if _, err := eng.Advance(t0.Add(11 * time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := eng.Flush(); err != nil {
		t.Fatal(err)
	}
	if st.Len() != 1 { // only m/engine
		var keys []string
		_ = st.Scan(nil, func(k, _ []byte) error { keys = append(keys, string(k)); return nil })
		t.Fatalf("state not expired: %v", keys)
	}
}

func libraryDir() string {
	_, file, _, _ := runtime.Caller(0)
	return file[:len(file)-len("operators/engine_test.go")] + "rules/library"
}

var _ = os.Stat

// TestDispatchMemo: the memoised dispatch gives, for any event values,
// the steps the per-field lookups give, in their order — also after the
// memo starts over — and keeps its own copies of the values (an event's
// strings may share a record buffer that is reused).
func TestDispatchMemo(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	set, err := rules.LoadDir(filepath.Join(filepath.Dir(file), "..", "rules", "library"), rules.Options{})
	if err != nil {
		t.Skipf("no rule library: %v", err)
	}
	eng, err := NewEngine(set, NewMemStore(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	direct := func(d *dispatch, v [nDispatch]string) []stepRef {
		var out []stepRef
		for f, m := range d.byField {
			out = append(out, m[v[f]]...)
		}
		return append(out, d.any...)
	}
	same := func(a, b []stepRef) bool {
		if len(a) != len(b) {
			return false
		}
		for i := range a {
			if a[i] != b[i] {
				return false
			}
		}
		return true
	}
	for _, d := range eng.disp {
		var vocab [nDispatch][]string
		for f, m := range d.byField {
			vocab[f] = append(vocab[f], "", "unseen")
			for v := range m {
				vocab[f] = append(vocab[f], v)
			}
		}
		rnd := rand.New(rand.NewPCG(1, 2))
		for i := 0; i < 3*maxDispatchMemo; i++ {
			var v [nDispatch]string
			for f := range v {
				v[f] = vocab[f][rnd.IntN(len(vocab[f]))]
			}
			if got, want := d.steps(v), direct(d, v); !same(got, want) {
				t.Fatalf("%q: %d steps, want %d", v, len(got), len(want))
			}
		}
		// Values that hash alike (they differ only in bytes memoHash
		// does not read) still get their own steps, past the probe limit
		// too.
		for a := range d.byField[dAction] {
			if len(a) < 4 {
				continue
			}
			for i := 0; i < maxProbe+4; i++ {
				b := []byte(a)
				b[1] = byte('0' + i)
				for _, x := range []string{a, string(b)} {
					v := [nDispatch]string{dAction: x}
					if got, want := d.steps(v), direct(d, v); !same(got, want) {
						t.Fatalf("%q after a value that hashes alike: %d steps, want %d", v, len(got), len(want))
					}
				}
			}
			break
		}
		buf := []byte("ActionXSourceX")
		v := [nDispatch]string{dAction: unsafe.String(&buf[0], 7), dSource: unsafe.String(&buf[7], 7)}
		want := direct(d, v)
		d.steps(v)
		copy(buf, "OtherAOtherBXX")
		key := [nDispatch]string{dAction: "ActionX", dSource: "SourceX"}
		if got, ok := d.memo.get(memoHash(&key), &key); !ok || !same(got, want) {
			t.Fatalf("the memo's key changed with the event's buffer")
		}
	}
}
