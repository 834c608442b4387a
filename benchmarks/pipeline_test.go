// Package benchmarks measures Vigil as a whole: the pipeline end to end
// through a Kafka broker, fed by the load generator. Per-component
// benchmarks live beside their code (normalize, operators, event codec).
//
//	make bench BENCH=Pipeline BENCH_PKGS=./benchmarks/
package benchmarks

import (
	"context"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-sec/vigil/benchmarks/loadgen"
	"github.com/vigil-sec/vigil/pipeline/app"
	"github.com/vigil-sec/vigil/pipeline/config"
	"github.com/vigil-sec/vigil/pipeline/kafkatest"
)

func TestMain(m *testing.M) { kafkatest.Main(m) }

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..")
}

// counter sums a counter family over the series whose "stage" label is stage.
func counter(mfs []*dto.MetricFamily, name, stage string) float64 {
	return topicCounter(mfs, name, stage, "")
}

// topicCounter sums a stage's counter over the topics whose name contains
// topic ("" for all), in one Gather's result: a Gather reads /proc for
// the process collector, which polled three times per 5 ms took 5% of the
// machine from the pipeline it measures.
func topicCounter(mfs []*dto.MetricFamily, name, stage, topic string) float64 {
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var st, tp string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "stage":
					st = l.GetValue()
				case "topic":
					tp = l.GetValue()
				}
			}
			if st == stage && strings.Contains(tp, topic) {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// BenchmarkPipeline produces b.N raw messages of the generator's mix and
// measures until the correlate stage has consumed every event normalize
// wrote: raw → normalize → events.* → correlate → alerts → incident, with
// transactions, changelogs and Pebble state. Reports raw messages/s.
func BenchmarkPipeline(b *testing.B) {
	cfg := config.Defaults()
	cfg.Kafka.Brokers = kafkatest.Brokers(b)
	cfg.Topics.Prefix = kafkatest.TopicPrefix(b)
	cfg.Topics.Partitions = 4
	cfg.Kafka.TransactionalIDPrefix = cfg.Topics.Prefix + "txn"
	cfg.DataDir = b.TempDir()
	cfg.Rules.Dirs = []string{filepath.Join(repoRoot(), "rules", "library")}
	cfg.Rules.Lateness = config.Duration(time.Hour)
	a, err := app.New(cfg, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for !a.Ready() {
		time.Sleep(10 * time.Millisecond)
	}
	cl, err := kgo.NewClient(append(a.ClientOpts(), kgo.ProducerLinger(5*time.Millisecond))...)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	gen := loadgen.New(1, 5000, 2000)
	t0 := time.Now().Add(-time.Hour)
	recs := make([]*kgo.Record, b.N)
	for i := range recs {
		r := gen.Next(t0.Add(time.Duration(i) * time.Millisecond))
		recs[i] = &kgo.Record{Topic: cfg.Topics.Raw(r.Source), Value: r.Value}
	}
	b.ResetTimer()
	start := time.Now()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		b.Fatal(err)
	}
	var corr float64
	for {
		mfs, _ := a.Registry.Gather()
		in := counter(mfs, "vigil_records_in_total", "normalize")
		// What normalize wrote for correlation: events.*, not the
		// entities topic (enrichment) or the DLQ.
		written := topicCounter(mfs, "vigil_records_out_total", "normalize", "events.")
		corr = counter(mfs, "vigil_records_in_total", "correlate")
		if in >= float64(b.N) && corr > 0 && corr >= written {
			break
		}
		if time.Since(start) > 10*time.Minute {
			b.Fatalf("pipeline did not drain: normalize in %v, correlate in %v", in, corr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "msgs/s")
	b.ReportMetric(corr/el.Seconds(), "keyed-events/s")
}
