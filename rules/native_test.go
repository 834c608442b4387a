package rules

import (
	"encoding/json"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/expr-lang/expr/vm"

	"github.com/vigil-sec/vigil/pipeline/event"
)

// TestNativeEdgeCases compares the closures with expr's VM on the corners
// of expr's semantics that the native form re-implements: optional chains,
// ?? over missing and drifting Fields values, numeric equality across int
// and float, errors inside && and ||, string() of non-strings.
func TestNativeEdgeCases(t *testing.T) {
	conds := []struct {
		where     string
		fallbacks int // subtrees left to expr; -1: not checked
	}{
		{`Action in ["A", "B"] && Process.Name == "x.exe" && DstPort > 0 && !is_private(DstIP) && regex(Process.CommandLine, "(?i)enc")`, 0},
		{`Category == "endpoint" && Outcome != "failure" && DstPort in [80, 443] && BytesOut >= 10`, 0},
		{`icontains_any(Process.CommandLine, ["-ENC", "frombase64", "ünïcode"]) && icontains_any(User, ["alice", "bob", "carol", "dave"])`, 0},
		{`icontains_any(User, ["karol", "zed"])`, 0},
		{`icontains_any(Process.CommandLine, ["-ENC", "frombase64"]) || istartswith(User, "ADM") || iendswith(Device, ".CORP") || iequals(Action, "a")`, 0},
		{`lower(Process.Name) + ":" + string(DstPort) contains "x.exe:4"`, 0},
		{`(Action == "A" ? DstIP :(SrcIP + ":" + string(BytesOut))) in ["8.8.8.8", "10.1.2.3:20"]`, 0}, // no ": " in the YAML
		{`(DstPort > 100 ? string(Fields.LogonType ?? "") :Device) in ["3", "pc1.corp"]`, 0},
		{`Fields.LogonType == 3`, 0},
		{`Fields.LogonType == "3"`, 0},
		{`string(Fields.properties?.riskState ?? Fields.RiskState ?? "") == "atRisk"`, 0},
		{`Fields.properties.riskState == "atRisk"`, 0},
		{`string(Fields.properties?.riskState ?? Fields.RiskState ?? "none") == "none"`, 0},
		{`(Fields.properties?.nested?.deep ?? 5) == 5`, 0},
		{`Fields.properties?.nested?.deep == nil`, 0},
		{`string(Fields.LogonType) == "3"`, 0},
		{`toJSON(Fields.properties ?? "") contains "atRisk" && toJSON(Fields) contains "3"`, 0},
		{`Fields.missing.x == 1 || Action == "A"`, 0},
		{`Action == "A" || Fields.missing.x == 1`, 0},
		{`Action != "" && any(Fields.list ?? [], {# == "b"})`, 1},
		{`cidr(SrcIP, "10.0.0.0/8") && File.Name endsWith ".exe" && File.Name startsWith "x" && File.Name matches "^x.*e$"`, 0},
		{`upn_user(User) == "alice" && lower(upn_domain(User)) == "corp.example"`, -1},
		{`lower(last(split(File.Name, "."))) == "exe" && last(split(User, "@")) != "x"`, 0},
		{`last(split(string(Fields.properties?.riskState ?? Fields.RiskState ?? ""), "Ri")) == "sk"`, 0},
		{`last(split(Process.CommandLine, " -")) in ["enc AAAA", ""] || last(split(Device, "")) == "p"`, 1},
		{`watchlist("people", User) || watchlist("people", string(Fields.properties?.riskState ?? "")) || ti_ip(DstIP)`, 0},
		{`Action != "x" && !watchlist("people", Device) && !ti_domain(Device)`, 0},
		{`Fields.properties != nil && Fields.properties?.riskState == "atRisk"`, 0},
		{`Fields.properties.nested.deep == 1 || Fields.dup?.a == true`, 0},
		{`(Fields.properties?.nested.deep ?? 0) == 0 && Fields.dup != 1`, 0},
		{`Fields.properties?.nested.deep == nil`, 0},
	}
	lookups := NewLookups()
	if err := lookups.AddWatchlist("people", strings.NewReader("value,role\nalice@corp.example,admin\natRisk,x\n")); err != nil {
		t.Fatal(err)
	}
	lookups.addTI(TIIP, "10.0.0.1")
	raws := []string{
		`{"LogonType":3,"properties":{"riskState":"atRisk","nested":null},"list":["a","b"]}`,
		`{"LogonType":"3","properties":"{\"riskState\":\"atRisk\"}","RiskState":"atRisk"}`,
		`{"LogonType":3.0,"properties":{"nested":{"deep":1}},"missing":{"x":1}}`,
		`{}`,
		``,
		// duplicate keys (the last wins, and what was inside the first goes)
		`{"dup":{"a":true},"dup":1,"properties":{"riskState":"atRisk"},"properties":{"nested":{"deep":1}}}`,
		`{"dup":1,"dup":{"a":true},"properties":{"nested":null,"riskState":"x","riskState":"atRisk"}}`,
		"{\"LogonType\":3,\"properties\":{\"riskState\":\"atRisk\xff\"}}", // invalid UTF-8
		`[1,2]`,
		`{"properties":[{"riskState":"atRisk"}],"LogonType":true}`,
	}
	base := event.Event{Action: "A", Category: event.CatEndpoint, Outcome: event.OutcomeSuccess,
		User: "Alice@Corp.Example", Device: "pc1.corp", SrcIP: "10.1.2.3", DstIP: "8.8.8.8", DstPort: 443, BytesOut: 20,
		Process: event.Process{Name: "x.exe", CommandLine: "x.exe -enc AAAA"}, File: event.File{Name: "xe.exe"}}
	variants := []func(*event.Event){
		func(*event.Event) {},
		func(e *event.Event) { e.Action, e.DstPort, e.DstIP = "B", 80, "10.0.0.1" },
		func(e *event.Event) { e.Action, e.Process = "C", event.Process{} },
		func(e *event.Event) { e.Outcome, e.User, e.File.Name = event.OutcomeFailure, "bob", "y.exe" },
		func(e *event.Event) { e.User = "\u212aAROL" }, // the Kelvin sign folds to k
	}
	var machine vm.VM
	for _, c := range conds {
		y := strings.Replace(validRule, `Type == "process" && Process.Name == "powershell.exe"`, c.where, 1)
		y = y[:strings.Index(y, "tests:")]
		set, err := LoadSources([]Source{{Name: "x.yaml", Data: []byte(y)}}, lookups, Options{})
		if err != nil {
			t.Fatalf("%s: %v", c.where, err)
		}
		x := set.Rules[0].Steps[0].Where
		if x.Native == nil {
			t.Errorf("%s: no native form", c.where)
			continue
		}
		if c.fallbacks >= 0 && x.Native.Fallbacks != c.fallbacks {
			t.Errorf("%s: %d subtrees left to expr, want %d", c.where, x.Native.Fallbacks, c.fallbacks)
		}
		trues := 0
		for _, raw := range raws {
			for _, v := range variants {
				ev := base
				v(&ev)
				ev.Raw = json.RawMessage(raw)
				_ = ev.DecodeFields()
				env := NewEnv(&ev)
				out, verr := machine.Run(x.Program, env)
				want := verr == nil && out == true
				// Fields decoded (the closures read the maps), then a
				// fresh copy read through the record's FieldView.
				lazy := ev
				lazy.Fields = nil
				frames := []*Frame{{Env: env, VM: &machine}, {Env: NewEnv(&lazy), VM: &machine, Paths: set.FieldPaths()}}
				for i, f := range frames {
					got, nerr := x.Native.Eval(f)
					if (nerr == nil && got) != want {
						t.Errorf("%s on %s %+v (frame %d): native %v (%v), VM %v (%v)", c.where, raw, ev.Action, i, got, nerr, out, verr)
					}
					if (nerr == nil) != (verr == nil) {
						t.Errorf("%s on %s (frame %d): native error %v, VM error %v", c.where, raw, i, nerr, verr)
					}
				}
				if want {
					trues++
				}
			}
		}
		if trues == 0 {
			t.Errorf("%s is never true here: the comparison shows nothing", c.where)
		}
	}
}

