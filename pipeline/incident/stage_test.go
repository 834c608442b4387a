package incident_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-sec/vigil/pipeline/alert"
	"github.com/vigil-sec/vigil/pipeline/event"
	"github.com/vigil-sec/vigil/pipeline/incident"
	"github.com/vigil-sec/vigil/pipeline/kafkatest"
	"github.com/vigil-sec/vigil/pipeline/runtime"
)

func TestMain(m *testing.M) { kafkatest.Main(m) }

// An incident worker killed after producing the incident but before its
// transaction committed, then restarted, publishes the incident exactly
// once; a re-delivered alert adds nothing.
func TestIncidentExactlyOnceAcrossCrash(t *testing.T) {
	cl := kafkatest.Client(t)
	topics := incident.Topics{
		Alerts:    kafkatest.NewTopic(t, cl, 1, nil),
		Incidents: kafkatest.NewTopic(t, cl, 1, map[string]string{"cleanup.policy": "compact"}),
		DLQ:       kafkatest.NewTopic(t, cl, 1, nil),
		Changelog: kafkatest.NewTopic(t, cl, 1, map[string]string{"cleanup.policy": "compact"}),
	}
	group := kafkatest.TopicPrefix(t) + "incident"
	dir := t.TempDir()
	runner := func(crash func(int) bool) *runtime.Runner {
		r, err := runtime.NewRunner(incident.Stage(topics, incident.Options{}), runtime.Options{
			ClientOpts:        []kgo.Opt{kgo.SeedBrokers(kafkatest.Brokers(t)...)},
			Group:             group,
			TransactionalID:   group + "-w",
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
	a := alert.Alert{ID: "al-1", RuleID: "r", RuleVersion: "v", Title: "t", Severity: alert.SevHigh, Keyspace: event.KeyUser, Key: "u",
		Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Entities: []alert.Entity{{Type: alert.EntityUser, Value: "u@x.example"}},
		Steps: []alert.Step{{Name: "s", Events: []event.Event{{ID: "e1"}}}}}
	b, _ := json.Marshal(a)
	rec := func() *kgo.Record { return &kgo.Record{Topic: topics.Alerts, Key: []byte(a.ID), Value: b} }
	if err := cl.ProduceSync(context.Background(), rec()).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := runner(func(n int) bool { return n > 0 }).Run(context.Background()); !errors.Is(err, runtime.ErrCrashed) {
		t.Fatalf("first run: %v, want a crash", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runner(nil).Run(ctx) }()
	defer func() { cancel(); <-done }()
	// The same alert again, as an at-least-once upstream would re-send it.
	if err := cl.ProduceSync(context.Background(), rec()).FirstErr(); err != nil {
		t.Fatal(err)
	}

	rc := kafkatest.Client(t, kgo.ConsumeTopics(topics.Incidents), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got []*kgo.Record
	deadline := time.Now().Add(8 * time.Second)
	for time.Now().Before(deadline) {
		pctx, pcancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		rc.PollFetches(pctx).EachRecord(func(r *kgo.Record) { got = append(got, r) })
		pcancel()
	}
	if len(got) != 1 {
		t.Fatalf("incidents topic has %d records, want exactly 1", len(got))
	}
	var in incident.Incident
	if err := json.Unmarshal(got[0].Value, &in); err != nil {
		t.Fatal(err)
	}
	if string(got[0].Key) != in.ID || in.ID != incident.NewID("al-1") || in.Revision != 1 || len(in.Alerts) != 1 {
		t.Errorf("incident key %s id %s revision %d alerts %d", got[0].Key, in.ID, in.Revision, len(in.Alerts))
	}
}
