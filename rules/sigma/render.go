package sigma

import (
	"encoding/base64"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// quote renders a string literal for expr-lang (Go escape syntax).
func quote(s string) string { return strconv.Quote(s) }

func quoteList(vs []string) string {
	q := make([]string, len(vs))
	for i, v := range vs {
		q[i] = quote(v)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// cexpr is a generated condition with its operator precedence, so parents
// add parentheses only where needed.
type cexpr struct {
	s    string
	prec int // 1 ||, 2 &&, 3 atom
	// negated is set on a negation: not(not(x)) gives x back.
	negated *cexpr
}

func atom(s string) cexpr { return cexpr{s: s, prec: 3} }

func join(op string, xs []cexpr) cexpr {
	if len(xs) == 1 {
		return xs[0]
	}
	prec := 1
	if op == "&&" {
		prec = 2
	}
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = x.wrap(prec)
	}
	return cexpr{s: strings.Join(parts, " "+op+" "), prec: prec}
}

func (c cexpr) wrap(prec int) string {
	if c.prec < prec {
		return "(" + c.s + ")"
	}
	return c.s
}

func not(c cexpr) cexpr {
	if c.negated != nil {
		return *c.negated
	}
	inner := c
	return cexpr{s: "!" + c.wrap(3), prec: 3, negated: &inner}
}

// modifiers parsed from `Field|mod|mod`.
type modifiers struct {
	list  []string
	all   bool
	cased bool
}

var knownMods = map[string]bool{
	"contains": true, "startswith": true, "endswith": true, "all": true, "base64": true, "base64offset": true,
	"wide": true, "utf16le": true, "utf16be": true, "utf16": true, "windash": true, "re": true, "i": true,
	"m": true, "s": true, "cidr": true, "exists": true, "fieldref": true, "lt": true, "lte": true, "gt": true,
	"gte": true, "cased": true,
}

// scalar is one detection value as written.
type scalar struct {
	text string
	tag  string // !!str, !!int, !!float, !!bool, !!null
}

func scalarsOf(n *yaml.Node) ([]scalar, error) {
	switch n.Kind {
	case yaml.ScalarNode:
		return []scalar{{n.Value, n.ShortTag()}}, nil
	case yaml.SequenceNode:
		out := make([]scalar, 0, len(n.Content))
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("line %d: a value list holds only scalars", c.Line)
			}
			out = append(out, scalar{c.Value, c.ShortTag()})
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("line %d: empty value list", n.Line)
		}
		return out, nil
	}
	return nil, fmt.Errorf("line %d: a field's value is a scalar or a list of scalars", n.Line)
}

// fieldCond renders `Field|mods: values`.
func (c *conv) fieldCond(key string, vn *yaml.Node, src *source) (cexpr, error) {
	segs := strings.Split(key, "|")
	name := segs[0]
	var m modifiers
	for _, mod := range segs[1:] {
		mod = strings.ToLower(mod)
		switch {
		case mod == "expand":
			return cexpr{}, fmt.Errorf("field %s: modifier |expand (placeholders): %w", name, ErrUnsupported)
		case !knownMods[mod]:
			return cexpr{}, fmt.Errorf("field %s: unknown modifier |%s: %w", name, mod, ErrUnsupported)
		case mod == "all":
			m.all = true
		case mod == "cased":
			m.cased = true
		}
		m.list = append(m.list, mod)
	}
	if name == "" {
		return cexpr{}, fmt.Errorf("field-less value (keyword search %q): %w", key, ErrUnsupported)
	}
	vals, err := scalarsOf(vn)
	if err != nil {
		return cexpr{}, fmt.Errorf("field %s: %w", name, err)
	}
	f := src.resolve(name, c.warn)
	x, err := c.renderField(f, m, vals, src)
	if err != nil {
		return cexpr{}, fmt.Errorf("field %s: %w", key, err)
	}
	return x, nil
}

