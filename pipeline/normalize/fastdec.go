package normalize

import (
	"reflect"
	"strings"
	"sync"
	"unsafe"

	gojson "github.com/goccy/go-json"

	"github.com/vigil-sec/vigil/internal/jsonscan"
)

// This file holds the decoder of the typed per-source structs. It walks a
// record's members once with the scanner (scan.go) and stores each value
// through a per-type plan of field offsets built once by reflection, so
// the common columns cost no reflection, no interface call and, for
// strings without escapes, no allocation: a decoded string points into
// the input bytes, which in this package are never written after they are
// made (the private copy Parse makes of the message, or a buffer built for
// one CSV row or syslog line). Types it has no plan step for (plain
// integers, maps, interfaces) fall back to goccy/go-json, value by value,
// keeping the decoder's behaviour on them.

// goccyUnmarshal is the fallback decoder (see BenchmarkDecoder and the
// table in doc.go for the choice).
var goccyUnmarshal = gojson.Unmarshal

// typeKind is what a plan step does with a JSON value.
type typeKind uint8

const (
	kOther  typeKind = iota // anything else: goccy on the value
	kFstr                   // fstr
	kFint                   // fint
	kFtime                  // ftime
	kFbool                  // fbool
	kFraw                   // fraw
	kString                 // string
	kObj                    // obj[T]: T at offset 0
	kStruct                 // a struct: decodeStruct
	kSlice                  // a slice: decodeSlice
	kMethod                 // another type with an UnmarshalJSON method
)

// typeInfo is the decoding plan of one Go type.
type typeInfo struct {
	kind typeKind
	typ  reflect.Type
	elem *typeInfo // kObj: T; kSlice: the element

	// kStruct only.
	fields []fieldInfo
	exact  map[string]int // JSON name → index in fields
	folded map[string]int // ASCII lower-case JSON name → first field
	// whole is set for structs the plan cannot describe (embedded
	// fields): goccy decodes them whole.
	whole bool
}

type fieldInfo struct {
	off  uintptr
	info *typeInfo
}

var (
	typeInfos sync.Map // reflect.Type → *typeInfo
	fstrType  = reflect.TypeFor[fstr]()
	fintType  = reflect.TypeFor[fint]()
	ftimeType = reflect.TypeFor[ftime]()
	fboolType = reflect.TypeFor[fbool]()
	frawType  = reflect.TypeFor[fraw]()
	objPrefix = reflect.TypeFor[obj[fstr]]().PkgPath() + ".obj["

	unmarshalerType = reflect.TypeFor[gojson.Unmarshaler]()
)

// infoFor returns the plan of t, building it on first use. Plans are
// published only once complete (a decoder on another goroutine must never
// see a half-built one); building holds the plans under construction so
// that a recursive type would terminate.
func infoFor(t reflect.Type) *typeInfo {
	if ti, ok := typeInfos.Load(t); ok {
		return ti.(*typeInfo)
	}
	infoMu.Lock()
	defer infoMu.Unlock()
	building := map[reflect.Type]*typeInfo{}
	ti := buildInfo(t, building)
	for bt, bi := range building {
		typeInfos.Store(bt, bi)
	}
	return ti
}

var infoMu sync.Mutex

func buildInfo(t reflect.Type, building map[reflect.Type]*typeInfo) *typeInfo {
	if ti, ok := typeInfos.Load(t); ok {
		return ti.(*typeInfo)
	}
	if ti := building[t]; ti != nil {
		return ti
	}
	ti := &typeInfo{typ: t}
	building[t] = ti
	switch {
	case t == fstrType:
		ti.kind = kFstr
	case t == fintType:
		ti.kind = kFint
	case t == ftimeType:
		ti.kind = kFtime
	case t == fboolType:
		ti.kind = kFbool
	case t == frawType:
		ti.kind = kFraw
	case t.Kind() == reflect.Struct && t.NumField() == 1 && strings.HasPrefix(t.PkgPath()+"."+t.Name(), objPrefix):
		ti.kind = kObj
		ti.elem = buildInfo(t.Field(0).Type, building)
	case reflect.PointerTo(t).Implements(unmarshalerType):
		ti.kind = kMethod
	case t.Kind() == reflect.String && t.PkgPath() == "":
		ti.kind = kString
	case t.Kind() == reflect.Struct:
		ti.kind = kStruct
		ti.buildStruct(building)
	case t.Kind() == reflect.Slice:
		ti.kind = kSlice
		ti.elem = buildInfo(t.Elem(), building)
	}
	return ti
}

