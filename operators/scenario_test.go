package operators

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/pipeline/alert"
	"github.com/vigil-sec/vigil/pipeline/event"
	"github.com/vigil-sec/vigil/rules"
)

// Scenario scripts (testdata/*.txt) drive a real Engine over a MemStore.
// One command per line; '#' starts a comment.
//
//	rule                     YAML of one rule until a line "end" (repeatable)
//	lateness 5m              engine's allowed lateness (before the first event)
//	event k=v ...            feed an event: id, t (15:04[:05[.000]] on 2025-01-01 or RFC 3339),
//	                         source, type, action, category, outcome, user, device, src_ip,
//	                         dst_ip, process, cmd, country, bytes_out, app;
//	                         ks= and key= choose the keyspace and key (default: the first
//	                         rule's keyspace, once per key of Event.Keys like normalize)
//	late k=v ...             like event, but the engine must refuse it with ErrLate
//	advance 10:30            Advance(watermark)
//	watermark 10:25          the engine's watermark must be this
//	expect rule key=K events=a,b [as=X] [id=X] [entity=type:value]
//	                         the oldest unchecked alert must be this one (events in step order)
//	expect none              no unchecked alert remains
//	restart                  Flush, drop the engine, build a new one over the same store
//	snapshot / rollback      copy the store / drop the engine and go back to the copy
//	                         (an aborted transaction: the input is then re-delivered)
//
// At the end, every alert must have been checked.
func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) { runScenario(t, f) })
	}
}

var base = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func parseT(s string) (time.Time, error) {
	for _, l := range []string{"15:04", "15:04:05", "15:04:05.000"} {
		if v, err := time.Parse(l, s); err == nil {
			return base.Add(time.Duration(v.Hour())*time.Hour + time.Duration(v.Minute())*time.Minute +
				time.Duration(v.Second())*time.Second + time.Duration(v.Nanosecond())), nil
		}
	}
	return time.Parse(time.RFC3339Nano, s)
}

type scenario struct {
	t        *testing.T
	file     string
	line     int
	srcs     []rules.Source
	set      *rules.Set
	store    *MemStore
	snap     *MemStore
	eng      *Engine
	lateness time.Duration
	got      []alert.Alert
	ids      map[string]string
}

func (s *scenario) fatalf(format string, args ...any) {
	s.t.Helper()
	s.t.Fatalf("%s:%d: %s", s.file, s.line, fmt.Sprintf(format, args...))
}

func (s *scenario) engine() *Engine {
	if s.eng != nil {
		return s.eng
	}
	if s.set == nil {
		set, err := rules.LoadSources(s.srcs, nil, rules.Options{})
		if err != nil {
			s.fatalf("rules: %v", err)
		}
		s.set = set
		s.store = NewMemStore()
	}
	eng, err := NewEngine(s.set, s.store, Options{Lateness: s.lateness, SweepEvery: time.Second})
	if err != nil {
		s.fatalf("engine: %v", err)
	}
	s.eng = eng
	return eng
}

func runScenario(t *testing.T, file string) {
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := &scenario{t: t, file: file, ids: map[string]string{}}
	sc := bufio.NewScanner(f)
	var ruleBuf []string
	inRule := false
	for sc.Scan() {
		s.line++
		line := sc.Text()
		if inRule {
			if strings.TrimSpace(line) == "end" {
				inRule = false
				s.srcs = append(s.srcs, rules.Source{Name: fmt.Sprintf("%s:rule%d", file, len(s.srcs)+1), Data: []byte(strings.Join(ruleBuf, "\n"))})
				ruleBuf = nil
				continue
			}
			ruleBuf = append(ruleBuf, line)
			continue
		}
		if i := strings.Index(line, "#"); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		switch cmd, args := fields[0], fields[1:]; cmd {
		case "rule":
			inRule = true
		case "lateness":
			d, err := time.ParseDuration(args[0])
			if err != nil {
				s.fatalf("lateness: %v", err)
			}
			s.lateness = d
		case "event", "late":
			s.feed(cmd == "late", args)
		case "advance":
			wm, err := parseT(args[0])
			if err != nil {
				s.fatalf("advance: %v", err)
			}
			as, err := s.engine().Advance(wm)
			if err != nil {
				s.fatalf("advance: %v", err)
			}
			s.got = append(s.got, as...)
		case "watermark":
			wm, err := parseT(args[0])
			if err != nil {
				s.fatalf("watermark: %v", err)
			}
			if got := s.engine().Watermark(); !got.Equal(wm) {
				s.fatalf("watermark = %s, want %s", got.Format(time.RFC3339Nano), wm.Format(time.RFC3339Nano))
			}
		case "expect":
			s.expect(args)
		case "restart":
			if err := s.engine().Flush(); err != nil {
				s.fatalf("flush: %v", err)
			}
			s.eng = nil
			s.engine()
		case "snapshot":
			if err := s.engine().Flush(); err != nil {
				s.fatalf("flush: %v", err)
			}
			s.snap = NewMemStore()
			for k, v := range s.store.m {
				s.snap.put(k, bytes.Clone(*v)) // a copy: the store reuses value buffers
			}
		case "rollback":
			s.store = s.snap
			s.eng = nil
			s.engine()
		default:
			s.fatalf("unknown command %q", cmd)
		}
	}
	if len(s.got) > 0 {
		s.fatalf("unchecked alerts at end of script:\n%s", describe(s.got))
	}
}

