package enrich

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/rs/zerolog"

	"github.com/vigil-sec/vigil/pipeline/event"
)

// Options tune a Table. The zero value gives the defaults.
type Options struct {
	// TTL is how long, in event time, an association lives after it was
	// last seen (default 24h: DHCP leases and sessions change).
	TTL time.Duration
	// Refresh is how much newer an observation must be than the stored
	// last-seen time before it is written and published again (default
	// TTL/96, 15 minutes for a day). It bounds the entities topic to a few
	// records per association per hour, not one per event; last-seen times
	// are therefore this coarse.
	Refresh time.Duration
	// SweepEvery is how far the event-time clock advances between two
	// expiry sweeps run by Observe (default TTL/24).
	SweepEvery time.Duration
	// MaxFuture: an event time further than this ahead of the event's
	// Received time is taken as Received, so one bad clock cannot expire
	// the whole table (default 1h).
	MaxFuture time.Duration
	// CacheSize is the number of entities whose neighbour lists the LRU
	// cache holds (default 65536).
	CacheSize int
	// BlockCacheSize is the size in bytes of Pebble's block cache, which
	// serves the LRU's misses (default 64 MiB).
	BlockCacheSize int64
	// MaxNeighbors bounds the neighbour list cached per entity, the most
	// recent first (default 32). Pebble keeps them all until they expire.
	MaxNeighbors int
	// MaxRelated bounds each of Related.Users, Devices, IPs that Enrich
	// fills (default 8). Entries the parser put there are kept and count.
	MaxRelated int
	// IgnoreUser tells which users never form device or IP associations
	// (default IsServiceAccount).
	IgnoreUser func(user string) bool
	// Logger receives Pebble errors and Follow's warnings.
	Logger zerolog.Logger
}

func (o *Options) setDefaults() error {
	if o.TTL < 0 || o.Refresh < 0 || o.SweepEvery < 0 || o.MaxFuture < 0 || o.CacheSize < 0 || o.BlockCacheSize < 0 || o.MaxNeighbors < 0 || o.MaxRelated < 0 {
		return errors.New("enrich: negative option")
	}
	if o.TTL == 0 {
		o.TTL = 24 * time.Hour
	}
	if o.Refresh == 0 {
		o.Refresh = o.TTL / 96
	}
	if o.SweepEvery == 0 {
		o.SweepEvery = o.TTL / 24
	}
	if o.MaxFuture == 0 {
		o.MaxFuture = time.Hour
	}
	if o.CacheSize == 0 {
		o.CacheSize = 1 << 16
	}
	if o.BlockCacheSize == 0 {
		o.BlockCacheSize = 64 << 20
	}
	if o.MaxNeighbors == 0 {
		o.MaxNeighbors = 32
	}
	if o.MaxRelated == 0 {
		o.MaxRelated = 8
	}
	if o.MaxRelated > o.MaxNeighbors {
		return fmt.Errorf("enrich: MaxRelated %d exceeds MaxNeighbors %d", o.MaxRelated, o.MaxNeighbors)
	}
	if o.IgnoreUser == nil {
		o.IgnoreUser = IsServiceAccount
	}
	return nil
}

// Change is one record for the entities topic: Key is the association's
// forward key, Value its encoded last-seen time, nil Value a tombstone.
// Both slices are owned by the caller.
type Change struct {
	Key   []byte
	Value []byte
}

// Stats counts what a Table did since Open.
type Stats struct {
	Observed    uint64 // events given to Observe
	Changes     uint64 // changes returned by Observe (new or refreshed associations)
	Applied     uint64 // records Apply stored (newer than the local copy)
	Expired     uint64 // associations removed by sweeps (tombstones returned)
	CacheHits   uint64
	CacheMisses uint64
}

