package correlate

import (
	"sync"
	"time"
)

// clock shares watermarks between the partitions of one correlate
// process, so that a partition whose input went quiet still fires its
// timers: an idle partition advances to the lowest watermark of the
// partitions that are still receiving events (idle ones excluded), the
// rule Flink and Kafka Streams apply. Without it, an absence rule on a key
// whose partition gets no more traffic would never time out.
type clock struct {
	mu        sync.Mutex
	idleAfter time.Duration
	parts     map[*processor]mark
}

type mark struct {
	wm     time.Time // the partition's own watermark
	active time.Time // wall time of its last event
}

func newClock(idleAfter time.Duration) *clock {
	return &clock{idleAfter: idleAfter, parts: map[*processor]mark{}}
}

// report records p's watermark; busy says it processed events just now.
func (c *clock) report(p *processor, wm time.Time, busy bool, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.parts[p]
	m.wm = wm
	if busy {
		m.active = now
	}
	c.parts[p] = m
}

// forget drops a closed partition.
func (c *clock) forget(p *processor) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.parts, p)
}

// stage returns the minimum watermark over partitions active within
// idleAfter of now, and false when none is active.
func (c *clock) stage(now time.Time) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var low time.Time
	found := false
	for _, m := range c.parts {
		if m.wm.IsZero() || now.Sub(m.active) > c.idleAfter {
			continue
		}
		if !found || m.wm.Before(low) {
			low, found = m.wm, true
		}
	}
	return low, found
}
