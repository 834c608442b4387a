package enrich

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/pipeline/event"
)

func (a assoc) String() string { return fmt.Sprintf("%s(%s→%s)", a.kind, a.left, a.right) }

func TestDeriveRules(t *testing.T) {
	ok, fail := event.OutcomeSuccess, event.OutcomeFailure
	logon := func(out event.Outcome, user, remoteIP string, remoteDev ...string) *event.Event {
		return &event.Event{Time: t0, Source: "defender.DeviceLogonEvents", Category: event.CatEndpoint, Type: event.TypeLogon,
			Action: "LogonSuccess", Outcome: out, Device: ws17, User: user, SrcIP: remoteIP, SrcPort: 49800,
			Related: event.Related{Devices: remoteDev}}
	}
	tests := []struct {
		name string
		ev   *event.Event
		want []string
	}{
		{"process with UPN and object id", process(t0, ws17, alice, aliceOID),
			[]string{"userid-upn(" + aliceOID + "→" + alice + ")", "device-user(" + ws17 + "→" + alice + ")"}},
		{"process as DOMAIN\\name, no object id", process(t0, ws17, `contoso\alice`, ""),
			[]string{"device-user(" + ws17 + "→contoso\\alice)"}},
		{"process as SYSTEM", process(t0, ws17, `nt authority\system`, ""), nil},
		{"process as machine account", process(t0, ws17, `contoso\ws-17$`, ""), nil},
		{"outbound connection: SrcIP is the device's", netConn(t0, "ConnectionSuccess", ws17, alice, ip17, extIP),
			[]string{"ip-device(" + ip17 + "→" + ws17 + ")", "device-user(" + ws17 + "→" + alice + ")"}},
		{"inbound connection: DstIP is the device's", netConn(t0, "InboundConnectionAccepted", ws17, `nt authority\system`, ip17, extIP),
			[]string{"ip-device(" + ip17 + "→" + ws17 + ")"}},
		{"listening on any address", netConn(t0, "ListeningConnectionCreated", ws17, "", "", ""), nil},
		{"loopback connection", netConn(t0, "ConnectionSuccess", ws17, "", "127.0.0.1", "127.0.0.1"), nil},
		{"link-local v6 connection", netConn(t0, "ConnectionSuccess", ws17, "", "fe80::1", extIP), nil},
		{"DeviceEvents row: SrcIP is LocalIP", &event.Event{Time: t0, Source: "defender.DeviceEvents", Category: event.CatEndpoint,
			Type: event.TypeOther, Action: "FirewallInboundConnectionBlocked", Device: ws17, SrcIP: ip17, DstIP: extIP},
			[]string{"ip-device(" + ip17 + "→" + ws17 + ")"}},
		{"remote logon names the remote device and the user's IP", logon(ok, alice, ip22, ws22),
			[]string{"ip-device(" + ip22 + "→" + ws22 + ")", "ip-user(" + ip22 + "→" + alice + ")", "device-user(" + ws17 + "→" + alice + ")"}},
		{"failed logon asserts nothing", logon(fail, alice, ip22, ws22), nil},
		{"file event: SrcIP is the remote requester", &event.Event{Time: t0, Source: "defender.DeviceFileEvents", Category: event.CatEndpoint,
			Type: event.TypeFile, Action: "FileCreated", Outcome: ok, Device: ws17, User: alice, SrcIP: ip22},
			[]string{"device-user(" + ws17 + "→" + alice + ")"}},
		{"sign-in: public IP is the user's, not the device's", signIn(t0, alice, aliceOID, homeIP, laptop, ok),
			[]string{"userid-upn(" + aliceOID + "→" + alice + ")", "device-user(" + laptop + "→" + alice + ")", "ip-user(" + homeIP + "→" + alice + ")"}},
		{"sign-in from a private IP: the device's too", signIn(t0, alice, "", "10.20.0.5", laptop, ok),
			[]string{"device-user(" + laptop + "→" + alice + ")", "ip-device(10.20.0.5→" + laptop + ")", "ip-user(10.20.0.5→" + alice + ")"}},
		{"failed sign-in: only the object id", signIn(t0, alice, aliceOID, extIP, laptop, fail),
			[]string{"userid-upn(" + aliceOID + "→" + alice + ")"}},
		{"Defender for Identity logon: both ends", &event.Event{Time: t0, Source: "defender.IdentityLogonEvents", Category: event.CatIdentity,
			Type: event.TypeLogon, Action: "LogonSuccess", Outcome: ok, User: alice, Device: ws17, SrcIP: ip17,
			DstIP: "10.0.0.10", Related: event.Related{Devices: []string{"dc01.contoso.example"}}},
			[]string{"device-user(" + ws17 + "→" + alice + ")", "ip-device(" + ip17 + "→" + ws17 + ")",
				"ip-device(10.0.0.10→dc01.contoso.example)", "ip-user(" + ip17 + "→" + alice + ")"}},
		{"Azure Activity caller", &event.Event{Time: t0, Source: "azure.Activity", Category: event.CatCloud, Type: event.TypeAudit,
			Action: "microsoft.compute/virtualmachines/write", Outcome: ok, User: alice, UserID: aliceOID, SrcIP: homeIP,
			Resource: "/subscriptions/0000/resourcegroups/rg/providers/microsoft.compute/virtualmachines/vm1"},
			[]string{"userid-upn(" + aliceOID + "→" + alice + ")", "ip-user(" + homeIP + "→" + alice + ")"}},
		{"service principal caller (id only)", &event.Event{Time: t0, Source: "azure.Activity", Category: event.CatCloud, Type: event.TypeAudit,
			Outcome: ok, UserID: "9f8e7d6c-0000-4000-8000-000000000001", SrcIP: extIP}, nil},
		{"flow: only IPs, nothing to learn", flow(t0, ip17, extIP), nil},
		{"email recipient address is not a UPN source", &event.Event{Time: t0, Source: "defender.EmailEvents", Category: event.CatEmail,
			Type: event.TypeEmail, Outcome: ok, User: alice, UserID: aliceOID, SrcIP: extIP}, nil},
		{"alert evidence is not learned from", &event.Event{Time: t0, Source: "defender.AlertEvidence", Category: event.CatAlert,
			Type: event.TypeAlert, User: alice, UserID: aliceOID, Device: ws17, SrcIP: ip17}, nil},
		{"risk detection is not learned from", &event.Event{Time: t0, Source: "entra.UserRiskEvents", Category: event.CatIdentity,
			Type: event.TypeAlert, User: alice, UserID: aliceOID, SrcIP: extIP}, nil},
		{"syslog host and its address", &event.Event{Time: t0, Source: "syslog.Syslog", Category: event.CatApp, Type: event.TypeOther,
			Device: "web-01", SrcIP: "10.3.0.4"}, []string{"ip-device(10.3.0.4→web-01)"}},
		{"CEF: the appliance is not the traffic's source", &event.Event{Time: t0, Source: "cef.CommonSecurityLog", Category: event.CatNetwork,
			Type: event.TypeNetwork, Device: "fw-01", User: alice, SrcIP: ip17, DstIP: extIP}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := derive(nil, tt.ev, tt.ev.User, IsServiceAccount)
			var gs []string
			for _, a := range got {
				gs = append(gs, a.String())
			}
			if !slices.Equal(sorted(gs), sorted(tt.want)) {
				t.Errorf("associations\n got  %s\n want %s", strings.Join(gs, " "), strings.Join(tt.want, " "))
			}
		})
	}
}

func TestIsServiceAccount(t *testing.T) {
	for u, want := range map[string]bool{
		`nt authority\system`: true, `nt authority\network service`: true, `font driver host\umfd-0`: true,
		`window manager\dwm-1`: true, `contoso\ws-17$`: true, "system": true,
		alice: false, `contoso\alice`: false, "root": false,
	} {
		if got := IsServiceAccount(u); got != want {
			t.Errorf("IsServiceAccount(%q) = %v, want %v", u, got, want)
		}
	}
}
