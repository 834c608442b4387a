// Package sigma converts Sigma detection rules and Sigma correlation rules
// (SigmaHQ specification v2) into Vigil's YAML rule format (rules/FORMAT.md),
// so a detection engineer can bring an existing Sigma library to the stream.
//
// # What a rule becomes
//
// A Sigma detection rule becomes a `match` rule. Its logsource picks the
// Vigil source the events come from and is written as the first conjunct of
// `where` (`Source == "defender.DeviceProcessEvents" && (...)`), so the
// engine's dispatch index only evaluates the rule on that source. Its
// detection becomes one expr-lang condition built from the helpers of
// rules/funcs.go: Sigma compares case-insensitively, so plain values become
// iequals / iequals_any, |contains icontains / icontains_any, |startswith
// istartswith, |endswith iendswith, values with inner wildcards a
// case-insensitive anchored regex, |re regex, |cidr cidr / in_cidrs.
//
// A Sigma correlation rule becomes:
//
//	| Sigma            | Vigil                                                        |
//	|------------------|--------------------------------------------------------------|
//	| event_count      | threshold, having count >= N (gt/gte only)                   |
//	| value_count      | threshold, distinct: <field>, having distinct >= N           |
//	| temporal         | sequence with unordered: true, maxspan = timespan            |
//	| temporal_ordered | sequence, steps in rule order, maxspan = timespan            |
//
// The referenced detection rules are inlined as conditions (Sigma's default,
// generate: false, emits only the correlation); a referenced correlation
// rule is emitted as a rule of its own and chained on through its alerts
// (`rule: <id>`), as DESIGN.md "chaining" describes. The first group-by
// field that maps to an entity (User, Device, SrcIP, DstIP, Resource) picks
// the keyspace and key; the remaining group-by fields become threshold
// group_by expressions. lt, lte, eq and neq conditions are refused: a
// streaming threshold fires when crossed and cannot wait for a window to
// close below a bound.
//
// # Field mapping
//
// fieldmap.go holds one table per supported logsource. A Sigma field maps to
// a typed event field (Image -> Process.Path) where normalize fills one,
// otherwise to the source column in the raw record. Raw Defender columns are
// read as `(Fields.properties?.X ?? Fields.X)` because a streamed record
// nests the row under properties while a Sentinel row is flat; raw Azure
// columns likewise try the Sentinel name and the diagnostic-settings name.
// A field the table does not know becomes a raw lookup too, with a Warning:
// the rule compiles, but the author should check the field exists.
//
// Translations worth knowing (Sysmon names on Defender tables):
//
//	| Sigma                    | Vigil                                                                 |
//	|--------------------------|-----------------------------------------------------------------------|
//	| Image / ParentImage      | Process.Path / InitiatingProcessFolderPath; `endswith \x.exe` becomes   |
//	|                          | iequals(Process.Name / Process.ParentName, "x.exe")                   |
//	| Hashes                   | "SHA1=..,MD5=..,SHA256=.." built from the typed hashes                |
//	| TargetObject (registry)  | RegistryKey with HKEY_LOCAL_MACHINE->HKLM, HKEY_USERS/CURRENT_USER->HKU, |
//	|                          | plus `\` + RegistryValueName                                          |
//	| EventType (registry)     | ActionType translated (RegistryValueSet -> SetValue, ...)             |
//	| Initiated (network)      | "false" for Inbound* / ListeningConnectionCreated, else "true"        |
//	| TargetFilename           | File.Path (DeviceFileEvents FolderPath holds the file name)           |
//	| file_event               | ActionType FileCreated or FileModified (Sysmon 11 covers both)        |
//
// Each logsource also fixes the keyspace a match rule runs in (device for
// Windows, user for Entra and M365, resource for the Activity log) with the
// typed field as `by.key`, so an event fires a rule once, not once per
// related entity. Converted rules carry no fixtures (lint warns): the
// header comment asks the author to add them.
//
// # Refused constructs
//
// Keyword (field-less) searches, the deprecated aggregation pipe
// (`| count() by x > 5`), `near`, |expand placeholders, legacy
// `action: global` collections, logsources without a mapping and RE2-
// incompatible regular expressions are errors wrapping ErrUnsupported that
// name the rule and the construct, so a bulk import can skip them and report.
//
// # Value semantics
//
// Sigma escapes follow pySigma: a backslash escapes `*`, `?` and another
// backslash; any other backslash is literal (`C:\Windows\`). A value that is
// only `*` means "the field is present and not empty". |base64offset
// produces the three shifted encodings pySigma does; |windash expands every
// `-` or `/` that starts a command-line switch into -, /, en dash, em dash
// and horizontal bar. Numbers compare as text against text fields
// (EventID: 4688 matches "4688" and 4688) and numerically against typed
// integer fields (DstPort: 443).
package sigma
