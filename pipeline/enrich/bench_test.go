package enrich

import (
	"fmt"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/pipeline/event"
)

// BenchmarkObserveEnrich measures the per-event cost of what normalize
// does for every event, Observe then Enrich, on a warm table: a mix of
// sign-ins, process events, device connections and flows over 1,000
// devices and users, every association already known (the steady state,
// where an event refreshes nothing and nothing is written).
func BenchmarkObserveEnrich(b *testing.B) {
	const n = 1000
	tb := openTable(b, Options{})
	var evs []event.Event
	for i := range n {
		user := fmt.Sprintf("user%04d@contoso.example", i)
		oid := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		dev := fmt.Sprintf("ws-%04d.contoso.example", i)
		ip := fmt.Sprintf("10.%d.%d.%d", i/65536, i/256%256, i%256+1)
		ts := at(time.Duration(i) * time.Millisecond)
		evs = append(evs,
			*signIn(ts, user, oid, fmt.Sprintf("198.51.%d.%d", i/256, i%256), "", event.OutcomeSuccess),
			*process(ts, dev, user, oid),
			*netConn(ts, "ConnectionSuccess", dev, user, ip, extIP),
			*flow(ts, ip, extIP))
	}
	run := func(ev *event.Event) {
		if _, err := tb.Observe(ev); err != nil {
			b.Fatal(err)
		}
		if err := tb.Enrich(ev); err != nil {
			b.Fatal(err)
		}
	}
	for i := range evs { // warm: learn everything, fill the cache
		ev := evs[i]
		run(&ev)
	}
	names := []string{"signin", "process", "device-network", "flow"}
	b.Run("mix", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			ev := evs[i%len(evs)] // a copy: Related starts empty every time
			run(&ev)
		}
	})
	for k, name := range names {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				ev := evs[(i%n)*4+k]
				run(&ev)
			}
		})
	}
}

// BenchmarkObserveNew measures learning: every event asserts associations
// the table has not seen, so each writes to Pebble and returns changes.
func BenchmarkObserveNew(b *testing.B) {
	tb := openTable(b, Options{})
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		ev := netConn(at(time.Duration(i)*time.Millisecond), "ConnectionSuccess",
			fmt.Sprintf("ws-%d", i), fmt.Sprintf("user%d@contoso.example", i), fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), extIP)
		if _, err := tb.Observe(ev); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTxnObserveNew is BenchmarkObserveNew through a Txn, as the
// normalize stage observes, committed every 500 events (a batch): the
// journal costs one Pebble read per new association and its map entry.
func BenchmarkTxnObserveNew(b *testing.B) {
	tb := openTable(b, Options{})
	x := tb.Txn()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		ev := netConn(at(time.Duration(i)*time.Millisecond), "ConnectionSuccess",
			fmt.Sprintf("ws-%d", i), fmt.Sprintf("user%d@contoso.example", i), fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), extIP)
		if _, err := x.Observe(ev); err != nil {
			b.Fatal(err)
		}
		if i%500 == 499 {
			if err := x.Commit(); err != nil {
				b.Fatal(err)
			}
		}
	}
}
