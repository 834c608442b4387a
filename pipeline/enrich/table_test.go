package enrich

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/pipeline/event"
)

// The hand-off chain of DESIGN.md: a sign-in (user + IP), a process on a
// device (device + user), then a flow that names only an IP ends up
// carrying the device and the user, so rules keyed by user follow it.
func TestChainSignInProcessFlow(t *testing.T) {
	tests := []struct {
		name        string
		flowSrc     string
		wantUsers   []string
		wantDevices []string
	}{
		// The device's own address, learned from its outbound connection.
		{"flow from the device's IP", ip17, []string{alice}, []string{ws17}},
		// The public IP alice signed in from: one user, so her devices.
		{"flow from the sign-in IP", homeIP, []string{alice}, []string{ws17}},
		{"flow from an unknown IP", "192.0.2.200", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := openTable(t, Options{})
			observe(t, tb,
				signIn(at(0), alice, aliceOID, homeIP, "", event.OutcomeSuccess),
				process(at(time.Minute), ws17, alice, aliceOID),
				netConn(at(2*time.Minute), "ConnectionSuccess", ws17, `nt authority\system`, ip17, extIP),
			)
			f := flow(at(3*time.Minute), tt.flowSrc, extIP)
			observe(t, tb, f)
			enrich(t, tb, f)
			if !slices.Equal(f.Related.Users, tt.wantUsers) || !slices.Equal(f.Related.Devices, tt.wantDevices) {
				t.Fatalf("related = %+v, want users %v devices %v", f.Related, tt.wantUsers, tt.wantDevices)
			}
			if tt.wantUsers != nil && !slices.Contains(f.Keys(event.KeyUser), alice) {
				t.Errorf("flow keys in user keyspace %v lack %s", f.Keys(event.KeyUser), alice)
			}
		})
	}
}

