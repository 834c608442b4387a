package enrich

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/pipeline/event"
)

// snapshot is every association stored in Pebble, expired or not, in
// both directions: "kind:left>right" → last seen (offset from t0). Two
// equal snapshots mean an undo left no trace.
func snapshot(t *testing.T, tb *Table) map[string]time.Duration {
	t.Helper()
	tb.mu.Lock()
	defer tb.mu.Unlock()
	it, err := tb.db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	out := map[string]time.Duration{}
	for ok := it.First(); ok; ok = it.Next() {
		dir, from, to, ok := parseLocalKey(it.Key())
		if !ok {
			t.Fatalf("stray local key %q", it.Key())
		}
		seen, err := decodeValue(it.Value())
		if err != nil {
			t.Fatalf("%q: %v", it.Key(), err)
		}
		out[fmt.Sprintf("%c:%s>%s", dir, from, to)] = time.Unix(0, seen).Sub(t0)
	}
	return out
}

func txnObserve(t *testing.T, x *Txn, evs ...*event.Event) []Change {
	t.Helper()
	var all []Change
	for _, ev := range evs {
		ch, err := x.Observe(ev)
		if err != nil {
			t.Fatalf("observe %s: %v", ev.Source, err)
		}
		all = append(all, ch...)
	}
	return all
}

