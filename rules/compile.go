package rules

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
	"go.yaml.in/yaml/v3"

	"github.com/vigil-sec/vigil/pipeline/alert"
	"github.com/vigil-sec/vigil/pipeline/event"
)

// Options configure loading and linting.
type Options struct {
	// MaxRetention is the longest state retention the deployment allows;
	// a rule window longer than it is an error. Zero means no limit.
	MaxRetention time.Duration
	// LookupDirs are extra directories of watchlists and STIX files, read
	// in addition to every `lookups` directory of the rule tree.
	LookupDirs []string
	// TIValidAt drops indicators whose valid_until is before it; zero
	// keeps all (replay-safe).
	TIValidAt time.Time
}

// Diagnostic is one problem found in a rule file.
type Diagnostic struct {
	File   string
	Line   int
	RuleID string
	Msg    string
	// Warning marks problems that do not stop LoadDir (missing tests).
	Warning bool
}

func (d Diagnostic) String() string {
	id := d.RuleID
	if id == "" {
		id = "-"
	}
	w := ""
	if d.Warning {
		w = "warning: "
	}
	return fmt.Sprintf("%s:%d: %s: %s%s", d.File, d.Line, id, w, d.Msg)
}

// Source is one rule file's name and contents.
type Source struct {
	Name string
	Data []byte
}

// LoadDir loads and compiles every rule under dir. It returns all rules,
// or an error joining every problem (file:line: rule id: message).
func LoadDir(dir string, opts Options) (*Set, error) {
	return LoadDirs([]string{dir}, opts)
}

// LoadDirs loads several rule directories into one set (the shipped
// library and a site's own rules, say). Ids must be unique across all of
// them; every directory's lookups are shared by all rules. It returns the
// set, or an error joining every problem.
func LoadDirs(dirs []string, opts Options) (*Set, error) {
	set, diags := load(dirs, opts)
	if err := diagError(diags); err != nil {
		return nil, err
	}
	return set, nil
}

// Lint compiles every rule under dir and returns every problem found,
// warnings included, sorted by file and line.
func Lint(dir string, opts Options) []Diagnostic {
	return LintDirs([]string{dir}, opts)
}

// LintDirs is Lint over several directories loaded as one set.
func LintDirs(dirs []string, opts Options) []Diagnostic {
	_, diags := load(dirs, opts)
	return diags
}

// LoadSources compiles rules from memory (tests, scenario scripts).
func LoadSources(srcs []Source, lookups *Lookups, opts Options) (*Set, error) {
	if lookups == nil {
		lookups = NewLookups()
	}
	set, diags := compileAll(srcs, lookups, opts)
	if err := diagError(diags); err != nil {
		return nil, err
	}
	return set, nil
}

func diagError(diags []Diagnostic) error {
	var errs []error
	for _, d := range diags {
		if !d.Warning {
			errs = append(errs, errors.New(d.String()))
		}
	}
	return errors.Join(errs...)
}

func load(dirs []string, opts Options) (*Set, []Diagnostic) {
	var srcs []Source
	var diags []Diagnostic
	lookups := NewLookups()
	lookupDirs := append([]string(nil), opts.LookupDirs...)
	if len(dirs) == 0 {
		diags = append(diags, Diagnostic{Msg: "no rule directory given"})
	}
	for _, dir := range dirs {
		more, ld, err := readDir(dir)
		if err != nil {
			diags = append(diags, Diagnostic{File: dir, Msg: fmt.Sprintf("read rules: %v", err)})
		}
		srcs = append(srcs, more...)
		lookupDirs = append(lookupDirs, ld...)
	}
	for _, ld := range lookupDirs {
		if err := lookups.LoadDir(ld, opts.TIValidAt); err != nil {
			diags = append(diags, Diagnostic{File: ld, Msg: err.Error()})
		}
	}
	set, more := compileAll(srcs, lookups, opts)
	diags = append(diags, more...)
	sortDiags(diags)
	return set, diags
}

// readDir returns the rule files under dir and its lookups directories.
func readDir(dir string) ([]Source, []string, error) {
	var srcs []Source
	var lookupDirs []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if p != dir && ignored(name) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if name == "lookups" {
				lookupDirs = append(lookupDirs, p)
				return filepath.SkipDir
			}
			return nil
		}
		if !isRuleFile(name) {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		srcs = append(srcs, Source{Name: p, Data: b})
		return nil
	})
	return srcs, lookupDirs, err
}

