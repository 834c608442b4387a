package sigma

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/vigil-sec/vigil/pipeline/event"
	"github.com/vigil-sec/vigil/rules"
)

// Convert converts one Sigma file to one Vigil rule. A file holding a
// correlation rule together with the rules it references (YAML documents
// separated by ---) is accepted as long as it yields one Vigil rule;
// otherwise use ConvertAll. The result has been compiled with
// rules.LoadSources.
func Convert(src []byte, opts Options) ([]byte, []Warning, error) {
	res, warns, err := ConvertAll([][]byte{src}, opts)
	if err != nil {
		return nil, warns, err
	}
	if len(res) != 1 {
		return nil, warns, fmt.Errorf("sigma: the file yields %d Vigil rules; use ConvertAll", len(res))
	}
	return res[0].YAML, warns, nil
}

// node is one Sigma rule during a ConvertAll.
type node struct {
	r       *sigmaRule
	id      string // Vigil rule id
	src     *source
	cond    cexpr // detection rules: source filter && detection
	tactics []string
	techs   []string
	sev     string
	out     *outRule
	err     error
	done    bool
	busy    bool // cycle detection
	used    bool // referenced by a correlation that does not generate it
	gen     bool // referenced by a correlation with generate: true
	c       *conv
}

// ConvertAll converts a set of Sigma files (each may hold several YAML
// documents). Correlation rules may reference any rule of the set by id or
// name. It returns every rule that converted, even when err is non-nil:
// err joins one error per rule that did not (errors.Is(err,
// ErrUnsupported) tells whether any was only unsupported). Results are in
// input order and have been compiled together with rules.LoadSources.
func ConvertAll(files [][]byte, opts Options) ([]Result, []Warning, error) {
	opts = opts.withDefaults()
	var errs []error
	var nodes []*node
	for i, f := range files {
		docs, err := parseDocs(f, i)
		if err != nil {
			errs = append(errs, fmt.Errorf("sigma file %d: %w", i+1, err))
		}
		for _, r := range docs {
			nodes = append(nodes, &node{r: r, c: &conv{rule: r}})
		}
	}
	// Vigil ids: prefix + name or title, unique.
	taken := map[string]bool{}
	index := map[string]*node{}
	for _, n := range nodes {
		base := n.r.Name
		if base == "" {
			base = n.r.Title
		}
		id := opts.IDPrefix + slug(base)
		if taken[id] {
			suffix := n.r.ID
			if len(suffix) > 8 {
				suffix = suffix[:8]
			}
			if suffix == "" || taken[id+"_"+slug(suffix)] {
				suffix = strconv.Itoa(len(taken))
			}
			id += "_" + slug(suffix)
		}
		taken[id] = true
		n.id = id
		for _, k := range []string{n.r.ID, n.r.Name} {
			if k != "" {
				if _, dup := index[k]; !dup {
					index[k] = n
				}
			}
		}
	}
	for _, n := range nodes {
		if n.r.Correlation == nil {
			continue
		}
		gen := n.r.Generate || n.r.Correlation.Generate
		for _, ref := range n.r.Correlation.Rules {
			if m := index[ref]; m != nil {
				m.used = true
				m.gen = m.gen || gen
			}
		}
	}
	conv := &converter{opts: opts, index: index}
	for _, n := range nodes {
		conv.convert(n)
	}
	// Emit: every correlation (nested ones are chained on), and detection
	// rules no correlation consumes without generate.
	var emit []*node
	for _, n := range nodes {
		if n.err != nil {
			errs = append(errs, n.err)
			continue
		}
		if n.r.Correlation == nil && n.used && !n.gen {
			continue
		}
		emit = append(emit, n)
	}
	results, cerrs := compileCheck(emit)
	errs = append(errs, cerrs...)
	var warns []Warning
	for _, n := range nodes {
		warns = append(warns, n.c.warnings...)
	}
	return results, warns, errors.Join(errs...)
}

type converter struct {
	opts  Options
	index map[string]*node
}

