// Package ruletest runs the inline fixtures of rule files through the real
// operators, without Kafka, the way `promtool test rules` runs Prometheus
// rule tests: one engine per fixture over an in-memory store, output like
// `go test`, and a diff of expected and actual alerts on failure.
//
// It lives apart from package rules because it needs package operators,
// which itself imports rules.
package ruletest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/operators"
	"github.com/vigil-sec/vigil/pipeline/alert"
	"github.com/vigil-sec/vigil/pipeline/event"
	"github.com/vigil-sec/vigil/rules"
)

// fixtureLateness is the allowed lateness fixtures run with: fixtures list
// events in arrival order, which may be out of event-time order on
// purpose, and must never be refused as late.
const fixtureLateness = 7 * 24 * time.Hour

// RunTests loads the rules under dir and runs every fixture. It prints
// `--- PASS` / `--- FAIL` lines (PASS only when verbose) and a summary. err
// is set when the rules do not load; failed fixtures only count.
func RunTests(dir string, w io.Writer, verbose bool) (passed, failed int, err error) {
	set, err := rules.LoadDir(dir, rules.Options{})
	if err != nil {
		return 0, 0, err
	}
	return RunSet(set, w, verbose)
}

// RunSet runs the fixtures of every rule in set.
func RunSet(set *rules.Set, w io.Writer, verbose bool) (passed, failed int, err error) {
	start := time.Now()
	for _, r := range set.Rules {
		for i := range r.Spec.Tests {
			tc := &r.Spec.Tests[i]
			name := r.ID + "/" + strings.ReplaceAll(tc.Name, " ", "_")
			if verbose {
				fmt.Fprintf(w, "=== RUN   %s\n", name)
			}
			t0 := time.Now()
			problems, runErr := runOne(set, r, tc)
			if runErr != nil {
				problems = append(problems, runErr.Error())
			}
			d := time.Since(t0).Seconds()
			if len(problems) > 0 {
				failed++
				fmt.Fprintf(w, "--- FAIL: %s (%.2fs)\n    %s:%d\n", name, d, r.File, tc.Line)
				for _, p := range problems {
					fmt.Fprintf(w, "    %s\n", strings.ReplaceAll(p, "\n", "\n    "))
				}
				continue
			}
			passed++
			if verbose {
				fmt.Fprintf(w, "--- PASS: %s (%.2fs)\n", name, d)
			}
		}
	}
	status := "ok"
	if failed > 0 {
		status = "FAIL"
	}
	fmt.Fprintf(w, "%s\t%d passed, %d failed\t%.3fs\n", status, passed, failed, time.Since(start).Seconds())
	return passed, failed, nil
}

// runOne runs one fixture and returns what is wrong with its result.
func runOne(set *rules.Set, r *rules.Rule, tc *rules.TestSpec) ([]string, error) {
	evs, err := Events(tc)
	if err != nil {
		return nil, err
	}
	eng, err := operators.NewEngine(set.Only(r.ID), operators.NewMemStore(), operators.Options{Lateness: fixtureLateness})
	if err != nil {
		return nil, err
	}
	var got []alert.Alert
	var maxT time.Time
	for i := range evs {
		ev := &evs[i]
		if ev.Time.After(maxT) {
			maxT = ev.Time
		}
		for _, k := range ev.Keys(r.Keyspace) {
			as, err := eng.Process(r.Keyspace, k, ev)
			if err != nil {
				return nil, fmt.Errorf("event %s: %w", ev.ID, err)
			}
			got = append(got, as...)
		}
	}
	final := maxT.Add(r.Horizon() + time.Second)
	if tc.Advance != "" {
		final, err = time.Parse(time.RFC3339Nano, tc.Advance)
		if err != nil {
			return nil, fmt.Errorf("advance: %w", err)
		}
	}
	as, err := eng.Advance(final)
	if err != nil {
		return nil, err
	}
	got = append(got, as...)
	return Check(tc.Expect, got), nil
}

