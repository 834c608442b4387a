package event

import (
	"bytes"
	"unicode/utf8"
	"unsafe"

	"github.com/tidwall/gjson"

	"github.com/vigil-sec/vigil/internal/jsonscan"
)

// FieldView reads a record's Fields at a rule set's paths without building
// Fields: one scan of Raw notes where each selected value lies, and a read
// converts only the value it returns. Decoding the selected members into
// maps was most of what a Fields read cost (a sign-in's four risk paths:
// ~4.5 µs with gjson's member walk and the maps; the scan skips members no
// path selects without parsing them).
//
// A view is reused for event after event by one goroutine: Reset it when
// the event changes. On a valid JSON record, what a view returns is what
// the same path reads in the Fields that DecodeFieldPaths fills
// (TestFieldViewMatchesFields, FuzzFieldView). A record it sees is
// malformed it declines; inside members no path selects it checks only
// that brackets balance and strings end, so garbage there may be read
// otherwise than gjson's guess.
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
	raw string // the value's JSON text
}

// Reset forgets the previous event.
func (v *FieldView) Reset() {
	v.state = viewUnread
	v.doc = ""
}

// Index scans raw once for paths, unless it has done so since Reset. It
// returns false when the reads must go through Fields instead: paths
// select the whole record, or raw is not valid UTF-8 (DecodeFieldPaths
// takes encoding/json's path for it, and a view would read other strings)
// or not a well-formed JSON object (gjson's reading of it is the
// reference).
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
	v.gen++ // every slot of an earlier scan is now absent
	if v.gen == 0 {
		clear(v.slots)
		v.gen = 1
	}
	v.paths = paths
	v.state = viewIndexed
	if len(raw) == 0 { // no record: every path is absent, as in Fields
		v.doc = ""
		return true
	}
	// One copy, never written again: the strings read share it.
	b := bytes.Clone(raw)
	v.doc = unsafe.String(&b[0], len(b))
	i := jsonscan.SkipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		v.state = viewMaps
		return false
	}
	end, ok := v.object(b, i, paths)
	if !ok || jsonscan.SkipSpace(b, end) != len(b) {
		v.state = viewMaps
		return false
	}
	return true
}

// object scans the object at b[i] ('{'), noting the members node selects,
// and returns the index after it. With a key given twice the last one
// wins, as in encoding/json: an earlier value and what was noted inside it
// are forgotten.
func (v *FieldView) object(b []byte, i int, node *FieldPaths) (int, bool) {
	i = jsonscan.SkipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, true
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return 0, false
		}
		kend, esc, err := jsonscan.String(b, i)
		if err != nil {
			return 0, false
		}
		var c *FieldPaths
		if k := b[i+1 : kend-1]; esc || node.mayHave(k) {
			key := v.doc[i+1 : kend-1]
			if esc {
				key = gjson.Parse(v.doc[i:kend]).Str
			}
			c = node.children[key]
		}
		i = jsonscan.SkipSpace(b, kend)
		if i >= len(b) || b[i] != ':' {
			return 0, false
		}
		i = jsonscan.SkipSpace(b, i+1)
		start := i
		if c != nil {
			if s := &v.slots[c.id]; s.gen == v.gen { // a duplicate key
				for j := c.id; j < c.end; j++ {
					v.slots[j].gen = 0
				}
			}
		}
		var ok bool
		if c != nil && !c.whole && i < len(b) && b[i] == '{' {
			i, ok = v.object(b, i, c)
		} else {
			i, err = jsonscan.Value(b, i)
			ok = err == nil && i > start && (b[start] == '"' || b[start] == '{' || b[start] == '[' || validLiteral(b[start:i]))
		}
		if !ok {
			return 0, false
		}
		if c != nil {
			v.slots[c.id] = fieldSlot{gen: v.gen, raw: v.doc[start:i]}
		}
		i = jsonscan.SkipSpace(b, i)
		if i >= len(b) {
			return 0, false
		}
		switch b[i] {
		case ',':
			i = jsonscan.SkipSpace(b, i+1)
		case '}':
			return i + 1, true
		default:
			return 0, false
		}
	}
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
	raw     string      // the value's JSON text; "" when absent
	unknown bool
}

// Root is the record itself.
func (v *FieldView) Root() FieldCursor { return FieldCursor{node: v.paths, raw: "{}"} }

// Kind reports what c points at.
func (c FieldCursor) Kind() FieldKind {
	switch {
	case c.unknown:
		return FieldUnknown
	case c.raw == "" || c.raw == "null":
		return FieldMissing
	case c.raw[0] == '{':
		return FieldObject
	}
	return FieldOther
}

// Value converts the value c points at as Fields holds it: string,
// float64, bool, nil, []any or map[string]any.
func (c FieldCursor) Value() any {
	if c.raw == "" {
		return nil
	}
	return gjson.Parse(c.raw).Value()
}

// Member moves from an object to its member key. Inside a value selected
// whole it scans that value (the last of duplicate keys wins).
func (v *FieldView) Member(c FieldCursor, key string) FieldCursor {
	if c.node == nil || c.node.whole {
		var out FieldCursor
		gjson.Parse(c.raw).ForEach(func(k, val gjson.Result) bool {
			if k.Str == key {
				out = FieldCursor{raw: val.Raw}
			}
			return true
		})
		return out
	}
	n := c.node.children[key]
	if n == nil {
		return FieldCursor{unknown: true}
	}
	if s := &v.slots[n.id]; s.gen == v.gen {
		return FieldCursor{node: n, raw: s.raw}
	}
	return FieldCursor{node: n}
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
			for k, c := range n.children {
				h := keyHash([]byte(k))
				n.keys[h>>6] |= 1 << (h & 63)
				visit(c)
			}
			n.end = next
		}
		visit(p)
		p.slots = next
	})
	return int(p.slots)
}

// keyHash is a 9-bit hash of a key's length and end bytes: the scan asks
// the children map only about keys whose hash a child has (most members of
// a record are no path's, and the map lookup was a third of the scan).
func keyHash(k []byte) uint32 {
	if len(k) == 0 {
		return 0
	}
	h := uint32(len(k))*0x9E3779B1 ^ uint32(k[0])*0x85EBCA77 ^ uint32(k[len(k)-1])*0xC2B2AE3D
	return h >> 23
}

// mayHave reports whether k can be one of p's children's keys.
func (p *FieldPaths) mayHave(k []byte) bool {
	h := keyHash(k)
	return p.keys[h>>6]&(1<<(h&63)) != 0
}

// validLiteral reports whether b is a JSON number, true, false or null.
// The scanner only finds where a literal ends; a malformed one (A0, 01,
// tru) is read differently by gjson in and out of context, so the view
// declines the record and the reads go through Fields.
func validLiteral(b []byte) bool {
	switch string(b) {
	case "true", "false", "null":
		return true
	}
	end, ok := jsonscan.Number(b, 0)
	return ok && end == len(b)
}