func (cv *converter) fail(n *node, err error) {
	n.err = fmt.Errorf("sigma rule %s: %w", n.r.label(), err)
}

func (cv *converter) convert(n *node) {
	if n.done || n.busy {
		return
	}
	n.busy = true
	defer func() { n.busy, n.done = false, true }()
	if n.r.Correlation != nil {
		cv.correlation(n)
		return
	}
	src, err := lookupSource(n.r.LogSource)
	if err != nil {
		cv.fail(n, err)
		return
	}
	det, err := n.c.detection(src)
	if err != nil {
		cv.fail(n, fmt.Errorf("detection: %w", err))
		return
	}
	n.src = src
	n.cond = join("&&", []cexpr{{s: src.filter, prec: 2}, atom("(" + det.s + ")")})
	if det.prec == 3 {
		n.cond = join("&&", []cexpr{{s: src.filter, prec: 2}, det})
	}
	n.tactics, n.techs = attackOf(n.r.Tags, n.c.warn)
	n.sev = severityOf(n.r.Level, n.c.warn)
	if n.used && !n.gen {
		return // only inlined into a correlation; attack tags are checked there
	}
	if err := cv.checkAttack(n); err != nil {
		cv.fail(n, err)
		return
	}
	n.out = &outRule{
		ID: n.id, Name: n.r.Title, Description: description(n.r), Severity: n.sev,
		Tactics: n.tactics, Techniques: n.techs, Kind: "match",
		By:       outBy{Keyspace: string(src.keyspace), Key: src.key},
		Where:    n.cond.s,
		Entities: src.entities,
	}
	if strings.EqualFold(n.r.Status, "deprecated") || strings.EqualFold(n.r.Status, "unsupported") {
		n.c.warn("Sigma status is " + n.r.Status)
	}
}

func (cv *converter) checkAttack(n *node) error {
	if len(n.techs) == 0 {
		return fmt.Errorf("no ATT&CK technique tag known to rules/attack.go (attack.tNNNN); Vigil rules need one: %w", ErrUnsupported)
	}
	if len(n.tactics) == 0 {
		return fmt.Errorf("no ATT&CK tactic: %w", ErrUnsupported)
	}
	return nil
}

// ref is one rule a correlation references, resolved.
type ref struct {
	n     *node
	chain bool   // a correlation: consumed through its alerts
	cond  string // condition selecting its events
	src   *source
	name  string // Sigma name, for aliases and step names
}

// leafSource is the logsource of a correlation's first detection rule, used
// to resolve group-by fields of chained correlations.
func (cv *converter) leafSource(n *node) *source {
	if n.src != nil {
		return n.src
	}
	if n.r.Correlation != nil {
		for _, r := range n.r.Correlation.Rules {
			if m := cv.index[r]; m != nil && m != n && !m.busy {
				if s := cv.leafSource(m); s != nil {
					return s
				}
			}
		}
	}
	return nil
}

var timespanRe = regexp.MustCompile(`^(\d+)([smhdw])$`)

func vigilDuration(ts string) (string, error) {
	m := timespanRe.FindStringSubmatch(strings.TrimSpace(ts))
	if m == nil {
		return "", fmt.Errorf("timespan %q: want a number and s, m, h, d or w", ts)
	}
	n, err := strconv.Atoi(m[1])
	if err != nil || n <= 0 {
		return "", fmt.Errorf("timespan %q: want a positive number", ts)
	}
	if m[2] == "w" {
		return strconv.Itoa(n*7) + "d", nil
	}
	return m[1] + m[2], nil
}

// entityKeyspace says which keyspace a typed field keys.
func entityKeyspace(expr string) event.Keyspace {
	switch expr {
	case "User":
		return event.KeyUser
	case "Device":
		return event.KeyDevice
	case "SrcIP", "DstIP":
		return event.KeyIP
	case "Resource":
		return event.KeyResource
	}
	return ""
}

// chainField is the field of an alert event (operators.AlertEvent) that
// holds the first entity of a keyspace's type.
func chainField(ks event.Keyspace) string {
	switch ks {
	case event.KeyUser:
		return "User"
	case event.KeyDevice:
		return "Device"
	case event.KeyIP:
		return "SrcIP"
	}
	return "Resource"
}

