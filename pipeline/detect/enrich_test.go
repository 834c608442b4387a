package detect

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/vigil-sec/vigil/pipeline/config"
	"github.com/vigil-sec/vigil/pipeline/enrich"
	"github.com/vigil-sec/vigil/pipeline/event"
	"github.com/vigil-sec/vigil/rules"
)

// The hand-off of the enrichment tests, invented values: avery logs on
// to a jump server over RDP from workstation ws-avery at 10.31.4.27;
// a minute later an NSG flow from 10.31.4.27 (IPs only) reaches another
// server's RDP port.
const (
	enUser   = "avery.lin@contoso-test.example"
	enDevice = "ws-avery.contoso-test.example"
	enIP     = "10.31.4.27"
)

// Before recv: the table takes an event time beyond its receive time
// (plus enrich.Options.MaxFuture) as a bad clock.
var enStart = time.Date(2025, 10, 7, 9, 0, 0, 0, time.UTC)

func logonRecord(ts time.Time) string {
	t := ts.Format(time.RFC3339Nano)
	return fmt.Sprintf(`{"records":[{"time":%[1]q,"tenantId":"3c5e7a9b-1d2f-4a6b-8c0d-2e4f6a8b0c1d","operationName":"Publish","category":"AdvancedHunting-DeviceLogonEvents","properties":{"Timestamp":%[1]q,"DeviceId":"0a1b2c3d4e5f60718293a4b5c6d7e8f901234567","DeviceName":"jump-01.contoso-test.example","ActionType":"LogonSuccess","LogonType":"RemoteInteractive","AccountDomain":"contoso-test","AccountName":"avery.lin","AccountUpn":%[2]q,"AccountObjectId":"5b7d9f1a-3c5e-4a7b-9d1f-3a5c7e9b1d3f","RemoteIP":%[3]q,"RemoteIPType":"Private","RemotePort":0,"RemoteDeviceName":%[4]q,"Protocol":"Negotiate","ReportId":5101}}]}`,
		t, enUser, enIP, strings.TrimSuffix(enDevice, ".contoso-test.example"))
}

func flowRecord(ts time.Time) string {
	return fmt.Sprintf(`{"records":[{"time":%q,"systemId":"8e0a2c4e-6a8c-4e0a-b2c4-6e8a0c2e4a6c","macAddress":"000D3A5E7C9A","category":"NetworkSecurityGroupFlowEvent","resourceId":"/SUBSCRIPTIONS/6E8A0C2E-4A6C-4E8A-9C2E-4A6C8E0A2C4E/RESOURCEGROUPS/CORP-NET/PROVIDERS/MICROSOFT.NETWORK/NETWORKSECURITYGROUPS/SRV-NSG","operationName":"NetworkSecurityGroupFlowEvents","properties":{"Version":1,"flows":[{"rule":"UserRule_AllowRdpInternal","flows":[{"mac":"000D3A5E7C9A","flowTuples":["%d,%s,10.31.9.12,50211,3389,T,O,A"]}]}]}}]}`,
		ts.Format(time.RFC3339Nano), ts.Unix(), enIP)
}

// flowRule fires on an RDP flow, keyed by user: a flow names no user, so
// only enrichment can give it one.
const flowRule = `id: test.rdp_flow_by_user
name: RDP flow attributed to a user
description: An NSG flow to an RDP port, keyed under the user the entity table ties its source to.
severity: low
tactics: [lateral-movement]
techniques: [T1021.001]
kind: match
by: user
where: Source == "network.NSGFlow" && DstPort == 3389
entities:
  ip: SrcIP
tests:
  - name: a flow that enrichment attributed fires
    events:
      - {id: f1, time: 2025-10-07T09:01:00Z, source: network.NSGFlow, category: network, type: network, src_ip: 10.31.4.27, dst_ip: 10.31.9.12, dst_port: 3389,
         related: {users: [avery.lin@contoso-test.example]}}
    expect: {count: 1, alerts: [{key: avery.lin@contoso-test.example}]}
`

