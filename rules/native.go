package rules

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unsafe"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"
	"github.com/expr-lang/expr/vm/runtime"

	"github.com/vigil-sec/vigil/pipeline/event"
)

// This file compiles the boolean skeleton of a condition to Go closures.
//
// Conditions are where the correlate stage spends its time: each event
// reaches ~3 rule steps after dispatch, and in expr's VM every typed field
// load walks reflect and boxes the string into an interface (an
// allocation), every helper call boxes its arguments, and the result is
// boxed again. The library's conditions are mostly conjunctions of
// comparisons of typed fields with constants, in-lists and helper calls
// (regex, icontains_any, is_private); those become closures that read the
// event's fields in place. Whatever is left (Fields lookups with ??,
// predicates, conditionals) stays in expr: the subtree is compiled as its
// own program and run by the engine's VM, so a condition is never refused
// here and never means something else (TestNativeMatchesVM runs every
// library condition both ways over every fixture).

// Native is a condition compiled to closures.
type Native struct {
	fn boolFn
	// Fallbacks counts the subtrees left to expr.
	Fallbacks int
}

// Frame is what a native condition reads: the event environment, and the
// caller's VM for the subtrees left to expr (a VM is not safe for
// concurrent use: one per worker, as for Program).
type Frame struct {
	Env *Env
	VM  *vm.VM
	// Paths are the rule set's Fields paths (Set.FieldPaths): the source
	// record is decoded only when a condition first reads Fields, so the
	// conditions that fail on a typed field first never pay for it.
	Paths *event.FieldPaths

	view event.FieldView // the current event's record at Paths
	gen  uint64          // the Env.gen view belongs to
	buf  []byte          // toJSON's output, before it becomes a string
	// json is toJSON(Fields) of the event of Env.gen jsonGen.
	json    string
	jsonGen uint64
	jsonOK  bool
	ips     [4]parsedAddr // addr's memo, replaced round-robin
	ipNext  uint8
}

type parsedAddr struct {
	s  string
	a  netip.Addr
	ok bool
}

// addr parses s as the IP helpers do (parseAddr), from the memo when s
// is one of the last few strings parsed. The memo is keyed by the text,
// so it never outlives a meaning.
func (f *Frame) addr(s string) (netip.Addr, bool) {
	for i := range f.ips {
		if p := &f.ips[i]; p.s == s {
			return p.a, p.ok
		}
	}
	a, ok := parseAddr(s)
	f.ips[f.ipNext%uint8(len(f.ips))] = parsedAddr{s: s, a: a, ok: ok}
	f.ipNext++
	return a, ok
}

// record returns the view of the current event's source record, indexed
// at Paths (once per event), or nil when reads must go through Fields:
// Fields already decoded, or a record the view does not read (FieldView.Index).
func (f *Frame) record() *event.FieldView {
	ev := f.Env.Event
	if ev.Fields != nil {
		return nil
	}
	if f.gen != f.Env.gen {
		f.view.Reset()
		f.gen = f.Env.gen
	}
	if !f.view.Index(ev.Raw, f.Paths) {
		return nil
	}
	return &f.view
}

// fields decodes the event's source record (once per event) and returns it.
func (f *Frame) fields(all bool) map[string]any {
	decodeFields(f.Env.Event, all, f.Paths)
	return f.Env.Event.Fields
}

// Eval runs the condition on the frame's event. An error means what it
// means for the VM: the condition failed (a Fields value of an unexpected
// type), and the step does not match.
func (n *Native) Eval(f *Frame) (bool, error) { return n.fn(f) }

// fn is a compiled piece of a condition. An error means what it means in
// the VM: a value of an unexpected type (Fields drift), and the condition
// fails.
type fn[T any] func(*Frame) (T, error)

type (
	boolFn = fn[bool]
	strFn  = fn[string]
	intFn  = fn[int64]
	anyFn  = fn[any]
)

func constant[T any](v T) fn[T] { return func(*Frame) (T, error) { return v, nil } }

// map1 and map2 apply a Go function to compiled operands, in order, the
// first error ending the evaluation as in the VM.
func map1[A, R any](a fn[A], op func(A) R) fn[R] {
	return func(f *Frame) (R, error) {
		x, err := a(f)
		if err != nil {
			var zero R
			return zero, err
		}
		return op(x), nil
	}
}

