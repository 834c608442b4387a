package detect

import (
	"bytes"
	"context"
	"io"
	"maps"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/vigil-sec/vigil/benchmarks/loadgen"
	"github.com/vigil-sec/vigil/pipeline/config"
	"github.com/vigil-sec/vigil/pipeline/enrich"
)

// BenchmarkDetect measures detect end to end (read, split, normalize,
// sort, correlate with the whole library, group, write) over the load
// generator's mix: 20,000 raw messages over 5,000 users and 2,000 devices
// at 50 ms apart, one JSON-lines input per source. It reports input
// events per second of wall time and CPU microseconds per event.
func BenchmarkDetect(b *testing.B) { benchDetect(b, false) }

// BenchmarkDetectEnrich is BenchmarkDetect with the entity table, as
// `vigil detect` runs by default: a fresh table per run (opened and
// removed inside the timed loop), every event observed then enriched.
func BenchmarkDetectEnrich(b *testing.B) { benchDetect(b, true) }

func benchDetect(b *testing.B, withEnrich bool) {
	set := library(b)
	g := loadgen.New(1, 5000, 2000)
	base := time.Date(2025, 10, 7, 0, 0, 0, 0, time.UTC)
	bySource := map[string][]byte{}
	for i := range 20000 {
		r := g.Next(base.Add(time.Duration(i) * 50 * time.Millisecond))
		bySource[r.Source] = append(append(bySource[r.Source], r.Value...), '\n')
	}
	sources := slices.Sorted(maps.Keys(bySource))
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	var events, alerts int
	for b.Loop() {
		var in []Input
		for _, s := range sources {
			in = append(in, Reader(s, s, bytes.NewReader(bySource[s])))
		}
		opts := Options{Errors: io.Discard, Received: base}
		var ents *Entities
		if withEnrich {
			var err error
			if ents, err = OpenEntities(b.TempDir(), enrich.OptionsFrom(config.Defaults().Enrich, zerolog.Nop())); err != nil {
				b.Fatal(err)
			}
			opts.Enrich = ents.Enrich
		}
		st, err := Run(context.Background(), set, in, io.Discard, opts)
		if err != nil {
			b.Fatal(err)
		}
		if ents != nil {
			if err := ents.Close(); err != nil {
				b.Fatal(err)
			}
		}
		if st.Errors > 0 {
			b.Fatalf("%d errors", st.Errors)
		}
		events += st.Events
		alerts = st.Alerts
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
	// CPU time of the whole process (all threads, GC included) per
	// event: less sensitive than wall time to other load on the machine.
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(events), "cpu-µs/event")
	b.ReportMetric(float64(alerts), "alerts/run")
}

// cpuTime returns the user+system CPU time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
