package sigma

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ErrUnsupported marks a Sigma construct Vigil cannot express. A bulk
// import may skip rules failing with it and report them; any other error
// is a malformed rule.
var ErrUnsupported = errors.New("not supported")

// Options configure a conversion.
type Options struct {
	// IDPrefix is put before the rule's Sigma name (or title) to make the
	// Vigil rule id. Default "sigma.".
	IDPrefix string
}

func (o Options) withDefaults() Options {
	if o.IDPrefix == "" {
		o.IDPrefix = "sigma."
	}
	return o
}

// Warning is something the conversion did that the author should review:
// a field mapped to a raw column, a dropped ATT&CK tag, a loosened group-by.
type Warning struct {
	Rule string // Sigma title
	Msg  string
}

func (w Warning) String() string { return fmt.Sprintf("%s: %s", w.Rule, w.Msg) }

// Result is one converted Vigil rule.
type Result struct {
	// ID is the Vigil rule id; File is a suggested file name (ID + ".yaml").
	ID   string
	File string
	// SigmaID is the Sigma rule's id (a UUID) or, when absent, its title.
	SigmaID string
	YAML    []byte
}

// sigmaRule is one Sigma YAML document, detection or correlation. Unknown
// keys are allowed (Sigma permits custom attributes).
type sigmaRule struct {
	Title          string       `yaml:"title"`
	ID             string       `yaml:"id"`
	Name           string       `yaml:"name"`
	Status         string       `yaml:"status"`
	Description    string       `yaml:"description"`
	Author         string       `yaml:"author"`
	References     stringList   `yaml:"references"`
	Tags           stringList   `yaml:"tags"`
	FalsePositives stringList   `yaml:"falsepositives"`
	Level          string       `yaml:"level"`
	Action         string       `yaml:"action"`
	LogSource      logSource    `yaml:"logsource"`
	Detection      yaml.Node    `yaml:"detection"`
	Correlation    *correlation `yaml:"correlation"`
	Generate       bool         `yaml:"generate"`

	// set after parsing
	file, doc int
}

// label names the rule in errors and warnings.
func (r *sigmaRule) label() string {
	t := r.Title
	if t == "" {
		t = r.Name
	}
	if t == "" {
		t = fmt.Sprintf("document %d", r.doc+1)
	}
	if r.ID != "" {
		return fmt.Sprintf("%q (%s)", t, r.ID)
	}
	return fmt.Sprintf("%q", t)
}

type logSource struct {
	Product  string `yaml:"product"`
	Category string `yaml:"category"`
	Service  string `yaml:"service"`
}

func (l logSource) String() string {
	var parts []string
	for _, kv := range [][2]string{{"product", l.Product}, {"category", l.Category}, {"service", l.Service}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+"="+kv[1])
		}
	}
	if len(parts) == 0 {
		return "(empty)"
	}
	return strings.Join(parts, " ")
}

type correlation struct {
	Type      string                       `yaml:"type"`
	Rules     stringList                   `yaml:"rules"`
	GroupBy   stringList                   `yaml:"group-by"`
	Timespan  string                       `yaml:"timespan"`
	Condition map[string]yaml.Node         `yaml:"condition"`
	Aliases   map[string]map[string]string `yaml:"aliases"`
	Generate  bool                         `yaml:"generate"`
}

// stringList accepts a scalar or a list of scalars.
type stringList []string

func (s *stringList) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			*s = nil
			return nil
		}
		*s = stringList{n.Value}
		return nil
	case yaml.SequenceNode:
		out := make(stringList, 0, len(n.Content))
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: expected a list of strings", c.Line)
			}
			out = append(out, c.Value)
		}
		*s = out
		return nil
	}
	return fmt.Errorf("line %d: expected a string or a list of strings", n.Line)
}

// parseDocs splits a Sigma file into its YAML documents.
func parseDocs(src []byte, file int) ([]*sigmaRule, error) {
	dec := yaml.NewDecoder(bytes.NewReader(src))
	var out []*sigmaRule
	for i := 0; ; i++ {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return out, fmt.Errorf("document %d: %w", i+1, err)
		}
		if len(n.Content) == 0 || (n.Content[0].Kind == yaml.ScalarNode && n.Content[0].Tag == "!!null") {
			continue // empty document (a trailing ---)
		}
		if n.Content[0].Kind != yaml.MappingNode {
			return out, fmt.Errorf("document %d: a Sigma rule is a mapping", i+1)
		}
		r := &sigmaRule{file: file, doc: i}
		if err := n.Decode(r); err != nil {
			return out, fmt.Errorf("document %d: %w", i+1, err)
		}
		switch r.Action {
		case "":
		case "global", "reset", "repeat":
			return out, fmt.Errorf("document %d: legacy rule collection (action: %s): %w; split it into self-contained rules", i+1, r.Action, ErrUnsupported)
		default:
			return out, fmt.Errorf("document %d: unknown action %q", i+1, r.Action)
		}
		if r.Title == "" {
			return out, fmt.Errorf("document %d: missing title", i+1)
		}
		if r.Correlation == nil && r.Detection.Kind == 0 {
			return out, fmt.Errorf("rule %s: neither detection nor correlation", r.label())
		}
		out = append(out, r)
	}
	return out, nil
}

var nonID = regexp.MustCompile(`[^a-z0-9]+`)

// slug makes the id-safe part of a Vigil rule id from a Sigma name or title.
func slug(s string) string {
	s = strings.Trim(nonID.ReplaceAllString(strings.ToLower(s), "_"), "_")
	if len(s) > 64 {
		s = strings.TrimRight(s[:64], "_")
	}
	if s == "" {
		s = "rule"
	}
	return s
}
