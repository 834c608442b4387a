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
