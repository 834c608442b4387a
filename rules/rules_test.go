package rules

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/pipeline/event"
)

const validRule = `id: t.match
name: Match
description: test rule
severity: low
tactics: [execution]
techniques: [T1059.001]
kind: match
by: device
where: Type == "process" && Process.Name == "powershell.exe"
entities: {user: User}
tests:
  - name: pos
    events: [{id: e1, time: 2025-01-01T00:00:00Z, type: process, device: d1, process: {name: powershell.exe}}]
    expect: {count: 1}
  - name: neg
    events: [{id: e2, time: 2025-01-01T00:00:00Z, type: process, device: d1}]
    expect: {count: 0}
`

func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLintFindsProblems(t *testing.T) {
	cases := []struct {
		name, yaml string
		line       int
		want       string
	}{
		{"unknown field", strings.Replace(validRule, "severity: low", "severity: low\nseverty: high", 1), 5, `field severty not found`},
		{"misspelled event field", strings.Replace(validRule, "Process.Name ==", "Proces.Name ==", 1), 9, "unknown name Proces"},
		{"type error", strings.Replace(validRule, `Process.Name == "powershell.exe"`, `DstPort == "443"`, 1), 9, "mismatched types int and string"},
		{"not bool", strings.Replace(validRule, `where: Type == "process" && Process.Name == "powershell.exe"`, `where: Process.Name`, 1), 9, "not bool"},
		{"now refused", strings.Replace(validRule, `Type == "process"`, `Time > now()`, 1), 9, "now() is refused"},
		{"bad regex", strings.Replace(validRule, `Type == "process"`, `regex(Process.CommandLine, "a(")`, 1), 9, "regex"},
		{"bad cidr", strings.Replace(validRule, `Type == "process"`, `cidr(SrcIP, "10.0.0.0/33")`, 1), 9, "cidr"},
		{"unknown watchlist", strings.Replace(validRule, `Type == "process"`, `watchlist("vips", User)`, 1), 9, `unknown watchlist "vips"`},
		{"unknown technique", strings.Replace(validRule, "T1059.001", "T9999", 1), 1, `unknown ATT&CK technique "T9999"`},
		{"unknown tactic", strings.Replace(validRule, "[execution]", "[exfiltrate]", 1), 1, `unknown ATT&CK tactic`},
		{"bad keyspace", strings.Replace(validRule, "by: device", "by: host", 1), 8, `unknown keyspace "host"`},
		{"bad entity type", strings.Replace(validRule, "{user: User}", "{person: User}", 1), 10, `unknown type "person"`},
		{"bad severity", strings.Replace(validRule, "severity: low", "severity: urgent", 1), 1, "severity"},
		{"bad duration", strings.Replace(validRule, "kind: match", "kind: match\nsuppress: 10 minutes", 1), 8, "bad duration"},
		{"window too long", strings.Replace(validRule, "kind: match", "kind: match\nsuppress: 90d", 1), 8, "longer than the state retention"},
		{"sequence one step", strings.Replace(validRule, "kind: match", "kind: sequence\nmaxspan: 1h", 1), 1, "at least 2 steps"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := writeTree(t, map[string]string{"x/r.yaml": c.yaml})
			diags := Lint(dir, Options{MaxRetention: 30 * 24 * time.Hour})
			var found bool
			for _, d := range diags {
				if strings.Contains(d.Msg, c.want) && !d.Warning {
					found = true
					if d.Line != c.line {
						t.Errorf("line = %d, want %d (%s)", d.Line, c.line, d)
					}
					if !strings.HasSuffix(d.File, "r.yaml") || d.RuleID != "t.match" {
						t.Errorf("diagnostic does not name file and rule: %s", d)
					}
				}
			}
			if !found {
				t.Fatalf("no diagnostic containing %q; got %v", c.want, diags)
			}
			if _, err := LoadDir(dir, Options{MaxRetention: 30 * 24 * time.Hour}); err == nil {
				t.Fatal("LoadDir accepted a broken rule")
			}
		})
	}
}

