package operators

import (
	"fmt"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/pipeline/event"
	"github.com/vigil-sec/vigil/rules"
)

// benchRules builds n Sentinel-style rules over a mix of kinds: most are
// matches on one action with a regex on the command line, the rest are
// thresholds and sequences, so dispatch, regex prefilters and state all
// count.
func benchRules(b *testing.B, n int) *rules.Set {
	var srcs []rules.Source
	for i := 0; i < n; i++ {
		h := fmt.Sprintf("id: b.r%03d\nname: r%d\ndescription: d\nseverity: low\ntactics: [execution]\ntechniques: [T1059]\nby: user\n", i, i)
		var y string
		switch i % 5 {
		case 0, 1, 2:
			y = h + fmt.Sprintf("kind: match\nwhere: 'Action == \"Act%d\" && regex(Process.CommandLine, \"(?i)-enc\\\\w*\\\\s+[a-z0-9+/=]{8,}\")'\n", i)
		case 3:
			y = h + fmt.Sprintf("kind: threshold\nwindow: 10m\nwhere: 'Action == \"Act%d\" && Outcome == \"failure\"'\nthreshold: {distinct: SrcIP, having: 'distinct >= 5'}\n", i)
		case 4:
			y = h + fmt.Sprintf("kind: sequence\nmaxspan: 30m\nsteps:\n  - {where: 'Action == \"Act%d\"'}\n  - {where: 'Action == \"Act%d\" && icontains(Process.CommandLine, \"whoami\")'}\n", i, i+1)
		}
		srcs = append(srcs, rules.Source{Name: fmt.Sprintf("b%03d.yaml", i), Data: []byte(y)})
	}
	set, err := rules.LoadSources(srcs, nil, rules.Options{})
	if err != nil {
		b.Fatal(err)
	}
	return set
}

// cpuTime is the process's user+system CPU time: the benchmarks report
// events per CPU-second ("per core"), which stays meaningful when other
// work shares the machine, next to the wall-clock events/s.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkEngine reports correlate throughput with 100 generated rules:
// events/s (wall), events per CPU-second, rule steps evaluated per event,
// and state bytes per active key. Every event matches some rule's
// dispatch hint a fraction of the time; the generated thresholds never
// cross (the same few source IPs repeat), so their state is the worst
// case of a busy key that keeps buffering for its whole window.
func BenchmarkEngine(b *testing.B) {
	set := benchRules(b, 100)
	st := NewMemStore()
	eng, err := NewEngine(set, st, Options{Lateness: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	const users, actions = 1000, 400
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	evs := make([]event.Event, 4096)
	for i := range evs {
		evs[i] = event.Event{
			Source: "defender.DeviceProcessEvents", Category: event.CatEndpoint, Type: event.TypeProcess,
			Action: fmt.Sprintf("Act%d", (i*7919)%actions), Outcome: event.OutcomeFailure,
			User: fmt.Sprintf("user%d@x.example", (i*31)%users), SrcIP: fmt.Sprintf("10.0.%d.%d", i%7, i%13),
			Process: event.Process{Name: "powershell.exe", CommandLine: "powershell.exe -NoProfile -File C:\\scripts\\inventory.ps1 -Verbose"},
		}
	}
	ids := make([]string, b.N)
	for i := range ids {
		ids[i] = strconv.Itoa(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		ev := &evs[i%len(evs)]
		ev.ID = ids[i]
		ev.Time = t0.Add(time.Duration(i) * time.Millisecond)
		if _, err := eng.Process(event.KeyUser, ev.User, ev); err != nil {
			b.Fatal(err)
		}
		if i%1000 == 999 {
			if _, err := eng.Advance(ev.Time.Add(-time.Minute)); err != nil {
				b.Fatal(err)
			}
			if err := eng.Flush(); err != nil {
				b.Fatal(err)
			}
		}
	}
	cpu := cpuTime() - cpu0
	b.StopTimer()
	_ = eng.Flush()
	s := eng.Stats()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	if cpu > 0 {
		b.ReportMetric(float64(b.N)/cpu.Seconds(), "events/cpu-s")
	}
	b.ReportMetric(float64(s.StepsEvaluated)/float64(s.Events), "steps/event")
	if st.Len() > 1 {
		b.ReportMetric(float64(st.Size())/float64(st.Len()-1), "state-B/key")
	}
}
