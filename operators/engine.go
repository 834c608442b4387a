package operators

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/expr-lang/expr/vm"

	"github.com/vigil-sec/vigil/pipeline/alert"
	"github.com/vigil-sec/vigil/pipeline/event"
	"github.com/vigil-sec/vigil/rules"
)

// Store is the per-partition state the engine persists to (the Pebble
// backed state.Store implements it; reads see the engine's own uncommitted
// writes). Get returns (nil, nil) when the key is absent; the engine may
// keep the returned slice, so Get must return a slice the store no longer
// uses (a copy). Set and Delete must not retain key or value after they
// return: the engine reuses its buffers. Scan's slices are valid only
// during fn.
type Store interface {
	Get(key []byte) ([]byte, error)
	Set(key, value []byte) error
	Delete(key []byte) error
	Scan(prefix []byte, fn func(key, value []byte) error) error
}

// ErrLate reports an event older than the watermark. The caller sends the
// event to the DLQ with this reason; it never silently disappears.
var ErrLate = errors.New("operators: event older than the watermark (beyond allowed lateness)")

// DefaultThresholdEvidence is the default of Options.ThresholdEvidence.
const DefaultThresholdEvidence = 16

// Options configure an Engine.
type Options struct {
	// Lateness is the allowed lateness: the watermark trails the maximum
	// event time seen by this much.
	Lateness time.Duration
	// MaxCached bounds the number of per-key states kept in memory after a
	// Flush (clean states beyond it are dropped and re-read on demand).
	// Orphan buffers, which live in memory whole for a lateness (about
	// 250 bytes an orphan), are bounded by the same number of keys: past
	// it a Flush empties the buffers whose newest orphan is oldest, down
	// to three quarters of it (Stats.OrphansDropped). Default 100000.
	MaxCached int
	// SweepEvery is how far (in event time) the watermark moves between
	// two sweeps of expired state in the Store. Default 1 minute.
	SweepEvery time.Duration
	// ThresholdEvidence is how many matched events a threshold keeps per
	// (rule, key, group) for its alert: the newest ones. The threshold
	// itself keeps only ids, times and distinct values / sum terms of the
	// window, so this bounds the state of a busy key. The alert id still
	// hashes every event id of the firing window. Default
	// DefaultThresholdEvidence.
	ThresholdEvidence int
}

// Stats count what the engine did; read them for metrics.
type Stats struct {
	Events         uint64 // events processed
	Late           uint64 // events refused with ErrLate
	StepsEvaluated uint64 // where-conditions run
	EvalErrors     uint64 // conditions that failed at run time (counted as false)
	Alerts         uint64
	// StateDiscarded counts stored states this build could not read
	// (another state version) and started fresh.
	StateDiscarded uint64
	// EventsMissing counts buffered events whose blob was not in the Store
	// when an alert needed them (a corrupt Store): the alert names them by
	// id and time only.
	EventsMissing uint64
	// OrphansDropped counts orphans let go early because the orphan
	// buffers outgrew Options.MaxCached: an earlier step arriving later
	// than them no longer completes a sequence with them.
	OrphansDropped uint64
}

var (
	metaKey     = []byte("m/engine")
	statePrefix = []byte("s/")
)

