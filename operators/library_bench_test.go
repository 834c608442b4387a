package operators_test

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/benchmarks/loadgen"
	"github.com/vigil-sec/vigil/operators"
	"github.com/vigil-sec/vigil/pipeline/alert"
	"github.com/vigil-sec/vigil/pipeline/event"
	"github.com/vigil-sec/vigil/pipeline/normalize"
	"github.com/vigil-sec/vigil/rules"
	"github.com/vigil-sec/vigil/rules/ruletest"
	"github.com/vigil-sec/vigil/state"
)

type record struct {
	ks  event.Keyspace
	key string
	ev  event.Event
	enc []byte // ev in the event codec, as on events.<ks> (stage benchmark only)
}

// libraryStream loads rules/library (whatever it holds) and turns every
// rule's fixture events into correlate input: each event once per key of
// each keyspace the library uses, as normalize writes them, in 64 entity
// variants (user, device and resource renamed) so state spreads over many
// keys.
func libraryStream(b testing.TB) (*rules.Set, []record) {
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "rules", "library")
	if _, err := os.Stat(dir); err != nil {
		b.Skipf("no rule library at %s", dir)
	}
	set, err := rules.LoadDir(dir, rules.Options{})
	if err != nil {
		b.Fatalf("load library: %v", err)
	}
	var base []event.Event
	for _, r := range set.Rules {
		for i := range r.Spec.Tests {
			evs, err := ruletest.Events(&r.Spec.Tests[i])
			if err != nil {
				b.Fatalf("%s: %v", r.ID, err)
			}
			base = append(base, evs...)
		}
	}
	if len(base) == 0 {
		b.Skip("rule library has no fixture events")
	}
	var out []record
	for v := 0; v < 64; v++ {
		suffix := "v" + strconv.Itoa(v)
		for _, ev := range base {
			if v > 0 {
				if ev.User != "" {
					ev.User = suffix + "." + ev.User
				}
				if ev.Device != "" {
					ev.Device += "-" + suffix
				}
				if ev.Resource != "" {
					ev.Resource += "/" + suffix
				}
			}
			for _, ks := range set.Keyspaces() {
				for _, k := range ev.Keys(ks) {
					out = append(out, record{ks: ks, key: k, ev: ev})
				}
			}
		}
	}
	return set, out
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkLibrary runs the shipped rule library over its own fixture
// events, re-timed 1 ms apart (one record = one Process call), with a
// Flush every 1000 records as the stage does per transaction. Reports
// records/s (wall and per CPU-second), steps evaluated per record, alerts
// per 1000 records, and state bytes per active (rule, key).
func BenchmarkLibrary(b *testing.B) {
	set, stream := libraryStream(b)
	runLibrary(b, set, stream)
}

// benchStore is what runLibrary needs of a Store: the engine's interface,
// and a commit after each Flush (a no-op for the MemStore; the Pebble
// store's Commit, as the stage does at the end of a transaction).
type benchStore interface {
	operators.Store
	commit(offset int64) error
}

type memStore struct{ *operators.MemStore }

func (memStore) commit(int64) error { return nil }

type pebbleStore struct{ *state.Store }

func (p pebbleStore) commit(off int64) error { return p.Commit(off) }

