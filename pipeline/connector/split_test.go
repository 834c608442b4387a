package connector

import (
	"strings"
	"testing"
)

const benchRec = `{"time":"2024-03-01T10:00:00.1234567Z","category":"AdvancedHunting-DeviceProcessEvents","properties":{"DeviceName":"ws-017.contoso.test","FileName":"powershell.exe","ProcessCommandLine":"powershell.exe -nop -w hidden -enc SQBFAFgA","AccountUpn":"ann@contoso.test","SHA256":"0000000000000000000000000000000000000000000000000000000000000000"}}`

// BenchmarkSplitJSON measures cutting an ingest body: a 1000-record JSON
// array and the same records as JSON lines.
func BenchmarkSplitJSON(b *testing.B) {
	for _, c := range []struct{ name, body string }{
		{"array", "[" + strings.Repeat(benchRec+",", 999) + benchRec + "]"},
		{"lines", strings.Repeat(benchRec+"\n", 1000)},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.body)))
			b.ReportAllocs()
			for b.Loop() {
				recs, err := SplitJSON([]byte(c.body))
				if err != nil || len(recs) != 1000 {
					b.Fatal(err, len(recs))
				}
			}
			b.ReportMetric(float64(b.N)*1000/b.Elapsed().Seconds(), "records/s")
		})
	}
}
