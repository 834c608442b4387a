// Package state holds operator state: one Pebble instance per input
// partition, written through a batch that commits only after the Kafka
// transaction that produced the same changes to the changelog commits.
//
// The model is goka's: a partition's state and the input offset it reflects
// live in the same store and move together. A Store stages every write in
// memory (reads see the staged writes over the committed ones), which is
// also the set of keys changed — the changelog records of this transaction
// — and on Commit writes them in one Pebble batch together with the next
// input offset. If the transaction
// aborts, Abort drops the batch and the store is exactly as it was at the
// last commit — the input offset rewinds to match.
//
// On partition assignment the runtime compares the store's offset with the
// group's committed offset: equal means the local copy is current; anything
// else (a crash between the Kafka commit and the Pebble commit, a partition
// that lived elsewhere for a while) means the local copy is wiped and
// rebuilt from the compacted changelog topic, which the transactions keep
// exactly in step with the committed offsets.
//
// Byte-slice ownership: values returned by Get and passed to Scan's
// callback are valid only until the next call on the Store; copy them to
// keep them. Keys and values passed to Set are copied by Pebble.
package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/cockroachdb/pebble/v2"
)

// Key namespaces inside one Pebble instance: user state and store metadata
// never collide.
var (
	userPrefix = []byte("u/")
	offsetKey  = []byte("m/offset")
)

// Change is one key written since the last commit; a nil Value is a delete.
// It becomes one changelog record (key, value; nil value = tombstone).
type Change struct {
	Key   []byte
	Value []byte
}

// DefaultMemTableSize is Options.MemTableSize's default. Measured with the
// rule library over generated traffic (operators
// BenchmarkLibraryTrafficPebble, 2 vCPU): Pebble's 4 MB default 28k
// events/cpu-s, 8 MB 34k–37k, 16 MB 37k–55k, 64 MB 47k — flushes and
// compactions of short-lived versions were half the CPU at 4 MB.
const DefaultMemTableSize = 16 << 20

// Options tune a Store.
type Options struct {
	// Cache is a block cache shared by all stores of a process; nil gives
	// each store Pebble's default.
	Cache *pebble.Cache
	// MemTableSize is the largest memtable (default DefaultMemTableSize).
	// Hot keys are rewritten on every batch and buffered events deleted
	// soon after they are written: in a larger memtable the superseded
	// versions die before they reach a table file. Pebble starts small and
	// doubles up to this size, so an idle partition does not pay for it.
	MemTableSize uint64
	// Sync keeps Pebble's write-ahead log and makes Commit fsync it. The
	// changelog is the durable copy, so the default (false: no WAL) is
	// safe: a lost local write only forces a restore.
	Sync bool
}

// Store is the state of one input partition. It is not safe for
// concurrent use: one partition worker owns it.
type Store struct {
	dir string
	db  *pebble.DB
	// changes and deleted are the staged writes: read over the committed
	// state, written in one batch by Commit. (An indexed Pebble batch did
	// the same with a skiplist insert per write, on top of these maps.)
	changes map[string][]byte
	deleted map[string]bool
	sync    bool
	kbuf    []byte // the Pebble key of Get, Set and Delete (Pebble copies it)
}

// Open opens (creating if needed) the store in dir.
func Open(dir string, opts Options) (*Store, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("state: create %s: %w", dir, err)
	}
	// No write-ahead log: the changelog topic is the durable copy (as in
	// Kafka Streams). A crash loses the unflushed memtable, offset record
	// included, so the store reopens at an older offset than the group's
	// and the runner restores it from the changelog; a clean Close flushes
	// first. Every committed batch was written twice (WAL and memtable).
	if opts.MemTableSize == 0 {
		opts.MemTableSize = DefaultMemTableSize
	}
	po := &pebble.Options{Cache: opts.Cache, Logger: quietLogger{}, DisableWAL: !opts.Sync, MemTableSize: opts.MemTableSize}
	db, err := pebble.Open(dir, po)
	if err != nil {
		return nil, fmt.Errorf("state: open pebble at %s: %w", dir, err)
	}
	s := &Store{dir: dir, db: db, sync: opts.Sync}
	s.reset()
	return s, nil
}

func (s *Store) reset() {
	s.changes = map[string][]byte{}
	s.deleted = map[string]bool{}
}

func userKey(k []byte) []byte {
	out := make([]byte, 0, len(userPrefix)+len(k))
	return append(append(out, userPrefix...), k...)
}

// pebbleKey returns the Pebble key of k in a buffer reused by the next call:
// for lookups and writes, which copy it, not for iterator bounds. It takes
// the staged keys (strings) as they are, without a conversion each.
func pebbleKey[K string | []byte](s *Store, k K) []byte {
	s.kbuf = append(append(s.kbuf[:0], userPrefix...), k...)
	return s.kbuf
}