// ignored reports names the loader skips: dot and underscore files and
// directories (editor swap files, drafts).
func ignored(name string) bool { return strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") }

func isRuleFile(name string) bool {
	ext := filepath.Ext(name)
	return ext == ".yaml" || ext == ".yml"
}

func sortDiags(d []Diagnostic) {
	sort.SliceStable(d, func(i, j int) bool {
		if d[i].File != d[j].File {
			return d[i].File < d[j].File
		}
		return d[i].Line < d[j].Line
	})
}

// compiler carries what compiling one file needs.
type compiler struct {
	fn    *funcs
	opts  Options
	file  string
	id    string
	diags []Diagnostic
	// fields collects the Fields paths of the rule being compiled.
	fields *event.FieldPaths
}

func (c *compiler) errf(line int, format string, args ...any) {
	c.diags = append(c.diags, Diagnostic{File: c.file, Line: line, RuleID: c.id, Msg: fmt.Sprintf(format, args...)})
}

func (c *compiler) warnf(line int, format string, args ...any) {
	c.diags = append(c.diags, Diagnostic{File: c.file, Line: line, RuleID: c.id, Msg: fmt.Sprintf(format, args...), Warning: true})
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

func compileAll(srcs []Source, lookups *Lookups, opts Options) (*Set, []Diagnostic) {
	fn := &funcs{lookups: lookups}
	set := &Set{Lookups: lookups, byID: map[string]*Rule{}, funcs: fn}
	var diags []Diagnostic
	for _, src := range srcs {
		c := &compiler{fn: fn, opts: opts, file: src.Name}
		r := c.compileFile(src.Data)
		diags = append(diags, c.diags...)
		if r == nil {
			continue
		}
		if prev := set.byID[r.ID]; prev != nil {
			diags = append(diags, Diagnostic{File: r.File, Line: r.Line, RuleID: r.ID,
				Msg: fmt.Sprintf("duplicate rule id (also in %s)", prev.File)})
			continue
		}
		set.byID[r.ID] = r
		set.Rules = append(set.Rules, r)
	}
	sort.Slice(set.Rules, func(i, j int) bool { return set.Rules[i].ID < set.Rules[j].ID })
	set.mergeFields()
	diags = append(diags, checkChains(set)...)
	sortDiags(diags)
	return set, diags
}

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)

func (c *compiler) compileFile(data []byte) *Rule {
	var spec RuleSpec
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&spec); err != nil {
		c.id = guessID(data)
		line := 0
		msg := err.Error()
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1])
		}
		msg = strings.ReplaceAll(msg, "yaml: unmarshal errors:\n  ", "")
		msg = yamlLine.ReplaceAllString(msg, "")
		msg = strings.TrimLeft(strings.ReplaceAll(msg, "\n", "; "), ": ")
		c.errf(line, "%s", msg)
		return nil
	}
	var extra RuleSpec
	if err := dec.Decode(&extra); err == nil {
		c.errf(0, "more than one YAML document: one rule per file")
	}
	c.id = spec.ID
	return c.compileRule(&spec)
}

func guessID(data []byte) string {
	m := regexp.MustCompile(`(?m)^id:\s*["']?([^"'\s#]+)`).FindSubmatch(data)
	if m == nil {
		return ""
	}
	return string(m[1])
}

