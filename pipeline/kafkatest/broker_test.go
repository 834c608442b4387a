package kafkatest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// These tests run on whatever broker Get finds, so they prove that the
// broker (kfake or Apache Kafka) supports what Vigil's stages rely on.

func TestMain(m *testing.M) { Main(m) }

// consumeUntil reads topic from the start until it has n records or ctx ends.
func consumeUntil(ctx context.Context, t *testing.T, topic string, n int, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	opts = append([]kgo.Opt{
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	}, opts...)
	cl := Client(t, opts...)
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records from %s: %v", len(out), n, topic, ctx.Err())
		}
		if err := fs.Err0(); err != nil {
			t.Fatalf("fetch %s: %v", topic, err)
		}
		out = append(out, fs.Records()...)
	}
	return out
}

func TestProduceConsume(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := Client(t)
	topic := NewTopic(t, cl, 3, nil)
	if !strings.HasPrefix(topic, TopicPrefix(t)) {
		t.Fatalf("topic %q lacks the test prefix %q", topic, TopicPrefix(t))
	}

	const n = 30
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, &kgo.Record{
			Topic: topic,
			Key:   fmt.Appendf(nil, "user%d", i%5),
			Value: fmt.Appendf(nil, "v%02d", i),
		})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}

	got := consumeUntil(ctx, t, topic, n)
	if len(got) != n {
		t.Fatalf("consumed %d records, want %d", len(got), n)
	}
	// Same key, same partition, in produce order: what keyed correlation needs.
	partOf := map[string]int32{}
	lastVal := map[string]string{}
	var values []string
	for _, r := range got {
		k := string(r.Key)
		if p, ok := partOf[k]; ok && p != r.Partition {
			t.Errorf("key %s on partitions %d and %d", k, p, r.Partition)
		}
		partOf[k] = r.Partition
		if v := string(r.Value); v <= lastVal[k] {
			t.Errorf("key %s: %s after %s", k, v, lastVal[k])
		}
		lastVal[k] = string(r.Value)
		values = append(values, string(r.Value))
	}
	slices.Sort(values)
	for i, v := range values {
		if want := fmt.Sprintf("v%02d", i); v != want {
			t.Fatalf("values[%d] = %s, want %s", i, v, want)
		}
	}
}

func TestTransactionsReadCommitted(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	topic := NewTopic(t, nil, 1, nil)
	prod := Client(t,
		kgo.TransactionalID(TopicPrefix(t)+"txn"),
		kgo.DefaultProduceTopic(topic),
		kgo.TransactionTimeout(30*time.Second),
	)
	txns := []struct {
		values []string
		commit kgo.TransactionEndTry
	}{
		{[]string{"a1", "a2"}, kgo.TryCommit},
		{[]string{"b1"}, kgo.TryAbort},
		{[]string{"c1"}, kgo.TryCommit},
	}
	for i, tx := range txns {
		if err := prod.BeginTransaction(); err != nil {
			t.Fatalf("txn %d: begin: %v", i, err)
		}
		for _, v := range tx.values {
			if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatalf("txn %d: produce: %v", i, err)
			}
		}
		if err := prod.EndTransaction(ctx, tx.commit); err != nil {
			t.Fatalf("txn %d: end: %v", i, err)
		}
	}

	tests := []struct {
		name      string
		isolation kgo.IsolationLevel
		want      []string
	}{
		{"read_committed hides the aborted transaction", kgo.ReadCommitted(), []string{"a1", "a2", "c1"}},
		{"read_uncommitted sees it", kgo.ReadUncommitted(), []string{"a1", "a2", "b1", "c1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs := consumeUntil(ctx, t, topic, len(tt.want), kgo.FetchIsolationLevel(tt.isolation))
			var got []string
			for _, r := range recs {
				got = append(got, string(r.Value))
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("consumed %q, want %q", got, tt.want)
			}
		})
	}
}