func TestEnrichByEntity(t *testing.T) {
	tb := openTable(t, Options{})
	observe(t, tb,
		signIn(at(0), alice, aliceOID, homeIP, laptop, event.OutcomeSuccess),
		process(at(time.Minute), ws17, alice, aliceOID),
		process(at(2*time.Minute), ws17, bob, ""),
		netConn(at(3*time.Minute), "ConnectionSuccess", ws17, "", ip17, extIP),
	)
	tests := []struct {
		name string
		ev   *event.Event
		want event.Related
	}{
		// Most recent first: ws17 (t+1m) before laptop (t0).
		{"sign-in with only a UPN gets the user's devices", signIn(at(4*time.Minute), alice, "", homeIP, "", event.OutcomeSuccess),
			event.Related{Devices: []string{ws17, laptop}}},
		{"process gets the device's IPs and other users", process(at(4*time.Minute), ws17, alice, aliceOID),
			event.Related{Users: []string{bob}, IPs: []string{ip17}, Devices: []string{laptop}}},
		{"flow to the device gets it and its users", flow(at(4*time.Minute), extIP, ip17),
			event.Related{Users: []string{bob, alice}, Devices: []string{ws17}}},
		{"parser's own related entities stay first", &event.Event{Time: at(4 * time.Minute), Category: event.CatEndpoint,
			Type: event.TypeLogon, Device: ws22, SrcIP: ip17, Related: event.Related{Devices: []string{"ws-99"}}},
			event.Related{Users: []string{bob, alice}, Devices: []string{"ws-99", ws17}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enrich(t, tb, tt.ev)
			got := tt.ev.Related
			if !slices.Equal(got.Users, tt.want.Users) || !slices.Equal(got.Devices, tt.want.Devices) || !slices.Equal(got.IPs, tt.want.IPs) {
				t.Errorf("related = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// Semantic 11: a UPN in one table, the object id in another, DOMAIN\name
// in a third resolve to one user key.
func TestObjectIDResolvesToUPN(t *testing.T) {
	tb := openTable(t, Options{})
	// An Entra audit record: initiatedBy.user with UPN and id.
	observe(t, tb, &event.Event{Time: at(0), Source: "entra.AuditLogs", Category: event.CatIdentity, Type: event.TypeAudit,
		Action: "Add member to role", Outcome: event.OutcomeSuccess, User: alice, UserID: aliceOID, SrcIP: homeIP})

	onlyID := process(at(time.Minute), ws17, "", aliceOID)
	domainName := process(at(time.Minute), ws17, `contoso\alice`, aliceOID)
	onlyUPN := &event.Event{Time: at(time.Minute), Source: "defender.UrlClickEvents", Category: event.CatEmail,
		Type: event.TypeURLClick, User: alice, SrcIP: homeIP}
	for _, ev := range []*event.Event{onlyID, domainName, onlyUPN} {
		observe(t, tb, ev)
		enrich(t, tb, ev)
	}
	if onlyID.User != alice {
		t.Errorf("event with only the object id: User = %q, want %q", onlyID.User, alice)
	}
	if domainName.User != `contoso\alice` || !slices.Contains(domainName.Keys(event.KeyUser), alice) {
		t.Errorf("DOMAIN\\name event: User %q, user keys %v; want the name kept and %s among the keys",
			domainName.User, domainName.Keys(event.KeyUser), alice)
	}
	if onlyUPN.UserID != aliceOID {
		t.Errorf("event with only the UPN: UserID = %q, want %q", onlyUPN.UserID, aliceOID)
	}
	// The DOMAIN\name process was filed under the UPN, so the UPN's
	// devices include ws17 and no device lists "contoso\alice".
	s := signIn(at(2*time.Minute), alice, aliceOID, homeIP, "", event.OutcomeSuccess)
	enrich(t, tb, s)
	if !slices.Equal(s.Related.Devices, []string{ws17}) {
		t.Errorf("sign-in devices = %v, want [%s]", s.Related.Devices, ws17)
	}
	p := process(at(2*time.Minute), ws17, "", "")
	enrich(t, tb, p)
	if slices.Contains(p.Related.Users, `contoso\alice`) || !slices.Contains(p.Related.Users, alice) {
		t.Errorf("device users = %v, want %s and not the DOMAIN\\name form", p.Related.Users, alice)
	}
}

func TestExpiryByEventTime(t *testing.T) {
	dir := t.TempDir()
	tb, err := Open(dir, Options{TTL: 24 * time.Hour, SweepEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	observe(t, tb, netConn(at(0), "ConnectionSuccess", ws17, "", ip17, extIP))

	f := enrich(t, tb, flow(at(23*time.Hour), ip17, extIP))
	if !slices.Equal(f.Related.Devices, []string{ws17}) {
		t.Fatalf("within TTL: devices %v, want [%s]", f.Related.Devices, ws17)
	}
	// Another device's event moves the clock past t0+TTL; the wall clock
	// plays no part.
	changes := observe(t, tb, netConn(at(24*time.Hour+time.Second), "ConnectionSuccess", ws22, "", ip22, extIP))
	f = enrich(t, tb, flow(at(24*time.Hour+2*time.Second), ip17, extIP))
	if len(f.Related.Devices) != 0 {
		t.Fatalf("after TTL: devices %v, want none", f.Related.Devices)
	}
	var tombs []string
	for _, c := range changes {
		if c.Value == nil {
			tombs = append(tombs, string(c.Key))
		}
	}
	want := string(appendKey(nil, byte(KindIPDevice), ip17, ws17))
	if !slices.Equal(tombs, []string{want}) {
		t.Fatalf("tombstones %q, want [%q]", tombs, want)
	}
	if st := tb.Stats(); st.Expired != 1 {
		t.Errorf("Stats.Expired = %d, want 1", st.Expired)
	}
	if err := tb.Close(); err != nil {
		t.Fatal(err)
	}
	// The sweep removed both directions from disk.
	tb = openTable(t, Options{})
	for _, k := range [][]byte{localKey(nil, byte(KindIPDevice), ip17, ws17), localKey(nil, KindIPDevice.reverse(), ws17, ip17)} {
		if _, closer, err := tb.db.Get(k); err == nil {
			closer.Close()
			t.Errorf("key %q still stored after expiry", k)
		}
	}
	// A late event older than the TTL teaches nothing.
	observe(t, tb, netConn(at(30*time.Hour), "ConnectionSuccess", ws22, "", ip22, extIP))
	if ch := observe(t, tb, netConn(at(time.Hour), "ConnectionSuccess", ws17, "", ip17, extIP)); len(ch) != 0 {
		t.Errorf("event older than the TTL produced %d changes", len(ch))
	}
}

func TestRefreshBoundsChanges(t *testing.T) {
	tb := openTable(t, Options{Refresh: 10 * time.Minute})
	steps := []struct {
		at   time.Duration
		want int
	}{
		{0, 2},                // ip-device and device-user, new
		{time.Minute, 0},      // seen again within Refresh
		{9 * time.Minute, 0},  // still within
		{10 * time.Minute, 2}, // Refresh later: both republished
		{5 * time.Minute, 0},  // out of order, older than stored
	}
	for _, s := range steps {
		ch := observe(t, tb, netConn(at(s.at), "ConnectionSuccess", ws17, alice, ip17, extIP))
		if len(ch) != s.want {
			t.Errorf("at +%v: %d changes, want %d", s.at, len(ch), s.want)
		}
		for _, c := range ch {
			seen, err := decodeValue(c.Value)
			if err != nil || seen != at(s.at).UnixNano() {
				t.Errorf("at +%v: change value %v (%v), want last-seen %v", s.at, seen, err, at(s.at))
			}
		}
	}
}

// One worker learns, another applies its records from the topic and
// enriches with them; tombstones and stale records behave.
func TestApplyFromAnotherWorker(t *testing.T) {
	a := openTable(t, Options{})
	b := openTable(t, Options{})
	changes := observe(t, a,
		signIn(at(0), alice, aliceOID, homeIP, "", event.OutcomeSuccess),
		netConn(at(time.Minute), "ConnectionSuccess", ws17, alice, ip17, extIP))
	if len(changes) != 4 {
		t.Fatalf("%d changes, want 4 (userid, ip-user, ip-device, device-user)", len(changes))
	}
	for _, c := range changes {
		if err := b.Apply(c.Key, c.Value); err != nil {
			t.Fatal(err)
		}
	}
	f := enrich(t, b, flow(at(2*time.Minute), ip17, extIP))
	if !slices.Equal(f.Related.Devices, []string{ws17}) || !slices.Equal(f.Related.Users, []string{alice}) {
		t.Fatalf("worker b: related %+v, want device %s and user %s", f.Related, ws17, alice)
	}
	if st := b.Stats(); st.Applied != 4 {
		t.Errorf("Applied = %d, want 4", st.Applied)
	}
	// Re-applying (own records read back) changes nothing.
	for _, c := range changes {
		if err := a.Apply(c.Key, c.Value); err != nil {
			t.Fatal(err)
		}
	}
	if st := a.Stats(); st.Applied != 0 {
		t.Errorf("own records re-applied: Applied = %d, want 0", st.Applied)
	}
	// An older record does not roll back a newer last-seen time.
	ipDev := appendKey(nil, byte(KindIPDevice), ip17, ws17)
	if err := b.Apply(ipDev, encodeValue(at(-time.Hour).UnixNano())); err != nil {
		t.Fatal(err)
	}
	nb, _ := b.neighbors(byte(KindIPDevice), ip17)
	if nb.items[0].seen != at(time.Minute).UnixNano() {
		t.Errorf("stale record moved last-seen to %v", time.Unix(0, nb.items[0].seen).UTC())
	}
	// A tombstone removes the association in both directions.
	if err := b.Apply(ipDev, nil); err != nil {
		t.Fatal(err)
	}
	f = enrich(t, b, flow(at(3*time.Minute), ip17, extIP))
	p := enrich(t, b, process(at(3*time.Minute), ws17, "", ""))
	if slices.Contains(f.Related.Devices, ws17) || slices.Contains(p.Related.IPs, ip17) {
		t.Errorf("after tombstone: flow %+v, process %+v", f.Related, p.Related)
	}
}

func TestApplyRejectsMalformed(t *testing.T) {
	tb := openTable(t, Options{})
	good := appendKey(nil, byte(KindIPDevice), ip17, ws17)
	tests := []struct {
		name       string
		key, value []byte
	}{
		{"unknown kind", appendKey(nil, 'x', ip17, ws17), encodeValue(1)},
		{"one entity", []byte("h" + ip17), encodeValue(1)},
		{"empty left", appendKey(nil, 'h', "", ws17), encodeValue(1)},
		{"three entities", append(bytes.Clone(good), 0, 'z'), encodeValue(1)},
		{"short value", good, []byte{1, 2, 3}},
		{"future version", good, append([]byte{2}, encodeValue(1)[1:]...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tb.Apply(tt.key, tt.value); !errors.Is(err, ErrMalformed) {
				t.Errorf("Apply = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestRelatedBoundedAndDeterministic(t *testing.T) {
	const n = 12
	var evs []*event.Event
	for i := range n {
		// Users 0..11 at t0+i/2 minutes: pairs share a last-seen time, so
		// ties are broken by name.
		evs = append(evs, process(at(time.Duration(i/2)*time.Minute), ws17, fmt.Sprintf("user%02d@contoso.example", i), ""))
	}
	want := []string{"user10@contoso.example", "user11@contoso.example", "user08@contoso.example", "user09@contoso.example",
		"user06@contoso.example", "user07@contoso.example", "user04@contoso.example", "user05@contoso.example"}
	for _, order := range []string{"forward", "reverse"} {
		t.Run(order, func(t *testing.T) {
			tb := openTable(t, Options{MaxNeighbors: 10})
			list := slices.Clone(evs)
			if order == "reverse" {
				slices.Reverse(list)
			}
			observe(t, tb, list...)
			// Cached (written through) and cold (read back from Pebble).
			warm := enrich(t, tb, &event.Event{Time: at(time.Hour), Category: event.CatNetwork, Device: ws17})
			tb.cache.Purge()
			cold := enrich(t, tb, &event.Event{Time: at(time.Hour), Category: event.CatNetwork, Device: ws17})
			for name, got := range map[string][]string{"warm": warm.Related.Users, "cold": cold.Related.Users} {
				if !slices.Equal(got, want) {
					t.Errorf("%s: users %v, want %v", name, got, want)
				}
			}
		})
	}
}

func TestCacheBoundedAndReloads(t *testing.T) {
	tb := openTable(t, Options{CacheSize: 4})
	const n = 50
	for i := range n {
		observe(t, tb, netConn(at(time.Duration(i)*time.Second), "ConnectionSuccess", fmt.Sprintf("ws-%02d", i), "", fmt.Sprintf("10.9.0.%d", i+1), extIP))
	}
	if l := tb.CacheLen(); l > 4 {
		t.Fatalf("cache holds %d lists, want at most 4", l)
	}
	// Every association is still found: evicted lists come back from Pebble.
	for i := range n {
		f := enrich(t, tb, flow(at(time.Hour), fmt.Sprintf("10.9.0.%d", i+1), extIP))
		if want := fmt.Sprintf("ws-%02d", i); !slices.Equal(f.Related.Devices, []string{want}) {
			t.Fatalf("ip %d: devices %v, want [%s]", i, f.Related.Devices, want)
		}
	}
	if l := tb.CacheLen(); l > 4 {
		t.Fatalf("cache holds %d lists after reads, want at most 4", l)
	}
	if st := tb.Stats(); st.CacheMisses < n {
		t.Errorf("CacheMisses = %d, want at least %d with a cache of 4", st.CacheMisses, n)
	}
}

func TestPersistsAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	tb, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	observe(t, tb, netConn(at(0), "ConnectionSuccess", ws17, alice, ip17, extIP))
	if err := tb.Close(); err != nil {
		t.Fatal(err)
	}
	tb, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	f := enrich(t, tb, flow(at(time.Minute), ip17, extIP))
	if !slices.Equal(f.Related.Devices, []string{ws17}) || !slices.Equal(f.Related.Users, []string{alice}) {
		t.Errorf("after reopen: related %+v", f.Related)
	}
}

func TestFutureTimeIsClamped(t *testing.T) {
	tb := openTable(t, Options{MaxFuture: time.Hour})
	observe(t, tb, netConn(at(0), "ConnectionSuccess", ws17, "", ip17, extIP))
	bad := netConn(at(30*24*time.Hour), "ConnectionSuccess", ws22, "", ip22, extIP)
	bad.Received = at(time.Minute)
	observe(t, tb, bad)
	if got := tb.Clock(); !got.Equal(at(time.Minute)) {
		t.Errorf("clock = %v, want the bad event's Received %v", got, at(time.Minute))
	}
	f := enrich(t, tb, flow(at(2*time.Minute), ip17, extIP))
	if !slices.Equal(f.Related.Devices, []string{ws17}) {
		t.Errorf("a far-future event expired the table: devices %v", f.Related.Devices)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []Options{{TTL: -1}, {MaxRelated: 40, MaxNeighbors: 10}, {CacheSize: -3}} {
		if _, err := Open(t.TempDir(), o); err == nil {
			t.Errorf("Open(%+v) accepted invalid options", o)
		}
	}
}