func (c *compiler) compileRule(s *RuleSpec) *Rule {
	r := &Rule{ID: s.ID, Name: s.Name, Description: strings.TrimSpace(s.Description), File: c.file, Line: 1, Spec: s,
		Disabled: s.Disabled, Unordered: s.Unordered, Lateness: s.Lateness.D}
	nerr := len(c.diags)
	if s.ID == "" {
		c.errf(1, "missing id")
	} else if !idPattern.MatchString(s.ID) {
		c.errf(1, "id %q: use lower-case letters, digits, '.', '_' and '-'", s.ID)
	}
	if s.Name == "" {
		c.errf(1, "missing name")
	}
	if r.Description == "" {
		c.errf(1, "missing description")
	}
	r.Severity = alert.Severity(s.Severity)
	if r.Severity.Rank() == 0 {
		c.errf(1, "severity %q: want informational, low, medium, high or critical", s.Severity)
	}
	c.attack(r, s)
	r.Kind = Kind(s.Kind)
	if s.By == nil {
		c.errf(1, "missing by (user, device, ip or resource)")
	} else {
		r.Keyspace = event.Keyspace(s.By.Keyspace)
		if !validKeyspace(r.Keyspace) {
			c.errf(s.By.Line, "by: unknown keyspace %q (want user, device, ip or resource)", s.By.Keyspace)
		}
		if s.By.Key != nil {
			r.Key = c.valueExpr(*s.By.Key, "by.key")
		}
	}
	r.Window, r.MaxSpan = s.Window.D, s.MaxSpan.D
	topStep := func() {
		if s.Where == nil && s.Rule == "" {
			c.errf(1, "%s rule needs where (or rule)", s.Kind)
			return
		}
		st := c.step(StepSpec{Name: s.Kind, Rule: s.Rule, Where: s.Where, Entities: s.Entities, Line: 1}, 0)
		if st != nil {
			r.Steps = []*Step{st}
		}
	}
	forbid := func(what string, set bool) {
		if set {
			c.errf(1, "%s is not used by a %s rule", what, s.Kind)
		}
	}
	switch r.Kind {
	case KindMatch:
		topStep()
		forbid("window", s.Window.Set)
		forbid("maxspan", s.MaxSpan.Set)
	case KindThreshold:
		topStep()
		if !s.Window.Set || s.Window.D <= 0 {
			c.errf(1, "threshold rule needs a positive window")
		}
		if s.Threshold == nil {
			c.errf(1, "threshold rule needs a threshold block with having")
		} else {
			r.Threshold = c.threshold(s.Threshold)
		}
		forbid("maxspan", s.MaxSpan.Set)
	case KindSequence:
		if len(s.Steps) < 2 {
			c.errf(1, "sequence needs at least 2 steps")
		}
		if len(s.Steps) > 32 {
			c.errf(1, "sequence has %d steps; at most 32", len(s.Steps))
		}
		if !s.MaxSpan.Set || s.MaxSpan.D <= 0 {
			c.errf(1, "sequence needs a positive maxspan")
		}
		if len(s.Entities) > 0 {
			c.errf(1, "sequence: put entities on the steps")
		}
		names := map[string]bool{}
		for i, ss := range s.Steps {
			if ss.Name == "" {
				ss.Name = fmt.Sprintf("step%d", i+1)
			}
			if names[ss.Name] {
				c.errf(ss.Line, "duplicate step name %q", ss.Name)
			}
			names[ss.Name] = true
			if st := c.step(ss, i); st != nil {
				r.Steps = append(r.Steps, st)
			}
		}
		forbid("window", s.Window.Set)
	case KindAbsence:
		if s.Anchor == nil || s.Expect == nil {
			c.errf(1, "absence needs anchor and expect")
		} else {
			a, e := *s.Anchor, *s.Expect
			if a.Name == "" {
				a.Name = "anchor"
			}
			if e.Name == "" {
				e.Name = "expect"
			}
			as, es := c.step(a, 0), c.step(e, 1)
			if as != nil && es != nil {
				r.Steps = []*Step{as, es}
			}
		}
		if !s.Window.Set || s.Window.D <= 0 {
			c.errf(1, "absence rule needs a positive window")
		}
		if len(s.Entities) > 0 {
			c.errf(1, "absence: put entities on anchor")
		}
	case KindNewTerm:
		topStep()
		if s.NewTerm == nil || s.NewTerm.Field == nil {
			c.errf(1, "new_term rule needs new_term.field")
		} else {
			r.NewTerm = &NewTerm{Field: c.valueExpr(*s.NewTerm.Field, "new_term.field"),
				Lookback: s.NewTerm.Lookback.D, MinHistory: s.NewTerm.MinHistory.D}
			if r.NewTerm.Lookback <= 0 {
				c.errf(1, "new_term needs a positive lookback")
			}
			c.retention(s.NewTerm.Lookback, "new_term.lookback")
		}
	default:
		c.errf(1, "kind %q: want match, threshold, sequence, absence or new_term", s.Kind)
	}
	if r.Kind != KindSequence {
		forbid("steps", len(s.Steps) > 0)
		forbid("until", s.Until != nil)
		forbid("unordered", s.Unordered)
	}
	if r.Kind != KindThreshold {
		forbid("threshold", s.Threshold != nil)
	}
	if r.Kind != KindAbsence {
		forbid("anchor/expect", s.Anchor != nil || s.Expect != nil)
	}
	if r.Kind != KindNewTerm {
		forbid("new_term", s.NewTerm != nil)
	}
	if r.Kind == KindSequence || r.Kind == KindAbsence {
		forbid("top-level where/rule", s.Where != nil || s.Rule != "")
	}
	if s.Until != nil {
		r.Until = c.step(StepSpec{Name: "until", Where: s.Until, Line: s.Until.Line}, -1)
	}
	c.retention(s.Window, "window")
	c.retention(s.MaxSpan, "maxspan")
	if s.Suppress != nil {
		r.Suppress.Window = s.Suppress.Window.D
		c.retention(s.Suppress.Window, "suppress")
		for _, b := range s.Suppress.By {
			r.Suppress.By = append(r.Suppress.By, c.valueExpr(b, "suppress.by"))
		}
	}
	if g := s.Grouping; g != nil {
		r.Grouping = alert.Grouping{Disabled: g.Disabled, Window: g.Window.D}
		for _, t := range g.By {
			if !validEntityType(alert.EntityType(t)) {
				c.errf(1, "grouping.by: unknown entity type %q", t)
			}
			r.Grouping.By = append(r.Grouping.By, alert.EntityType(t))
		}
		if g.Window.Set && (g.Window.D < 5*time.Minute || g.Window.D > 7*24*time.Hour) {
			c.errf(g.Window.Line, "grouping.window %v: must be between 5m and 7d", g.Window.D)
		}
	}
	if r.Grouping.Window == 0 {
		r.Grouping.Window = 24 * time.Hour
	}
	c.checkTests(s)
	r.Fields, c.fields = c.fields, nil
	r.Version = version(s)
	if len(c.diags) > nerr && hasErrors(c.diags[nerr:]) {
		return nil
	}
	return r
}

