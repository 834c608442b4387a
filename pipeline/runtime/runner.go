package runtime

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-sec/vigil/state"
)

// Delivery is the processing guarantee a runner gives.
type Delivery int

const (
	// ExactlyOnce commits outputs, changelog records and offsets in one
	// Kafka transaction.
	ExactlyOnce Delivery = iota
	// AtLeastOnce flushes outputs, then commits offsets. For brokers
	// without transactions; downstream dedupe relies on deterministic ids.
	AtLeastOnce
)

func (d Delivery) String() string {
	if d == AtLeastOnce {
		return "at-least-once"
	}
	return "exactly-once"
}

// Options configure a Runner.
type Options struct {
	// ClientOpts connect to the cluster (brokers, SASL, TLS, logger).
	ClientOpts []kgo.Opt
	// MainClientOpts are added to the stage's long-lived client only (not
	// to short-lived restore clients): per-client metrics hooks.
	MainClientOpts []kgo.Opt
	// Group is the consumer group id.
	Group string
	// TransactionalID must be unique among live processes of the stage and
	// should be stable across a process's restarts, so a restart fences
	// the transaction its previous life left open.
	TransactionalID string
	Delivery        Delivery
	// DataDir holds this runner's partition stores.
	DataDir string
	// Cache is the Pebble block cache shared by the runner's stores.
	Cache   *pebble.Cache
	Log     zerolog.Logger
	Metrics *Metrics
	// MaxBatch caps the records of one poll (default 5000).
	MaxBatch int
	// IdleTick is how often EndBatch runs on partitions with no records
	// (default 1s), so time-driven logic advances on idle partitions.
	IdleTick time.Duration
	// CrashBeforeCommit, when set and returning true for a batch of the
	// given number of input records (0 for an idle tick), makes the runner
	// stop as if killed after its outputs reached the broker but before the
	// transaction ended. Tests use it to prove exactly-once delivery.
	CrashBeforeCommit func(records int) bool
}

// ErrCrashed is returned by Run when CrashBeforeCommit fired.
var ErrCrashed = errors.New("runtime: simulated crash before commit")

// Runner runs one Stage.
type Runner struct {
	stage Stage
	opts  Options
	log   zerolog.Logger
	m     *Metrics

	mu       sync.Mutex     // guards stale and assigned
	stale    map[tp]bool    // partitions revoked or lost since the last poll
	assigned map[tp]bool    // partitions assigned since the last poll
	workers  map[tp]*worker // owned by the loop goroutine
}

type tp struct {
	topic     string
	partition int32
}

type worker struct {
	tp    tp
	proc  Processor
	store *state.Store
	next  int64 // offset of the next record to process
	out   *Output
	last  []*kgo.Record
}

// NewRunner validates the stage and options.
func NewRunner(s Stage, o Options) (*Runner, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if o.Group == "" {
		return nil, fmt.Errorf("stage %s: no consumer group", s.Name)
	}
	if o.Delivery == ExactlyOnce && o.TransactionalID == "" {
		return nil, fmt.Errorf("stage %s: exactly-once delivery needs a transactional id", s.Name)
	}
	if o.DataDir == "" && s.Changelog != nil {
		return nil, fmt.Errorf("stage %s: stateful stage needs a data directory", s.Name)
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 5000
	}
	if o.IdleTick <= 0 {
		o.IdleTick = time.Second
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	return &Runner{
		stage:    s,
		opts:     o,
		log:      o.Log.With().Str("stage", s.Name).Logger(),
		m:        o.Metrics,
		stale:    map[tp]bool{},
		assigned: map[tp]bool{},
		workers:  map[tp]*worker{},
	}, nil
}

// client is what the loop needs from either a GroupTransactSession or a
// plain client.
type client interface {
	PollRecords(ctx context.Context, n int) kgo.Fetches
	Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error))
}

