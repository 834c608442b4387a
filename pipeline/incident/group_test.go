package incident

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/vigil-sec/vigil/pipeline/alert"
	"github.com/vigil-sec/vigil/pipeline/event"
	"github.com/vigil-sec/vigil/state"
)

var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

func mkAlert(id, rule string, sev alert.Severity, at time.Duration, ents ...alert.Entity) alert.Alert {
	return alert.Alert{
		ID: id, RuleID: rule, RuleVersion: "v1", Title: "rule " + rule, Severity: sev,
		Tactics: []string{"TA0002"}, Techniques: []string{"T1059.001"},
		Keyspace: event.KeyUser, Key: "k", FirstTime: t0.Add(at), Time: t0.Add(at), Entities: ents,
		Steps: []alert.Step{{Name: "s", Events: []event.Event{{ID: id + "-ev", Time: t0.Add(at), Source: "test", Category: event.CatEndpoint, Type: event.TypeProcess}}}},
	}
}

func user(v string) alert.Entity   { return alert.Entity{Type: alert.EntityUser, Value: v} }
func device(v string) alert.Entity { return alert.Entity{Type: alert.EntityDevice, Value: v} }
func ip(v string) alert.Entity     { return alert.Entity{Type: alert.EntityIP, Value: v} }

func newGrouper(t *testing.T) *Grouper {
	st, err := state.Open(t.TempDir(), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return NewGrouper(st, Options{})
}

func add(t *testing.T, g *Grouper, a alert.Alert) *Incident {
	t.Helper()
	in, err := g.Add(a)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// A hand-off chain user → device → IP ends in one incident that holds all
// three entities (DESIGN.md semantic 12), with max severity and the union
// of the rules.
func TestChainGroupsIntoOneIncident(t *testing.T) {
	g := newGrouper(t)
	a := add(t, g, mkAlert("a1", "r.signin", alert.SevMedium, 0, user("alice@x.example")))
	b := add(t, g, mkAlert("a2", "r.lsass", alert.SevHigh, 10*time.Minute, user("alice@x.example"), device("ws1")))
	c := add(t, g, mkAlert("a3", "r.lateral", alert.SevLow, 20*time.Minute, device("ws1"), ip("10.0.0.5")))
	if a.ID != b.ID || b.ID != c.ID {
		t.Fatalf("chain split into incidents %s %s %s", a.ID, b.ID, c.ID)
	}
	if c.Severity != alert.SevHigh || len(c.Alerts) != 3 || len(c.Rules) != 3 || c.Revision != 3 {
		t.Errorf("incident = severity %s, %d alerts, rules %v, revision %d", c.Severity, len(c.Alerts), c.Rules, c.Revision)
	}
	if len(c.Entities) != 3 {
		t.Errorf("entities = %v, want user, device and ip", c.Entities)
	}
	if c.ID != NewID("a1") {
		t.Errorf("incident id %s is not derived from its first alert", c.ID)
	}
}

// Re-delivery of an alert (same id) changes nothing and emits nothing.
func TestRedeliveredAlertIsDropped(t *testing.T) {
	g := newGrouper(t)
	a := mkAlert("a1", "r", alert.SevHigh, 0, user("bob@x.example"))
	if add(t, g, a) == nil {
		t.Fatal("first delivery produced no incident")
	}
	if in := add(t, g, a); in != nil {
		t.Fatalf("re-delivered alert produced incident revision %d", in.Revision)
	}
}

func TestGroupingWindows(t *testing.T) {
	g := newGrouper(t)
	first := add(t, g, mkAlert("a1", "r", alert.SevLow, 0, user("carol@x.example"), ip("198.51.100.1")))
	// Shares only a weak IP, 2h later: beyond the 1h weak window.
	weak := add(t, g, mkAlert("a2", "r", alert.SevLow, 2*time.Hour, ip("198.51.100.1")))
	if weak.ID == first.ID {
		t.Error("an IP joined alerts 2h apart; IPs are weak identifiers (1h)")
	}
	// Shares the strong user 23h later: within 24h of the incident's last alert.
	strong := add(t, g, mkAlert("a3", "r", alert.SevLow, 23*time.Hour, user("carol@x.example")))
	if strong.ID != first.ID {
		t.Error("a user 23h later did not join")
	}
	// 25h after the last alert: a new incident.
	late := add(t, g, mkAlert("a4", "r", alert.SevLow, 48*time.Hour+time.Minute, user("carol@x.example")))
	if late.ID == first.ID {
		t.Error("an alert beyond the grouping window joined")
	}
	// Grouping disabled: always its own incident.
	d := mkAlert("a5", "r", alert.SevLow, 48*time.Hour+2*time.Minute, user("carol@x.example"))
	d.Grouping.Disabled = true
	if in := add(t, g, d); in.ID == late.ID {
		t.Error("an alert with grouping disabled joined an incident")
	}
}

func TestMaxAlertsOpensNewIncident(t *testing.T) {
	st, err := state.Open(t.TempDir(), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	g := NewGrouper(st, Options{MaxAlerts: 2})
	a := add(t, g, mkAlert("a1", "r", alert.SevLow, 0, user("d@x.example")))
	b := add(t, g, mkAlert("a2", "r", alert.SevLow, time.Minute, user("d@x.example")))
	c := add(t, g, mkAlert("a3", "r", alert.SevLow, 2*time.Minute, user("d@x.example")))
	if a.ID != b.ID || c.ID == a.ID {
		t.Errorf("ids %s %s %s: want the third alert in a new incident", a.ID, b.ID, c.ID)
	}
}

// What the stage publishes validates against the committed JSON Schema.
func TestIncidentMatchesSchema(t *testing.T) {
	f, err := os.ReadFile("incident.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(f))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("incident.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("incident.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	g := newGrouper(t)
	add(t, g, mkAlert("a1", "r1", alert.SevMedium, 0, user("e@x.example")))
	in := add(t, g, mkAlert("a2", "r2", alert.SevHigh, time.Minute, user("e@x.example"), device("ws9")))
	b, _ := json.Marshal(in)
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if err := sch.Validate(v); err != nil {
		t.Fatalf("incident does not match its schema: %v\n%s", err, b)
	}
	// And the schema is not vacuous: a broken incident fails.
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	m["severity"] = "urgent"
	if err := sch.Validate(m); err == nil {
		t.Fatal("schema accepted severity \"urgent\"")
	}
}
