package operators

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/expr-lang/expr/vm"

	"github.com/vigil-sec/vigil/pipeline/alert"
	"github.com/vigil-sec/vigil/pipeline/event"
	"github.com/vigil-sec/vigil/rules"
)

// Store is the per-partition state the engine persists to (the Pebble
// backed state.Store implements it; reads see the engine's own uncommitted
// writes). Get returns (nil, nil) when the key is absent. Returned slices
// may be reused by the store after the next call; the engine copies what it
// keeps.
type Store interface {
	Get(key []byte) ([]byte, error)
	Set(key, value []byte) error
	Delete(key []byte) error
	Scan(prefix []byte, fn func(key, value []byte) error) error
}

// ErrLate reports an event older than the watermark. The caller sends the
// event to the DLQ with this reason; it never silently disappears.
var ErrLate = errors.New("operators: event older than the watermark (beyond allowed lateness)")

// Options configure an Engine.
type Options struct {
	// Lateness is the allowed lateness: the watermark trails the maximum
	// event time seen by this much.
	Lateness time.Duration
	// MaxCached bounds the number of per-key states kept in memory after a
	// Flush (clean states beyond it are dropped and re-read on demand).
	// Default 100000.
	MaxCached int
	// SweepEvery is how far (in event time) the watermark moves between
	// two sweeps of expired state in the Store. Default 1 minute.
	SweepEvery time.Duration
}

// Stats count what the engine did; read them for metrics.
type Stats struct {
	Events         uint64 // events processed
	Late           uint64 // events refused with ErrLate
	StepsEvaluated uint64 // where-conditions run
	EvalErrors     uint64 // conditions that failed at run time (counted as false)
	Alerts         uint64
}

var (
	metaKey     = []byte("m/engine")
	statePrefix = []byte("s/")
)

// Engine runs a rule set over one partition's events.
type Engine struct {
	set   *rules.Set
	st    Store
	opts  Options
	rules []*crule
	disp  map[event.Keyspace]*dispatch

	env   rules.Env // current event, reused
	env2  rules.Env // alert building, reused
	vm    vm.VM
	hits  []hit
	stats Stats

	maxSeen   time.Time
	wm        time.Time
	lastSweep time.Time
	metaDirty bool

	cache  map[string]*entry
	timers timerHeap
}

// crule is a rule with what the engine precomputes for it.
type crule struct {
	*rules.Rule
	idx    int
	prefix string // "s/<id>@<version>/"
}

type stepRef struct {
	r    *crule
	step *rules.Step
	bit  int // step index, -1 for until
}

// dispatch maps an event's Action/Source/Type/Category to the steps that
// can match it; steps without a hint are in any.
type dispatch struct {
	byField map[string]map[string][]stepRef
	any     []stepRef
}

type hit struct {
	r     *crule
	mask  uint64
	until bool
}

type entry struct {
	key   string
	r     *crule
	rs    *ruleState
	dirty bool
}

// NewEngine builds an engine over st. Persisted state is read lazily per
// key, except the watermark and absence timers, which are read now.
func NewEngine(set *rules.Set, st Store, opts Options) (*Engine, error) {
	if set == nil || st == nil {
		return nil, errors.New("operators: NewEngine needs a rule set and a store")
	}
	if opts.Lateness < 0 {
		return nil, fmt.Errorf("operators: negative lateness %v", opts.Lateness)
	}
	if opts.MaxCached <= 0 {
		opts.MaxCached = 100000
	}
	if opts.SweepEvery <= 0 {
		opts.SweepEvery = time.Minute
	}
	e := &Engine{set: set, st: st, opts: opts, disp: map[event.Keyspace]*dispatch{}, cache: map[string]*entry{}}
	for _, r := range set.Rules {
		if r.Disabled {
			continue
		}
		cr := &crule{Rule: r, idx: len(e.rules), prefix: "s/" + r.ID + "@" + r.Version + "/"}
		e.rules = append(e.rules, cr)
		d := e.disp[r.Keyspace]
		if d == nil {
			d = &dispatch{byField: map[string]map[string][]stepRef{}}
			e.disp[r.Keyspace] = d
		}
		for i, s := range r.Steps {
			d.add(stepRef{r: cr, step: s, bit: i})
		}
		if r.Until != nil {
			d.add(stepRef{r: cr, step: r.Until, bit: -1})
		}
	}
	if err := e.loadMeta(); err != nil {
		return nil, err
	}
	if err := e.loadTimers(); err != nil {
		return nil, err
	}
	return e, nil
}

