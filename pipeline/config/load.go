package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Load builds the configuration from the defaults, the YAML file at path
// (skipped when path is ""), and env (os.Environ() form, KEY=VALUE; pass
// nil to ignore the environment), then validates it.
//
// Every problem found in the file is reported at once, each as
// "file:line: key: what is wrong". Validation problems come back as
// Problems (use errors.As to list them). On any error the returned config
// is nil: an invalid configuration must stop start-up.
func Load(path string, env []string) (*Config, error) {
	c := Defaults()
	// Stages start nil so that what the file or the environment set can
	// be told from the default (StagesSet); "stages:" with no value means
	// the default too.
	c.Stages = nil
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: read %s: %w", path, err)
		}
		if err := decodeYAML(path, data, c); err != nil {
			return nil, err
		}
	}
	warn, err := applyEnv(c, env)
	if err != nil {
		return nil, err
	}
	c.envWarnings = warn
	if c.Stages == nil {
		c.Stages = append([]string(nil), DefaultStages...)
	} else {
		c.stagesSet = true
	}
	_ = c.Kafka.ApplyEventHubs() // a bad string is reported by Validate with its key
	if err := c.Validate(); err != nil {
		if path != "" {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
		return nil, fmt.Errorf("config: %w", err)
	}
	return c, nil
}

// decodeYAML decodes data into c strictly: unknown keys, duplicate keys,
// several documents and wrongly typed values are errors naming file:line
// and the dotted key. Keys absent from the file keep the value already in
// c (the defaults).
func decodeYAML(file string, data []byte, c *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // empty file: all defaults
		}
		return fmt.Errorf("config %s: %w", file, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return fmt.Errorf("%s:%d: config holds several YAML documents; keep one", file, extra.Line)
	}
	if len(doc.Content) == 0 {
		return nil
	}
	d := &decoder{file: file}
	d.section(doc.Content[0], reflect.ValueOf(c).Elem(), "")
	if len(d.errs) > 0 {
		return fmt.Errorf("config %s: %d problem(s):\n  %s", file, len(d.errs), strings.Join(d.errs, "\n  "))
	}
	return nil
}

type decoder struct {
	file string
	errs []string
}

func (d *decoder) errorf(n *yaml.Node, format string, args ...any) {
	d.errs = append(d.errs, fmt.Sprintf("%s:%d: ", d.file, n.Line)+fmt.Sprintf(format, args...))
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// section decodes mapping node n into struct v.
func (d *decoder) section(n *yaml.Node, v reflect.Value, prefix string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if isNull(n) {
		return // "kafka:" with nothing under it keeps the defaults
	}
	where := prefix
	if where == "" {
		where = "the top level"
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "%s must be a mapping of keys (%s)", where, strings.Join(sectionKeys(v.Type()), ", "))
		return
	}
	fields := map[string]int{}
	t := v.Type()
	for i := range t.NumField() {
		if name := yamlName(t.Field(i)); name != "" {
			fields[name] = i
		}
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		name := k.Value
		path := name
		if prefix != "" {
			path = prefix + "." + name
		}
		if k.Kind != yaml.ScalarNode || name == "<<" {
			d.errorf(k, "unsupported key in %s (merge keys and complex keys are not allowed)", where)
			continue
		}
		if line, dup := seen[name]; dup {
			d.errorf(k, "key %s is set twice (first on line %d); keep one", path, line)
			continue
		}
		seen[name] = k.Line
		idx, ok := fields[name]
		if !ok {
			known := sectionKeys(t)
			hint := ""
			if s := closest(name, known); s != "" {
				hint = fmt.Sprintf("; did you mean %q?", s)
			}
			d.errorf(k, "unknown key %s%s (known keys in %s: %s)", path, hint, where, strings.Join(known, ", "))
			continue
		}
		fv := v.Field(idx)
		if isSection(fv.Type()) {
			d.section(val, fv, path)
			continue
		}
		if isEntries(fv.Type()) {
			d.entries(val, fv, path)
			continue
		}
		d.value(val, fv, path)
	}
}

// entries decodes a list of sections (connectors.kafka) entry by entry, as
// strictly as the top level: each entry is a mapping checked key by key,
// and its problems name path[i].key. The list replaces the default one.
func (d *decoder) entries(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if isNull(n) {
		v.Set(reflect.Zero(v.Type()))
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "%s: expected a list of entries, each a mapping of keys (%s)", path, strings.Join(sectionKeys(v.Type().Elem()), ", "))
		return
	}
	out := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		if item.Kind == yaml.AliasNode {
			item = item.Alias
		}
		ip := fmt.Sprintf("%s[%d]", path, i)
		if isNull(item) {
			d.errorf(item, "%s is empty; give its keys (%s) or remove the entry", ip, strings.Join(sectionKeys(v.Type().Elem()), ", "))
			continue
		}
		d.section(item, out.Index(i), ip)
	}
	v.Set(out)
}

// value decodes a leaf.
func (d *decoder) value(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if isNull(n) {
		v.Set(reflect.Zero(v.Type()))
		return
	}
	// A list key also takes a single scalar, read as a comma list like the
	// environment variable: "brokers: a:9092,b:9092".
	if v.Kind() == reflect.Slice && n.Kind == yaml.ScalarNode {
		if err := setText(v, n.Value); err != nil {
			d.errorf(n, "%s: %v", path, err)
		}
		return
	}
	if v.Kind() == reflect.Slice && n.Kind != yaml.SequenceNode {
		d.errorf(n, "%s: expected a list, e.g. [a, b]", path)
		return
	}
	if v.Kind() != reflect.Slice && n.Kind != yaml.ScalarNode {
		d.errorf(n, "%s: expected a single %s value, not a %s", path, typeName(v.Type()), kindName(n.Kind))
		return
	}
	tmp := reflect.New(v.Type())
	if err := n.Decode(tmp.Interface()); err != nil {
		d.errorf(n, "%s: %s", path, cleanYAMLErr(err, n, v.Type()))
		return
	}
	v.Set(tmp.Elem())
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	}
	return "value"
}

