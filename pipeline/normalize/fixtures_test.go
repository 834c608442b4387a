package normalize

import (
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/pipeline/event"
)

// TestMixedEnvelope checks one Event Hubs message carrying several
// diagnostic categories, as a shared hub does.
func TestMixedEnvelope(t *testing.T) {
	evs := parseFile(t, "auto", "testdata/mixed_envelope.json")
	if len(evs) != 7 {
		t.Fatalf("%d events, want 7", len(evs))
	}
	s := findEvent(t, evs, "entra.SignInLogs", "")
	expect(t, "sign-in", []check{
		{"Time (+01:00)", s.Time, ts("2024-03-05T09:58:59.9Z")}, {"User", s.User, "jdoe@fabrikam.example"},
		{"Outcome", s.Outcome, event.OutcomeFailure}, {"Device", s.Device, "wks-042"}, {"Country", s.Country, "NL"},
		{"SrcIP", s.SrcIP, "198.51.100.23"}, {"ID", s.ID, "5a5a5a5a-0000-1111-2222-333333333333"}, {"App", s.App, "Office 365 Exchange Online"},
	}...)
	ni := findEvent(t, evs, "entra.NonInteractiveUserSignInLogs", "")
	expect(t, "non-interactive", check{"Outcome", ni.Outcome, event.OutcomeSuccess})
	a := findEvent(t, evs, "entra.AuditLogs", "")
	expect(t, "audit", []check{{"User", a.User, "jdoe@fabrikam.example"}, {"Action", a.Action, "Add member to role"}, {"Outcome", a.Outcome, event.OutcomeSuccess}}...)
	if len(a.Related.Users) != 1 || a.Related.Users[0] != "backdoor@fabrikam.example" {
		t.Errorf("audit Related.Users = %v, want the target UPN", a.Related.Users)
	}
	r := findEvent(t, evs, "entra.UserRiskEvents", "")
	expect(t, "risk", []check{{"Type", r.Type, event.TypeAlert}, {"Severity", r.Severity, "high"}, {"Time", r.Time, ts("2024-03-05T10:01:30Z")}, {"User", r.User, "jdoe@fabrikam.example"}}...)
	ac := findEvent(t, evs, "azure.Activity", "")
	expect(t, "activity", []check{{"User", ac.User, "jdoe@fabrikam.example"}, {"ID", ac.ID, "act-0001"}, {"Action", ac.Action, "microsoft.keyvault/vaults/secrets/read"},
		{"Resource", ac.Resource, "/subscriptions/11111111-2222-3333-4444-555555555555/resourcegroups/prod/providers/microsoft.keyvault/vaults/kv-prod"}}...)
	fw := findEvent(t, evs, "firewall.AZFWApplicationRule", "")
	expect(t, "firewall", []check{{"Domain", fw.Domain, "exfil.example.test"}, {"Outcome", fw.Outcome, event.OutcomeFailure}, {"SrcIP", fw.SrcIP, "10.20.30.40"}}...)
	st := findEvent(t, evs, "storage.StorageBlobLogs", "GetBlob")
	expect(t, "storage", []check{{"SrcIP ([v6]:port)", st.SrcIP, "2001:db8::5"}, {"Outcome (403)", st.Outcome, event.OutcomeFailure}, {"User", st.User, "jdoe@fabrikam.example"}}...)
}

func TestSyslogAndCEFLines(t *testing.T) {
	evs, errs := Parse("syslog", readFile(t, "testdata/syslog_cef.log"), recv)
	if len(errs) != 0 {
		t.Fatalf("errs: %v", errs)
	}
	if len(evs) != 5 {
		t.Fatalf("%d events, want 5", len(evs))
	}
	c := evs[0]
	expect(t, "CEF in RFC5424", []check{
		{"Source", c.Source, "cef.CommonSecurityLog"}, {"Time (rt ms)", c.Time, ts("2024-03-05T10:06:00Z")},
		{"SrcIP", c.SrcIP, "10.20.30.40"}, {"DstPort", c.DstPort, 443}, {"Protocol", c.Protocol, "tcp"},
		{"User (escaped backslash)", c.User, `fabrikam\jdoe`}, {"Outcome", c.Outcome, event.OutcomeSuccess},
		{"Device", c.Device, "fw01.fabrikam.example"}, {"Severity", c.Severity, "low"},
	}...)
	if err := c.DecodeFields(); err != nil || c.Fields["msg"] != "allowed by rule = web" {
		t.Errorf("CEF msg field = %q (%v)", c.Fields["msg"], err)
	}
	b := evs[1]
	expect(t, "BSD syslog", []check{{"Source", b.Source, "syslog.Syslog"}, {"Device", b.Device, "fw01"}, {"Process.Name", b.Process.Name, "sshd"},
		{"Process.PID", b.Process.PID, int64(811)}, {"Time", b.Time, ts("2025-03-05T10:06:01Z")}}...)
	h := evs[2]
	expect(t, "bare CEF", []check{{"Severity", h.Severity, "high"}, {"Title", h.Title, "Port scan"}, {"Time (received)", h.Time, recv}}...)
	if err := h.DecodeFields(); err != nil || h.Fields["DeviceVendor"] != "Vendor|X" || h.Fields["cs1"] != "multi word value\nnext" {
		t.Errorf("bare CEF fields: %v %q %q", err, h.Fields["DeviceVendor"], h.Fields["cs1"])
	}
}

