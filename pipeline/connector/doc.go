// Package connector holds what every Vigil connector shares: the Connector
// and Producer interfaces, the shape of a raw record, source-name rules and
// the connector metrics. The connectors themselves live in subpackages:
//
//   - httpingest: POST /ingest/{source} (JSON array, {"records":[...]}
//     envelope, single object or JSON lines; gzip; bearer token).
//   - file: Replay of JSON-lines or whole-document files (rate limit,
//     progress bar, checkpoint) and a File connector that tails a file or
//     a directory.
//   - syslog: RFC 5424 / RFC 3164 / CEF listener on UDP and TCP (RFC 6587
//     octet counting or newline framing, optional TLS).
//   - kafkasrc: consumes a source Kafka or Azure Event Hubs and copies each
//     message to raw.<source>, committing source offsets only after the
//     copy is durable.
//   - blob: diagnostic-log and flow-log blobs in the
//     insights-logs-*/…/PT1H.json layout, from a local directory.
//
// # The raw record
//
// A connector writes what it received, unchanged, to the topic
// prefix + "raw." + source (DESIGN.md: raw topics are "as received"); the
// normalize stage is the only place that parses content. One record holds
// one message, line or envelope: a connector splits only where the
// transport itself delimits (lines, JSON array elements, syslog frames,
// Kafka messages) and never re-encodes. Every record carries the headers
//
//	vigil.source     the source name (also the topic suffix)
//	vigil.connector  the connector instance name
//	vigil.received   the receive time, RFC 3339 with nanoseconds, UTC
//
// and a key that is nil or a stable per-source key (the source message's
// key for kafkasrc, the sending host for syslog), so the raw topic's
// partitioning does not matter to correctness: normalize re-keys.
//
// # Contract
//
// Run returns when its context is cancelled (nil or ctx.Err() is not an
// error then) or when it cannot go on. A connector acknowledges input to
// its sender (HTTP 202, a checkpoint, a source offset commit) only after
// ProduceSync returned without error for every record of that input, so a
// crash never loses what was acknowledged; what was not acknowledged may be
// produced again (at-least-once: normalize and the later stages dedupe by
// deterministic ids).
//
// # Metrics
//
// Registered by NewMetrics on the injected prometheus.Registerer:
//
//	vigil_connector_records_total{connector,source}  records produced to raw topics
//	vigil_connector_bytes_total{connector,source}    value bytes of those records
//	vigil_connector_errors_total{connector,reason}   inputs refused or failed, by reason
//
// Reasons are short fixed words (auth, too_large, bad_json, bad_source,
// produce, read, frame, ...) so the label's cardinality stays bounded.
package connector
