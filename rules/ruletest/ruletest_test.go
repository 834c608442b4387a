package ruletest

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

const rule = `id: t.spray
name: Spray
description: distinct users failing from one IP
severity: medium
tactics: [credential-access]
techniques: [T1110.003]
kind: threshold
by: {keyspace: ip, key: SrcIP}
window: 10m
where: Type == "logon" && Outcome == "failure" && Fields.resultType != "0"
threshold: {distinct: User, having: distinct >= 2}
tests:
  - name: two users fire
    events:
      - {id: s1, time: 2025-02-01T08:00:00Z, type: logon, outcome: failure, user: a@x.example, src_ip: 192.0.2.1, raw: {resultType: "50126"}}
      - {id: s2, time: 2025-02-01T08:01:00Z, type: logon, outcome: failure, user: b@x.example, src_ip: 192.0.2.1, raw: {resultType: "50126"}}
    expect:
      count: 1
      alerts: [{key: 192.0.2.1, events: [s2, s1], entities: {ip: [192.0.2.1]}}]
  - name: WRONG expectation
    events:
      - {id: s3, time: 2025-02-01T08:00:00Z, type: logon, outcome: failure, user: a@x.example, src_ip: 192.0.2.1, raw: {resultType: "50126"}}
    expect: {count: 1, alerts: [{key: 192.0.2.1}]}
  - name: one user does not fire
    events:
      - {id: s4, time: 2025-02-01T08:00:00Z, type: logon, outcome: failure, user: a@x.example, src_ip: 192.0.2.1, raw: {resultType: "50126"}}
      - {id: s5, time: 2025-02-01T08:00:30Z, type: logon, outcome: failure, user: a@x.example, src_ip: 192.0.2.1, raw: {resultType: "50126"}}
    expect: {count: 0}
`

func TestRunTestsReportsPassAndFail(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "spray.yaml"), []byte(rule), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	passed, failed, err := RunTests(dir, &out, true)
	if err != nil {
		t.Fatal(err)
	}
	if passed != 2 || failed != 1 {
		t.Fatalf("passed=%d failed=%d\n%s", passed, failed, out.String())
	}
	s := out.String()
	for _, want := range []string{
		"--- PASS: t.spray/two_users_fire",
		"--- FAIL: t.spray/WRONG_expectation",
		"got 0 alerts, want 1",
		"missing alert: key=192.0.2.1",
		"actual alerts: none",
		"--- PASS: t.spray/one_user_does_not_fire",
		"FAIL\t2 passed, 1 failed",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
}

func TestRunTestsRefusesBrokenRules(t *testing.T) {
	dir := t.TempDir()
	bad := strings.Replace(rule, "Outcome ==", "Outcom ==", 1)
	if err := os.WriteFile(filepath.Join(dir, "spray.yaml"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := RunTests(dir, &bytes.Buffer{}, false); err == nil || !strings.Contains(err.Error(), "spray.yaml:") {
		t.Fatalf("err = %v", err)
	}
}

// TestShippedEndpointRule runs the fixtures of the rule this package's
// author ships (rules/library/endpoint), so a regression in the engine or
// the rule fails here.
func TestShippedEndpointRule(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "library", "endpoint")
	if _, err := os.Stat(filepath.Join(dir, "encoded_powershell.yaml")); err != nil {
		t.Skip("rules/library/endpoint/encoded_powershell.yaml not present")
	}
	var out bytes.Buffer
	// Only this file: the rest of the library belongs to its own test run.
	tmp := t.TempDir()
	b, err := os.ReadFile(filepath.Join(dir, "encoded_powershell.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "r.yaml"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	passed, failed, err := RunTests(tmp, &out, false)
	if err != nil || failed > 0 || passed < 4 {
		t.Fatalf("passed=%d failed=%d err=%v\n%s", passed, failed, err, out.String())
	}
}
