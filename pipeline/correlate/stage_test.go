package correlate_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-sec/vigil/operators"
	"github.com/vigil-sec/vigil/pipeline/alert"
	"github.com/vigil-sec/vigil/pipeline/correlate"
	"github.com/vigil-sec/vigil/pipeline/event"
	"github.com/vigil-sec/vigil/pipeline/kafkatest"
	"github.com/vigil-sec/vigil/pipeline/runtime"
	"github.com/vigil-sec/vigil/rules"
)

func TestMain(m *testing.M) { kafkatest.Main(m) }

// seqRule is a three-step sequence within maxspan: an hour keeps its
// pending steps' events as blobs, ten minutes in the orphan log
// (operators' logsEvents) — both must come back from the changelog.
func seqRule(maxspan string) string {
	return `
id: test.three_steps
name: Three steps
description: a, then b, then c by the same user within maxspan
severity: high
tactics: [TA0002]
techniques: [T1059]
kind: sequence
by: user
maxspan: ` + maxspan + `
steps:
  - name: first
    where: Action == "a"
    entities: {user: User}
  - name: second
    where: Action == "b"
  - name: third
    where: Action == "c"
    entities: {device: Device}
`
}

type fixture struct {
	events, alerts, dlq, changelog, group string
	brokers                               []string
	set                                   *rules.Set
}

func newFixture(t *testing.T, rule string) fixture {
	cl := kafkatest.Client(t)
	set, err := rules.LoadSources([]rules.Source{{Name: "seq.yaml", Data: []byte(rule)}}, nil, rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return fixture{
		events:    kafkatest.NewTopic(t, cl, 2, nil),
		alerts:    kafkatest.NewTopic(t, cl, 1, nil),
		dlq:       kafkatest.NewTopic(t, cl, 1, nil),
		changelog: kafkatest.NewTopic(t, cl, 2, map[string]string{"cleanup.policy": "compact"}),
		group:     kafkatest.TopicPrefix(t) + "correlate",
		brokers:   kafkatest.Brokers(t),
		set:       set,
	}
}

func (f fixture) runner(t *testing.T, id, dir string, crash func(int) bool) *runtime.Runner {
	st, err := correlate.Stage(correlate.Topics{
		Events:    map[event.Keyspace]string{event.KeyUser: f.events},
		Alerts:    f.alerts,
		DLQ:       f.dlq,
		Changelog: func(event.Keyspace) string { return f.changelog },
	}, func() *rules.Set { return f.set }, correlate.Options{Engine: operators.Options{Lateness: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := runtime.NewRunner(st, runtime.Options{
		ClientOpts:        []kgo.Opt{kgo.SeedBrokers(f.brokers...)},
		Group:             f.group,
		TransactionalID:   f.group + "-" + id,
		DataDir:           dir,
		Log:               zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
		IdleTick:          200 * time.Millisecond,
		CrashBeforeCommit: crash,
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var t0 = time.Date(2026, 5, 4, 8, 0, 0, 0, time.UTC)

func (f fixture) send(t *testing.T, id, action string, at time.Duration) {
	t.Helper()
	ev := event.Event{ID: id, Time: t0.Add(at), Source: "test", Category: event.CatEndpoint, Type: event.TypeProcess,
		Action: action, User: "erin@contoso.example", Device: "ws-17"}
	b, err := event.Marshal(&ev)
	if err != nil {
		t.Fatal(err)
	}
	if err := kafkatest.Client(t).ProduceSync(context.Background(), &kgo.Record{Topic: f.events, Key: []byte(ev.User), Value: b}).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// waitCommitted waits until the group has committed n records of the events topic.
func (f fixture) waitCommitted(t *testing.T, n int64) {
	t.Helper()
	adm := kafkatest.Admin(t)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		offs, err := adm.FetchOffsets(context.Background(), f.group)
		if err == nil {
			var sum int64
			offs.Each(func(o kadm.OffsetResponse) { sum += o.At })
			if sum >= n {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("group never committed %d records", n)
}

func (f fixture) alertsFor(t *testing.T, wait time.Duration) []alert.Alert {
	t.Helper()
	cl := kafkatest.Client(t, kgo.ConsumeTopics(f.alerts), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var out []alert.Alert
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			var a alert.Alert
			if err := json.Unmarshal(r.Value, &a); err != nil {
				t.Errorf("alert is not JSON: %v", err)
			}
			out = append(out, a)
		})
		cancel()
	}
	return out
}

// A correlate worker dies in the middle of a sequence — after step 1 is
// committed, with step 2 processed but not committed — and the partition
// is picked up by a restart of the same worker or by a second worker with
// an empty disk. Step 3 then completes the sequence exactly once, with
// every step's event: for a sequence whose events are blobs and for one
// whose events are in the orphan log.
func TestSequenceSurvivesCrash(t *testing.T) {
	for _, c := range []struct {
		name    string
		maxspan string
		step    time.Duration // between the steps
	}{{"blobs", "1h", 10 * time.Minute}, {"log", "10m", 4 * time.Minute}} {
		for _, mode := range []string{"restart", "second-worker"} {
			t.Run(c.name+"/"+mode, func(t *testing.T) { sequenceSurvivesCrash(t, seqRule(c.maxspan), c.step, mode) })
		}
	}
}

func sequenceSurvivesCrash(t *testing.T, rule string, step time.Duration, mode string) {
	f := newFixture(t, rule)
	dir := t.TempDir()
	var armed atomic.Bool
	var crashed atomic.Int32
	crash := func(records int) bool {
		if armed.Load() && records > 0 {
			crashed.Add(1)
			return true
		}
		return false
	}
	a := f.runner(t, "a", dir, crash)
	done := make(chan error, 1)
	go func() { done <- a.Run(context.Background()) }()

	f.send(t, "e1", "a", 0)
	f.waitCommitted(t, 1)
	armed.Store(true)
	f.send(t, "e2", "b", step)
	select {
	case err := <-done:
		if !errors.Is(err, runtime.ErrCrashed) {
			t.Fatalf("worker a: %v, want a crash", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("worker a never crashed")
	}

	id, d := "a", dir // a restart: same transactional id and disk
	if mode == "second-worker" {
		id, d = "b", t.TempDir() // a new worker: its state comes from the changelog
	}
	b := f.runner(t, id, d, nil)
	ctx, cancel := context.WithCancel(context.Background())
	doneB := make(chan error, 1)
	go func() { doneB <- b.Run(ctx) }()
	defer func() { cancel(); <-doneB }()
	f.send(t, "e3", "c", 2*step)

	got := f.alertsFor(t, 8*time.Second)
	if len(got) != 1 {
		t.Fatalf("%d alerts, want exactly 1: %+v", len(got), got)
	}
	al := got[0]
	if al.RuleID != "test.three_steps" || al.Key != "erin@contoso.example" || len(al.Steps) != 3 {
		t.Fatalf("alert = %+v", al)
	}
	for i, want := range []string{"e1", "e2", "e3"} {
		if len(al.Steps[i].Events) != 1 || al.Steps[i].Events[0].ID != want {
			t.Errorf("step %d events = %+v, want %s", i, al.Steps[i].Events, want)
		}
	}
	if al.ID != alert.MakeID(al.RuleID, al.RuleVersion, event.KeyUser, al.Key, []string{"e1", "e2", "e3"}) {
		t.Errorf("alert id %s is not the deterministic id", al.ID)
	}
}
