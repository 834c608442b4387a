package sigma

import (
	"bytes"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// outRule is a Vigil rule file as the converter writes it (the keys of
// rules.RuleSpec, in FORMAT.md's order).
type outRule struct {
	ID          string        `yaml:"id"`
	Name        string        `yaml:"name"`
	Description string        `yaml:"description"`
	Severity    string        `yaml:"severity"`
	Tactics     []string      `yaml:"tactics,flow"`
	Techniques  []string      `yaml:"techniques,flow"`
	Kind        string        `yaml:"kind"`
	By          outBy         `yaml:"by"`
	Rule        string        `yaml:"rule,omitempty"`
	Where       string        `yaml:"where,omitempty"`
	Window      string        `yaml:"window,omitempty"`
	MaxSpan     string        `yaml:"maxspan,omitempty"`
	Threshold   *outThreshold `yaml:"threshold,omitempty"`
	Steps       []outStep     `yaml:"steps,omitempty"`
	Unordered   bool          `yaml:"unordered,omitempty"`
	Entities    outEntities   `yaml:"entities,omitempty"`
}

type outBy struct {
	Keyspace string `yaml:"keyspace"`
	Key      string `yaml:"key,omitempty"`
}

type outThreshold struct {
	Distinct string   `yaml:"distinct,omitempty"`
	GroupBy  []string `yaml:"group_by,omitempty"`
	Having   string   `yaml:"having"`
}

type outStep struct {
	Name     string      `yaml:"name"`
	Rule     string      `yaml:"rule,omitempty"`
	Where    string      `yaml:"where,omitempty"`
	Entities outEntities `yaml:"entities,omitempty"`
}

// outEntities keeps entity types in the order written.
type outEntities []entitySpec

func (e outEntities) IsZero() bool { return len(e) == 0 }

// MarshalYAML implements yaml.Marshaler.
func (e outEntities) MarshalYAML() (any, error) {
	n := &yaml.Node{Kind: yaml.MappingNode}
	for _, en := range e {
		v := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str"}
		if len(en.exprs) == 1 {
			v.Value = en.exprs[0]
		} else {
			v = &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
			for _, x := range en.exprs {
				v.Content = append(v.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: x})
			}
		}
		n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: en.typ}, v)
	}
	return n, nil
}

// encode writes the rule with a header naming its Sigma origin.
func (o *outRule) encode(origin string) ([]byte, error) {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# Converted from Sigma %s by vigil rules import-sigma.\n", origin)
	buf.WriteString("# Review the field mapping and add tests (a positive and a negative fixture).\n")
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(o); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// description composes the Vigil description from Sigma's metadata.
func description(r *sigmaRule) string {
	var b strings.Builder
	d := strings.TrimSpace(r.Description)
	if d == "" {
		d = r.Title
	}
	b.WriteString(d)
	b.WriteString("\n\nImported from Sigma")
	if r.ID != "" {
		b.WriteString(" rule " + r.ID)
	}
	var meta []string
	if r.Status != "" {
		meta = append(meta, "status "+r.Status)
	}
	if r.Author != "" {
		meta = append(meta, "author "+r.Author)
	}
	if len(meta) > 0 {
		b.WriteString(" (" + strings.Join(meta, ", ") + ")")
	}
	b.WriteString(".")
	if len(r.FalsePositives) > 0 {
		b.WriteString("\nFalse positives: " + strings.Join(r.FalsePositives, "; ") + ".")
	}
	if len(r.References) > 0 {
		b.WriteString("\nReferences: " + strings.Join(r.References, " ") + "")
	}
	return b.String()
}