func TestLoadValid(t *testing.T) {
	dir := writeTree(t, map[string]string{"a/r.yaml": validRule, "a/notes.txt": "ignored", "_drafts/x.yaml": "broken: ["})
	set, err := LoadDir(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Rules) != 1 || set.Rules[0].ID != "t.match" {
		t.Fatalf("rules = %v", set.Rules)
	}
	r := set.Rules[0]
	if r.Steps[0].Hint.Field != "Type" || r.Steps[0].Hint.Values[0] != "process" {
		t.Errorf("hint = %+v, want Type=process", r.Steps[0].Hint)
	}
	if got := set.Keyspaces(); len(got) != 1 || got[0] != event.KeyDevice {
		t.Errorf("keyspaces = %v", got)
	}
	if r.Tactics[0] != "TA0002" || r.Techniques[0] != "T1059.001" {
		t.Errorf("attack = %v %v", r.Tactics, r.Techniques)
	}
}

func TestVersionChangesWithDefinitionOnly(t *testing.T) {
	load := func(y string) string {
		set, err := LoadSources([]Source{{Name: "r.yaml", Data: []byte(y)}}, nil, Options{})
		if err != nil {
			t.Fatal(err)
		}
		return set.Rules[0].Version
	}
	v0 := load(validRule)
	if v := load(strings.Replace(validRule, "description: test rule", "description: reworded", 1)); v != v0 {
		t.Error("description change changed the version")
	}
	if v := load(strings.Replace(validRule, "powershell.exe\"\n", "pwsh.exe\"\n", 1)); v == v0 {
		t.Error("condition change kept the version")
	}
}

func TestChainCycle(t *testing.T) {
	chain := func(id, on string) string {
		return strings.NewReplacer("t.match", id, "kind: match\n", "kind: match\nrule: "+on+"\n",
			`where: Type == "process" && Process.Name == "powershell.exe"`, `where: Severity == "high"`).Replace(validRule)
	}
	dir := writeTree(t, map[string]string{"a.yaml": chain("t.a", "t.b"), "b.yaml": chain("t.b", "t.c"), "c.yaml": chain("t.c", "t.a")})
	var msgs []string
	for _, d := range Lint(dir, Options{}) {
		msgs = append(msgs, d.String())
	}
	if !strings.Contains(strings.Join(msgs, "\n"), "cycle: t.a -> t.b -> t.c -> t.a") {
		t.Fatalf("cycle not reported: %v", msgs)
	}
	dir = writeTree(t, map[string]string{"a.yaml": chain("t.a", "t.missing")})
	if _, err := LoadDir(dir, Options{}); err == nil || !strings.Contains(err.Error(), `unknown rule "t.missing"`) {
		t.Fatalf("missing chain target: %v", err)
	}
}

