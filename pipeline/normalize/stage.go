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
// entities to them (enrich.Table implements it). Observe returns the
// association changes to publish on the entities topic.
type Enricher interface {
	Observe(ev *event.Event) ([]EntityChange, error)
	Enrich(ev *event.Event) error
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
			return &stageProcessor{t: t, kss: keyspaces, en: en, hint: strings.TrimPrefix(p.Topic, t.RawPrefix)}, nil
		},
	}
}

type stageProcessor struct {
	t    StageTopics
	kss  []event.Keyspace
	en   Enricher
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
			changes, err := p.en.Observe(ev)
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
func (p *stageProcessor) Close() error                                    { return nil }
