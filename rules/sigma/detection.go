package sigma

import (
	"fmt"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// conv carries one rule's conversion state.
type conv struct {
	rule     *sigmaRule
	warnings []Warning
}

func (c *conv) warn(msg string) {
	for _, w := range c.warnings {
		if w.Msg == msg {
			return
		}
	}
	c.warnings = append(c.warnings, Warning{Rule: c.rule.Title, Msg: msg})
}

// detection converts a detection rule's detection block into one
// condition over events of src (the source filter not included).
func (c *conv) detection(src *source) (cexpr, error) {
	d := &c.rule.Detection
	if d.Kind != yaml.MappingNode {
		return cexpr{}, fmt.Errorf("detection must be a mapping")
	}
	searches := map[string]*yaml.Node{}
	var order []string
	var cond *yaml.Node
	for i := 0; i+1 < len(d.Content); i += 2 {
		k, v := d.Content[i].Value, d.Content[i+1]
		switch k {
		case "condition":
			cond = v
		case "timeframe":
			c.warn("detection timeframe is ignored (it only applied to the deprecated aggregation syntax)")
		default:
			searches[k] = v
			order = append(order, k)
		}
	}
	if cond == nil {
		return cexpr{}, fmt.Errorf("detection has no condition")
	}
	var conds []string
	switch cond.Kind {
	case yaml.ScalarNode:
		conds = []string{cond.Value}
	case yaml.SequenceNode:
		for _, n := range cond.Content {
			if n.Kind != yaml.ScalarNode {
				return cexpr{}, fmt.Errorf("condition list holds only strings")
			}
			conds = append(conds, n.Value)
		}
	default:
		return cexpr{}, fmt.Errorf("condition must be a string or a list of strings")
	}
	p := &condParser{c: c, src: src, searches: searches, order: order, cache: map[string]cexpr{}}
	var xs []cexpr
	for _, s := range conds {
		x, err := p.parse(s)
		if err != nil {
			return cexpr{}, fmt.Errorf("condition %q: %w", s, err)
		}
		xs = append(xs, x)
	}
	if len(xs) == 0 {
		return cexpr{}, fmt.Errorf("empty condition")
	}
	return join("||", xs), nil
}

// search converts one search identifier's definition.
func (c *conv) search(id string, n *yaml.Node, src *source) (cexpr, error) {
	switch n.Kind {
	case yaml.MappingNode:
		return c.searchMap(n, src)
	case yaml.SequenceNode:
		var xs []cexpr
		for _, e := range n.Content {
			if e.Kind != yaml.MappingNode {
				return cexpr{}, fmt.Errorf("search %s: keyword (field-less) search: %w", id, ErrUnsupported)
			}
			x, err := c.searchMap(e, src)
			if err != nil {
				return cexpr{}, fmt.Errorf("search %s: %w", id, err)
			}
			xs = append(xs, x)
		}
		if len(xs) == 0 {
			return cexpr{}, fmt.Errorf("search %s is empty", id)
		}
		return join("||", xs), nil
	case yaml.ScalarNode:
		return cexpr{}, fmt.Errorf("search %s: keyword (field-less) search: %w", id, ErrUnsupported)
	}
	return cexpr{}, fmt.Errorf("search %s: unexpected YAML node", id)
}

func (c *conv) searchMap(n *yaml.Node, src *source) (cexpr, error) {
	if len(n.Content) == 0 {
		return cexpr{}, fmt.Errorf("empty search map")
	}
	var xs []cexpr
	for i := 0; i+1 < len(n.Content); i += 2 {
		x, err := c.fieldCond(n.Content[i].Value, n.Content[i+1], src)
		if err != nil {
			return cexpr{}, err
		}
		xs = append(xs, x)
	}
	return join("&&", xs), nil
}

// condParser is a recursive-descent parser of Sigma conditions:
//
//	expr    = and { "or" and }
//	and     = unary { "and" unary }
//	unary   = "not" unary | primary
//	primary = "(" expr ")" | ("1" | "any" | "all") "of" (pattern | "them") | identifier
type condParser struct {
	c        *conv
	src      *source
	searches map[string]*yaml.Node
	order    []string
	cache    map[string]cexpr
	toks     []string
	pos      int
}

func tokenize(s string) []string {
	var out []string
	var b strings.Builder
	flush := func() {
		if b.Len() > 0 {
			out = append(out, b.String())
			b.Reset()
		}
	}
	for _, r := range s {
		switch {
		case r == '(' || r == ')' || r == '|':
			flush()
			out = append(out, string(r))
		case r == ' ' || r == '\t' || r == '\n' || r == '\r':
			flush()
		default:
			b.WriteRune(r)
		}
	}
	flush()
	return out
}

func (p *condParser) parse(s string) (cexpr, error) {
	p.toks, p.pos = tokenize(s), 0
	for _, t := range p.toks {
		if t == "|" {
			return cexpr{}, fmt.Errorf("aggregation (| count() ...) is deprecated in Sigma: %w; write a correlation rule", ErrUnsupported)
		}
		if strings.EqualFold(t, "near") {
			return cexpr{}, fmt.Errorf("near: %w", ErrUnsupported)
		}
	}
	x, err := p.expr()
	if err != nil {
		return cexpr{}, err
	}
	if p.pos < len(p.toks) {
		return cexpr{}, fmt.Errorf("unexpected %q", p.toks[p.pos])
	}
	return x, nil
}

func (p *condParser) peek() string {
	if p.pos < len(p.toks) {
		return strings.ToLower(p.toks[p.pos])
	}
	return ""
}

func (p *condParser) expr() (cexpr, error) {
	x, err := p.and()
	if err != nil {
		return cexpr{}, err
	}
	xs := []cexpr{x}
	for p.peek() == "or" {
		p.pos++
		y, err := p.and()
		if err != nil {
			return cexpr{}, err
		}
		xs = append(xs, y)
	}
	return join("||", xs), nil
}

func (p *condParser) and() (cexpr, error) {
	x, err := p.unary()
	if err != nil {
		return cexpr{}, err
	}
	xs := []cexpr{x}
	for p.peek() == "and" {
		p.pos++
		y, err := p.unary()
		if err != nil {
			return cexpr{}, err
		}
		xs = append(xs, y)
	}
	return join("&&", xs), nil
}

func (p *condParser) unary() (cexpr, error) {
	if p.peek() == "not" {
		p.pos++
		x, err := p.unary()
		if err != nil {
			return cexpr{}, err
		}
		return not(x), nil
	}
	return p.primary()
}

func (p *condParser) primary() (cexpr, error) {
	t := p.peek()
	switch t {
	case "":
		return cexpr{}, fmt.Errorf("unexpected end of condition")
	case "(":
		p.pos++
		x, err := p.expr()
		if err != nil {
			return cexpr{}, err
		}
		if p.peek() != ")" {
			return cexpr{}, fmt.Errorf("missing )")
		}
		p.pos++
		return atom("(" + x.s + ")"), nil
	case ")", "and", "or", "of", "them":
		return cexpr{}, fmt.Errorf("unexpected %q", t)
	case "1", "any", "all":
		if p.pos+1 < len(p.toks) && strings.EqualFold(p.toks[p.pos+1], "of") {
			if p.pos+2 >= len(p.toks) {
				return cexpr{}, fmt.Errorf("%s of: missing pattern", t)
			}
			pat := p.toks[p.pos+2]
			p.pos += 3
			ids, err := p.matching(pat)
			if err != nil {
				return cexpr{}, err
			}
			var xs []cexpr
			for _, id := range ids {
				x, err := p.ident(id)
				if err != nil {
					return cexpr{}, err
				}
				xs = append(xs, x)
			}
			if t == "all" {
				return join("&&", xs), nil
			}
			return join("||", xs), nil
		}
	}
	if _, err := fmt.Sscanf(t, "%d", new(int)); err == nil && p.pos+1 < len(p.toks) && strings.EqualFold(p.toks[p.pos+1], "of") {
		return cexpr{}, fmt.Errorf("%s of: only 1 of and all of are defined: %w", t, ErrUnsupported)
	}
	p.pos++
	return p.ident(p.toks[p.pos-1])
}

// matching lists the search identifiers a `x of` pattern names, in the
// order written; `them` is every identifier not starting with `_`.
func (p *condParser) matching(pat string) ([]string, error) {
	var out []string
	if strings.EqualFold(pat, "them") {
		for _, id := range p.order {
			if !strings.HasPrefix(id, "_") {
				out = append(out, id)
			}
		}
	} else {
		re, err := regexp.Compile("^" + strings.ReplaceAll(regexp.QuoteMeta(pat), `\*`, ".*") + "$")
		if err != nil {
			return nil, err
		}
		for _, id := range p.order {
			if re.MatchString(id) {
				out = append(out, id)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("pattern %q matches no search identifier", pat)
	}
	return out, nil
}

func (p *condParser) ident(id string) (cexpr, error) {
	if x, ok := p.cache[id]; ok {
		return x, nil
	}
	n, ok := p.searches[id]
	if !ok {
		return cexpr{}, fmt.Errorf("unknown search identifier %q", id)
	}
	x, err := p.c.search(id, n, p.src)
	if err != nil {
		return cexpr{}, err
	}
	p.cache[id] = x
	return x, nil
}
