package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-sec/vigil/pipeline/app"
	"github.com/vigil-sec/vigil/pipeline/config"
	"github.com/vigil-sec/vigil/pipeline/dev"
	"github.com/vigil-sec/vigil/pipeline/event"
	"github.com/vigil-sec/vigil/pipeline/incident"
	"github.com/vigil-sec/vigil/pipeline/kafkatest"
	vrt "github.com/vigil-sec/vigil/pipeline/runtime"
)

func TestMain(m *testing.M) { kafkatest.Main(m) }

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// newApp configures an app on the test broker with its own topic prefix.
func newApp(t *testing.T) *app.App {
	t.Helper()
	cfg := config.Defaults()
	cfg.Kafka.Brokers = kafkatest.Brokers(t)
	cfg.Topics.Prefix = kafkatest.TopicPrefix(t)
	cfg.Topics.Partitions = 2
	cfg.Kafka.TransactionalIDPrefix = cfg.Topics.Prefix + "txn"
	cfg.DataDir = t.TempDir()
	cfg.Rules.Dirs = []string{filepath.Join(repoRoot(), "rules", "library")}
	cfg.HTTP.Token = "test-token"
	a, err := app.New(cfg, zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func runApp(t *testing.T, a *app.App) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("app stopped with %v", err)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for !a.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("app not ready within 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitIncident consumes the incidents topic until an incident satisfies ok.
func waitIncident(t *testing.T, a *app.App, ok func(*incident.Incident) bool) *incident.Incident {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	var found *incident.Incident
	_ = incident.Watch(ctx, a.ClientOpts(), a.Cfg.Topics.Incidents(), func(in *incident.Incident) {
		if found == nil && ok(in) {
			found = in
			cancel()
		}
	})
	if found == nil {
		t.Fatal("no matching incident on the incidents topic within 45s")
	}
	return found
}

// A Defender XDR DeviceProcessEvents record in its streaming-API envelope,
// produced to raw.defender, comes out as an incident on the incidents
// topic, with the user, the device and the ATT&CK technique of the rule.
func TestProcessEventBecomesIncident(t *testing.T) {
	a := newApp(t)
	runApp(t, a)
	recs, err := dev.DemoRecords(a.Cfg.Topics, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var proc *kgo.Record
	for _, r := range recs {
		if proc == nil && strings.Contains(string(r.Value), "AdvancedHunting-DeviceProcessEvents") {
			proc = r
		}
	}
	if proc == nil {
		t.Fatal("demo has no DeviceProcessEvents record")
	}
	cl := kafkatest.Client(t)
	// A malformed record first: it must go to the DLQ and not stop the stage.
	bad := &kgo.Record{Topic: a.Cfg.Topics.Raw("defender"), Value: []byte(`{"records":[{"category":"AdvancedHunting-DeviceProcessEvents","properties":`)}
	if err := cl.ProduceSync(context.Background(), bad, proc).FirstErr(); err != nil {
		t.Fatal(err)
	}
	in := waitIncident(t, a, func(in *incident.Incident) bool {
		return strings.Contains(strings.Join(in.Rules, ","), "endpoint.encoded_powershell")
	})
	ents := map[string]bool{}
	for _, e := range in.Entities {
		ents[string(e.Type)+"="+e.Value] = true
	}
	if !ents["device=ws-fin-07.fabrikam-demo.example"] {
		t.Errorf("incident entities %v lack the device", in.Entities)
	}
	if !strings.Contains(strings.Join(in.Techniques, ","), "T1059.001") {
		t.Errorf("incident techniques %v lack T1059.001", in.Techniques)
	}
	if len(in.Alerts) == 0 || len(in.Alerts[0].Steps) == 0 || in.Alerts[0].Steps[0].Events[0].Process.Name != "powershell.exe" {
		t.Errorf("incident does not carry the matched process event: %+v", in.Alerts)
	}

	// The malformed record is in the DLQ with its reason and original bytes.
	dl := kafkatest.Client(t, kgo.ConsumeTopics(a.Cfg.Topics.DLQ()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got *kgo.Record
	for got == nil && ctx.Err() == nil {
		dl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			if got == nil {
				got = r
			}
		})
	}
	if got == nil {
		t.Fatal("malformed record never reached the DLQ")
	}
	if string(got.Value) != string(bad.Value) {
		t.Errorf("DLQ value = %q, want the original bytes %q", got.Value, bad.Value)
	}
	h := map[string]string{}
	for _, x := range got.Headers {
		h[x.Key] = string(x.Value)
	}
	if h[vrt.HeaderStage] != "normalize" || h[vrt.HeaderError] == "" || h[vrt.HeaderTopic] != a.Cfg.Topics.Raw("defender") {
		t.Errorf("DLQ headers = %v", h)
	}

	// The API serves the incident, behind the token.
	srv := httptest.NewServer(a.Handler(nil))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/v1/incidents")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("API without token: %d, want 401", resp.StatusCode)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		req, _ := http.NewRequest("GET", srv.URL+"/api/v1/incidents/"+in.ID, nil)
		req.Header.Set("Authorization", "Bearer test-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var got incident.Incident
		_ = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK && got.ID == in.ID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("API never served incident %s (last status %d)", in.ID, resp.StatusCode)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d", path, resp.StatusCode)
		}
	}
}

// The demo attack, end to end through Kafka: a risky sign-in, encoded
// PowerShell, a connection from the device, an LSASS dump on the user's
// device, then a network logon from the device's address to a file
// server. The chained rule (sign-in alert keyed by user, LSASS alert keyed
// by device, re-entering the correlate stage as alert events) fires, and
// the incident stage puts the story in one incident that holds the user
// and the device.
//
// endpoint.credential_theft_then_network_logon fires only through entity
// enrichment: the LSASS process event names no IP; the table learned the
// device's address from its connection, so the LSASS alert carries it and
// is keyed by it, like the logon on the file server that comes from it.
func TestDemoAttackChainsIntoOneIncident(t *testing.T) {
	a := newApp(t)
	runApp(t, a)
	if _, err := dev.Replay(context.Background(), a.ClientOpts(), a.Cfg.Topics, time.Now()); err != nil {
		t.Fatal(err)
	}
	in := waitIncident(t, a, func(in *incident.Incident) bool {
		return slices.Contains(in.Rules, "identity.risky_signin_then_lsass") &&
			slices.Contains(in.Rules, "endpoint.credential_theft_then_network_logon")
	})
	ents := map[string]bool{}
	for _, e := range in.Entities {
		ents[string(e.Type)+"="+e.Value] = true
	}
	for _, want := range []string{"user=jordan.reyes@fabrikam-demo.example", "device=ws-fin-07.fabrikam-demo.example",
		"ip=10.20.30.41", "device=srv-file-01.fabrikam-demo.example"} {
		if !ents[want] {
			t.Errorf("incident lacks %s: %v", want, in.Entities)
		}
	}
	if in.Severity != "high" || len(in.Rules) < 2 {
		t.Errorf("incident severity %s rules %v: want high, several rules", in.Severity, in.Rules)
	}
}

const markerRule = `id: test.marker
name: Marker process %[1]s
description: a test rule that reloads
severity: %[2]s
tactics: [TA0002]
techniques: [T1059]
kind: match
by: device
where: Type == "process" && Process.Name == "%[1]s"
entities: {device: Device}
tests:
  - name: fires
    events:
      - {id: m1, time: 2026-01-01T00:00:00Z, source: defender.DeviceProcessEvents, category: endpoint, type: process, device: d1, process: {name: "%[1]s"}}
    expect: {count: 1}
  - name: quiet
    events:
      - {id: m2, time: 2026-01-01T00:00:00Z, source: defender.DeviceProcessEvents, category: endpoint, type: process, device: d1, process: {name: other.exe}}
    expect: {count: 0}
`

func processRecord(file, device string, report int) []byte {
	now := time.Now().UTC().Format(time.RFC3339Nano)
	return fmt.Appendf(nil, `{"records":[{"time":%q,"category":"AdvancedHunting-DeviceProcessEvents","operationName":"Publish","properties":{"Timestamp":%q,"DeviceId":"d%d","DeviceName":%q,"ActionType":"ProcessCreated","FileName":%q,"ProcessCommandLine":%q,"ReportId":%d}}]}`,
		now, now, report, device, file, file, report)
}

// Editing a rule file takes effect without a restart: the edited rule
// runs with its new condition and severity.
func TestRulesReloadWithoutRestart(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "marker.yaml")
	if err := os.WriteFile(file, fmt.Appendf(nil, markerRule, "first.exe", "low"), 0o644); err != nil {
		t.Fatal(err)
	}
	a := newApp(t)
	a.Cfg.Rules.Dirs = []string{dir}
	set, err := app.LoadRules(a.Cfg)
	if err != nil {
		t.Fatal(err)
	}
	a.SetRules(set)
	runApp(t, a)
	cl := kafkatest.Client(t)
	raw := a.Cfg.Topics.Raw("defender")
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: raw, Value: processRecord("first.exe", "host-a", 1)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	waitIncident(t, a, func(in *incident.Incident) bool { return in.Severity == "low" })

	if err := os.WriteFile(file, fmt.Appendf(nil, markerRule, "second.exe", "high"), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for a.CurrentRules().Rule("test.marker").Severity != "high" {
		if time.Now().After(deadline) {
			t.Fatal("rules were not reloaded after the file changed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: raw, Value: processRecord("second.exe", "host-b", 2)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	in := waitIncident(t, a, func(in *incident.Incident) bool { return in.Severity == "high" })
	if !strings.Contains(in.Title, "second.exe") {
		t.Errorf("incident %q is not from the edited rule", in.Title)
	}
}

// Invented entities of the enrichment hand-off test.
const (
	handoffUser   = "lee.park@contoso-test.example"
	handoffDevice = "ws-eng-31.contoso-test.example"
	handoffIP     = "10.61.4.31"
)

// handoffRecords is one Defender XDR streaming-API message of two rows:
// lee.park logs on interactively to ws-eng-31 (DeviceLogonEvents: device →
// user), and ws-eng-31 connects out from 10.61.4.31 as SYSTEM
// (DeviceNetworkEvents: ip → device; a service account forms no user
// association). Neither row alone ties the IP to the user.
func handoffRecords(ts time.Time) []byte {
	t := ts.UTC().Format(time.RFC3339Nano)
	return fmt.Appendf(nil, `{"records":[`+
		`{"time":%[1]q,"tenantId":"0b7e5c2a-1d3f-4e6a-8b9c-0d1e2f3a4b5c","operationName":"Publish","category":"AdvancedHunting-DeviceLogonEvents","properties":{"AccountDomain":"contoso-test","AccountName":"lpark","AccountObjectId":"6a1f0c3e-9d2b-4e7a-8c5f-1b3d5e7f9a0c","AccountSid":"S-1-5-21-2233445566-778899001-1122334455-3101","AccountUpn":%[2]q,"ActionType":"LogonSuccess","DeviceId":"9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d","DeviceName":%[3]q,"InitiatingProcessFileName":"lsass.exe","IsLocalAdmin":false,"LogonId":7340021,"LogonType":"Interactive","Protocol":"Negotiate","ReportId":9101,"Timestamp":%[1]q},"Tenant":"DefaultTenant"},`+
		`{"time":%[1]q,"tenantId":"0b7e5c2a-1d3f-4e6a-8b9c-0d1e2f3a4b5c","operationName":"Publish","category":"AdvancedHunting-DeviceNetworkEvents","properties":{"ActionType":"ConnectionSuccess","DeviceId":"9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d","DeviceName":%[3]q,"InitiatingProcessAccountDomain":"nt authority","InitiatingProcessAccountName":"system","InitiatingProcessFileName":"svchost.exe","InitiatingProcessId":1280,"LocalIP":%[4]q,"LocalIPType":"Private","LocalPort":49822,"Protocol":"Tcp","RemoteIP":"10.61.0.5","RemoteIPType":"Private","RemotePort":53,"ReportId":9102,"Timestamp":%[1]q},"Tenant":"DefaultTenant"}]}`,
		t, handoffUser, handoffDevice, handoffIP)
}

// nsgFlowRecord is an NSG flow log (version 1) with one allowed outbound
// tuple from src to dst:dport: IPs only, no user, no device.
func nsgFlowRecord(ts time.Time, src, dst string, dport int) []byte {
	return fmt.Appendf(nil, `{"records":[{"time":%q,"systemId":"4f2a6c8e-0b1d-4e3f-a5c7-9e1b3d5f7a9c","macAddress":"000D3A61041F","category":"NetworkSecurityGroupFlowEvent","resourceId":"/SUBSCRIPTIONS/2C4E6A8B-1D3F-4A5B-9C7D-0E2F4A6B8C0D/RESOURCEGROUPS/ENG-NET/PROVIDERS/MICROSOFT.NETWORK/NETWORKSECURITYGROUPS/ENG-NSG","operationName":"NetworkSecurityGroupFlowEvents","properties":{"Version":1,"flows":[{"rule":"UserRule_AllowInternal","flows":[{"mac":"000D3A61041F","flowTuples":["%d,%s,%s,51533,%d,T,O,A"]}]}]}}]}`,
		ts.UTC().Format(time.RFC3339Nano), ts.Unix(), src, dst, dport)
}

// eventReader reads one events.<keyspace> topic, committed records only,
// decoding each with pipeline/event.
type eventReader struct {
	t  *testing.T
	cl *kgo.Client
}

func newEventReader(t *testing.T, topic string) eventReader {
	return eventReader{t, kafkatest.Client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))}
}

type keyedEvent struct {
	key string
	ev  event.Event
}

// until reads until an event satisfies ok, returning every event read.
// With wait, it returns what arrived once nothing has for that long.
func (r eventReader) until(what string, ok func(keyedEvent) bool, wait time.Duration) []keyedEvent {
	r.t.Helper()
	var out []keyedEvent
	for deadline := time.Now().Add(45 * time.Second); time.Now().Before(deadline); {
		ctx, cancel := context.WithTimeout(context.Background(), min(wait, time.Until(deadline)))
		fs := r.cl.PollFetches(ctx)
		cancel()
		if fs.NumRecords() == 0 && wait < 45*time.Second {
			return out
		}
		found := false
		fs.EachRecord(func(rec *kgo.Record) {
			var ke keyedEvent
			if err := event.Unmarshal(rec.Value, &ke.ev); err != nil {
				r.t.Fatalf("record on %s is not an event: %v", rec.Topic, err)
			}
			ke.key = string(rec.Key)
			out = append(out, ke)
			found = found || ok(ke)
		})
		if found {
			return out
		}
	}
	r.t.Fatalf("%s: not within 45s", what)
	return nil
}

// A flow record names only IPs. Once Defender has told the entity table
// which device holds the IP and who is logged on there, the flow is
// enriched and also written to events.user under that user, so a rule
// `by: user` sees it; before, the same flow from the same IP is not.
func TestFlowIsKeyedByUserThroughEnrichment(t *testing.T) {
	a := newApp(t)
	runApp(t, a)
	cl := kafkatest.Client(t)
	byIP := newEventReader(t, a.Cfg.Topics.Events(event.KeyIP))
	byUser := newEventReader(t, a.Cfg.Topics.Events(event.KeyUser))
	isFlow := func(dport int) func(keyedEvent) bool {
		return func(ke keyedEvent) bool { return ke.ev.Source == "network.NSGFlow" && ke.ev.DstPort == dport }
	}
	produce := func(source string, value []byte) {
		t.Helper()
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: a.Cfg.Topics.Raw(source), Value: value}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().UTC()

	// Before: the table knows nothing of the IP.
	produce("network", nsgFlowRecord(now.Add(-4*time.Minute), handoffIP, "10.61.9.9", 3389))
	byIP.until("first flow on events.ip", func(ke keyedEvent) bool { return isFlow(3389)(ke) && ke.key == handoffIP }, 45*time.Second)
	// The user topic was written in the same transaction: it is visible now.
	for _, ke := range byUser.until("", func(keyedEvent) bool { return false }, 2*time.Second) {
		if isFlow(3389)(ke) {
			t.Fatalf("flow without enrichment keyed on events.user as %q (related %+v)", ke.key, ke.ev.Related)
		}
	}

	// Defender tells the table: user on device, device on IP.
	produce("defender", handoffRecords(now.Add(-3*time.Minute)))
	byUser.until("the logon on events.user", func(ke keyedEvent) bool {
		return ke.ev.Source == "defender.DeviceLogonEvents" && ke.key == handoffUser
	}, 45*time.Second)

	// After: the same kind of flow from the IP is the user's.
	produce("network", nsgFlowRecord(now.Add(-time.Minute), handoffIP, "10.61.9.9", 445))
	got := byUser.until("the second flow on events.user (enriched with the user)", isFlow(445), 45*time.Second)
	var flow keyedEvent
	for _, ke := range got {
		if isFlow(3389)(ke) {
			t.Errorf("the first flow reached events.user late, as %q", ke.key)
		}
		if isFlow(445)(ke) {
			flow = ke
		}
	}
	if flow.key != handoffUser {
		t.Fatalf("enriched flow keyed %q on events.user, want %q", flow.key, handoffUser)
	}
	if flow.ev.User != "" || flow.ev.SrcIP != handoffIP {
		t.Errorf("flow event user %q src %q: enrichment must not invent a User, only Related", flow.ev.User, flow.ev.SrcIP)
	}
	if !slices.Equal(flow.ev.Related.Users, []string{handoffUser}) || !slices.Equal(flow.ev.Related.Devices, []string{handoffDevice}) {
		t.Errorf("flow related %+v, want user %s and device %s", flow.ev.Related, handoffUser, handoffDevice)
	}
}