func (r *Runner) markStale(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	if len(m) > 0 {
		r.log.Info().Interface("partitions", m).Msg("partitions revoked")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for t, ps := range m {
		for _, p := range ps {
			r.stale[tp{t, p}] = true
			delete(r.assigned, tp{t, p})
		}
	}
}

func (r *Runner) clientOpts() []kgo.Opt {
	opts := append([]kgo.Opt(nil), r.opts.ClientOpts...)
	opts = append(opts, r.opts.MainClientOpts...)
	opts = append(opts,
		kgo.ConsumerGroup(r.opts.Group),
		kgo.ConsumeTopics(r.stage.Inputs...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			r.log.Info().Interface("partitions", m).Msg("partitions assigned")
			r.mu.Lock()
			defer r.mu.Unlock()
			for t, ps := range m {
				for _, p := range ps {
					r.assigned[tp{t, p}] = true
					delete(r.stale, tp{t, p})
				}
			}
		}),
		kgo.OnPartitionsRevoked(r.markStale),
		kgo.OnPartitionsLost(r.markStale),
		kgo.RecordPartitioner(newPartitioner(r.changelogs())),
		kgo.DisableAutoCommit(),
	)
	if r.opts.Delivery == ExactlyOnce {
		opts = append(opts,
			kgo.TransactionalID(r.opts.TransactionalID),
			kgo.RequireStableFetchOffsets(),
		)
	} else {
		opts = append(opts, kgo.BlockRebalanceOnPoll())
	}
	return opts
}

func (r *Runner) changelogs() map[string]bool {
	m := map[string]bool{}
	if r.stage.Changelog != nil {
		for _, in := range r.stage.Inputs {
			if cl := r.stage.Changelog(in); cl != "" {
				m[cl] = true
			}
		}
	}
	return m
}

// Run consumes until ctx is cancelled, then finishes the batch in flight,
// closes every partition and leaves the group.
func (r *Runner) Run(ctx context.Context) error {
	r.log.Info().Str("delivery", r.opts.Delivery.String()).Strs("inputs", r.stage.Inputs).
		Str("group", r.opts.Group).Msg("stage starting")
	var (
		cl   client
		sess *kgo.GroupTransactSession
		kc   *kgo.Client
		err  error
	)
	if r.opts.Delivery == ExactlyOnce {
		sess, err = kgo.NewGroupTransactSession(r.clientOpts()...)
		if err != nil {
			return fmt.Errorf("stage %s: kafka client: %w", r.stage.Name, err)
		}
		cl, kc = sess, sess.Client()
	} else {
		kc, err = kgo.NewClient(r.clientOpts()...)
		if err != nil {
			return fmt.Errorf("stage %s: kafka client: %w", r.stage.Name, err)
		}
		cl = kc
	}
	crashed := false
	defer func() {
		r.closeAll()
		if !crashed {
			kc.CloseAllowingRebalance()
		}
		r.log.Info().Msg("stage stopped")
	}()
	adm := kadm.NewClient(kc)

	for {
		pollCtx, cancel := context.WithTimeout(ctx, r.opts.IdleTick)
		fetches := cl.PollRecords(pollCtx, r.opts.MaxBatch)
		cancel()
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return nil
		}
		for _, fe := range fetches.Errors() {
			if errors.Is(fe.Err, context.DeadlineExceeded) || errors.Is(fe.Err, context.Canceled) {
				continue
			}
			r.log.Warn().Err(fe.Err).Str("topic", fe.Topic).Int32("partition", fe.Partition).Msg("fetch error")
		}
		r.dropStale()
		if err := r.openAssigned(ctx, adm); err != nil {
			return Fatal(err)
		}

		// The batch runs to its end even if ctx is cancelled meanwhile:
		// shutdown finishes in-flight work rather than aborting it.
		bctx := context.WithoutCancel(ctx)
		start := time.Now()
		err := r.batch(bctx, fetches, cl, sess, kc, adm)
		if sess == nil {
			// At-least-once polls block rebalances until the batch's
			// offsets are committed (or it failed).
			kc.AllowRebalance()
		}
		if err != nil {
			if errors.Is(err, ErrCrashed) {
				crashed = true
				r.abandon(kc)
			}
			return err
		}
		if !fetches.Empty() {
			r.m.batch.WithLabelValues(r.stage.Name).Observe(time.Since(start).Seconds())
		}
	}
}

// abandon drops the client without ending its transaction, as a killed
// process would.
func (r *Runner) abandon(kc *kgo.Client) {
	for k, w := range r.workers {
		w.close(r.log)
		delete(r.workers, k)
	}
	kc.Close()
}

func (r *Runner) dropStale() {
	r.mu.Lock()
	stale := r.stale
	r.stale = map[tp]bool{}
	r.mu.Unlock()
	for k := range stale {
		if w, ok := r.workers[k]; ok {
			r.log.Info().Str("topic", k.topic).Int32("partition", k.partition).Msg("partition revoked; closing")
			w.close(r.log)
			delete(r.workers, k)
		}
	}
}

