package normalize

import (
	"bytes"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/pipeline/event"
)

func TestDefenderEnvelopeFixture(t *testing.T) {
	evs, errs := Parse("defender", readFile(t, "testdata/defender_envelope.json"), recv)
	if len(errs) != 1 || errs[0].Index != 3 || !strings.Contains(errs[0].Error(), "garbage-time") {
		t.Fatalf("errs = %v, want one error for record 3 (bad Timestamp)", errs)
	}
	if !bytes.Contains(errs[0].Raw, []byte(`"not-valid-json-below"`)) {
		t.Errorf("error raw is not the bad record: %s", errs[0].Raw)
	}
	if len(evs) != 6 {
		t.Fatalf("got %d events, want 6 (the good records beside the bad one)", len(evs))
	}

	p := findEvent(t, evs, "defender.DeviceProcessEvents", "ProcessCreated")
	expect(t, "process", []check{
		{"Time", p.Time, ts("2024-03-05T10:15:00.0259186Z")},
		{"Received", p.Received, recv},
		{"Category", p.Category, event.CatEndpoint},
		{"Type", p.Type, event.TypeProcess},
		{"Outcome", p.Outcome, event.OutcomeSuccess},
		{"User", p.User, "jdoe@fabrikam.example"},
		{"UserID", p.UserID, "7c1d2e3f-aaaa-bbbb-cccc-000000000001"},
		{"Device", p.Device, "wks-042.fabrikam.example"},
		{"DeviceID", p.DeviceID, "aa11bb22cc33dd44ee55ff6677889900aabbccdd"},
		{"Process.Name", p.Process.Name, "powershell.exe"},
		{"Process.Path", p.Process.Path, `C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe`},
		{"Process.CommandLine", p.Process.CommandLine, "powershell.exe -nop -w hidden -enc SQBFAFgA"},
		{"Process.PID", p.Process.PID, int64(7312)},
		{"Process.SHA256", p.Process.SHA256, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
		{"Process.ParentName", p.Process.ParentName, "winword.exe"},
		{"Process.ParentCommandLine", p.Process.ParentCommandLine, `"WINWORD.EXE" /n "C:\Users\jdoe\Downloads\invoice.docm"`},
		{"Process.ParentPID", p.Process.ParentPID, int64(5120)},
		{"ID", p.ID, "DeviceProcessEvents:aa11bb22cc33dd44ee55ff6677889900aabbccdd:18822:20240305T101500.0259186"},
	}...)
	// Raw is the whole envelope record, properties included.
	var env struct {
		Category   string          `json:"category"`
		Properties json.RawMessage `json:"properties"`
	}
	if err := json.Unmarshal(p.Raw, &env); err != nil || env.Category != "AdvancedHunting-DeviceProcessEvents" || len(env.Properties) == 0 {
		t.Errorf("Raw is not the envelope record: %v %s", err, p.Raw)
	}
	if err := p.DecodeFields(); err != nil || p.Fields["tenantId"] != "0f0e0d0c-1111-2222-3333-444455556666" {
		t.Errorf("Fields from Raw: %v %v", err, p.Fields["tenantId"])
	}

	n := findEvent(t, evs, "defender.DeviceNetworkEvents", "ConnectionSuccess")
	expect(t, "network", []check{
		{"Type", n.Type, event.TypeNetwork},
		{"SrcIP", n.SrcIP, "10.20.30.40"},
		{"SrcPort", n.SrcPort, 51514}, // "51514" string drift
		{"DstIP", n.DstIP, "203.0.113.77"},
		{"DstPort", n.DstPort, 443},
		{"Protocol", n.Protocol, "tcp"},
		{"URL", n.URL, "cdn.badexample.test"},
		{"Outcome", n.Outcome, event.OutcomeSuccess},
		{"User", n.User, "jdoe@fabrikam.example"},
		{"Process.Name", n.Process.Name, "powershell.exe"},
		{"ID", n.ID, "DeviceNetworkEvents:aa11bb22cc33dd44ee55ff6677889900aabbccdd:18823:20240305T101501.5000000"},
	}...)

	l := findEvent(t, evs, "defender.DeviceLogonEvents", "LogonFailed")
	expect(t, "logon", []check{
		{"Time (offset +01:00)", l.Time, ts("2024-03-05T09:15:02Z")},
		{"Type", l.Type, event.TypeLogon},
		{"Outcome", l.Outcome, event.OutcomeFailure},
		{"User", l.User, `fabrikam\svc_backup`},
		{"Device", l.Device, "srv-db-01"},
		{"SrcIP", l.SrcIP, "198.51.100.23"},
		{"SrcPort", l.SrcPort, 0}, // "" drift
	}...)
	if len(l.Related.Devices) != 1 || l.Related.Devices[0] != "kali-01" {
		t.Errorf("logon Related.Devices = %v", l.Related.Devices)
	}

	id := findEvent(t, evs, "defender.IdentityLogonEvents", "")
	expect(t, "identity logon", []check{
		{"Category", id.Category, event.CatIdentity},
		{"User", id.User, `fabrikam.example\jdoe`},
		{"SrcIP", id.SrcIP, "10.20.30.40"},
		{"DstIP", id.DstIP, "10.0.0.5"},
		{"DstPort", id.DstPort, 88},
		{"Outcome", id.Outcome, event.OutcomeSuccess},
		{"App", id.App, "Active Directory"},
	}...)

	u := findEvent(t, evs, "defender.UrlClickEvents", "")
	expect(t, "url click", []check{
		{"Type", u.Type, event.TypeURLClick},
		{"User", u.User, "ann.lee@fabrikam.example"},
		{"Outcome", u.Outcome, event.OutcomeFailure},
		{"URL", u.URL, "https://login.fabrikam-example.test/"},
	}...)

	a := findEvent(t, evs, "defender.AlertInfo", "")
	expect(t, "alert", []check{
		{"Category", a.Category, event.CatAlert},
		{"Type", a.Type, event.TypeAlert},
		{"Severity", a.Severity, "high"},
		{"Title", a.Title, "Suspicious PowerShell command line"},
		{"ID", a.ID, "AlertInfo:da0000000000000000000_1234"},
	}...)
}

func TestDefenderLinesBOMCRLFAndTornLine(t *testing.T) {
	evs, errs := Parse("", readFile(t, "testdata/defender_lines.jsonl"), recv)
	if len(errs) != 1 || errs[0].Index != 2 {
		t.Fatalf("errs = %v, want exactly the torn line (index 2)", errs)
	}
	if bytes.Contains(errs[0].Raw, []byte("EmailEvents")) {
		t.Errorf("torn line swallowed the next line: %s", errs[0].Raw)
	}
	if len(evs) != 3 {
		t.Fatalf("got %d events, want 3", len(evs))
	}
	f := findEvent(t, evs, "defender.DeviceFileEvents", "FileCreated")
	expect(t, "file", []check{
		{"Time", f.Time, ts("2024-03-05T10:59:59.12Z")},
		{"Type", f.Type, event.TypeFile},
		{"File.Name", f.File.Name, "payload.dll"},
		{"File.Path", f.File.Path, `C:\Users\jdoe\AppData\Local\Temp\payload.dll`},
		{"File.Size", f.File.Size, int64(20480)},
		{"URL", f.URL, "http://203.0.113.77/p.dll"},
		{"SrcIP", f.SrcIP, "203.0.113.77"},
		{"User", f.User, `fabrikam\jdoe`},
	}...)
	if f.Raw[0] != '{' || bytes.HasSuffix(f.Raw, []byte("\r\n")) {
		t.Errorf("Raw must be the record alone, got %q", f.Raw[:10])
	}
	r := findEvent(t, evs, "defender.DeviceRegistryEvents", "")
	expect(t, "registry", []check{
		{"Type", r.Type, event.TypeRegistry},
		{"User", r.User, "jdoe@fabrikam.example"},
	}...)
	m := findEvent(t, evs, "defender.EmailEvents", "")
	expect(t, "email", []check{
		{"Category", m.Category, event.CatEmail},
		{"User", m.User, "ann.lee@fabrikam.example"},
		{"SrcIP", m.SrcIP, "192.0.2.200"},
		{"Domain", m.Domain, "contoso-example.test"},
		{"Title", m.Title, "Invoice overdue"},
		{"Outcome", m.Outcome, event.OutcomeSuccess},
		{"Action", m.Action, "Delivered"},
	}...)
}

func TestDefenderPrettyAndSentinelRow(t *testing.T) {
	evs := parseFile(t, "defender", "testdata/defender_pretty.json")
	if len(evs) != 2 {
		t.Fatalf("got %d events, want 2", len(evs))
	}
	c := findEvent(t, evs, "defender.CloudAppEvents", "")
	expect(t, "cloudapp", []check{
		{"Category", c.Category, event.CatCloud},
		{"User", c.User, "ann.lee@fabrikam.example"},
		{"SrcIP", c.SrcIP, "198.51.100.99"},
		{"Country", c.Country, "NL"},
		{"App", c.App, "Microsoft Exchange Online"},
		{"Action", c.Action, "New-InboxRule"},
	}...)
	s := findEvent(t, evs, "defender.DeviceProcessEvents", "")
	expect(t, "sentinel row", []check{
		{"Time (Timestamp, not TimeGenerated)", s.Time, ts("2024-03-05T12:00:59.1234567Z")},
		{"User", s.User, `fabrikam\jdoe`},
		{"Device", s.Device, "wks-042"},
		{"Process.Name", s.Process.Name, "whoami.exe"},
		{"Process.ParentName", s.Process.ParentName, "cmd.exe"},
	}...)
}

// TestDefenderRealSamples asserts values read by hand from the real
// streaming-API samples in ../shared/samples/defender-xdr.
func TestDefenderRealSamples(t *testing.T) {
	dir := filepath.Join(samplesDir(t), "defender-xdr")
	evs := parseFile(t, "defender", filepath.Join(dir, "elastic-m365_defender_streaming_device-events.jsonl"))
	if len(evs) != 8 {
		t.Fatalf("device-events: %d events, want 8", len(evs))
	}
	p := findEvent(t, evs, "defender.DeviceProcessEvents", "ProcessCreated")
	expect(t, "DeviceProcessEvents", []check{
		{"Time", p.Time, ts("2022-11-09T17:59:52.6265786Z")},
		{"Category", p.Category, event.CatEndpoint},
		{"Type", p.Type, event.TypeProcess},
		{"User", p.User, `testmachine6\administrator1`},
		{"Device", p.Device, "testmachine6"},
		{"DeviceID", p.DeviceID, "999b6fd7c532534ba50b3232fa992c38a273d4fb"},
		{"Process.Name", p.Process.Name, "smartscreen.exe"},
		{"Process.CommandLine", p.Process.CommandLine, "smartscreen.exe -Embedding"},
		{"Process.PID", p.Process.PID, int64(6412)},
		{"Process.MD5", p.Process.MD5, "b9d697df9e883f0d99720b0430448cb1"},
		{"Process.ParentName", p.Process.ParentName, "svchost.exe"},
		{"Process.ParentCommandLine", p.Process.ParentCommandLine, "svchost.exe -k DcomLaunch -p"},
		{"Process.ParentPID", p.Process.ParentPID, int64(996)},
		{"Outcome", p.Outcome, event.OutcomeSuccess},
	}...)
	l := findEvent(t, evs, "defender.DeviceLogonEvents", "LogonFailed")
	expect(t, "DeviceLogonEvents", []check{
		{"Time", l.Time, ts("2022-11-09T17:47:28.8167685Z")},
		{"User", l.User, "administrator"},
		{"SrcIP", l.SrcIP, "67.43.156.1"},
		{"Device", l.Device, "testmachine6"},
		{"Outcome", l.Outcome, event.OutcomeFailure},
	}...)
	n := findEvent(t, evs, "defender.DeviceNetworkEvents", "ConnectionFailed")
	expect(t, "DeviceNetworkEvents", []check{
		{"Time", n.Time, ts("2023-07-19T12:17:42.7782364Z")},
		{"Device", n.Device, "janeslaptop1.corporatedomain"},
		{"User", n.User, "email@domain"},
		{"SrcIP", n.SrcIP, "89.160.20.112"},
		{"SrcPort", n.SrcPort, 50258},
		{"DstIP", n.DstIP, "175.16.199.0"},
		{"DstPort", n.DstPort, 80},
		{"Protocol", n.Protocol, "tcp"},
		{"Outcome", n.Outcome, event.OutcomeFailure},
		{"Process.Name", n.Process.Name, "msedgewebview2.exe"},
	}...)
	d := findEvent(t, evs, "defender.DeviceNetworkEvents", "DnsConnectionInspected")
	expect(t, "DNS (AdditionalFields object)", []check{
		{"Type", d.Type, event.TypeDNS},
		{"DstPort", d.DstPort, 53},
		{"Protocol", d.Protocol, "udp"},
	}...)
	ins := findEvent(t, evs, "defender.DeviceNetworkEvents", "NetworkSignatureInspected")
	expect(t, "DeviceNetworkEvents 2 (5 fractional digits)", []check{
		{"Time", ins.Time, ts("2022-11-09T17:43:28.18835Z")},
		{"SrcIP", ins.SrcIP, "81.2.69.144"},
		{"DstIP", ins.DstIP, "81.2.69.142"},
	}...)
	f := findEvent(t, evs, "defender.DeviceFileEvents", "FileCreated")
	expect(t, "DeviceFileEvents", []check{
		{"File.Name", f.File.Name, "VMAgentDisabler.dll"},
		{"File.SHA256", f.File.SHA256, "add683a6910abbbf0e28b557fad0ba998166394932ae2aca069d9aa19ea8fe88"},
		{"User", f.User, `nt authority\system`},
		{"Process.Name", f.Process.Name, "waappagent.exe"},
	}...)

	evs = parseFile(t, "defender", filepath.Join(dir, "elastic-m365_defender_streaming_identity-cloudapp.jsonl"))
	il := findEvent(t, evs, "defender.IdentityLogonEvents", "")
	expect(t, "IdentityLogonEvents", []check{
		{"Time", il.Time, ts("2022-11-22T06:19:37Z")},
		{"User", il.User, "administrator1"},
		{"SrcIP", il.SrcIP, "89.160.20.112"},
		{"Device", il.Device, "testmachine5"},
		{"Outcome", il.Outcome, event.OutcomeSuccess},
	}...)
	q := findEvent(t, evs, "defender.IdentityQueryEvents", "")
	expect(t, "IdentityQueryEvents (opaque ReportId)", []check{
		{"SrcIP", q.SrcIP, "10.180.101.20"},
		{"SrcPort", q.SrcPort, 58210},
		{"DstIP", q.DstIP, "10.180.100.81"},
		{"DstPort", q.DstPort, 445},
		{"Device", q.Device, "d2wxa1303r.d300b.cenlar.com"},
	}...)
	ca := findEvent(t, evs, "defender.CloudAppEvents", "")
	expect(t, "CloudAppEvents", []check{
		{"SrcIP", ca.SrcIP, "81.2.69.142"},
		{"UserID", ca.UserID, "007c979b-47e7-4747-b9a3-58de6bdb275a"},
		{"App", ca.App, "Microsoft Azure"},
	}...)

	evs = parseFile(t, "defender", filepath.Join(dir, "elastic-m365_defender_streaming_email.jsonl"))
	em := findEvent(t, evs, "defender.EmailEvents", "")
	expect(t, "EmailEvents", []check{
		{"User", em.User, "user@testmsftalerts.onmicrosoft.com"},
		{"SrcIP", em.SrcIP, "81.2.69.144"},
		{"Outcome", em.Outcome, event.OutcomeSuccess},
	}...)
	at := findEvent(t, evs, "defender.EmailAttachmentInfo", "")
	expect(t, "EmailAttachmentInfo", []check{
		{"File.Name", at.File.Name, "AttachedImage"},
		{"File.Size", at.File.Size, int64(1354)},
	}...)
	eu := findEvent(t, evs, "defender.EmailUrlInfo", "")
	expect(t, "EmailUrlInfo", []check{
		{"Domain", eu.Domain, "southcentralusr-notifyp.svc.ms"},
		{"Time", eu.Time, ts("2022-11-22T06:19:37Z")},
	}...)

	evs = parseFile(t, "defender", filepath.Join(dir, "elastic-m365_defender_streaming_alerts.jsonl"))
	ai := findEvent(t, evs, "defender.AlertInfo", "")
	expect(t, "AlertInfo", []check{
		{"Title", ai.Title, "Anomalous silent process exit monitor registration"},
		{"Severity", ai.Severity, "medium"},
		{"ID", ai.ID, "AlertInfo:da638034938542563831_172489803"},
	}...)
	ev := findEvent(t, evs, "defender.AlertEvidence", "")
	expect(t, "AlertEvidence", []check{
		{"Device", ev.Device, "testmachine1"},
		{"User", ev.User, `a-domain\account name`},
		{"File.SHA1", ev.File.SHA1, "eff06d27e192d18afb00237ca00c4e5dd4012345"},
		{"SrcIP", ev.SrcIP, "81.2.69.192"},
	}...)
}

func TestRecordErrorUnwrap(t *testing.T) {
	_, errs := Parse("", []byte(`{"records":[{"category":"NoSuchThing","x":1}]}`), recv)
	if len(errs) != 1 || !errors.Is(errs[0], ErrUnknownFormat) {
		t.Fatalf("errs = %v, want ErrUnknownFormat", errs)
	}
}
