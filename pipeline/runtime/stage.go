// Package runtime runs a stage: a Kafka consumer group over declared input
// topics, one worker per assigned partition, whose outputs, state changes
// and consumed offsets commit together.
//
// # Model
//
// A Stage is a value: its name, input topics, output topics and a
// constructor for the per-partition Processor. Validate checks it before
// anything connects. The Runner owns the Kafka client and the loop:
//
//	poll → group records by partition → each partition's Processor runs
//	(in parallel, one goroutine per partition) → changelog records from the
//	partition's state → produce everything → commit offsets + outputs in one
//	Kafka transaction → commit each partition's Pebble batch.
//
// In exactly-once mode (the default) the loop is franz-go's
// GroupTransactSession: a rebalance before the transaction ends aborts it,
// the consumer rewinds to the committed offsets, and the runner drops the
// partitions' uncommitted state, so nothing is lost or emitted twice.
// Brokers without transactions (Azure Event Hubs below Premium) run in
// at-least-once mode: outputs are flushed before offsets are committed, and
// the stages' deterministic alert and incident ids absorb the repeats.
//
// A record that a Processor cannot handle goes to the DLQ topic with the
// reason and its original bytes; it never stops the partition. Only a
// Fatal error stops the stage.
//
// # Metrics
//
//	vigil_records_in_total{stage,topic}          records consumed
//	vigil_records_out_total{stage,topic}         records produced (incl. changelog)
//	vigil_records_dlq_total{stage,topic}         records sent to the DLQ, by input topic
//	vigil_batch_duration_seconds{stage}          poll-to-commit time of one batch
//	vigil_record_latency_seconds{stage}          record timestamp to commit
//	vigil_consumer_lag{stage,topic,partition}    high watermark minus next offset
//	vigil_transactions_total{stage,result}       committed / aborted batches
//	vigil_state_restores_total{stage,from}       partition state opened from local Pebble or rebuilt from the changelog
package runtime

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-sec/vigil/state"
)

// Stage declares one processing stage.
type Stage struct {
	// Name is the stage name (normalize, correlate, ...); it names the
	// consumer group, the metrics label and the state directory.
	Name string
	// Inputs are the topics the stage consumes.
	Inputs []string
	// Outputs are the topics the stage may produce to, besides the DLQ and
	// its changelogs. Emitting to any other topic is a programming error.
	Outputs []string
	// DLQ is the dead-letter topic.
	DLQ string
	// Changelog returns the changelog topic of an input topic's state, or
	// "" when partitions of that input keep no state.
	Changelog func(input string) string
	// Loops allows outputs that are also inputs: correlate feeds its
	// alerts back to its own inputs for chained rules.
	Loops bool
	// New builds the processor of one assigned partition.
	New func(p Partition) (Processor, error)
}

// Partition is what a Processor is built for.
type Partition struct {
	Topic     string
	Partition int32
	// Store is the partition's state, or nil for stateless inputs. The
	// runner owns it: it commits, aborts and closes it.
	Store *state.Store
}

// Processor handles the records of one partition. The runner calls it from
// one goroutine at a time.
type Processor interface {
	// Process handles one record, emitting outputs to out. A non-nil error
	// sends the record to the DLQ with the error as the reason, unless it
	// is Fatal, which stops the stage.
	Process(ctx context.Context, rec *kgo.Record, out *Output) error
	// EndBatch is called after the last record of a batch (and on idle
	// ticks, with no records): the place to flush in-memory state to the
	// store and emit what time-driven logic (timers) produced.
	EndBatch(ctx context.Context, out *Output) error
	// Close releases the processor. Uncommitted work is discarded (see
	// Committer).
	Close() error
}

// Committer is implemented by a Processor whose batches change something
// outside the partition's Store that the transaction does not cover — the
// normalize stage's entity table, shared by every partition of the
// process — and that must be undone if the batch is not committed.
//
// After a batch's transaction commits (or, for a batch with nothing to
// produce, ends), the runner calls Committed on each of the batch's
// processors, before the next batch starts. A processor closed while
// work since its last Committed is outstanding — the transaction aborted,
// the stage crashed, the partition was lost mid-batch — must undo that
// work in Close: the records will be processed again, here or elsewhere.
type Committer interface {
	Committed() error
}