// Engine runs a rule set over one partition's events. It is not safe for
// concurrent use: one goroutine (the partition's worker) calls Process,
// Advance, Flush and Reload.
type Engine struct {
	set    *rules.Set
	fields *event.FieldPaths // what rules read of Raw: set.FieldPaths()
	st     Store
	opts   Options
	rules  []*crule
	// byPrefix finds a rule by its Store prefix (cachedEntry).
	byPrefix map[string]*crule
	// orphanRules are the orphan buffers' pseudo-rules, one per keyspace
	// with an ordered sequence of two steps or more (also in rules).
	orphanRules map[event.Keyspace]*crule
	disp        map[event.Keyspace]*dispatch

	env     rules.Env   // current event, reused
	env2    rules.Env   // alert building, reused
	alertEv event.Event // env2's event: a copy, as decoding Fields must not touch the alert's
	henv    rules.HavingEnv
	vm      vm.VM
	frame   rules.Frame // native conditions' view of env and vm
	frame2  rules.Frame // and of env2
	vals    []string    // nativeValues' scratch
	enc     encoded     // the current event, encoded once for all rules
	input   []byte      // the current event's encoding, when the caller has it (ProcessEncoded)
	refs    []blobRef   // saveEvents' scratch
	kept    []uint64    // saveEvents' scratch
	bkbuf   []byte      // blob keys' buffer
	// blobN is the last blob number handed out; blobs the blobs whose
	// reference count the current Flush changes (blobs.go).
	blobN    uint64
	unstored uint64           // blob numbers from here on have no Store key yet (ref)
	blobs    map[uint64]int32 // blob number → its record in blobRecs
	blobRecs []blobRec        // reused from Flush to Flush: no allocation per blob
	counts   map[uint64]int64 // stored counts of blobs this engine wrote (bounded by maxCounts)
	changed  []int32          // writeBlobs' scratch: records to write
	hits     []hit
	stats    Stats

	maxSeen   time.Time
	wm        time.Time
	wmN       int64 // wm in unix ns
	lastSweep time.Time
	metaDirty bool

	cached int // entries in all rules' caches
	// uncachedMin is a lower bound on the expiry of every state key in
	// the Store that is not in a rule's cache (math.MinInt64: unknown, as
	// at start). The sweep reads the Store only once the watermark passes
	// it: until then every key that can have expired is cached, and the
	// cache pass finds it. Reading every state key each SweepEvery was a
	// sweep's whole cost on a large Store.
	uncachedMin int64
	dirty       []*entry // entries changed since the last Flush
	timers      timerHeap

	kbuf, vbuf  []byte // Store key and value buffers, reused
	mbuf        []byte // orphanEncoding's scratch
	esc         encodeScratch
	marks       []uint32 // distinct counting scratch (epoch marks)
	epoch       uint32
	recount     bool      // tests: count every threshold window afresh (no thAgg)
	noOrphans   bool      // tests: sequences keep their orphans themselves
	noLog       bool      // tests: sequences keep every event as a blob (logsEvents)
	lastOrphans *entry    // orphansOf's memo, for the current event
	adopted     int       // tests: orphan buffers a sequence adopted from
	keepRepeats bool      // tests: never forget repeated distinct values (forgetRepeats)
	olog        orphanLog // the orphan log's chunks (orphanlog.go)
}

// crule is a rule with what the engine precomputes for it.
type crule struct {
	*rules.Rule
	idx    int
	prefix string // "s/<id>@<version>/"
	ref    uint64 // idHash("<id>@<version>"): an orphan's owner
	pseudo bool   // a keyspace's orphan rule (orphans.go), not the rule set's
	// orphans: an ordered sequence of two steps or more, whose later-step
	// events wait in the key's orphan buffer while it buffers nothing.
	orphans bool
	// logs: a sequence whose steps' events go to the orphan log
	// (logsEvents).
	logs bool
	// states caches the per-key state of this rule.
	states map[string]*entry
}

type stepRef struct {
	r    *crule
	step *rules.Step
	bit  int // step index, -1 for until
}

// Dispatch fields, in the order they are consulted.
const (
	dAction = iota
	dSource
	dType
	dCategory
	nDispatch
)

var dispatchField = map[string]int{"Action": dAction, "Source": dSource, "Type": dType, "Category": dCategory}

// dispatch maps an event's Action/Source/Type/Category to the steps that
// can match it; steps without a hint are in any.
type dispatch struct {
	byField [nDispatch]map[string][]stepRef
	any     []stepRef
	// memo holds, per (Action, Source, Type, Category) seen, the steps
	// the lookups above give, in the order they give them: one probe per
	// event instead of four map lookups. Events repeat a small
	// vocabulary; past maxDispatchMemo tuples the memo starts over.
	memo dispatchMemo
}