// buildStruct lists the exported fields with their JSON names, as
// encoding/json names them (tag name, else the field name; "-" skipped).
func (ti *typeInfo) buildStruct(building map[reflect.Type]*typeInfo) {
	t := ti.typ
	exact, folded := map[string]int{}, map[string]int{}
	var fields []fieldInfo
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous {
			ti.whole = true
			return
		}
		if !f.IsExported() {
			continue
		}
		name := f.Name
		if tag, ok := f.Tag.Lookup("json"); ok {
			if tag == "-" {
				continue
			}
			if n, _, _ := strings.Cut(tag, ","); n != "" {
				name = n
			}
		}
		if _, dup := exact[name]; dup {
			continue
		}
		exact[name] = len(fields)
		if l := strings.ToLower(name); folded[l] == 0 {
			if _, ok := folded[l]; !ok {
				folded[l] = len(fields)
			}
		}
		fields = append(fields, fieldInfo{off: f.Offset, info: buildInfo(f.Type, building)})
	}
	ti.fields, ti.exact, ti.folded = fields, exact, folded
}

// unmarshal decodes the JSON value b into v (a pointer), like
// encoding/json.Unmarshal with case-insensitive member names. b must be
// valid JSON, and must not be modified while the decoded values are in
// use (strings may point into it).
func unmarshal(b []byte, v any) error { return (*spanIndex)(nil).unmarshal(b, v) }

// unmarshal decodes b, which lies in the document ix indexes, into v.
func (p *parser) unmarshal(b []byte, v any) error { return p.ix.unmarshal(b, v) }

// unmarshal is unmarshal stepping over containers with ix.
func (ix *spanIndex) unmarshal(b []byte, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return goccyUnmarshal(b, v)
	}
	ti := infoFor(rv.Type().Elem())
	if ti.kind == kOther || (ti.kind == kStruct && ti.whole) {
		return goccyUnmarshal(b, v)
	}
	b = b[skipJSONWS(b, 0):]
	return ti.decode(ix, b, true, rv.UnsafePointer())
}

// decode stores the JSON value v (trimmed) into the value of type ti at p.
// esc is false only for a string known to hold no escapes.
func (ti *typeInfo) decode(ix *spanIndex, v []byte, esc bool, p unsafe.Pointer) error {
	if len(v) == 0 {
		return jsonscan.ErrUnexpectedEOF
	}
	switch ti.kind {
	case kFstr:
		*(*fstr)(p) = fstr(flexString(v, esc))
		return nil
	case kFint:
		return (*fint)(p).UnmarshalJSON(v)
	case kFtime:
		t := (*ftime)(p)
		if v[0] == 'n' {
			return nil
		}
		tm, err := parseTime(flexString(v, esc))
		if err != nil {
			return err
		}
		t.Time = tm
		return nil
	case kFbool:
		return (*fbool)(p).UnmarshalJSON(v)
	case kFraw:
		return (*fraw)(p).UnmarshalJSON(v)
	case kMethod:
		return reflect.NewAt(ti.typ, p).Interface().(gojson.Unmarshaler).UnmarshalJSON(v)
	case kString:
		switch v[0] {
		case '"':
			*(*string)(p) = aliasString(v, esc)
			return nil
		case 'n':
			return nil
		}
	case kObj:
		if v[0] == '"' {
			s := strings.TrimSpace(aliasString(v, esc))
			if len(s) == 0 || s[0] != '{' || !validAll(unsafe.Slice(unsafe.StringData(s), len(s))) {
				return nil
			}
			v = unsafe.Slice(unsafe.StringData(s), len(s))
		}
		if v[0] != '{' {
			return nil
		}
		return ti.elem.decode(ix, v, true, p)
	case kStruct:
		switch {
		case v[0] == '{' && !ti.whole:
			return ti.decodeStruct(ix, v, p)
		case v[0] == 'n':
			return nil
		}
	case kSlice:
		switch v[0] {
		case '[':
			return ti.decodeSlice(ix, v, p)
		case 'n':
			*(*[]byte)(p) = nil // any slice header: nil it
			return nil
		}
	}
	return goccyUnmarshal(v, reflect.NewAt(ti.typ, p).Interface())
}

