package rules

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
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
}

// fields decodes the event's source record (once per event) and returns it.
func (f *Frame) fields(all bool) map[string]any {
	ev := f.Env.Event
	if all {
		_ = ev.DecodeFields() // a bad raw record leaves Fields empty: conditions see no fields
	} else {
		_ = ev.DecodeFieldPaths(f.Paths)
	}
	return ev.Fields
}

// Eval runs the condition on the frame's event. An error means what it
// means for the VM: the condition failed (a Fields value of an unexpected
// type), and the step does not match.
func (n *Native) Eval(f *Frame) (bool, error) { return n.fn(f) }

type (
	boolFn func(*Frame) (bool, error)
	strFn  func(*Frame) (string, error)
	intFn  func(*Frame) (int64, error)
	anyFn  func(*Frame) (any, error)
)

// nativeCompiler compiles one condition.
type nativeCompiler struct {
	fn        *funcs
	allFields bool // the condition reads the whole record (toJSON(Fields))
	opts      []expr.Option // the condition's expr options, for subtrees
	fallbacks int
}

// compileNative compiles a type-checked, unoptimized condition tree. It
// returns nil when nothing would be gained (the whole condition would be
// one expr subtree) or a subtree does not compile on its own.
func compileNative(root ast.Node, fn *funcs, opts []expr.Option, allFields bool) *Native {
	c := &nativeCompiler{fn: fn, opts: opts, allFields: allFields}
	if !c.native(root) {
		return nil
	}
	f, err := c.boolOf(root)
	if err != nil {
		return nil
	}
	return &Native{fn: f, Fallbacks: c.fallbacks}
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

func (c *nativeCompiler) boolOf(n ast.Node) (boolFn, error) {
	switch x := n.(type) {
	case *ast.BoolNode:
		v := x.Value
		return func(*Frame) (bool, error) { return v, nil }, nil
	case *ast.UnaryNode:
		if x.Operator == "!" || x.Operator == "not" {
			in, err := c.boolOf(x.Node)
			if err != nil {
				return nil, err
			}
			return func(f *Frame) (bool, error) {
				b, err := in(f)
				return !b, err
			}, nil
		}
	case *ast.BinaryNode:
		switch x.Operator {
		case "&&", "and", "||", "or":
			l, err := c.boolOf(x.Left)
			if err != nil {
				return nil, err
			}
			r, err := c.boolOf(x.Right)
			if err != nil {
				return nil, err
			}
			if x.Operator == "&&" || x.Operator == "and" {
				return func(f *Frame) (bool, error) {
					if b, err := l(f); !b || err != nil {
						return false, err
					}
					return r(f)
				}, nil
			}
			return func(f *Frame) (bool, error) {
				if b, err := l(f); b || err != nil {
					return b, err
				}
				return r(f)
			}, nil
		}
	}
	if leaf := c.boolLeaf(n); leaf != nil {
		return leaf()
	}
	return c.boolFallback(n)
}

// boolLeaf returns the builder of a native comparison or helper call, or
// nil when n is not one.
func (c *nativeCompiler) boolLeaf(n ast.Node) func() (boolFn, error) {
	switch x := n.(type) {
	case *ast.BinaryNode:
		l, r := x.Left, x.Right
		switch x.Operator {
		case "==", "!=":
			neq := x.Operator == "!="
			switch {
			case isStr(l) && isStr(r):
				return func() (boolFn, error) {
					a, b, err := c.strPair(l, r)
					if err != nil {
						return nil, err
					}
					return func(f *Frame) (bool, error) {
						x, err := a(f)
						if err != nil {
							return false, err
						}
						y, err := b(f)
						return (x == y) != neq, err
					}, nil
				}
			case isInt(l) && isInt(r):
				return func() (boolFn, error) { return c.intCmp(l, r, x.Operator) }
			case c.anyNative(l) && c.anyNative(r):
				// Fields values: expr's own equality (3 == 3.0, nil == nil).
				return func() (boolFn, error) {
					a, err := c.anyOf(l)
					if err != nil {
						return nil, err
					}
					b, err := c.anyOf(r)
					if err != nil {
						return nil, err
					}
					return func(f *Frame) (bool, error) {
						x, err := a(f)
						if err != nil {
							return false, err
						}
						y, err := b(f)
						return runtime.Equal(x, y) != neq, err
					}, nil
				}
			}
		case "<", ">", "<=", ">=":
			if isInt(l) && isInt(r) {
				return func() (boolFn, error) { return c.intCmp(l, r, x.Operator) }
			}
		case "in":
			arr, ok := r.(*ast.ArrayNode)
			if !ok {
				return nil
			}
			if isStr(l) {
				set := map[string]struct{}{}
				for _, e := range arr.Nodes {
					s, ok := e.(*ast.StringNode)
					if !ok {
						return nil
					}
					set[s.Value] = struct{}{}
				}
				return func() (boolFn, error) {
					return c.strTest(l, func(s string) bool { _, in := set[s]; return in })
				}
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
				return func() (boolFn, error) {
					a, err := c.intOf(l)
					if err != nil {
						return nil, err
					}
					return func(f *Frame) (bool, error) {
						v, err := a(f)
						return slices.Contains(set, v), err
					}, nil
				}
			}
			return nil
		case "contains", "startsWith", "endsWith":
			if !isStr(l) || !isStr(r) {
				return nil
			}
			op := map[string]func(string, string) bool{
				"contains": strings.Contains, "startsWith": strings.HasPrefix, "endsWith": strings.HasSuffix,
			}[x.Operator]
			return func() (boolFn, error) { return c.strTest2(l, r, op) }
		case "matches":
			s, ok := r.(*ast.StringNode)
			if !ok || !isStr(l) {
				return nil
			}
			re, err := regexp.Compile(s.Value)
			if err != nil {
				return nil
			}
			return func() (boolFn, error) { return c.strTest(l, re.MatchString) }
		}
	case *ast.CallNode:
		return c.helperCall(x)
	}
	return nil
}

// helperCall compiles a call of one of Vigil's helpers whose constant
// arguments are literals.
func (c *nativeCompiler) helperCall(x *ast.CallNode) func() (boolFn, error) {
	id, ok := x.Callee.(*ast.IdentifierNode)
	if !ok || len(x.Arguments) == 0 || !isStr(x.Arguments[0]) {
		return nil
	}
	arg := x.Arguments[0]
	constStr := func(i int) (string, bool) {
		if i >= len(x.Arguments) {
			return "", false
		}
		s, ok := x.Arguments[i].(*ast.StringNode)
		if !ok {
			return "", false
		}
		return s.Value, true
	}
	constList := func(i int) ([]string, bool) {
		if i >= len(x.Arguments) {
			return nil, false
		}
		arr, ok := x.Arguments[i].(*ast.ArrayNode)
		if !ok {
			return nil, false
		}
		out := make([]string, len(arr.Nodes))
		for j, e := range arr.Nodes {
			s, ok := e.(*ast.StringNode)
			if !ok {
				return nil, false
			}
			out[j] = s.Value
		}
		return out, true
	}
	one := func(test func(string) bool) func() (boolFn, error) {
		if len(x.Arguments) != 1 {
			return nil
		}
		return func() (boolFn, error) { return c.strTest(arg, test) }
	}
	withConst := func(test func(s, k string) bool, prep func(string) string) func() (boolFn, error) {
		k, ok := constStr(1)
		if !ok || len(x.Arguments) != 2 {
			return nil
		}
		k = prep(k)
		return func() (boolFn, error) { return c.strTest(arg, func(s string) bool { return test(s, k) }) }
	}
	same := func(s string) string { return s }
	switch id.Value {
	case "is_private":
		return one(isPrivate)
	case "is_public":
		return one(isPublic)
	case "regex":
		p, ok := constStr(1)
		if !ok || len(x.Arguments) != 2 {
			return nil
		}
		re, err := c.fn.regex(p)
		if err != nil {
			return nil
		}
		return func() (boolFn, error) { return c.strTest(arg, re.match) }
	case "icontains":
		return withConst(containsFold, lowerConst)
	case "istartswith":
		return withConst(hasPrefixFold, lowerConst)
	case "iendswith":
		return withConst(hasSuffixFold, lowerConst)
	case "iequals":
		return withConst(strings.EqualFold, same)
	case "icontains_any", "iequals_any":
		list, ok := constList(1)
		if !ok || len(x.Arguments) != 2 {
			return nil
		}
		if id.Value == "icontains_any" {
			for i := range list {
				list[i] = lowerConst(list[i])
			}
		}
		eq := id.Value == "iequals_any"
		loop := func(s string) bool {
			for _, k := range list {
				if eq && strings.EqualFold(s, k) || !eq && containsFold(s, k) {
					return true
				}
			}
			return false
		}
		test := loop
		if ac := asciiAC(list); !eq && ac != nil {
			// One pass over s for all the literals instead of one per
			// literal. The automaton answers true on any non-ASCII byte
			// (Unicode folding can map one onto ASCII): the loop decides.
			test = func(s string) bool {
				if !ac.contains(s) {
					return false
				}
				return isASCII(s) || loop(s)
			}
		}
		return func() (boolFn, error) { return c.strTest(arg, test) }
	case "cidr":
		p, ok := constStr(1)
		if !ok || len(x.Arguments) != 2 {
			return nil
		}
		pf, err := c.fn.prefix(p)
		if err != nil {
			return nil
		}
		return func() (boolFn, error) {
			return c.strTest(arg, func(s string) bool {
				a, err := netip.ParseAddr(strings.TrimSpace(s))
				return err == nil && pf.Contains(a.Unmap())
			})
		}
	}
	return nil
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

func (c *nativeCompiler) strTest(n ast.Node, test func(string) bool) (boolFn, error) {
	a, err := c.strOf(n)
	if err != nil {
		return nil, err
	}
	return func(f *Frame) (bool, error) {
		s, err := a(f)
		if err != nil {
			return false, err
		}
		return test(s), nil
	}, nil
}

func (c *nativeCompiler) strTest2(l, r ast.Node, test func(string, string) bool) (boolFn, error) {
	a, b, err := c.strPair(l, r)
	if err != nil {
		return nil, err
	}
	return func(f *Frame) (bool, error) {
		x, err := a(f)
		if err != nil {
			return false, err
		}
		y, err := b(f)
		if err != nil {
			return false, err
		}
		return test(x, y), nil
	}, nil
}

func (c *nativeCompiler) strPair(l, r ast.Node) (strFn, strFn, error) {
	a, err := c.strOf(l)
	if err != nil {
		return nil, nil, err
	}
	b, err := c.strOf(r)
	return a, b, err
}

func (c *nativeCompiler) intCmp(l, r ast.Node, op string) (boolFn, error) {
	a, err := c.intOf(l)
	if err != nil {
		return nil, err
	}
	b, err := c.intOf(r)
	if err != nil {
		return nil, err
	}
	var cmp func(x, y int64) bool
	switch op {
	case "==":
		cmp = func(x, y int64) bool { return x == y }
	case "!=":
		cmp = func(x, y int64) bool { return x != y }
	case "<":
		cmp = func(x, y int64) bool { return x < y }
	case ">":
		cmp = func(x, y int64) bool { return x > y }
	case "<=":
		cmp = func(x, y int64) bool { return x <= y }
	case ">=":
		cmp = func(x, y int64) bool { return x >= y }
	}
	return func(f *Frame) (bool, error) {
		x, err := a(f)
		if err != nil {
			return false, err
		}
		y, err := b(f)
		return cmp(x, y), err
	}, nil
}

func (c *nativeCompiler) strOf(n ast.Node) (strFn, error) {
	switch x := n.(type) {
	case *ast.StringNode:
		v := x.Value
		return func(*Frame) (string, error) { return v, nil }, nil
	case *ast.IdentifierNode, *ast.MemberNode:
		if fa, ok := fieldOf(n); ok && fa.kind == reflect.String {
			return fa.str(), nil
		}
	case *ast.BuiltinNode:
		if x.Name == "string" && len(x.Arguments) == 1 && !isStr(x.Arguments[0]) && c.anyNative(x.Arguments[0]) {
			a, err := c.anyOf(x.Arguments[0])
			if err != nil {
				return nil, err
			}
			return func(f *Frame) (string, error) {
				v, err := a(f)
				if s, ok := v.(string); ok || err != nil {
					return s, err
				}
				return fmt.Sprintf("%v", v), nil // expr's string()
			}, nil
		}
		if len(x.Arguments) == 1 && isStr(x.Arguments[0]) {
			var conv func(string) string
			switch x.Name {
			case "lower":
				conv = strings.ToLower
			case "upper":
				conv = strings.ToUpper
			case "string":
				conv = func(s string) string { return s }
			}
			if conv != nil {
				a, err := c.strOf(x.Arguments[0])
				if err != nil {
					return nil, err
				}
				return func(f *Frame) (string, error) {
					s, err := a(f)
					return conv(s), err
				}, nil
			}
		}
	case *ast.BinaryNode:
		if x.Operator == "+" && isStr(x.Left) && isStr(x.Right) {
			a, b, err := c.strPair(x.Left, x.Right)
			if err != nil {
				return nil, err
			}
			return func(f *Frame) (string, error) {
				s, err := a(f)
				if err != nil {
					return "", err
				}
				t, err := b(f)
				return s + t, err
			}, nil
		}
	}
	any, err := c.fallback(n)
	if err != nil {
		return nil, err
	}
	return func(f *Frame) (string, error) {
		v, err := any(f)
		if err != nil {
			return "", err
		}
		s, ok := v.(string)
		if !ok {
			return "", fmt.Errorf("%s is %T, not a string", n, v)
		}
		return s, nil
	}, nil
}

func (c *nativeCompiler) intOf(n ast.Node) (intFn, error) {
	switch x := n.(type) {
	case *ast.IntegerNode:
		v := int64(x.Value)
		return func(*Frame) (int64, error) { return v, nil }, nil
	case *ast.IdentifierNode, *ast.MemberNode:
		if fa, ok := fieldOf(n); ok {
			switch fa.kind {
			case reflect.Int:
				return fa.int(), nil
			case reflect.Int64:
				return fa.int64(), nil
			}
		}
	}
	any, err := c.fallback(n)
	if err != nil {
		return nil, err
	}
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
	}, nil
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
func (c *nativeCompiler) anyOf(n ast.Node) (anyFn, error) {
	if !c.anyNative(n) {
		return c.fallback(n)
	}
	switch x := n.(type) {
	case *ast.StringNode:
		v := any(x.Value)
		return func(*Frame) (any, error) { return v, nil }, nil
	case *ast.IntegerNode:
		v := any(x.Value)
		return func(*Frame) (any, error) { return v, nil }, nil
	case *ast.BoolNode:
		v := any(x.Value)
		return func(*Frame) (any, error) { return v, nil }, nil
	case *ast.NilNode:
		return func(*Frame) (any, error) { return nil, nil }, nil
	case *ast.IdentifierNode: // Fields
		all := c.allFields
		return func(f *Frame) (any, error) { return f.fields(all), nil }, nil
	case *ast.ChainNode:
		in, err := c.anyOf(x.Node)
		if err != nil {
			return nil, err
		}
		return func(f *Frame) (any, error) {
			v, err := in(f)
			if err == errChainNil {
				return nil, nil
			}
			return v, err
		}, nil
	case *ast.MemberNode:
		obj, err := c.anyOf(x.Node)
		if err != nil {
			return nil, err
		}
		key, optional := x.Property.(*ast.StringNode).Value, x.Optional
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
		}, nil
	case *ast.BinaryNode: // ??
		l, err := c.anyOf(x.Left)
		if err != nil {
			return nil, err
		}
		r, err := c.anyOf(x.Right)
		if err != nil {
			return nil, err
		}
		return func(f *Frame) (any, error) {
			v, err := l(f)
			if err != nil || !runtime.IsNil(v) {
				return v, err
			}
			return r(f)
		}, nil
	}
	return c.fallback(n)
}

func (c *nativeCompiler) boolFallback(n ast.Node) (boolFn, error) {
	any, err := c.fallback(n)
	if err != nil {
		return nil, err
	}
	return func(f *Frame) (bool, error) {
		v, err := any(f)
		if err != nil {
			return false, err
		}
		b, ok := v.(bool)
		if !ok {
			return false, fmt.Errorf("%s is %T, not a bool", n, v)
		}
		return b, nil
	}, nil
}

// fallback compiles the subtree as a program of its own, run by the
// frame's VM.
func (c *nativeCompiler) fallback(n ast.Node) (anyFn, error) {
	p, err := expr.Compile(n.String(), c.opts...)
	if err != nil {
		return nil, fmt.Errorf("subtree %s: %w", n, err)
	}
	c.fallbacks++
	if readsFields(n) {
		all := c.allFields
		return func(f *Frame) (any, error) {
			f.fields(all)
			return f.VM.Run(p, f.Env)
		}, nil
	}
	return func(f *Frame) (any, error) { return f.VM.Run(p, f.Env) }, nil
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
	for _, name := range names[1:] {
		if t.Kind() != reflect.Struct {
			return fieldAccess{}, false
		}
		sf, ok := t.FieldByName(name)
		if !ok || len(sf.Index) != 1 || !sf.IsExported() {
			return fieldAccess{}, false
		}
		fa.off += sf.Offset
		t = sf.Type
	}
	fa.kind = t.Kind()
	switch fa.kind {
	case reflect.String, reflect.Int, reflect.Int64:
		return fa, true
	}
	return fieldAccess{}, false
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