func TestLookups(t *testing.T) {
	stix := `{"type":"bundle","id":"bundle--1","objects":[
	 {"type":"indicator","pattern_type":"stix","pattern":"[ipv4-addr:value = '198.51.100.7'] OR [domain-name:value = 'Evil.example']"},
	 {"type":"indicator","pattern_type":"stix","pattern":"[file:hashes.'SHA-256' = 'AABB']"},
	 {"type":"indicator","pattern_type":"stix","pattern":"[ipv4-addr:value = '203.0.113.0/24']"},
	 {"type":"indicator","pattern_type":"stix","revoked":true,"pattern":"[url:value = 'http://x.example/a']"}]}`
	dir := writeTree(t, map[string]string{
		"r.yaml":             strings.Replace(validRule, `Type == "process"`, `watchlist("admins", User) && watchlist_field("admins", User, "tier") == "0" && (ti_ip(SrcIP) || ti_domain(Domain) || ti_hash(Process.SHA256))`, 1),
		"lookups/admins.csv": "value,tier\nRoot@Contoso.example,0\nops@contoso.example,1\n",
		"lookups/ti.json":    stix,
	})
	set, err := LoadDir(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	l := set.Lookups
	for _, c := range []struct {
		got, want bool
		what      string
	}{
		{l.InWatchlist("admins", "root@contoso.example"), true, "watchlist case-insensitive"},
		{l.InWatchlist("admins", "eve@contoso.example"), false, "watchlist miss"},
		{l.TI(TIIP, "198.51.100.7"), true, "ip"},
		{l.TI(TIIP, "203.0.113.99"), true, "ip in cidr"},
		{l.TI(TIDomain, "evil.example"), true, "domain folded"},
		{l.TI(TIHash, "aabb"), true, "hash"},
		{l.TI(TIURL, "http://x.example/a"), false, "revoked"},
		{l.TI("", "evil.example"), true, "any kind"},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %v", c.what, c.got)
		}
	}
	if v := l.WatchlistField("admins", "ops@contoso.example", "tier"); v != "1" {
		t.Errorf("watchlist_field = %q", v)
	}
}

func TestHelperFunctions(t *testing.T) {
	fn := &funcs{lookups: NewLookups()}
	c := &compiler{fn: fn}
	ev := &event.Event{User: "Alice@Contoso.Example", SrcIP: "10.1.2.3", DstIP: "8.8.8.8",
		Process: event.Process{CommandLine: `PowerShell.EXE -NoProfile -EncodedCommand SQBFAFgA`}}
	cases := []struct {
		src  string
		want any
	}{
		{`icontains(Process.CommandLine, "-encodedcommand")`, true},
		{`icontains(Process.CommandLine, "-decode")`, false},
		{`istartswith(Process.CommandLine, "powershell")`, true},
		{`iendswith(Process.CommandLine, "sqbfafga")`, true},
		{`iequals(User, "alice@contoso.example")`, true},
		{`icontains_any(Process.CommandLine, ["mimikatz", "-ENC"])`, true},
		{`iequals_any(User, ["bob@x", "ALICE@contoso.example"])`, true},
		{`regex(Process.CommandLine, "(?i)-enc\\w*\\s+[a-z0-9+/=]{8}")`, true},
		{`regex(Process.CommandLine, "mimikatz|sekurlsa")`, false},
		{`upn_user(User)`, "alice"},
		{`upn_domain(User)`, "contoso.example"},
		{`upn_user("CONTOSO\\Bob")`, "bob"},
		{`cidr(SrcIP, "10.0.0.0/8")`, true},
		{`cidr(DstIP, "10.0.0.0/8")`, false},
		{`in_cidrs(DstIP, ["192.168.0.0/16", "8.8.8.0/24"])`, true},
		{`is_private(SrcIP) && is_public(DstIP)`, true},
		{`is_public("203.0.113.5") || is_public("100.64.1.1") || is_private("8.8.4.4")`, false},
		{`Time.Location().String()`, "UTC"},
	}
	for _, cs := range cases {
		e := c.expr(Src{Text: cs.src}, "test")
		if e == nil {
			t.Fatalf("%s: %v", cs.src, c.diags)
		}
		var vmEnv = NewEnv(ev)
		out, err := runOnce(e, vmEnv)
		if err != nil {
			t.Fatalf("%s: %v", cs.src, err)
		}
		if out != cs.want {
			t.Errorf("%s = %v, want %v", cs.src, out, cs.want)
		}
	}
}

func TestRegexPrefilterLiteral(t *testing.T) {
	fn := &funcs{}
	for _, c := range []struct{ pat, lit string }{
		{`(?i)-enc\w+`, "-enc"},
		{`mimikatz|sekurlsa`, ""},
		{`foo(bar)+baz`, "foo"},
		{`^cmd\.exe /c`, "cmd.exe /c"},
	} {
		fr, err := fn.regex(c.pat)
		if err != nil {
			t.Fatal(err)
		}
		if fr.literal != c.lit {
			t.Errorf("%s: literal %q, want %q", c.pat, fr.literal, c.lit)
		}
	}
}