func (cv *converter) correlation(n *node) {
	c := n.r.Correlation
	typ := strings.ToLower(c.Type)
	switch typ {
	case "event_count", "value_count", "temporal", "temporal_ordered":
	case "":
		cv.fail(n, errors.New("correlation without type"))
		return
	default:
		cv.fail(n, fmt.Errorf("correlation type %s: %w", c.Type, ErrUnsupported))
		return
	}
	if len(c.Rules) == 0 {
		cv.fail(n, errors.New("correlation references no rules"))
		return
	}
	window, err := vigilDuration(c.Timespan)
	if err != nil {
		cv.fail(n, err)
		return
	}
	// Resolve the referenced rules.
	var refs []ref
	var tags, tactics, techs []string
	sev := ""
	for _, name := range c.Rules {
		m := cv.index[name]
		if m == nil {
			cv.fail(n, fmt.Errorf("references unknown rule %q (give ConvertAll every file)", name))
			return
		}
		if m.busy {
			cv.fail(n, fmt.Errorf("reference cycle through %q", name))
			return
		}
		cv.convert(m)
		if m.err != nil {
			cv.fail(n, fmt.Errorf("referenced rule %q: %w", name, m.err))
			return
		}
		rf := ref{n: m, name: m.r.Name}
		if rf.name == "" {
			rf.name = slug(m.r.Title)
		}
		if m.r.Correlation != nil {
			rf.chain = true
			rf.cond = fmt.Sprintf("Source == %q && Action == %q", rules.AlertSource, m.id)
			rf.src = cv.leafSource(m)
		} else {
			rf.cond = m.cond.s
			rf.src = m.src
		}
		if rf.src == nil {
			cv.fail(n, fmt.Errorf("referenced rule %q has no detection rule to resolve fields against", name))
			return
		}
		refs = append(refs, rf)
		if rf.chain {
			tactics, techs = union(tactics, m.tactics), union(techs, m.techs)
		} else {
			tags = append(tags, m.r.Tags...)
		}
		if m.sev != "" {
			sev = maxSeverity(sev, m.sev)
		}
	}
	tags = append(tags, n.r.Tags...)
	tac, tec := attackOf(tags, n.c.warn)
	n.tactics, n.techs = union(tactics, tac), union(techs, tec)
	if n.r.Level != "" || sev == "" {
		n.sev = severityOf(n.r.Level, n.c.warn)
	} else {
		n.sev = sev
	}
	n.src = refs[0].src
	if err := cv.checkAttack(n); err != nil {
		cv.fail(n, err)
		return
	}
	// Group-by: the first field that keys every reference in one keyspace
	// is the key; the rest refine it.
	resolve := func(field string, rf ref) (fieldRef, error) {
		name := field
		if al, ok := c.Aliases[field]; ok {
			f, ok := al[rf.name]
			if !ok {
				f, ok = al[rf.n.r.ID]
			}
			if !ok {
				return fieldRef{}, fmt.Errorf("alias %s has no field for rule %s", field, rf.name)
			}
			name = f
		}
		f := rf.src.resolve(name, n.c.warn)
		if rf.chain {
			if ks := entityKeyspace(f.expr); ks != "" {
				f = typed(chainField(ks))
			}
		}
		return f, nil
	}
	perRef := func(field string) ([]fieldRef, error) {
		var out []fieldRef
		for _, rf := range refs {
			f, err := resolve(field, rf)
			if err != nil {
				return nil, err
			}
			out = append(out, f)
		}
		return out, nil
	}
	pick := func(fs []fieldRef) string {
		same := true
		for _, f := range fs[1:] {
			if f.expr != fs[0].expr {
				same = false
			}
		}
		if same {
			return fs[0].expr
		}
		var b strings.Builder
		for i, f := range fs {
			fmt.Fprintf(&b, "(%s) ? %s : ", refs[i].cond, f.expr)
		}
		b.WriteString(`""`)
		return "(" + b.String() + ")"
	}
	var keyspace event.Keyspace
	var key string
	var extra []string
	for _, g := range c.GroupBy {
		fs, err := perRef(g)
		if err != nil {
			cv.fail(n, err)
			return
		}
		if keyspace == "" {
			ks := entityKeyspace(fs[0].expr)
			for _, f := range fs[1:] {
				if entityKeyspace(f.expr) != ks {
					ks = ""
				}
			}
			if ks != "" {
				keyspace, key = ks, pick(fs)
				continue
			}
		}
		extra = append(extra, pick(fs))
	}
	if keyspace == "" {
		cv.fail(n, fmt.Errorf("group-by %v: no field maps to a user, device, IP or resource in every referenced rule; Vigil correlates per entity: %w",
			[]string(c.GroupBy), ErrUnsupported))
		return
	}
	out := &outRule{
		ID: n.id, Name: n.r.Title, Description: description(n.r), Severity: n.sev,
		Tactics: n.tactics, Techniques: n.techs, By: outBy{Keyspace: string(keyspace), Key: key},
	}
	switch typ {
	case "event_count", "value_count":
		having, err := thresholdHaving(c, typ)
		if err != nil {
			cv.fail(n, err)
			return
		}
		out.Kind, out.Window = "threshold", window
		out.Threshold = &outThreshold{Having: having, GroupBy: extra}
		if typ == "value_count" {
			fv, ok := c.Condition["field"]
			if !ok || fv.Value == "" {
				cv.fail(n, errors.New("value_count needs condition.field"))
				return
			}
			fs, err := perRef(fv.Value)
			if err != nil {
				cv.fail(n, err)
				return
			}
			out.Threshold.Distinct = pick(fs)
		}
		if len(refs) == 1 && refs[0].chain {
			out.Rule = refs[0].n.id
		} else {
			var xs []cexpr
			for _, rf := range refs {
				xs = append(xs, cexpr{s: rf.cond, prec: 2})
			}
			out.Where = join("||", xs).s
		}
		out.Entities = mergeEntities(refs)
	case "temporal", "temporal_ordered":
		if len(refs) < 2 {
			cv.fail(n, fmt.Errorf("%s needs at least two rules", typ))
			return
		}
		if err := temporalCondition(c, len(refs)); err != nil {
			cv.fail(n, err)
			return
		}
		if len(extra) > 0 {
			n.c.warn(fmt.Sprintf("group-by fields beyond the %s key are not enforced by a Vigil sequence: %s", keyspace, strings.Join(extra, ", ")))
		}
		out.Kind, out.MaxSpan, out.Unordered = "sequence", window, typ == "temporal"
		names := map[string]bool{}
		for i, rf := range refs {
			sn := slug(rf.name)
			if names[sn] {
				sn = fmt.Sprintf("%s_%d", sn, i+1)
			}
			names[sn] = true
			st := outStep{Name: sn}
			if rf.chain {
				st.Rule = rf.n.id
				st.Entities = chainEntities
			} else {
				st.Where = rf.cond
				st.Entities = rf.src.entities
			}
			out.Steps = append(out.Steps, st)
		}
	}
	n.out = out
}

