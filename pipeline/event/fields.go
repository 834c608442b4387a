package event

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// FieldPaths is the set of paths into Raw that a rule set reads through
// Fields (Fields.properties.riskState, Fields.LogonType). Decoding only
// those paths instead of the whole record is what keeps Fields cheap: the
// rules of a typical library read a few keys of records that carry dozens,
// and encoding/json into map[string]any was the largest cost of the
// correlate stage after the expression VM.
//
// A node either wants its whole value (a leaf: the rule reads the value
// itself) or only some of its members (an inner node: the rule reads
// Fields.properties.x, never Fields.properties as a whole). The zero value
// wants nothing; All wants everything. A FieldPaths is built once, when
// rules are compiled, and read concurrently afterwards.
type FieldPaths struct {
	whole    bool
	children map[string]*FieldPaths

	// A FieldView's slots: numbered once, on first use (number).
	numbered sync.Once
	slots    int32     // on the root: how many nodes
	id, end  int32     // the node's slot; its descendants' are [id+1, end)
	keys     [8]uint64 // children's keyHash bits (FieldView.object)
}

// AllFields returns paths that select the whole record, for rules that read
// Fields in a way no path describes (Fields passed to a function, indexed
// by a computed key).
func AllFields() *FieldPaths { return &FieldPaths{whole: true} }

// Add records that the value at path is read as a whole. An empty path
// selects everything.
func (p *FieldPaths) Add(path ...string) {
	n := p
	for _, k := range path {
		if n.whole {
			return
		}
		if n.children == nil {
			n.children = map[string]*FieldPaths{}
		}
		c := n.children[k]
		if c == nil {
			c = &FieldPaths{}
			n.children[k] = c
		}
		n = c
	}
	n.whole = true
	n.children = nil
}

// Merge adds every path of q to p.
func (p *FieldPaths) Merge(q *FieldPaths) {
	if q == nil {
		return
	}
	if q.whole {
		p.whole, p.children = true, nil
		return
	}
	if p.whole {
		return
	}
	for k, qc := range q.children {
		if p.children == nil {
			p.children = map[string]*FieldPaths{}
		}
		pc := p.children[k]
		if pc == nil {
			pc = &FieldPaths{}
			p.children[k] = pc
		}
		pc.Merge(qc)
	}
}

// All reports whether p selects the whole record.
func (p *FieldPaths) All() bool { return p != nil && p.whole }

// Empty reports whether p selects nothing.
func (p *FieldPaths) Empty() bool { return p == nil || (!p.whole && len(p.children) == 0) }

// String lists the paths, sorted, for logs and tests: "a.b,c" or "*".
func (p *FieldPaths) String() string {
	if p == nil {
		return ""
	}
	if p.whole {
		return "*"
	}
	var out []string
	var walk func(prefix string, n *FieldPaths)
	walk = func(prefix string, n *FieldPaths) {
		if n.whole {
			out = append(out, prefix)
			return
		}
		for k, c := range n.children {
			walk(prefix+"."+k, c)
		}
	}
	for k, c := range p.children {
		walk(k, c)
	}
	slices.Sort(out)
	return strings.Join(out, ",")
}

// DecodeFieldPaths fills Fields with the parts of Raw that paths select:
// every selected path reads the same value as it would from the fully
// decoded record, and unselected members are absent. nil or All paths
// decode everything (DecodeFields). Decoding again with the same paths is
// free; with other paths, or DecodeFields after it, decodes again.
func (e *Event) DecodeFieldPaths(paths *FieldPaths) error {
	if paths == nil || paths.whole {
		return e.DecodeFields()
	}
	if e.Fields != nil && (e.fieldsFrom == nil || e.fieldsFrom == paths) {
		return nil
	}
	if !utf8.Valid(e.Raw) {
		// encoding/json replaces invalid bytes with U+FFFD; take its
		// path so rules see the same strings (rare: normalize emits UTF-8).
		return e.DecodeFields()
	}
	e.fieldsFrom = paths
	e.Fields = map[string]any{}
	if len(e.Raw) == 0 || len(paths.children) == 0 {
		return nil
	}
	// One copy of the record: every string in Fields then shares it
	// instead of a copy each, and none aliases Raw's buffer.
	doc := gjson.Parse(string(e.Raw))
	if !doc.IsObject() {
		return errors.New("event: raw record is not a JSON object")
	}
	selectMembers(doc, paths, e.Fields)
	return nil
}

// selectMembers copies the members of obj that paths select into dst.
// The whole object is scanned: with a key given twice the last one wins,
// as in encoding/json.
func selectMembers(obj gjson.Result, paths *FieldPaths, dst map[string]any) {
	obj.ForEach(func(k, v gjson.Result) bool {
		c := paths.children[k.Str]
		switch {
		case c == nil:
		case !c.whole && v.IsObject():
			m := map[string]any{}
			selectMembers(v, c, m)
			dst[k.Str] = m
		default:
			// A leaf, or a value that is not an object where the rules
			// look inside one (type drift): keep it whole, as the full
			// decode would, so the rule sees the same value.
			dst[k.Str] = v.Value()
		}
		return true
	})
}
