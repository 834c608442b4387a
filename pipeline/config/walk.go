package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// EnvPrefix starts every environment variable that overrides a key.
const EnvPrefix = "VIGIL_"

// leaf is one configuration key: a field that holds a value rather than a
// section. The env mapping, the strict YAML decoder and REFERENCE.md all
// come from the same walk, so they cannot disagree.
type leaf struct {
	Path string // dotted yaml path: kafka.sasl.password
	Env  string // VIGIL_KAFKA_SASL_PASSWORD; "" for a file-only key
	Doc  string
	V    reflect.Value // addressable field value
}

// FileOnly reports whether the key has no environment variable: a list of
// entries (isEntries) and the keys inside its entries.
func (l leaf) FileOnly() bool { return l.Env == "" }

var (
	secretType   = reflect.TypeFor[Secret]()
	durationType = reflect.TypeFor[Duration]()
)

// isSection reports whether t is a nested section (walked into) rather
// than a value.
func isSection(t reflect.Type) bool {
	return t.Kind() == reflect.Struct
}

// isEntries reports whether t is a list of sections (connectors.kafka):
// a leaf of the file, decoded entry by entry, with no environment
// variable, since a variable cannot address one entry of a list.
func isEntries(t reflect.Type) bool {
	return t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct
}

// yamlName returns the key of a struct field, or "" for fields not in the
// file.
func yamlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	tag := f.Tag.Get("yaml")
	name, _, _ := strings.Cut(tag, ",")
	if name == "-" {
		return ""
	}
	if name == "" {
		name = strings.ToLower(f.Name)
	}
	return name
}

// envName derives the environment variable of a dotted key path.
func envName(path string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(path, ".", "_"))
}

// leaves lists every key under v (a struct value), depth first in field
// order. v must be addressable for the returned values to be settable.
func leaves(v reflect.Value, prefix string) []leaf {
	var out []leaf
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name := yamlName(f)
		if name == "" {
			continue
		}
		path := name
		if prefix != "" {
			path = prefix + "." + name
		}
		fv := v.Field(i)
		if isSection(f.Type) {
			out = append(out, leaves(fv, path)...)
			continue
		}
		env := envName(path)
		if isEntries(f.Type) {
			env = ""
		}
		out = append(out, leaf{Path: path, Env: env, Doc: f.Tag.Get("doc"), V: fv})
	}
	return out
}

// entryLeaves lists the keys of one entry of the list leaf l, as
// path[].key (for REFERENCE.md), with zero values and no variables.
func entryLeaves(l leaf) []leaf {
	zero := reflect.New(l.V.Type().Elem()).Elem()
	ls := leaves(zero, l.Path+"[]")
	for i := range ls {
		ls[i].Env = ""
	}
	return ls
}

// valueLeaves is leaves followed, after each list of entries, by the keys
// of every entry, as path[i].key: every key that holds a value under v.
func valueLeaves(v reflect.Value, prefix string) []leaf {
	var out []leaf
	for _, l := range leaves(v, prefix) {
		out = append(out, l)
		if !isEntries(l.V.Type()) {
			continue
		}
		for i := range l.V.Len() {
			ls := valueLeaves(l.V.Index(i), fmt.Sprintf("%s[%d]", l.Path, i))
			for j := range ls {
				ls[j].Env = ""
			}
			out = append(out, ls...)
		}
	}
	return out
}

// setText parses s into the leaf value v by v's type. Lists are
// comma-separated; surrounding spaces and empty elements are dropped, so
// "a, b," is [a b] and "" is the empty list.
func setText(v reflect.Value, s string) error {
	switch {
	case v.Type() == durationType:
		if strings.TrimSpace(s) == "" {
			v.SetInt(0)
			return nil
		}
		d, err := ParseDuration(s)
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
		return nil
	case v.Type() == secretType:
		v.SetString(s)
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		if strings.TrimSpace(s) == "" {
			v.SetBool(false)
			return nil
		}
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("%q is not a boolean; use true or false", s)
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if strings.TrimSpace(s) == "" {
			v.SetInt(0)
			return nil
		}
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("%q is not an integer that fits in %d bits", s, v.Type().Bits())
		}
		v.SetInt(n)
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.String {
			return fmt.Errorf("unsupported list type %s", v.Type())
		}
		var items []string
		for p := range strings.SplitSeq(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				items = append(items, p)
			}
		}
		sv := reflect.MakeSlice(v.Type(), len(items), len(items))
		for i, it := range items {
			sv.Index(i).SetString(it)
		}
		v.Set(sv)
	default:
		return fmt.Errorf("unsupported type %s", v.Type())
	}
	return nil
}

// typeName describes a leaf's type for REFERENCE.md.
func typeName(t reflect.Type) string {
	switch {
	case t == durationType:
		return "duration"
	case t == secretType:
		return "secret"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "int"
	case reflect.Slice:
		if isEntries(t) {
			return "list of entries"
		}
		return "list of " + typeName(t.Elem())
	}
	return t.String()
}

// formatValue renders a leaf value for REFERENCE.md and error messages;
// secrets stay redacted.
func formatValue(v reflect.Value) string {
	switch {
	case v.Type() == durationType, v.Type() == secretType:
		return fmt.Sprint(v.Interface())
	}
	if isEntries(v.Type()) {
		if v.Len() == 0 {
			return "[]"
		}
		return fmt.Sprintf("[%d entries]", v.Len())
	}
	if v.Kind() == reflect.Slice {
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = fmt.Sprint(v.Index(i).Interface())
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	return fmt.Sprint(v.Interface())
}
