// Package streamtest checks pipeline/detect against the real streaming
// pipeline on a Kafka broker. It is a package of its own so that detect's
// unit tests do not depend on building the whole application.
package streamtest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-sec/vigil/pipeline/alert"
	"github.com/vigil-sec/vigil/pipeline/app"
	"github.com/vigil-sec/vigil/pipeline/config"
	"github.com/vigil-sec/vigil/pipeline/connector/file"
	"github.com/vigil-sec/vigil/pipeline/detect"
	"github.com/vigil-sec/vigil/pipeline/kafkatest"
	"github.com/vigil-sec/vigil/rules"
)

func TestMain(m *testing.M) { kafkatest.Main(m) }

// recv is the receive time of every record, in detect and on the broker.
var recv = time.Date(2025, 10, 8, 0, 0, 0, 0, time.UTC)

func dir(t *testing.T) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("runtime.Caller failed")
	}
	return filepath.Dir(file)
}

func fixture(t *testing.T, name string) string { return filepath.Join(dir(t), "..", "testdata", name) }

func libDir(t *testing.T) string { return filepath.Join(dir(t), "..", "..", "..", "rules", "library") }

// TestSameAlertsAsStreaming runs the real streaming pipeline (normalize,
// correlate and incident stages on a Kafka broker, 3 partitions per
// topic, exactly-once) over the fixtures, fed the way `vigil replay`
// feeds files (the CSV export, which replay would cut into lines, as one
// record, as HTTP ingest would send it), and requires the alerts topic
// to hold exactly detect's alert ids, minus the absence alert that detect
// fires at the end of input and streaming fires only once later traffic
// moves the watermark.
func TestSameAlertsAsStreaming(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the streaming pipeline on a broker")
	}
	const lateness = 2 * time.Hour // parallel raw partitions may reorder the story; keep it within lateness
	set, err := rules.LoadDir(libDir(t), rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	inputs := []detect.Input{
		detect.File(fixture(t, "signins.jsonl"), ""),
		detect.File(fixture(t, "audit.json"), ""),
		detect.File(fixture(t, "defender.jsonl"), "defender"),
		detect.File(fixture(t, "activity_export.csv"), ""),
	}
	var out, errs bytes.Buffer
	st, err := detect.Run(context.Background(), set, inputs, &out, detect.Options{Lateness: lateness, Received: recv, Errors: &errs})
	if err != nil || errs.Len() > 0 {
		t.Fatalf("detect: %v %s", err, errs.Bytes())
	}
	want := map[string]string{}
	n := 0
	dec := json.NewDecoder(&out)
	for dec.More() {
		var line struct {
			Type string `json:"type"`
			alert.Alert
		}
		if err := dec.Decode(&line); err != nil {
			t.Fatal(err)
		}
		if line.Type != "alert" {
			continue
		}
		n++
		if set.Rule(line.RuleID).Kind != rules.KindAbsence {
			want[line.ID] = line.RuleID
		}
	}
	if len(want) != n-st.TailAlerts || len(want) < 6 {
		t.Fatalf("%d alerts expected from streaming of %d (%d at the tail)", len(want), n, st.TailAlerts)
	}

	cfg := config.Defaults()
	cfg.Kafka.Brokers = kafkatest.Brokers(t)
	cfg.Topics.Prefix = kafkatest.TopicPrefix(t)
	cfg.Topics.Partitions = 3
	cfg.Kafka.TransactionalIDPrefix = cfg.Topics.Prefix + "txn"
	cfg.DataDir = t.TempDir()
	cfg.Rules.Dirs = []string{libDir(t)}
	cfg.Rules.Lateness = config.Duration(lateness)
	cfg.HTTP.Listen = "127.0.0.1:0"
	a, err := app.New(cfg, zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("app stopped with %v", err)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for !a.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("app not ready within 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}

	cl := kafkatest.Client(t)
	for _, r := range []struct {
		source string
		paths  []string
	}{
		{"entra", []string{fixture(t, "signins.jsonl"), fixture(t, "audit.json")}},
		{"defender", []string{fixture(t, "defender.jsonl")}},
	} {
		if _, err := file.Replay(ctx, cl, file.ReplayOptions{Source: r.source, Prefix: cfg.Topics.Prefix, Paths: r.paths, Now: func() time.Time { return recv }}); err != nil {
			t.Fatalf("replay %s: %v", r.source, err)
		}
	}
	csv, err := os.ReadFile(fixture(t, "activity_export.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: cfg.Topics.Raw("azure"), Value: csv, Timestamp: recv}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	consumer := kafkatest.Client(t, kgo.ConsumeTopics(cfg.Topics.Alerts()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	got := map[string]string{}
	wait, stop := context.WithTimeout(ctx, 45*time.Second)
	defer stop()
	for len(got) < len(want) && wait.Err() == nil {
		fs := consumer.PollFetches(wait)
		fs.EachRecord(func(r *kgo.Record) {
			var al alert.Alert
			if err := json.Unmarshal(r.Value, &al); err != nil {
				t.Errorf("alert record: %v", err)
				return
			}
			got[al.ID] = al.RuleID
		})
	}
	// Give a wrong extra alert a moment to show up.
	extra, stop2 := context.WithTimeout(ctx, time.Second)
	defer stop2()
	consumer.PollFetches(extra).EachRecord(func(r *kgo.Record) {
		var al alert.Alert
		if json.Unmarshal(r.Value, &al) == nil {
			got[al.ID] = al.RuleID
		}
	})
	var missing, unexpected []string
	for id, rule := range want {
		if _, ok := got[id]; !ok {
			missing = append(missing, rule)
		}
	}
	for id, rule := range got {
		if _, ok := want[id]; !ok {
			unexpected = append(unexpected, rule)
		}
	}
	slices.Sort(missing)
	slices.Sort(unexpected)
	if len(missing)+len(unexpected) > 0 {
		t.Fatalf("streaming lacks %v and has %v beyond detect's alerts", missing, unexpected)
	}
}
