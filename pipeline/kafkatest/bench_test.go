package kafkatest

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkProduceConsume measures a produce of 1 KiB records and reading
// them back on whichever broker the binary found, to tell how much slower
// the integration suite runs on Apache Kafka than on kfake.
func BenchmarkProduceConsume(b *testing.B) {
	ctx := context.Background()
	cl := Client(b)
	topic := NewTopic(b, cl, 3, nil)
	value := make([]byte, 1024)
	const batch = 100
	recs := make([]*kgo.Record, batch)
	cons := Client(b, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	roundTrip := func() {
		for i := range recs {
			recs[i] = &kgo.Record{Topic: topic, Value: value}
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			b.Fatal(err)
		}
		for got := 0; got < batch; {
			fs := cons.PollFetches(ctx)
			if err := fs.Err0(); err != nil {
				b.Fatal(err)
			}
			got += fs.NumRecords()
		}
	}
	roundTrip() // connections, metadata and the consumer's first fetch
	b.SetBytes(batch * int64(len(value)))
	for b.Loop() {
		roundTrip()
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "records/s")
}
