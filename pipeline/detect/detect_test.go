package detect

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/pipeline/alert"
	"github.com/vigil-sec/vigil/pipeline/incident"
	"github.com/vigil-sec/vigil/rules"
)

// recv is the receive time every test input gets, so outputs compare
// byte for byte whatever the files' modification times.
var recv = time.Date(2025, 10, 8, 0, 0, 0, 0, time.UTC)

func pkgDir(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("runtime.Caller failed")
	}
	return filepath.Dir(file)
}

var (
	libOnce sync.Once
	libSet  *rules.Set
	libErr  error
)

// library loads the shipped rule library once per test binary.
func library(t testing.TB) *rules.Set {
	t.Helper()
	libOnce.Do(func() {
		libSet, libErr = rules.LoadDir(filepath.Join(pkgDir(t), "..", "..", "rules", "library"), rules.Options{})
	})
	if libErr != nil {
		t.Fatalf("load rule library: %v", libErr)
	}
	return libSet
}

func fixture(t testing.TB, name string) string { return filepath.Join(pkgDir(t), "testdata", name) }

// fixtures are the committed inputs: an Entra sign-in JSON-lines export,
// a pretty-printed Entra audit envelope, Defender streaming records as
// CRLF JSON lines, and an Azure Activity portal CSV export with a BOM.
func fixtures(t testing.TB) []Input {
	return []Input{
		File(fixture(t, "signins.jsonl"), ""),
		File(fixture(t, "audit.json"), ""),
		File(fixture(t, "defender.jsonl"), "defender"),
		File(fixture(t, "activity_export.csv"), ""),
	}
}

// result is a parsed detect output.
type result struct {
	raw       []byte
	alerts    []alert.Alert
	incidents []incident.Incident
	errors    []ErrorLine
	stats     Stats
}

func detect(t testing.TB, inputs []Input, opts Options) result {
	t.Helper()
	var out, errs bytes.Buffer
	opts.Errors = &errs
	if opts.Received.IsZero() {
		opts.Received = recv
	}
	st, err := Run(context.Background(), library(t), inputs, &out, opts)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	res := result{raw: out.Bytes(), stats: st}
	for _, l := range bytes.Split(bytes.TrimSpace(out.Bytes()), []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		var typ struct{ Type string }
		if err := json.Unmarshal(l, &typ); err != nil {
			t.Fatalf("output line is not JSON: %v: %.200s", err, l)
		}
		switch typ.Type {
		case "alert":
			var a alert.Alert
			if err := json.Unmarshal(l, &a); err != nil {
				t.Fatal(err)
			}
			res.alerts = append(res.alerts, a)
		case "incident":
			var in incident.Incident
			if err := json.Unmarshal(l, &in); err != nil {
				t.Fatal(err)
			}
			res.incidents = append(res.incidents, in)
		default:
			t.Fatalf("output line of type %q: %.200s", typ.Type, l)
		}
	}
	for _, l := range bytes.Split(bytes.TrimSpace(errs.Bytes()), []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		var e ErrorLine
		if err := json.Unmarshal(l, &e); err != nil {
			t.Fatalf("error line is not JSON: %v: %.200s", err, l)
		}
		res.errors = append(res.errors, e)
	}
	return res
}

// summary lists "rule keyspace=key" per alert, in output order.
func summary(as []alert.Alert) []string {
	var s []string
	for _, a := range as {
		s = append(s, fmt.Sprintf("%s %s=%s", a.RuleID, a.Keyspace, a.Key))
	}
	return s
}

const (
	sprayIP = "203.0.113.45"
	victim  = "user07@fabrikam.example"
	vault   = "/subscriptions/1d2e3f40-0000-4000-8000-00000000beef/resourcegroups/rg-sec/providers/microsoft.keyvault/vaults/kv-fab01/providers/microsoft.insights/diagnosticsettings/to-sentinel"
)