func map2[A, B, R any](a fn[A], b fn[B], op func(A, B) R) fn[R] {
	return func(f *Frame) (R, error) {
		var zero R
		x, err := a(f)
		if err != nil {
			return zero, err
		}
		y, err := b(f)
		if err != nil {
			return zero, err
		}
		return op(x, y), nil
	}
}

// nativeCompiler compiles one condition. A subtree that does not compile
// on its own sets err (sticky): the condition then has no native form.
type nativeCompiler struct {
	fn        *funcs
	allFields bool          // the condition reads the whole record (toJSON(Fields))
	opts      []expr.Option // the condition's expr options, for subtrees
	fallbacks int
	err       error
}

// compileNative compiles a type-checked, unoptimized condition tree. It
// returns nil when nothing would be gained (the whole condition would be
// one expr subtree) or a subtree does not compile on its own.
func compileNative(root ast.Node, fn *funcs, opts []expr.Option, allFields bool) *Native {
	c := &nativeCompiler{fn: fn, opts: opts, allFields: allFields}
	if !c.native(root) {
		return nil
	}
	f := c.boolOf(root)
	if c.err != nil {
		return nil
	}
	return &Native{fn: f, Fallbacks: c.fallbacks}
}

// Values is a value expression — a key, a group_by, a distinct value, an
// entity — compiled to closures: a string-typed expression, a []string
// field (Related.Users) or a list of those. Entities of every alert, the
// group and distinct value of every threshold event and the key of keyed
// rules were the VM's largest remaining use (reflective field fetches).
type Values struct {
	fn valuesFn
}

type valuesFn func(f *Frame, dst []string) ([]string, error)

// Append appends the expression's non-empty strings to dst, in order, as
// the engine reads the VM's result (a string, or a flattened list).
func (v *Values) Append(f *Frame, dst []string) ([]string, error) { return v.fn(f, dst) }

// ValueStrings reads a value expression's VM result as the engine uses it:
// a string, or a list (nested lists flattened), without empty strings;
// anything else in its fmt form. Values.Append yields the same.
func ValueStrings(v any) []string {
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
			out = append(out, ValueStrings(s)...)
		}
		return out
	}
	s := fmt.Sprint(v)
	if s == "" {
		return nil
	}
	return []string{s}
}

// compileValues compiles a type-checked, unoptimized value expression, or
// returns nil when any part of it would need expr's VM (the engine then
// runs the program).
func compileValues(root ast.Node, fn *funcs, opts []expr.Option, allFields bool) *Values {
	c := &nativeCompiler{fn: fn, opts: opts, allFields: allFields}
	g := c.valuesOf(root)
	if g == nil || c.err != nil || c.fallbacks > 0 {
		return nil
	}
	return &Values{fn: g}
}

func (c *nativeCompiler) valuesOf(n ast.Node) valuesFn {
	if x, ok := n.(*ast.ArrayNode); ok {
		parts := make([]valuesFn, len(x.Nodes))
		for i, e := range x.Nodes {
			if parts[i] = c.valuesOf(e); parts[i] == nil {
				return nil
			}
		}
		return func(f *Frame, dst []string) ([]string, error) {
			var err error
			for _, p := range parts {
				if dst, err = p(f, dst); err != nil {
					return dst, err
				}
			}
			return dst, nil
		}
	}
	if fa, ok := stringsFieldOf(n); ok {
		off := fa.off
		return func(f *Frame, dst []string) ([]string, error) {
			for _, s := range *(*[]string)(unsafe.Add(fa.base(f), off)) {
				if s != "" {
					dst = append(dst, s)
				}
			}
			return dst, nil
		}
	}
	if !isStr(n) {
		return nil
	}
	str := c.strOf(n)
	return func(f *Frame, dst []string) ([]string, error) {
		s, err := str(f)
		if err == nil && s != "" {
			dst = append(dst, s)
		}
		return dst, err
	}
}