func union(a, b []string) []string {
	out := append([]string(nil), a...)
	for _, x := range b {
		if !has(out, x) {
			out = append(out, x)
		}
	}
	return out
}

var chainEntities = []entitySpec{{"user", []string{"User"}}, {"device", []string{"Device"}}, {"ip", []string{"SrcIP"}}}

// mergeEntities unions the entities of the referenced rules by type.
func mergeEntities(refs []ref) outEntities {
	var out outEntities
	idx := map[string]int{}
	for _, rf := range refs {
		list := chainEntities
		if !rf.chain {
			list = rf.src.entities
		}
		for _, e := range list {
			i, ok := idx[e.typ]
			if !ok {
				idx[e.typ] = len(out)
				out = append(out, entitySpec{typ: e.typ})
				i = len(out) - 1
			}
			for _, x := range e.exprs {
				if !has(out[i].exprs, x) {
					out[i].exprs = append(out[i].exprs, x)
				}
			}
		}
	}
	return out
}

// thresholdHaving turns a correlation condition into a having expression.
// Only lower bounds are streamable: a threshold fires when it is crossed.
func thresholdHaving(c *correlation, typ string) (string, error) {
	v := "count"
	if typ == "value_count" {
		v = "distinct"
	}
	var parts []string
	keys := make([]string, 0, len(c.Condition))
	for k := range c.Condition {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		val := c.Condition[k]
		switch k {
		case "field":
			continue
		case "gt", "gte":
			num, err := strconv.Atoi(val.Value)
			if err != nil || num < 0 {
				return "", fmt.Errorf("condition %s: %q is not a count", k, val.Value)
			}
			op := ">="
			if k == "gt" {
				op = ">"
			}
			parts = append(parts, fmt.Sprintf("%s %s %d", v, op, num))
		case "lt", "lte", "eq", "neq":
			return "", fmt.Errorf("condition %s: a streaming threshold fires when a lower bound is crossed; %s needs the window to close: %w", k, k, ErrUnsupported)
		default:
			return "", fmt.Errorf("unknown condition operator %q", k)
		}
	}
	if len(parts) == 0 {
		return "", fmt.Errorf("%s needs condition gte or gt", typ)
	}
	return strings.Join(parts, " && "), nil
}

