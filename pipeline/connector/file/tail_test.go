package file

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/vigil-sec/vigil/pipeline/connector"
	"github.com/vigil-sec/vigil/pipeline/connector/internal/conntest"
	"github.com/vigil-sec/vigil/pipeline/kafkatest"
)

var nopLog = zerolog.Nop()

// waitFor polls topic until it holds want records (or fails after 10 s).
func waitFor(t *testing.T, topic string, want []string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var got []string
	for time.Now().Before(deadline) {
		got = conntest.Values(conntest.Consume(t, topic, len(want)+1, 300*time.Millisecond))
		if strings.Join(got, "\n") == strings.Join(want, "\n") {
			return
		}
	}
	t.Fatalf("topic holds %q, want %q", got, want)
}

// TestFileTail tails a directory: complete lines are produced as they are
// written, a partial line waits for its newline, a new file is picked up,
// a rotated file is read from its start, and a restart with the
// checkpoint produces nothing twice.
func TestFileTail(t *testing.T) {
	prefix := kafkatest.TopicPrefix(t)
	topic := conntest.Topic(t, prefix+"raw.tail", 1)
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	if err := os.Mkdir(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(dir, "tail.checkpoint")
	a := write(t, filepath.Join(logs, "a.jsonl"), l1+"\n")
	write(t, filepath.Join(logs, "ignored.txt"), "not matched\n")
	cl := kafkatest.Client(t)
	start := func() (stop func()) {
		c := &File{Path: logs, Pattern: "*.jsonl", Source: "tail", Prefix: prefix, Checkpoint: cp,
			Poll: 20 * time.Millisecond, Logger: nopLog}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx, cl) }()
		return func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Run did not stop")
			}
		}
	}
	stop := start()
	waitFor(t, topic, []string{l1})
	appendTo(t, a, l2[:20]) // partial line
	time.Sleep(100 * time.Millisecond)
	appendTo(t, a, l2[20:]+"\n")
	waitFor(t, topic, []string{l1, l2})
	stop()

	// While stopped: more lines and a new file. After restart only these.
	appendTo(t, a, l3+"\n")
	write(t, filepath.Join(logs, "b.jsonl"), cef+"\n")
	stop = start()
	waitFor(t, topic, []string{l1, l2, l3, cef})
	// Rotation: a.jsonl replaced by a new, shorter file.
	write(t, a, l2+"\n")
	waitFor(t, topic, []string{l1, l2, l3, cef, l2})
	stop()
	if (&File{}).Name() != "file" {
		t.Error("default name")
	}
}

// TestFileRunErrors: a bad source ends Run at once; a missing path is
// retried (counted) until cancellation.
func TestFileRunErrors(t *testing.T) {
	cl := kafkatest.Client(t)
	if err := (&File{Path: t.TempDir(), Source: ""}).Run(context.Background(), cl); err == nil {
		t.Error("empty source accepted")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	c := &File{Path: filepath.Join(t.TempDir(), "nope"), Source: "x", Poll: 10 * time.Millisecond, Logger: nopLog, Metrics: connector.NewMetrics(nil)}
	if err := c.Run(ctx, cl); err != nil {
		t.Errorf("Run on a missing path returned %v, want nil after cancel", err)
	}
}
