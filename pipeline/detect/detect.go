package detect

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/vigil-sec/vigil/operators"
	"github.com/vigil-sec/vigil/pipeline/alert"
	"github.com/vigil-sec/vigil/pipeline/event"
	"github.com/vigil-sec/vigil/pipeline/incident"
	"github.com/vigil-sec/vigil/pipeline/normalize"
	"github.com/vigil-sec/vigil/rules"
)

// DefaultLateness is the default Options.Lateness: the default allowed
// lateness of the streaming deployment (config rules.lateness).
const DefaultLateness = 5 * time.Minute

// batchSize is how many input events go between two Advance+Flush calls,
// as a streaming batch would: it lets the engines sweep expired state.
const batchSize = 1000

// Options configure Run.
type Options struct {
	// Lateness is the engines' allowed lateness (default
	// DefaultLateness). Input events are fed in event-time order and are
	// never late; it matters for alerts re-entering as events, exactly
	// as in the streaming correlate stage.
	Lateness time.Duration
	// Received overrides every input's receive time when set (see
	// Input.Received).
	Received time.Time
	// Enrich, when set, is called for every event, in event-time order,
	// before it is keyed: the normalize stage's entity enrichment (for
	// pipeline/enrich: Observe, then Enrich).
	Enrich func(*event.Event) error
	// Incident tunes incident grouping.
	Incident incident.Options
	// AllRevisions prints every revision of each incident, in the order
	// they were made; by default only the final one.
	AllRevisions bool
	// Errors receives one JSON line per record that could not be read,
	// parsed, enriched or matched (type "error"); nil means os.Stderr.
	Errors io.Writer
	// Log receives progress and summary messages.
	Log zerolog.Logger
}

// Stats count what Run did.
type Stats struct {
	Inputs   int `json:"inputs"`
	Messages int `json:"messages"` // raw messages (records of a raw topic)
	Events   int `json:"events"`   // events normalized
	// Errors counts error lines: unreadable inputs, unparseable records,
	// enrichment failures, late events.
	Errors int `json:"errors"`
	// Late counts input events refused as late (never, since input is
	// sorted, unless Enrich moves time) and LateAlertEvents alerts that
	// could not re-enter for chaining because they are older than the
	// watermark (absence alerts always are, as in streaming).
	Late            int `json:"late"`
	LateAlertEvents int `json:"late_alert_events"`
	// Alerts counts distinct alerts printed; DuplicateAlerts the firings
	// that repeated an id already printed (the same evidence twice).
	Alerts          int `json:"alerts"`
	DuplicateAlerts int `json:"duplicate_alerts"`
	// TailAlerts counts the alerts that fired only at the final watermark
	// advance (absence deadlines after the last event).
	TailAlerts int `json:"tail_alerts"`
	Incidents  int `json:"incidents"`
	// StepsEvaluated sums the rule conditions the engines evaluated.
	StepsEvaluated uint64 `json:"steps_evaluated"`
	// FirstTime and LastTime span the input's event times; Final is the
	// watermark the engines were advanced to at the end.
	FirstTime time.Time `json:"first_time,omitzero"`
	LastTime  time.Time `json:"last_time,omitzero"`
	Final     time.Time `json:"final_watermark,omitzero"`
}

// ErrorLine is the JSON line written to Options.Errors for each record
// that did not become (or stay) an event.
type ErrorLine struct {
	Type string `json:"type"` // always "error"
	// Stage is where it failed: read, normalize, enrich or correlate.
	Stage string `json:"stage"`
	Input string `json:"input,omitempty"`
	// Line is the 1-based line of the input where the record starts
	// (0 when unknown); Index its position inside its raw message.
	Line  int    `json:"line,omitempty"`
	Index int    `json:"index"`
	Event string `json:"event,omitempty"` // event id, after normalize
	Error string `json:"error"`
	// Raw is the record's bytes, cut at maxRaw.
	Raw string `json:"raw,omitempty"`
}

const maxRaw = 4096

// item is one input event with where it came from.
type item struct {
	ev    event.Event
	input int
	line  int
}

// run is the state of one Run call.
type run struct {
	ctx   context.Context
	set   *rules.Set
	opts  Options
	errw  io.Writer
	kss   []event.Keyspace
	engs  map[event.Keyspace]*operators.Engine
	seen  map[string]bool
	out   []alert.Alert // distinct alerts, in firing order
	queue []event.Event // alert events waiting to re-enter
	tail  bool
	st    Stats
	names []string
}