func describe(as []alert.Alert) string {
	var b strings.Builder
	for _, a := range as {
		fmt.Fprintf(&b, "  %s key=%s events=%s\n", a.RuleID, a.Key, strings.Join(a.EventIDs(), ","))
	}
	return b.String()
}

func (s *scenario) feed(late bool, args []string) {
	ev := &event.Event{}
	var ks event.Keyspace
	key := ""
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			s.fatalf("bad field %q (want k=v)", a)
		}
		v = strings.ReplaceAll(v, "_", " ")
		switch k {
		case "id":
			ev.ID = v
		case "t":
			tm, err := parseT(v)
			if err != nil {
				s.fatalf("t: %v", err)
			}
			ev.Time = tm
		case "source":
			ev.Source = v
		case "type":
			ev.Type = v
		case "action":
			ev.Action = v
		case "category":
			ev.Category = event.Category(v)
		case "outcome":
			ev.Outcome = event.Outcome(v)
		case "user":
			ev.User = v
		case "device":
			ev.Device = v
		case "src_ip":
			ev.SrcIP = v
		case "dst_ip":
			ev.DstIP = v
		case "process":
			ev.Process.Name = v
		case "cmd":
			ev.Process.CommandLine = v
		case "country":
			ev.Country = v
		case "app":
			ev.App = v
		case "bytes_out":
			fmt.Sscan(v, &ev.BytesOut)
		case "ks":
			ks = event.Keyspace(v)
		case "key":
			key = v
		default:
			s.fatalf("unknown event field %q", k)
		}
	}
	eng := s.engine()
	if ks == "" {
		ks = s.set.Rules[0].Keyspace
	}
	keys := []string{key}
	if key == "" {
		keys = ev.Keys(ks)
	}
	for _, k := range keys {
		as, err := eng.Process(ks, k, ev)
		if late {
			if !errors.Is(err, ErrLate) {
				s.fatalf("event %s: want ErrLate, got %v", ev.ID, err)
			}
			continue
		}
		if err != nil {
			s.fatalf("event %s: %v", ev.ID, err)
		}
		s.got = append(s.got, as...)
	}
}

func (s *scenario) expect(args []string) {
	if len(args) == 1 && args[0] == "none" {
		if len(s.got) > 0 {
			s.fatalf("want no alert, got:\n%s", describe(s.got))
		}
		return
	}
	if len(s.got) == 0 {
		s.fatalf("want alert %v, got none", args)
	}
	a := s.got[0]
	s.got = s.got[1:]
	if a.RuleID != args[0] {
		s.fatalf("want alert of %s, got:\n%s", args[0], describe([]alert.Alert{a}))
	}
	for _, kv := range args[1:] {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "key":
			if a.Key != v {
				s.fatalf("alert key = %q, want %q", a.Key, v)
			}
		case "events":
			if got := strings.Join(a.EventIDs(), ","); got != v {
				s.fatalf("alert events = %s, want %s", got, v)
			}
		case "as":
			s.ids[v] = a.ID
		case "id":
			if s.ids[v] != a.ID {
				s.fatalf("alert id = %s, want %s (%s)", a.ID, s.ids[v], v)
			}
		case "entity":
			typ, val, _ := strings.Cut(v, ":")
			found := false
			var all []string
			for _, e := range a.Entities {
				all = append(all, string(e.Type)+":"+e.Value)
				if string(e.Type) == typ && e.Value == val {
					found = true
				}
			}
			if !found {
				sort.Strings(all)
				s.fatalf("alert lacks entity %s; has %v", v, all)
			}
		default:
			s.fatalf("unknown expect field %q", k)
		}
	}
}
