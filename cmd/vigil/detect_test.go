package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Invented hand-off: a user logs on over RDP from a workstation at
// 10.44.2.19; a minute later an NSG flow from 10.44.2.19 (IPs only)
// reaches an RDP port.
const (
	cmdUser = "rowan.ellis@fabrikam-test.example"
	cmdIP   = "10.44.2.19"
)

const cmdRule = `id: test.rdp_flow_by_user
name: RDP flow attributed to a user
description: An NSG flow to an RDP port, keyed under the user the entity table ties its source to.
severity: low
tactics: [lateral-movement]
techniques: [T1021.001]
kind: match
by: user
where: Source == "network.NSGFlow" && DstPort == 3389
tests:
  - name: an attributed flow fires
    events:
      - {id: f1, time: 2025-10-07T09:01:00Z, source: network.NSGFlow, category: network, type: network, src_ip: 10.44.2.19, dst_port: 3389,
         related: {users: [rowan.ellis@fabrikam-test.example]}}
    expect: {count: 1}
`

func writeInputs(t *testing.T) (rulesDir, logon, flow string) {
	t.Helper()
	dir := t.TempDir()
	rulesDir = filepath.Join(dir, "rules")
	ts := time.Date(2025, 10, 7, 9, 0, 0, 0, time.UTC)
	files := map[string]string{
		filepath.Join(rulesDir, "rdp_flow.yaml"): cmdRule,
		filepath.Join(dir, "logon.json"): fmt.Sprintf(`{"records":[{"time":%[1]q,"tenantId":"7e9a1c3e-5a7c-4e9a-b1c3-5e7a9c1e3a5c","operationName":"Publish","category":"AdvancedHunting-DeviceLogonEvents","properties":{"Timestamp":%[1]q,"DeviceId":"1f2e3d4c5b6a79880796a5b4c3d2e1f0a9b8c7d6","DeviceName":"rds-02.fabrikam-test.example","ActionType":"LogonSuccess","LogonType":"RemoteInteractive","AccountDomain":"fabrikam-test","AccountName":"rowan.ellis","AccountUpn":%[2]q,"RemoteIP":%[3]q,"RemoteIPType":"Private","RemoteDeviceName":"ws-rowan","ReportId":7201}}]}`,
			ts.Format(time.RFC3339), cmdUser, cmdIP) + "\n",
		filepath.Join(dir, "flow.json"): fmt.Sprintf(`{"records":[{"time":%q,"systemId":"2b4d6f8a-0c2e-4a6c-8e0a-2c4e6a8c0e2a","macAddress":"000D3A11C0DE","category":"NetworkSecurityGroupFlowEvent","resourceId":"/SUBSCRIPTIONS/9A1B2C3D-4E5F-4A6B-8C7D-9E0F1A2B3C4D/RESOURCEGROUPS/RDS/PROVIDERS/MICROSOFT.NETWORK/NETWORKSECURITYGROUPS/RDS-NSG","operationName":"NetworkSecurityGroupFlowEvents","properties":{"Version":1,"flows":[{"rule":"UserRule_Rdp","flows":[{"mac":"000D3A11C0DE","flowTuples":["%d,%s,10.44.8.3,50877,3389,T,O,A"]}]}]}}]}`,
			ts.Add(time.Minute).Format(time.RFC3339), ts.Add(time.Minute).Unix(), cmdIP) + "\n",
	}
	for p, body := range files {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return rulesDir, filepath.Join(dir, "logon.json"), filepath.Join(dir, "flow.json")
}

// vigil detect enriches as the streaming normalize stage does: the flow
// gets the user of the logon and the user-keyed rule fires under that
// user; --no-enrich turns it off; the entity table's directory is gone
// after the run.
func TestDetectCommandEnrichment(t *testing.T) {
	rulesDir, logon, flow := writeInputs(t)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // the entity table's temporary directory
	tests := []struct {
		name  string
		flags []string
		keys  []string
	}{
		{"enriched by default", nil, []string{cmdUser}},
		{"--no-enrich", []string{"--no-enrich"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errs bytes.Buffer
			cmd := root()
			cmd.SetOut(&out)
			cmd.SetErr(&errs)
			cmd.SetArgs(append([]string{"detect", "--rules", rulesDir, "--input", flow, "--input", logon}, tt.flags...))
			if err := cmd.Execute(); err != nil {
				t.Fatalf("detect: %v\n%s", err, errs.String())
			}
			var keys []string
			for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
				var a struct{ Type, RuleID, Key string }
				if l == "" {
					continue
				}
				if err := json.Unmarshal([]byte(l), &a); err != nil {
					t.Fatalf("output line %q: %v", l, err)
				}
				if a.Type == "alert" {
					keys = append(keys, a.Key)
				}
			}
			if !slices.Equal(keys, tt.keys) {
				t.Errorf("alert keys %q, want %q\nstdout:\n%s\nstderr:\n%s", keys, tt.keys, out.String(), errs.String())
			}
			if !strings.Contains(errs.String(), "detect: 2 events") {
				t.Errorf("stderr: %s", errs.String())
			}
			left, _ := filepath.Glob(filepath.Join(tmp, "vigil-detect-entities-*"))
			if len(left) != 0 {
				t.Errorf("entity tables left behind: %q", left)
			}
		})
	}
}

// vigil config show prints an azure_blobs entry with its credentials
// redacted, whether they come from the file, the entry variable or its
// _FILE.
func TestConfigShowRedactsStorageSecrets(t *testing.T) {
	const key = "SW52ZW50ZWRLZXlGb3JWaWdpbENvbmZpZ1Nob3dUZXN0MDA="
	const sas = "sv=2024-08-04&sp=rl&sig=SW52ZW50ZWRTYXNTaWc%3D"
	dir := t.TempDir()
	sasFile := filepath.Join(dir, "sas")
	cfgFile := filepath.Join(dir, "vigil.yaml")
	if err := os.WriteFile(sasFile, []byte(sas+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgFile, []byte(`connectors:
  azure_blobs:
    - {name: key-in-file, source: network, account_name: flowacct, account_key: "`+key+`"}
    - {name: sas-from-file, source: network, service_url: "https://sasacct.blob.core.windows.net"}
    - {name: key-from-env, source: network, account_name: otheracct}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("VIGIL_CONNECTORS_AZURE_BLOBS_SAS_FROM_FILE_SAS_TOKEN_FILE", sasFile)
	t.Setenv("VIGIL_CONNECTORS_AZURE_BLOBS_KEY_FROM_ENV_ACCOUNT_KEY", key)
	var out bytes.Buffer
	cmd := root()
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"config", "show", "--config", cfgFile})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	if strings.Contains(s, "SW52ZW50ZWR") || strings.Contains(s, "sig=") {
		t.Fatalf("config show prints a secret:\n%s", s)
	}
	if n := strings.Count(s, "'[redacted]'"); n != 3 {
		t.Errorf("%d redacted values, want 3 (one credential per entry):\n%s", n, s)
	}
}