const maxDispatchMemo = 4096

// steps returns the steps that can match an event with these values.
func (d *dispatch) steps(vals [nDispatch]string) []stepRef {
	h := memoHash(&vals)
	if refs, ok := d.memo.get(h, &vals); ok {
		return refs
	}
	var refs []stepRef
	for f, m := range d.byField {
		if m != nil {
			refs = append(refs, m[vals[f]]...)
		}
	}
	refs = append(refs, d.any...)
	for i := range vals {
		vals[i] = strings.Clone(vals[i]) // the event's strings may share its record's buffer
	}
	d.memo.put(h, vals, refs)
	return refs
}

// dispatchMemo is an open-addressing table of dispatch tuples. Go's map
// hashed all four strings whole on every event (4% of the engine's CPU
// on production-like traffic); memoHash reads a few bytes of each, and a
// probe compares the strings, so a collision costs a comparison, not a
// wrong answer. Probes stop after maxProbe slots: a tuple that finds no
// room is answered without the memo, so values made to collide cost
// time, never correctness.
type dispatchMemo struct {
	slots []memoSlot // len a power of two, twice maxDispatchMemo
	n     int
}

type memoSlot struct {
	h    uint64
	vals [nDispatch]string
	refs []stepRef
	used bool
}

const maxProbe = 8

// memoHash mixes each value's length and its first, middle and last bytes.
func memoHash(v *[nDispatch]string) uint64 {
	h := uint64(14695981039346656037)
	for _, s := range v {
		x := uint64(len(s))
		if n := len(s); n > 0 {
			x |= uint64(s[0])<<16 | uint64(s[n/2])<<24 | uint64(s[n-1])<<32 | uint64(s[n*3/4])<<40
		}
		h = (h ^ x) * 1099511628211
		h ^= h >> 29
	}
	return h
}

func (m *dispatchMemo) get(h uint64, v *[nDispatch]string) ([]stepRef, bool) {
	if m.slots == nil {
		return nil, false
	}
	mask := uint64(len(m.slots) - 1)
	for i := uint64(0); i < maxProbe; i++ {
		s := &m.slots[(h+i)&mask]
		if !s.used {
			return nil, false
		}
		if s.h == h && s.vals == *v {
			return s.refs, true
		}
	}
	return nil, false
}

func (m *dispatchMemo) put(h uint64, v [nDispatch]string, refs []stepRef) {
	if m.slots == nil || m.n >= maxDispatchMemo {
		m.slots, m.n = make([]memoSlot, 2*maxDispatchMemo), 0
	}
	mask := uint64(len(m.slots) - 1)
	for i := uint64(0); i < maxProbe; i++ {
		if s := &m.slots[(h+i)&mask]; !s.used {
			*s = memoSlot{h: h, vals: v, refs: refs, used: true}
			m.n++
			return
		}
	}
}

type hit struct {
	r     *crule
	mask  uint64
	until bool
}

