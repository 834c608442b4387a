package rules

import (
	"fmt"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The types in this file mirror FORMAT.md one to one. They are decoded
// strictly (KnownFields) and then compiled into Rule; keeping the raw
// form separate lets the version hash cover exactly what the author wrote.

// Src is an expression as written, with the line it came from, so errors
// point at the condition and not at the file.
type Src struct {
	Text string `json:"text"`
	Line int    `json:"-"`
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *Src) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: expression must be a string", n.Line)
	}
	*s = Src{Text: n.Value, Line: n.Line}
	return nil
}

// Srcs is one expression or a list of them.
type Srcs []Src

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *Srcs) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*s = Srcs{{Text: n.Value, Line: n.Line}}
		return nil
	case yaml.SequenceNode:
		out := make(Srcs, 0, len(n.Content))
		for _, c := range n.Content {
			var one Src
			if err := one.UnmarshalYAML(c); err != nil {
				return err
			}
			out = append(out, one)
		}
		*s = out
		return nil
	}
	return fmt.Errorf("line %d: expected an expression or a list of expressions", n.Line)
}

// EntitiesSpec maps entity types to expressions, in the order written.
type EntitiesSpec []EntitySpecRaw

// EntitySpecRaw is one `type: expression(s)` entry.
type EntitySpecRaw struct {
	Type  string `json:"type"`
	Exprs Srcs   `json:"exprs"`
	Line  int    `json:"-"`
}

// UnmarshalYAML implements yaml.Unmarshaler, preserving order.
func (e *EntitiesSpec) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: entities must be a mapping of entity type to expression", n.Line)
	}
	out := EntitiesSpec{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		var s Srcs
		if err := s.UnmarshalYAML(v); err != nil {
			return err
		}
		out = append(out, EntitySpecRaw{Type: k.Value, Exprs: s, Line: k.Line})
	}
	*e = out
	return nil
}

// BySpec is `by`: a keyspace, optionally with a key expression.
type BySpec struct {
	Keyspace string `yaml:"keyspace" json:"keyspace"`
	Key      *Src   `yaml:"key" json:"key,omitempty"`
	Line     int    `yaml:"-" json:"-"`
}

// UnmarshalYAML accepts `by: user` and `by: {keyspace: ip, key: SrcIP}`.
func (b *BySpec) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*b = BySpec{Keyspace: n.Value, Line: n.Line}
		return nil
	}
	type plain BySpec
	var p plain
	if err := decodeStrict(n, &p); err != nil {
		return err
	}
	*b = BySpec(p)
	b.Line = n.Line
	return nil
}

// StepSpec is one step of a sequence, or the anchor/expect of an absence.
type StepSpec struct {
	Name     string       `yaml:"name" json:"name"`
	Rule     string       `yaml:"rule" json:"rule,omitempty"`
	Where    *Src         `yaml:"where" json:"where,omitempty"`
	Entities EntitiesSpec `yaml:"entities" json:"entities,omitempty"`
	Line     int          `yaml:"-" json:"-"`
}

// UnmarshalYAML records the step's line.
func (s *StepSpec) UnmarshalYAML(n *yaml.Node) error {
	type plain StepSpec
	var p plain
	if err := decodeStrict(n, &p); err != nil {
		return err
	}
	*s = StepSpec(p)
	s.Line = n.Line
	return nil
}

// ThresholdSpec is the `threshold` block.
type ThresholdSpec struct {
	Distinct *Src   `yaml:"distinct" json:"distinct,omitempty"`
	Sum      *Src   `yaml:"sum" json:"sum,omitempty"`
	GroupBy  Srcs   `yaml:"group_by" json:"group_by,omitempty"`
	Missing  string `yaml:"missing" json:"missing,omitempty"`
	Having   *Src   `yaml:"having" json:"having,omitempty"`
	Tumbling bool   `yaml:"tumbling" json:"tumbling,omitempty"`
}

// NewTermSpec is the `new_term` block.
type NewTermSpec struct {
	Field      *Src     `yaml:"field" json:"field,omitempty"`
	Lookback   Duration `yaml:"lookback" json:"lookback"`
	MinHistory Duration `yaml:"min_history" json:"min_history"`
}

// SuppressSpec is `suppress`: a duration, or a window with extra key expressions.
type SuppressSpec struct {
	Window Duration `yaml:"window" json:"window"`
	By     Srcs     `yaml:"by" json:"by,omitempty"`
}

// UnmarshalYAML accepts `suppress: 1h` and the mapping form.
func (s *SuppressSpec) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		return s.Window.UnmarshalYAML(n)
	}
	type plain SuppressSpec
	var p plain
	if err := decodeStrict(n, &p); err != nil {
		return err
	}
	*s = SuppressSpec(p)
	return nil
}

