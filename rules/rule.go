package rules

import (
	"reflect"
	"time"

	"github.com/expr-lang/expr/vm"

	"github.com/vigil-sec/vigil/pipeline/alert"
	"github.com/vigil-sec/vigil/pipeline/event"
)

// Kind is the operator a rule runs on.
type Kind string

// Rule kinds (FORMAT.md "Kinds").
const (
	KindMatch     Kind = "match"
	KindThreshold Kind = "threshold"
	KindSequence  Kind = "sequence"
	KindAbsence   Kind = "absence"
	KindNewTerm   Kind = "new_term"
)

// AlertSource is the Source of events made from Vigil's own alerts;
// their Action is the rule id (FORMAT.md "Chaining").
const AlertSource = "vigil.alert"

// Expr is a compiled expression. Program is immutable and safe to run from
// many goroutines, each with its own vm.VM.
type Expr struct {
	Source  string
	Program *vm.Program
	// UsesFields says the expression reads Fields, so the engine must
	// decode the event's raw record before running it; Fields says which
	// paths of it.
	UsesFields bool
	Fields     *event.FieldPaths
	// Native is the condition compiled to closures (conditions only; nil
	// when expr would run all of it anyway).
	Native *Native
	// Values is a value expression compiled to closures (values only; nil
	// when some part needs expr's VM).
	Values *Values
	// Type is the static result type (nil when unknown, e.g. from Fields).
	Type reflect.Type
	Line int
}

// DecodeFields prepares ev's Fields for x: the set's paths, or the whole
// record when x reads it all.
func (x *Expr) DecodeFields(ev *event.Event, set *event.FieldPaths) {
	if x.UsesFields {
		decodeFields(ev, x.Fields.All(), set)
	}
}

// decodeFields decodes ev's source record: whole, or at the set's paths.
// A bad raw record leaves Fields empty: conditions see no fields.
func decodeFields(ev *event.Event, all bool, set *event.FieldPaths) {
	if all {
		set = nil // DecodeFieldPaths(nil) decodes everything
	}
	_ = ev.DecodeFieldPaths(set)
}

// Hint is the dispatch index entry of a step, taken at compile time from
// the top-level conjunction of its condition: the step can only match
// events whose Field (Action, Source, Type or Category) is one of Values.
// Field == "" means the step must see every event of its keyspace.
type Hint struct {
	Field  string
	Values []string
}

// Entity is an entity type and the expressions producing its values.
type Entity struct {
	Type  alert.EntityType
	Exprs []*Expr
}

// Step is one condition of a rule: the single condition of match,
// threshold and new_term, each step of a sequence, absence's anchor and
// expect, and a sequence's until (Index -1).
type Step struct {
	Name     string
	Index    int
	Where    *Expr
	Entities []Entity
	Hint     Hint
	// Chain is the id of the rule whose alerts this step consumes, if any.
	Chain []string
}

// Threshold is a compiled threshold block.
type Threshold struct {
	Distinct *Expr
	Sum      *Expr
	GroupBy  []*Expr
	// MissingEmpty groups events with an empty group_by value together
	// instead of skipping them.
	MissingEmpty bool
	Having       *vm.Program
	HavingSource string
	// MinCount and MinDistinct are what having needs at least, from the
	// comparisons of its top-level conjunction with constants (count >= 50:
	// MinCount 50); 0 when it says nothing. The engine skips work for
	// groups that are far below them (see Engine.threshold).
	MinCount, MinDistinct int
	// DistinctOnly: having reads distinct and nothing else (no count, no
	// sum), so an event whose distinct value a later event repeats adds
	// nothing to any window both are in (Engine.threshold forgets it).
	DistinctOnly bool
	Tumbling     bool
}

// HavingEnv is the environment of a threshold's having condition.
type HavingEnv struct {
	Count    int     `expr:"count"`
	Distinct int     `expr:"distinct"`
	Sum      float64 `expr:"sum"`
}

// NewTerm is a compiled new_term block.
type NewTerm struct {
	Field      *Expr
	Lookback   time.Duration
	MinHistory time.Duration
}

