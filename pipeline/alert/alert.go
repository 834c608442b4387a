// Package alert defines what the correlate stage emits when a rule fires,
// and what the incident stage groups.
//
// An alert is self-contained: it carries the matched events of every step
// and every step's entities, so a downstream consumer never has to look the
// evidence up. Its ID is deterministic (rule id, rule version, key, matched
// event ids), so re-processing the same input after a crash produces the
// same alert id and the incident stage drops the duplicate.
package alert

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"time"

	"github.com/vigil-sec/vigil/pipeline/event"
)

// Alert is one firing of one rule for one key.
type Alert struct {
	ID          string   `json:"id"`
	RuleID      string   `json:"rule_id"`
	RuleVersion string   `json:"rule_version"`
	Title       string   `json:"title"`
	Description string   `json:"description,omitempty"`
	Severity    Severity `json:"severity"`
	Tactics     []string `json:"tactics,omitempty"`
	Techniques  []string `json:"techniques,omitempty"`
	// Keyspace and Key are what the rule correlated on ("user", "alice@contoso.com").
	Keyspace event.Keyspace `json:"keyspace"`
	Key      string         `json:"key"`
	// FirstTime and Time are the event times of the first and last matched event.
	FirstTime time.Time `json:"first_time"`
	Time      time.Time `json:"time"`
	// Entities are the entities of all steps, deduplicated.
	Entities []Entity `json:"entities"`
	// Steps holds the matched events of each step, in step order.
	Steps []Step `json:"steps"`
	// Grouping tells the incident stage how to group this rule's alerts.
	Grouping Grouping `json:"grouping,omitzero"`
}

// Step is one rule step and the events that satisfied it.
type Step struct {
	Name   string        `json:"name"`
	Events []event.Event `json:"events"`
}

// Entity is a typed entity attached to an alert.
type Entity struct {
	Type  EntityType `json:"type"`
	Value string     `json:"value"`
	// Step names the step the entity came from; empty when from the key.
	Step string `json:"step,omitempty"`
}

// EntityType is the kind of an entity.
type EntityType string

const (
	EntityUser     EntityType = "user"
	EntityDevice   EntityType = "device"
	EntityIP       EntityType = "ip"
	EntityResource EntityType = "resource"
	EntityFile     EntityType = "file" // a hash
	EntityProcess  EntityType = "process"
	EntityURL      EntityType = "url"
	EntityDomain   EntityType = "domain"
	EntityApp      EntityType = "app"
	EntityMailbox  EntityType = "mailbox"
)

// Strong reports whether an entity of this type identifies one thing well
// enough to join unrelated alerts into one incident over a long horizon.
// IPs are weak: NAT and shared egress make them join unrelated stories.
func (t EntityType) Strong() bool {
	switch t {
	case EntityUser, EntityDevice, EntityResource, EntityFile:
		return true
	}
	return false
}

// Severity orders alert and incident severities.
type Severity string

const (
	SevInformational Severity = "informational"
	SevLow           Severity = "low"
	SevMedium        Severity = "medium"
	SevHigh          Severity = "high"
	SevCritical      Severity = "critical"
)

// Rank returns a number that orders severities; unknown values rank 0.
func (s Severity) Rank() int {
	switch s {
	case SevInformational:
		return 1
	case SevLow:
		return 2
	case SevMedium:
		return 3
	case SevHigh:
		return 4
	case SevCritical:
		return 5
	}
	return 0
}

// Grouping is a rule's incident grouping policy (Sentinel's options).
type Grouping struct {
	// Disabled makes every alert its own incident.
	Disabled bool `json:"disabled,omitempty"`
	// By selects the entity types that must be equal; empty means any
	// shared strong entity groups.
	By []EntityType `json:"by,omitempty"`
	// Window is how long after an incident's last alert new alerts still join it.
	Window time.Duration `json:"window,omitempty"`
}

// MakeID returns the deterministic alert id for a rule firing.
// It is the first 16 bytes of SHA-256 over rule id, rule version,
// keyspace, key and the sorted event ids, each followed by a zero byte.
func MakeID(ruleID, ruleVersion string, keyspace event.Keyspace, key string, eventIDs []string) string {
	ids := slices.Clone(eventIDs) // the caller's order stays
	slices.Sort(ids)
	var buf [512]byte
	b := buf[:0]
	for _, s := range [...]string{ruleID, ruleVersion, string(keyspace), key} {
		b = append(append(b, s...), 0)
	}
	for _, s := range ids {
		b = append(append(b, s...), 0)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// AddEntity appends an entity unless an equal (type, value) is present.
func (a *Alert) AddEntity(t EntityType, value, step string) {
	if value == "" {
		return
	}
	for _, e := range a.Entities {
		if e.Type == t && e.Value == value {
			return
		}
	}
	a.Entities = append(a.Entities, Entity{Type: t, Value: value, Step: step})
}

// EventIDs returns the ids of all matched events, in step order.
func (a *Alert) EventIDs() []string {
	var ids []string
	for _, s := range a.Steps {
		for _, e := range s.Events {
			ids = append(ids, e.ID)
		}
	}
	return ids
}