// stringsFieldOf is fieldOf for a []string field of the event.
func stringsFieldOf(n ast.Node) (fieldAccess, bool) {
	names, err := memberNames(n)
	if err != nil || len(names) == 0 {
		return fieldAccess{}, false
	}
	if _, ok := envType.FieldByName(names[0]); !ok {
		return fieldAccess{}, false
	}
	off, t, ok := walkFields(eventType, 0, names)
	if !ok || t.Kind() != reflect.Slice || t.Elem().Kind() != reflect.String {
		return fieldAccess{}, false
	}
	return fieldAccess{off: off}, true
}

// native reports whether n's top node has a closure of its own (as opposed
// to a subtree handed whole to expr).
func (c *nativeCompiler) native(n ast.Node) bool {
	switch x := n.(type) {
	case *ast.BinaryNode:
		switch x.Operator {
		case "&&", "and", "||", "or":
			return true
		}
	case *ast.UnaryNode:
		return x.Operator == "!" || x.Operator == "not"
	}
	return c.boolLeaf(n) != nil
}

func kindOf(n ast.Node) reflect.Kind {
	if t := n.Type(); t != nil {
		return t.Kind()
	}
	return reflect.Invalid
}

func isStr(n ast.Node) bool { return kindOf(n) == reflect.String }

func isInt(n ast.Node) bool { k := kindOf(n); return k == reflect.Int || k == reflect.Int64 }

func (c *nativeCompiler) boolOf(n ast.Node) boolFn {
	switch x := n.(type) {
	case *ast.BoolNode:
		return constant(x.Value)
	case *ast.UnaryNode:
		if x.Operator == "!" || x.Operator == "not" {
			return map1(c.boolOf(x.Node), func(b bool) bool { return !b })
		}
	case *ast.BinaryNode:
		switch x.Operator {
		case "&&", "and":
			l, r := c.boolOf(x.Left), c.boolOf(x.Right)
			return func(f *Frame) (bool, error) {
				if b, err := l(f); !b || err != nil {
					return false, err
				}
				return r(f)
			}
		case "||", "or":
			l, r := c.boolOf(x.Left), c.boolOf(x.Right)
			return func(f *Frame) (bool, error) {
				if b, err := l(f); b || err != nil {
					return b, err
				}
				return r(f)
			}
		}
	}
	if leaf := c.boolLeaf(n); leaf != nil {
		return leaf()
	}
	return c.boolFallback(n)
}

// boolLeaf returns the builder of a native comparison or helper call, or
// nil when n is not one.
func (c *nativeCompiler) boolLeaf(n ast.Node) func() boolFn {
	switch x := n.(type) {
	case *ast.BinaryNode:
		l, r := x.Left, x.Right
		switch x.Operator {
		case "==", "!=":
			neq := x.Operator == "!="
			switch {
			case isStr(l) && isStr(r):
				return func() boolFn {
					return map2(c.strOf(l), c.strOf(r), func(a, b string) bool { return (a == b) != neq })
				}
			case isInt(l) && isInt(r):
				return func() boolFn { return c.intCmp(l, r, x.Operator) }
			case c.anyNative(l) && c.anyNative(r):
				// Fields values: expr's own equality (3 == 3.0, nil == nil).
				return func() boolFn {
					return map2(c.anyOf(l), c.anyOf(r), func(a, b any) bool { return runtime.Equal(a, b) != neq })
				}
			}
		case "<", ">", "<=", ">=":
			if isInt(l) && isInt(r) {
				return func() boolFn { return c.intCmp(l, r, x.Operator) }
			}
		case "in":
			arr, ok := r.(*ast.ArrayNode)
			if !ok {
				return nil
			}
			if isStr(l) {
				var list []string
				for _, e := range arr.Nodes {
					s, ok := e.(*ast.StringNode)
					if !ok {
						return nil
					}
					list = append(list, s.Value)
				}
				set := newStrSet(list)
				return func() boolFn { return map1(c.strOf(l), set.has) }
			}
			if isInt(l) {
				var set []int64
				for _, e := range arr.Nodes {
					i, ok := e.(*ast.IntegerNode)
					if !ok {
						return nil
					}
					set = append(set, int64(i.Value))
				}
				return func() boolFn { return map1(c.intOf(l), func(v int64) bool { return slices.Contains(set, v) }) }
			}
		case "contains", "startsWith", "endsWith":
			if !isStr(l) || !isStr(r) {
				return nil
			}
			op := map[string]func(string, string) bool{
				"contains": strings.Contains, "startsWith": strings.HasPrefix, "endsWith": strings.HasSuffix,
			}[x.Operator]
			return func() boolFn { return map2(c.strOf(l), c.strOf(r), op) }
		case "matches":
			s, ok := r.(*ast.StringNode)
			if !ok || !isStr(l) {
				return nil
			}
			re, err := regexp.Compile(s.Value)
			if err != nil {
				return nil
			}
			return func() boolFn { return map1(c.strOf(l), re.MatchString) }
		}
	case *ast.CallNode:
		return c.helperCall(x)
	}
	return nil
}