// Run normalizes, correlates and groups the records of inputs in one
// process, without Kafka, and writes the alerts and incidents to out as
// JSON lines ({"type":"alert",...} then {"type":"incident",...}). Records
// that fail go to opts.Errors as {"type":"error",...} lines and are
// counted; they never stop the run. Run returns an error only when it
// cannot go on: the rules use no keyspace, an engine fails, out fails, or
// ctx is cancelled.
func Run(ctx context.Context, set *rules.Set, inputs []Input, out io.Writer, opts Options) (Stats, error) {
	if set == nil {
		return Stats{}, errors.New("detect: no rule set")
	}
	if opts.Lateness == 0 {
		opts.Lateness = DefaultLateness
	}
	r := &run{ctx: ctx, set: set, opts: opts, errw: opts.Errors, seen: map[string]bool{}}
	if r.errw == nil {
		r.errw = os.Stderr
	}
	r.kss = set.Keyspaces()
	if len(r.kss) == 0 {
		return Stats{}, errors.New("detect: the rules use no keyspace (no rules loaded?)")
	}
	r.engs = map[event.Keyspace]*operators.Engine{}
	for _, ks := range r.kss {
		eng, err := operators.NewEngine(set, operators.NewMemStore(), operators.Options{Lateness: opts.Lateness})
		if err != nil {
			return Stats{}, fmt.Errorf("detect: engine for %s: %w", ks, err)
		}
		r.engs[ks] = eng
	}

	items, err := r.readAll(inputs)
	if err != nil {
		return r.st, err
	}
	sortEvents(items)
	if err := r.correlate(items); err != nil {
		return r.st, err
	}
	for _, ks := range r.kss {
		r.st.StepsEvaluated += r.engs[ks].Stats().StepsEvaluated
	}
	if err := r.write(out); err != nil {
		return r.st, err
	}
	r.opts.Log.Info().Int("inputs", r.st.Inputs).Int("events", r.st.Events).Int("errors", r.st.Errors).
		Int("alerts", r.st.Alerts).Int("incidents", r.st.Incidents).Msg("detect done")
	return r.st, nil
}

// readAll reads and normalizes every input.
func (r *run) readAll(inputs []Input) ([]item, error) {
	var items []item
	for i, in := range inputs {
		if err := r.ctx.Err(); err != nil {
			return nil, err
		}
		r.st.Inputs++
		name := in.Name
		if name == "" {
			name = fmt.Sprintf("input %d", i+1)
		}
		r.names = append(r.names, name)
		data, recv, err := in.read(r.opts.Received)
		if err != nil {
			if err := r.report(ErrorLine{Stage: "read", Input: name, Error: err.Error()}); err != nil {
				return nil, err
			}
			continue
		}
		msgs, mode := split(data, in.Hint)
		r.opts.Log.Debug().Str("input", name).Str("mode", mode).Int("messages", len(msgs)).Msg("read")
		parsed := parseAll(msgs, in.Hint, recv)
		for k, m := range msgs {
			r.st.Messages++
			evs, bad := parsed[k].evs, parsed[k].bad
			if len(evs) == 0 && len(bad) == 0 {
				// The normalize stage dead-letters such a message too.
				if err := r.report(ErrorLine{Stage: "normalize", Input: name, Line: m.line, Error: "no records in message", Raw: string(m.value)}); err != nil {
					return nil, err
				}
			}
			for _, b := range bad {
				line := m.line
				if m.csv {
					line += 1 + b.Index
				}
				if err := r.report(ErrorLine{Stage: "normalize", Input: name, Line: line, Index: b.Index, Error: b.Err.Error(), Raw: string(b.Raw)}); err != nil {
					return nil, err
				}
			}
			for j := range evs {
				items = append(items, item{ev: evs[j], input: i, line: m.line})
			}
			r.st.Events += len(evs)
			parsed[k] = parseResult{}
		}
	}
	return items, nil
}

type parseResult struct {
	evs []event.Event
	bad []normalize.RecordError
}

// parseAll parses messages on every CPU: normalize.Parse is a pure
// function of its arguments, and the results keep the messages' order.
func parseAll(msgs []message, hint string, recv time.Time) []parseResult {
	out := make([]parseResult, len(msgs))
	workers := min(runtime.GOMAXPROCS(0), (len(msgs)+63)/64)
	if workers <= 1 {
		for i, m := range msgs {
			out[i].evs, out[i].bad = normalize.Parse(hint, m.value, recv)
		}
		return out
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				end := int(next.Add(64))
				start := end - 64
				if start >= len(msgs) {
					return
				}
				for i := start; i < min(end, len(msgs)); i++ {
					out[i].evs, out[i].bad = normalize.Parse(hint, msgs[i].value, recv)
				}
			}
		})
	}
	wg.Wait()
	return out
}

// sortEvents orders events by event time; ties by id, source and raw
// bytes, so the order (and with it every alert and incident) does not
// depend on the order the inputs were given in.
func sortEvents(items []item) {
	slices.SortStableFunc(items, func(a, b item) int {
		if c := a.ev.Time.Compare(b.ev.Time); c != 0 {
			return c
		}
		if c := cmp.Compare(a.ev.ID, b.ev.ID); c != 0 {
			return c
		}
		if c := cmp.Compare(a.ev.Source, b.ev.Source); c != 0 {
			return c
		}
		return bytes.Compare(a.ev.Raw, b.ev.Raw)
	})
}

