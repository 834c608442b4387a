package cputime

import (
	"runtime"
	"testing"
	"time"
)

func TestThreadCountsWorkNotSleep(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c0, ok := Thread()
	if !ok {
		t.Skip("no thread CPU clock on " + runtime.GOOS)
	}
	time.Sleep(50 * time.Millisecond)
	c1, _ := Thread()
	if slept := c1 - c0; slept > 20*time.Millisecond {
		t.Errorf("sleeping 50ms used %v of thread CPU time, want about none", slept)
	}
	x := 0
	for start := time.Now(); time.Since(start) < 30*time.Millisecond; {
		x++
	}
	c2, _ := Thread()
	if busy := c2 - c1; busy <= 0 {
		t.Errorf("30ms of busy loop (%d turns) used %v of thread CPU time, want more than zero", x, busy)
	}
}