type entry struct {
	key string // the correlation key
	r   *crule
	rs  ruleState
	// exp is rs's expiry as last saved or loaded: the sweep reads it for
	// a clean entry instead of walking its state.
	exp   int64
	dirty bool
	dead  bool // its rule was removed by Reload
	// stored are the blob numbers the saved value names, sorted: save
	// counts a reference for the state's other events and releases these
	// when the state no longer holds them.
	stored []uint64
	// legacy are version 3 event keys of this (rule, key), deleted at
	// the next save once their events moved to shared blobs.
	legacy []uint64
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
	if opts.ThresholdEvidence <= 0 {
		opts.ThresholdEvidence = DefaultThresholdEvidence
	}
	e := &Engine{st: st, opts: opts, blobs: map[uint64]int32{}, counts: map[uint64]int64{}, uncachedMin: math.MinInt64}
	e.install(set)
	if err := e.loadMeta(); err != nil {
		return nil, err
	}
	e.unstored = e.blobN + 1
	if err := e.loadOrphanLog(); err != nil {
		return nil, err
	}
	for _, r := range e.rules {
		if err := e.loadTimers(r); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// install compiles the dispatch index of set; rule caches start empty.
func (e *Engine) install(set *rules.Set) {
	e.set = set
	e.fields = set.FieldPaths()
	e.frame = rules.Frame{Env: &e.env, VM: &e.vm, Paths: e.fields}
	e.frame2 = rules.Frame{Env: &e.env2, VM: &e.vm, Paths: e.fields}
	e.rules = nil
	e.byPrefix = map[string]*crule{}
	e.orphanRules = map[event.Keyspace]*crule{}
	e.disp = map[event.Keyspace]*dispatch{}
	for _, r := range set.Rules {
		if r.Disabled {
			continue
		}
		cr := &crule{Rule: r, idx: len(e.rules), prefix: "s/" + r.ID + "@" + r.Version + "/", ref: idHash(r.ID + "@" + r.Version),
			orphans: r.Kind == rules.KindSequence && !r.Unordered && len(r.Steps) > 1, logs: logsEvents(r), states: map[string]*entry{}}
		e.rules = append(e.rules, cr)
		e.byPrefix[cr.prefix] = cr
		if cr.orphans && e.orphanRules[r.Keyspace] == nil {
			e.orphanRules[r.Keyspace] = orphanRule(r.Keyspace)
		}
		d := e.disp[r.Keyspace]
		if d == nil {
			d = &dispatch{}
			e.disp[r.Keyspace] = d
		}
		for i, s := range r.Steps {
			d.add(stepRef{r: cr, step: s, bit: i})
		}
		if r.Until != nil {
			d.add(stepRef{r: cr, step: r.Until, bit: -1})
		}
	}
	for _, ks := range event.Keyspaces { // in a fixed order
		if cr := e.orphanRules[ks]; cr != nil {
			cr.idx = len(e.rules)
			e.rules = append(e.rules, cr)
			e.byPrefix[cr.prefix] = cr
		}
	}
}

func (d *dispatch) add(s stepRef) {
	h := s.step.Hint
	f, ok := dispatchField[h.Field]
	if !ok {
		d.any = append(d.any, s)
		return
	}
	m := d.byField[f]
	if m == nil {
		m = map[string][]stepRef{}
		d.byField[f] = m
	}
	for _, v := range h.Values {
		m[v] = append(m[v], s)
	}
}

type meta struct {
	MaxSeen time.Time `json:"max_seen"`
	WM      time.Time `json:"watermark"`
	Blobs   uint64    `json:"blobs,omitempty"` // the last blob number handed out
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
	e.maxSeen, e.lastSweep, e.blobN = m.MaxSeen, m.WM, m.Blobs
	e.setWM(m.WM)
	return nil
}

func (e *Engine) setWM(t time.Time) {
	e.wm = t
	e.wmN = nanos(t)
}

// Watermark returns the current watermark.
func (e *Engine) Watermark() time.Time { return e.wm }

// Stats returns counters since the engine was built.
func (e *Engine) Stats() Stats { return e.stats }

// Process feeds one event that arrived on events.<ks> under key and
// returns the alerts that fire (including absence deadlines the event's
// time pushed the watermark past). An event older than the watermark
// returns ErrLate and changes nothing. The engine does not keep ev, but
// may decode its Fields.
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
			e.setWM(wm)
		}
	}
	var out []alert.Alert
	e.enc = encoded{}
	e.lastOrphans = nil
	if d := e.disp[ks]; d != nil && key != "" {
		e.match(d, ev)
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
	if e.timers.Len() > 0 && e.wmN > e.timers[0].at {
		as, err := e.fireTimers()
		if err != nil {
			return nil, err
		}
		out = append(out, as...)
	}
	e.stats.Alerts += uint64(len(out))
	return out, nil
}

