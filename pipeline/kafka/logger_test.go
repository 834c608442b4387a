package kafka

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-sec/vigil/pipeline/config"
	"github.com/vigil-sec/vigil/pipeline/kafkatest"
)

func lines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if l == "" {
			continue
		}
		m := map[string]any{}
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not JSON: %q", l)
		}
		out = append(out, m)
	}
	return out
}

func TestLoggerLevels(t *testing.T) {
	tests := []struct {
		zl      zerolog.Level
		want    kgo.LogLevel
		written []kgo.LogLevel // which of error, warn, info, debug get through
	}{
		{zerolog.TraceLevel, kgo.LogLevelDebug, []kgo.LogLevel{kgo.LogLevelError, kgo.LogLevelWarn, kgo.LogLevelInfo, kgo.LogLevelDebug}},
		{zerolog.DebugLevel, kgo.LogLevelDebug, []kgo.LogLevel{kgo.LogLevelError, kgo.LogLevelWarn, kgo.LogLevelInfo, kgo.LogLevelDebug}},
		{zerolog.InfoLevel, kgo.LogLevelInfo, []kgo.LogLevel{kgo.LogLevelError, kgo.LogLevelWarn, kgo.LogLevelInfo}},
		{zerolog.WarnLevel, kgo.LogLevelWarn, []kgo.LogLevel{kgo.LogLevelError, kgo.LogLevelWarn}},
		{zerolog.ErrorLevel, kgo.LogLevelError, []kgo.LogLevel{kgo.LogLevelError}},
		{zerolog.Disabled, kgo.LogLevelNone, nil},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		l := Logger(zerolog.New(&buf).Level(tt.zl))
		if got := l.Level(); got != tt.want {
			t.Errorf("zerolog %s: Level() = %v, want %v", tt.zl, got, tt.want)
		}
		for _, lv := range []kgo.LogLevel{kgo.LogLevelError, kgo.LogLevelWarn, kgo.LogLevelInfo, kgo.LogLevelDebug} {
			l.Log(lv, "msg-"+lv.String())
		}
		got := lines(t, &buf)
		if len(got) != len(tt.written) {
			t.Errorf("zerolog %s: %d lines written, want %d: %v", tt.zl, len(got), len(tt.written), got)
			continue
		}
		for i, lv := range tt.written {
			if got[i]["message"] != "msg-"+lv.String() {
				t.Errorf("zerolog %s: line %d = %v", tt.zl, i, got[i])
			}
		}
	}
}

func TestLoggerFields(t *testing.T) {
	var buf bytes.Buffer
	l := Logger(zerolog.New(&buf))
	l.Log(kgo.LogLevelWarn, "retrying", "broker", 3, "err", errors.New("conn reset"), "password", config.Secret("hunter2"), "dangling")
	got := lines(t, &buf)
	if len(got) != 1 {
		t.Fatalf("lines = %v", got)
	}
	m := got[0]
	want := map[string]any{"level": "warn", "message": "retrying", "component": "kafka", "broker": 3.0, "err": "conn reset", "password": "[redacted]", "!BADKEY": "dangling"}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v (line %v)", k, m[k], v, m)
		}
	}
}

// TestLoggerWithClient: a real client logs through the adapter.
func TestLoggerWithClient(t *testing.T) {
	var buf syncBuffer
	cl := kafkatest.Client(t, kgo.WithLogger(Logger(zerolog.New(&buf).Level(zerolog.DebugLevel))))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if !strings.Contains(out, `"component":"kafka"`) || !strings.Contains(out, `"level":"debug"`) {
		t.Fatalf("client did not log through the adapter: %q", out)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	topic := kafkatest.NewTopic(t, kafkatest.Client(t), 1, nil)
	// Two clients in one process on one registry, as stages are.
	a := kafkatest.Client(t, Metrics(reg, "vigil", "normalize"), kgo.DefaultProduceTopic(topic))
	b := kafkatest.Client(t, Metrics(reg, "vigil", "correlate"), kgo.DefaultProduceTopic(topic))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 3 {
		if err := a.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	got := produced(t, reg, topic)
	if got["normalize"] != 3 || got["correlate"] != 0 {
		t.Fatalf("vigil_kafka_produce_records_total by client = %v, want normalize=3", got)
	}
	// Closing a client unregisters its collectors.
	a.Close()
	if got := produced(t, reg, topic); got["normalize"] != 0 {
		t.Errorf("closed client still reported: %v", got)
	}
}

func produced(t *testing.T, reg *prometheus.Registry, topic string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "vigil_kafka_produce_records_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label(m, "topic") == topic {
				out[label(m, "client")] += m.GetCounter().GetValue()
			}
		}
	}
	return out
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// syncBuffer is a bytes.Buffer safe for the client's logging goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
