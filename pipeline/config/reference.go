package config

import (
	"fmt"
	"reflect"
	"strings"
)

// Reference renders REFERENCE.md: every key with its type, default,
// environment variable and meaning, generated from the Config struct and
// Defaults so the documentation cannot drift from the code.
func Reference() string {
	var b strings.Builder
	b.WriteString("<!-- Generated from pipeline/config by TestReference; do not edit.\n")
	b.WriteString("     Regenerate: VIGIL_UPDATE_REFERENCE=1 go test ./pipeline/config -run TestReference -->\n\n")
	b.WriteString("# Vigil configuration reference\n\n")
	b.WriteString("Vigil reads one YAML file (`--config FILE`), then environment variables. Each key below\n")
	b.WriteString("can be set in the file at its dotted path or by its `VIGIL_*` variable, which wins over the\n")
	b.WriteString("file. Lists are comma-separated in variables. Every `secret` key also reads `<VAR>_FILE`,\n")
	b.WriteString("the path of a file holding the value (its trailing newline is dropped). Durations are Go\n")
	b.WriteString("durations (`90s`, `5m`, `12h`) plus days (`7d`, `1d12h`). Unknown keys are errors.\n")
	b.WriteString("Secrets print as `[redacted]` in `vigil config show` and in logs.\n\n")
	b.WriteString("A `list of entries` (under `connectors`) is set in the file only: no variable can address\n")
	b.WriteString("one entry of a list, so its keys, written `list[].key` below, have none (\"file only\").\n")
	b.WriteString("The exception is secrets: the secret keys of an entry with a `name` read\n")
	b.WriteString("`VIGIL_<LIST>_<NAME>_<KEY>` and `<...>_FILE`, with NAME upper-cased and `-` written `_`\n")
	b.WriteString("(entry `eh-defender` of `connectors.kafka`: `VIGIL_CONNECTORS_KAFKA_EH_DEFENDER_SASL_PASSWORD_FILE`).\n\n")
	b.WriteString("Examples: [examples/local.yaml](examples/local.yaml), [examples/eventhubs.yaml](examples/eventhubs.yaml),\n")
	b.WriteString("[examples/connectors.yaml](examples/connectors.yaml).\n")

	def := Defaults()
	root := reflect.ValueOf(def).Elem()
	t := root.Type()
	var top []leaf
	for i := range t.NumField() {
		f := t.Field(i)
		name := yamlName(f)
		if name == "" {
			continue
		}
		if !isSection(f.Type) {
			top = append(top, leaf{Path: name, Env: envName(name), Doc: f.Tag.Get("doc"), V: root.Field(i)})
			continue
		}
		fmt.Fprintf(&b, "\n## %s\n\n%s\n\n", name, f.Tag.Get("doc"))
		table(&b, leaves(root.Field(i), name))
	}
	b.WriteString("\n## top-level keys\n\n")
	table(&b, top)
	return b.String()
}

func table(b *strings.Builder, ls []leaf) {
	b.WriteString("| key | type | default | environment | meaning |\n")
	b.WriteString("|---|---|---|---|---|\n")
	for _, l := range ls {
		row(b, l)
		if isEntries(l.V.Type()) {
			for _, el := range entryLeaves(l) {
				row(b, el)
			}
		}
	}
}

// row writes the table row of one key.
func row(b *strings.Builder, l leaf) {
	env := "`" + l.Env + "`"
	switch {
	case l.FileOnly() && l.V.Type() == secretType:
		list, key, _ := strings.Cut(l.Path, "[].")
		v := envName(list) + "_<NAME>_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
		env = "file only; entry secret: `" + v + "`, `" + v + "_FILE`"
	case l.FileOnly():
		env = "file only"
	case l.V.Type() == secretType:
		env += ", `" + l.Env + "_FILE`"
	}
	def := formatValue(l.V)
	if def == "" || def == "[]" {
		def = "(empty)"
	} else {
		def = "`" + def + "`"
	}
	fmt.Fprintf(b, "| `%s` | %s | %s | %s | %s |\n", l.Path, typeName(l.V.Type()), def, env, escapeCell(l.Doc))
}

func escapeCell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
