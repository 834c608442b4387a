// Package operators runs compiled rules (package rules) over a stream of
// normalized events: one Engine per input partition, one operator per rule
// kind (match, threshold, sequence, absence, new_term).
//
// # Model
//
// The correlate stage consumes events.<keyspace>; every record carries the
// key normalize gave it (a user, device, IP or resource). The stage calls
// Process for each record and Advance after each batch. Process evaluates
// only the rule steps whose dispatch hint (rules.Hint: an Action, Source,
// Type or Category the step requires) fits the event, with one expr VM
// reused for every evaluation, then updates the per-(rule, key) state and
// returns the alerts that fired.
//
// # Time
//
// Everything runs on event time. The watermark is the maximum event time
// seen minus Options.Lateness (Advance may move it further for an idle
// partition). An event older than the watermark is refused with ErrLate:
// the stage sends it to the DLQ. Absence deadlines fire only when the
// watermark passes them. State a rule can no longer use (older than the
// watermark minus the rule's horizon) is expired.
//
// # State
//
// State is kept per (rule id, rule version, key) under the Store key
// "s/<rule id>@<version>/<key>", encoded as an 8-byte big-endian expiry
// (unix nanoseconds) followed by JSON. The expiry prefix lets the sweep in
// Advance drop dead state without decoding it; JSON keeps state readable
// in a debugger and tolerant of new fields. A changed rule has a new
// version and therefore starts from empty state; the old version's state
// expires. "m/engine" holds the watermark.
//
// The Engine caches state in memory and writes dirty entries on Flush,
// which the stage calls before committing its transaction. After an aborted
// transaction the stage drops the Engine and builds a new one over the
// rolled-back Store: all in-memory state is rebuilt from the Store (lazily
// per key; absence timers eagerly in NewEngine).
//
// # Alerts
//
// Alert ids are alert.MakeID(rule id, rule version, keyspace, key, matched
// event ids), so re-delivering the same input produces the same ids.
// Alerts carry every step's events and entities, the key as an entity, the
// ATT&CK mapping, and the rule's grouping policy. AlertEvent turns an alert
// into the event that re-enters the stage for chained rules.
package operators
