package kafka

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"
)

// Metrics returns the option that records franz-go client metrics (kprom:
// connects, bytes and errors per broker, produced and fetched bytes and
// records and batches per broker and topic, buffered records) on reg,
// named <ns>_kafka_..., e.g. vigil_kafka_produce_records_total and
// vigil_kafka_fetch_bytes_total{client,node_id,topic} with ns "vigil".
//
// A process runs several clients (one per stage, an admin client), and
// kprom registers its collectors when a client is created, so each client
// gets a `client` label: give every client in the process a distinct name
// (e.g. the stage name), or registration panics with a duplicate
// collector. The collectors are unregistered when the client closes
// (asynchronously: do not reuse a name right after Close).
func Metrics(reg prometheus.Registerer, ns, client string) kgo.Opt {
	m := kprom.NewMetrics(ns,
		kprom.Registerer(reg),
		kprom.Subsystem("kafka"),
		kprom.WithStaticLabel(prometheus.Labels{"client": client}),
		kprom.FetchAndProduceDetail(kprom.ByNode, kprom.ByTopic, kprom.Batches, kprom.Records, kprom.UncompressedBytes),
	)
	return kgo.WithHooks(m)
}