// openAssigned opens the state of newly assigned stateful partitions that
// have no records yet, so their time-driven logic (absence timers) runs
// even while their input is silent.
func (r *Runner) openAssigned(ctx context.Context, adm *kadm.Client) error {
	r.mu.Lock()
	var todo []tp
	for k := range r.assigned {
		if _, open := r.workers[k]; !open && r.stage.Changelog != nil && r.stage.Changelog(k.topic) != "" {
			todo = append(todo, k)
		}
	}
	r.assigned = map[tp]bool{}
	r.mu.Unlock()
	if len(todo) == 0 {
		return nil
	}
	committed, err := adm.FetchOffsets(ctx, r.opts.Group)
	if err != nil {
		return fmt.Errorf("stage %s: fetch committed offsets: %w", r.stage.Name, err)
	}
	var topics []string
	for _, k := range todo {
		topics = append(topics, k.topic)
	}
	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err != nil {
		return fmt.Errorf("stage %s: list start offsets: %w", r.stage.Name, err)
	}
	for _, k := range todo {
		next := int64(-1)
		if o, ok := committed.Lookup(k.topic, k.partition); ok && o.Err == nil && o.At >= 0 {
			next = o.At
		} else if so, ok := starts.Lookup(k.topic, k.partition); ok && so.Err == nil {
			next = so.Offset
		}
		if next < 0 {
			continue // opened on its first record instead
		}
		w, err := r.open(ctx, k, next, adm)
		if err != nil {
			return err
		}
		r.workers[k] = w
	}
	return nil
}

func (r *Runner) closeAll() {
	for k, w := range r.workers {
		w.close(r.log)
		delete(r.workers, k)
	}
}

func (w *worker) close(log zerolog.Logger) {
	if w.proc != nil {
		if err := w.proc.Close(); err != nil {
			log.Error().Err(err).Str("topic", w.tp.topic).Int32("partition", w.tp.partition).Msg("closing partition processor")
		}
	}
	if w.store != nil {
		w.store.Abort()
		_ = w.store.Close()
	}
}

