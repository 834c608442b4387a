package enrich

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-sec/vigil/pipeline/event"
	"github.com/vigil-sec/vigil/pipeline/kafkatest"
)

func TestMain(m *testing.M) { kafkatest.Main(m) }

// Worker a publishes what it learns to a compacted entities topic; worker
// b follows the topic and enriches with a's associations. A record of an
// aborted transaction and a malformed record are never applied, and a
// tombstone removes what it names.
func TestFollow(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	cl := kafkatest.Client(t)
	// One partition, so the test knows the order records are read in.
	topic := kafkatest.NewTopic(t, cl, 1, map[string]string{"cleanup.policy": "compact"})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	a := openTable(t, Options{})
	changes := observe(t, a,
		signIn(at(0), alice, aliceOID, homeIP, "", event.OutcomeSuccess),
		netConn(at(time.Minute), "ConnectionSuccess", ws17, alice, ip17, extIP),
		netConn(at(time.Minute), "ConnectionSuccess", ws22, "", ip22, extIP),
	)

	// An aborted transaction carrying an association nobody observed.
	txn := kafkatest.Client(t, kgo.TransactionalID(kafkatest.TopicPrefix(t)+"txn"), kgo.DefaultProduceTopic(topic))
	if err := txn.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	aborted := appendKey(nil, byte(KindIPDevice), "10.66.0.1", "ghost")
	if err := txn.ProduceSync(ctx, &kgo.Record{Key: aborted, Value: encodeValue(at(time.Minute).UnixNano())}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := txn.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}

	var recs []*kgo.Record
	recs = append(recs, &kgo.Record{Topic: topic, Key: []byte("not an entities key"), Value: []byte("x")})
	for _, c := range changes {
		recs = append(recs, &kgo.Record{Topic: topic, Key: c.Key, Value: c.Value})
	}
	// Then ws22's address expires (a tombstone), and a sentinel record
	// tells the test that everything before it was read.
	recs = append(recs,
		&kgo.Record{Topic: topic, Key: appendKey(nil, byte(KindIPDevice), ip22, ws22)},
		&kgo.Record{Topic: topic, Key: appendKey(nil, byte(KindIPDevice), "10.77.0.1", "sentinel"), Value: encodeValue(at(2 * time.Minute).UnixNano())},
	)
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	b := openTable(t, Options{})
	fctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- Follow(fctx, []kgo.Opt{kgo.SeedBrokers(brokers...)}, topic, b) }()

	for {
		f := enrich(t, b, flow(at(3*time.Minute), "10.77.0.1", ""))
		if slices.Equal(f.Related.Devices, []string{"sentinel"}) {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("Follow returned early: %v", err)
		case <-ctx.Done():
			t.Fatal("worker b never applied the sentinel record")
		case <-time.After(20 * time.Millisecond):
		}
	}
	f := enrich(t, b, flow(at(3*time.Minute), ip17, extIP))
	if !slices.Equal(f.Related.Devices, []string{ws17}) || !slices.Equal(f.Related.Users, []string{alice}) {
		t.Errorf("flow from %s: related %+v, want device %s and user %s", ip17, f.Related, ws17, alice)
	}
	if f := enrich(t, b, flow(at(3*time.Minute), ip22, "")); len(f.Related.Devices) != 0 {
		t.Errorf("tombstoned %s still resolves to %v", ip22, f.Related.Devices)
	}
	if f := enrich(t, b, flow(at(3*time.Minute), "10.66.0.1", "")); len(f.Related.Devices) != 0 {
		t.Errorf("aborted record applied: %v", f.Related.Devices)
	}
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Follow after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("Follow did not return after cancel")
	}
}