// Table is the entity table of one normalize process: a Pebble copy of the
// associations behind an LRU cache of neighbour lists. It is safe for
// concurrent use (the partition workers and Follow share one); one mutex
// guards it, since each call is short.
type Table struct {
	mu    sync.Mutex
	db    *pebble.DB
	opts  Options
	cache *simplelru.LRU[cacheKey, *entity]
	memo  [memoSize]memoEntry
	memoN int   // next memo slot to overwrite
	clock int64 // newest event time seen (Observe and Apply), unix ns
	sweep int64 // clock value at which Observe sweeps next
	stats Stats
	// undo holds, for each association changed by a Txn that has not
	// ended, what the table held before (see txn.go), by forward key.
	undo map[string]*undo

	// scratch, reused under mu
	key     []byte
	assocs  []assoc
	users   []cand
	devices []cand
	ips     []cand
}

// cacheKey names one entity: its namespace (nsIP, ...) and name. The
// cache holds one entry per entity with all its directions, so resolving a
// flow's IP to devices and users costs one lookup, not two.
type cacheKey struct {
	ns   byte
	from string
}

// Entity namespaces of the cache.
const (
	nsIP = iota + 1
	nsDevice
	nsUser
	nsOID
)

// slotOf maps a direction to its entity namespace and slot.
func slotOf(dir byte) (ns byte, slot int, ok bool) {
	switch dir {
	case byte(KindIPDevice):
		return nsIP, 0, true
	case byte(KindIPUser):
		return nsIP, 1, true
	case KindIPDevice.reverse():
		return nsDevice, 0, true
	case byte(KindDeviceUser):
		return nsDevice, 1, true
	case KindDeviceUser.reverse():
		return nsUser, 0, true
	case KindIPUser.reverse():
		return nsUser, 1, true
	case KindUserID.reverse():
		return nsUser, 2, true
	case byte(KindUserID):
		return nsOID, 0, true
	}
	return 0, 0, false
}

// localKey is the Pebble key of one direction of an association:
// namespace of from, from, 0x00, direction, to. All directions of one
// entity are adjacent, so the entity loads with one prefix scan. (The
// entities topic uses the forward key of appendKey instead.)
func localKey(dst []byte, dir byte, from, to string) []byte {
	ns, _, _ := slotOf(dir)
	dst = append(dst, ns)
	dst = append(dst, from...)
	dst = append(dst, sep, dir)
	return append(dst, to...)
}

// parseLocalKey splits a local key into direction, from and to.
func parseLocalKey(k []byte) (dir byte, from, to string, ok bool) {
	if len(k) < 4 {
		return 0, "", "", false
	}
	i := bytes.IndexByte(k[1:], sep) + 1
	if i <= 1 || i+1 >= len(k) {
		return 0, "", "", false
	}
	dir = k[i+1]
	if ns, _, known := slotOf(dir); !known || ns != k[0] {
		return 0, "", "", false
	}
	return dir, string(k[1:i]), string(k[i+2:]), true
}

// entity is the cached associations of one entity, one list per direction.
type entity struct {
	lists [3]neighbors
}

// memoSize is the number of recent lookups remembered in front of the LRU:
// Observe and Enrich of one event ask for the same entities, and a string
// compare is cheaper than hashing into the LRU.
const memoSize = 4

type memoEntry struct {
	k cacheKey
	e *entity
}

// neighbors is the cached list of one entity's associations in one
// direction, the most recent first (ties by name), at most MaxNeighbors.
// complete says whether the list holds every stored neighbour; when not,
// the ones left out are all older than the last one kept.
type neighbors struct {
	items    []neighbor
	complete bool
}

type neighbor struct {
	name string
	seen int64
}

func cmpNeighbor(a, b neighbor) int {
	if c := cmp.Compare(b.seen, a.seen); c != 0 {
		return c
	}
	return cmp.Compare(a.name, b.name)
}

