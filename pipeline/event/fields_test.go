package event

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

var fieldRecords = []string{
	`{"TimeGenerated":"2025-10-07T02:00:00Z","LogonType":3,"AccountName":"svc","properties":{"riskState":"atRisk","msg":"x","nested":{"a":1,"b":[1,"two",null]}},"Tags":["a","b"]}`,
	// type drift: properties as a JSON-encoded string, a number as a string
	`{"properties":"{\"riskState\":\"dismissed\"}","LogonType":"3","msg_s":"ThreatIntel: deny"}`,
	// escaped key and value, unicode, duplicate key (the last wins)
	`{"Acc\u006funtName":"caf\u00e9 \"q\"","dup":1,"dup":{"a":true},"properties":{"msg":null}}`,
	"{\r\n  \"properties\" : { \"riskState\" : \"remediated\" , \"extra\" : [ {\"k\":1} ] } ,\r\n \"LogonType\" : 10.5 }",
	`{}`,
	// a duplicate that replaces an object: nothing of the first remains
	`{"dup":{"a":true},"dup":1,"properties":{"riskState":"x","nested":{"b":2}},"properties":{"msg":"y"}}`,
}

var fieldPathSets = [][][]string{
	{{"properties", "riskState"}},
	{{"properties", "msg"}, {"msg_s"}},
	{{"properties"}, {"properties", "riskState"}},
	{{"LogonType"}, {"AccountName"}, {"dup", "a"}},
	{{"properties", "nested", "b"}, {"Tags"}},
	{{"missing", "deep", "path"}},
	{{"dup"}},
}

func lookup(m map[string]any, path []string) (any, bool) {
	var v any = m
	for _, k := range path {
		o, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = o[k]; !ok {
			return nil, false
		}
	}
	return v, true
}

// TestDecodeFieldPathsMatchesFull: every selected path reads the same
// value from the selective decode as from encoding/json's full decode,
// and members no path selects are absent.
func TestDecodeFieldPathsMatchesFull(t *testing.T) {
	for _, rec := range fieldRecords {
		full := Event{Raw: json.RawMessage(rec)}
		if err := full.DecodeFields(); err != nil {
			t.Fatal(err)
		}
		for _, set := range fieldPathSets {
			var p FieldPaths
			for _, path := range set {
				p.Add(path...)
			}
			ev := Event{Raw: json.RawMessage(rec)}
			if err := ev.DecodeFieldPaths(&p); err != nil {
				t.Fatalf("%s with %v: %v", rec, &p, err)
			}
			for _, path := range set {
				want, wok := lookup(full.Fields, path)
				got, gok := lookup(ev.Fields, path)
				if wok != gok || !reflect.DeepEqual(got, want) {
					t.Errorf("%s: %s = %#v (%v), full decode %#v (%v)", rec, strings.Join(path, "."), got, gok, want, wok)
				}
			}
			for k := range ev.Fields {
				if p.children[k] == nil {
					t.Errorf("%s with %v: unselected member %q decoded", rec, &p, k)
				}
			}
		}
	}
}

func TestDecodeFieldPathsRedecodes(t *testing.T) {
	ev := Event{Raw: json.RawMessage(fieldRecords[0])}
	var p, q FieldPaths
	p.Add("LogonType")
	q.Add("AccountName")
	if err := ev.DecodeFieldPaths(&p); err != nil {
		t.Fatal(err)
	}
	if _, ok := ev.Fields["AccountName"]; ok {
		t.Fatal("AccountName decoded though only LogonType was selected")
	}
	if err := ev.DecodeFieldPaths(&q); err != nil {
		t.Fatal(err)
	}
	if ev.Fields["AccountName"] != "svc" {
		t.Fatalf("other paths did not decode again: %v", ev.Fields)
	}
	if err := ev.DecodeFields(); err != nil {
		t.Fatal(err)
	}
	if len(ev.Fields) != 5 {
		t.Fatalf("DecodeFields after a selective decode kept a partial map: %v", ev.Fields)
	}
	if err := ev.DecodeFieldPaths(AllFields()); err != nil || len(ev.Fields) != 5 {
		t.Fatalf("AllFields: %v %v", err, ev.Fields)
	}
	bad := Event{Raw: json.RawMessage(`[1,2]`)}
	if err := bad.DecodeFieldPaths(&p); err == nil || bad.Fields == nil || len(bad.Fields) != 0 {
		t.Fatalf("a raw record that is not an object: err %v, fields %v", err, bad.Fields)
	}
}

func TestFieldPathsAddMerge(t *testing.T) {
	var p FieldPaths
	p.Add("properties", "msg")
	p.Add("properties", "riskState")
	p.Add("msg_s")
	if got := p.String(); got != "msg_s,properties.msg,properties.riskState" {
		t.Fatalf("paths %q", got)
	}
	p.Add("properties") // reading the whole value subsumes its members
	p.Add("properties", "other")
	if got := p.String(); got != "msg_s,properties" {
		t.Fatalf("paths after whole %q", got)
	}
	var q FieldPaths
	q.Add("a", "b")
	q.Merge(&p)
	if got := q.String(); got != "a.b,msg_s,properties" {
		t.Fatalf("merged %q", got)
	}
	q.Merge(AllFields())
	if !q.All() || q.String() != "*" {
		t.Fatalf("merge with all: %q", q.String())
	}
	if !(&FieldPaths{}).Empty() || q.Empty() {
		t.Fatal("Empty")
	}
}