func hasErrors(d []Diagnostic) bool {
	for _, x := range d {
		if !x.Warning {
			return true
		}
	}
	return false
}

func (c *compiler) checkTests(s *RuleSpec) {
	if len(s.Tests) == 0 {
		c.warnf(1, "no tests: add a positive and a negative fixture")
		return
	}
	pos, neg := false, false
	for _, t := range s.Tests {
		if t.Name == "" {
			c.errf(t.Line, "test without name")
		}
		if len(t.Events) == 0 {
			c.errf(t.Line, "test %q has no events", t.Name)
		}
		if t.Advance != "" {
			if _, err := time.Parse(time.RFC3339Nano, t.Advance); err != nil {
				c.errf(t.Line, "test %q: advance: %v", t.Name, err)
			}
		}
		e := t.Expect
		if (e.Count != nil && *e.Count == 0) || (e.Count == nil && len(e.Alerts) == 0 && len(e.Unexpected) > 0) {
			neg = true
		} else if (e.Count != nil && *e.Count > 0) || len(e.Alerts) > 0 {
			pos = true
		} else {
			c.errf(t.Line, "test %q expects nothing: set expect.count or expect.alerts", t.Name)
		}
		for _, ea := range append(append([]ExpectedAlert(nil), e.Alerts...), e.Unexpected...) {
			for typ := range ea.Entities {
				if !validEntityType(alert.EntityType(typ)) {
					c.errf(t.Line, "test %q: unknown entity type %q", t.Name, typ)
				}
			}
		}
	}
	if !pos {
		c.warnf(1, "no positive test (one that expects an alert)")
	}
	if !neg {
		c.warnf(1, "no negative test (expect: {count: 0})")
	}
}

func (c *compiler) retention(d Duration, what string) {
	if c.opts.MaxRetention > 0 && d.D > c.opts.MaxRetention {
		c.errf(d.Line, "%s %v is longer than the state retention %v", what, d.D, c.opts.MaxRetention)
	}
}

func (c *compiler) attack(r *Rule, s *RuleSpec) {
	if len(s.Tactics) == 0 {
		c.errf(1, "missing tactics")
	}
	if len(s.Techniques) == 0 {
		c.errf(1, "missing techniques")
	}
	for _, t := range s.Tactics {
		tac, ok := LookupTactic(t)
		if !ok {
			c.errf(1, "unknown ATT&CK tactic %q (ATT&CK v%s)", t, AttackVersion)
			continue
		}
		r.Tactics = append(r.Tactics, tac.ID) // ids (TA0002) are what incident consumers key on
	}
	for _, t := range s.Techniques {
		tech, ok := LookupTechnique(t)
		if !ok {
			c.errf(1, "unknown ATT&CK technique %q (not in rules/attack.go, ATT&CK v%s)", t, AttackVersion)
			continue
		}
		r.Techniques = append(r.Techniques, tech.ID)
	}
}