// Open opens (creating if needed) the table stored in dir.
func Open(dir string, opts Options) (*Table, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("enrich: create %s: %w", dir, err)
	}
	// No write-ahead log: the entities topic is the durable copy, and
	// Follow replays it from the start on every run, so a crash loses
	// nothing that matters, and a write costs a memtable insert instead of
	// a log append (40–85 µs down to a few). Close flushes the memtable.
	bc := pebble.NewCache(opts.BlockCacheSize)
	defer bc.Unref() // the DB holds its own reference
	db, err := pebble.Open(dir, &pebble.Options{Logger: pebbleLogger{opts.Logger}, DisableWAL: true, Cache: bc})
	if err != nil {
		return nil, fmt.Errorf("enrich: open pebble at %s: %w", dir, err)
	}
	if err := openClean(db); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("enrich: open %s: %w", dir, err)
	}
	cache, err := simplelru.NewLRU[cacheKey, *entity](opts.CacheSize, nil)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("enrich: cache: %w", err)
	}
	return &Table{db: db, opts: opts, cache: cache, undo: map[string]*undo{}}, nil
}

// cleanKey marks a store that Close flushed with no Txn open. It sorts
// before every association key (their first byte is a namespace, 1–4).
var cleanKey = []byte{0, 'c', 'l', 'e', 'a', 'n'}

// openClean keeps the local copy only if the last run closed it cleanly,
// and removes the mark. Without a write-ahead log, a crash loses the
// memtable but not what Pebble had already flushed, which may include
// changes of a transaction that never committed (Abort did not run):
// such a copy is wiped, and Follow rebuilds it from the topic. Writes
// reach disk in order, so once anything written after this point is
// flushed, the mark's deletion is too.
func openClean(db *pebble.DB) error {
	_, closer, err := db.Get(cleanKey)
	if err == nil {
		_ = closer.Close()
		return db.Delete(cleanKey, pebble.NoSync)
	}
	if !errors.Is(err, pebble.ErrNotFound) {
		return err
	}
	// Not closed cleanly (or new): start empty.
	if err := db.DeleteRange([]byte{0}, []byte{0xff}, pebble.NoSync); err != nil {
		return err
	}
	return db.Flush()
}

// Close flushes and closes the Pebble store. The table must not be used
// afterwards. The next Open keeps the local copy only if no Txn was open
// (every change then is on the topic); otherwise it starts empty.
func (t *Table) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.undo) == 0 {
		if err := t.db.Set(cleanKey, nil, pebble.NoSync); err != nil {
			_ = t.db.Close()
			return fmt.Errorf("enrich: mark clean: %w", err)
		}
	} else {
		t.opts.Logger.Warn().Str("component", "enrich").Int("associations", len(t.undo)).
			Msg("entity table closed with uncommitted changes; the next start rebuilds it from the entities topic")
	}
	if err := t.db.Flush(); err != nil {
		_ = t.db.Close()
		return fmt.Errorf("enrich: flush: %w", err)
	}
	if err := t.db.Close(); err != nil {
		return fmt.Errorf("enrich: close: %w", err)
	}
	return nil
}

// Stats returns the counters.
func (t *Table) Stats() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stats
}

// CacheLen is the number of entities cached (at most CacheSize).
func (t *Table) CacheLen() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cache.Len()
}

// Clock is the table's event-time clock: the newest event time it has
// seen. Associations last seen before Clock − TTL are expired.
func (t *Table) Clock() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.clock == 0 {
		return time.Time{}
	}
	return time.Unix(0, t.clock).UTC()
}

// live is the oldest last-seen time still alive.
func (t *Table) live() int64 { return t.clock - int64(t.opts.TTL) }

// eventTime is ev.Time in unix ns, clamped to Received + MaxFuture; 0 when
// the event has no time.
func (t *Table) eventTime(ev *event.Event) int64 {
	if ev.Time.IsZero() {
		return 0
	}
	ts := ev.Time
	if !ev.Received.IsZero() && ts.After(ev.Received.Add(t.opts.MaxFuture)) {
		ts = ev.Received
	}
	return ts.UnixNano()
}

func (t *Table) advance(ts int64) {
	if ts <= t.clock {
		return
	}
	if t.clock == 0 {
		t.sweep = ts + int64(t.opts.SweepEvery)
	}
	t.clock = ts
}