// Suppress is a rule's dedupe policy; zero Window means none.
type Suppress struct {
	Window time.Duration
	By     []*Expr
}

// Rule is a compiled rule.
type Rule struct {
	ID          string
	Name        string
	Description string
	Severity    alert.Severity
	// Tactics are ATT&CK short names (credential-access), Techniques ids.
	Tactics    []string
	Techniques []string
	Kind       Kind
	Keyspace   event.Keyspace
	Key        *Expr // optional key selector
	Window     time.Duration
	MaxSpan    time.Duration
	Lateness   time.Duration
	Unordered  bool
	// Steps: 1 for match/threshold/new_term; the steps of a sequence;
	// [anchor, expect] for absence.
	Steps     []*Step
	Until     *Step
	Threshold *Threshold
	NewTerm   *NewTerm
	Suppress  Suppress
	Grouping  alert.Grouping
	Disabled  bool
	// Fields are the paths of the source record the rule reads through
	// Fields (nil when it reads none): the engine decodes only those.
	Fields *event.FieldPaths
	// Version hashes the canonical definition; state is kept per version.
	Version string
	File    string
	Line    int
	Spec    *RuleSpec
}

// Horizon is how long the rule needs to remember an event: the longest of
// its windows. State older than watermark − Horizon is expired.
func (r *Rule) Horizon() time.Duration {
	h := r.Window
	for _, d := range []time.Duration{r.MaxSpan, r.Suppress.Window} {
		if d > h {
			h = d
		}
	}
	if r.NewTerm != nil && r.NewTerm.Lookback > h {
		h = r.NewTerm.Lookback
	}
	return h + r.Lateness
}

// Set is a compiled rule tree. It is immutable and shared by all engines.
type Set struct {
	Rules   []*Rule
	Lookups *Lookups
	byID    map[string]*Rule
	funcs   *funcs
	fields  *event.FieldPaths
}

// FieldPaths are the paths of source records that the set's enabled rules
// read through Fields: decode events with event.DecodeFieldPaths(paths)
// before running them. Rules that read the whole record (toJSON(Fields))
// are left out, so that one such rule does not make every event pay for a
// full decode: their expressions have Fields.All() and decode it all
// themselves (Expr.DecodeFields).
func (s *Set) FieldPaths() *event.FieldPaths {
	if s.fields == nil {
		return &event.FieldPaths{}
	}
	return s.fields
}

// mergeFields computes FieldPaths once the rules are final.
func (s *Set) mergeFields() {
	s.fields = &event.FieldPaths{}
	for _, r := range s.Rules {
		if !r.Disabled && !r.Fields.All() {
			s.fields.Merge(r.Fields)
		}
	}
}

// Rule returns the rule with that id, or nil.
func (s *Set) Rule(id string) *Rule { return s.byID[id] }

// Keyspaces returns the keyspaces used by enabled rules, in the stable
// order of event.Keyspaces. Normalize writes events only to those topics.
func (s *Set) Keyspaces() []event.Keyspace {
	used := map[event.Keyspace]bool{}
	for _, r := range s.Rules {
		if !r.Disabled {
			used[r.Keyspace] = true
		}
	}
	var out []event.Keyspace
	for _, ks := range event.Keyspaces {
		if used[ks] {
			out = append(out, ks)
		}
	}
	return out
}

// MaxHorizon is the largest Horizon of the enabled rules.
func (s *Set) MaxHorizon() time.Duration {
	var m time.Duration
	for _, r := range s.Rules {
		if !r.Disabled && r.Horizon() > m {
			m = r.Horizon()
		}
	}
	return m
}

// Only returns a set holding just the rule with that id (sharing the
// lookups and compiled programs), for running one rule's fixtures alone.
func (s *Set) Only(id string) *Set {
	out := &Set{Lookups: s.Lookups, byID: map[string]*Rule{}, funcs: s.funcs}
	if r := s.byID[id]; r != nil {
		cp := *r
		cp.Disabled = false
		out.Rules = []*Rule{&cp}
		out.byID[id] = &cp
	}
	out.mergeFields()
	return out
}
