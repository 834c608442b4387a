package connector

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-sec/vigil/pipeline/connector/internal/conntest"
	"github.com/vigil-sec/vigil/pipeline/kafkatest"
)

func TestMain(m *testing.M) { kafkatest.Main(m) }

func value(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestValidateSource(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"defender", true},
		{"defender.DeviceProcessEvents", true},
		{"entra_signin-2", true},
		{"9lives", true},
		{strings.Repeat("a", MaxSourceLen), true},
		{"", false},
		{strings.Repeat("a", MaxSourceLen+1), false},
		{".hidden", false},
		{"_internal", false},
		{"-x", false},
		{"a..b", false},
		{"a/b", false},
		{"a b", false},
		{"é", false},
		{"a%2e", false},
	}
	for _, tt := range tests {
		err := ValidateSource(tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateSource(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidSource) {
			t.Errorf("ValidateSource(%q) error %v does not wrap ErrInvalidSource", tt.name, err)
		}
	}
}

func TestStampRecord(t *testing.T) {
	at := time.Date(2024, 5, 1, 12, 0, 0, 123456789, time.FixedZone("x", 3600))
	r := Stamp{Prefix: "p.", Connector: "http"}.Record("entra", []byte("k"), []byte(`{"a":1}`), at)
	if r.Topic != "p.raw.entra" {
		t.Errorf("topic = %q", r.Topic)
	}
	want := map[string]string{HeaderSource: "entra", HeaderConnector: "http", HeaderReceived: "2024-05-01T11:00:00.123456789Z"}
	if len(r.Headers) != len(want) {
		t.Fatalf("headers = %v", r.Headers)
	}
	for _, h := range r.Headers {
		if want[h.Key] != string(h.Value) {
			t.Errorf("header %s = %q, want %q", h.Key, h.Value, want[h.Key])
		}
	}
	if string(r.Key) != "k" || string(r.Value) != `{"a":1}` {
		t.Errorf("key/value = %q/%q", r.Key, r.Value)
	}
	if RawTopic("", "x") != "raw.x" {
		t.Errorf("empty prefix must stay empty")
	}
}

func TestMetricsSharedRegistryAndCounts(t *testing.T) {
	reg := prometheus.NewRegistry()
	m1 := NewMetrics(reg)
	m2 := NewMetrics(reg) // a second connector on the same registry
	prefix := kafkatest.TopicPrefix(t)
	cl := kafkatest.Client(t)
	conntest.Topic(t, prefix+"raw.a", 1)
	conntest.Topic(t, prefix+"raw.b", 1)
	st := Stamp{Prefix: prefix, Connector: "c"}
	now := time.Now()
	recs := []*kgo.Record{
		st.Record("a", nil, []byte("12345"), now),
		st.Record("a", nil, []byte("1"), now),
		st.Record("b", nil, []byte("xy"), now),
	}
	if err := Produce(context.Background(), cl, m1, "c", recs...); err != nil {
		t.Fatal(err)
	}
	if err := Produce(context.Background(), cl, m2, "c", st.Record("b", nil, []byte("xy"), now)); err != nil {
		t.Fatal(err)
	}
	if got := value(t, m1.records.WithLabelValues("c", "a")); got != 2 {
		t.Errorf("records{a} = %v, want 2", got)
	}
	if got := value(t, m1.bytes.WithLabelValues("c", "a")); got != 6 {
		t.Errorf("bytes{a} = %v, want 6", got)
	}
	if got := value(t, m1.records.WithLabelValues("c", "b")); got != 2 {
		t.Errorf("records{b} = %v, want 2 (both Metrics share one collector)", got)
	}
	// A closed client fails every produce: the error names the topic and
	// counts under reason "produce".
	closed, err := kgo.NewClient(kgo.SeedBrokers(kafkatest.Brokers(t)...))
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	err = Produce(context.Background(), closed, m1, "c", st.Record("a", nil, []byte("z"), now))
	if !errors.Is(err, kgo.ErrClientClosed) || !strings.Contains(err.Error(), prefix+"raw.a") {
		t.Errorf("Produce error = %v", err)
	}
	if got := value(t, m2.errors.WithLabelValues("c", ReasonProduce)); got != 1 {
		t.Errorf("errors{produce} = %v, want 1", got)
	}
	var nilM *Metrics
	nilM.Error("c", "x") // a nil Metrics counts nothing and does not panic
	nilM.Produced("c", recs)
}