// BenchmarkLibraryTrafficPebble is BenchmarkLibraryTraffic with the
// correlate stage's Store: Pebble on disk, changes staged in a batch and
// committed after every Flush.
func BenchmarkLibraryTrafficPebble(b *testing.B) {
	set, _ := libraryStream(b)
	st, err := state.Open(b.TempDir(), state.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	runLibraryOn(b, set, trafficStream(b, set, 200_000), pebbleStore{st})
}

// BenchmarkLibraryTrafficStage is the correlate stage's own work per
// record over the same traffic: decode the record from its bytes (as
// consumed from events.<keyspace>) into one reused event, hand the engine
// the event with its bytes (ProcessEncoded: a buffered event is a copy of
// the record, not encoded again), Pebble as the Store. Only Kafka's fetch
// and produce are left out.
func BenchmarkLibraryTrafficStage(b *testing.B) {
	set, _ := libraryStream(b)
	stream := trafficStream(b, set, 200_000)
	for i := range stream {
		enc, err := event.Marshal(&stream[i].ev)
		if err != nil {
			b.Fatal(err)
		}
		stream[i].enc = enc
	}
	st, err := state.Open(b.TempDir(), state.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	runLibraryOn(b, set, stream, pebbleStore{st})
}

func runLibrary(b *testing.B, set *rules.Set, stream []record) {
	runLibraryOn(b, set, stream, memStore{operators.NewMemStore()})
}

// flushEvery is how many records the library benchmarks process between
// Flushes (the stage flushes once per poll's batch, up to the runtime's
// MaxBatch of 5000 records per poll). VIGIL_BENCH_FLUSH_EVERY overrides
// the default of 1000, a worker with five busy partitions.
func flushEvery(b *testing.B) int {
	if v := os.Getenv("VIGIL_BENCH_FLUSH_EVERY"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("VIGIL_BENCH_FLUSH_EVERY=%q: want a positive number of records", v)
		}
		return n
	}
	return 1000
}

func runLibraryOn(b *testing.B, set *rules.Set, stream []record, st benchStore) {
	every := flushEvery(b)
	eng, err := operators.NewEngine(set, st, operators.Options{Lateness: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	// Ids as long as the sources' (a Defender id is ~90 bytes, a sign-in
	// ~25): the record's own id, made unique per pass over the stream.
	ids := make([]string, b.N)
	for i := range ids {
		ids[i] = stream[i%len(stream)].ev.ID + "#" + strconv.Itoa(i/len(stream))
	}
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	alerts := 0
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	var ev event.Event // one value decoded into for every record, as the correlate stage does
	for i := 0; i < b.N; i++ {
		rec := &stream[i%len(stream)]
		var as []alert.Alert
		var err error
		if rec.enc != nil { // the stage: decode the record, buffer copies of it
			if err := event.UnmarshalShared(rec.enc, &ev); err != nil { // as the stage does
				b.Fatal(err)
			}
			// The bytes keep the generated id and time; the engine's
			// state takes the unique ones (the buffered copy does not).
			ev.ID = ids[i]
			ev.Time = t0.Add(time.Duration(i) * time.Millisecond)
			as, err = eng.ProcessEncoded(rec.ks, rec.key, &ev, rec.enc)
		} else {
			ev = rec.ev // a fresh copy: Fields decoded per record, as after decoding from Kafka
			ev.ID = ids[i]
			ev.Time = t0.Add(time.Duration(i) * time.Millisecond)
			as, err = eng.Process(rec.ks, rec.key, &ev)
		}
		if err != nil {
			b.Fatal(err)
		}
		alerts += len(as)
		if i%every == every-1 {
			as, err := eng.Advance(ev.Time.Add(-time.Minute))
			if err != nil {
				b.Fatal(err)
			}
			alerts += len(as)
			if err := eng.Flush(); err != nil {
				b.Fatal(err)
			}
			if err := st.commit(int64(i)); err != nil {
				b.Fatal(err)
			}
		}
	}
	cpu := cpuTime() - cpu0
	b.StopTimer()
	_ = eng.Flush()
	s := eng.Stats()
	b.ReportMetric(float64(len(set.Rules)), "rules")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	if cpu > 0 {
		b.ReportMetric(float64(b.N)/cpu.Seconds(), "events/cpu-s")
	}
	b.ReportMetric(float64(s.StepsEvaluated)/float64(s.Events), "steps/event")
	b.ReportMetric(1000*float64(alerts)/float64(b.N), "alerts/1k")
	// Bytes of state values and their buffered events per (rule, key).
	keys, size := 0, 0
	_ = st.Scan(nil, func(k, v []byte) error {
		if k[0] == 's' {
			keys++
		}
		size += len(k) + len(v)
		return nil
	})
	if keys > 0 {
		b.ReportMetric(float64(size)/float64(keys), "state-B/key")
	}
}

// trafficStream is generated traffic (benchmarks/loadgen: Defender
// process and network events, Entra sign-ins, NSG flows over 2000 users
// and 500 devices, 0.1% encoded PowerShell) normalized and keyed as the
// normalize stage writes it: the shape of a production stream, where most
// events are ones no rule wants.
func trafficStream(b testing.TB, set *rules.Set, n int) []record {
	g := loadgen.New(11, 2000, 500)
	t0 := time.Date(2025, 10, 7, 2, 0, 0, 0, time.UTC)
	var out []record
	for i := 0; len(out) < n; i++ {
		r := g.Next(t0.Add(time.Duration(i) * time.Millisecond))
		evs, bad := normalize.Parse(r.Source, r.Value, t0)
		if len(bad) > 0 {
			b.Fatalf("loadgen record: %v", bad[0])
		}
		for _, ev := range evs {
			for _, ks := range set.Keyspaces() {
				for _, k := range ev.Keys(ks) {
					out = append(out, record{ks: ks, key: k, ev: ev})
				}
			}
		}
	}
	return out
}

// BenchmarkLibraryTraffic is BenchmarkLibrary over generated production-
// like traffic instead of the rules' own fixtures.
func BenchmarkLibraryTraffic(b *testing.B) {
	set, _ := libraryStream(b)
	runLibrary(b, set, trafficStream(b, set, 200_000))
}
