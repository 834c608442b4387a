package enrich

import (
	"slices"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/pipeline/event"
)

// Invented entities, in the normalized forms pipeline/normalize produces
// (lower-case UPNs and host names, canonical IPs).
const (
	alice    = "alice@contoso.example"
	aliceOID = "5d2c6a1e-3b7f-4c55-9e0a-1f2b3c4d5e6f"
	bob      = "bob@contoso.example"
	ws17     = "ws-17.contoso.example"
	ws22     = "ws-22"
	laptop   = "laptop-alice"
	ip17     = "10.1.2.17"
	ip22     = "10.1.2.22"
	homeIP   = "198.51.100.7"
	extIP    = "203.0.113.9"
)

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

// openTable opens a table on disk in a temporary directory.
func openTable(t testing.TB, opts Options) *Table {
	t.Helper()
	tb, err := Open(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tb.Close() })
	return tb
}

func observe(t testing.TB, tb *Table, evs ...*event.Event) []Change {
	t.Helper()
	var all []Change
	for _, ev := range evs {
		ch, err := tb.Observe(ev)
		if err != nil {
			t.Fatalf("observe %s: %v", ev.Source, err)
		}
		all = append(all, ch...)
	}
	return all
}

func enrich(t testing.TB, tb *Table, ev *event.Event) *event.Event {
	t.Helper()
	if err := tb.Enrich(ev); err != nil {
		t.Fatalf("enrich %s: %v", ev.Source, err)
	}
	return ev
}

// The events below carry the typed fields pipeline/normalize fills for
// each source (see defender.go, entra.go, azure.go, flow.go, text.go).

func signIn(ts time.Time, user, oid, ip, device string, out event.Outcome) *event.Event {
	return &event.Event{Time: ts, Source: "entra.SignInLogs", Category: event.CatIdentity, Type: event.TypeLogon,
		Action: "Sign-in activity", Outcome: out, User: user, UserID: oid, SrcIP: ip, Device: device,
		App: "Microsoft Teams", Country: "NL"}
}

func process(ts time.Time, device, user, oid string) *event.Event {
	return &event.Event{Time: ts, Source: "defender.DeviceProcessEvents", Category: event.CatEndpoint,
		Type: event.TypeProcess, Action: "ProcessCreated", Outcome: event.OutcomeSuccess,
		Device: device, DeviceID: "a1b2c3d4e5", User: user, UserID: oid,
		Process: event.Process{Name: "powershell.exe", CommandLine: "powershell -enc SQBFAFgA", ParentName: "winword.exe"}}
}

func netConn(ts time.Time, action, device, user, local, remote string) *event.Event {
	e := &event.Event{Time: ts, Source: "defender.DeviceNetworkEvents", Category: event.CatEndpoint,
		Type: event.TypeNetwork, Action: action, Outcome: event.OutcomeSuccess, Device: device, User: user,
		Protocol: "tcp", Process: event.Process{Name: "chrome.exe"}}
	if inbound(action) {
		e.SrcIP, e.SrcPort, e.DstIP, e.DstPort = remote, 50123, local, 445
	} else {
		e.SrcIP, e.SrcPort, e.DstIP, e.DstPort = local, 50123, remote, 443
	}
	return e
}

func flow(ts time.Time, src, dst string) *event.Event {
	return &event.Event{Time: ts, Source: "network.NSGFlow", Category: event.CatNetwork, Type: event.TypeNetwork,
		Action: "A", Outcome: event.OutcomeSuccess, SrcIP: src, DstIP: dst, SrcPort: 51000, DstPort: 3389, Protocol: "tcp"}
}

func sorted(ss []string) []string {
	out := slices.Clone(ss)
	slices.Sort(out)
	return out
}