// helperCall compiles a call of one of Vigil's helpers whose constant
// arguments are literals.
func (c *nativeCompiler) helperCall(x *ast.CallNode) func() boolFn {
	id, ok := x.Callee.(*ast.IdentifierNode)
	if !ok || len(x.Arguments) == 0 || !isStr(x.Arguments[0]) {
		return nil
	}
	arg := x.Arguments[0]
	test := func(t func(string) bool) func() boolFn {
		return func() boolFn { return map1(c.strOf(arg), t) }
	}
	// testAddr parses the argument through the frame's memo of recent
	// addresses: an event's SrcIP and DstIP are tested by several rules.
	testAddr := func(t func(netip.Addr) bool) func() boolFn {
		return func() boolFn {
			v := c.strOf(arg)
			return func(f *Frame) (bool, error) {
				s, err := v(f)
				if err != nil {
					return false, err
				}
				a, ok := f.addr(s)
				return ok && t(a), nil
			}
		}
	}
	fn := c.fn // lookups are read at run time: a reload of them applies at once
	if len(x.Arguments) == 1 {
		switch id.Value {
		case "is_private":
			return testAddr(privateAddr)
		case "is_public":
			return testAddr(publicAddr)
		case "ti_ip", "ti_domain", "ti_url", "ti_hash":
			kind := tiKinds[id.Value]
			return test(func(s string) bool { return fn.lookups.TI(kind, s) })
		}
		return nil
	}
	if id.Value == "watchlist" && len(x.Arguments) == 2 && isStr(x.Arguments[1]) {
		name, ok := x.Arguments[0].(*ast.StringNode)
		if !ok {
			return nil
		}
		v := x.Arguments[1]
		return func() boolFn {
			return map1(c.strOf(v), func(s string) bool { return fn.lookups.InWatchlist(name.Value, s) })
		}
	}
	if len(x.Arguments) != 2 {
		return nil
	}
	k, isConst := x.Arguments[1].(*ast.StringNode)
	var list []string
	if arr, ok := x.Arguments[1].(*ast.ArrayNode); ok {
		for _, e := range arr.Nodes {
			s, ok := e.(*ast.StringNode)
			if !ok {
				return nil
			}
			list = append(list, s.Value)
		}
	}
	withConst := func(t func(s, k string) bool, k string) func() boolFn {
		if !isConst {
			return nil
		}
		return test(func(s string) bool { return t(s, k) })
	}
	switch id.Value {
	case "regex":
		if !isConst {
			return nil
		}
		re, err := c.fn.regex(k.Value)
		if err != nil {
			return nil
		}
		return test(re.match)
	case "cidr":
		if !isConst {
			return nil
		}
		pf, err := c.fn.prefix(k.Value)
		if err != nil {
			return nil
		}
		return testAddr(pf.Contains)
	case "icontains", "istartswith", "iendswith", "iequals":
		if !isConst {
			return nil
		}
		switch id.Value {
		case "icontains":
			return withConst(containsFold, lowerConst(k.Value))
		case "istartswith":
			return withConst(hasPrefixFold, lowerConst(k.Value))
		case "iendswith":
			return withConst(hasSuffixFold, lowerConst(k.Value))
		}
		return withConst(strings.EqualFold, k.Value)
	case "icontains_any", "iequals_any":
		if list == nil {
			return nil
		}
		return test(anyOfList(list, id.Value == "iequals_any"))
	}
	return nil
}

// tiKinds maps the ti_* helpers to their indicator kinds.
var tiKinds = map[string]string{"ti_ip": TIIP, "ti_domain": TIDomain, "ti_url": TIURL, "ti_hash": TIHash}