// Get returns the value of key, or (nil, nil) if it is absent. The value
// is valid until the next call on s.
func (s *Store) Get(key []byte) ([]byte, error) {
	if s.deleted[string(key)] {
		return nil, nil
	}
	if v, ok := s.changes[string(key)]; ok {
		return bytes.Clone(v), nil
	}
	v, closer, err := s.db.Get(pebbleKey(s, key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state: get: %w", err)
	}
	out := bytes.Clone(v)
	_ = closer.Close()
	return out, nil
}

// Set stages key = value.
func (s *Store) Set(key, value []byte) error {
	k := string(key)
	s.changes[k] = bytes.Clone(value)
	delete(s.deleted, k)
	return nil
}

// Delete stages the removal of key.
func (s *Store) Delete(key []byte) error {
	k := string(key)
	delete(s.changes, k)
	s.deleted[k] = true
	return nil
}

// Scan calls fn for every key with the given prefix, in key order, seeing
// staged writes. fn must not write to s; slices are valid only during fn.
func (s *Store) Scan(prefix []byte, fn func(key, value []byte) error) error {
	lower := userKey(prefix)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(lower)})
	if err != nil {
		return fmt.Errorf("state: scan: %w", err)
	}
	defer it.Close()
	// The staged writes under prefix, merged in key order with the
	// committed keys: a staged value replaces a committed one, a staged
	// delete hides it.
	var staged []string
	p := string(prefix)
	for k := range s.changes {
		if strings.HasPrefix(k, p) {
			staged = append(staged, k)
		}
	}
	sort.Strings(staged)
	ok, j := it.First(), 0
	for ok || j < len(staged) {
		var key []byte
		if ok {
			key = it.Key()[len(userPrefix):]
		}
		if j < len(staged) && (!ok || staged[j] <= string(key)) {
			if ok && staged[j] == string(key) {
				ok = it.Next()
			}
			if err := fn([]byte(staged[j]), s.changes[staged[j]]); err != nil {
				return err
			}
			j++
			continue
		}
		if !s.deleted[string(key)] {
			if err := fn(key, it.Value()); err != nil {
				return err
			}
		}
		ok = it.Next()
	}
	return it.Error()
}

// prefixEnd returns the smallest key greater than every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}

// Pending returns the changes staged since the last Commit or Abort, sorted
// by key so changelog output is deterministic.
func (s *Store) Pending() []Change {
	out := make([]Change, 0, len(s.changes)+len(s.deleted))
	for k, v := range s.changes {
		out = append(out, Change{Key: []byte(k), Value: v})
	}
	for k := range s.deleted {
		out = append(out, Change{Key: []byte(k)})
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i].Key, out[j].Key) < 0 })
	return out
}

// Commit writes the staged changes and records nextOffset, the offset of
// the next input record to process, atomically.
func (s *Store) Commit(nextOffset int64) error {
	batch := s.db.NewBatch()
	defer batch.Close()
	for k, v := range s.changes {
		if err := batch.Set(pebbleKey(s, k), v, nil); err != nil {
			return fmt.Errorf("state: commit: %w", err)
		}
	}
	for k := range s.deleted {
		if err := batch.Delete(pebbleKey(s, k), nil); err != nil {
			return fmt.Errorf("state: commit: %w", err)
		}
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(nextOffset))
	if err := batch.Set(offsetKey, b[:], nil); err != nil {
		return fmt.Errorf("state: commit: %w", err)
	}
	wo := pebble.NoSync
	if s.sync {
		wo = pebble.Sync
	}
	if err := batch.Commit(wo); err != nil {
		return fmt.Errorf("state: commit: %w", err)
	}
	s.reset()
	return nil
}

// Abort drops everything staged since the last commit.
func (s *Store) Abort() { s.reset() }

// Offset returns the next input offset recorded by the last Commit, and
// false if the store has never committed.
func (s *Store) Offset() (int64, bool, error) {
	v, closer, err := s.db.Get(offsetKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("state: read offset: %w", err)
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, false, fmt.Errorf("state: corrupt offset record (%d bytes)", len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), true, nil
}

// Wipe deletes all state and the recorded offset, committed at once. It is
// the first step of a restore from the changelog.
func (s *Store) Wipe() error {
	s.reset()
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.DeleteRange([]byte("m/"), []byte("v"), nil); err != nil {
		return fmt.Errorf("state: wipe: %w", err)
	}
	wo := pebble.NoSync // a wipe lost in a crash only means restoring again
	if s.sync {
		wo = pebble.Sync
	}
	if err := b.Commit(wo); err != nil {
		return fmt.Errorf("state: wipe: %w", err)
	}
	return nil
}

// Restore applies one changelog record directly (not staged, not part of
// Pending): a nil value deletes the key.
func (s *Store) Restore(key, value []byte) error {
	var err error
	if value == nil {
		err = s.db.Delete(userKey(key), pebble.NoSync)
	} else {
		err = s.db.Set(userKey(key), value, pebble.NoSync)
	}
	if err != nil {
		return fmt.Errorf("state: restore: %w", err)
	}
	return nil
}

// Close drops staged changes and closes the database.
func (s *Store) Close() error {
	s.reset() // staged changes are dropped
	// Without a WAL, what is only in the memtable would be lost.
	if err := s.db.Flush(); err != nil {
		_ = s.db.Close()
		return fmt.Errorf("state: flush %s: %w", s.dir, err)
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("state: close %s: %w", s.dir, err)
	}
	return nil
}

// quietLogger keeps Pebble's informational chatter out of Vigil's logs;
// errors still surface through returned errors.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}
