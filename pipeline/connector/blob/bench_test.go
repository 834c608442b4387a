package blob

import (
	"strings"
	"testing"
)

// BenchmarkGrowth compares the two ways of finding the records a growing
// flow-log document gained: parsing the bytes after the last produced
// record (what a resumed pass does, after a ranged read of only those
// bytes) and parsing the whole document (a blob read from its start).
// The document holds 5000 records (~3 MB, a busy NSG's hour) and grew by
// one.
func BenchmarkGrowth(b *testing.B) {
	recs := make([]string, 5000)
	for i := range recs {
		recs[i] = flow1
	}
	doc := nsgDoc(append(recs, flow3)...)
	prev := nsgDoc(recs...)
	off := strings.LastIndex(prev, flow1) + len(flow1) // end of the last produced record
	b.Run("tail", func(b *testing.B) {
		tail := []byte(doc[off:])
		b.SetBytes(int64(len(tail)))
		for b.Loop() {
			if r, _, err := parseTail(tail); err != nil || len(r) != 1 {
				b.Fatal(len(r), err)
			}
		}
	})
	b.Run("whole", func(b *testing.B) {
		whole := []byte(doc)
		b.SetBytes(int64(len(whole)))
		for b.Loop() {
			if r, _, err := parseDocument(whole); err != nil || len(r) != 5001 {
				b.Fatal(len(r), err)
			}
		}
	})
}