// TestGroupTransactSession runs the consume → process → produce loop every
// stage runs: output records and consumed offsets commit in one transaction.
func TestGroupTransactSession(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cl := Client(t)
	in := NewTopic(t, cl, 2, nil)
	out := NewTopic(t, cl, 2, nil)
	const n = 20
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, &kgo.Record{Topic: in, Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "e%02d", i)})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce input: %v", err)
	}

	group := TopicPrefix(t) + "group"
	sess, err := kgo.NewGroupTransactSession(
		kgo.SeedBrokers(Brokers(t)...),
		kgo.TransactionalID(TopicPrefix(t)+"stage"),
		kgo.TransactionTimeout(30*time.Second),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(in),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(),
		kgo.DefaultProduceTopic(out),
	)
	if err != nil {
		t.Fatalf("session: %v", err)
	}
	done := 0
	for done < n {
		fs := sess.PollFetches(ctx)
		if ctx.Err() != nil {
			sess.Close()
			t.Fatalf("processed %d of %d: %v", done, n, ctx.Err())
		}
		if err := fs.Err0(); err != nil {
			sess.Close()
			t.Fatalf("poll: %v", err)
		}
		if fs.NumRecords() == 0 {
			continue
		}
		if err := sess.Begin(); err != nil {
			sess.Close()
			t.Fatalf("begin: %v", err)
		}
		var outRecs []*kgo.Record
		fs.EachRecord(func(r *kgo.Record) {
			outRecs = append(outRecs, &kgo.Record{Key: r.Key, Value: []byte(strings.ToUpper(string(r.Value)))})
		})
		perr := sess.ProduceSync(ctx, outRecs...).FirstErr()
		committed, err := sess.End(ctx, perr == nil)
		if perr != nil || err != nil {
			sess.Close()
			t.Fatalf("produce: %v; end: %v", perr, err)
		}
		if committed {
			done += len(outRecs)
		}
	}
	sess.Close()
	if done != n {
		t.Fatalf("processed %d records, want %d", done, n)
	}

	got := consumeUntil(ctx, t, out, n, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	var values []string
	for _, r := range got {
		values = append(values, string(r.Value))
	}
	slices.Sort(values)
	for i, v := range values {
		if want := fmt.Sprintf("E%02d", i); v != want {
			t.Fatalf("output[%d] = %s, want %s", i, v, want)
		}
	}

	// The group's committed offsets must equal the input's end offsets:
	// the offsets went in with the transactions.
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, in)
	if err != nil {
		t.Fatalf("end offsets: %v", err)
	}
	offs, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("fetch offsets: %v", err)
	}
	ends.Each(func(e kadm.ListedOffset) {
		c, ok := offs.Lookup(in, e.Partition)
		if !ok || c.At != e.Offset {
			t.Errorf("partition %d: committed %+v, end %d", e.Partition, c.Offset, e.Offset)
		}
	})
}

func TestNewTopicConfigs(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm := Admin(t)
	tests := []struct {
		partitions int32
		configs    map[string]string
	}{
		{4, map[string]string{"cleanup.policy": "compact"}},
		{1, map[string]string{"retention.ms": "3600000"}},
	}
	var names []string
	for _, tt := range tests {
		topic := NewTopic(t, nil, tt.partitions, tt.configs)
		names = append(names, topic)
		md, err := adm.Metadata(ctx, topic)
		if err != nil {
			t.Fatalf("metadata: %v", err)
		}
		if got := len(md.Topics[topic].Partitions); got != int(tt.partitions) {
			t.Errorf("%s: %d partitions, want %d", topic, got, tt.partitions)
		}
		rcs, err := adm.DescribeTopicConfigs(ctx, topic)
		if err != nil {
			t.Fatalf("describe configs: %v", err)
		}
		rc, err := rcs.On(topic, nil)
		if err != nil {
			t.Fatalf("describe configs %s: %v", topic, err)
		}
		for k, want := range tt.configs {
			found := false
			for _, c := range rc.Configs {
				if c.Key == k {
					found = true
					if c.MaybeValue() != want {
						t.Errorf("%s: %s = %q, want %q", topic, k, c.MaybeValue(), want)
					}
				}
			}
			if !found {
				t.Errorf("%s: config %s not described", topic, k)
			}
		}
	}
	if names[0] == names[1] {
		t.Errorf("NewTopic returned %q twice", names[0])
	}
}

func TestWaitForTopic(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := Client(t)
	adm := kadm.NewClient(cl)

	// Created behind kafkatest's back, as code under test would.
	topic := TopicPrefix(t) + "own"
	if _, err := adm.CreateTopic(ctx, 3, -1, nil, topic); err != nil {
		t.Fatalf("create: %v", err)
	}
	t.Cleanup(func() { deleteTopic(t, Brokers(t), topic) })
	WaitForTopic(t, cl, topic)
	// Ready means every partition takes a write at once.
	for p := range int32(3) {
		r := &kgo.Record{Topic: topic, Partition: p, Value: []byte("x")}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce to partition %d: %v", p, err)
		}
	}

	// A topic that does not exist is not ready, for the broker's reason,
	// and waiting for it ends with the context.
	missing := TopicPrefix(t) + "missing"
	if err := leadersReady(ctx, cl, missing); err == nil || !strings.Contains(err.Error(), "UNKNOWN_TOPIC_OR_PARTITION") {
		t.Fatalf("leadersReady(missing topic) = %v", err)
	}
	sctx, scancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer scancel()
	if err := waitForLeaders(sctx, cl, missing); err == nil || !strings.Contains(err.Error(), "waiting for leaders") {
		t.Fatalf("waiting for a missing topic: %v", err)
	}
}
