package event

// The benchmark that chose the internal encoding (see the top of codec.go):
//
//	go test -run '^$' -bench . -benchmem -count 5 ./pipeline/event/
//
// Each candidate is used the way a maintainer would: the libraries straight
// on the Event struct with its json tags, no mirror struct to keep in sync.

import (
	"bytes"
	"encoding/json"
	"reflect"
	"runtime"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/vigil-sec/vigil/pipeline/event/internal/cputime"
)

type candidate struct {
	name      string
	marshal   func(*Event) ([]byte, error)
	unmarshal func([]byte, *Event) error
}

func candidates(tb testing.TB) []candidate {
	tb.Helper()
	// RFC 3339 with nanoseconds: cbor's default (Unix seconds) drops them.
	cenc, err := cbor.EncOptions{Time: cbor.TimeRFC3339Nano}.EncMode()
	if err != nil {
		tb.Fatal(err)
	}
	cdec, err := cbor.DecOptions{}.DecMode()
	if err != nil {
		tb.Fatal(err)
	}
	var buf []byte
	return []candidate{
		{"json", func(e *Event) ([]byte, error) { return json.Marshal(e) }, func(b []byte, e *Event) error { return json.Unmarshal(b, e) }},
		{"binary", Marshal, Unmarshal},
		{"binary-append", func(e *Event) ([]byte, error) {
			var err error
			buf, err = AppendMarshal(buf[:0], e)
			return buf, err
		}, Unmarshal},
		{"cbor", func(e *Event) ([]byte, error) { return cenc.Marshal(e) }, func(b []byte, e *Event) error { return cdec.Unmarshal(b, e) }},
		msgpackCandidate("msgpack", false),
		msgpackCandidate("msgpack-array", true),
	}
}

// msgpackCandidate encodes with the json tags; array mode writes structs as
// positional arrays (compact, but a field added in the middle breaks old
// readers). msgpack decodes times in time.Local: the wrapper puts them back
// in UTC, as a real use would have to.
func msgpackCandidate(name string, array bool) candidate {
	var (
		mbuf bytes.Buffer
		menc = msgpack.NewEncoder(&mbuf)
		mrd  = bytes.NewReader(nil)
		mdec = msgpack.NewDecoder(mrd)
	)
	menc.SetCustomStructTag("json")
	menc.UseArrayEncodedStructs(array)
	menc.UseCompactInts(true)
	return candidate{name, func(e *Event) ([]byte, error) {
		mbuf.Reset()
		err := menc.Encode(e)
		return mbuf.Bytes(), err
	}, func(b []byte, e *Event) error {
		mrd.Reset(b)
		mdec.Reset(mrd)
		mdec.SetCustomStructTag("json")
		if err := mdec.Decode(e); err != nil {
			return err
		}
		e.Time, e.Received = utc(e.Time), utc(e.Received)
		return nil
	}}
}

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

var benchEvents = []struct {
	name string
	ev   func() Event
}{
	{"process", processEvent},
	{"flow", flowEvent},
}

// TestCandidatesRoundTrip makes sure the benchmark compares codecs that
// actually keep the event; a candidate that loses data is reported, not
// silently measured.
func TestCandidatesRoundTrip(t *testing.T) {
	received := flowEvent()
	received.Received = time.Date(2025, 3, 14, 9, 30, 0, 123456789, time.UTC)
	for _, c := range candidates(t) {
		for _, be := range append(benchEvents, struct {
			name string
			ev   func() Event
		}{"flow-received", func() Event { return received }}) {
			in := be.ev()
			b, err := c.marshal(&in)
			if err != nil {
				t.Fatalf("%s/%s: marshal: %v", c.name, be.name, err)
			}
			var out Event
			if err := c.unmarshal(b, &out); err != nil {
				t.Fatalf("%s/%s: unmarshal: %v", c.name, be.name, err)
			}
			if !reflect.DeepEqual(out, in) {
				t.Errorf("%s/%s: round trip changed the event:\n%s", c.name, be.name, diffEvents(out, in))
			}
		}
	}
}

// cpuClock measures the CPU time of the benchmark's thread: on a machine
// whose cores other jobs keep busy, wall-clock ns/op swings threefold from
// run to run, cpu-ns/op does not (see internal/cputime).
type cpuClock struct {
	start time.Duration
	ok    bool
}

func startCPU() cpuClock {
	runtime.LockOSThread()
	c, ok := cputime.Thread()
	return cpuClock{c, ok}
}

func (c cpuClock) report(b *testing.B) {
	end, ok := cputime.Thread()
	runtime.UnlockOSThread()
	if c.ok && ok {
		b.ReportMetric(float64(end-c.start)/float64(b.N), "cpu-ns/op")
	}
}

func BenchmarkMarshal(b *testing.B) {
	for _, c := range candidates(b) {
		for _, be := range benchEvents {
			ev := be.ev()
			b.Run(c.name+"/"+be.name, func(b *testing.B) {
				enc, err := c.marshal(&ev)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				cpu := startCPU()
				for b.Loop() {
					if _, err := c.marshal(&ev); err != nil {
						b.Fatal(err)
					}
				}
				cpu.report(b)
				b.ReportMetric(float64(len(enc)), "B/event") // after the loop: b.Loop resets metrics
			})
		}
	}
}

func BenchmarkUnmarshal(b *testing.B) {
	for _, c := range candidates(b) {
		if c.name == "binary-append" {
			continue // same decoder as binary
		}
		for _, be := range benchEvents {
			ev := be.ev()
			b.Run(c.name+"/"+be.name, func(b *testing.B) {
				enc, err := c.marshal(&ev)
				if err != nil {
					b.Fatal(err)
				}
				enc = append([]byte(nil), enc...) // msgpack returns its reused buffer
				b.ReportAllocs()
				cpu := startCPU()
				for b.Loop() {
					var out Event
					if err := c.unmarshal(enc, &out); err != nil {
						b.Fatal(err)
					}
				}
				cpu.report(b)
				b.ReportMetric(float64(len(enc)), "B/event")
			})
		}
	}
}