// TestFixtures runs the S01 story (spray → successful sign-in → MFA
// registration, over three files in three formats), an encoded PowerShell
// process and an unrestored diagnostic-setting deletion at the very end of
// the input, and checks every alert and the S01 incident.
func TestFixtures(t *testing.T) {
	res := detect(t, fixtures(t), Options{})
	if len(res.errors) > 0 {
		t.Fatalf("error lines: %+v", res.errors)
	}
	want := []string{
		"identity.failed_signins_from_ip ip=" + sprayIP, // 6th failure, 03:03:20
		"identity.password_spray ip=" + sprayIP,         // 10th distinct user, 03:06:00
		"identity.spray_then_success ip=" + sprayIP,     // success at 03:25
		"identity.spray_signin_mfa_change user=" + victim,
		"identity.risky_signin_mfa_change user=" + victim,
		"identity.security_info_changed user=" + victim, // 03:50 (same time, rule order)
		"endpoint.encoded_powershell device=ws-0042.fabrikam.example",
		"cloud.diag_setting_deleted resource=" + vault, // deadline 04:59:30, after the last event
	}
	if got := summary(res.alerts); !slices.Equal(got, want) {
		t.Fatalf("alerts:\n got %q\nwant %q", got, want)
	}
	st := res.stats
	if st.Inputs != 4 || st.Events != 17 || st.Errors != 0 || st.Alerts != 8 || st.TailAlerts != 1 || st.Incidents != 2 || st.DuplicateAlerts != 0 {
		t.Errorf("stats %+v", st)
	}
	if st.LastTime != time.Date(2025, 10, 7, 3, 59, 30, 0, time.UTC) || !st.Final.After(st.LastTime.Add(time.Hour)) {
		t.Errorf("last time %v, final watermark %v", st.LastTime, st.Final)
	}

	byRule := map[string]alert.Alert{}
	for _, a := range res.alerts {
		byRule[a.RuleID] = a
	}
	spray := byRule["identity.password_spray"]
	if n := len(spray.Steps[0].Events); n != 10 {
		t.Errorf("password_spray carries %d events, want the 10 failures that crossed the threshold", n)
	}
	chain := byRule["identity.spray_signin_mfa_change"]
	if len(chain.Steps) != 3 || chain.Steps[0].Events[0].Source != "vigil.alert" || chain.Steps[0].Events[0].Action != "identity.password_spray" ||
		chain.Steps[2].Events[0].Source != "entra.AuditLogs" {
		t.Errorf("spray_signin_mfa_change steps: %+v", chain.Steps)
	}
	if a := byRule["cloud.diag_setting_deleted"]; !a.Time.Equal(time.Date(2025, 10, 7, 4, 59, 30, 0, time.UTC)) {
		t.Errorf("absence alert time %v, want the deadline 04:59:30", a.Time)
	}

	// The S01 incident: every identity alert, grouped over the IP and the user.
	var s01 *incident.Incident
	for i := range res.incidents {
		if slices.Contains(res.incidents[i].Rules, "identity.spray_signin_mfa_change") {
			s01 = &res.incidents[i]
		}
	}
	if s01 == nil {
		t.Fatalf("no incident holds the S01 chain: %+v", res.incidents)
	}
	wantRules := []string{"identity.failed_signins_from_ip", "identity.password_spray", "identity.risky_signin_mfa_change",
		"identity.security_info_changed", "identity.spray_signin_mfa_change", "identity.spray_then_success"}
	if !slices.Equal(s01.Rules, wantRules) || len(s01.Alerts) != 6 || s01.Severity != alert.SevHigh || s01.Revision != 6 {
		t.Errorf("S01 incident: rules %v, %d alerts, severity %s, revision %d", s01.Rules, len(s01.Alerts), s01.Severity, s01.Revision)
	}
	for _, e := range []alert.Entity{{Type: alert.EntityIP, Value: sprayIP}, {Type: alert.EntityUser, Value: victim}} {
		if !slices.Contains(s01.Entities, e) {
			t.Errorf("S01 incident lacks entity %v: %v", e, s01.Entities)
		}
	}
	if !s01.FirstTime.Equal(time.Date(2025, 10, 7, 3, 0, 0, 0, time.UTC)) || !s01.LastTime.Equal(time.Date(2025, 10, 7, 3, 50, 0, 0, time.UTC)) {
		t.Errorf("S01 incident spans %v – %v", s01.FirstTime, s01.LastTime)
	}
}