func keysOf(cs []Change) []string {
	var out []string
	for _, c := range cs {
		s := strings.ReplaceAll(string(c.Key), "\x00", ">")
		if c.Value == nil {
			s += " (tombstone)"
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// An aborted Txn leaves the table exactly as it was before the Txn, in
// Pebble and in what Enrich and the next Observe see, whatever else
// happened to the same associations meanwhile.
func TestTxnAbortLeavesNoTrace(t *testing.T) {
	conn := func(d time.Duration) *event.Event {
		return netConn(at(d), "ConnectionSuccess", ws17, alice, ip17, extIP)
	}
	h := func(d time.Duration) []byte { return encodeValue(at(d).UnixNano()) }
	ipDevice := appendKey(nil, byte(KindIPDevice), ip17, ws17)
	// What conn(0) alone leaves in the table (both directions).
	connAt0 := map[string]time.Duration{
		"h:" + ip17 + ">" + ws17: 0, "H:" + ws17 + ">" + ip17: 0,
		"u:" + ws17 + ">" + alice: 0, "U:" + alice + ">" + ws17: 0,
	}
	tests := []struct {
		name string
		base []*event.Event // committed before, with Table.Observe
		// run makes the changes of the Txns and ends them; it returns
		// what the snapshot must then be, relative to the one before.
		run func(t *testing.T, tb *Table, before map[string]time.Duration) map[string]time.Duration
	}{
		{
			name: "new associations",
			run: func(t *testing.T, tb *Table, before map[string]time.Duration) map[string]time.Duration {
				x := tb.Txn()
				if n := len(txnObserve(t, x, signIn(at(0), alice, aliceOID, homeIP, "", event.OutcomeSuccess), conn(time.Minute))); n != 4 {
					t.Fatalf("%d changes, want 4", n)
				}
				if x.Pending() != 4 {
					t.Fatalf("Pending = %d, want 4", x.Pending())
				}
				if err := x.Abort(); err != nil {
					t.Fatal(err)
				}
				if x.Pending() != 0 {
					t.Fatalf("Pending after Abort = %d", x.Pending())
				}
				return before
			},
		},
		{
			name: "refresh restores the older last-seen time",
			base: []*event.Event{conn(0)},
			run: func(t *testing.T, tb *Table, before map[string]time.Duration) map[string]time.Duration {
				x := tb.Txn()
				if n := len(txnObserve(t, x, conn(time.Hour))); n != 2 {
					t.Fatalf("%d changes, want 2 refreshes", n)
				}
				if err := x.Abort(); err != nil {
					t.Fatal(err)
				}
				return before
			},
		},
		{
			name: "two partitions, same association, first aborts first",
			run: func(t *testing.T, tb *Table, before map[string]time.Duration) map[string]time.Duration {
				a, b := tb.Txn(), tb.Txn()
				txnObserve(t, a, conn(0))
				txnObserve(t, b, conn(time.Hour)) // refreshes a's
				if err := a.Abort(); err != nil {
					t.Fatal(err)
				}
				if err := b.Abort(); err != nil {
					t.Fatal(err)
				}
				return before
			},
		},
		{
			name: "two partitions, same association, second aborts first",
			base: []*event.Event{conn(-time.Hour)},
			run: func(t *testing.T, tb *Table, before map[string]time.Duration) map[string]time.Duration {
				a, b := tb.Txn(), tb.Txn()
				txnObserve(t, a, conn(0))
				txnObserve(t, b, conn(time.Hour))
				if err := b.Abort(); err != nil {
					t.Fatal(err)
				}
				if err := a.Abort(); err != nil {
					t.Fatal(err)
				}
				return before
			},
		},
		{
			name: "a committed write from another process survives the abort",
			base: []*event.Event{conn(0)},
			run: func(t *testing.T, tb *Table, before map[string]time.Duration) map[string]time.Duration {
				x := tb.Txn()
				txnObserve(t, x, conn(time.Hour))
				// Older than the Txn's own value, so not stored now, but
				// committed: the abort must come back to it.
				if err := tb.Apply(ipDevice, h(30*time.Minute)); err != nil {
					t.Fatal(err)
				}
				if err := x.Abort(); err != nil {
					t.Fatal(err)
				}
				want := maps.Clone(before)
				want["h:"+ip17+">"+ws17] = 30 * time.Minute
				want["H:"+ws17+">"+ip17] = 30 * time.Minute
				return want
			},
		},
		{
			name: "the later writer aborts, then the earlier commits",
			run: func(t *testing.T, tb *Table, before map[string]time.Duration) map[string]time.Duration {
				a, b := tb.Txn(), tb.Txn()
				txnObserve(t, a, conn(0))
				txnObserve(t, b, conn(time.Hour))
				if err := b.Abort(); err != nil {
					t.Fatal(err)
				}
				if err := a.Commit(); err != nil {
					t.Fatal(err)
				}
				return connAt0
			},
		},
		{
			name: "one partition commits, the other aborts",
			run: func(t *testing.T, tb *Table, before map[string]time.Duration) map[string]time.Duration {
				a, b := tb.Txn(), tb.Txn()
				txnObserve(t, a, conn(0))
				txnObserve(t, b, conn(time.Hour))
				if err := a.Commit(); err != nil {
					t.Fatal(err)
				}
				if err := b.Abort(); err != nil {
					t.Fatal(err)
				}
				return connAt0
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := openTable(t, Options{})
			baseChanges := observe(t, tb, tt.base...)
			before := snapshot(t, tb)
			if len(before) != 2*len(baseChanges) {
				t.Fatalf("base: %d local entries for %d changes", len(before), len(baseChanges))
			}
			want := tt.run(t, tb, before)
			if got := snapshot(t, tb); !maps.Equal(got, want) {
				t.Fatalf("table after the Txns:\n got %v\nwant %v", got, want)
			}
			if len(tb.undo) != 0 {
				t.Errorf("%d undo entries left after every Txn ended", len(tb.undo))
			}
			// Enrich sees the same: a cached list must not keep an
			// undone neighbour.
			f := enrich(t, tb, flow(at(2*time.Hour), ip17, extIP))
			if _, known := want["h:"+ip17+">"+ws17]; known != slices.Contains(f.Related.Devices, ws17) {
				t.Errorf("flow devices %v; association in table: %v", f.Related.Devices, known)
			}
		})
	}
}

// Re-processing after an abort returns the same changes as the first
// time, so the entities topic gets them; after a commit it returns none.
func TestTxnReprocessAfterAbort(t *testing.T) {
	evs := []*event.Event{
		signIn(at(0), alice, aliceOID, homeIP, laptop, event.OutcomeSuccess),
		netConn(at(time.Minute), "ConnectionSuccess", ws17, alice, ip17, extIP),
	}
	tb := openTable(t, Options{})
	x := tb.Txn()
	first := txnObserve(t, x, evs...)
	if len(first) != 5 {
		t.Fatalf("%d changes, want 5: %v", len(first), keysOf(first))
	}
	if err := x.Abort(); err != nil {
		t.Fatal(err)
	}
	if f := enrich(t, tb, flow(at(2*time.Minute), ip17, extIP)); !f.Related.IsZero() {
		t.Errorf("aborted associations still enrich: %+v", f.Related)
	}
	again := txnObserve(t, x, evs...)
	if len(again) != len(first) {
		t.Fatalf("re-processing after Abort: %v, want %v", keysOf(again), keysOf(first))
	}
	for i := range first {
		if !bytes.Equal(first[i].Key, again[i].Key) || !bytes.Equal(first[i].Value, again[i].Value) {
			t.Errorf("change %d: %q=%x, first time %q=%x", i, again[i].Key, again[i].Value, first[i].Key, first[i].Value)
		}
	}
	if err := x.Commit(); err != nil {
		t.Fatal(err)
	}
	if n := len(txnObserve(t, x, evs...)); n != 0 {
		t.Errorf("re-processing after Commit: %d changes, want 0", n)
	}
	if len(tb.undo) != 0 {
		t.Errorf("%d undo entries left", len(tb.undo))
	}
}

// A sweep inside an aborted Txn is undone, and the next Observe sweeps
// again, so the tombstones still reach the topic.
func TestTxnAbortedSweepRepeats(t *testing.T) {
	tb := openTable(t, Options{TTL: time.Hour, SweepEvery: time.Minute})
	observe(t, tb, netConn(at(0), "ConnectionSuccess", ws17, "", ip17, extIP))
	before := snapshot(t, tb)
	late := netConn(at(3*time.Hour), "ConnectionSuccess", ws22, "", ip22, extIP)
	x := tb.Txn()
	first := txnObserve(t, x, late)
	want := []string{"h" + ip17 + ">" + ws17 + " (tombstone)", "h" + ip22 + ">" + ws22}
	if got := keysOf(first); !slices.Equal(got, want) {
		t.Fatalf("changes %v, want %v", got, want)
	}
	if err := x.Abort(); err != nil {
		t.Fatal(err)
	}
	if got := snapshot(t, tb); !maps.Equal(got, before) {
		t.Fatalf("after abort: %v, want %v", got, before)
	}
	if got := keysOf(txnObserve(t, x, late)); !slices.Equal(got, want) {
		t.Fatalf("re-processing: %v, want %v", got, want)
	}
	if err := x.Commit(); err != nil {
		t.Fatal(err)
	}
}

// The local copy outlives a process only when it closed with nothing
// uncommitted: a crash (Pebble flushed, Close never ran) or a Close with
// a Txn open may leave associations the topic never got, so the next
// Open starts empty and Follow rebuilds it.
func TestReopenKeepsOnlyCleanCopies(t *testing.T) {
	conn := netConn(at(0), "ConnectionSuccess", ws17, alice, ip17, extIP)
	tests := []struct {
		name string
		stop func(t *testing.T, tb *Table)
		kept bool
	}{
		{"clean close", func(t *testing.T, tb *Table) {
			if err := tb.Close(); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"crash after a flush", func(t *testing.T, tb *Table) {
			// What a killed process leaves: flushed tables, no Close.
			if err := tb.db.Flush(); err != nil {
				t.Fatal(err)
			}
			if err := tb.db.Close(); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"close with a Txn open", func(t *testing.T, tb *Table) {
			txnObserve(t, tb.Txn(), netConn(at(time.Minute), "ConnectionSuccess", ws22, bob, ip22, extIP))
			if err := tb.Close(); err != nil {
				t.Fatal(err)
			}
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tb, err := Open(dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			observe(t, tb, conn)
			tt.stop(t, tb)
			tb, err = Open(dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			f := enrich(t, tb, flow(at(2*time.Minute), ip17, extIP))
			if kept := slices.Equal(f.Related.Devices, []string{ws17}); kept != tt.kept {
				t.Errorf("devices after reopen %v; want the copy kept: %v", f.Related.Devices, tt.kept)
			}
			if n := len(snapshot(t, tb)); tt.kept != (n > 0) {
				t.Errorf("%d local entries after reopen; want the copy kept: %v", n, tt.kept)
			}
			// Open consumed the mark: a crash of this run is not clean.
			observe(t, tb, conn)
			if err := tb.db.Flush(); err != nil {
				t.Fatal(err)
			}
			if err := tb.db.Close(); err != nil {
				t.Fatal(err)
			}
			tb, err = Open(dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer tb.Close()
			if n := len(snapshot(t, tb)); n != 0 {
				t.Errorf("after a crash of the reopened table: %d local entries, want 0", n)
			}
		})
	}
}