// lastField is last(split(s, sep)) for a non-empty sep.
func lastField(s, sep string) string {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[i+len(sep):]
	}
	return s
}

// anyOfList is icontains_any / iequals_any over a constant list.
func anyOfList(list []string, equal bool) func(string) bool {
	if !equal {
		list = slices.Clone(list)
		for i := range list {
			list[i] = lowerConst(list[i])
		}
	}
	loop := func(s string) bool {
		for _, k := range list {
			if equal && strings.EqualFold(s, k) || !equal && containsFold(s, k) {
				return true
			}
		}
		return false
	}
	ac := asciiAC(list)
	if equal || ac == nil {
		return loop
	}
	// One pass over s for all the literals instead of one per literal. The
	// automaton answers true on any non-ASCII byte (Unicode folding can
	// map one onto ASCII): the loop decides.
	return func(s string) bool {
		if !ac.contains(s) {
			return false
		}
		return isASCII(s) || loop(s)
	}
}

// asciiAC returns a case-folding automaton over lower-case ASCII literals,
// or nil when one is not.
func asciiAC(lits []string) *acMatcher {
	for _, l := range lits {
		if !isASCII(l) || l != strings.ToLower(l) {
			return nil
		}
	}
	return newAC(lits, true)
}

func (c *nativeCompiler) intCmp(l, r ast.Node, op string) boolFn {
	cmp := map[string]func(x, y int64) bool{
		"==": func(x, y int64) bool { return x == y },
		"!=": func(x, y int64) bool { return x != y },
		"<":  func(x, y int64) bool { return x < y },
		">":  func(x, y int64) bool { return x > y },
		"<=": func(x, y int64) bool { return x <= y },
		">=": func(x, y int64) bool { return x >= y },
	}[op]
	return map2(c.intOf(l), c.intOf(r), cmp)
}

func (c *nativeCompiler) strOf(n ast.Node) strFn {
	switch x := n.(type) {
	case *ast.StringNode:
		return constant(x.Value)
	case *ast.IdentifierNode, *ast.MemberNode:
		if fa, ok := fieldOf(n); ok && fa.kind == reflect.String {
			return fa.str()
		}
	case *ast.BuiltinNode:
		if len(x.Arguments) != 1 {
			break
		}
		a := x.Arguments[0]
		if id, ok := a.(*ast.IdentifierNode); ok && x.Name == "toJSON" && id.Value == "Fields" && c.allFields {
			// The whole record: a rule that reads it that way tends to
			// read it several times (vpn_login_success, three times per
			// condition), so the text is kept for the event.
			return func(f *Frame) (string, error) {
				if f.jsonGen != f.Env.gen || !f.jsonOK {
					b, err := appendToJSON(f.buf[:0], f.fields(true), 0)
					if err != nil {
						return "", err
					}
					f.buf, f.json, f.jsonGen, f.jsonOK = b, string(b), f.Env.gen, true
				}
				return f.json, nil
			}
		}
		if x.Name == "toJSON" && c.anyNative(a) {
			v := c.anyOf(a)
			return func(f *Frame) (string, error) {
				x, err := v(f)
				if err != nil {
					return "", err
				}
				f.buf, err = appendToJSON(f.buf[:0], x, 0) // expr's toJSON
				return string(f.buf), err
			}
		}
		// last(split(s, ".")): the text after the last separator (a file
		// extension), without building the list.
		if sp, ok := a.(*ast.BuiltinNode); ok && x.Name == "last" && sp.Name == "split" && len(sp.Arguments) == 2 && isStr(sp.Arguments[0]) {
			if sep, ok := sp.Arguments[1].(*ast.StringNode); ok && sep.Value != "" {
				return map1(c.strOf(sp.Arguments[0]), func(s string) string { return lastField(s, sep.Value) })
			}
		}
		if !isStr(a) {
			if x.Name == "string" && isInt(a) { // a port in a distinct value: DstIP + ":" + string(DstPort)
				return map1(c.intOf(a), func(v int64) string { return strconv.FormatInt(v, 10) })
			}
			if x.Name == "string" && c.anyNative(a) {
				return map1(c.anyOf(a), func(v any) string {
					if s, ok := v.(string); ok {
						return s
					}
					return fmt.Sprintf("%v", v) // expr's string()
				})
			}
			break
		}
		switch x.Name {
		case "lower":
			return map1(c.strOf(a), strings.ToLower)
		case "upper":
			return map1(c.strOf(a), strings.ToUpper)
		case "string":
			return c.strOf(a)
		}
	case *ast.BinaryNode:
		if x.Operator == "+" && isStr(x.Left) && isStr(x.Right) {
			return map2(c.strOf(x.Left), c.strOf(x.Right), func(a, b string) string { return a + b })
		}
	case *ast.ConditionalNode:
		// A key that depends on the event's kind: Type == "alert" ?
		// SrcIP : DstIP (aitm_proxy_signin, on every browser session).
		if isStr(x.Exp1) && isStr(x.Exp2) {
			cond, yes, no := c.boolOf(x.Cond), c.strOf(x.Exp1), c.strOf(x.Exp2)
			return func(f *Frame) (string, error) {
				b, err := cond(f)
				switch {
				case err != nil:
					return "", err
				case b:
					return yes(f)
				}
				return no(f)
			}
		}
	}
	return typed[string](c.fallback(n), n, "a string")
}