// ProcessEncoded is Process for an event decoded from enc, its encoding
// in the event codec (the Kafka record's value): an event a rule buffers
// is stored as a copy of enc instead of being encoded again. The engine
// does not keep enc.
func (e *Engine) ProcessEncoded(ks event.Keyspace, key string, ev *event.Event, enc []byte) ([]alert.Alert, error) {
	e.input = enc
	defer func() { e.input = nil }()
	return e.Process(ks, key, ev)
}

// match evaluates the steps dispatched for ev and fills e.hits, one per
// rule, in rule order.
func (e *Engine) match(d *dispatch, ev *event.Event) {
	e.hits = e.hits[:0]
	e.env.Reset(ev)
	e.eval(d.steps([nDispatch]string{dAction: ev.Action, dSource: ev.Source, dType: ev.Type, dCategory: string(ev.Category)}), ev)
	// Insertion sort: a handful of hits, and sort.Slice allocates.
	for i := 1; i < len(e.hits); i++ {
		for j := i; j > 0 && e.hits[j].r.idx < e.hits[j-1].r.idx; j-- {
			e.hits[j], e.hits[j-1] = e.hits[j-1], e.hits[j]
		}
	}
}

func (e *Engine) eval(refs []stepRef, ev *event.Event) {
	for _, s := range refs {
		e.stats.StepsEvaluated++
		if !e.cond(s.step.Where) {
			continue
		}
		e.addHit(s)
	}
}

// cond evaluates a step's condition on the current event: its closures
// when it has them (rules.Native), else expr's VM.
func (e *Engine) cond(x *rules.Expr) bool {
	if x.Native != nil { // decodes Fields itself, when it first reads them
		b, err := x.Native.Eval(&e.frame)
		if err != nil {
			e.stats.EvalErrors++
			return false
		}
		return b
	}
	x.DecodeFields(e.env.Event, e.fields)
	out, err := e.vm.Run(x.Program, &e.env)
	if err != nil {
		e.stats.EvalErrors++
		return false
	}
	b, _ := out.(bool)
	return b
}

// encoded caches the current event's encoding and blob number: several
// rules that buffer the same event (five sequences start on a successful
// sign-in) share one encoding and one stored blob. The bytes are never
// modified once made, so sharing is safe.
type encoded struct {
	ev *event.Event
	n  uint64 // 0 until a state buffers it as a blob
	b  []byte
	at logRef // where it is in the orphan log, once logged (logEvent)
}

// current returns the Process's encoding record for ev, starting a
// fresh one for a new event.
func (e *Engine) current(ev *event.Event) *encoded {
	if e.enc.ev != ev {
		e.enc = encoded{ev: ev}
	}
	return &e.enc
}

// orphanEncoding returns the current event's encoding for the orphan
// log, which copies it: the Process's shared encoding when a state
// buffers the event too, else the caller's bytes or a scratch encoding —
// no copy of its own per orphan.
func (e *Engine) orphanEncoding() []byte {
	switch {
	case e.enc.b != nil:
		return e.enc.b
	case e.input != nil:
		return e.input
	}
	e.mbuf, _ = event.AppendMarshal(e.mbuf[:0], e.enc.ev) // cannot fail for a time.Time
	return e.mbuf
}

