package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-sec/vigil/pipeline/kafkatest"
	"github.com/vigil-sec/vigil/pipeline/runtime"
)

func TestMain(m *testing.M) { kafkatest.Main(m) }

// counter is a stateful test stage: for each record it increments a
// per-key count kept in the partition store and emits "key=count". The
// value "bad" is rejected (dead-lettered). Because the count lives in the
// store, any lost state, duplicate processing or lost output shows as a gap
// or a repeat in the emitted sequence of a key.
type counter struct {
	p   runtime.Partition
	out string
}

func (c *counter) Process(_ context.Context, rec *kgo.Record, out *runtime.Output) error {
	if string(rec.Value) == "bad" {
		return errors.New("value is bad")
	}
	v, err := c.p.Store.Get(rec.Key)
	if err != nil {
		return runtime.Fatal(err)
	}
	n := 0
	if v != nil {
		n, _ = strconv.Atoi(string(v))
	}
	n++
	if err := c.p.Store.Set(rec.Key, []byte(strconv.Itoa(n))); err != nil {
		return runtime.Fatal(err)
	}
	out.Emit(c.out, rec.Key, fmt.Appendf(nil, "%s=%d", rec.Key, n))
	return nil
}
func (c *counter) EndBatch(context.Context, *runtime.Output) error { return nil }
func (c *counter) Close() error                                    { return nil }

type env struct {
	in, out, dlq, changelog string
	group                   string
	brokers                 []string
}

func newEnv(t *testing.T, partitions int32) env {
	cl := kafkatest.Client(t)
	compact := map[string]string{"cleanup.policy": "compact"}
	return env{
		in:        kafkatest.NewTopic(t, cl, partitions, nil),
		out:       kafkatest.NewTopic(t, cl, partitions, nil),
		dlq:       kafkatest.NewTopic(t, cl, 1, nil),
		changelog: kafkatest.NewTopic(t, cl, partitions, compact),
		group:     kafkatest.TopicPrefix(t) + "group",
		brokers:   kafkatest.Brokers(t),
	}
}

func (e env) stage() runtime.Stage {
	return runtime.Stage{
		Name:      "counter",
		Inputs:    []string{e.in},
		Outputs:   []string{e.out},
		DLQ:       e.dlq,
		Changelog: func(string) string { return e.changelog },
		New: func(p runtime.Partition) (runtime.Processor, error) {
			return &counter{p: p, out: e.out}, nil
		},
	}
}

func (e env) runner(t *testing.T, id string, dir string, mod func(*runtime.Options)) *runtime.Runner {
	o := runtime.Options{
		ClientOpts:      []kgo.Opt{kgo.SeedBrokers(e.brokers...)},
		Group:           e.group,
		TransactionalID: e.group + "-" + id,
		DataDir:         dir,
		Log:             zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel),
		IdleTick:        200 * time.Millisecond,
	}
	if mod != nil {
		mod(&o)
	}
	r, err := runtime.NewRunner(e.stage(), o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// start runs r until the returned stop is called; stop returns Run's error.
func start(r *runtime.Runner) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	return func() error { cancel(); return <-done }
}

