package normalize

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-sec/vigil/pipeline/event"
	"github.com/vigil-sec/vigil/pipeline/runtime"
)

// StageTopics names the normalize stage's topics.
type StageTopics struct {
	// Raw are the raw.<source> topics to read.
	Raw []string
	// RawPrefix is the raw topics' common prefix ("vigil.raw."); what
	// follows it is the source hint given to Parse.
	RawPrefix string
	// Events maps each keyspace to its events topic.
	Events map[event.Keyspace]string
	DLQ    string
	// Entities is the compacted topic of observed entity associations;
	// used when the stage enriches.
	Entities string
}

// Enricher learns entity associations from events and adds related
// entities to them (pipeline/app adapts enrich.Table to it). One Enricher
// serves every partition of the process.
type Enricher interface {
	// Txn starts what one partition learns, batch after batch.
	Txn() EntityTxn
	Enrich(ev *event.Event) error
}

// EntityTxn learns entity associations for one partition. Observe applies
// them at once (so the partition's next events, and other partitions, are
// enriched with them) and returns the changes to publish on the entities
// topic in the batch's transaction. Commit says the transaction
// committed; Abort that it did not, and the Enricher must forget the
// changes since the last Commit: the records will be processed again, and
// if the Enricher kept their associations it would publish nothing the
// second time, so no other process would learn them.
type EntityTxn interface {
	Observe(ev *event.Event) ([]EntityChange, error)
	Commit() error
	Abort() error
}

// EntityChange is one association record for the entities topic; a nil
// Value is a tombstone.
type EntityChange struct{ Key, Value []byte }

// Stage declares the normalize stage: raw records in, each event written
// once per key it has in every keyspace the rules use, unparseable
// records (each record of an envelope on its own) to the DLQ.
//
// With an Enricher, each event first teaches the entity table (its
// changes go to the entities topic in the same transaction), then gets
// its related entities, then is keyed — so a flow record that names only
// an IP is also written under the device and user behind that IP.
func Stage(t StageTopics, keyspaces []event.Keyspace, en Enricher) runtime.Stage {
	var outs []string
	for _, ks := range keyspaces {
		outs = append(outs, t.Events[ks])
	}
	if en != nil {
		outs = append(outs, t.Entities)
	}
	return runtime.Stage{
		Name:    "normalize",
		Inputs:  t.Raw,
		Outputs: outs,
		DLQ:     t.DLQ,
		New: func(p runtime.Partition) (runtime.Processor, error) {
			sp := &stageProcessor{t: t, kss: keyspaces, en: en, hint: strings.TrimPrefix(p.Topic, t.RawPrefix)}
			if en != nil {
				sp.tx = en.Txn()
			}
			return sp, nil
		},
	}
}

// stageProcessor implements runtime.Committer: the entity table is shared
// by the process's partitions, outside the transaction, so what a batch
// taught it is undone when the batch does not commit.
type stageProcessor struct {
	t    StageTopics
	kss  []event.Keyspace
	en   Enricher
	tx   EntityTxn // nil without an Enricher
	hint string
	buf  []byte
}

// HeaderIndex names the position of a dead-lettered record inside its
// envelope.
const HeaderIndex = "vigil.index"

func (p *stageProcessor) Process(_ context.Context, rec *kgo.Record, out *runtime.Output) error {
	evs, bad := Parse(p.hint, rec.Value, rec.Timestamp.UTC())
	if len(evs) == 0 && len(bad) == 0 {
		return errors.New("no records in message")
	}
	for _, b := range bad {
		// The bad record alone, with its own bytes, so the good ones
		// beside it in the envelope are not lost or repeated.
		one := *rec
		one.Value = b.Raw
		one.Headers = append(append([]kgo.RecordHeader(nil), rec.Headers...), kgo.RecordHeader{Key: HeaderIndex, Value: fmt.Appendf(nil, "%d", b.Index)})
		out.DeadLetter(&one, b)
	}
	for i := range evs {
		ev := &evs[i]
		if p.en != nil {
			changes, err := p.tx.Observe(ev)
			if err != nil {
				return runtime.Fatal(fmt.Errorf("entity table: %w", err))
			}
			for _, c := range changes {
				out.Emit(p.t.Entities, c.Key, c.Value)
			}
			if err := p.en.Enrich(ev); err != nil {
				return runtime.Fatal(fmt.Errorf("entity table: %w", err))
			}
		}
		var err error
		p.buf, err = event.AppendMarshal(p.buf[:0], ev)
		if err != nil {
			return fmt.Errorf("encode event: %w", err)
		}
		var val []byte
		for _, ks := range p.kss {
			for _, key := range ev.Keys(ks) {
				if val == nil {
					val = append([]byte(nil), p.buf...)
				}
				out.Emit(p.t.Events[ks], []byte(key), val)
			}
		}
	}
	return nil
}

func (p *stageProcessor) EndBatch(context.Context, *runtime.Output) error { return nil }

// Committed makes the batch's entity changes final: they are on the
// entities topic.
func (p *stageProcessor) Committed() error {
	if p.tx == nil {
		return nil
	}
	if err := p.tx.Commit(); err != nil {
		return fmt.Errorf("normalize: entity table: %w", err)
	}
	return nil
}

// Close forgets the entity changes of a batch that did not commit (the
// runner closes the processors of an aborted or crashed batch).
func (p *stageProcessor) Close() error {
	if p.tx == nil {
		return nil
	}
	if err := p.tx.Abort(); err != nil {
		return fmt.Errorf("normalize: entity table: forget uncommitted changes: %w", err)
	}
	return nil
}
