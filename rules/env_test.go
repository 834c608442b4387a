package rules

import (
	"strings"
	"testing"
)

// TestFieldsCompileToIndexedLoads guards a 3x cost: compiled against a
// pointer environment, expr looks every field up by name through
// reflection (method-set search, then field search, ~250 ns); compiled
// against the Env value, it loads fields by index path (~70 ns).
func TestFieldsCompileToIndexedLoads(t *testing.T) {
	cases := []struct{ where, want string }{
		{`Action == "X"`, "OpLoadField"},
		{`Process.Name == "x"`, "OpLoadField"},
		{`Outcome == "failure"`, "OpLoadField"},
	}
	for _, c := range cases {
		y := strings.Replace(validRule, `Type == "process" && Process.Name == "powershell.exe"`, c.where, 1)
		set, err := LoadSources([]Source{{Name: "x.yaml", Data: []byte(y)}}, nil, Options{})
		if err != nil {
			t.Fatal(err)
		}
		d := set.Rules[0].Steps[0].Where.Program.Disassemble()
		if !strings.Contains(d, c.want) {
			t.Errorf("%s compiles to\n%s\nwant %s", c.where, d, c.want)
		}
	}
}

// TestFieldPathsOfRules: the engine decodes only the paths of the source
// record that rules read; a path missed here is a field a rule silently
// never sees.
func TestFieldPathsOfRules(t *testing.T) {
	cases := []struct{ where, want string }{
		{`Action == "X"`, ""},
		{`Fields.LogonType == 3`, "LogonType"},
		{`string(Fields.properties?.msg ?? Fields.msg_s ?? "") != ""`, "msg_s,properties.msg"},
		{`Fields.properties?.riskState == "x" && Fields.properties != nil`, "properties"},
		{`Fields["Parameters"] != nil && Fields.a.b.c == 1`, "Parameters,a.b.c"},
		{`Fields.TargetResources[0].modifiedProperties != nil`, "TargetResources"},
		{`len(Fields) > 3`, "*"},
		{`any(Fields.Items ?? [], {#.Name == "x"})`, "Items"},
	}
	for _, c := range cases {
		y := strings.Replace(validRule, `Type == "process" && Process.Name == "powershell.exe"`, c.where, 1)
		set, err := LoadSources([]Source{{Name: "x.yaml", Data: []byte(y)}}, nil, Options{})
		if err != nil {
			t.Fatalf("%s: %v", c.where, err)
		}
		if got := set.Rules[0].Fields.String(); got != c.want {
			t.Errorf("%s reads Fields paths %q, want %q", c.where, got, c.want)
		}
	}
}
