package normalize

import (
	"encoding/json"
	"testing"
	"time"
)

// mix is a realistic message mix from the committed fixtures: Defender
// streaming envelopes (the bulk of a real stream), JSON lines, a mixed
// diagnostic envelope, flow records and syslog/CEF.
var mixFiles = []string{
	"testdata/defender_envelope.json", "testdata/defender_envelope.json", "testdata/defender_envelope.json",
	"testdata/defender_lines.jsonl", "testdata/defender_pretty.json",
	"testdata/mixed_envelope.json", "testdata/nsg_v1_bom.json", "testdata/syslog_cef.log",
}

func BenchmarkParseMix(b *testing.B) {
	var msgs [][]byte
	for _, f := range mixFiles {
		msgs = append(msgs, readFile(b, f))
	}
	perRound := 0
	var bytes int64
	for _, m := range msgs {
		evs, _ := Parse("", m, time.Now())
		perRound += len(evs)
		bytes += int64(len(m))
	}
	b.SetBytes(bytes)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		for _, m := range msgs {
			Parse("", m, start)
		}
	}
	el := time.Since(start).Seconds()
	// The loop runs on one goroutine, so events per second is per core.
	b.ReportMetric(float64(perRound*b.N)/el, "events/s/core")
}

// BenchmarkDecoder compares decoders on the typed Defender row (the
// properties of one DeviceProcessEvents record): the decoder choice in
// fastdec.go rests on it.
func BenchmarkDecoder(b *testing.B) {
	var env struct {
		Records []struct {
			Properties json.RawMessage `json:"properties"`
		} `json:"records"`
	}
	if err := json.Unmarshal(readFile(b, "testdata/defender_envelope.json"), &env); err != nil {
		b.Fatal(err)
	}
	props := []byte(env.Records[0].Properties)
	for _, d := range []struct {
		name string
		fn   func([]byte, any) error
	}{{"encoding-json", json.Unmarshal}, {"goccy", goccyUnmarshal}, {"plan", unmarshal}} {
		b.Run(d.name, func(b *testing.B) {
			b.SetBytes(int64(len(props)))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				var r ahRow
				if err := d.fn(props, &r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
