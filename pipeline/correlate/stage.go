// Package correlate is the correlate stage: it runs the loaded rules'
// operators over events.<keyspace> and writes alerts.
//
// Each input partition (one keyspace topic, one partition number) gets its
// own operators.Engine over its own state store. Events arrive keyed by
// the entity value normalize chose, so all events of one user (device, IP,
// resource) meet in one engine. Alerts go to the alerts topic keyed by
// alert id; their ids are deterministic, so a re-processed batch yields the
// same ids and the incident stage drops the repeats.
//
// Chaining: every alert also re-enters the stage as an event of category
// "alert" (operators.AlertEvent), written to events.<keyspace> once per key
// it carries, in the same transaction, so a rule keyed by user can take as
// a step the alert of a rule keyed by device. Lint refuses chains that
// form a cycle, so the loop ends.
//
// Events later than the partition's watermark (max event time − allowed
// lateness) are not matched: they go to the DLQ with the reason, and
// vigil_correlate_late_events_total counts them.
package correlate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-sec/vigil/operators"
	"github.com/vigil-sec/vigil/pipeline/alert"
	"github.com/vigil-sec/vigil/pipeline/event"
	"github.com/vigil-sec/vigil/pipeline/runtime"
	"github.com/vigil-sec/vigil/rules"
)

// Topics names the stage's topics.
type Topics struct {
	// Events maps each keyspace to its events topic.
	Events map[event.Keyspace]string
	Alerts string
	DLQ    string
	// Changelog names the changelog of a keyspace's state.
	Changelog func(event.Keyspace) string
}

// Metrics of the correlate stage.
type Metrics struct {
	late    prometheus.Counter
	alerts  *prometheus.CounterVec
	steps   prometheus.Counter
	orphans prometheus.Counter
}

// NewMetrics registers the stage's metrics on reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		late: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_correlate_late_events_total", Help: "Events older than the watermark, sent to the DLQ.",
		}),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_alerts_total", Help: "Alerts emitted, by rule.",
		}, []string{"rule"}),
		steps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_correlate_steps_evaluated_total", Help: "Rule conditions evaluated.",
		}),
		orphans: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_correlate_orphans_dropped_total",
			Help: "Events held for a sequence's earlier step arriving out of order, let go early because the orphan buffers outgrew the cache bound.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.late, m.alerts, m.steps, m.orphans)
	}
	return m
}

// IdleAfter is how long a partition may go without events before it stops
// holding back the stage watermark that idle partitions advance to.
const IdleAfter = 30 * time.Second

// Options configure the stage.
type Options struct {
	Engine  operators.Options
	Metrics *Metrics
	Log     zerolog.Logger
}

// Stage declares the correlate stage over the keyspaces the rules use.
// current returns the rule set in force; when it changes (a reload), each
// partition swaps it in between records, keeping the state of rules that
// did not change and starting changed ones fresh. The keyspaces, and so
// the input topics, are those of the set current at start: a reload that
// needs a new keyspace is logged and takes a restart.
func Stage(t Topics, current func() *rules.Set, o Options) (runtime.Stage, error) {
	m := o.Metrics
	if m == nil {
		m = NewMetrics(nil)
	}
	set := current()
	clk := newClock(IdleAfter)
	byTopic := map[string]event.Keyspace{}
	var inputs []string
	for _, ks := range set.Keyspaces() {
		topic, ok := t.Events[ks]
		if !ok {
			return runtime.Stage{}, fmt.Errorf("correlate: no events topic for keyspace %s", ks)
		}
		byTopic[topic] = ks
		inputs = append(inputs, topic)
	}
	if len(inputs) == 0 {
		return runtime.Stage{}, errors.New("correlate: the loaded rules use no keyspace (no rules loaded?)")
	}
	keyspaces := set.Keyspaces()
	return runtime.Stage{
		Name:      "correlate",
		Inputs:    inputs,
		Outputs:   append([]string{t.Alerts}, inputs...),
		Loops:     true,
		DLQ:       t.DLQ,
		Changelog: func(in string) string { return t.Changelog(byTopic[in]) },
		New: func(p runtime.Partition) (runtime.Processor, error) {
			set := current()
			eng, err := operators.NewEngine(set, p.Store, o.Engine)
			if err != nil {
				return nil, err
			}
			return &processor{ks: byTopic[p.Topic], eng: eng, alerts: t.Alerts, m: m, clk: clk, now: time.Now,
				events: t.Events, keyspaces: keyspaces, set: set, current: current,
				log: o.Log.With().Str("stage", "correlate").Str("topic", p.Topic).Int32("partition", p.Partition).Logger()}, nil
		},
	}, nil
}