// encode returns ev's blob number and encoding, made once per Process.
func (e *Engine) encode(ev *event.Event) (uint64, []byte) {
	c := e.current(ev)
	if c.b == nil {
		if e.input != nil {
			c.b = bytes.Clone(e.input) // ev's own encoding: a copy is cheaper than encoding again
		} else {
			c.b, _ = event.Marshal(ev) // cannot fail for a time.Time; sized once
		}
	}
	if c.n == 0 {
		c.n = e.newBlob()
	}
	return c.n, c.b
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

// frameOf returns the closures' frame of env, when the engine has one.
func (e *Engine) frameOf(env *rules.Env) *rules.Frame {
	switch env {
	case &e.env:
		return &e.frame
	case &e.env2:
		return &e.frame2
	}
	return nil
}

// nativeValues runs x's closures on env into the engine's scratch (valid
// until the next call); ok is false when x has none or env no frame.
func (e *Engine) nativeValues(env *rules.Env, x *rules.Expr) (vals []string, ok bool) {
	f := e.frameOf(env)
	if x.Values == nil || f == nil {
		return nil, false
	}
	vals, err := x.Values.Append(f, e.vals[:0])
	e.vals = vals[:0]
	if err != nil {
		e.stats.EvalErrors++
		return nil, true
	}
	return vals, true
}

// keySelected runs the rule's key expression on the current event.
func (e *Engine) keySelected(r *crule, key string) bool {
	if vals, ok := e.nativeValues(&e.env, r.Key); ok {
		return slices.Contains(vals, key)
	}
	out, ok := e.run(&e.env, r.Key)
	if !ok {
		return false
	}
	switch x := out.(type) {
	case string:
		return x == key
	case []string:
		for _, v := range x {
			if v == key {
				return true
			}
		}
		return false
	}
	for _, v := range rules.ValueStrings(out) {
		if v == key {
			return true
		}
	}
	return false
}

func (e *Engine) run(env *rules.Env, x *rules.Expr) (any, bool) {
	x.DecodeFields(env.Event, e.fields)
	out, err := e.vm.Run(x.Program, env)
	if err != nil {
		e.stats.EvalErrors++
		return nil, false
	}
	return out, true
}

// values evaluates a string-or-list expression, dropping empty values.
// The result may be the engine's scratch: use it before the next call.
func (e *Engine) values(env *rules.Env, x *rules.Expr) []string {
	if vals, ok := e.nativeValues(env, x); ok {
		return vals
	}
	out, ok := e.run(env, x)
	if !ok {
		return nil
	}
	return rules.ValueStrings(out)
}

// value evaluates a string-or-list expression into one string (list
// elements joined by ","), without allocating for a plain string.
func (e *Engine) value(env *rules.Env, x *rules.Expr) string {
	if vals, ok := e.nativeValues(env, x); ok {
		if len(vals) == 1 {
			return vals[0]
		}
		return strings.Join(vals, ",")
	}
	out, ok := e.run(env, x)
	if !ok {
		return ""
	}
	if s, ok := out.(string); ok {
		return s
	}
	return strings.Join(rules.ValueStrings(out), ",")
}

func (e *Engine) apply(h hit, ks event.Keyspace, key string, ev *event.Event) ([]alert.Alert, error) {
	r := h.r
	if r.Kind == rules.KindMatch {
		if h.mask == 0 {
			return nil, nil
		}
		a := e.buildAlert(r, ks, key, [][]event.Event{{*ev}}, ev.Time, ev.Time, nil)
		return e.emit(r, key, ev, a)
	}
	ent, err := e.load(r, key)
	if err != nil {
		return nil, err
	}
	var as []alert.Alert
	switch r.Kind {
	case rules.KindSequence:
		if r.orphans && !e.noOrphans && len(ent.rs.seq) == 0 {
			if !h.until && h.mask&1 == 0 {
				return nil, e.addOrphan(r, ks, key, ev, h.mask)
			}
			if err := e.adoptOrphans(r, ks, key, &ent.rs); err != nil {
				return nil, err
			}
		}
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
	rs := &ent.rs
	at := nanos(a.Time)
	if until, ok := rs.supp[sk]; ok && at < until {
		return nil, nil
	}
	if rs.supp == nil {
		rs.supp = map[string]int64{}
	}
	rs.supp[sk] = at + int64(r.Suppress.Window)
	e.touch(ent)
	return []alert.Alert{a}, nil
}

// buildAlert assembles an alert from the events of each step. The id
// hashes ids (every event id of a threshold window) or, when ids is nil,
// the ids of the steps' events.
func (e *Engine) buildAlert(r *crule, ks event.Keyspace, key string, steps [][]event.Event, first, last time.Time, ids []string) alert.Alert {
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
			e.alertEv = evs[j]
			e.env2.Reset(&e.alertEv)
			for _, en := range st.Entities {
				for _, x := range en.Exprs {
					for _, v := range e.values(&e.env2, x) {
						a.AddEntity(en.Type, v, st.Name)
					}
				}
			}
		}
	}
	if ids == nil {
		ids = a.EventIDs()
	}
	a.ID = alert.MakeID(r.ID, r.Version, ks, key, ids)
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
		e.setWM(watermark)
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

// touch marks ent to be written by the next Flush.
func (e *Engine) touch(ent *entry) {
	if !ent.dirty {
		ent.dirty = true
		e.dirty = append(e.dirty, ent)
	}
}

// Flush writes dirty state to the Store.
func (e *Engine) Flush() error {
	e.shedOrphans()
	for i, ent := range e.dirty {
		if ent.dead {
			continue
		}
		if ent.r.pseudo {
			e.logSnapshot(ent)
			ent.dirty = false
			continue
		}
		if err := e.save(ent); err != nil {
			e.dirty = e.dirty[i:]
			return fmt.Errorf("operators: flush %s%s: %w", ent.r.prefix, ent.key, err)
		}
		ent.dirty = false
	}
	clear(e.dirty)
	e.dirty = e.dirty[:0]
	if err := e.writeBlobs(); err != nil {
		return fmt.Errorf("operators: flush: %w", err)
	}
	if err := e.writeOrphanLog(); err != nil {
		return fmt.Errorf("operators: flush: %w", err)
	}
	if e.metaDirty {
		b, _ := json.Marshal(meta{MaxSeen: e.maxSeen, WM: e.wm, Blobs: e.blobN})
		if err := e.st.Set(metaKey, b); err != nil {
			return fmt.Errorf("operators: flush watermark: %w", err)
		}
		e.metaDirty = false
	}
	if e.cached > e.opts.MaxCached {
		for _, r := range e.rules {
			if r.pseudo {
				continue // in memory until the watermark passes them (pruneOrphans)
			}
			for _, ent := range r.states {
				if !ent.rs.empty() {
					e.uncachedMin = min(e.uncachedMin, ent.exp) // all clean after the writes above
				}
			}
			clear(r.states) // all clean after the writes above
		}
		e.cached = 0
	}
	return nil
}

func (e *Engine) storeKey(r *crule, key string) []byte {
	e.kbuf = append(append(e.kbuf[:0], r.prefix...), key...)
	return e.kbuf
}

func (e *Engine) save(ent *entry) error {
	if err := e.saveEvents(ent); err != nil {
		return err
	}
	k := e.storeKey(ent.r, ent.key)
	if ent.rs.empty() {
		return e.st.Delete(k)
	}
	e.vbuf = e.esc.appendState(e.vbuf[:0], &ent.rs, ent.r.Rule)
	ent.exp = int64(binary.BigEndian.Uint64(e.vbuf))
	return e.st.Set(k, e.vbuf)
}

// eventAt returns a buffered event, reading its blob when it is not in
// memory (a state loaded from the Store holds only blob numbers).
func (e *Engine) eventAt(blob uint64, ev []byte, id string, t int64) event.Event {
	if ev == nil {
		if i, ok := e.blobs[blob]; ok && e.blobRecs[i].ev != nil {
			ev = e.blobRecs[i].ev
		} else if _, b, ok, err := e.readBlob(blob); err != nil || !ok {
			e.stats.EventsMissing++
		} else {
			ev = b
		}
	}
	return decodeEvent(ev, id, t)
}

// load returns the cached state of (rule, key), reading the Store on a miss.
func (e *Engine) load(r *crule, key string) (*entry, error) {
	if ent := r.states[key]; ent != nil {
		return ent, nil
	}
	ent := &entry{key: key, r: r}
	if r.pseudo { // orphan buffers are all in memory (orphanlog.go)
		r.states[key] = ent
		return ent, nil
	}
	k := e.storeKey(r, key)
	b, err := e.st.Get(k)
	if err != nil {
		return nil, fmt.Errorf("read state %s: %w", k, err)
	}
	r.states[key] = ent
	e.cached++
	if b == nil {
		return ent, nil
	}
	if err := decodeState(b, &ent.rs); err != nil {
		if !errors.Is(err, errUnknownStateVersion) {
			return nil, fmt.Errorf("decode state %s: %w", k, err)
		}
		e.stats.StateDiscarded++
		ent.rs = ruleState{}
		return ent, nil
	}
	if b[8] == stateVersionInline || b[8] == stateVersionBlobs {
		return ent, e.migrate(ent, b[8])
	}
	ent.rs.eachEvent(func(blob *uint64, _ *[]byte) { ent.stored = append(ent.stored, *blob) })
	slices.Sort(ent.stored)
	ent.stored = slices.Compact(ent.stored)
	ent.exp = ent.rs.expiry(r.Rule)
	return ent, nil
}

// sweep deletes state whose expiry the watermark has passed, in the cache
// and in the Store.
func (e *Engine) sweep() error {
	for _, r := range e.rules {
		if r.pseudo {
			continue // pruneOrphans
		}
		for _, ent := range r.states {
			if ent.rs.empty() {
				continue
			}
			exp := ent.exp
			if ent.dirty { // changed since it was saved
				exp = ent.rs.expiry(r.Rule)
			}
			if exp < e.wmN {
				ent.rs = ruleState{}
				e.touch(ent)
			}
		}
	}
	if e.uncachedMin >= e.wmN {
		return nil
	}
	type deadKey struct{ k, v []byte }
	var dead []deadKey
	next := int64(math.MaxInt64) // the lowest expiry of an uncached key that stays
	err := e.st.Scan(statePrefix, func(k, v []byte) error {
		if len(v) < 8 {
			return nil
		}
		if x := int64(binary.BigEndian.Uint64(v)); x < e.wmN {
			dead = append(dead, deadKey{bytes.Clone(k), bytes.Clone(v)})
		} else if x < next && e.cachedEntry(k) == nil {
			next = x
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("operators: sweep: %w", err)
	}
	for _, d := range dead {
		if e.cachedEntry(d.k) != nil {
			// Refreshed in memory since it was written, or expired above:
			// its next save writes or deletes it and releases its events.
			continue
		}
		if err := e.releaseEvents(d.k, d.v); err != nil {
			return fmt.Errorf("operators: sweep: %w", err)
		}
		if err := e.st.Delete(d.k); err != nil {
			return fmt.Errorf("operators: sweep: %w", err)
		}
	}
	if err := e.writeBlobs(); err != nil {
		return fmt.Errorf("operators: sweep: %w", err)
	}
	e.uncachedMin = next // every expired key went: the survivors' lowest expiry
	return nil
}

// cachedEntry finds the cached entry of a Store key, if any. A rule id
// has no '/' (rules.idPattern), so the rule's prefix ends at the key's
// second one.
func (e *Engine) cachedEntry(k []byte) *entry {
	if len(k) <= len(statePrefix) {
		return nil
	}
	i := bytes.IndexByte(k[len(statePrefix):], '/')
	if i < 0 {
		return nil
	}
	n := len(statePrefix) + i + 1
	if r := e.byPrefix[string(k[:n])]; r != nil {
		return r.states[string(k[n:])]
	}
	return nil
}