func produce(t *testing.T, e env, kvs ...string) {
	t.Helper()
	cl := kafkatest.Client(t)
	var recs []*kgo.Record
	for i := 0; i+1 < len(kvs); i += 2 {
		recs = append(recs, &kgo.Record{Topic: e.in, Key: []byte(kvs[i]), Value: []byte(kvs[i+1])})
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// consume reads committed records of topic until n have arrived or the
// deadline passes, then keeps reading briefly to catch extras.
func consume(t *testing.T, e env, topic string, n int) []*kgo.Record {
	t.Helper()
	cl := kafkatest.Client(t, kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got []*kgo.Record
	deadline := time.Now().Add(30 * time.Second)
	var extraUntil time.Time
	for {
		if time.Now().After(deadline) || (!extraUntil.IsZero() && time.Now().After(extraUntil)) {
			return got
		}
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) { got = append(got, r) })
		if len(got) >= n && extraUntil.IsZero() {
			extraUntil = time.Now().Add(1500 * time.Millisecond)
		}
	}
}

func values(recs []*kgo.Record) map[string]int {
	m := map[string]int{}
	for _, r := range recs {
		m[string(r.Value)]++
	}
	return m
}

// wantSequences checks that every key k emitted exactly k=1..n[k], once each.
func wantSequences(t *testing.T, recs []*kgo.Record, n map[string]int) {
	t.Helper()
	got := values(recs)
	total := 0
	for k, c := range n {
		for i := 1; i <= c; i++ {
			v := fmt.Sprintf("%s=%d", k, i)
			if got[v] != 1 {
				t.Errorf("%s emitted %d times, want once", v, got[v])
			}
		}
		total += c
	}
	if len(recs) != total {
		t.Errorf("got %d output records, want %d: %v", len(recs), total, got)
	}
}

func TestRunnerProcessesAndDeadLetters(t *testing.T) {
	e := newEnv(t, 3)
	stop := start(e.runner(t, "a", t.TempDir(), nil))
	produce(t, e, "k1", "x", "k2", "x", "k1", "bad", "k1", "x")
	wantSequences(t, consume(t, e, e.out, 3), map[string]int{"k1": 2, "k2": 1})
	dlq := consume(t, e, e.dlq, 1)
	if len(dlq) != 1 {
		t.Fatalf("dlq has %d records, want 1", len(dlq))
	}
	d := dlq[0]
	if string(d.Value) != "bad" || string(d.Key) != "k1" {
		t.Errorf("dlq record = %q/%q, want the original k1/bad", d.Key, d.Value)
	}
	h := map[string]string{}
	for _, x := range d.Headers {
		h[x.Key] = string(x.Value)
	}
	if h[runtime.HeaderError] != "value is bad" || h[runtime.HeaderTopic] != e.in || h[runtime.HeaderStage] != "counter" || h[runtime.HeaderOffset] == "" {
		t.Errorf("dlq headers = %v", h)
	}
	// Processing continued after the bad record: k1=2 came after it.
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// A worker that dies after producing but before committing leaves an open
// transaction; its restart (same transactional id) fences it, and the
// outputs appear exactly once.
func TestRunnerCrashBeforeCommitIsExactlyOnce(t *testing.T) {
	e := newEnv(t, 2)
	dir := t.TempDir()
	produce(t, e, "a", "x", "b", "x", "a", "x")
	var crashes atomic.Int32
	r := e.runner(t, "w", dir, func(o *runtime.Options) {
		o.CrashBeforeCommit = func(int) bool { crashes.Add(1); return true }
	})
	if err := r.Run(context.Background()); !errors.Is(err, runtime.ErrCrashed) {
		t.Fatalf("Run = %v, want ErrCrashed", err)
	}
	if crashes.Load() == 0 {
		t.Fatal("crash hook never ran")
	}
	stop := start(e.runner(t, "w", dir, nil))
	defer stop()
	produce(t, e, "a", "x")
	wantSequences(t, consume(t, e, e.out, 4), map[string]int{"a": 3, "b": 1})
}

// State moves with its partition: a second worker with an empty data
// directory rebuilds it from the changelog and continues the counts.
func TestRunnerRestoresStateFromChangelog(t *testing.T) {
	e := newEnv(t, 2)
	produce(t, e, "a", "x", "b", "x", "a", "x")
	stop := start(e.runner(t, "first", t.TempDir(), nil))
	wantSequences(t, consume(t, e, e.out, 3), map[string]int{"a": 2, "b": 1})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	stop = start(e.runner(t, "second", t.TempDir(), nil))
	defer stop()
	produce(t, e, "a", "x", "b", "x")
	wantSequences(t, consume(t, e, e.out, 5), map[string]int{"a": 3, "b": 2})
}

// Two workers in one group split the partitions; partitions that move
// when the second joins are processed once, with their state.
func TestRunnerTwoWorkersSplitPartitions(t *testing.T) {
	e := newEnv(t, 4)
	var keys []string
	for i := range 32 { // enough keys that every partition gets some
		keys = append(keys, fmt.Sprintf("k%d", i))
	}
	batch := func() {
		var kvs []string
		for _, k := range keys {
			kvs = append(kvs, k, "x")
		}
		produce(t, e, kvs...)
	}
	stopA := start(e.runner(t, "a", t.TempDir(), nil))
	defer stopA()
	batch()
	n := map[string]int{}
	for _, k := range keys {
		n[k] = 1
	}
	wantSequences(t, consume(t, e, e.out, len(keys)), n)

	regB := prometheus.NewRegistry()
	stopB := start(e.runner(t, "b", t.TempDir(), func(o *runtime.Options) { o.Metrics = runtime.NewMetrics(regB) }))
	defer stopB()
	for i := 0; i < 3; i++ {
		batch()
		time.Sleep(300 * time.Millisecond)
	}
	for _, k := range keys {
		n[k] = 4
	}
	wantSequences(t, consume(t, e, e.out, 4*len(keys)), n)
	// The second worker really took partitions over, with their state.
	if in := metricSum(t, regB, "vigil_records_in_total", ""); in == 0 {
		t.Error("second worker consumed nothing: no partition moved")
	}
	if rs := metricSum(t, regB, "vigil_state_restores_total", "changelog"); rs == 0 {
		t.Error("second worker restored no state from the changelog")
	}
}

// metricSum adds up the values of a counter family, optionally only the
// series with a label whose value is label.
func metricSum(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			ok := label == ""
			for _, lp := range m.GetLabel() {
				ok = ok || lp.GetValue() == label
			}
			if ok {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// Without transactions (Event Hubs below Premium), the runner flushes
// outputs and then commits offsets; a restart continues from there with
// its state.
func TestRunnerAtLeastOnce(t *testing.T) {
	e := newEnv(t, 2)
	alo := func(o *runtime.Options) { o.Delivery = runtime.AtLeastOnce; o.TransactionalID = "" }
	dir := t.TempDir()
	stop := start(e.runner(t, "alo", dir, alo))
	produce(t, e, "a", "x", "b", "x", "a", "bad", "a", "x")
	wantSequences(t, consume(t, e, e.out, 3), map[string]int{"a": 2, "b": 1})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	stop = start(e.runner(t, "alo", dir, alo))
	defer stop()
	produce(t, e, "b", "x")
	wantSequences(t, consume(t, e, e.out, 4), map[string]int{"a": 2, "b": 2})
	if dlq := consume(t, e, e.dlq, 1); len(dlq) != 1 {
		t.Errorf("dlq has %d records, want 1", len(dlq))
	}
}

// committerProc counts the records it processed since the runner last
// told it that its batch committed, and reports at Close how many were
// left: work a Committer must undo.
type committerProc struct {
	out       string
	pending   int
	committed *atomic.Int32 // records whose batch was reported committed
	leftOpen  *atomic.Int32 // records pending at Close
}

func (c *committerProc) Process(_ context.Context, rec *kgo.Record, out *runtime.Output) error {
	c.pending++
	out.Emit(c.out, rec.Key, rec.Value)
	return nil
}
func (c *committerProc) EndBatch(context.Context, *runtime.Output) error { return nil }
func (c *committerProc) Committed() error {
	c.committed.Add(int32(c.pending))
	c.pending = 0
	return nil
}
func (c *committerProc) Close() error {
	c.leftOpen.Add(int32(c.pending))
	return nil
}

// The runner tells a Committer when its batch committed, so that a Close
// without it means the batch's effects must be undone.
func TestRunnerTellsCommitters(t *testing.T) {
	tests := []struct {
		name                    string
		crash                   bool
		wantCommitted, wantOpen int32
	}{
		{"committed batches", false, 3, 0},
		{"crash before commit", true, 0, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, 1)
			var committed, leftOpen atomic.Int32
			st := runtime.Stage{
				Name: "committer", Inputs: []string{e.in}, Outputs: []string{e.out}, DLQ: e.dlq,
				New: func(runtime.Partition) (runtime.Processor, error) {
					return &committerProc{out: e.out, committed: &committed, leftOpen: &leftOpen}, nil
				},
			}
			o := runtime.Options{
				ClientOpts:      []kgo.Opt{kgo.SeedBrokers(e.brokers...)},
				Group:           e.group,
				TransactionalID: e.group + "-w",
				Log:             zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
				IdleTick:        200 * time.Millisecond,
			}
			if tt.crash {
				o.CrashBeforeCommit = func(n int) bool { return n > 0 }
			}
			r, err := runtime.NewRunner(st, o)
			if err != nil {
				t.Fatal(err)
			}
			produce(t, e, "a", "1", "b", "2", "c", "3")
			if tt.crash {
				if err := r.Run(context.Background()); !errors.Is(err, runtime.ErrCrashed) {
					t.Fatalf("Run = %v, want ErrCrashed", err)
				}
			} else {
				stop := start(r)
				consume(t, e, e.out, 3)
				if err := stop(); err != nil {
					t.Fatal(err)
				}
			}
			if got := committed.Load(); got != tt.wantCommitted {
				t.Errorf("records reported committed: %d, want %d", got, tt.wantCommitted)
			}
			if got := leftOpen.Load(); got != tt.wantOpen {
				t.Errorf("records uncommitted at Close: %d, want %d", got, tt.wantOpen)
			}
		})
	}
}
