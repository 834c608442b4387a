package runtime

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the runtime's Prometheus metrics (listed in the package doc).
// One Metrics serves every stage of a process; build it once per registry.
type Metrics struct {
	in       *prometheus.CounterVec
	out      *prometheus.CounterVec
	dlq      *prometheus.CounterVec
	batch    *prometheus.HistogramVec
	latency  *prometheus.HistogramVec
	lag      *prometheus.GaugeVec
	txns     *prometheus.CounterVec
	restores *prometheus.CounterVec
}

// NewMetrics registers the runtime metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		in: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_records_in_total", Help: "Records consumed by a stage.",
		}, []string{"stage", "topic"}),
		out: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_records_out_total", Help: "Records produced by a stage, changelogs included.",
		}, []string{"stage", "topic"}),
		dlq: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_records_dlq_total", Help: "Input records sent to the dead-letter topic.",
		}, []string{"stage", "topic"}),
		batch: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "vigil_batch_duration_seconds", Help: "Time from poll to commit of one batch.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"stage"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "vigil_record_latency_seconds", Help: "Time from a record's Kafka timestamp to the commit of its outputs.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 18),
		}, []string{"stage"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigil_consumer_lag", Help: "Records between a partition's high watermark and the stage's position.",
		}, []string{"stage", "topic", "partition"}),
		txns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_transactions_total", Help: "Batches ended, by result (commit, abort).",
		}, []string{"stage", "result"}),
		restores: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_state_restores_total", Help: "Partition state opened, by where it came from (local, changelog).",
		}, []string{"stage", "from"}),
	}
	if reg != nil {
		reg.MustRegister(m.in, m.out, m.dlq, m.batch, m.latency, m.lag, m.txns, m.restores)
	}
	return m
}
