// Package normalize parses raw security records into event.Event values.
//
// Parse is the one entry point. It takes a Kafka record value in any of
// the shapes Azure and Defender XDR produce, detects the format of every
// record inside it, and maps each record to the event model with a typed
// per-source struct (never map[string]any). One bad record yields one
// RecordError with its own bytes and index; the good records beside it
// still become events.
//
// # Detection
//
// The first non-blank byte picks JSON or text. JSON input may be one
// document, several back to back (pretty-printed or JSON lines; a torn
// line costs only itself), or an array. An object with a "records" array
// is an Event Hubs / diagnostic-settings envelope; {"value":[...]} is a
// REST list; {"responses":{"200":{"body":…}}} is an API-spec example.
// Each record is then routed by, in order: the table name in "Type" /
// "$table" (Sentinel and Log Analytics rows, App Insights, REST "type"),
// the diagnostic "category" (AdvancedHunting-<Table>, SignInLogs, …), and
// the shape (SystemAlertId, flowRecords, a bare Advanced Hunting row).
// Text input is syslog (RFC 5424, RFC 3164 with or without <PRI>, bare
// CEF) line by line, or a CSV export whose rows become JSON objects and
// are routed like JSON rows. The hint (raw topic source) only breaks ties:
// it forces syslog for a headerless first line and names the table of a
// Defender row without Type ("defender.DeviceLogonEvents").
//
// Syslog headers are parsed by hand rather than with go-syslog: real CEF
// senders omit <PRI> and the colon after the tag ("May 18 16:02:00 host
// tag[1] CEF:…"), and CEF's extension needs its own parser anyway.
//
// # Type drift
//
// Fields decode through flex types (flex.go): a string column also takes
// numbers, bools, null and objects; an integer takes "1234", "", null,
// floats and hex; nested objects also arrive as JSON-encoded strings
// (Sentinel dynamic columns). Timestamps take RFC 3339 with 0–9 fractional
// digits and any offset, "2006-01-02 15:04:05", US-locale CSV exports and
// epoch seconds/milliseconds; a present but unreadable event timestamp is
// the one drift that fails a record. BOMs, CRLF and pretty-printing are
// accepted everywhere.
//
// # Event fields
//
// ID is the source's own id where it has one (Defender:
// Table:DeviceId:ReportId:Timestamp, since ReportId is a per-device
// counter; AlertInfo: AlertId; Entra: properties.id; Activity: eventDataId;
// Defender for Cloud: SystemAlertId), else the first 128 bits of
// sha256(source, raw) in hex. Time is the event time in UTC, falling back
// to the envelope time and then to received. Raw is the record's own JSON:
// the whole envelope record for Defender (properties included), a JSON
// object of the columns for CSV and syslog/CEF, and for flow logs an
// object of the record's identifying fields plus the tuple's named fields
// (one event per tuple). Raw points into one private copy of the value
// made per Parse call.
//
// # Vocabulary
//
//	| Source                                  | Category | Type                     | Action                   | Outcome                                  | User                                      |
//	|-----------------------------------------|----------|--------------------------|--------------------------|------------------------------------------|-------------------------------------------|
//	| defender.DeviceProcessEvents            | endpoint | process                  | ActionType               | success                                  | AccountUpn, else AccountDomain\AccountName |
//	| defender.DeviceNetworkEvents            | endpoint | network (dns for DNS)    | ActionType               | ConnectionSuccess/Inbound… ok, Failed    | InitiatingProcessAccount*                 |
//	| defender.DeviceLogonEvents              | endpoint | logon                    | ActionType               | LogonSuccess / LogonFailed               | Account*                                  |
//	| defender.DeviceFile/ImageLoad Events    | endpoint | file                     | ActionType               | success                                  | InitiatingProcessAccount*, RequestAccount* |
//	| defender.DeviceRegistryEvents           | endpoint | registry                 | ActionType               | success                                  | InitiatingProcessAccount*                 |
//	| defender.DeviceEvents (+ other Device*) | endpoint | other                    | ActionType               | unknown                                  | Account*, InitiatingProcessAccount*       |
//	| defender.IdentityLogonEvents            | identity | logon                    | ActionType               | LogonSuccess / LogonFailed               | AccountUpn, else domain\name              |
//	| defender.IdentityQueryEvents            | identity | other (dns for DNS)      | ActionType               | unknown                                  | Account*                                  |
//	| defender.IdentityDirectoryEvents        | identity | audit                    | ActionType               | unknown                                  | Account*                                  |
//	| defender.Email{Events,AttachmentInfo,UrlInfo} | email | email              | ActionType/DeliveryAction| Delivered,Junked ok; Blocked,Replaced    | RecipientEmailAddress (sender in Related) |
//	| defender.UrlClickEvents                 | email    | url_click                | ActionType               | ClickAllowed ok, ClickBlocked failure    | AccountUpn                                |
//	| defender.CloudAppEvents                 | cloud    | audit                    | ActionType               | unknown                                  | AccountId when a UPN                      |
//	| defender.AlertInfo / AlertEvidence      | alert    | alert                    | ActionType / EntityType  | unknown                                  | Account* (evidence)                       |
//	| entra.*SignInLogs                       | identity | logon                    | operationName            | resultType "0" ok, else failure          | userPrincipalName                         |
//	| entra.AuditLogs                         | identity | audit                    | activityDisplayName      | result success/failure                   | initiatedBy.user.userPrincipalName; targets in Related.Users |
//	| entra.UserRiskEvents / RiskyUsers       | identity | alert                    | riskEventType            | unknown                                  | userPrincipalName                         |
//	| azure.Activity                          | cloud    | audit                    | operationName, lower-case| Success ok, Failure failure              | claims upn, name, Caller                  |
//	| mdc.Alert / sentinel.SecurityAlert      | alert    | alert                    | AlertType                | unknown                                  | first account entity                      |
//	| mdc.Assessment                          | cloud    | other                    | enrichment action        | Healthy ok, Unhealthy failure            | —                                         |
//	| network.NSGFlow / network.VNetFlow      | network  | network                  | allow / deny             | allow ok, deny failure                   | —                                         |
//	| firewall.AzureFirewall*, AZFW*          | network  | network (dns, alert)     | allow / deny / alert     | Allow ok, Deny failure                   | —                                         |
//	| firewall.NetworkSession (ASIM)          | network  | network                  | DvcAction                | Allow ok, Deny failure                   | —                                         |
//	| storage.Storage{Blob,File,…}Logs        | cloud    | request                  | operationName            | HTTP <400 ok, ≥400 failure               | identity.requester.upn                    |
//	| appinsights.App*                        | app      | request (Requests, Deps) | Name                     | Success                                  | UserAuthenticatedId                       |
//	| cef.CommonSecurityLog                   | network  | network (other w/o IPs)  | act, else Name           | act allow/deny                           | suser, else duser                         |
//	| syslog.Syslog                           | app      | other                    | app name                 | unknown                                  | —                                         |
//
// Entities: User lower-case UPN, else domain\name lower-case; Device
// lower-case host name; IPs canonical (placeholders and 0.0.0.0 dropped,
// "ip:port" split); Resource lower-case Azure resource id; Protocol
// lower-case; Severity informational/low/medium/high/critical.
//
// # Performance
//
// Issue #3 asks for 150k events/s per core on a realistic mix. The path
// of a JSON message is now: one strict validation pass over each document
// (valid.go: RFC 8259 grammar, what encoding/json.Valid accepts) that also
// records where every object and array ends (spanIndex); envelope, record
// and member scans then step over containers in one lookup instead of
// re-reading them; and the typed decode (fastdec.go) walks a record's
// members once, storing each value through a per-type plan of field
// offsets built by reflection once, with no reflection, interface call
// or allocation per column. Unescaped strings point into the private
// copy of the message (which Raw already shares), so most columns cost
// no copy. A document that fails validation takes the old lenient path
// (bracket balance, json.Valid per record) so that one bad record still
// costs only itself. Strings are scanned eight bytes at a time (SWAR).
// The 1.2 KB scratch row of the Defender mapper, the container index and
// the probes are pooled per Parse call, and the event slice is pre-sized.
//
// Measured on this project's 2-core AMD EPYC VM, shared with other
// engineers' builds while measuring (load average 2–12), so the numbers are
// noisy (±15 %); go test -bench . -benchmem -benchtime 2s -count 3:
//
//	Decoder (one 1.3 KB DeviceProcessEvents row into ahRow)   µs/op    B/op   allocs
//	encoding/json                                             18.6–19.7  2168   25
//	goccy/go-json                                             5.4–6.6    2728   46
//	plan decoder (fastdec.go; chosen)                         3.0–3.8    1472*   4
//	  * the row itself when decoded into a fresh ahRow; Parse reuses one.
//
//	BenchmarkParseMix (37 events per op)   events/s/core   B/op     allocs/op
//	before (goccy, 3 scans + json.Valid)   39k–46k         189 KB   1368
//	after                                  135k–155k        81 KB    320
//
// Not measured: bytedance/sonic, valyala/fastjson and simdjson-go (none is
// in the module cache, and each would be a new dependency): sonic decodes
// into the same structs but would still call the flex types'
// UnmarshalJSON per column (an interface call, a copy and usually an
// allocation each), which is where goccy loses its time too; fastjson and
// simdjson-go build a tree that the mappers would then walk, a second
// pass the plan decoder avoids.
//
// The goal is at the edge of the noise: 150k is reached on a quiet
// machine, not with margin. Profile of BenchmarkParseMix now (cum): the
// Defender mapper 28 % (its decode 23 %: string scanning, the member-name
// map lookups, timestamp parsing), validation 11 %, allocation and GC
// about 23 % (events are 736-byte values; lower-casing names and users,
// the id strings, the CEF and syslog Raw objects), syslog and CEF 7 %,
// NSG flows 4 %. Next steps: a cheaper member-name lookup than a Go map
// (perfect hash on length and two bytes), lower-casing without a copy
// when a string is already lower-case, building the Defender id with one
// append, and the per-line allocations of the syslog and CEF parsers.
package normalize