// TestToJSONFieldsPerEvent: toJSON(Fields) of the whole record is kept
// for the event a frame reads, and made again for the next one (a frame
// is reused for event after event, its Env Reset in between).
func TestToJSONFieldsPerEvent(t *testing.T) {
	x, f := reusedFrame(t, `toJSON(Fields) contains "\"k\": \"v1\"" && !(toJSON(Fields) contains "v2")`)
	env := f.Env
	for i, c := range []struct {
		raw  string
		want bool
	}{{`{"k":"v1"}`, true}, {`{"k":"v2"}`, false}, {`{"k":"v1","j":"v2"}`, false}, {`{"j":1,"k":"v1"}`, true}} {
		ev := event.Event{Raw: json.RawMessage(c.raw)}
		env.Reset(&ev)
		if got, err := x.Native.Eval(f); got != c.want || err != nil {
			t.Errorf("event %d %s: %v (%v), want %v", i, c.raw, got, err, c.want)
		}
	}
}

// TestAddrMemo: a frame reused for event after event answers the IP
// helpers as parsing afresh would, with more distinct addresses than its
// memo holds, repeats, spaces and strings that are no address.
func TestAddrMemo(t *testing.T) {
	x, f := reusedFrame(t, `is_private(SrcIP) && !is_public(DstIP) || cidr(DstIP, "10.0.0.0/8")`)
	env := f.Env
	addrs := []string{"10.1.2.3", "8.8.8.8", "192.168.1.1", "", "not-an-ip", " 10.9.9.9 ", "::ffff:10.0.0.1", "203.0.113.5", "2001:db8::1", "172.16.0.1", "100.64.0.1"}
	rnd := rand.New(rand.NewPCG(7, 7))
	trues := 0
	for i := 0; i < 2000; i++ {
		ev := event.Event{SrcIP: addrs[rnd.IntN(len(addrs))], DstIP: addrs[rnd.IntN(len(addrs))]}
		env.Reset(&ev)
		want := isPrivate(ev.SrcIP) && !isPublic(ev.DstIP) || cidrOf(ev.DstIP, "10.0.0.0/8")
		got, err := x.Native.Eval(f)
		if got != want || err != nil {
			t.Fatalf("SrcIP %q DstIP %q: %v (%v), want %v", ev.SrcIP, ev.DstIP, got, err, want)
		}
		if want {
			trues++
		}
	}
	if trues == 0 || trues == 2000 {
		t.Fatalf("%d of 2000 true: the comparison shows nothing", trues)
	}
}

// reusedFrame compiles a match rule with the condition where and returns
// it with one frame, to be reused for event after event as the engine
// does.
func reusedFrame(t *testing.T, where string) (*Expr, *Frame) {
	t.Helper()
	y := strings.Replace(validRule, `Type == "process" && Process.Name == "powershell.exe"`, "'"+where+"'", 1)
	set, err := LoadSources([]Source{{Name: "x.yaml", Data: []byte(y[:strings.Index(y, "tests:")])}}, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return set.Rules[0].Steps[0].Where, &Frame{Env: &Env{}, Paths: set.FieldPaths()}
}

func cidrOf(s, net string) bool {
	a, ok := parseAddr(s)
	return ok && netip.MustParsePrefix(net).Contains(a)
}
