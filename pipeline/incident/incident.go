// Package incident groups alerts into incidents and publishes every change
// of an incident to the compacted incidents topic.
//
// # Grouping
//
// An alert joins an existing incident when they share an entity and the
// incident's last alert lies within the grouping window of the new one:
//
//   - strong entities (user, device, resource, file hash) join within the
//     rule's grouping window (default 24h);
//   - IPs are weak identifiers (NAT, shared egress): they join only within
//     WeakWindow (default 1h);
//   - a rule may restrict grouping to selected entity types (Grouping.By)
//     or disable it (every alert its own incident);
//   - an incident holds at most MaxAlerts alerts (Sentinel's 150); the next
//     one opens a new incident.
//
// When several incidents qualify, the alert joins the one updated most
// recently. Grouping is exact only if one processor sees every alert, which
// is why the alerts topic has one partition: alerts are orders of
// magnitude fewer than events.
//
// # Ids and duplicates
//
// An incident's id is derived from its first alert's id, and the store
// remembers which alert ids each incident holds, so a re-delivered alert
// changes nothing and emits nothing: no duplicate incident, no duplicate
// update, whatever the delivery mode.
//
// # Schema
//
// The incidents topic carries JSON, keyed by incident id; the JSON Schema
// is incident.schema.json beside this file (SchemaVersion below). Each
// record is the incident's full current state, so compaction keeps the
// latest.
package incident

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/vigil-sec/vigil/pipeline/alert"
)

// SchemaVersion is the version of the incident JSON schema.
const SchemaVersion = 1

// Incident is a group of related alerts.
type Incident struct {
	SchemaVersion int            `json:"schema_version"`
	ID            string         `json:"id"`
	Title         string         `json:"title"`
	Severity      alert.Severity `json:"severity"`
	Status        Status         `json:"status"`
	// FirstTime and LastTime span the event times of all its alerts.
	FirstTime  time.Time      `json:"first_time"`
	LastTime   time.Time      `json:"last_time"`
	Tactics    []string       `json:"tactics"`
	Techniques []string       `json:"techniques"`
	Entities   []alert.Entity `json:"entities"`
	Rules      []string       `json:"rules"`
	// Alerts is the timeline, ordered by alert time.
	Alerts []alert.Alert `json:"alerts"`
	// Revision counts updates; consumers can drop a revision older than one they hold.
	Revision int `json:"revision"`
}

// Status is an incident's triage status.
type Status string

const (
	StatusNew    Status = "new"
	StatusActive Status = "active"
	StatusClosed Status = "closed"
)

// NewID derives an incident id from the id of its first alert.
func NewID(firstAlertID string) string {
	h := sha256.Sum256([]byte("incident\x00" + firstAlertID))
	return "inc-" + hex.EncodeToString(h[:12])
}

// add merges an alert into the incident.
func (in *Incident) add(a alert.Alert) {
	if len(in.Alerts) == 0 || a.Time.Before(in.FirstTime) {
		in.FirstTime = a.FirstTime
	}
	if a.Time.After(in.LastTime) {
		in.LastTime = a.Time
	}
	if a.Severity.Rank() > in.Severity.Rank() {
		in.Severity = a.Severity
	}
	in.Tactics = union(in.Tactics, a.Tactics)
	in.Techniques = union(in.Techniques, a.Techniques)
	in.Rules = union(in.Rules, []string{a.RuleID})
	for _, e := range a.Entities {
		if !slices.ContainsFunc(in.Entities, func(x alert.Entity) bool { return x.Type == e.Type && x.Value == e.Value }) {
			in.Entities = append(in.Entities, alert.Entity{Type: e.Type, Value: e.Value})
		}
	}
	in.Alerts = append(in.Alerts, a)
	sort.SliceStable(in.Alerts, func(i, j int) bool { return in.Alerts[i].Time.Before(in.Alerts[j].Time) })
	in.Title = title(in)
	in.Revision++
	if in.Status == "" {
		in.Status = StatusNew
	}
}

// title names the incident after its most severe alert, and says how many
// other rules contributed.
func title(in *Incident) string {
	best := in.Alerts[0]
	for _, a := range in.Alerts[1:] {
		if a.Severity.Rank() > best.Severity.Rank() {
			best = a
		}
	}
	if n := len(in.Rules) - 1; n > 0 {
		if n == 1 {
			return best.Title + " (+1 related rule)"
		}
		return best.Title + " (+" + strconv.Itoa(n) + " related rules)"
	}
	return best.Title
}

func union(a, b []string) []string {
	for _, s := range b {
		if s != "" && !slices.Contains(a, s) {
			a = append(a, s)
		}
	}
	sort.Strings(a)
	return a
}
