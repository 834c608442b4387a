package kafkasrc

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-sec/vigil/pipeline/config"
	"github.com/vigil-sec/vigil/pipeline/connector"
	"github.com/vigil-sec/vigil/pipeline/connector/internal/conntest"
	"github.com/vigil-sec/vigil/pipeline/kafkatest"
)

func TestMain(m *testing.M) { kafkatest.Main(m) }

// fill produces n invented Event Hubs messages (records envelopes) to topic.
func fill(t *testing.T, topic string, n int) map[string]bool {
	cl := kafkatest.Client(t)
	want := map[string]bool{}
	var rs []*kgo.Record
	for i := range n {
		v := fmt.Sprintf(`{"records":[{"time":"2024-03-01T10:00:%02d.0000000Z","category":"SignInLogs","properties":{"n":%d}}]}`, i%60, i)
		want[v] = true
		rs = append(rs, &kgo.Record{Topic: topic, Key: []byte(fmt.Sprintf("k%d", i%7)), Value: []byte(v)})
	}
	if err := cl.ProduceSync(context.Background(), rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	return want
}

// cutAfter passes produces through and cancels the run once batches
// batches were acknowledged: a crash between produce and commit.
type cutAfter struct {
	connector.Producer
	batches int32
	n       atomic.Int32
	cancel  context.CancelFunc
}

func (c *cutAfter) ProduceSync(ctx context.Context, rs ...*kgo.Record) kgo.ProduceResults {
	res := c.Producer.ProduceSync(ctx, rs...)
	if c.n.Add(1) == c.batches {
		c.cancel()
	}
	return res
}

func runFor(t *testing.T, c *Consumer, out connector.Producer, ctx context.Context) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, out) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return")
	}
}

func committed(t *testing.T, group string) int64 {
	offs, err := kafkatest.Admin(t).FetchOffsets(context.Background(), group)
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Err == nil && o.At > 0 {
			sum += o.At
		}
	})
	return sum
}

// TestConsumerRestartLosesNothing: source and destination topics on the
// test broker; the connector crashes after some batches (between a
// produce and its commit), fails a whole run against a dead producer, and
// is restarted. Every source message reaches raw.<source>; only the
// batch in flight at the crash may be duplicated.
func TestConsumerRestartLosesNothing(t *testing.T) {
	prefix := kafkatest.TopicPrefix(t)
	src := kafkatest.NewTopic(t, nil, 3, nil)
	dst := conntest.Topic(t, prefix+"raw.entra", 2)
	const n = 300
	want := fill(t, src, n)
	group := prefix + "connector"
	mk := func() *Consumer {
		return &Consumer{ClientOpts: []kgo.Opt{kgo.SeedBrokers(kafkatest.Brokers(t)...)}, Topics: []string{src},
			Group: group, Source: "entra", Prefix: prefix, MaxPollRecords: 25, Logger: zerolog.Nop(),
			Metrics: connector.NewMetrics(nil)}
	}
	out := kafkatest.Client(t)

	// Run 1: Kafka refuses every produce (closed client): nothing may be
	// committed on the source.
	dead, err := kgo.NewClient(kgo.SeedBrokers(kafkatest.Brokers(t)...))
	if err != nil {
		t.Fatal(err)
	}
	dead.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	runFor(t, mk(), dead, ctx)
	cancel()
	if c := committed(t, group); c != 0 {
		t.Fatalf("%d offsets committed although nothing was produced", c)
	}

	// Run 2: crash after 4 acknowledged batches.
	ctx, cancel = context.WithCancel(context.Background())
	cut := &cutAfter{Producer: out, batches: 4, cancel: cancel}
	runFor(t, mk(), cut, ctx)
	cancel()
	mid := committed(t, group)
	if mid <= 0 || mid >= n {
		t.Fatalf("committed %d after the crash, want some but not all", mid)
	}

	// Run 3: restart, until every message is in raw.entra.
	ctx, cancel = context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mk().Run(ctx, out) }()
	deadline := time.Now().Add(20 * time.Second)
	for committed(t, group) < n && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := conntest.Consume(t, dst, n+100, 2*time.Second)
	seen := map[string]int{}
	for _, r := range got {
		seen[string(r.Value)]++
		if conntest.Header(r, connector.HeaderSource) != "entra" || !strings.HasPrefix(conntest.Header(r, HeaderOrigin), src+"/") || !strings.HasPrefix(string(r.Key), "k") {
			t.Fatalf("record headers %v key %q", r.Headers, r.Key)
		}
	}
	for v := range want {
		if seen[v] == 0 {
			t.Errorf("lost: %s", v)
		}
	}
	if dups := len(got) - len(seen); dups > 25*3 {
		t.Errorf("%d duplicates, more than one batch per partition", dups)
	}
	if len(seen) != n {
		t.Errorf("%d distinct records, want %d", len(seen), n)
	}
	t.Logf("%d records for %d messages (%d re-delivered after the crash)", len(got), n, len(got)-len(seen))
}

func TestConsumerConfig(t *testing.T) {
	tests := []struct {
		name string
		c    Consumer
		ok   bool
	}{
		{"ok", Consumer{Topics: []string{"eh"}, Group: "g", Source: "defender"}, true},
		{"per topic", Consumer{Topics: []string{"a", "b"}, Group: "g", SourceByTopic: map[string]string{"a": "x", "b": "y"}}, true},
		{"no topics", Consumer{Group: "g", Source: "s"}, false},
		{"no group", Consumer{Topics: []string{"eh"}, Source: "s"}, false},
		{"no source", Consumer{Topics: []string{"eh"}, Group: "g"}, false},
		{"bad per-topic source", Consumer{Topics: []string{"a"}, Group: "g", Source: "s", SourceByTopic: map[string]string{"a": "../x"}}, false},
	}
	for _, tt := range tests {
		if err := tt.c.validate(); (err == nil) != tt.ok {
			t.Errorf("%s: validate = %v", tt.name, err)
		}
	}
	if (&Consumer{}).Name() != DefaultName {
		t.Error("default name")
	}
}

func TestEventHubsOpts(t *testing.T) {
	const key = "c2VjcmV0LWtleS12YWx1ZQ=="
	opts, err := EventHubs(config.Secret("Endpoint=sb://contoso-ns.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey=" + key + ";EntityPath=defender"))
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	seeds := fmt.Sprint(cl.OptValue(kgo.SeedBrokers))
	if !strings.Contains(seeds, "contoso-ns.servicebus.windows.net:9093") {
		t.Errorf("seeds %s", seeds)
	}
	if cl.OptValue(kgo.SASL) == nil || cl.OptValue(kgo.DialTLSConfig) == nil {
		t.Error("SASL or TLS not set")
	}
	_, err = EventHubs(config.Secret("Endpoint=https://x/;SharedAccessKeyName=a;SharedAccessKey=" + key))
	if err == nil || strings.Contains(err.Error(), key) {
		t.Errorf("bad string: %v", err)
	}
}