func (c *nativeCompiler) intOf(n ast.Node) intFn {
	switch n.(type) {
	case *ast.IntegerNode:
		return constant(int64(n.(*ast.IntegerNode).Value))
	case *ast.IdentifierNode, *ast.MemberNode:
		if fa, ok := fieldOf(n); ok {
			switch fa.kind {
			case reflect.Int:
				return fa.int()
			case reflect.Int64:
				return fa.int64()
			}
		}
	}
	any := c.fallback(n)
	return func(f *Frame) (int64, error) {
		v, err := any(f)
		if err != nil {
			return 0, err
		}
		switch i := v.(type) {
		case int:
			return int64(i), nil
		case int64:
			return i, nil
		}
		return 0, fmt.Errorf("%s is %T, not an integer", n, v)
	}
}

func (c *nativeCompiler) boolFallback(n ast.Node) boolFn {
	return typed[bool](c.fallback(n), n, "a bool")
}

// typed asserts the type of a subtree's value.
func typed[T any](a anyFn, n ast.Node, what string) fn[T] {
	return func(f *Frame) (T, error) {
		var zero T
		v, err := a(f)
		if err != nil {
			return zero, err
		}
		t, ok := v.(T)
		if !ok {
			return zero, fmt.Errorf("%s is %T, not %s", n, v, what)
		}
		return t, nil
	}
}

// errChainNil ends an optional chain (a?.b.c with a nil): the chain's
// value is nil.
var errChainNil = errors.New("nil in optional chain")

// anyNative reports whether anyOf has a closure of its own for n: source
// record lookups (Fields.a?.b ?? Fields.c ?? "") and constants.
func (c *nativeCompiler) anyNative(n ast.Node) bool {
	switch x := n.(type) {
	case *ast.StringNode, *ast.IntegerNode, *ast.BoolNode, *ast.NilNode:
		return true
	case *ast.IdentifierNode:
		return x.Value == "Fields"
	case *ast.ChainNode:
		return c.anyNative(x.Node)
	case *ast.MemberNode:
		_, isStr := x.Property.(*ast.StringNode)
		return isStr && !x.Method && c.anyNative(x.Node)
	case *ast.BinaryNode:
		return x.Operator == "??" && c.anyNative(x.Left) && c.anyNative(x.Right)
	}
	return false
}

// anyOf compiles a value of any type; what anyNative refuses runs in expr.
func (c *nativeCompiler) anyOf(n ast.Node) anyFn {
	if !c.anyNative(n) {
		return c.fallback(n)
	}
	switch x := n.(type) {
	case *ast.StringNode:
		return constant[any](x.Value)
	case *ast.IntegerNode:
		return constant[any](x.Value)
	case *ast.BoolNode:
		return constant[any](x.Value)
	case *ast.NilNode:
		return constant[any](nil)
	case *ast.IdentifierNode: // Fields
		all := c.allFields
		return func(f *Frame) (any, error) { return f.fields(all), nil }
	case *ast.ChainNode:
		in := c.anyOf(x.Node)
		return func(f *Frame) (any, error) {
			v, err := in(f)
			if err == errChainNil {
				return nil, nil
			}
			return v, err
		}
	case *ast.MemberNode:
		obj := c.anyOf(x.Node)
		key, optional := x.Property.(*ast.StringNode).Value, x.Optional
		if keys, opt, ok := memberChain(x); ok && !c.allFields {
			return readPath(keys, opt, c.member(obj, key, optional))
		}
		return c.member(obj, key, optional)
	case *ast.BinaryNode: // ??
		l, r := c.anyOf(x.Left), c.anyOf(x.Right)
		return func(f *Frame) (any, error) {
			v, err := l(f)
			if err != nil || !runtime.IsNil(v) {
				return v, err
			}
			return r(f)
		}
	}
	return c.fallback(n)
}

