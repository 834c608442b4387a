package kafkatest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// maxNamePart bounds the test-name part of a prefix. Kafka topic names are at
// most 249 characters; the prefix leaves ample room for Vigil's topic names
// (changelog.<stage>.<store> is the longest).
const maxNamePart = 40

var (
	prefixes sync.Map // testing.TB -> string
	topicSeq atomic.Uint64
)

// TopicPrefix returns this test's topic prefix, such as
// "t3f9a1c2e-TestSequence-late.": unique in the test binary and, through the
// random part, across binaries and runs sharing one broker. The same test
// gets the same prefix on every call; subtests get their own. It uses only
// [a-zA-Z0-9-] before the final dot: Kafka treats '.' and '_' as colliding in
// metric names, so a prefix with '_' could clash with another test's '.'.
func TopicPrefix(t testing.TB) string {
	t.Helper()
	if p, ok := prefixes.Load(t); ok {
		return p.(string)
	}
	p := makePrefix(randomHex(4), t.Name())
	actual, loaded := prefixes.LoadOrStore(t, p)
	if !loaded {
		t.Cleanup(func() { prefixes.Delete(t) })
	}
	return actual.(string)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails: crypto/rand panics rather than err
	return hex.EncodeToString(b)
}

// makePrefix builds "t<random>-<sanitized name>." from a random part and a
// test name.
func makePrefix(random, name string) string {
	var b strings.Builder
	dash := false
	for _, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if !ok {
			if !dash && b.Len() > 0 {
				b.WriteByte('-')
				dash = true
			}
			continue
		}
		if b.Len() >= maxNamePart {
			break
		}
		b.WriteRune(r)
		dash = false
	}
	s := strings.TrimRight(b.String(), "-")
	if s == "" {
		return "t" + random + "."
	}
	return "t" + random + "-" + s + "."
}

// NewTopic creates a topic named TopicPrefix(t)+"topic<n>" with the given
// partition count (-1: broker default) and topic configs (nil for none),
// waits until every partition has a leader, and deletes it when the test
// ends. cl may be nil, then a client of its own is used.
func NewTopic(t testing.TB, cl *kgo.Client, partitions int32, configs map[string]string) string {
	t.Helper()
	if cl == nil {
		cl = Client(t)
	}
	name := fmt.Sprintf("%stopic%d", TopicPrefix(t), topicSeq.Add(1))
	adm := kadm.NewClient(cl) // not closed: closing would close cl
	var cfg map[string]*string
	if len(configs) > 0 {
		cfg = make(map[string]*string, len(configs))
		for k, v := range configs {
			cfg[k] = kadm.StringPtr(v)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := adm.CreateTopic(ctx, partitions, -1, cfg, name); err != nil {
		t.Fatalf("kafkatest: create topic %s: %v", name, err)
	}
	brokers := Brokers(t)
	t.Cleanup(func() { deleteTopic(t, brokers, name) })
	if err := waitForLeaders(ctx, cl, name); err != nil {
		t.Fatalf("kafkatest: topic %s: %v", name, err)
	}
	return name
}

// WaitForTopic blocks until topic exists and every partition has a leader,
// failing the test after 30 s. Use it when the code under test creates its
// own topics: on Apache Kafka a topic is briefly unknown to the broker after
// CreateTopics returns. cl may be nil, then a client of its own is used.
func WaitForTopic(t testing.TB, cl *kgo.Client, topic string) {
	t.Helper()
	if cl == nil {
		cl = Client(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := waitForLeaders(ctx, cl, topic); err != nil {
		t.Fatalf("kafkatest: topic %s: %v", topic, err)
	}
}

// waitForLeaders polls metadata until the topic exists with a leader for
// every partition. Apache Kafka acknowledges CreateTopics once the
// controller has committed it; brokers learn of it a moment later, and a
// test that produces in that moment sees UNKNOWN_TOPIC_OR_PARTITION. It
// sends raw metadata requests: kadm's Metadata answers from a cache that
// would keep "unknown topic" for MetadataMinAge (5 s).
func waitForLeaders(ctx context.Context, cl *kgo.Client, topic string) error {
	var last error
	for {
		err := leadersReady(ctx, cl, topic)
		if err == nil {
			return nil
		}
		// Keep the broker's reason rather than the deadline that cut a
		// request short.
		if last == nil || ctx.Err() == nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for leaders: %w (last: %v)", ctx.Err(), last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func leadersReady(ctx context.Context, cl *kgo.Client, topic string) error {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	for _, t := range resp.Topics {
		if t.Topic == nil || *t.Topic != topic {
			continue
		}
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			return err
		}
		if len(t.Partitions) == 0 {
			return errors.New("no partitions yet")
		}
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return fmt.Errorf("partition %d: %w", p.Partition, err)
			}
			if p.Leader < 0 {
				return fmt.Errorf("partition %d has no leader yet", p.Partition)
			}
		}
		return nil
	}
	return errors.New("not in metadata")
}

// deleteTopic removes a test's topic so a shared broker does not fill up. It
// uses a client of its own because the test may have closed its client.
// Failure only logs: the topic name is unique, a leftover harms nobody.
func deleteTopic(t testing.TB, brokers []string, name string) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Logf("kafkatest: delete topic %s: %v", name, err)
		return
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := kadm.NewClient(cl).DeleteTopics(ctx, name)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Logf("kafkatest: delete topic %s: %v", name, err)
	}
}
