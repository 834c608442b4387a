package enrich

import (
	"bytes"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"
)

// FuzzApply feeds arbitrary entities records to Apply: it never panics,
// and a record it accepts has a key that parses back to itself.
func FuzzApply(f *testing.F) {
	f.Add(appendKey(nil, byte(KindIPDevice), ip17, ws17), encodeValue(t0.UnixNano()))
	f.Add(appendKey(nil, byte(KindUserID), aliceOID, alice), encodeValue(1))
	f.Add(appendKey(nil, byte(KindDeviceUser), ws17, alice), []byte(nil))
	f.Add([]byte("s\x00\x00"), []byte{1, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte("h1\x002\x003"), []byte{2})
	tb := openTable(f, Options{})
	f.Fuzz(func(t *testing.T, key, value []byte) {
		if err := tb.Apply(key, value); err != nil {
			return
		}
		kind, l, r, err := parseKey(key)
		if err != nil {
			t.Fatalf("Apply accepted key %q that does not parse: %v", key, err)
		}
		if back := appendKey(nil, byte(kind), l, r); !bytes.Equal(back, key) {
			t.Fatalf("key %q parsed to %q", key, back)
		}
	})
}

// FuzzTxnAbort interleaves two partitions' Txns with records that other
// processes committed (Apply), in any order and with any last-seen times
// within the TTL, then aborts both Txns: the table must hold exactly what
// applying only the committed records gives.
//
// Each op is two bytes: the first picks the operation (low two bits: Txn
// a observes, Txn b observes, Apply a value, Apply a tombstone) and the
// association (bit 2); the second is the time in minutes.
func FuzzTxnAbort(f *testing.F) {
	f.Add([]byte{0, 10, 2, 5, 1, 60, 3, 0, 2, 70})
	f.Add([]byte{2, 30, 0, 90, 2, 200, 1, 120})
	f.Add([]byte{4, 1, 6, 2, 5, 100, 7, 0, 0, 250})
	type assoc struct{ ip, dev string }
	// One pair of tables for all runs (opening Pebble dominates a run);
	// each run has its own entities and compares only those.
	tb, ref := openTable(f, Options{}), openTable(f, Options{})
	run := 0
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 64 {
			ops = ops[:64]
		}
		run++
		mark := fmt.Sprintf("ws-%d-", run)
		var assocs [2]assoc
		for i := range assocs {
			assocs[i] = assoc{fmt.Sprintf("10.%d.%d.%d", run>>8&255, run&255, 17+i), fmt.Sprintf("%s%d", mark, i)}
		}
		mine := func(tab *Table) map[string]time.Duration {
			m := snapshot(t, tab)
			maps.DeleteFunc(m, func(k string, _ time.Duration) bool { return !strings.Contains(k, mark) })
			return m
		}
		a, b := tb.Txn(), tb.Txn()
		for i := 0; i+1 < len(ops); i += 2 {
			as := assocs[ops[i]>>2&1]
			ts := at(time.Duration(ops[i+1]) * time.Minute)
			key := appendKey(nil, byte(KindIPDevice), as.ip, as.dev)
			switch ops[i] & 3 {
			case 0, 1:
				x := a
				if ops[i]&3 == 1 {
					x = b
				}
				if _, err := x.Observe(netConn(ts, "ConnectionSuccess", as.dev, "", as.ip, extIP)); err != nil {
					t.Fatal(err)
				}
			case 2:
				for _, tab := range []*Table{tb, ref} {
					if err := tab.Apply(key, encodeValue(ts.UnixNano())); err != nil {
						t.Fatal(err)
					}
				}
			case 3:
				for _, tab := range []*Table{tb, ref} {
					if err := tab.Apply(key, nil); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		if err := a.Abort(); err != nil {
			t.Fatal(err)
		}
		if err := b.Abort(); err != nil {
			t.Fatal(err)
		}
		if got, want := mine(tb), mine(ref); !maps.Equal(got, want) {
			t.Fatalf("after aborting both Txns:\n got %v\nwant %v", got, want)
		}
		if len(tb.undo) != 0 {
			t.Fatalf("%d undo entries left", len(tb.undo))
		}
	})
}