// correlate feeds the sorted events to the engines, alerts back in as
// events, and advances the watermark past every deadline at the end.
func (r *run) correlate(items []item) error {
	var maxT time.Time
	for i := range items {
		if i%1024 == 0 {
			if err := r.ctx.Err(); err != nil {
				return err
			}
		}
		it := &items[i]
		ev := &it.ev
		if r.opts.Enrich != nil {
			if err := r.opts.Enrich(ev); err != nil {
				if err := r.report(ErrorLine{Stage: "enrich", Input: r.names[it.input], Line: it.line, Event: ev.ID, Error: err.Error()}); err != nil {
					return err
				}
			}
		}
		if r.st.FirstTime.IsZero() || ev.Time.Before(r.st.FirstTime) {
			r.st.FirstTime = ev.Time
		}
		if ev.Time.After(maxT) {
			maxT = ev.Time
		}
		if err := r.feed(ev, it); err != nil {
			return err
		}
		if (i+1)%batchSize == 0 {
			if err := r.endBatch(); err != nil {
				return err
			}
		}
		// Free the event: the engines keep what they need.
		*ev = event.Event{}
	}
	r.st.LastTime = maxT
	if maxT.IsZero() {
		return nil
	}
	// Past the last event, no event can cancel a pending absence or
	// extend a window: advance every engine beyond the latest deadline
	// any rule can have (its horizon includes its own lateness), so
	// absence rules fire for the tail of the input.
	final := maxT.Add(r.set.MaxHorizon() + r.opts.Lateness + time.Second)
	r.st.Final = final
	r.tail = true
	for _, ks := range r.kss {
		as, err := r.engs[ks].Advance(final)
		if err != nil {
			return fmt.Errorf("detect: advance %s: %w", ks, err)
		}
		if err := r.emit(as); err != nil {
			return err
		}
	}
	return nil
}

// feed processes one input event in every keyspace the rules use, then
// the alert events it caused.
func (r *run) feed(ev *event.Event, it *item) error {
	for _, ks := range r.kss {
		eng := r.engs[ks]
		for _, key := range ev.Keys(ks) {
			as, err := eng.Process(ks, key, ev)
			if errors.Is(err, operators.ErrLate) {
				r.st.Late++
				if err := r.report(ErrorLine{Stage: "correlate", Input: r.names[it.input], Line: it.line, Event: ev.ID, Error: err.Error()}); err != nil {
					return err
				}
				continue
			}
			if err != nil {
				return fmt.Errorf("detect: %s %s: %w", ks, key, err)
			}
			if err := r.emit(as); err != nil {
				return err
			}
		}
	}
	return nil
}

// emit records alerts and feeds each back as an event, as the correlate
// stage does (operators.AlertEvent, once per key in every keyspace), in
// the order they fired, until no alert causes another. Lint refuses
// chains that form a cycle, so this ends.
func (r *run) emit(as []alert.Alert) error {
	r.record(as)
	for len(r.queue) > 0 {
		ev := r.queue[0]
		r.queue[0] = event.Event{}
		r.queue = r.queue[1:]
		for _, ks := range r.kss {
			eng := r.engs[ks]
			for _, key := range ev.Keys(ks) {
				more, err := eng.Process(ks, key, &ev)
				if errors.Is(err, operators.ErrLate) {
					r.st.LateAlertEvents++
					r.opts.Log.Debug().Str("alert", ev.ID).Str("rule", ev.Action).Str("keyspace", string(ks)).Msg("alert too late to re-enter")
					continue
				}
				if err != nil {
					return fmt.Errorf("detect: alert event %s: %w", ev.ID, err)
				}
				r.record(more)
			}
		}
	}
	r.queue = r.queue[:0]
	return nil
}

// record keeps the alerts not seen before and queues every one to
// re-enter: the stage re-emits a repeated alert's event too.
func (r *run) record(as []alert.Alert) {
	for i := range as {
		a := &as[i]
		if r.seen[a.ID] {
			r.st.DuplicateAlerts++
		} else {
			r.seen[a.ID] = true
			r.out = append(r.out, *a)
			if r.tail {
				r.st.TailAlerts++
			}
		}
		r.queue = append(r.queue, operators.AlertEvent(a))
	}
}

// endBatch does what the correlate stage does after each batch: fire
// timers up to the watermark, expire dead state, write state back.
func (r *run) endBatch() error {
	for _, ks := range r.kss {
		eng := r.engs[ks]
		as, err := eng.Advance(eng.Watermark())
		if err != nil {
			return fmt.Errorf("detect: advance %s: %w", ks, err)
		}
		if err := r.emit(as); err != nil {
			return err
		}
		if err := eng.Flush(); err != nil {
			return fmt.Errorf("detect: flush %s: %w", ks, err)
		}
	}
	return nil
}

// report writes one error line and counts it.
func (r *run) report(e ErrorLine) error {
	e.Type = "error"
	if len(e.Raw) > maxRaw {
		e.Raw = e.Raw[:maxRaw]
	}
	r.st.Errors++
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("detect: encode error line: %w", err)
	}
	if _, err := r.errw.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("detect: write error line: %w", err)
	}
	return nil
}