// Observe learns the associations ev asserts (see the package doc for the
// rules) and returns the changes to publish on the entities topic: one per
// association that is new, or seen again at least Refresh after its stored
// last-seen time, plus tombstones when the event-time clock has passed the
// next expiry sweep. The table already holds the changes; applying them
// again (Follow reading them back) is a no-op. Call Observe before Enrich
// for the same event.
//
// The changes are final at once: a caller whose publication can fail
// (a Kafka transaction) observes through a Txn instead.
func (t *Table) Observe(ev *event.Event) ([]Change, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.observe(ev, nil)
}

// observe is Observe, journaling the changes in x when x is not nil.
func (t *Table) observe(ev *event.Event, x *Txn) ([]Change, error) {
	t.stats.Observed++
	ts := t.eventTime(ev)
	if ts == 0 {
		return nil, nil
	}
	t.advance(ts)
	var out []Change
	if ts >= t.live() {
		user, err := t.canonicalUser(ev)
		if err != nil {
			return nil, err
		}
		t.assocs = derive(t.assocs[:0], ev, user, t.opts.IgnoreUser)
		for _, a := range t.assocs {
			cur, err := t.seenOf(a.kind, a.left, a.right)
			if err != nil {
				return out, err
			}
			if cur != 0 && (ts <= cur || ts-cur < int64(t.opts.Refresh)) {
				continue
			}
			val := encodeValue(ts)
			if err := t.journal(x, a.kind, a.left, a.right, val); err != nil {
				return out, err
			}
			if err := t.store(a.kind, a.left, a.right, val, ts); err != nil {
				return out, err
			}
			out = append(out, Change{Key: appendKey(nil, byte(a.kind), a.left, a.right), Value: val})
			t.stats.Changes++
		}
	}
	if t.clock >= t.sweep {
		tomb, err := t.expire(x)
		out = append(out, tomb...)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// Expire removes every association last seen before Clock − TTL and
// returns their tombstones. Observe calls it every SweepEvery of event
// time; a caller may call it when it prefers to choose the moment.
func (t *Table) Expire() ([]Change, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.expire(nil)
}

// expire sweeps, journaling the tombstones in x when x is not nil.
func (t *Table) expire(x *Txn) ([]Change, error) {
	t.sweep = t.clock + int64(t.opts.SweepEvery)
	if t.clock == 0 {
		return nil, nil
	}
	live := t.live()
	// Each association is stored twice; its forward direction decides.
	it, err := t.db.NewIter(nil)
	if err != nil {
		return nil, fmt.Errorf("enrich: sweep: %w", err)
	}
	var out []Change
	var stray [][]byte
	for ok := it.First(); ok; ok = it.Next() {
		dir, from, to, ok := parseLocalKey(it.Key())
		if !ok {
			stray = append(stray, bytes.Clone(it.Key()))
			continue
		}
		if !Kind(dir).valid() {
			continue // a reverse direction
		}
		if seen, err := decodeValue(it.Value()); err == nil && seen >= live {
			continue
		}
		out = append(out, Change{Key: appendKey(nil, dir, from, to)})
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("enrich: sweep: %w", err)
	}
	for _, k := range stray {
		if err := t.db.Delete(k, pebble.NoSync); err != nil {
			return nil, fmt.Errorf("enrich: sweep: %w", err)
		}
	}
	for _, c := range out {
		kind, l, r, err := parseKey(c.Key)
		if err != nil {
			return nil, fmt.Errorf("enrich: sweep: %w", err)
		}
		if err := t.journal(x, kind, l, r, nil); err != nil {
			return nil, err
		}
		if err := t.remove(kind, l, r); err != nil {
			return nil, err
		}
	}
	if x != nil && len(out) > 0 {
		x.swept = true
	}
	t.stats.Expired += uint64(len(out))
	return out, nil
}

// Apply applies a record read from the entities topic, written by any
// worker (this one included): a value newer than the local copy replaces
// it, an older or equal one is ignored, a nil or empty value (tombstone) removes
// the association. It advances the event-time clock to the record's
// last-seen time, so a worker that follows others' records expires on
// their clock too. key and value are not retained.
func (t *Table) Apply(key, value []byte) error {
	kind, l, r, err := parseKey(key)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(value) == 0 { // a tombstone: franz-go gives a null value as nil
		if err := t.journal(nil, kind, l, r, nil); err != nil {
			return err
		}
		return t.remove(kind, l, r)
	}
	seen, err := decodeValue(value)
	if err != nil {
		return err
	}
	// Committed by someone: what an aborted Txn restores must include it,
	// even when the Txn's own newer value hides it below.
	if err := t.journal(nil, kind, l, r, value); err != nil {
		return err
	}
	t.advance(seen)
	if seen < t.live() {
		return nil
	}
	cur, err := t.seenOf(kind, l, r)
	if err != nil {
		return err
	}
	if cur >= seen {
		return nil
	}
	if err := t.store(kind, l, r, value, seen); err != nil {
		return err
	}
	t.stats.Applied++
	return nil
}

// store writes both directions of an association and updates the cached
// lists that hold either.
func (t *Table) store(kind Kind, l, r string, val []byte, seen int64) error {
	b := t.db.NewBatch()
	defer b.Close()
	t.key = localKey(t.key[:0], byte(kind), l, r)
	if err := b.Set(t.key, val, nil); err != nil {
		return fmt.Errorf("enrich: write %s: %w", kind, err)
	}
	t.key = localKey(t.key[:0], kind.reverse(), r, l)
	if err := b.Set(t.key, val, nil); err != nil {
		return fmt.Errorf("enrich: write %s: %w", kind, err)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("enrich: write %s: %w", kind, err)
	}
	// The memo may hold an entity the LRU has evicted, which upsert
	// cannot reach.
	t.memo = [memoSize]memoEntry{}
	t.upsert(byte(kind), l, r, seen)
	t.upsert(kind.reverse(), r, l, seen)
	return nil
}

func (t *Table) remove(kind Kind, l, r string) error {
	b := t.db.NewBatch()
	defer b.Close()
	t.key = localKey(t.key[:0], byte(kind), l, r)
	if err := b.Delete(t.key, nil); err != nil {
		return fmt.Errorf("enrich: delete %s: %w", kind, err)
	}
	t.key = localKey(t.key[:0], kind.reverse(), r, l)
	if err := b.Delete(t.key, nil); err != nil {
		return fmt.Errorf("enrich: delete %s: %w", kind, err)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("enrich: delete %s: %w", kind, err)
	}
	t.memo = [memoSize]memoEntry{}
	t.drop(byte(kind), l, r)
	t.drop(kind.reverse(), r, l)
	return nil
}

// upsert records name's new last-seen time in a cached list, if cached.
func (t *Table) upsert(dir byte, from, name string, seen int64) {
	ns, slot, _ := slotOf(dir)
	e, ok := t.cache.Peek(cacheKey{ns, from})
	if !ok {
		return
	}
	nb := &e.lists[slot]
	if i := slices.IndexFunc(nb.items, func(n neighbor) bool { return n.name == name }); i >= 0 {
		nb.items = slices.Delete(nb.items, i, i+1)
	}
	n := neighbor{strings.Clone(name), seen}
	i, _ := slices.BinarySearchFunc(nb.items, n, cmpNeighbor)
	nb.items = slices.Insert(nb.items, i, n)
	if len(nb.items) > t.opts.MaxNeighbors {
		nb.items = nb.items[:t.opts.MaxNeighbors]
		nb.complete = false
	}
}

// drop removes name from a cached list. An entity whose list was not
// complete is dropped whole: a neighbour left out may now belong in it.
func (t *Table) drop(dir byte, from, name string) {
	ns, slot, _ := slotOf(dir)
	k := cacheKey{ns, from}
	e, ok := t.cache.Peek(k)
	if !ok {
		return
	}
	nb := &e.lists[slot]
	if !nb.complete {
		t.cache.Remove(k)
		return
	}
	nb.items = slices.DeleteFunc(nb.items, func(n neighbor) bool { return n.name == name })
}

// neighbors returns the cached list of (dir, from), loading the entity
// from Pebble on a miss. The list may hold expired entries; callers stop
// at live(). It is valid until the next call that writes.
func (t *Table) neighbors(dir byte, from string) (*neighbors, error) {
	ns, slot, _ := slotOf(dir)
	e, err := t.entity(ns, from)
	if err != nil {
		return nil, err
	}
	return &e.lists[slot], nil
}

func (t *Table) entity(ns byte, from string) (*entity, error) {
	for i := range t.memo {
		if m := &t.memo[i]; m.e != nil && m.k.ns == ns && m.k.from == from {
			t.stats.CacheHits++
			return m.e, nil
		}
	}
	k := cacheKey{ns, from}
	e, ok := t.cache.Get(k)
	if ok {
		t.stats.CacheHits++
	} else {
		t.stats.CacheMisses++
		e = &entity{}
		if err := t.load(e, ns, from); err != nil {
			return nil, err
		}
		k.from = strings.Clone(from) // the key outlives the event
		t.cache.Add(k, e)
	}
	t.memo[t.memoN] = memoEntry{k, e}
	t.memoN = (t.memoN + 1) % memoSize
	return e, nil
}

// load reads every direction of one entity from Pebble: one prefix scan,
// since the local key layout keeps them together.
func (t *Table) load(e *entity, ns byte, from string) error {
	t.key = append(append(append(t.key[:0], ns), from...), sep)
	prefix := t.key
	upper := append(bytes.Clone(prefix[:len(prefix)-1]), sep+1)
	it, err := t.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("enrich: read %q: %w", from, err)
	}
	for i := range e.lists {
		e.lists[i].complete = true
	}
	live := t.live()
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()[len(prefix):]
		if len(k) < 2 {
			continue
		}
		kns, slot, ok := slotOf(k[0])
		seen, err := decodeValue(it.Value())
		if !ok || kns != ns || err != nil || seen < live {
			continue
		}
		nb := &e.lists[slot]
		nb.items = append(nb.items, neighbor{string(k[1:]), seen})
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("enrich: read %q: %w", from, err)
	}
	for i := range e.lists {
		nb := &e.lists[i]
		slices.SortFunc(nb.items, cmpNeighbor)
		if len(nb.items) > t.opts.MaxNeighbors {
			nb.items = slices.Clip(nb.items[:t.opts.MaxNeighbors])
			nb.complete = false
		}
	}
	return nil
}