func (c *compiler) threshold(ts *ThresholdSpec) *Threshold {
	t := &Threshold{Tumbling: ts.Tumbling}
	if ts.Distinct != nil {
		t.Distinct = c.valueExpr(*ts.Distinct, "threshold.distinct")
	}
	if ts.Sum != nil {
		t.Sum = c.expr(*ts.Sum, "threshold.sum")
		if t.Sum != nil && t.Sum.Type != nil && !isNumber(t.Sum.Type) && t.Sum.Type.Kind() != reflect.Interface {
			c.errf(ts.Sum.Line, "threshold.sum: %q is %v, not a number", ts.Sum.Text, t.Sum.Type)
		}
	}
	for _, g := range ts.GroupBy {
		t.GroupBy = append(t.GroupBy, c.valueExpr(g, "threshold.group_by"))
	}
	switch ts.Missing {
	case "", "skip":
	case "empty":
		t.MissingEmpty = true
	default:
		c.errf(1, "threshold.missing %q: want skip or empty", ts.Missing)
	}
	if ts.Having == nil {
		c.errf(1, "threshold needs having (e.g. count >= 10)")
		return t
	}
	if hasNow(ts.Having.Text) {
		c.errf(ts.Having.Line, "threshold.having: now() is refused")
		return t
	}
	p, err := expr.Compile(ts.Having.Text, expr.Env(HavingEnv{}), expr.AsBool(), expr.Timezone("UTC"))
	if err != nil {
		c.errf(ts.Having.Line, "threshold.having: %s", exprErr(err))
		return t
	}
	t.Having, t.HavingSource = p, ts.Having.Text
	if tree, err := parser.Parse(ts.Having.Text); err == nil {
		t.MinCount, t.MinDistinct = havingFloor(tree.Node)
		reads := map[string]bool{}
		ast.Walk(&tree.Node, visitor(func(n ast.Node) {
			if id, ok := n.(*ast.IdentifierNode); ok {
				reads[id.Value] = true
			}
		}))
		t.DistinctOnly = t.Distinct != nil && reads["distinct"] && !reads["count"] && !reads["sum"]
	}
	return t
}

// havingFloor returns the lower bounds on count and distinct that the
// top-level conjunction of a having condition states with integer
// constants (count >= 50, distinct > 9, 3 <= count); 0 for none. Anything
// else (||, sums, arithmetic) states nothing and is left to the condition.
func havingFloor(n ast.Node) (count, distinct int) {
	switch x := n.(type) {
	case *ast.BinaryNode:
		if x.Operator == "&&" || x.Operator == "and" {
			lc, ld := havingFloor(x.Left)
			rc, rd := havingFloor(x.Right)
			return max(lc, rc), max(ld, rd)
		}
		name, lit, op := x.Left, x.Right, x.Operator
		if _, ok := name.(*ast.IdentifierNode); !ok { // 50 <= count
			name, lit = x.Right, x.Left
			op = map[string]string{"<=": ">=", "<": ">"}[op]
		}
		id, ok1 := name.(*ast.IdentifierNode)
		v, ok2 := lit.(*ast.IntegerNode)
		if !ok1 || !ok2 {
			return 0, 0
		}
		floor := 0
		switch op {
		case ">=":
			floor = v.Value
		case ">":
			floor = v.Value + 1
		}
		switch id.Value {
		case "count":
			return floor, 0
		case "distinct":
			return 0, floor
		}
	}
	return 0, 0
}