// temporalCondition accepts the only condition a sequence can express:
// every referenced rule matched.
func temporalCondition(c *correlation, n int) error {
	for k, v := range c.Condition {
		num, err := strconv.Atoi(v.Value)
		ok := err == nil && ((k == "gte" && num == n) || (k == "gt" && num == n-1) || (k == "eq" && num == n))
		if !ok {
			return fmt.Errorf("temporal condition %s: %s: only \"all referenced rules\" is expressible as a sequence: %w", k, v.Value, ErrUnsupported)
		}
	}
	return nil
}

// compileCheck encodes the rules and compiles them together, so every
// result is known to load; rules failing are reported, not returned.
func compileCheck(emit []*node) ([]Result, []error) {
	var errs []error
	type enc struct {
		n    *node
		file string
		data []byte
	}
	var encs []enc
	for _, n := range emit {
		origin := "rule " + strconv.Quote(n.r.Title)
		if n.r.ID != "" {
			origin += " (" + n.r.ID + ")"
		}
		data, err := n.out.encode(origin)
		if err != nil {
			errs = append(errs, fmt.Errorf("sigma rule %s: encode: %w", n.r.label(), err))
			continue
		}
		encs = append(encs, enc{n, n.id + ".yaml", data})
	}
	for {
		var srcs []rules.Source
		for _, e := range encs {
			srcs = append(srcs, rules.Source{Name: e.file, Data: e.data})
		}
		_, err := rules.LoadSources(srcs, nil, rules.Options{})
		if err == nil {
			break
		}
		// Attribute the diagnostics (file:line: id: msg) to rules, drop
		// those, and compile the rest again (a chain may depend on them).
		bad := map[string][]string{}
		for _, line := range strings.Split(err.Error(), "\n") {
			file, _, _ := strings.Cut(line, ":")
			bad[file] = append(bad[file], line)
		}
		var keep []enc
		for _, e := range encs {
			if msgs, ok := bad[e.file]; ok {
				errs = append(errs, fmt.Errorf("sigma rule %s: converted rule does not compile: %s", e.n.r.label(), strings.Join(msgs, "; ")))
				continue
			}
			keep = append(keep, e)
		}
		if len(keep) == len(encs) { // unattributable: report once and stop
			errs = append(errs, fmt.Errorf("sigma: converted rules do not compile: %w", err))
			encs = nil
			break
		}
		encs = keep
	}
	var out []Result
	for _, e := range encs {
		sid := e.n.r.ID
		if sid == "" {
			sid = e.n.r.Title
		}
		out = append(out, Result{ID: e.n.id, File: e.file, SigmaID: sid, YAML: e.data})
	}
	return out, errs
}