// decodeStruct decodes the object obj member by member: one scan of each
// member, containers stepped over with ix, unknown members skipped.
func (ti *typeInfo) decodeStruct(ix *spanIndex, obj []byte, p unsafe.Pointer) error {
	return ix.members(obj, func(key []byte, kesc bool, val []byte, vesc bool) (bool, error) {
		if f := ti.field(key, kesc); f != nil {
			if err := f.info.decode(ix, val, vesc, unsafe.Add(p, f.off)); err != nil {
				return false, err
			}
		}
		return true, nil
	})
}

// field finds the field of a member name: exact first, then ASCII
// case-insensitively. Escaped names (esc) are unescaped first.
func (ti *typeInfo) field(key []byte, esc bool) *fieldInfo {
	if esc {
		q := make([]byte, 0, len(key)+2)
		q = append(append(append(q, '"'), key...), '"')
		key = []byte(jsonString(q))
	}
	if i, ok := ti.exact[string(key)]; ok {
		return &ti.fields[i]
	}
	var buf [64]byte
	if len(key) > len(buf) {
		return nil
	}
	low := buf[:len(key)]
	for i, c := range key {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		low[i] = c
	}
	if i, ok := ti.folded[string(low)]; ok {
		return &ti.fields[i]
	}
	return nil
}

// decodeSlice decodes the array v into a new slice of ti.typ at p.
func (ti *typeInfo) decodeSlice(ix *spanIndex, v []byte, p unsafe.Pointer) error {
	sv := reflect.NewAt(ti.typ, p).Elem()
	sv.SetLen(0)
	var ferr error
	err := ix.eachElement(v, func(el []byte) {
		if ferr != nil {
			return
		}
		n := sv.Len()
		if n == sv.Cap() {
			sv.Grow(1)
		}
		sv.SetLen(n + 1)
		e := sv.Index(n)
		e.SetZero()
		ferr = ti.elem.decode(ix, el, true, e.Addr().UnsafePointer())
	})
	if ferr != nil {
		return ferr
	}
	if err == nil && sv.IsNil() {
		sv.Set(reflect.MakeSlice(ti.typ, 0, 0)) // [] decodes to an empty, non-nil slice
	}
	return err
}

// flexString is fstr's reading of a value: a string's contents, "" for
// null, else the value's own JSON text.
func flexString(v []byte, esc bool) string {
	switch v[0] {
	case '"':
		return aliasString(v, esc)
	case 'n':
		return ""
	}
	return unsafe.String(&v[0], len(v))
}

// aliasString returns the contents of the JSON string span v (quotes
// included): a string pointing into v when it has no escapes, else a
// decoded copy. esc false promises there are none.
func aliasString(v []byte, esc bool) string {
	if len(v) <= 2 {
		return ""
	}
	in := v[1 : len(v)-1]
	if esc {
		for _, c := range in {
			if c == '\\' {
				return jsonString(v)
			}
		}
	}
	return unsafe.String(&in[0], len(in))
}