func isNumber(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

func (c *compiler) step(ss StepSpec, index int) *Step {
	st := &Step{Name: ss.Name, Index: index}
	text := ""
	if ss.Rule != "" {
		text = fmt.Sprintf("Source == %q && Action == %q", AlertSource, ss.Rule)
	}
	if ss.Where != nil {
		if text != "" {
			text += " && (" + ss.Where.Text + ")"
		} else {
			text = ss.Where.Text
		}
	}
	if text == "" {
		c.errf(ss.Line, "step %q needs where or rule", ss.Name)
		return nil
	}
	line := ss.Line
	if ss.Where != nil {
		line = ss.Where.Line
	}
	e := c.cond(Src{Text: text, Line: line}, "step "+ss.Name)
	if e == nil {
		return nil
	}
	st.Where = e
	st.Hint, st.Chain = hintOf(text)
	for _, en := range ss.Entities {
		t := alert.EntityType(en.Type)
		if !validEntityType(t) {
			c.errf(en.Line, "entities: unknown type %q", en.Type)
			continue
		}
		ent := Entity{Type: t}
		for _, x := range en.Exprs {
			if v := c.valueExpr(x, "entities."+en.Type); v != nil {
				ent.Exprs = append(ent.Exprs, v)
			}
		}
		st.Entities = append(st.Entities, ent)
	}
	return st
}

// cond compiles a condition that must be bool.
func (c *compiler) cond(src Src, what string) *Expr {
	e := c.expr(src, what)
	if e == nil {
		return nil
	}
	if e.Type != nil && e.Type.Kind() != reflect.Bool && e.Type.Kind() != reflect.Interface {
		c.errf(src.Line, "%s: condition %q is %v, not bool", what, src.Text, e.Type)
		return nil
	}
	// The native form is built from the type-checked tree before expr's
	// optimizer rewrites it (in-lists into maps, folded constants), the
	// shape whose subtrees print back as source.
	if p, err := expr.Compile(src.Text, append(c.exprOptions(), expr.Optimize(false))...); err == nil {
		e.Native = compileNative(p.Node(), c.fn, c.exprOptions(), e.Fields.All())
	}
	return e
}

// valueExpr compiles an expression producing a string or a list of strings.
func (c *compiler) valueExpr(src Src, what string) *Expr {
	e := c.expr(src, what)
	if e == nil || e.Type == nil {
		return e
	}
	switch e.Type.Kind() {
	case reflect.String, reflect.Slice, reflect.Array:
		if p, err := expr.Compile(src.Text, append(c.exprOptions(), expr.Optimize(false))...); err == nil {
			e.Values = compileValues(p.Node(), c.fn, c.exprOptions(), e.Fields.All())
		}
		return e
	case reflect.Interface, reflect.Int, reflect.Int64, reflect.Float64:
		return e
	}
	c.errf(src.Line, "%s: %q is %v; want a string or a list of strings", what, src.Text, e.Type)
	return nil
}

var nowCall = regexp.MustCompile(`\bnow\s*\(`)

func hasNow(s string) bool { return nowCall.MatchString(s) }

// exprOptions are the options every expression compiles with.
func (c *compiler) exprOptions() []expr.Option {
	// The Env value, not a pointer: expr then compiles field accesses to
	// indexed loads instead of by-name reflective lookups (3x cheaper; see
	// TestFieldsCompileToIndexedLoads). The engine still runs with *Env.
	return append([]expr.Option{expr.Env(Env{Event: &event.Event{}}), expr.Timezone("UTC"), expr.DisableBuiltin("now")}, c.fn.options()...)
}

// expr compiles src against the event environment.
func (c *compiler) expr(src Src, what string) *Expr {
	tree, err := parser.Parse(src.Text)
	if err != nil {
		c.errf(src.Line, "%s: %s", what, exprErr(err))
		return nil
	}
	v := &inspect{}
	ast.Walk(&tree.Node, v)
	if v.now {
		c.errf(src.Line, "%s: now() is refused: rules run on event time so replays give the same alerts; compare with Time", what)
		return nil
	}
	for _, w := range v.watchlists {
		if !c.fn.lookups.HasWatchlist(w) {
			c.errf(src.Line, "%s: unknown watchlist %q (no lookups/%s.csv)", what, w, w)
		}
	}
	for _, p := range v.regexes {
		if err := c.fn.precompileRegex(p); err != nil {
			c.errf(src.Line, "%s: %v", what, err)
		}
	}
	for _, p := range v.cidrs {
		if err := c.fn.precompilePrefix(p); err != nil {
			c.errf(src.Line, "%s: %v", what, err)
		}
	}
	p, err := expr.Compile(src.Text, c.exprOptions()...)
	if err != nil {
		c.errf(src.Line, "%s: %s", what, exprErr(err))
		return nil
	}
	var typ reflect.Type
	if n := p.Node(); n != nil {
		typ = n.Type()
	}
	x := &Expr{Source: src.Text, Program: p, UsesFields: v.fields, Type: typ, Line: src.Line}
	if v.fields {
		x.Fields = fieldPathsOf(tree.Node)
		if c.fields == nil {
			c.fields = &event.FieldPaths{}
		}
		c.fields.Merge(x.Fields)
	}
	return x
}

func exprErr(err error) string {
	var fe *file.Error
	if errors.As(err, &fe) {
		if fe.Column > 0 {
			return fmt.Sprintf("%s (column %d)", fe.Message, fe.Column+1)
		}
		return fe.Message
	}
	return err.Error()
}

// inspect walks an expression's syntax tree for what lint and the engine
// need to know before running it.
type inspect struct {
	now        bool
	fields     bool
	watchlists []string
	regexes    []string
	cidrs      []string
}

func (v *inspect) Visit(n *ast.Node) {
	switch x := (*n).(type) {
	case *ast.IdentifierNode:
		if x.Value == "Fields" {
			v.fields = true
		}
	case *ast.BuiltinNode:
		if x.Name == "now" {
			v.now = true
		}
	case *ast.CallNode:
		id, ok := x.Callee.(*ast.IdentifierNode)
		if !ok {
			return
		}
		constArg := func(i int) (string, bool) {
			if i < len(x.Arguments) {
				if s, ok := x.Arguments[i].(*ast.StringNode); ok {
					return s.Value, true
				}
			}
			return "", false
		}
		switch id.Value {
		case "now":
			v.now = true
		case "watchlist", "watchlist_field":
			if s, ok := constArg(0); ok {
				v.watchlists = append(v.watchlists, s)
			}
		case "regex":
			if s, ok := constArg(1); ok {
				v.regexes = append(v.regexes, s)
			}
		case "cidr":
			if s, ok := constArg(1); ok {
				v.cidrs = append(v.cidrs, s)
			}
		case "in_cidrs":
			if len(x.Arguments) == 2 {
				if arr, ok := x.Arguments[1].(*ast.ArrayNode); ok {
					for _, n := range arr.Nodes {
						if s, ok := n.(*ast.StringNode); ok {
							v.cidrs = append(v.cidrs, s.Value)
						}
					}
				}
			}
		}
	}
}

// fieldPathsOf returns the paths of Fields that an expression reads. A
// member chain Fields.a.b reads the value at a.b as a whole; the inner
// Fields.a is only a step on the way. A Fields used any other way (passed
// to a function, indexed by a computed key) selects the whole record.
func fieldPathsOf(root ast.Node) *event.FieldPaths {
	var members []*ast.MemberNode
	var idents []*ast.IdentifierNode
	objectOf := map[ast.Node]bool{} // nodes that are the object of a member access
	ast.Walk(&root, visitor(func(n ast.Node) {
		switch x := n.(type) {
		case *ast.MemberNode:
			members = append(members, x)
			objectOf[unchain(x.Node)] = true
		case *ast.IdentifierNode:
			if x.Value == "Fields" {
				idents = append(idents, x)
			}
		}
	}))
	p := &event.FieldPaths{}
	for _, id := range idents {
		if !objectOf[id] {
			p.Add() // Fields itself is the value
		}
	}
	for _, m := range members {
		if objectOf[m] {
			continue
		}
		if path, ok := fieldsPath(m); ok {
			p.Add(path...)
		}
	}
	return p
}

// fieldsPath returns the constant path of a member chain rooted at Fields.
// A computed property (Fields.a[0].b, Fields[k]) ends the path at its
// object, which is then read whole.
func fieldsPath(m *ast.MemberNode) ([]string, bool) {
	path, _, ok := fieldsPathOpen(m)
	return path, ok
}

func fieldsPathOpen(m *ast.MemberNode) (path []string, open, ok bool) {
	switch o := unchain(m.Node).(type) {
	case *ast.IdentifierNode:
		if o.Value != "Fields" {
			return nil, false, false
		}
		open = true
	case *ast.MemberNode:
		if path, open, ok = fieldsPathOpen(o); !ok {
			return nil, false, false
		}
	default:
		return nil, false, false
	}
	if !open {
		return path, false, true
	}
	if s, isStr := m.Property.(*ast.StringNode); isStr && !m.Method {
		return append(path, s.Value), true, true
	}
	return path, false, true
}

func unchain(n ast.Node) ast.Node {
	for {
		c, ok := n.(*ast.ChainNode)
		if !ok {
			return n
		}
		n = c.Node
	}
}

type visitor func(ast.Node)

func (v visitor) Visit(n *ast.Node) { v(*n) }

// hintOf extracts the dispatch hint and chained rule ids from the
// top-level conjunction of a condition.
func hintOf(text string) (Hint, []string) {
	tree, err := parser.Parse(text)
	if err != nil {
		return Hint{}, nil
	}
	cons := map[string][]string{}
	var walk func(n ast.Node)
	walk = func(n ast.Node) {
		b, ok := n.(*ast.BinaryNode)
		if !ok {
			return
		}
		switch b.Operator {
		case "&&", "and":
			walk(b.Left)
			walk(b.Right)
		case "==":
			id, ok1 := b.Left.(*ast.IdentifierNode)
			s, ok2 := b.Right.(*ast.StringNode)
			if !ok1 || !ok2 {
				id, ok1 = b.Right.(*ast.IdentifierNode)
				s, ok2 = b.Left.(*ast.StringNode)
			}
			if ok1 && ok2 {
				if _, seen := cons[id.Value]; !seen {
					cons[id.Value] = []string{s.Value}
				}
			}
		case "in":
			id, ok1 := b.Left.(*ast.IdentifierNode)
			arr, ok2 := b.Right.(*ast.ArrayNode)
			if !ok1 || !ok2 {
				return
			}
			var vals []string
			for _, e := range arr.Nodes {
				s, ok := e.(*ast.StringNode)
				if !ok {
					return
				}
				vals = append(vals, s.Value)
			}
			if _, seen := cons[id.Value]; !seen {
				cons[id.Value] = vals
			}
		}
	}
	walk(tree.Node)
	var h Hint
	for _, f := range []string{"Action", "Source", "Type", "Category"} {
		if vals, ok := cons[f]; ok {
			h = Hint{Field: f, Values: vals}
			break
		}
	}
	var chain []string
	if src := cons["Source"]; len(src) == 1 && src[0] == AlertSource {
		chain = cons["Action"]
	} else if cat := cons["Category"]; len(cat) == 1 && cat[0] == string(event.CatAlert) {
		chain = cons["Action"]
	}
	return h, chain
}

func validKeyspace(ks event.Keyspace) bool {
	for _, k := range event.Keyspaces {
		if k == ks {
			return true
		}
	}
	return false
}

func validEntityType(t alert.EntityType) bool {
	switch t {
	case alert.EntityUser, alert.EntityDevice, alert.EntityIP, alert.EntityResource, alert.EntityFile,
		alert.EntityProcess, alert.EntityURL, alert.EntityDomain, alert.EntityApp, alert.EntityMailbox:
		return true
	}
	return false
}

// version hashes the canonical definition: the spec re-encoded as JSON
// (map keys sorted, comments and layout gone), without name, description
// and tests, which do not change what the rule detects.
func version(s *RuleSpec) string {
	b, err := json.Marshal(s)
	if err != nil {
		return "0"
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:6])
}