// Fatal marks an error that must stop the stage rather than dead-letter a
// record: a broken store, a bug.
func Fatal(err error) error { return fatalError{err} }

type fatalError struct{ error }

func (f fatalError) Unwrap() error { return f.error }

// IsFatal reports whether err was marked by Fatal.
func IsFatal(err error) bool {
	var f fatalError
	return errors.As(err, &f)
}

// Validate checks the declaration before anything connects.
func (s Stage) Validate() error {
	var errs []error
	if s.Name == "" {
		errs = append(errs, errors.New("stage has no name"))
	}
	if len(s.Inputs) == 0 {
		errs = append(errs, fmt.Errorf("stage %s: no input topics", s.Name))
	}
	if s.DLQ == "" {
		errs = append(errs, fmt.Errorf("stage %s: no DLQ topic", s.Name))
	}
	if s.New == nil {
		errs = append(errs, fmt.Errorf("stage %s: no processor constructor", s.Name))
	}
	seen := map[string]bool{}
	for _, t := range s.Inputs {
		if seen[t] {
			errs = append(errs, fmt.Errorf("stage %s: input topic %s listed twice", s.Name, t))
		}
		seen[t] = true
		for _, o := range s.Outputs {
			if o == t && !s.Loops {
				errs = append(errs, fmt.Errorf("stage %s: topic %s is both input and output (a loop)", s.Name, t))
			}
		}
	}
	return errors.Join(errs...)
}

// Output collects what one partition's batch produces.
type Output struct {
	stage   string
	allowed map[string]bool
	recs    []*kgo.Record
	dlq     map[string]int // dead-lettered records by input topic
	dlqName string
	err     error
}

func newOutput(s *Stage) *Output {
	allowed := map[string]bool{s.DLQ: true}
	for _, t := range s.Outputs {
		allowed[t] = true
	}
	return &Output{stage: s.Name, allowed: allowed, dlqName: s.DLQ, dlq: map[string]int{}}
}

// Emit produces value under key to topic, partitioned by key.
func (o *Output) Emit(topic string, key, value []byte, headers ...kgo.RecordHeader) {
	if !o.allowed[topic] {
		o.err = errors.Join(o.err, fmt.Errorf("stage %s emitted to undeclared topic %s", o.stage, topic))
		return
	}
	o.recs = append(o.recs, &kgo.Record{Topic: topic, Key: key, Value: value, Headers: headers})
}

// DLQ header names. Consumers of the dead-letter topic read these.
const (
	HeaderStage     = "vigil.stage"
	HeaderError     = "vigil.error"
	HeaderTopic     = "vigil.topic"
	HeaderPartition = "vigil.partition"
	HeaderOffset    = "vigil.offset"
)

// DeadLetter sends rec's original key and value to the DLQ with the reason
// and where it came from. A processor that splits a record (an envelope of
// many) may dead-letter a copy of rec holding one part's bytes.
func (o *Output) DeadLetter(rec *kgo.Record, reason error) {
	o.dlq[rec.Topic]++
	hs := append([]kgo.RecordHeader(nil), rec.Headers...)
	hs = append(hs,
		kgo.RecordHeader{Key: HeaderStage, Value: []byte(o.stage)},
		kgo.RecordHeader{Key: HeaderError, Value: []byte(reason.Error())},
		kgo.RecordHeader{Key: HeaderTopic, Value: []byte(rec.Topic)},
		kgo.RecordHeader{Key: HeaderPartition, Value: fmt.Appendf(nil, "%d", rec.Partition)},
		kgo.RecordHeader{Key: HeaderOffset, Value: fmt.Appendf(nil, "%d", rec.Offset)},
	)
	o.recs = append(o.recs, &kgo.Record{Topic: o.dlqName, Key: rec.Key, Value: rec.Value, Headers: hs})
}
