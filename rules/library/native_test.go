package library_test

import (
	"slices"
	"testing"
	"time"

	"github.com/expr-lang/expr/vm"

	"github.com/vigil-sec/vigil/benchmarks/loadgen"
	"github.com/vigil-sec/vigil/pipeline/event"
	"github.com/vigil-sec/vigil/pipeline/normalize"
	"github.com/vigil-sec/vigil/rules"
	"github.com/vigil-sec/vigil/rules/ruletest"
)

// TestNativeMatchesVM runs every condition of the library both ways, as
// closures (rules.Native, what the engine runs) and in expr's VM, over
// every fixture event, generated traffic, and the fixtures with fields
// blanked, and requires the same verdict each time: a step matches exactly
// when the VM says true. The VM sees the whole record decoded; the closures
// decode it themselves, lazily and only at the paths the set reads
// (rules.Set.FieldPaths), as in the engine.
func TestNativeMatchesVM(t *testing.T) {
	set, evs := nativeTestEvents(t)
	var conds, native, pure, checks, hits int
	var machine vm.VM
	for _, r := range set.Rules {
		steps := append([]*rules.Step{}, r.Steps...)
		if r.Until != nil {
			steps = append(steps, r.Until)
		}
		for _, s := range steps {
			if s.Where == nil {
				continue
			}
			conds++
			x := s.Where
			if x.Native == nil {
				continue
			}
			native++
			if x.Native.Fallbacks == 0 {
				pure++
			}
			for i := range evs {
				ev := evs[i]
				out, verr := runVM(&machine, x, ev)
				want := verr == nil && out == true
				// The engine's way: Fields decoded lazily, at the set's paths.
				lazy := evs[i]
				lazy.Fields = nil
				got, nerr := x.Native.Eval(&rules.Frame{Env: rules.NewEnv(&lazy), VM: &machine, Paths: set.FieldPaths()})
				if (nerr == nil && got) != want {
					t.Errorf("%s: %q on event %s (%s %s): native %v (err %v), VM %v (err %v)",
						r.ID, x.Source, ev.ID, ev.Source, ev.Action, got, nerr, out, verr)
				}
				checks++
				if want {
					hits++
				}
			}
		}
	}
	t.Logf("%d conditions: %d compiled to closures (%d with no expr subtree); %d checks, %d true", conds, native, pure, checks, hits)
	if native < conds*3/4 {
		t.Errorf("only %d of %d library conditions compile to closures", native, conds)
	}
	if hits == 0 {
		t.Error("no condition was true on any event: the comparison shows nothing")
	}
}

// nativeTestEvents loads the library and the events both ways are compared
// on: every fixture event, the same with the fields rules test most
// blanked, and generated traffic.
func nativeTestEvents(t *testing.T) (*rules.Set, []event.Event) {
	set, err := rules.LoadDir(libDir(t), rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var evs []event.Event

	for _, r := range set.Rules {
		for i := range r.Spec.Tests {
			got, err := ruletest.Events(&r.Spec.Tests[i])
			if err != nil {
				t.Fatalf("%s: %v", r.ID, err)
			}
			evs = append(evs, got...)
		}
	}
	n := len(evs)
	for i := 0; i < n; i++ { // the same events with the typed fields rules test most left empty
		ev := evs[i]
		ev.Action, ev.Process.Name, ev.DstIP, ev.Raw, ev.Fields = "", "", "", nil, nil
		evs = append(evs, ev)
	}
	g := loadgen.New(3, 20, 10)
	g.Attack = 0.05
	base := time.Date(2025, 10, 7, 2, 0, 0, 0, time.UTC)
	for i := 0; i < 2000; i++ {
		r := g.Next(base.Add(time.Duration(i) * time.Second))
		got, bad := normalize.Parse(r.Source, r.Value, base)
		if len(bad) > 0 {
			t.Fatalf("loadgen record: %v", bad[0])
		}
		evs = append(evs, got...)
	}

	return set, evs
}

// TestNativeValuesMatchVM runs every value expression of the library —
// keys, group_by, distinct, new_term fields, suppression keys, entities —
// both ways, as closures (rules.Values) and in expr's VM, over the same
// events, and requires the same strings in the same order (the VM's result
// flattened and without empty strings, as the engine reads it).
func TestNativeValuesMatchVM(t *testing.T) {
	set, evs := nativeTestEvents(t)
	var machine vm.VM
	var exprs, native, checks, nonEmpty int
	for _, r := range set.Rules {
		var xs []*rules.Expr
		add := func(x ...*rules.Expr) {
			for _, e := range x {
				if e != nil {
					xs = append(xs, e)
				}
			}
		}
		add(r.Key)
		add(r.Suppress.By...)
		if r.Threshold != nil {
			add(r.Threshold.Distinct)
			add(r.Threshold.GroupBy...)
		}
		if r.NewTerm != nil {
			add(r.NewTerm.Field)
		}
		steps := append([]*rules.Step{}, r.Steps...)
		if r.Until != nil {
			steps = append(steps, r.Until)
		}
		for _, s := range steps {
			for _, en := range s.Entities {
				add(en.Exprs...)
			}
		}
		for _, x := range xs {
			exprs++
			if x.Values == nil {
				continue
			}
			native++
			for i := range evs {
				ev := evs[i]
				out, verr := runVM(&machine, x, ev)
				lazy := evs[i]
				lazy.Fields = nil
				got, nerr := x.Values.Append(&rules.Frame{Env: rules.NewEnv(&lazy), VM: &machine, Paths: set.FieldPaths()}, nil)
				want := rules.ValueStrings(out)
				if (verr == nil) != (nerr == nil) || verr == nil && !slices.Equal(got, want) {
					t.Errorf("%s: %q on event %s: native %q (err %v), VM %q (err %v)", r.ID, x.Source, ev.ID, got, nerr, want, verr)
				}
				checks++
				if len(want) > 0 {
					nonEmpty++
				}
			}
		}
	}
	t.Logf("%d value expressions: %d compiled to closures; %d checks, %d with values", exprs, native, checks, nonEmpty)
	if native < exprs*3/4 {
		t.Errorf("only %d of %d library value expressions compile to closures", native, exprs)
	}
	if nonEmpty == 0 {
		t.Error("no value expression yielded anything: the comparison shows nothing")
	}
}

// runVM runs x in expr's VM on a copy of ev with its whole record decoded,
// the reference both native forms are compared with.
func runVM(m *vm.VM, x *rules.Expr, ev event.Event) (any, error) {
	ev.Fields = nil
	if x.UsesFields {
		_ = ev.DecodeFields()
	}
	return m.Run(x.Program, rules.NewEnv(&ev))
}
