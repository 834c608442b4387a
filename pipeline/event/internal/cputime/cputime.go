// Package cputime reads the CPU time consumed by the calling OS thread.
//
// The codec benchmarks run on shared machines where other builds keep every
// core busy; wall time per operation then measures the wait for a core more
// than the work. CPU time of the benchmark's (locked) thread does not count
// that wait, so the benchmarks report it beside ns/op. It does not count
// work done on other threads either (the GC's background workers), which is
// why allocs/op stays in the table too.
package cputime

import "time"

// Thread returns the CPU time used so far by the calling OS thread, and
// false where the platform offers no such clock. Lock the goroutine to its
// thread (runtime.LockOSThread) between two readings.
func Thread() (time.Duration, bool) { return thread() }