// batch processes one poll's records (or an idle tick) and ends it.
func (r *Runner) batch(ctx context.Context, fetches kgo.Fetches, cl client, sess *kgo.GroupTransactSession, kc *kgo.Client, adm *kadm.Client) error {
	// Group records by partition, opening workers for new partitions.
	var active []*worker
	var openErr error
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) == 0 || openErr != nil {
			return
		}
		k := tp{p.Topic, p.Partition}
		w, ok := r.workers[k]
		if !ok {
			w, openErr = r.open(ctx, k, p.Records[0].Offset, adm)
			if openErr != nil {
				return
			}
			r.workers[k] = w
		}
		w.last = p.Records
		active = append(active, w)
		last := p.Records[len(p.Records)-1].Offset
		r.m.lag.WithLabelValues(r.stage.Name, p.Topic, strconv.Itoa(int(p.Partition))).Set(float64(max(p.HighWatermark-last-1, 0)))
		r.m.in.WithLabelValues(r.stage.Name, p.Topic).Add(float64(len(p.Records)))
	})
	if openErr != nil {
		return Fatal(openErr)
	}
	idle := len(active) == 0
	if idle {
		// An idle tick: let every open partition advance its timers.
		for _, w := range r.workers {
			w.last = nil
			active = append(active, w)
		}
		if len(active) == 0 {
			return nil
		}
	}

	if sess != nil {
		if err := sess.Begin(); err != nil {
			return Fatal(fmt.Errorf("stage %s: begin transaction: %w", r.stage.Name, err))
		}
	}

	// One goroutine per partition.
	var wg sync.WaitGroup
	errs := make([]error, len(active))
	for i, w := range active {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.runWorker(ctx, w)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		r.endAbort(ctx, sess, active)
		return Fatal(err)
	}

	// Produce everything.
	var produceErr error
	var perrMu sync.Mutex
	var recs int
	for _, w := range active {
		for _, rec := range w.out.recs {
			recs++
			cl.Produce(ctx, rec, func(rec *kgo.Record, err error) {
				if err != nil {
					perrMu.Lock()
					produceErr = errors.Join(produceErr, fmt.Errorf("produce to %s: %w", rec.Topic, err))
					perrMu.Unlock()
				}
			})
		}
	}
	if idle && recs == 0 && sess != nil {
		// Nothing happened: end the empty transaction cheaply.
		_, err := sess.End(ctx, kgo.TryAbort)
		if derr := r.discard(active); derr != nil {
			return Fatal(errors.Join(err, derr))
		}
		return err
	}

	if r.opts.CrashBeforeCommit != nil {
		if err := kc.Flush(ctx); err != nil {
			return Fatal(err)
		}
		n := 0
		for _, w := range active {
			n += len(w.last)
		}
		if r.opts.CrashBeforeCommit(n) {
			return ErrCrashed
		}
	}

	if sess != nil {
		try := kgo.TryCommit
		if produceErr != nil {
			try = kgo.TryAbort
		}
		committed, err := sess.End(ctx, try)
		if err != nil || !committed {
			r.m.txns.WithLabelValues(r.stage.Name, "abort").Inc()
			r.log.Warn().Err(errors.Join(err, produceErr)).Msg("transaction aborted; partitions rewind to the last commit")
			r.dropAll(active)
			if err != nil {
				return Fatal(fmt.Errorf("stage %s: end transaction: %w", r.stage.Name, err))
			}
			return nil
		}
		r.m.txns.WithLabelValues(r.stage.Name, "commit").Inc()
	} else {
		if err := kc.Flush(ctx); err != nil || produceErr != nil {
			return Fatal(fmt.Errorf("stage %s: produce: %w", r.stage.Name, errors.Join(err, produceErr)))
		}
	}

	// Outputs are durable: commit local state, then (at-least-once) offsets.
	if err := r.commitStores(active); err != nil {
		return Fatal(err)
	}
	if err := r.committed(active); err != nil {
		return Fatal(err)
	}
	if sess == nil {
		if err := kc.CommitUncommittedOffsets(ctx); err != nil {
			r.log.Warn().Err(err).Msg("offset commit failed; the batch will be re-delivered")
		}
	}
	now := time.Now()
	for _, w := range active {
		for topic, n := range w.out.dlq {
			r.m.dlq.WithLabelValues(r.stage.Name, topic).Add(float64(n))
		}
		for _, rec := range w.out.recs {
			r.m.out.WithLabelValues(r.stage.Name, rec.Topic).Inc()
		}
		for _, rec := range w.last {
			r.m.latency.WithLabelValues(r.stage.Name).Observe(now.Sub(rec.Timestamp).Seconds())
		}
		w.out = nil
		w.last = nil
	}
	return nil
}

func (r *Runner) runWorker(ctx context.Context, w *worker) error {
	w.out = newOutput(&r.stage)
	for _, rec := range w.last {
		if err := w.proc.Process(ctx, rec, w.out); err != nil {
			if IsFatal(err) {
				return fmt.Errorf("%s/%d offset %d: %w", rec.Topic, rec.Partition, rec.Offset, err)
			}
			w.out.DeadLetter(rec, err)
			r.log.Debug().Err(err).Str("topic", rec.Topic).Int64("offset", rec.Offset).Msg("record dead-lettered")
		}
		w.next = rec.Offset + 1
	}
	if err := w.proc.EndBatch(ctx, w.out); err != nil {
		return fmt.Errorf("%s/%d end of batch: %w", w.tp.topic, w.tp.partition, err)
	}
	if w.out.err != nil {
		return w.out.err
	}
	if w.store != nil {
		cl := r.stage.Changelog(w.tp.topic)
		for _, c := range w.store.Pending() {
			w.out.recs = append(w.out.recs, &kgo.Record{Topic: cl, Partition: w.tp.partition, Key: c.Key, Value: c.Value})
		}
	}
	return nil
}

func (r *Runner) commitStores(active []*worker) error {
	for _, w := range active {
		if w.store == nil {
			continue
		}
		if err := w.store.Commit(w.next); err != nil {
			return fmt.Errorf("stage %s: %s/%d: %w", r.stage.Name, w.tp.topic, w.tp.partition, err)
		}
	}
	return nil
}

// discard drops staged state of an ended empty transaction. The batch
// produced nothing and will not be re-run, so for processors it is over.
func (r *Runner) discard(active []*worker) error {
	for _, w := range active {
		if w.store != nil {
			w.store.Abort()
		}
		w.out, w.last = nil, nil
	}
	return r.committed(active)
}