// Events decodes a fixture's events: normalized-event JSON written as YAML.
func Events(tc *rules.TestSpec) ([]event.Event, error) {
	out := make([]event.Event, 0, len(tc.Events))
	for i := range tc.Events {
		n := &tc.Events[i]
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, fmt.Errorf("line %d: %w", n.Line, err)
		}
		b, err := json.Marshal(jsonable(v))
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n.Line, err)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		var ev event.Event
		if err := dec.Decode(&ev); err != nil {
			return nil, fmt.Errorf("line %d: event: %w", n.Line, err)
		}
		if ev.Time.IsZero() {
			return nil, fmt.Errorf("line %d: event without time", n.Line)
		}
		ev.Time = ev.Time.UTC()
		if ev.ID == "" {
			ev.ID = fmt.Sprintf("%s-%d", strings.ReplaceAll(tc.Name, " ", "_"), i+1)
		}
		out = append(out, ev)
	}
	return out, nil
}

// jsonable converts YAML-decoded values to what encoding/json accepts.
func jsonable(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = jsonable(e)
		}
		return x
	case map[any]any:
		m := map[string]any{}
		for k, e := range x {
			m[fmt.Sprint(k)] = jsonable(e)
		}
		return m
	case []any:
		for i, e := range x {
			x[i] = jsonable(e)
		}
		return x
	}
	return v
}

// Check compares alerts with what a fixture expects.
func Check(exp rules.ExpectSpec, got []alert.Alert) []string {
	var problems []string
	if exp.Count != nil && *exp.Count != len(got) {
		problems = append(problems, fmt.Sprintf("got %d alerts, want %d", len(got), *exp.Count))
	}
	for _, e := range exp.Alerts {
		if !anyMatch(e, got) {
			problems = append(problems, "missing alert: "+describeExpected(e))
		}
	}
	for _, e := range exp.Unexpected {
		if anyMatch(e, got) {
			problems = append(problems, "unexpected alert: "+describeExpected(e))
		}
	}
	if len(problems) > 0 {
		var b strings.Builder
		b.WriteString("actual alerts:")
		if len(got) == 0 {
			b.WriteString(" none")
		}
		for _, a := range got {
			b.WriteString("\n  + " + describeAlert(a))
		}
		problems = append(problems, b.String())
	}
	return problems
}

func anyMatch(e rules.ExpectedAlert, got []alert.Alert) bool {
	for _, a := range got {
		if matches(e, a) {
			return true
		}
	}
	return false
}

func matches(e rules.ExpectedAlert, a alert.Alert) bool {
	if e.Key != nil && *e.Key != a.Key {
		return false
	}
	if e.Events != nil {
		want := append([]string(nil), e.Events...)
		have := a.EventIDs()
		sort.Strings(want)
		sort.Strings(have)
		if strings.Join(want, "\x00") != strings.Join(have, "\x00") {
			return false
		}
	}
	for typ, vals := range e.Entities {
		for _, v := range vals {
			found := false
			for _, en := range a.Entities {
				if string(en.Type) == typ && en.Value == v {
					found = true
				}
			}
			if !found {
				return false
			}
		}
	}
	return true
}

func describeExpected(e rules.ExpectedAlert) string {
	var parts []string
	if e.Key != nil {
		parts = append(parts, "key="+*e.Key)
	}
	if e.Events != nil {
		parts = append(parts, "events=["+strings.Join(e.Events, ",")+"]")
	}
	if len(e.Entities) > 0 {
		var ents []string
		for t, vs := range e.Entities {
			for _, v := range vs {
				ents = append(ents, t+":"+v)
			}
		}
		sort.Strings(ents)
		parts = append(parts, "entities⊇["+strings.Join(ents, ",")+"]")
	}
	if len(parts) == 0 {
		return "any alert"
	}
	return strings.Join(parts, " ")
}

func describeAlert(a alert.Alert) string {
	var ents []string
	for _, e := range a.Entities {
		ents = append(ents, string(e.Type)+":"+e.Value)
	}
	return fmt.Sprintf("key=%s events=[%s] entities=[%s]", a.Key, strings.Join(a.EventIDs(), ","), strings.Join(ents, ","))
}