func (d *dispatch) add(s stepRef) {
	h := s.step.Hint
	if h.Field == "" {
		d.any = append(d.any, s)
		return
	}
	m := d.byField[h.Field]
	if m == nil {
		m = map[string][]stepRef{}
		d.byField[h.Field] = m
	}
	for _, v := range h.Values {
		m[v] = append(m[v], s)
	}
}

type meta struct {
	MaxSeen time.Time `json:"max_seen"`
	WM      time.Time `json:"watermark"`
}

func (e *Engine) loadMeta() error {
	b, err := e.st.Get(metaKey)
	if err != nil {
		return fmt.Errorf("operators: read watermark: %w", err)
	}
	if b == nil {
		return nil
	}
	var m meta
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("operators: decode watermark: %w", err)
	}
	e.maxSeen, e.wm, e.lastSweep = m.MaxSeen, m.WM, m.WM
	return nil
}

// Watermark returns the current watermark.
func (e *Engine) Watermark() time.Time { return e.wm }

// Stats returns counters since the engine was built.
func (e *Engine) Stats() Stats { return e.stats }

// Process feeds one event that arrived on events.<ks> under key and
// returns the alerts that fire (including absence deadlines the event's
// time pushed the watermark past). An event older than the watermark
// returns ErrLate and changes nothing.
func (e *Engine) Process(ks event.Keyspace, key string, ev *event.Event) ([]alert.Alert, error) {
	if ev.Time.Before(e.wm) {
		e.stats.Late++
		return nil, fmt.Errorf("%w: event %s at %s, watermark %s", ErrLate, ev.ID,
			ev.Time.UTC().Format(time.RFC3339Nano), e.wm.UTC().Format(time.RFC3339Nano))
	}
	e.stats.Events++
	if ev.Time.After(e.maxSeen) {
		e.maxSeen = ev.Time
		e.metaDirty = true
		if wm := ev.Time.Add(-e.opts.Lateness); wm.After(e.wm) {
			e.wm = wm
		}
	}
	var out []alert.Alert
	if d := e.disp[ks]; d != nil && key != "" {
		if err := e.match(d, ev); err != nil {
			return nil, err
		}
		for _, h := range e.hits {
			if h.r.Key != nil && !e.keySelected(h.r, key) {
				continue
			}
			as, err := e.apply(h, ks, key, ev)
			if err != nil {
				return nil, fmt.Errorf("operators: rule %s: %w", h.r.ID, err)
			}
			out = append(out, as...)
		}
	}
	as, err := e.fireTimers()
	if err != nil {
		return nil, err
	}
	out = append(out, as...)
	e.stats.Alerts += uint64(len(out))
	return out, nil
}

// match evaluates the steps dispatched for ev and fills e.hits, one per
// rule, in rule order.
func (e *Engine) match(d *dispatch, ev *event.Event) error {
	e.hits = e.hits[:0]
	e.env.Reset(ev)
	decoded := false
	eval := func(refs []stepRef) {
		for _, s := range refs {
			if s.step.Where.UsesFields && !decoded {
				decoded = true
				_ = ev.DecodeFields() // a bad raw record leaves Fields empty: conditions see no fields
			}
			e.stats.StepsEvaluated++
			out, err := e.vm.Run(s.step.Where.Program, &e.env)
			if err != nil {
				e.stats.EvalErrors++
				continue
			}
			if b, _ := out.(bool); !b {
				continue
			}
			e.addHit(s)
		}
	}
	for _, f := range [...]struct {
		name string
		val  string
	}{{"Action", ev.Action}, {"Source", ev.Source}, {"Type", ev.Type}, {"Category", string(ev.Category)}} {
		if m := d.byField[f.name]; m != nil {
			eval(m[f.val])
		}
	}
	eval(d.any)
	sort.Slice(e.hits, func(i, j int) bool { return e.hits[i].r.idx < e.hits[j].r.idx })
	return nil
}

func (e *Engine) addHit(s stepRef) {
	for i := range e.hits {
		if e.hits[i].r == s.r {
			if s.bit < 0 {
				e.hits[i].until = true
			} else {
				e.hits[i].mask |= 1 << s.bit
			}
			return
		}
	}
	h := hit{r: s.r}
	if s.bit < 0 {
		h.until = true
	} else {
		h.mask = 1 << s.bit
	}
	e.hits = append(e.hits, h)
}

