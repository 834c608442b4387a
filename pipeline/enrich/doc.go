// Package enrich keeps the entity table of the normalize stage: which IP
// belongs to which device, who was active on which device, who signed in
// from which IP, and which directory object id is which UPN, each with the
// event time it was last seen. Normalize enriches every event from it
// before keying (DESIGN.md, "Entity enrichment"), so a flow that names only
// IPs carries the device behind the IP and that device's users, and a rule
// `by: user` follows a user from sign-in to endpoint to network.
//
// # Model
//
// An association is a pair of entities of one Kind (ip-device,
// device-user, ip-user, userid-upn) and a last-seen time. Each normalize
// process has one Table: a Pebble copy of all associations (both
// directions, keyed so that everything one entity is associated with is
// one prefix scan) behind a golang-lru cache of entities, each entry
// holding an entity's neighbour lists, most recent first. Pebble runs
// without a write-ahead log: the topic is the durable copy and Follow
// replays it on every start. The local copy survives a restart only when
// Close ran with no Txn open; after a crash it may hold flushed changes of
// a transaction that never committed, so Open starts empty.
//
// The copies are shared through the compacted `entities` topic:
//
//	partition worker:  ev ─▶ Txn.Observe(ev) ─▶ []Change ─▶ entities topic (in the stage's transaction)
//	                         Enrich(ev)  ─▶ ev.Related, ev.User/UserID ─▶ keyed to events.<keyspace>
//	transaction committed:  Txn.Commit (the changes are final)
//	transaction aborted:    Txn.Abort (the table is back to what it held
//	                        before the batch), then the records are re-processed
//	every process:     entities topic ─▶ Follow ─▶ Apply (any worker's records, own included)
//
// Call Observe before Enrich for each event, so an event is enriched with
// what it itself asserts alongside what was known before. The table is
// shared by every partition of the process, so an aborted batch must not
// leave its associations behind: the re-processed records would find them
// known and publish nothing, and no other process would learn them (see
// Txn). Table.Observe, without a Txn, is for callers whose changes cannot
// fail to be published (tests, offline replays). A record key is
// the association's forward key (kind letter, left entity, 0x00, right
// entity); the value is a version byte (1) and the last-seen time as
// big-endian unix nanoseconds; a tombstone (nil value) removes the
// association. Apply keeps the newest last-seen time, so records arriving
// in any order from any worker converge, and reading back one's own
// records changes nothing.
//
// # Which events assert what
//
// derive reads only the typed fields that pipeline/normalize fills, by
// Category and Type, never by Source, so a new source that fills them the
// same way needs no change here. An IP qualifies only if it can name one
// host (not loopback, link-local, multicast, unspecified or broadcast). A
// user qualifies unless Options.IgnoreUser says it is a service account
// (default IsServiceAccount: NT AUTHORITY\*, machine accounts ending in $,
// ...), which would tie every device to one "user". "ok" means Outcome is
// not failure: a failed logon or a password spray proves no association.
//
//	| event (Category / Type)                        | asserts                                        |
//	|------------------------------------------------|------------------------------------------------|
//	| any but email and alert, User a UPN and UserID | userid-upn (UserID → User)                     |
//	| endpoint / network, dns, outbound              | ip-device (SrcIP, the local address → Device)  |
//	| endpoint / network, dns, Action Inbound*/      | ip-device (DstIP, the local address → Device)  |
//	|   Listening*                                   |                                                |
//	| endpoint / other (DeviceEvents: SrcIP=LocalIP) | ip-device (SrcIP → Device)                     |
//	| endpoint / logon, ok, one Related.Devices      | ip-device (SrcIP → that remote device),        |
//	|                                                | ip-user (SrcIP → User)                         |
//	| endpoint / any, ok, Device and User            | device-user (Device → User)                    |
//	| identity / logon, ok, Device and User          | device-user (Device → User)                    |
//	| identity / any, Device, SrcIP private          | ip-device (SrcIP → Device)                     |
//	| identity / any, one Related.Devices, DstIP     | ip-device (DstIP → that device; Defender for   |
//	|   private                                      |   Identity's destination)                      |
//	| identity, cloud / any, ok, User and SrcIP      | ip-user (SrcIP → User)                         |
//	| app / any, Device and SrcIP (syslog host)      | ip-device (SrcIP → Device)                     |
//	| network, email; any Type alert                 | nothing                                        |
//
// Why the exceptions: an endpoint event's SrcIP is the device's own only
// when the device opened the connection (inbound, it is the peer's; in
// file and logon events it is the remote requester's). A sign-in's IP is
// the user's, and usually a public egress (NAT, proxy) shared by many
// devices, so it names the device only when private. A flow or a CEF
// firewall record names IPs and the reporting appliance, not their owner.
// An email recipient address may be an alias of the UPN. Alerts are built
// from other events (and Vigil's own alerts come back as events); learning
// from them would feed the pipeline's output into its input.
//
// When an event's User is not a UPN (DOMAIN\name) but its UserID resolves
// to one, its associations are filed under the UPN: one user, one key
// (DESIGN.md semantic 11).
//
// # What Enrich adds
//
// See Table.Enrich: the event's user resolved between object id and UPN;
// for each IP its devices, their users and the users who signed in from
// it (and, when the IP has no device but exactly one such user, that
// user's devices: the hand-off sign-in → endpoint → flow); for the
// device its IPs and users; for the user their devices. Lists are bounded
// (Options.MaxRelated, default 8) and deterministic: direct associations
// before two-hop ones, then newest first, then by name.
//
// # Time
//
// Everything runs on event time. The table's clock is the newest event
// time it has seen (from Observe, and from Apply's records); an
// association last seen more than TTL (default 24h: leases and sessions
// change) before the clock is ignored at once and removed by the next
// sweep, which Observe runs every SweepEvery of event time and which
// returns the tombstones with its changes. Every process sweeps and
// publishes the same tombstones; compaction makes that harmless. An event
// time more than MaxFuture ahead of its Received time is taken as
// Received, so one bad clock cannot expire the table. Last-seen times are
// republished only when they move by at least Refresh (default TTL/96), so
// the topic carries a few records per association per hour, not one per
// event.
//
// # Ownership and concurrency
//
// A Table is safe for concurrent use; one mutex serializes calls (each is
// a few cache lookups in steady state). Change slices are the caller's.
// Strings that Enrich puts in Related are shared with the cache; Go
// strings are immutable, so that is safe. Apply does not retain its
// arguments.
//
// # Measured
//
// BenchmarkObserveEnrich: Observe + Enrich per event on a warm table in
// steady state (every association known, nothing to write), 1,000 users
// and devices; Go 1.26, linux/amd64, 2 vCPUs of an "AMD EPYC" shared with
// other builds (load average 1.5–3.6, so runs vary by up to 30%); range of
// 3 runs, 2026-11-26:
//
//	mix of the four     785–814 ns/op   16 B/op  0 allocs/op
//	sign-in             887–1127 ns/op  16 B/op  1 allocs/op
//	process             695–890 ns/op   15 B/op  0 allocs/op
//	device network     1039–1079 ns/op   0 B/op  0 allocs/op
//	flow                603–694 ns/op   31 B/op  1 allocs/op
//
// The cost is the cache lookups: two to four distinct entities per event,
// each a map probe and an LRU list move on memory spread over the heap,
// about 200–250 ns apiece (the memo of the last four entities makes
// Enrich's repeat of Observe's entities nearly free). The only
// allocations are Related's slices. Learning is dearer: BenchmarkObserveNew
// (every event new: two entity scans and two Pebble batches, two changes)
// is 22–24 µs per event. It started at 80 µs; a 64 MiB block cache and
// the local key layout that loads an entity with one scan brought it down.
// New associations come at the rate of new entities, not of events.
// Through a Txn, as the normalize stage observes (BenchmarkTxnObserveNew,
// committed every 500 events), learning is 33–40 µs per event: the
// journal reads each new association's previous value from Pebble (a
// miss costs about 5 µs) and keeps an entry until the commit; steady
// state, which writes nothing, costs the same as without (2026-11-26,
// same machine, load average 1.0–1.3).
package enrich