// cleanYAMLErr turns yaml.v3's "yaml: unmarshal errors:\n line 3: cannot
// unmarshal !!str `abc` into int32" into "expected int, got "abc"".
func cleanYAMLErr(err error, n *yaml.Node, t reflect.Type) string {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("expected %s, got %q", typeName(t), n.Value)
	}
	return err.Error()
}

// sectionKeys lists the yaml keys of struct type t.
func sectionKeys(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		if name := yamlName(t.Field(i)); name != "" {
			out = append(out, name)
		}
	}
	return out
}

// applyEnv overrides keys from VIGIL_* variables and reads *_FILE secrets.
// It returns warnings for VIGIL_* variables under a config section that
// match no key (most likely a typo that would otherwise be ignored).
func applyEnv(c *Config, env []string) (warnings []string, err error) {
	vars := map[string]string{}
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(k, EnvPrefix) {
			vars[k] = v
		}
	}
	if len(vars) == 0 {
		return nil, nil
	}
	known := map[string]bool{}
	var errs []string
	for _, l := range leaves(reflect.ValueOf(c).Elem(), "") {
		if l.FileOnly() {
			errs = append(errs, entrySecretsEnv(l, vars, known)...)
			continue
		}
		known[l.Env] = true
		val, direct := vars[l.Env]
		if l.V.Type() == secretType {
			done, serr := secretFromFile(l, vars, known)
			if serr != "" {
				errs = append(errs, serr)
			}
			if done {
				continue
			}
		}
		if !direct {
			continue
		}
		if serr := setText(l.V, val); serr != nil {
			shown := val
			if l.V.Type() == secretType {
				shown = Redacted
			}
			errs = append(errs, fmt.Sprintf("%s=%q (%s): %v", l.Env, shown, l.Path, serr))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("config: environment: %s", strings.Join(errs, "; "))
	}
	sections := map[string]bool{}
	t := reflect.TypeFor[Config]()
	for i := range t.NumField() {
		if name := yamlName(t.Field(i)); name != "" && isSection(t.Field(i).Type) {
			sections[envName(name)+"_"] = true
		}
	}
	names := slices.Sorted(maps.Keys(known))
	for k := range vars {
		if known[k] {
			continue
		}
		for s := range sections {
			if strings.HasPrefix(k, s) {
				w := fmt.Sprintf("environment variable %s matches no config key and is ignored", k)
				if s := closest(k, names); s != "" {
					w += fmt.Sprintf("; did you mean %s?", s)
				}
				warnings = append(warnings, w)
				break
			}
		}
	}
	sort.Strings(warnings)
	return warnings, nil
}

// secretFromFile sets the secret leaf l from the file named by its
// <VAR>_FILE variable, if set. done reports that l was handled (set, or
// failed with problem).
func secretFromFile(l leaf, vars map[string]string, known map[string]bool) (done bool, problem string) {
	fileVar := l.Env + "_FILE"
	known[fileVar] = true
	file, ok := vars[fileVar]
	if !ok || file == "" {
		return false, ""
	}
	if val := vars[l.Env]; val != "" {
		return true, fmt.Sprintf("%s and %s are both set for %s; set only one", l.Env, fileVar, l.Path)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return true, fmt.Sprintf("%s: read secret for %s: %v", fileVar, l.Path, err)
	}
	// Files written by editors and `echo` end in a newline that is never
	// part of the secret.
	l.V.SetString(strings.TrimRight(string(b), "\r\n"))
	return true, ""
}

// entrySecretsEnv sets the secrets of the named entries of list leaf l
// from VIGIL_<LIST>_<NAME>_<KEY> and <...>_FILE (the one way into a list
// from the environment; see Connectors). Entries without a "name" key, or
// with an empty name, have none.
func entrySecretsEnv(l leaf, vars map[string]string, known map[string]bool) (errs []string) {
	for i := range l.V.Len() {
		e := l.V.Index(i)
		nf := e.FieldByName("Name")
		if !nf.IsValid() || nf.Kind() != reflect.String || nf.String() == "" {
			continue
		}
		base := entryEnvName(l.Path, nf.String())
		for _, sl := range leaves(e, "") {
			if sl.V.Type() != secretType {
				continue
			}
			sl.Env = base + "_" + strings.ToUpper(strings.ReplaceAll(sl.Path, ".", "_"))
			sl.Path = fmt.Sprintf("%s[%d].%s", l.Path, i, sl.Path)
			known[sl.Env] = true
			done, problem := secretFromFile(sl, vars, known)
			if problem != "" {
				errs = append(errs, problem)
			}
			if done {
				continue
			}
			if val, ok := vars[sl.Env]; ok {
				sl.V.SetString(val)
			}
		}
	}
	return errs
}

// closest returns the candidate within a small edit distance of s, or "".
func closest(s string, candidates []string) string {
	best, bestD := "", 4
	if len(s) < 6 {
		bestD = 3
	}
	for _, c := range candidates {
		if d := editDistance(strings.ToLower(s), strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Redacted returns the effective configuration as YAML with every secret
// shown as [redacted], for `vigil config show`.
func (c *Config) Redacted() string {
	b, err := yaml.Marshal(c)
	if err != nil {
		// Marshal of plain strings, ints, bools and lists cannot fail; keep
		// the signature simple for the CLI.
		return fmt.Sprintf("# cannot render config: %v\n", err)
	}
	return string(b)
}