// keySelected runs the rule's key expression on the current event.
func (e *Engine) keySelected(r *crule, key string) bool {
	for _, v := range e.values(&e.env, r.Key) {
		if v == key {
			return true
		}
	}
	return false
}

// values evaluates a string-or-list expression, dropping empty values.
func (e *Engine) values(env *rules.Env, x *rules.Expr) []string {
	if x.UsesFields {
		_ = env.Event.DecodeFields()
	}
	out, err := e.vm.Run(x.Program, env)
	if err != nil {
		e.stats.EvalErrors++
		return nil
	}
	return toStrings(out)
}

func toStrings(v any) []string {
	switch x := v.(type) {
	case nil:
		return nil
	case string:
		if x == "" {
			return nil
		}
		return []string{x}
	case []string:
		var out []string
		for _, s := range x {
			if s != "" {
				out = append(out, s)
			}
		}
		return out
	case []any:
		var out []string
		for _, s := range x {
			out = append(out, toStrings(s)...)
		}
		return out
	}
	s := fmt.Sprint(v)
	if s == "" {
		return nil
	}
	return []string{s}
}

func (e *Engine) apply(h hit, ks event.Keyspace, key string, ev *event.Event) ([]alert.Alert, error) {
	r := h.r
	if r.Kind == rules.KindMatch {
		if h.mask == 0 {
			return nil, nil
		}
		a := e.buildAlert(r, ks, key, [][]event.Event{{*ev}}, ev.Time, ev.Time)
		return e.emit(r, key, ev, a)
	}
	ent, err := e.load(r, key)
	if err != nil {
		return nil, err
	}
	var as []alert.Alert
	switch r.Kind {
	case rules.KindSequence:
		as = e.sequence(ent, ks, key, ev, h.mask, h.until)
	case rules.KindThreshold:
		as = e.threshold(ent, ks, key, ev)
	case rules.KindAbsence:
		e.absence(ent, ev, h.mask)
	case rules.KindNewTerm:
		as = e.newTerm(ent, ks, key, ev)
	}
	var out []alert.Alert
	for i := range as {
		last := lastEvent(&as[i])
		got, err := e.emit(r, key, last, as[i])
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	return out, nil
}

func lastEvent(a *alert.Alert) *event.Event {
	var last *event.Event
	for i := range a.Steps {
		for j := range a.Steps[i].Events {
			ev := &a.Steps[i].Events[j]
			if last == nil || !ev.Time.Before(last.Time) {
				last = ev
			}
		}
	}
	return last
}

// emit applies the rule's suppression and returns the alert if it passes.
func (e *Engine) emit(r *crule, key string, last *event.Event, a alert.Alert) ([]alert.Alert, error) {
	if r.Suppress.Window <= 0 {
		return []alert.Alert{a}, nil
	}
	ent, err := e.load(r, key)
	if err != nil {
		return nil, err
	}
	sk := ""
	if len(r.Suppress.By) > 0 && last != nil {
		var env rules.Env
		env.Reset(last)
		var parts []string
		for _, x := range r.Suppress.By {
			parts = append(parts, strings.Join(e.values(&env, x), ","))
		}
		sk = strings.Join(parts, "\x1f")
	}
	rs := ent.rs
	if until, ok := rs.Supp[sk]; ok && a.Time.Before(until) {
		return nil, nil
	}
	if rs.Supp == nil {
		rs.Supp = map[string]time.Time{}
	}
	rs.Supp[sk] = a.Time.Add(r.Suppress.Window)
	ent.dirty = true
	return []alert.Alert{a}, nil
}

// buildAlert assembles an alert from the events of each step.
func (e *Engine) buildAlert(r *crule, ks event.Keyspace, key string, steps [][]event.Event, first, last time.Time) alert.Alert {
	a := alert.Alert{
		RuleID: r.ID, RuleVersion: r.Version, Title: r.Name, Description: r.Description,
		Severity: r.Severity, Tactics: r.Tactics, Techniques: r.Techniques,
		Keyspace: ks, Key: key, FirstTime: first.UTC(), Time: last.UTC(), Grouping: r.Grouping,
		Entities: []alert.Entity{},
	}
	a.AddEntity(keyspaceEntity(ks), key, "")
	for i, evs := range steps {
		if i >= len(r.Steps) {
			break
		}
		st := r.Steps[i]
		a.Steps = append(a.Steps, alert.Step{Name: st.Name, Events: evs})
		for j := range evs {
			ev := evs[j] // copy: decoding Fields must not touch the alert's event
			e.env2.Reset(&ev)
			for _, en := range st.Entities {
				for _, x := range en.Exprs {
					for _, v := range e.values(&e.env2, x) {
						a.AddEntity(en.Type, v, st.Name)
					}
				}
			}
		}
	}
	a.ID = alert.MakeID(r.ID, r.Version, ks, key, a.EventIDs())
	return a
}

func keyspaceEntity(ks event.Keyspace) alert.EntityType {
	switch ks {
	case event.KeyUser:
		return alert.EntityUser
	case event.KeyDevice:
		return alert.EntityDevice
	case event.KeyIP:
		return alert.EntityIP
	}
	return alert.EntityResource
}

// Advance moves event time forward to watermark (if it is later), fires
// absence deadlines it passes, and expires state the rules can no longer
// use. The stage calls it after each batch and from an idle-partition
// ticker, so a silent key still times out.
func (e *Engine) Advance(watermark time.Time) ([]alert.Alert, error) {
	if watermark.After(e.wm) {
		e.wm = watermark
		e.metaDirty = true
	}
	out, err := e.fireTimers()
	if err != nil {
		return nil, err
	}
	e.stats.Alerts += uint64(len(out))
	if e.wm.Sub(e.lastSweep) >= e.opts.SweepEvery {
		if err := e.sweep(); err != nil {
			return out, err
		}
		e.lastSweep = e.wm
	}
	return out, nil
}

// Flush writes dirty state to the Store.
func (e *Engine) Flush() error {
	for k, ent := range e.cache {
		if !ent.dirty {
			continue
		}
		if err := e.save(ent); err != nil {
			return fmt.Errorf("operators: flush %s: %w", k, err)
		}
		ent.dirty = false
	}
	if e.metaDirty {
		b, _ := json.Marshal(meta{MaxSeen: e.maxSeen, WM: e.wm})
		if err := e.st.Set(metaKey, b); err != nil {
			return fmt.Errorf("operators: flush watermark: %w", err)
		}
		e.metaDirty = false
	}
	if len(e.cache) > e.opts.MaxCached {
		for k, ent := range e.cache {
			if !ent.dirty {
				delete(e.cache, k)
			}
		}
	}
	return nil
}

func (e *Engine) save(ent *entry) error {
	if ent.rs.empty() {
		return e.st.Delete([]byte(ent.key))
	}
	body, err := json.Marshal(ent.rs)
	if err != nil {
		return err
	}
	buf := make([]byte, 8, 8+len(body))
	binary.BigEndian.PutUint64(buf, uint64(ent.rs.expiry(ent.r.Rule).UnixNano()))
	return e.st.Set([]byte(ent.key), append(buf, body...))
}

// load returns the cached state of (rule, key), reading the Store on a miss.
func (e *Engine) load(r *crule, key string) (*entry, error) {
	sk := r.prefix + key
	if ent := e.cache[sk]; ent != nil {
		return ent, nil
	}
	ent := &entry{key: sk, r: r, rs: &ruleState{}}
	b, err := e.st.Get([]byte(sk))
	if err != nil {
		return nil, fmt.Errorf("read state %s: %w", sk, err)
	}
	if len(b) > 8 {
		if err := json.Unmarshal(b[8:], ent.rs); err != nil {
			return nil, fmt.Errorf("decode state %s: %w", sk, err)
		}
	}
	e.cache[sk] = ent
	return ent, nil
}

// sweep deletes state whose expiry the watermark has passed, in the cache
// and in the Store.
func (e *Engine) sweep() error {
	for k, ent := range e.cache {
		if ent.rs.expiry(ent.r.Rule).Before(e.wm) {
			ent.rs = &ruleState{}
			ent.dirty = true
			_ = k
		}
	}
	var dead [][]byte
	err := e.st.Scan(statePrefix, func(k, v []byte) error {
		if len(v) >= 8 && int64(binary.BigEndian.Uint64(v)) < e.wm.UnixNano() {
			dead = append(dead, append([]byte(nil), k...))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("operators: sweep: %w", err)
	}
	for _, k := range dead {
		if ent := e.cache[string(k)]; ent != nil && !ent.rs.empty() {
			continue // refreshed in memory since it was written
		}
		if err := e.st.Delete(k); err != nil {
			return fmt.Errorf("operators: sweep: %w", err)
		}
	}
	return nil
}