func TestCoverageAndNavigator(t *testing.T) {
	set, err := LoadSources([]Source{{Name: "r.yaml", Data: []byte(validRule)}}, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	rep := Coverage(set)
	if len(rep.Techniques) != 1 || rep.Techniques[0].Name != "Command and Scripting Interpreter: PowerShell" || rep.Tactics["execution"] != 1 {
		t.Fatalf("coverage = %+v", rep)
	}
	var buf bytes.Buffer
	if err := WriteNavigatorLayer(&buf, set, "vigil"); err != nil {
		t.Fatal(err)
	}
	var layer map[string]any
	if err := json.Unmarshal(buf.Bytes(), &layer); err != nil {
		t.Fatal(err)
	}
	techs := layer["techniques"].([]any)
	if len(techs) != 1 || techs[0].(map[string]any)["techniqueID"] != "T1059.001" || layer["domain"] != "enterprise-attack" {
		t.Fatalf("layer = %s", buf.String())
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"90s": 90 * time.Second, "7d": 7 * 24 * time.Hour, "1d12h": 36 * time.Hour, "500ms": 500 * time.Millisecond} {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("%s = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "d", "10 minutes", "-5m", "xd"} {
		if _, err := ParseDuration(in); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"10m", "7d", "1d2h3m", "d", "", "99999999999d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err == nil && d < 0 {
			t.Fatalf("%q: negative %v", s, d)
		}
	})
}

// FuzzCompile feeds arbitrary YAML to the compiler: it must report
// problems, never panic.
func FuzzCompile(f *testing.F) {
	f.Add([]byte(validRule))
	f.Add([]byte("id: x\nkind: sequence\nsteps: [{where: 'true'}, {rule: x}]\nmaxspan: 1m\nby: user"))
	f.Add([]byte("by: {keyspace: ip, key: SrcIP}\nkind: threshold\nthreshold: {having: 'count > 1'}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = LoadSources([]Source{{Name: "f.yaml", Data: b}}, nil, Options{})
	})
}

// TestHavingFloor: the bounds read from a having condition are ones it
// implies, and nothing is read from conditions that imply none.
func TestHavingFloor(t *testing.T) {
	for _, c := range []struct {
		having          string
		count, distinct int
		distinctOnly    bool
	}{
		{"count >= 50", 50, 0, false},
		{"distinct > 9 && count >= 3", 3, 10, false},
		{"50 <= count and 4 < distinct", 50, 5, false},
		{"count >= 5 && (distinct >= 2 || sum > 1)", 5, 0, false},
		{"count >= 5 || distinct >= 3", 0, 0, false},
		{"sum > 10", 0, 0, false},
		{"count == 7", 0, 0, false},
		{"count * 2 >= 10", 0, 0, false},
		{"count >= 5.5", 0, 0, false},
		{"distinct >= 12", 0, 12, true},
		{"distinct >= 3 || distinct > 100", 0, 0, true},
	} {
		y := strings.Replace(validRule, "kind: match", "kind: threshold\nwindow: 5m\nthreshold: {distinct: SrcIP, having: '"+c.having+"'}", 1)
		set, err := LoadSources([]Source{{Name: "x.yaml", Data: []byte(y[:strings.Index(y, "tests:")])}}, nil, Options{})
		if err != nil {
			t.Fatalf("%s: %v", c.having, err)
		}
		th := set.Rules[0].Threshold
		if th.MinCount != c.count || th.MinDistinct != c.distinct || th.DistinctOnly != c.distinctOnly {
			t.Errorf("%s: floor count %d distinct %d, distinct only %v, want %d %d %v", c.having, th.MinCount, th.MinDistinct, th.DistinctOnly, c.count, c.distinct, c.distinctOnly)
		}
	}
}