func TestNSGv1WithBOMAndBadTuple(t *testing.T) {
	evs, errs := Parse("", readFile(t, "testdata/nsg_v1_bom.json"), recv)
	if len(errs) != 1 || errs[0].Index != 1 || !strings.Contains(errs[0].Error(), "flow tuple") {
		t.Fatalf("errs = %v, want the second record's bad tuple", errs)
	}
	if len(evs) != 2 {
		t.Fatalf("%d events, want 2", len(evs))
	}
	expect(t, "v1 allow", []check{{"Time", evs[0].Time, ts("2024-03-05T10:07:00Z")}, {"Outcome", evs[0].Outcome, event.OutcomeSuccess},
		{"Protocol", evs[0].Protocol, "tcp"}, {"DstPort", evs[0].DstPort, 443}}...)
	expect(t, "v1 deny", []check{{"Action", evs[1].Action, "deny"}, {"DstPort", evs[1].DstPort, 22}}...)
	if evs[0].ID == evs[1].ID {
		t.Error("tuples share an id")
	}
	if err := evs[1].DecodeFields(); err != nil || evs[1].Fields["rule"] != "UserRule_AllowWeb" || evs[1].Fields["Decision"] != "D" {
		t.Errorf("flow Fields = %v (%v)", evs[1].Fields, err)
	}
}

// TestParseShapes covers the envelope and document shapes with small
// inline inputs.
func TestParseShapes(t *testing.T) {
	row := `{"category":"AdvancedHunting-DeviceEvents","properties":{"ActionType":"X","DeviceName":"H","ReportId":1,"DeviceId":"d","Timestamp":"2024-01-01T00:00:00Z"}}`
	tests := []struct {
		name       string
		in         string
		events     int
		errIndexes []int
	}{
		{"empty", "  \r\n ", 0, nil},
		{"bare record", row, 1, nil},
		{"array", "[" + row + "," + row + "]", 2, nil},
		{"envelope", `{"records":[` + row + `,` + row + `]}`, 2, nil},
		{"envelope with non-object", `{"records":[` + row + `,42,` + row + `]}`, 2, []int{1}},
		{"json lines with garbage line", row + "\nnot json\n" + row + "\n", 2, []int{1}},
		{"REST list", `{"value":[` + row + `]}`, 1, nil},
		{"unknown", `{"hello":"world"}`, 0, []int{0}},
		{"truncated", row[:40], 0, []int{0}},
		{"unbalanced", `{"records":[}`, 0, []int{0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			evs, errs := Parse("", []byte(tc.in), recv)
			if len(evs) != tc.events {
				t.Errorf("%d events, want %d", len(evs), tc.events)
			}
			if len(errs) != len(tc.errIndexes) {
				t.Fatalf("errs = %v, want at indexes %v", errs, tc.errIndexes)
			}
			for i, e := range errs {
				if e.Index != tc.errIndexes[i] {
					t.Errorf("err %d index %d, want %d", i, e.Index, tc.errIndexes[i])
				}
			}
		})
	}
}

func TestParseTimeFormats(t *testing.T) {
	tests := []struct{ in, want string }{
		{"2022-11-09T17:51:33.5625286Z", "2022-11-09T17:51:33.5625286Z"},
		{"2022-11-22T06:19:37Z", "2022-11-22T06:19:37Z"},
		{"2019-10-18T04:45:48.0729893-05:00", "2019-10-18T09:45:48.0729893Z"},
		{"2019-01-15 09:15:08", "2019-01-15T09:15:08Z"},
		{"4/28/2021, 2:08:45.221 PM", "2021-04-28T14:08:45.221Z"},
		{"12/12/2023 12:12:19 PM", "2023-12-12T12:12:19Z"},
		{"1542110402", "2018-11-13T12:00:02Z"},
		{"1663146003599", "2022-09-14T09:00:03.599Z"},
		{"Jan 17 2020 08:52:10", "2020-01-17T08:52:10Z"},
	}
	for _, tc := range tests {
		got, err := parseTime(tc.in)
		if err != nil || !got.Equal(ts(tc.want)) {
			t.Errorf("parseTime(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	if _, err := parseTime("yesterday"); err == nil {
		t.Error("garbage time accepted")
	}
}

func TestSourcesListed(t *testing.T) {
	s := Sources()
	for _, want := range []string{"defender.DeviceProcessEvents", "entra.SignInLogs", "entra.AuditLogs", "azure.Activity", "network.NSGFlow", "network.VNetFlow", "firewall.AZFWNetworkRule", "defender.AlertInfo", "mdc.Alert"} {
		found := false
		for _, x := range s {
			found = found || x == want
		}
		if !found {
			t.Errorf("Sources() lacks %s", want)
		}
	}
}