func FuzzDecodeFieldPaths(f *testing.F) {
	for _, r := range fieldRecords {
		f.Add(r, "properties.riskState,LogonType")
	}
	f.Fuzz(func(t *testing.T, rec, spec string) {
		full := Event{Raw: json.RawMessage(rec)}
		if !json.Valid([]byte(rec)) || full.DecodeFields() != nil {
			return
		}
		var p FieldPaths
		var paths [][]string
		for _, s := range strings.Split(spec, ",") {
			path := strings.Split(s, ".")
			paths = append(paths, path)
			p.Add(path...)
		}
		ev := Event{Raw: json.RawMessage(rec)}
		if err := ev.DecodeFieldPaths(&p); err != nil {
			t.Fatalf("%q: %v", rec, err)
		}
		for _, path := range paths {
			want, wok := lookup(full.Fields, path)
			got, gok := lookup(ev.Fields, path)
			if wok != gok || !reflect.DeepEqual(got, want) {
				t.Fatalf("%q: %v = %#v (%v), full %#v (%v)", rec, path, got, gok, want, wok)
			}
		}
	})
}

// TestFieldViewMatchesFields: a FieldView reads, at every selected path
// and every step on the way, what the maps DecodeFieldPaths fills hold —
// duplicate keys, type drift, nulls and escapes included — and one view
// reused across records forgets the previous record.
func TestFieldViewMatchesFields(t *testing.T) {
	var v FieldView
	for _, set := range fieldPathSets {
		var p FieldPaths
		for _, path := range set {
			p.Add(path...)
		}
		for _, rec := range append(fieldRecords, fieldRecords...) { // twice: reuse
			ev := Event{Raw: json.RawMessage(rec)}
			if err := ev.DecodeFieldPaths(&p); err != nil {
				t.Fatal(err)
			}
			v.Reset()
			if !v.Index(ev.Raw, &p) {
				t.Fatalf("%s: not indexed", rec)
			}
			for _, path := range set {
				if d := viewDiff(&v, ev.Fields, path); d != "" {
					t.Errorf("%s: %s", rec, d)
				}
			}
		}
	}
	// What the view does not read: the whole record, invalid UTF-8, not an
	// object, a malformed literal or an unterminated one.
	a := &FieldPaths{children: map[string]*FieldPaths{"a": {whole: true}}}
	for _, c := range []struct {
		raw   string
		paths *FieldPaths
	}{{`{"a":1}`, AllFields()}, {"{\"a\":\"\xff\"}", a}, {`[1]`, &FieldPaths{}}, {`{"a":A0}`, a}, {`{"b":01,"a":1}`, a}, {`{"a":"x`, a}} {
		v.Reset()
		if v.Index([]byte(c.raw), c.paths) {
			t.Errorf("%q with %v: indexed", c.raw, c.paths)
		}
	}
}

// FuzzFieldView: on a valid JSON record a FieldView either declines (the
// reads go through Fields) or reads at every path what DecodeFieldPaths'
// maps hold; on any input it never panics. (Malformed records are read
// by neither faithfully: gjson guesses, the view skips what no path
// selects without parsing it; the view declines what it sees is
// malformed.)
func FuzzFieldView(f *testing.F) {
	for _, r := range fieldRecords {
		f.Add([]byte(r))
	}
	f.Add([]byte(`{"properties":{"riskState":"a\"b\\c","nested":{"a":[1,{"b":2}]}},"dup":{"a":1},"dup":{"a":2}}`))
	var p FieldPaths
	paths := [][]string{{"properties", "riskState"}, {"properties", "nested", "a"}, {"dup", "a"}, {"LogonType"}, {"Tags"}, {"msg_s"}}
	for _, path := range paths {
		p.Add(path...)
	}
	var v FieldView
	f.Fuzz(func(t *testing.T, raw []byte) {
		v.Reset()
		if !v.Index(raw, &p) {
			return
		}
		for _, path := range paths { // whatever it is, reading it must not panic
			cur := v.Root()
			for _, k := range path {
				if cur.Kind() != FieldObject {
					break
				}
				cur = v.Member(cur, k)
				_ = cur.Value()
			}
		}
		if !json.Valid(raw) {
			return
		}
		ev := Event{Raw: json.RawMessage(raw)}
		_ = ev.DecodeFieldPaths(&p)
		for _, path := range paths {
			if d := viewDiff(&v, ev.Fields, path); d != "" {
				t.Fatalf("%q: %s", raw, d)
			}
		}
	})
}

// viewDiff walks path in the view and in Fields together and describes
// the first difference, "" if none: every step must agree on being an
// object, and the path's end on its value. (Inner nodes are only stepped
// through: their maps hold the selected members only.)
func viewDiff(v *FieldView, fields map[string]any, path []string) string {
	cur := v.Root()
	var want any = fields
	for i, k := range path {
		m, isMap := want.(map[string]any)
		if isMap != (cur.Kind() == FieldObject) {
			return fmt.Sprintf("at %v: view kind %d, Fields %#v", path[:i], cur.Kind(), want)
		}
		if !isMap {
			return ""
		}
		want = m[k]
		if cur = v.Member(cur, k); cur.Kind() == FieldUnknown {
			return fmt.Sprintf("%v unknown to the view", path[:i+1])
		}
		if got := cur.Value(); i == len(path)-1 && !reflect.DeepEqual(got, want) {
			return fmt.Sprintf("%s = %#v, Fields %#v", strings.Join(path, "."), got, want)
		}
	}
	return ""
}
