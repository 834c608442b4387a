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
// "s/<rule id>@<version>/<key>". The value is an 8-byte big-endian expiry
// (unix nanoseconds) followed by a compact, versioned binary encoding
// (state.go: a version byte, then tagged sections of varints and strings).
// The expiry prefix lets the sweep in Advance drop dead state without
// decoding it. Buffered events are not in the value: each is one key
// "e/<number>" (blobs.go) in the pipeline/event codec with a count of the
// states that name it, shared by every rule that buffers it — or, for the
// steps of a sequence whose maxspan is at most 15 minutes, a record of the
// orphan log (below) kept until the watermark passes maxspan after it. Values of
// earlier binary versions are read and migrated; one of an unknown
// version (the JSON of early builds, or a newer release's) is not misread:
// the key starts fresh and Stats.StateDiscarded counts it. A changed rule
// has a new version and therefore starts from empty state. "m/engine"
// holds the watermark and the last event number.
//
// What each kind keeps per key: a sequence, the newest few events of each
// step (a hash of the id, the time, the event's number; the event itself
// decoded only for an alert) and hashes of the matches already emitted —
// except that while it buffers nothing for the key, an event only its
// later steps want waits in the key's orphan buffer, shared by all the
// keyspace's sequences (orphans.go): buffers kept in memory for a
// lateness, their events and changes appended per batch to the orphan log
// ("l/<number>", orphanlog.go) and rebuilt from it by NewEngine; a
// threshold, per group, only a hash of the id, the time, distinct value
// (in a per-group dictionary) and sum term of each event in the window —
// a threshold whose having reads only distinct forgets an entry whose
// value a newer one repeats before the watermark — plus the newest
// Options.ThresholdEvidence events (default 16) that the alert carries,
// kept only once the group is close enough to its having's lower bounds
// for them to be a firing window's newest; the alert id hashes the id
// hashes of the window's entries. An absence, its pending anchors
// (encoded) and recent expect times; a new_term, term → last seen (at a
// resolution of a 1024th of the lookback).
//
// The Engine caches state in memory and writes the entries changed since
// the last Flush, which the stage calls before committing its transaction.
// After an aborted transaction the stage drops the Engine and builds a new
// one over the rolled-back Store: all in-memory state is rebuilt from the
// Store (lazily per key; absence timers and orphan buffers eagerly in
// NewEngine).
//
// # Reload
//
// Reload swaps the rule set between batches: rules whose id and version
// are unchanged keep their state and deadlines; changed and removed rules
// lose theirs (deleted from the Store in the current transaction), and the
// returned Changes name them so the caller can log "rule X changed; its
// state starts fresh". rules.Watcher delivers new sets on file change or
// SIGHUP; a set that fails lint is never delivered as a set.
//
// # Cost
//
// Per event: one probe of the dispatch memo (the steps for its Action,
// Source, Type and Category), the dispatched
// conditions run on one reused expr VM over the event boxed once, and no
// allocation unless a rule keeps or emits something (BENCHMARKS.md has
// the numbers and profiles).
//
// # Alerts
//
// Alert ids are alert.MakeID(rule id, rule version, keyspace, key, matched
// event ids — for a threshold, the hex of the window entries' id hashes),
// so re-delivering the same input produces the same ids.
// Alerts carry every step's events and entities, the key as an entity, the
// ATT&CK mapping, and the rule's grouping policy. AlertEvent turns an alert
// into the event that re-enters the stage for chained rules.
package operators
