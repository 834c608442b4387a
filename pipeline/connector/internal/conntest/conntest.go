// Package conntest helps the connector tests: it creates raw topics with
// the names a connector will write to and reads them back from the test
// broker that pipeline/kafkatest provides.
package conntest

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-sec/vigil/pipeline/kafkatest"
)

// Topic creates the topic name with partitions partitions (-1: broker
// default), waits for its leaders and deletes it when the test ends.
// Connector tests need exact names (prefix + "raw." + source), which
// kafkatest.NewTopic does not give.
func Topic(t testing.TB, name string, partitions int32) string {
	t.Helper()
	cl := kafkatest.Client(t)
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := adm.CreateTopic(ctx, partitions, -1, nil, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
	t.Cleanup(func() {
		dcl, err := kgo.NewClient(kgo.SeedBrokers(kafkatest.Brokers(t)...))
		if err != nil {
			return
		}
		defer dcl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = kadm.NewClient(dcl).DeleteTopics(ctx, name)
	})
	kafkatest.WaitForTopic(t, cl, name)
	return name
}

// Consume reads topic from the start until it has n records or timeout
// passes, and returns what it read ordered by (partition, offset). It
// fails the test on a fetch error; fewer than n records is left to the
// caller to judge.
func Consume(t testing.TB, topic string, n int, timeout time.Duration) []*kgo.Record {
	t.Helper()
	cl := kafkatest.Client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			break
		}
		fs.EachError(func(topic string, p int32, err error) {
			t.Fatalf("fetch %s/%d: %v", topic, p, err)
		})
		out = append(out, fs.Records()...)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Partition != out[j].Partition {
			return out[i].Partition < out[j].Partition
		}
		return out[i].Offset < out[j].Offset
	})
	return out
}

// Values returns the records' values as strings.
func Values(rs []*kgo.Record) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r.Value)
	}
	return out
}

// Header returns the value of header key of r, or "".
func Header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// Samples returns the path of the shared samples directory
// (../shared/samples from the repository root), or skips the test when it
// is absent: the samples are not part of the repository.
func Samples(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if ok {
		dir := filepath.Dir(file)
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				p := filepath.Join(dir, "..", "shared", "samples")
				if st, err := os.Stat(p); err == nil && st.IsDir() {
					return p
				}
				break
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	t.Skip("../shared/samples (real sample records, outside the repository) is absent: skipping the test on real samples")
	return ""
}