func has(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (c *conv) renderField(f fieldRef, m modifiers, vals []scalar, src *source) (cexpr, error) {
	combine := func(xs []cexpr) cexpr {
		if m.all {
			return join("&&", xs)
		}
		return join("||", xs)
	}
	switch {
	case has(m.list, "exists"):
		if len(vals) != 1 || vals[0].tag != "!!bool" {
			return cexpr{}, fmt.Errorf("|exists takes true or false")
		}
		if vals[0].text == "true" {
			return existsExpr(f), nil
		}
		return not(existsExpr(f)), nil
	case has(m.list, "fieldref"):
		var xs []cexpr
		for _, v := range vals {
			g := src.resolve(v.text, c.warn)
			xs = append(xs, atom(fmt.Sprintf("iequals(%s, %s)", asText(f), asText(g))))
		}
		return combine(xs), nil
	case has(m.list, "lt") || has(m.list, "lte") || has(m.list, "gt") || has(m.list, "gte"):
		op := map[string]string{"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
		var o string
		for _, mod := range m.list {
			if op[mod] != "" {
				o = op[mod]
			}
		}
		var xs []cexpr
		for _, v := range vals {
			if _, err := strconv.ParseFloat(v.text, 64); err != nil {
				return cexpr{}, fmt.Errorf("|%s needs a number, got %q", strings.Join(m.list, "|"), v.text)
			}
			switch f.kind {
			case kInt:
				xs = append(xs, atom(fmt.Sprintf("%s %s %s", f.expr, o, v.text)))
			case kAny:
				xs = append(xs, cexpr{s: fmt.Sprintf(`type(%[1]s) in ["int", "float"] && %[1]s %s %s`, f.expr, o, v.text), prec: 2})
			default:
				xs = append(xs, cexpr{s: fmt.Sprintf(`%[1]s != "" && float(%[1]s) %s %s`, f.expr, o, v.text), prec: 2})
			}
		}
		return combine(xs), nil
	case has(m.list, "cidr"):
		if f.kind == kInt {
			return cexpr{}, fmt.Errorf("|cidr on a numeric field")
		}
		var nets []string
		for _, v := range vals {
			if _, err := netip.ParsePrefix(strings.TrimSpace(v.text)); err != nil {
				return cexpr{}, fmt.Errorf("|cidr: %v", err)
			}
			nets = append(nets, strings.TrimSpace(v.text))
		}
		if m.all || len(nets) == 1 {
			var xs []cexpr
			for _, n := range nets {
				xs = append(xs, atom(fmt.Sprintf("cidr(%s, %s)", f.expr, quote(n))))
			}
			return combine(xs), nil
		}
		return atom(fmt.Sprintf("in_cidrs(%s, %s)", f.expr, quoteList(nets))), nil
	case has(m.list, "re"):
		flags := ""
		for _, fl := range []string{"i", "m", "s"} {
			if has(m.list, fl) {
				flags += fl
			}
		}
		var xs []cexpr
		for _, v := range vals {
			p := v.text
			if flags != "" {
				p = "(?" + flags + ")" + p
			}
			if _, err := regexp.Compile(p); err != nil {
				return cexpr{}, fmt.Errorf("|re %q: RE2 cannot compile it (%v): %w", v.text, err, ErrUnsupported)
			}
			xs = append(xs, atom(fmt.Sprintf("regex(%s, %s)", asText(f), quote(p))))
		}
		return combine(xs), nil
	}
	for _, fl := range []string{"i", "m", "s"} {
		if has(m.list, fl) {
			return cexpr{}, fmt.Errorf("modifier |%s is only valid after |re", fl)
		}
	}
	// String matching: build the values, apply transformations in the
	// order written, then render.
	var xs []cexpr
	var svals []sstr
	for _, v := range vals {
		if v.tag == "!!null" {
			xs = append(xs, emptyExpr(f))
			continue
		}
		if f.kind == kInt && len(m.list) == 0 && (v.tag == "!!int" || isInt(v.text)) {
			xs = append(xs, atom(fmt.Sprintf("%s == %s", f.expr, strings.TrimLeft(v.text, "+"))))
			continue
		}
		out := []sstr{parseSStr(v.text)}
		if v.tag != "!!str" {
			out = []sstr{lit(v.text)} // numbers and booleans have no wildcards
		}
		for _, mod := range m.list {
			var err error
			out, err = transform(out, mod)
			if err != nil {
				return cexpr{}, err
			}
		}
		svals = append(svals, out...)
	}
	if len(svals) > 0 {
		g := f
		if f.kind == kInt {
			g = fieldRef{expr: "string(" + f.expr + ")", kind: kString}
		}
		rx, err := renderStrings(g, svals, m)
		if err != nil {
			return cexpr{}, err
		}
		xs = append(xs, rx...)
	}
	return combine(xs), nil
}

func isInt(s string) bool {
	_, err := strconv.ParseInt(s, 10, 64)
	return err == nil
}

// transform applies one value modifier to every value.
func transform(vs []sstr, mod string) ([]sstr, error) {
	var out []sstr
	for _, v := range vs {
		switch mod {
		case "contains":
			out = append(out, v.wrap(true, true))
		case "startswith":
			out = append(out, v.wrap(false, true))
		case "endswith":
			out = append(out, v.wrap(true, false))
		case "wide", "utf16le", "utf16be", "utf16":
			p, err := needPlain(v, mod)
			if err != nil {
				return nil, err
			}
			out = append(out, lit(encodeUTF16(p, mod)))
		case "base64":
			p, err := needPlain(v, mod)
			if err != nil {
				return nil, err
			}
			out = append(out, lit(base64.StdEncoding.EncodeToString([]byte(p))))
		case "base64offset":
			p, err := needPlain(v, mod)
			if err != nil {
				return nil, err
			}
			for _, e := range base64Offsets(p) {
				out = append(out, lit(e))
			}
		case "windash":
			w, err := windash(v)
			if err != nil {
				return nil, err
			}
			out = append(out, w...)
		default: // all, cased: not value transformations
			out = append(out, v)
		}
	}
	return out, nil
}

// asText makes f usable where the helpers want a string.
func asText(f fieldRef) string {
	if f.kind == kInt {
		return "string(" + f.expr + ")"
	}
	return f.expr
}

func existsExpr(f fieldRef) cexpr {
	switch f.kind {
	case kInt:
		return atom(f.expr + " != 0")
	case kAny:
		return cexpr{s: fmt.Sprintf(`%[1]s != nil && %[1]s != ""`, f.expr), prec: 2}
	}
	return atom(f.expr + ` != ""`)
}

func emptyExpr(f fieldRef) cexpr {
	switch f.kind {
	case kInt:
		return atom(f.expr + " == 0")
	case kAny:
		return cexpr{s: fmt.Sprintf(`%[1]s == nil || %[1]s == ""`, f.expr), prec: 1}
	}
	return atom(f.expr + ` == ""`)
}

// renderStrings renders string values against f: grouped into one
// iequals_any / icontains_any call where Sigma ORs them, one call per value
// under |all.
func renderStrings(f fieldRef, vals []sstr, m modifiers) ([]cexpr, error) {
	var exact, names, contains []string
	var xs []cexpr
	text := f.expr
	if f.kind == kAny && m.cased {
		text = "string(" + f.expr + ` ?? "")`
	}
	one := func(sh shape, l string, v sstr) cexpr {
		if m.cased {
			switch sh {
			case shapeExact:
				return atom(fmt.Sprintf("%s == %s", text, quote(l)))
			case shapeContains:
				return atom(fmt.Sprintf("%s contains %s", text, quote(l)))
			case shapePrefix:
				return atom(fmt.Sprintf("%s startsWith %s", text, quote(l)))
			case shapeSuffix:
				return atom(fmt.Sprintf("%s endsWith %s", text, quote(l)))
			}
		}
		switch sh {
		case shapeExact:
			return atom(fmt.Sprintf("iequals(%s, %s)", f.expr, quote(l)))
		case shapeContains:
			return atom(fmt.Sprintf("icontains(%s, %s)", f.expr, quote(l)))
		case shapePrefix:
			return atom(fmt.Sprintf("istartswith(%s, %s)", f.expr, quote(l)))
		case shapeSuffix:
			return atom(fmt.Sprintf("iendswith(%s, %s)", f.expr, quote(l)))
		case shapeAny:
			return existsExpr(f)
		}
		return atom(fmt.Sprintf("regex(%s, %s)", f.expr, quote(v.regex(m.cased))))
	}
	for _, v := range vals {
		sh, l := v.classify()
		if m.all || m.cased {
			xs = append(xs, one(sh, l, v))
			continue
		}
		switch {
		case sh == shapeExact:
			exact = append(exact, l)
		case sh == shapeSuffix && f.name != "" && isBaseName(l):
			names = append(names, l[1:])
		case sh == shapeContains:
			contains = append(contains, l)
		default:
			xs = append(xs, one(sh, l, v))
		}
	}
	var head []cexpr
	switch len(exact) {
	case 0:
	case 1:
		head = append(head, atom(fmt.Sprintf("iequals(%s, %s)", f.expr, quote(exact[0]))))
	default:
		head = append(head, atom(fmt.Sprintf("iequals_any(%s, %s)", f.expr, quoteList(exact))))
	}
	switch len(names) {
	case 0:
	case 1:
		head = append(head, atom(fmt.Sprintf("iequals(%s, %s)", f.name, quote(names[0]))))
	default:
		head = append(head, atom(fmt.Sprintf("iequals_any(%s, %s)", f.name, quoteList(names))))
	}
	switch len(contains) {
	case 0:
	case 1:
		head = append(head, atom(fmt.Sprintf("icontains(%s, %s)", f.expr, quote(contains[0]))))
	default:
		head = append(head, atom(fmt.Sprintf("icontains_any(%s, %s)", f.expr, quoteList(contains))))
	}
	return append(head, xs...), nil
}

// isBaseName: `\cmd.exe` names a file at the end of a path, so
// `endswith \cmd.exe` equals `name == cmd.exe`.
func isBaseName(l string) bool {
	return len(l) > 1 && l[0] == '\\' && !strings.ContainsAny(l[1:], `\/`)
}