// seenOf returns the stored last-seen time of an association, 0 if none.
func (t *Table) seenOf(kind Kind, l, r string) (int64, error) {
	nb, err := t.neighbors(byte(kind), l)
	if err != nil {
		return 0, err
	}
	for _, n := range nb.items {
		if n.name == r {
			return n.seen, nil
		}
	}
	if nb.complete {
		return 0, nil
	}
	t.key = localKey(t.key[:0], byte(kind), l, r)
	v, closer, err := t.db.Get(t.key)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("enrich: read %s: %w", kind, err)
	}
	defer closer.Close()
	seen, err := decodeValue(v)
	if err != nil {
		return 0, nil // a corrupt local value is overwritten
	}
	return seen, nil
}

// best returns the most recently seen live neighbour of (dir, from).
func (t *Table) best(dir byte, from string) (string, error) {
	if from == "" {
		return "", nil
	}
	nb, err := t.neighbors(dir, from)
	if err != nil {
		return "", err
	}
	if len(nb.items) > 0 && nb.items[0].seen >= t.live() {
		return nb.items[0].name, nil
	}
	return "", nil
}

// canonicalUser is the user the event's associations are filed under: its
// User, or the UPN its object id resolves to when User is empty or not a
// UPN (DOMAIN\name). Semantic 11 of DESIGN.md: one user, one key.
func (t *Table) canonicalUser(ev *event.Event) (string, error) {
	if isUPN(ev.User) || ev.UserID == "" {
		return ev.User, nil
	}
	upn, err := t.best(byte(KindUserID), ev.UserID)
	if err != nil || upn == "" {
		return ev.User, err
	}
	return upn, nil
}

type pebbleLogger struct{ l zerolog.Logger }

func (p pebbleLogger) Infof(string, ...any) {}
func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error().Str("component", "enrich").Msgf("pebble: "+format, args...)
}
func (p pebbleLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("enrich: pebble: "+format, args...))
}
