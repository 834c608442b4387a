// Package detect runs normalize → correlate → incident in one process,
// without Kafka, over exported logs: what `vigil detect --rules DIR
// --input FILE...` does, for hunting over exports and for reproducible
// tests. It gives the alerts the streaming path gives for the same input,
// built by the same code (normalize.Parse, operators.Engine,
// operators.AlertEvent, incident.Grouper); only the transport differs.
//
// # Reading
//
// Each input is cut into raw messages the way the file connector cuts a
// replayed file (see split): a file that is one multi-line JSON document
// (a pretty-printed envelope, a JSON array) gives one message per object,
// any other file one message per non-blank line (JSON lines, syslog,
// CEF; BOM and CRLF stripped), except a CSV export, which is one message
// since its rows need the header. Every message goes through
// normalize.Parse with the input's source hint, as the normalize stage
// parses a raw record. A record that does not parse is written to
// Options.Errors as a {"type":"error","stage":"normalize",...} line with
// the input name, line and bytes, and counted in Stats.Errors; the
// records beside it still become events. Nothing is dropped silently.
//
// # Order and time
//
// All events of all inputs are sorted by event time (ties by event id,
// source and raw bytes) before correlation. That is the order the
// streaming path converges to when sources arrive within the allowed
// lateness, and it makes the result independent of the order and the
// split of the inputs: exports of different tables, each sorted its own
// way, are interleaved correctly, so a sequence whose steps come from
// different files still sees them in the order they happened. Feeding
// files in the given order with a lateness was the alternative; it would
// refuse as late any event more than the lateness older than one already
// read from another file, which for exports of different tables (hours
// apart) would lose most of a story. The price is memory: every event is
// held until the sort (about the size of the input).
//
// # Correlation
//
// One operators.Engine per keyspace the rules use, over an in-memory
// store; each event goes to every keyspace's engine once per key of
// event.Keys(ks), exactly as the normalize stage writes it once per key
// to events.<ks>. Streaming runs one engine per partition of each
// keyspace topic; state is kept per (rule, key) and alert ids hash the
// rule, key and matched event ids, so the alerts do not depend on how
// keys are spread over partitions (tested against several partitions).
// Every alert re-enters as an event (operators.AlertEvent), in every
// keyspace, right after the event that caused it, as the correlate stage
// writes it back to events.<ks>, so chained rules fire. Every 1000 input
// events the engines do what the stage does after a batch: Advance to
// their watermark (firing absence deadlines and expiring dead state) and
// Flush.
//
// After the last event the watermark of every engine is advanced to the
// maximum event time plus the largest rule horizon (which includes each
// rule's lateness) plus Options.Lateness plus one second: past every
// deadline any rule can have. So absence rules ("A not followed by B
// within T") fire for anchors near the end of the input, where streaming
// would fire them only when later traffic moves the watermark;
// Stats.TailAlerts counts these. An alert re-entering older than the watermark
// is refused as late, as in streaming (absence alerts always are: they
// fire after their deadline has passed); Stats.LateAlertEvents counts
// them.
//
// # Output
//
// Out receives JSON lines: first every distinct alert, {"type":"alert",
// ...the alert as on the alerts topic}, ordered by time, rule, key and
// id; then the incidents, {"type":"incident", ...as on the incidents
// topic}, built by incident.Grouper from the alerts in that order: only
// the final revision of each (ordered by first time and id), or with
// Options.AllRevisions every revision as made. An alert id that fires
// twice (the same evidence twice in the input) is printed once and
// counted in Stats.DuplicateAlerts, as the incident stage drops the
// repeat. Two runs over the same inputs, in any order, print the same
// bytes.
//
// # Cost
//
// Messages of one input are parsed on every CPU (normalize.Parse is pure;
// results keep their order); correlation is one goroutine, as alerts of
// one keyspace feed the others. BenchmarkDetect (20,000 loadgen messages,
// 21,000 events, whole library) on this project's 2-vCPU AMD EPYC VM,
// Go 1.26.8, load average 3–5 from other builds while measuring:
// 9.7k–13.7k events/s wall (median 12.8k), 84–96 CPU-µs per event, 487 MB
// allocated and 3.9 M allocations per run. The profile: the engines'
// Process 44% (a fifth of the total decoding Raw into Fields for rules
// that read source fields), normalize.Parse 22%, state sweeps after each
// batch 9%, GC most of the rest.
//
// After the engine's native conditions, path-selective Fields decoding and
// out-of-line buffered events (operators/BENCHMARKS.md), load average ~1.7:
// 26k events/s wall, 51 CPU-µs per event, 339 MB and 0.96 M allocations per
// run; with entity enrichment (the default; --no-enrich turns it off,
// BenchmarkDetectEnrich) 13k events/s, 89 CPU-µs per event — and 18 alerts
// instead of 11, the flows that enrichment ties to a user.
package detect