// A DeviceLogonEvents record (user U from device D at IP X) then a flow
// from X with no user: with the entity table the flow carries U and the
// user-keyed rule fires under U; without it, or once the association has
// outlived enrich.ttl, it does not.
func TestDetectEnrichment(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "flow_by_user.yaml"), []byte(flowRule), 0o644); err != nil {
		t.Fatal(err)
	}
	set, err := rules.LoadDir(dir, rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	inputs := func(gap time.Duration) []Input {
		// The flow file first: detect orders by event time, not input order.
		return []Input{
			Reader("flow.json", "", strings.NewReader(flowRecord(enStart.Add(gap))+"\n")),
			Reader("logon.json", "defender", strings.NewReader(logonRecord(enStart)+"\n")),
		}
	}
	tests := []struct {
		name      string
		enrich    bool
		ttl       time.Duration
		gap       time.Duration // flow after logon
		flowUsers []string      // Related.Users of the flow event
		alerts    []string
	}{
		{"enriched", true, 0, time.Minute, []string{enUser}, []string{"test.rdp_flow_by_user user=" + enUser}},
		{"not enriched", false, 0, time.Minute, nil, nil},
		{"association expired (enrich.ttl)", true, 30 * time.Second, time.Minute, nil, nil},
		{"within a short ttl", true, 2 * time.Minute, time.Minute, []string{enUser}, []string{"test.rdp_flow_by_user user=" + enUser}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := Options{Received: recv, Errors: &bytes.Buffer{}}
			var flows []event.Event
			var ents *Entities
			if tt.enrich {
				ec := config.Defaults().Enrich
				if tt.ttl > 0 {
					ec.TTL = config.Duration(tt.ttl)
				}
				ents, err = OpenEntities(t.TempDir(), enrich.OptionsFrom(ec, zerolog.Nop()))
				if err != nil {
					t.Fatal(err)
				}
				opts.Enrich = func(ev *event.Event) error {
					err := ents.Enrich(ev)
					if ev.Source == "network.NSGFlow" {
						flows = append(flows, *ev)
					}
					return err
				}
			}
			var out bytes.Buffer
			st, err := Run(context.Background(), set, inputs(tt.gap), &out, opts)
			if err != nil {
				t.Fatal(err)
			}
			if st.Events != 2 || st.Errors != 0 {
				t.Fatalf("stats %+v; errors: %s", st, opts.Errors)
			}
			if tt.enrich {
				if len(flows) != 1 {
					t.Fatalf("flow events enriched: %d", len(flows))
				}
				f := flows[0]
				if f.User != "" || !slices.Equal(f.Related.Users, tt.flowUsers) {
					t.Errorf("flow User %q Related.Users %q, want %q", f.User, f.Related.Users, tt.flowUsers)
				}
				if tt.flowUsers != nil && !slices.Contains(f.Keys(event.KeyUser), enUser) {
					t.Errorf("flow user keys %q lack %s", f.Keys(event.KeyUser), enUser)
				}
				d := ents.Dir()
				if err := ents.Close(); err != nil {
					t.Fatal(err)
				}
				if _, err := os.Stat(d); !os.IsNotExist(err) {
					t.Errorf("entity table directory %s left behind (%v)", d, err)
				}
			}
			var got []string
			for _, l := range bytes.Split(bytes.TrimSpace(out.Bytes()), []byte("\n")) {
				if bytes.HasPrefix(l, []byte(`{"type":"alert"`)) {
					var key, rule string
					for _, kv := range []struct {
						k string
						v *string
					}{{`"rule_id":"`, &rule}, {`"key":"`, &key}} {
						if i := bytes.Index(l, []byte(kv.k)); i >= 0 {
							rest := l[i+len(kv.k):]
							*kv.v = string(rest[:bytes.IndexByte(rest, '"')])
						}
					}
					got = append(got, rule+" user="+key)
				}
			}
			if !slices.Equal(got, tt.alerts) {
				t.Errorf("alerts %q, want %q\n%s", got, tt.alerts, out.String())
			}
		})
	}
}