// GroupingSpec is `grouping`.
type GroupingSpec struct {
	By       []string `yaml:"by" json:"by,omitempty"`
	Window   Duration `yaml:"window" json:"window"`
	Disabled bool     `yaml:"disabled" json:"disabled,omitempty"`
}

// TestSpec is one inline fixture.
type TestSpec struct {
	Name    string      `yaml:"name"`
	Events  []yaml.Node `yaml:"events"`
	Advance string      `yaml:"advance"`
	Expect  ExpectSpec  `yaml:"expect"`
	Line    int         `yaml:"-"`
}

// UnmarshalYAML records the test's line.
func (t *TestSpec) UnmarshalYAML(n *yaml.Node) error {
	type plain TestSpec
	var p plain
	if err := decodeStrict(n, &p); err != nil {
		return err
	}
	*t = TestSpec(p)
	t.Line = n.Line
	return nil
}

// ExpectSpec is what a fixture must produce.
type ExpectSpec struct {
	Count      *int            `yaml:"count"`
	Alerts     []ExpectedAlert `yaml:"alerts"`
	Unexpected []ExpectedAlert `yaml:"unexpected"`
}

// ExpectedAlert describes an alert by the parts a test cares about.
type ExpectedAlert struct {
	Key      *string             `yaml:"key"`
	Events   []string            `yaml:"events"`
	Entities map[string][]string `yaml:"entities"`
}

// RuleSpec is a rule file as written.
type RuleSpec struct {
	ID          string         `yaml:"id" json:"id"`
	Name        string         `yaml:"name" json:"-"`
	Description string         `yaml:"description" json:"-"`
	Severity    string         `yaml:"severity" json:"severity"`
	Tactics     []string       `yaml:"tactics" json:"tactics"`
	Techniques  []string       `yaml:"techniques" json:"techniques"`
	Kind        string         `yaml:"kind" json:"kind"`
	By          *BySpec        `yaml:"by" json:"by"`
	Rule        string         `yaml:"rule" json:"rule,omitempty"`
	Where       *Src           `yaml:"where" json:"where,omitempty"`
	Window      Duration       `yaml:"window" json:"window"`
	MaxSpan     Duration       `yaml:"maxspan" json:"maxspan"`
	Threshold   *ThresholdSpec `yaml:"threshold" json:"threshold,omitempty"`
	Steps       []StepSpec     `yaml:"steps" json:"steps,omitempty"`
	Until       *Src           `yaml:"until" json:"until,omitempty"`
	Unordered   bool           `yaml:"unordered" json:"unordered,omitempty"`
	Anchor      *StepSpec      `yaml:"anchor" json:"anchor,omitempty"`
	Expect      *StepSpec      `yaml:"expect" json:"expect,omitempty"`
	NewTerm     *NewTermSpec   `yaml:"new_term" json:"new_term,omitempty"`
	Entities    EntitiesSpec   `yaml:"entities" json:"entities,omitempty"`
	Suppress    *SuppressSpec  `yaml:"suppress" json:"suppress,omitempty"`
	Grouping    *GroupingSpec  `yaml:"grouping" json:"grouping,omitempty"`
	Lateness    Duration       `yaml:"lateness" json:"lateness"`
	Disabled    bool           `yaml:"disabled" json:"disabled,omitempty"`
	Tests       []TestSpec     `yaml:"tests" json:"-"`
}

// decodeStrict decodes a node refusing unknown keys. yaml.v3's Node.Decode
// has no KnownFields switch, so the node is re-encoded and decoded by a
// strict Decoder; line numbers in its errors are relative to the node and
// are therefore rewritten by the caller's context (the node line).
func decodeStrict(n *yaml.Node, v any) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: expected a mapping", n.Line)
	}
	known := knownKeys(v)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !known[k.Value] {
			return fmt.Errorf("line %d: unknown field %q", k.Line, k.Value)
		}
	}
	return n.Decode(v)
}

// UnmarshalYAML decodes strictly.
func (e *ExpectSpec) UnmarshalYAML(n *yaml.Node) error {
	type plain ExpectSpec
	var p plain
	if err := decodeStrict(n, &p); err != nil {
		return err
	}
	*e = ExpectSpec(p)
	return nil
}

// UnmarshalYAML decodes strictly.
func (e *ExpectedAlert) UnmarshalYAML(n *yaml.Node) error {
	type plain ExpectedAlert
	var p plain
	if err := decodeStrict(n, &p); err != nil {
		return err
	}
	*e = ExpectedAlert(p)
	return nil
}

// knownKeys lists the yaml keys of struct pointer v.
func knownKeys(v any) map[string]bool {
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	out := map[string]bool{}
	for i := 0; i < t.NumField(); i++ {
		tag := t.Field(i).Tag.Get("yaml")
		name, _, _ := strings.Cut(tag, ",")
		if name == "" || name == "-" {
			continue
		}
		out[name] = true
	}
	return out
}
