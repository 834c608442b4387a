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
}

// Stage declares the normalize stage: raw records in, each event written
// once per key it has in every keyspace the rules use, unparseable
// records (each record of an envelope on its own) to the DLQ.
func Stage(t StageTopics, keyspaces []event.Keyspace) runtime.Stage {
	var outs []string
	for _, ks := range keyspaces {
		outs = append(outs, t.Events[ks])
	}
	return runtime.Stage{
		Name:    "normalize",
		Inputs:  t.Raw,
		Outputs: outs,
		DLQ:     t.DLQ,
		New: func(p runtime.Partition) (runtime.Processor, error) {
			return &stageProcessor{t: t, kss: keyspaces, hint: strings.TrimPrefix(p.Topic, t.RawPrefix)}, nil
		},
	}
}

type stageProcessor struct {
	t    StageTopics
	kss  []event.Keyspace
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