// TestDeterministic: two runs print the same bytes, and so do the inputs
// given in another order or cut differently (one file's lines split over
// two readers, pasted into another input).
func TestDeterministic(t *testing.T) {
	first := detect(t, fixtures(t), Options{})
	again := detect(t, fixtures(t), Options{})
	if !bytes.Equal(first.raw, again.raw) {
		t.Fatal("two runs over the same inputs differ")
	}
	in := fixtures(t)
	slices.Reverse(in)
	if rev := detect(t, in, Options{}); !bytes.Equal(first.raw, rev.raw) {
		t.Fatalf("reversed inputs differ:\n%s\n---\n%s", first.raw, rev.raw)
	}
	lines, err := os.ReadFile(fixture(t, "signins.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	ls := strings.SplitAfter(string(lines), "\n")
	defender, err := os.ReadFile(fixture(t, "defender.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	recut := []Input{
		File(fixture(t, "activity_export.csv"), ""),
		Reader("b", "", strings.NewReader(strings.Join(ls[5:], "")+string(defender))),
		File(fixture(t, "audit.json"), ""),
		Reader("a", "", strings.NewReader(strings.Join(ls[:5], ""))),
	}
	if got := detect(t, recut, Options{}); !bytes.Equal(first.raw, got.raw) {
		t.Fatalf("re-cut inputs differ:\n%s\n---\n%s", first.raw, got.raw)
	}
}

// TestAllRevisions prints each incident revision as made: the S01
// incident six times with revisions 1..6, and the last line of each
// incident equals the default output's.
func TestAllRevisions(t *testing.T) {
	def := detect(t, fixtures(t), Options{})
	all := detect(t, fixtures(t), Options{AllRevisions: true})
	if len(all.alerts) != len(def.alerts) {
		t.Fatalf("%d alerts with all revisions, %d without", len(all.alerts), len(def.alerts))
	}
	revs := map[string][]int{}
	last := map[string]incident.Incident{}
	for _, in := range all.incidents {
		revs[in.ID] = append(revs[in.ID], in.Revision)
		last[in.ID] = in
	}
	if len(all.incidents) != len(def.alerts) {
		t.Errorf("%d revisions for %d alerts", len(all.incidents), len(def.alerts))
	}
	for _, in := range def.incidents {
		want := make([]int, in.Revision)
		for i := range want {
			want[i] = i + 1
		}
		if !slices.Equal(revs[in.ID], want) {
			t.Errorf("incident %s revisions %v, want %v", in.ID, revs[in.ID], want)
		}
		a, _ := json.Marshal(last[in.ID])
		b, _ := json.Marshal(in)
		if !bytes.Equal(a, b) {
			t.Errorf("incident %s: last revision differs from the final one printed by default", in.ID)
		}
	}
}

// TestMalformedRecords: a torn JSON line, a sign-in whose time does not
// parse and an envelope record of an unknown shape are each reported with their input
// and line, counted, and the events around them still correlate.
func TestMalformedRecords(t *testing.T) {
	lines, err := os.ReadFile(fixture(t, "signins.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	ls := strings.Split(strings.TrimSpace(string(lines)), "\n")
	torn := ls[3][:len(ls[3])/2]
	mixed := append([]string{}, ls[:3]...)
	mixed = append(mixed, torn, `{"time":"yesterday","category":"SignInLogs","properties":{"userPrincipalName":"x@fabrikam.example"}}`, "", `{"records":[{"hello":"world"}]}`)
	mixed = append(mixed, ls[3:]...)
	in := []Input{Reader("mixed.jsonl", "entra", strings.NewReader(strings.Join(mixed, "\n")+"\n")), File(fixture(t, "audit.json"), "")}
	res := detect(t, in, Options{})

	type where struct {
		stage string
		line  int
	}
	var got []where
	for _, e := range res.errors {
		if e.Type != "error" || e.Input != "mixed.jsonl" || e.Error == "" || e.Raw == "" {
			t.Errorf("error line %+v", e)
		}
		got = append(got, where{e.Stage, e.Line})
	}
	want := []where{{"normalize", 4}, {"normalize", 5}, {"normalize", 7}}
	if !slices.Equal(got, want) {
		t.Fatalf("errors at %v, want %v: %+v", got, want, res.errors)
	}
	if res.errors[0].Raw != torn {
		t.Errorf("torn line reported as %q", res.errors[0].Raw)
	}
	if res.stats.Errors != 3 || res.stats.Events != 13 {
		t.Errorf("stats %+v, want 3 errors and 13 events", res.stats)
	}
	rulesFired := map[string]bool{}
	for _, a := range res.alerts {
		rulesFired[a.RuleID] = true
	}
	for _, r := range []string{"identity.password_spray", "identity.spray_then_success", "identity.spray_signin_mfa_change"} {
		if !rulesFired[r] {
			t.Errorf("%s did not fire next to the bad records; fired: %v", r, summary(res.alerts))
		}
	}
}

// TestUnreadableInput: an input that cannot be opened is one error line;
// the others still run.
func TestUnreadableInput(t *testing.T) {
	res := detect(t, []Input{File(filepath.Join(t.TempDir(), "missing.json"), ""), File(fixture(t, "defender.jsonl"), "")}, Options{})
	if len(res.errors) != 1 || res.errors[0].Stage != "read" || !strings.Contains(res.errors[0].Input, "missing.json") {
		t.Fatalf("errors %+v", res.errors)
	}
	if got := summary(res.alerts); !slices.Equal(got, []string{"endpoint.encoded_powershell device=ws-0042.fabrikam.example"}) {
		t.Errorf("alerts %q", got)
	}
}

func TestCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out bytes.Buffer
	if _, err := Run(ctx, library(t), fixtures(t), &out, Options{Errors: &out}); err == nil {
		t.Fatal("Run with a cancelled context returned no error")
	}
}
