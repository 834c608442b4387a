package event

import (
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// FieldView reads a record's Fields at a rule set's paths without building
// Fields: one walk over Raw notes where each selected value lies, and a
// read converts only the value it returns. Decoding into maps was most of
// what a Fields read cost (a sign-in's four risk paths: ~4.7 µs, of which
// the maps and the values of members no condition reached were half), and
// a condition usually stops at the first of its paths.
//
// A view is reused for event after event by one goroutine: Reset it when
// the event changes. What a view returns is what the same path reads in
// the Fields that DecodeFieldPaths fills (TestFieldViewMatchesFields).
type FieldView struct {
	paths *FieldPaths
	doc   string // the record, copied once: strings read share it
	slots []fieldSlot
	gen   uint32
	state uint8 // viewUnread, viewIndexed or viewMaps
}

const (
	viewUnread = iota
	viewIndexed
	viewMaps // the record needs the map decoding (see Index)
)

type fieldSlot struct {
	gen uint32 // the view's gen when the value was seen; else absent
	r   gjson.Result
}

// Reset forgets the previous event.
func (v *FieldView) Reset() {
	v.state = viewUnread
	v.doc = ""
}

// Index walks raw once for paths, unless it has done so since Reset. It
// returns false when the reads must go through Fields instead: paths
// select the whole record, or raw is not valid UTF-8 or not an object
// (DecodeFieldPaths takes encoding/json's path for those, and a view
// would read other strings).
func (v *FieldView) Index(raw []byte, paths *FieldPaths) bool {
	switch v.state {
	case viewIndexed:
		if v.paths == paths {
			return true
		}
	case viewMaps:
		return false
	}
	if paths == nil || paths.whole || !utf8.Valid(raw) {
		v.state = viewMaps
		return false
	}
	if n := paths.number(); len(v.slots) < n {
		v.slots = make([]fieldSlot, n)
	}
	v.gen++ // every slot of an earlier walk is now absent
	if v.gen == 0 {
		clear(v.slots)
		v.gen = 1
	}
	v.paths = paths
	v.doc = string(raw)
	doc := gjson.Parse(v.doc)
	if len(raw) > 0 && !doc.IsObject() {
		v.state = viewMaps
		return false
	}
	v.state = viewIndexed
	v.walk(doc, paths)
	return true
}

// walk notes the members of obj that node selects, descending into the
// objects it selects members of. With a key given twice the last one wins,
// as in encoding/json: an earlier value and what was noted inside it are
// forgotten.
func (v *FieldView) walk(obj gjson.Result, node *FieldPaths) {
	obj.ForEach(func(k, val gjson.Result) bool {
		c := node.children[k.Str]
		if c == nil {
			return true
		}
		s := &v.slots[c.id]
		if s.gen == v.gen { // a duplicate key
			for i := c.id + 1; i < c.end; i++ {
				v.slots[i].gen = 0
			}
		}
		s.gen, s.r = v.gen, val
		if !c.whole && val.IsObject() {
			v.walk(val, c)
		}
		return true
	})
}

// FieldKind says what a cursor points at.
type FieldKind uint8

const (
	FieldMissing FieldKind = iota // absent, or JSON null
	FieldObject
	FieldOther // a string, number, boolean or array
	// FieldUnknown: the path is not among the view's paths; read Fields.
	FieldUnknown
)

// FieldCursor is a position in an indexed record.
type FieldCursor struct {
	node    *FieldPaths // nil inside a value selected whole
	r       gjson.Result
	found   bool
	unknown bool
}

// Root is the record itself.
func (v *FieldView) Root() FieldCursor {
	return FieldCursor{node: v.paths, r: gjson.Result{Type: gjson.JSON, Raw: "{}"}, found: true}
}

// Kind reports what c points at.
func (c FieldCursor) Kind() FieldKind {
	switch {
	case c.unknown:
		return FieldUnknown
	case !c.found || c.r.Type == gjson.Null:
		return FieldMissing
	case c.r.IsObject():
		return FieldObject
	}
	return FieldOther
}

// Value converts the value c points at as Fields holds it: string,
// float64, bool, nil, []any or map[string]any.
func (c FieldCursor) Value() any {
	if !c.found {
		return nil
	}
	return c.r.Value()
}

// Member moves from an object to its member key. Inside a value selected
// whole it scans that value (the last of duplicate keys wins).
func (v *FieldView) Member(c FieldCursor, key string) FieldCursor {
	if c.node == nil || c.node.whole {
		var out FieldCursor
		c.r.ForEach(func(k, val gjson.Result) bool {
			if k.Str == key {
				out = FieldCursor{r: val, found: true}
			}
			return true
		})
		return out
	}
	n := c.node.children[key]
	if n == nil {
		return FieldCursor{unknown: true}
	}
	s := &v.slots[n.id]
	if s.gen != v.gen {
		return FieldCursor{node: n}
	}
	return FieldCursor{node: n, r: s.r, found: true}
}

// number numbers p's nodes once, depth first so that a node's
// descendants are the slots [id+1, end), and returns how many slots a view
// of p needs. p is complete before it is first read, and read concurrently
// afterwards.
func (p *FieldPaths) number() int {
	p.numbered.Do(func() {
		var next int32
		var visit func(n *FieldPaths)
		visit = func(n *FieldPaths) {
			n.id = next
			next++
			for _, c := range n.children {
				visit(c)
			}
			n.end = next
		}
		visit(p)
		p.slots = next
	})
	return int(p.slots)
}
