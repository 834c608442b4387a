package connector

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Error reasons used by the connectors of this module (label values of
// vigil_connector_errors_total).
const (
	ReasonAuth      = "auth"       // missing or wrong credentials
	ReasonTooLarge  = "too_large"  // input over the size limit
	ReasonBadJSON   = "bad_json"   // input is not the JSON it should be
	ReasonBadSource = "bad_source" // source name refused by ValidateSource
	ReasonBadInput  = "bad_input"  // other malformed input (encoding, method)
	ReasonProduce   = "produce"    // ProduceSync failed
	ReasonRead      = "read"       // reading the source failed
	ReasonFrame     = "frame"      // a syslog frame could not be delimited
	ReasonCommit    = "commit"     // committing a source offset failed
)

// Metrics counts what connectors produce and refuse. A nil *Metrics is
// valid and counts nothing, so tests and tools can pass nil.
type Metrics struct {
	records *prometheus.CounterVec
	bytes   *prometheus.CounterVec
	errors  *prometheus.CounterVec
}

// NewMetrics registers the connector metrics (listed in the package doc)
// on reg, or reuses them when reg already has them, so that several
// connectors of one process can each call NewMetrics on the same
// registry. A nil reg gives metrics that are counted but not exported.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_connector_records_total", Help: "Records connectors produced to raw topics.",
		}, []string{"connector", "source"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_connector_bytes_total", Help: "Value bytes of the records connectors produced to raw topics.",
		}, []string{"connector", "source"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_connector_errors_total", Help: "Inputs connectors refused or failed to produce, by reason.",
		}, []string{"connector", "reason"}),
	}
	if reg != nil {
		m.records = register(reg, m.records)
		m.bytes = register(reg, m.bytes)
		m.errors = register(reg, m.errors)
	}
	return m
}

func register(reg prometheus.Registerer, c *prometheus.CounterVec) *prometheus.CounterVec {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
			return existing
		}
	}
	panic(err) // a different metric under our name: a programming error
}

// Produced counts records that were acknowledged by the broker. The source
// label comes from each record's vigil.source header.
func (m *Metrics) Produced(connector string, rs []*kgo.Record) {
	if m == nil {
		return
	}
	// Records of one call nearly always share a source: count per run of
	// equal sources instead of per record.
	var src string
	var n, b int
	flush := func() {
		if n > 0 {
			m.records.WithLabelValues(connector, src).Add(float64(n))
			m.bytes.WithLabelValues(connector, src).Add(float64(b))
		}
	}
	for _, r := range rs {
		s := SourceOf(r)
		if s != src {
			flush()
			src, n, b = s, 0, 0
		}
		n++
		b += len(r.Value)
	}
	flush()
}

// Error counts one failed or refused input.
func (m *Metrics) Error(connector, reason string) {
	if m == nil {
		return
	}
	m.errors.WithLabelValues(connector, reason).Inc()
}

// SourceOf returns a raw record's vigil.source header, or "".
func SourceOf(r *kgo.Record) string {
	for _, h := range r.Headers {
		if h.Key == HeaderSource {
			return string(h.Value)
		}
	}
	return ""
}
