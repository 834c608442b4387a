package detect

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/benchmarks/loadgen"
	"github.com/vigil-sec/vigil/operators"
	"github.com/vigil-sec/vigil/pipeline/alert"
	"github.com/vigil-sec/vigil/pipeline/event"
	"github.com/vigil-sec/vigil/pipeline/normalize"
	"github.com/vigil-sec/vigil/rules"
)

// mix returns generated traffic (loadgen: Defender, Entra, NSG flows over
// a small population, 2% encoded PowerShell) as one JSON-lines input per
// source, plus the committed fixtures.
func mix(t testing.TB, records int) []Input {
	g := loadgen.New(7, 40, 15)
	g.Attack = 0.02
	base := time.Date(2025, 10, 7, 2, 0, 0, 0, time.UTC)
	bySource := map[string]*bytes.Buffer{}
	for i := range records {
		r := g.Next(base.Add(time.Duration(i) * 900 * time.Millisecond))
		b := bySource[r.Source]
		if b == nil {
			b = &bytes.Buffer{}
			bySource[r.Source] = b
		}
		b.Write(r.Value)
		b.WriteByte('\n')
	}
	in := fixtures(t)
	for _, src := range slices.Sorted(maps.Keys(bySource)) {
		in = append(in, Reader("loadgen-"+src+".jsonl", src, bytes.NewReader(bySource[src].Bytes())))
	}
	return in
}

// events reads inputs as Run does and returns the events in Run's order.
func events(t testing.TB, inputs []Input) []event.Event {
	var items []item
	for i, in := range inputs {
		data, rv, err := in.read(recv)
		if err != nil {
			t.Fatal(err)
		}
		msgs, _ := split(data, in.Hint)
		for _, m := range msgs {
			evs, bad := normalize.Parse(in.Hint, m.value, rv)
			if len(bad) > 0 {
				t.Fatalf("%s: %v", in.Name, bad[0])
			}
			for _, ev := range evs {
				items = append(items, item{ev: ev, input: i})
			}
		}
	}
	sortEvents(items)
	out := make([]event.Event, len(items))
	for i := range items {
		out[i] = items[i].ev
	}
	return out
}

// streaming models the correlate stage over partitioned events.<ks>
// topics: one engine per (keyspace, partition) chosen by a hash of the
// key, as the stage builds one per assigned partition; Advance to the
// engine's own watermark and Flush after every batch of records (the
// stage's EndBatch); alerts written back as events to the partition of
// each of their keys. shared instead runs one engine for every keyspace
// (the shape of rules/library's end-to-end tests).
type streaming struct {
	set    *rules.Set
	parts  int
	shared *operators.Engine
	engs   map[event.Keyspace][]*operators.Engine
	alerts map[string]alert.Alert
	late   int
}

func newStreaming(t testing.TB, set *rules.Set, parts int, shared bool) *streaming {
	s := &streaming{set: set, parts: parts, engs: map[event.Keyspace][]*operators.Engine{}, alerts: map[string]alert.Alert{}}
	newEng := func() *operators.Engine {
		e, err := operators.NewEngine(set, operators.NewMemStore(), operators.Options{Lateness: DefaultLateness})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	if shared {
		s.shared = newEng()
		return s
	}
	for _, ks := range set.Keyspaces() {
		for range parts {
			s.engs[ks] = append(s.engs[ks], newEng())
		}
	}
	return s
}

func (s *streaming) engine(ks event.Keyspace, key string) *operators.Engine {
	if s.shared != nil {
		return s.shared
	}
	h := fnv.New32a()
	h.Write([]byte(key))
	return s.engs[ks][int(h.Sum32()%uint32(s.parts))]
}

func (s *streaming) all() []*operators.Engine {
	if s.shared != nil {
		return []*operators.Engine{s.shared}
	}
	var out []*operators.Engine
	for _, ks := range s.set.Keyspaces() {
		out = append(out, s.engs[ks]...)
	}
	return out
}

func (s *streaming) process(t testing.TB, ev *event.Event) {
	for _, ks := range s.set.Keyspaces() {
		for _, key := range ev.Keys(ks) {
			as, err := s.engine(ks, key).Process(ks, key, ev)
			if err != nil {
				s.late++
				continue
			}
			s.emit(t, as)
		}
	}
}

func (s *streaming) emit(t testing.TB, as []alert.Alert) {
	for i := range as {
		s.alerts[as[i].ID] = as[i]
		ae := operators.AlertEvent(&as[i])
		s.process(t, &ae)
	}
}

func (s *streaming) run(t testing.TB, evs []event.Event) {
	var maxT time.Time
	for i := range evs {
		ev := evs[i]
		if ev.Time.After(maxT) {
			maxT = ev.Time
		}
		s.process(t, &ev)
		if (i+1)%100 == 0 {
			for _, e := range s.all() {
				as, err := e.Advance(e.Watermark())
				if err != nil {
					t.Fatal(err)
				}
				s.emit(t, as)
				if err := e.Flush(); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	final := maxT.Add(s.set.MaxHorizon() + DefaultLateness + time.Second)
	for _, e := range s.all() {
		as, err := e.Advance(final)
		if err != nil {
			t.Fatal(err)
		}
		s.emit(t, as)
	}
}

// TestSameAlertsAsPartitionedStreaming: the alert ids detect prints are
// exactly those of the correlate stage's model with 1, 3 and 8 partitions
// per keyspace and of one engine shared by all keyspaces, over generated
// traffic with the fixtures' attack in it. Alert ids hash rule, key and
// evidence only, so partitioning must not change them.
func TestSameAlertsAsPartitionedStreaming(t *testing.T) {
	set := library(t)
	in := mix(t, 3000)
	res := detect(t, in, Options{})
	if len(res.errors) > 0 {
		t.Fatalf("errors: %+v", res.errors[0])
	}
	got := map[string]bool{}
	perRule := map[string]int{}
	for _, a := range res.alerts {
		got[a.ID] = true
		perRule[a.RuleID]++
	}
	if len(got) < 20 || len(perRule) < 5 {
		t.Fatalf("the mix gives %d alerts of %d rules (%v): too few to compare", len(got), len(perRule), perRule)
	}
	t.Logf("%d events, %d alerts: %v", res.stats.Events, len(got), perRule)
	evs := events(t, mix(t, 3000)) // fresh readers: Run consumed the first ones
	for _, c := range []struct {
		parts  int
		shared bool
	}{{1, true}, {1, false}, {3, false}, {8, false}} {
		t.Run(fmt.Sprintf("parts=%d,shared=%v", c.parts, c.shared), func(t *testing.T) {
			s := newStreaming(t, set, c.parts, c.shared)
			s.run(t, evs)
			var missing, extra []string
			for id := range got {
				if _, ok := s.alerts[id]; !ok {
					missing = append(missing, id)
				}
			}
			for id, a := range s.alerts {
				if !got[id] {
					extra = append(extra, a.RuleID+" "+a.Key)
				}
			}
			if len(missing)+len(extra) > 0 {
				t.Errorf("detect has %d alerts the stage model lacks, the model %d detect lacks: %s",
					len(missing), len(extra), strings.Join(extra, "; "))
			}
		})
	}
}
