package config

import "github.com/vigil-sec/vigil/pipeline/event"

// Topic names, all under Topics.Prefix (DESIGN.md, "Data flow"). Building
// them here, in one place, keeps every stage agreeing on the names.

// Raw is the topic connectors write source records to, as received.
func (t Topics) Raw(source string) string { return t.Prefix + "raw." + source }

// Events is the topic of normalized events keyed by keyspace ks.
func (t Topics) Events(ks event.Keyspace) string { return t.Prefix + "events." + string(ks) }

// Alerts is the topic correlate writes alerts to.
func (t Topics) Alerts() string { return t.Prefix + "alerts" }

// Incidents is the compacted topic of incidents keyed by incident id.
func (t Topics) Incidents() string { return t.Prefix + "incidents" }

// Actions is the audit topic of response actions.
func (t Topics) Actions() string { return t.Prefix + "actions" }

// DLQ is the dead-letter topic for records a stage cannot process.
func (t Topics) DLQ() string { return t.Prefix + "dlq" }

// Entities is the compacted topic of observed entity associations.
func (t Topics) Entities() string { return t.Prefix + "entities" }

// Changelog is the compacted changelog of state store store of stage stage.
func (t Topics) Changelog(stage, store string) string {
	return t.Prefix + "changelog." + stage + "." + store
}
