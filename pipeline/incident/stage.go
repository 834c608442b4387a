package incident

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-sec/vigil/pipeline/alert"
	"github.com/vigil-sec/vigil/pipeline/runtime"
)

// Topics names the stage's topics.
type Topics struct {
	Alerts, Incidents, DLQ, Changelog string
}

// Stage declares the incident stage: alerts in, incidents out, grouping
// state in a store with a changelog.
func Stage(t Topics, opts Options) runtime.Stage {
	return runtime.Stage{
		Name:      "incident",
		Inputs:    []string{t.Alerts},
		Outputs:   []string{t.Incidents},
		DLQ:       t.DLQ,
		Changelog: func(string) string { return t.Changelog },
		New: func(p runtime.Partition) (runtime.Processor, error) {
			return &processor{g: NewGrouper(p.Store, opts), out: t.Incidents}, nil
		},
	}
}

type processor struct {
	g   *Grouper
	out string
}

func (p *processor) Process(_ context.Context, rec *kgo.Record, out *runtime.Output) error {
	var a alert.Alert
	if err := json.Unmarshal(rec.Value, &a); err != nil {
		return fmt.Errorf("decode alert: %w", err)
	}
	if a.ID == "" {
		return fmt.Errorf("alert has no id")
	}
	in, err := p.g.Add(a)
	if err != nil {
		return runtime.Fatal(err)
	}
	if in == nil {
		return nil // re-delivered alert
	}
	b, err := json.Marshal(in)
	if err != nil {
		return runtime.Fatal(err)
	}
	out.Emit(p.out, []byte(in.ID), b)
	return nil
}

func (p *processor) EndBatch(context.Context, *runtime.Output) error { return nil }
func (p *processor) Close() error                                    { return nil }