// member reads key of the map obj returns, as expr does: a missing key is
// nil, and a nil object ends an optional chain (a?.key).
func (c *nativeCompiler) member(obj anyFn, key string, optional bool) anyFn {
	return func(f *Frame) (any, error) {
		o, err := obj(f)
		if err != nil {
			return nil, err
		}
		if m, ok := o.(map[string]any); ok {
			return m[key], nil
		}
		if optional && runtime.IsNil(o) {
			return nil, errChainNil
		}
		return nil, fmt.Errorf("cannot fetch %s from %T", key, o)
	}
}

// memberChain returns the keys of a member chain read from Fields
// (Fields.properties?.riskState: [properties riskState], optional
// [false true]).
func memberChain(n ast.Node) (keys []string, optional []bool, ok bool) {
	for {
		switch x := n.(type) {
		case *ast.MemberNode:
			s, isStr := x.Property.(*ast.StringNode)
			if !isStr || x.Method {
				return nil, nil, false
			}
			keys, optional = append(keys, s.Value), append(optional, x.Optional)
			n = x.Node
		case *ast.IdentifierNode:
			if x.Value != "Fields" {
				return nil, nil, false
			}
			slices.Reverse(keys)
			slices.Reverse(optional)
			return keys, optional, true
		default:
			return nil, nil, false
		}
	}
}

// readPath reads a Fields path from the record's FieldView, converting
// only the value it ends at; it means what the member chain means on the
// decoded Fields (slow, which it falls back to when the record has no
// view: Fields already decoded, invalid UTF-8, a path not indexed).
func readPath(keys []string, optional []bool, slow anyFn) anyFn {
	return func(f *Frame) (any, error) {
		v := f.record()
		if v == nil {
			return slow(f)
		}
		cur := v.Root()
		for i, k := range keys {
			switch cur.Kind() {
			case event.FieldObject:
				if cur = v.Member(cur, k); cur.Kind() == event.FieldUnknown {
					return slow(f)
				}
			case event.FieldMissing:
				if optional[i] {
					return nil, errChainNil
				}
				return nil, fmt.Errorf("cannot fetch %s from %T", k, nil)
			default:
				return nil, fmt.Errorf("cannot fetch %s from %T", k, cur.Value())
			}
		}
		return cur.Value(), nil
	}
}

// fallback compiles the subtree as a program of its own, run by the
// frame's VM (after decoding Fields, when the subtree reads them).
func (c *nativeCompiler) fallback(n ast.Node) anyFn {
	p, err := expr.Compile(n.String(), c.opts...)
	if err != nil {
		if c.err == nil {
			c.err = fmt.Errorf("subtree %s: %w", n, err)
		}
		return constant[any](nil)
	}
	c.fallbacks++
	if !readsFields(n) {
		return func(f *Frame) (any, error) { return f.VM.Run(p, f.Env) }
	}
	all := c.allFields
	return func(f *Frame) (any, error) {
		f.fields(all)
		return f.VM.Run(p, f.Env)
	}
}

func readsFields(n ast.Node) bool {
	found := false
	ast.Walk(&n, visitor(func(n ast.Node) {
		if id, ok := n.(*ast.IdentifierNode); ok && id.Value == "Fields" {
			found = true
		}
	}))
	return found
}

// A field read in place: the Env's own fields (Category, Outcome) or the
// event's, at an offset computed once by reflect from the struct layout.
type fieldAccess struct {
	own  bool // in Env rather than in *Env.Event
	off  uintptr
	kind reflect.Kind
}

var (
	envType     = reflect.TypeFor[Env]()
	eventType   = reflect.TypeFor[event.Event]()
	errNotField = errors.New("not a field")
)