type processor struct {
	ks  event.Keyspace
	eng *operators.Engine
	// ev is decoded into for every record: the engine does not keep the
	// event it is given, and a fresh one per record was the stage's
	// largest allocation.
	ev     event.Event
	alerts string
	m      *Metrics
	// steps and orphans are the engine's counts already added to m.
	steps, orphans uint64
	clk            *clock
	now            func() time.Time
	busy           bool // events processed since the last EndBatch
	// events and keyspaces route alerts back in for chained rules.
	events    map[event.Keyspace]string
	keyspaces []event.Keyspace
	// set is the rule set the engine runs; current the one in force.
	set     *rules.Set
	current func() *rules.Set
	log     zerolog.Logger
}

// reload swaps in a new rule set if one was loaded since the last record.
func (p *processor) reload() error {
	cur := p.current()
	if cur == p.set {
		return nil
	}
	ch, err := p.eng.Reload(cur)
	if err != nil {
		return runtime.Fatal(fmt.Errorf("reload rules: %w", err))
	}
	p.set = cur
	for _, id := range ch.Changed {
		p.log.Info().Str("rule", id).Msg("rule changed; its state starts fresh")
	}
	if !ch.Empty() {
		p.log.Info().Strs("added", ch.Added).Strs("changed", ch.Changed).Strs("removed", ch.Removed).Int("kept", ch.Kept).Msg("rules reloaded")
	}
	for _, ks := range cur.Keyspaces() {
		if _, ok := p.events[ks]; ok && !slices.Contains(p.keyspaces, ks) {
			p.log.Warn().Str("keyspace", string(ks)).Msg("reloaded rules use a keyspace this process does not consume; restart to include it")
		}
	}
	return nil
}

func (p *processor) Process(_ context.Context, rec *kgo.Record, out *runtime.Output) error {
	if err := p.reload(); err != nil {
		return err
	}
	ev := &p.ev
	// Raw stays in the record's value (franz-go does not reuse it): the
	// engine copies what it buffers, and the alerts built from ev are
	// encoded before this returns.
	if err := event.UnmarshalShared(rec.Value, ev); err != nil {
		return fmt.Errorf("decode event: %w", err)
	}
	p.busy = true
	as, err := p.eng.ProcessEncoded(p.ks, string(rec.Key), ev, rec.Value)
	if errors.Is(err, operators.ErrLate) {
		p.m.late.Inc()
		return fmt.Errorf("event time %s is behind the watermark %s: %w", ev.Time.Format("2006-01-02T15:04:05.000Z07:00"),
			p.eng.Watermark().Format("2006-01-02T15:04:05.000Z07:00"), err)
	}
	if err != nil {
		return runtime.Fatal(err)
	}
	return p.emit(as, out)
}

func (p *processor) emit(as []alert.Alert, out *runtime.Output) error {
	for i := range as {
		b, err := json.Marshal(&as[i])
		if err != nil {
			return runtime.Fatal(fmt.Errorf("encode alert of %s: %w", as[i].RuleID, err))
		}
		out.Emit(p.alerts, []byte(as[i].ID), b)
		p.m.alerts.WithLabelValues(as[i].RuleID).Inc()
		ev := operators.AlertEvent(&as[i])
		enc, err := event.Marshal(&ev)
		if err != nil {
			return runtime.Fatal(err)
		}
		for _, ks := range p.keyspaces {
			for _, key := range ev.Keys(ks) {
				out.Emit(p.events[ks], []byte(key), enc)
			}
		}
	}
	return nil
}

// EndBatch fires time-driven logic up to the watermark and writes the
// engine's in-memory state to the store, so it joins this transaction.
func (p *processor) EndBatch(_ context.Context, out *runtime.Output) error {
	if err := p.reload(); err != nil {
		return err
	}
	now := p.now()
	wm := p.eng.Watermark()
	p.clk.report(p, wm, p.busy, now)
	if !p.busy {
		if stage, ok := p.clk.stage(now); ok && stage.After(wm) {
			wm = stage
		}
	}
	p.busy = false
	as, err := p.eng.Advance(wm)
	if err != nil {
		return err
	}
	if err := p.emit(as, out); err != nil {
		return err
	}
	if err := p.eng.Flush(); err != nil {
		return err
	}
	st := p.eng.Stats()
	p.m.steps.Add(float64(st.StepsEvaluated - p.steps))
	p.m.orphans.Add(float64(st.OrphansDropped - p.orphans))
	p.steps, p.orphans = st.StepsEvaluated, st.OrphansDropped
	return nil
}

func (p *processor) Close() error {
	p.clk.forget(p)
	return nil
}