// checkChains reports rule references to missing rules and cycles.
func checkChains(set *Set) []Diagnostic {
	var diags []Diagnostic
	edges := map[string][]string{}
	for _, r := range set.Rules {
		for _, st := range append(append([]*Step(nil), r.Steps...), r.Until) {
			if st == nil {
				continue
			}
			for _, id := range st.Chain {
				if set.byID[id] == nil {
					diags = append(diags, Diagnostic{File: r.File, Line: st.Where.Line, RuleID: r.ID,
						Msg: fmt.Sprintf("step %q chains on unknown rule %q", st.Name, id)})
					continue
				}
				edges[r.ID] = append(edges[r.ID], id)
			}
		}
	}
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	var visit func(id string)
	visit = func(id string) {
		color[id] = grey
		stack = append(stack, id)
		for _, next := range edges[id] {
			switch color[next] {
			case white:
				visit(next)
			case grey:
				i := len(stack) - 1
				for i > 0 && stack[i] != next {
					i--
				}
				cycle := append(append([]string(nil), stack[i:]...), next)
				r := set.byID[id]
				diags = append(diags, Diagnostic{File: r.File, Line: r.Line, RuleID: id,
					Msg: "alert chain forms a cycle: " + strings.Join(cycle, " -> ")})
			}
		}
		stack = stack[:len(stack)-1]
		color[id] = black
	}
	for _, r := range set.Rules {
		if color[r.ID] == white {
			visit(r.ID)
		}
	}
	return diags
}