// committed tells the batch's processors that implement Committer that
// their batch is final.
func (r *Runner) committed(active []*worker) error {
	var errs []error
	for _, w := range active {
		if c, ok := w.proc.(Committer); ok {
			if err := c.Committed(); err != nil {
				errs = append(errs, fmt.Errorf("stage %s: %s/%d: committed: %w", r.stage.Name, w.tp.topic, w.tp.partition, err))
			}
		}
	}
	return errors.Join(errs...)
}

// dropAll closes the workers of an aborted batch: their in-memory state
// may hold effects of records that will be re-delivered, so they are
// rebuilt from their stores on the next record.
func (r *Runner) dropAll(active []*worker) {
	for _, w := range active {
		w.close(r.log)
		delete(r.workers, w.tp)
	}
}

func (r *Runner) endAbort(ctx context.Context, sess *kgo.GroupTransactSession, active []*worker) {
	if sess != nil {
		_, _ = sess.End(ctx, kgo.TryAbort)
	}
	r.dropAll(active)
}

// open builds the worker of a newly seen partition. first is the offset of
// its first record, which is where the group's committed offset put us.
func (r *Runner) open(ctx context.Context, k tp, first int64, adm *kadm.Client) (*worker, error) {
	w := &worker{tp: k, next: first}
	var cl string
	if r.stage.Changelog != nil {
		cl = r.stage.Changelog(k.topic)
	}
	if cl != "" {
		dir := filepath.Join(r.opts.DataDir, r.stage.Name, k.topic, strconv.Itoa(int(k.partition)))
		st, err := state.Open(dir, state.Options{Cache: r.opts.Cache})
		if err != nil {
			return nil, err
		}
		off, ok, err := st.Offset()
		if err != nil {
			_ = st.Close()
			return nil, err
		}
		if ok && off == first {
			r.m.restores.WithLabelValues(r.stage.Name, "local").Inc()
			r.log.Debug().Str("topic", k.topic).Int32("partition", k.partition).Msg("partition state is current locally")
		} else {
			n, err := r.restore(ctx, st, cl, k.partition, adm)
			if err != nil {
				_ = st.Close()
				return nil, fmt.Errorf("stage %s: restore %s/%d from %s: %w", r.stage.Name, k.topic, k.partition, cl, err)
			}
			r.m.restores.WithLabelValues(r.stage.Name, "changelog").Inc()
			r.log.Info().Str("topic", k.topic).Int32("partition", k.partition).Int("records", n).
				Int64("local_offset", off).Int64("committed_offset", first).Msg("partition state rebuilt from changelog")
		}
		w.store = st
	}
	proc, err := r.stage.New(Partition{Topic: k.topic, Partition: k.partition, Store: w.store})
	if err != nil {
		w.close(r.log)
		return nil, fmt.Errorf("stage %s: processor for %s/%d: %w", r.stage.Name, k.topic, k.partition, err)
	}
	w.proc = proc
	return w, nil
}

// restore wipes st and replays one changelog partition into it, up to its
// last stable offset.
func (r *Runner) restore(ctx context.Context, st *state.Store, topic string, partition int32, adm *kadm.Client) (int, error) {
	if err := st.Wipe(); err != nil {
		return 0, err
	}
	ends, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("list end offsets: %w", err)
	}
	end, ok := ends.Lookup(topic, partition)
	if !ok || end.Err != nil {
		return 0, fmt.Errorf("no end offset for partition %d: %v", partition, end.Err)
	}
	if end.Offset <= 0 {
		return 0, nil
	}
	opts := append([]kgo.Opt(nil), r.opts.ClientOpts...)
	opts = append(opts,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().AtStart()}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Control records (transaction markers) occupy offsets; keeping
		// them lets the loop see the position reach the end.
		kgo.KeepControlRecords(),
	)
	rc, err := kgo.NewClient(opts...)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	n := 0
	for {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		fs := rc.PollFetches(rctx)
		cancel()
		if err := fs.Err0(); err != nil {
			return n, err
		}
		done := false
		var applyErr error
		fs.EachRecord(func(rec *kgo.Record) {
			if applyErr != nil || done {
				return
			}
			if !rec.Attrs.IsControl() {
				applyErr = st.Restore(rec.Key, rec.Value)
				n++
			}
			if rec.Offset+1 >= end.Offset {
				done = true
			}
		})
		if applyErr != nil {
			return n, applyErr
		}
		if done {
			return n, nil
		}
	}
}