// fieldOf resolves an identifier or a chain of constant member accesses
// (Process.Name) to a string or integer field, as expr resolves them on the
// Env: the Env's own fields first, then the promoted fields of the event.
func fieldOf(n ast.Node) (fieldAccess, bool) {
	names, err := memberNames(n)
	if err != nil || len(names) == 0 {
		return fieldAccess{}, false
	}
	sf, ok := envType.FieldByName(names[0])
	if !ok || sf.Name == "Event" {
		return fieldAccess{}, false
	}
	fa := fieldAccess{own: len(sf.Index) == 1}
	t := sf.Type
	if fa.own {
		fa.off = sf.Offset
	} else {
		ef, ok := eventType.FieldByName(names[0])
		if !ok || len(ef.Index) != 1 {
			return fieldAccess{}, false
		}
		fa.off, t = ef.Offset, ef.Type
	}
	if fa.off, t, ok = walkFields(t, fa.off, names[1:]); !ok {
		return fieldAccess{}, false
	}
	fa.kind = t.Kind()
	switch fa.kind {
	case reflect.String, reflect.Int, reflect.Int64:
		return fa, true
	}
	return fieldAccess{}, false
}

// walkFields follows the exported, non-embedded fields names from a value
// of type t at offset off: the offset and type of the last one.
func walkFields(t reflect.Type, off uintptr, names []string) (uintptr, reflect.Type, bool) {
	for _, name := range names {
		if t.Kind() != reflect.Struct {
			return 0, nil, false
		}
		sf, ok := t.FieldByName(name)
		if !ok || len(sf.Index) != 1 || !sf.IsExported() {
			return 0, nil, false
		}
		off += sf.Offset
		t = sf.Type
	}
	return off, t, true
}

func memberNames(n ast.Node) ([]string, error) {
	switch x := n.(type) {
	case *ast.IdentifierNode:
		if x.Value == "" || x.Value[0] == '$' {
			return nil, errNotField
		}
		return []string{x.Value}, nil
	case *ast.MemberNode:
		s, ok := x.Property.(*ast.StringNode)
		if !ok || x.Optional || x.Method {
			return nil, errNotField
		}
		base, err := memberNames(x.Node)
		if err != nil {
			return nil, err
		}
		return append(base, s.Value), nil
	}
	return nil, errNotField
}

// base returns the address fields are read at; the event pointer is
// checked because an Env without an event is a caller's bug that must not
// read wild memory.
func (fa fieldAccess) base(f *Frame) unsafe.Pointer {
	if fa.own {
		return unsafe.Pointer(f.Env)
	}
	if f.Env.Event == nil {
		panic("rules: native condition run on an Env without an event")
	}
	return unsafe.Pointer(f.Env.Event)
}

func (fa fieldAccess) str() strFn {
	off := fa.off
	if fa.own {
		return func(f *Frame) (string, error) { return *(*string)(unsafe.Add(unsafe.Pointer(f.Env), off)), nil }
	}
	return func(f *Frame) (string, error) { return *(*string)(unsafe.Add(fa.base(f), off)), nil }
}

func (fa fieldAccess) int() intFn {
	off := fa.off
	return func(f *Frame) (int64, error) { return int64(*(*int)(unsafe.Add(fa.base(f), off))), nil }
}

func (fa fieldAccess) int64() intFn {
	off := fa.off
	return func(f *Frame) (int64, error) { return *(*int64)(unsafe.Add(fa.base(f), off)), nil }
}

// strSet is a constant in-list of strings (Source in [...], Process.Name
// in [...]) bucketed by length: a lookup compares the few members of the
// value's length instead of hashing the value, which a map does first
// (in-lists were a tenth of the library's condition time as maps).
type strSet [][]string

func newStrSet(list []string) strSet {
	var set strSet
	for _, s := range list {
		for len(set) <= len(s) {
			set = append(set, nil)
		}
		if !slices.Contains(set[len(s)], s) {
			set[len(s)] = append(set[len(s)], s)
		}
	}
	return set
}

func (set strSet) has(s string) bool {
	if len(s) >= len(set) {
		return false
	}
	for _, m := range set[len(s)] {
		if m == s {
			return true
		}
	}
	return false
}
