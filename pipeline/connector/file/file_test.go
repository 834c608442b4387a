package file

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-sec/vigil/pipeline/connector"
	"github.com/vigil-sec/vigil/pipeline/connector/internal/conntest"
	"github.com/vigil-sec/vigil/pipeline/kafkatest"
)

func TestMain(m *testing.M) { kafkatest.Main(m) }

// Invented records in the real formats.
const (
	l1 = `{"time":"2024-03-01T10:00:00Z","category":"AdvancedHunting-DeviceLogonEvents","properties":{"DeviceName":"ws-1.contoso.test","ActionType":"LogonFailed"}}`
	l2 = `{"time":"2024-03-01T10:00:01Z","category":"AdvancedHunting-DeviceLogonEvents","properties":{"DeviceName":"ws-2.contoso.test","ActionType":"LogonSuccess"}}`
	l3 = `{"time":"2024-03-01T10:00:02Z","category":"SignInLogs","resultType":"0"}`
	// A pretty-printed NSG flow log document, as a PT1H.json blob holds.
	doc = "{\r\n  \"records\": [\r\n    {\r\n      \"time\": \"2024-03-01T10:00:00.0000000Z\",\r\n      \"category\": \"NetworkSecurityGroupFlowEvent\",\r\n      \"properties\": {\"Version\": 2, \"flows\": []}\r\n    }\r\n  ]\r\n}\r\n"
	cef = "CEF:0|Contoso|Firewall|1.0|100|Blocked|5|src=198.51.100.7 dst=10.0.0.4 dpt=445"
)

func write(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func appendTo(t *testing.T, path, content string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
}

func TestReadLine(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		max      int
		line     string
		n        int
		complete bool
		tooLong  bool
	}{
		{"lf", "abc\nnext", 10, "abc\n", 4, true, false},
		{"crlf", "abc\r\nnext", 10, "abc\r\n", 5, true, false},
		{"no newline", "abc", 10, "abc", 3, false, false},
		{"at max", "0123456789\r\n", 10, "0123456789\r\n", 12, true, false},
		{"over max", "0123456789ABC\nnext", 10, "", 14, true, true},
		{"longer than buffer", strings.Repeat("x", 40) + "\n", 100, strings.Repeat("x", 40) + "\n", 41, true, false},
		{"longer than buffer and max", strings.Repeat("x", 40) + "\n", 20, "", 41, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := bufio.NewReaderSize(strings.NewReader(tt.in), 16)
			line, n, complete, tooLong, _ := readLine(br, tt.max)
			if string(line) != tt.line || n != tt.n || complete != tt.complete || tooLong != tt.tooLong {
				t.Errorf("got %q n=%d complete=%v tooLong=%v, want %q %d %v %v", line, n, complete, tooLong, tt.line, tt.n, tt.complete, tt.tooLong)
			}
		})
	}
}

// sink is an in-memory Producer for the framing tests (no Kafka
// behaviour is under test there); the integration tests use the broker.
type sink struct{ got [][]byte }

func (s *sink) ProduceSync(_ context.Context, rs ...*kgo.Record) kgo.ProduceResults {
	out := make(kgo.ProduceResults, len(rs))
	for i, r := range rs {
		s.got = append(s.got, r.Value)
		out[i] = kgo.ProduceResult{Record: r}
	}
	return out
}

func frame(t testing.TB, in string) (Mode, []string) {
	var s sink
	e, err := newEngine(&s, "src", "", "test", 0, 0, 3, 90, 1<<20, nil, nopLog, nil)
	if err != nil {
		t.Fatal(err)
	}
	mode, err := e.stream(context.Background(), bufio.NewReaderSize(strings.NewReader(in), 16), 0, "", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(s.got))
	for i, g := range s.got {
		out[i] = string(g)
	}
	return mode, out
}

func TestFraming(t *testing.T) {
	short1, short2 := `{"a":1}`, `{"b":2}`
	tests := []struct {
		name string
		in   string
		mode Mode
		want []string
	}{
		{"json lines", short1 + "\n" + short2 + "\n", ModeLines, []string{short1, short2}},
		{"bom crlf blanks", "\xef\xbb\xbf" + short1 + "\r\n\r\n  \n" + short2 + "\r\n", ModeLines, []string{short1, short2}},
		{"no final newline", short1 + "\n" + short2, ModeLines, []string{short1, short2}},
		{"text lines", cef + "\n<34>1 2024-03-01T10:00:00Z host app - - - hi\n", ModeLines, []string{cef, "<34>1 2024-03-01T10:00:00Z host app - - - hi"}},
		{"leading blank lines then doc", "\n\n{\n \"records\": []\n}\n", ModeDocument, []string{"{\n \"records\": []\n}"}},
		{"pretty envelope", "\xef\xbb\xbf{\n  \"records\": [\n    " + short1 + "\n  ]\n}\n", ModeDocument, []string{"{\n  \"records\": [\n    " + short1 + "\n  ]\n}"}},
		{"pretty array", "[\n  " + short1 + ",\n  " + short2 + "\n]\n", ModeDocument, []string{short1, short2}},
		{"two pretty docs", "{\n\"a\": 1\n}\n{\n\"b\": 2\n}\n", ModeDocument, []string{"{\n\"a\": 1\n}", "{\n\"b\": 2\n}"}},
		{"broken doc sent whole", "{\n  \"records\": [\n", ModeDocument, []string{"{\n  \"records\": ["}},
		{"bad first line is a bad line", `{"i":00}` + "\n" + short1 + "\n", ModeLines, []string{`{"i":00}`, short1}},
		{"too long line skipped", short1 + "\n" + `{"x":"` + strings.Repeat("y", 100) + `"}` + "\n" + short2 + "\n", ModeLines, []string{short1, short2}},
		{"too long first line skipped", `{"x":"` + strings.Repeat("y", 100) + `"}` + "\n" + short2 + "\n", ModeLines, []string{short2}},
		{"empty", "", ModeLines, []string{}},
		{"blanks", "\n \r\n  ", ModeLines, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mode, got := frame(t, tt.in)
			if mode != tt.mode || strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
				t.Errorf("got %s %q, want %s %q", mode, got, tt.mode, tt.want)
			}
		})
	}
}

func FuzzFraming(f *testing.F) {
	for _, s := range []string{l1 + "\n" + l2, doc, cef, "\xef\xbb\xbf[\n1,\n2]", "{\n", "\r\n\r\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		mode, got := frame(t, in)
		for _, g := range got {
			if len(g) == 0 {
				t.Fatalf("empty record from %q", in)
			}
			if mode == ModeLines && strings.ContainsAny(g, "\n") {
				t.Fatalf("line record %q holds a newline", g)
			}
			if !strings.Contains(in, g) && mode == ModeLines {
				t.Fatalf("record %q is not a part of the input", g)
			}
		}
	})
}

// TestReplayToKafka replays a JSON-lines file, a pretty document, a CEF
// file and stdin, and reads the raw topic back.
func TestReplayToKafka(t *testing.T) {
	prefix := kafkatest.TopicPrefix(t)
	topic := conntest.Topic(t, prefix+"raw.mixed", 1)
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.jsonl"), "\xef\xbb\xbf"+l1+"\r\n"+l2+"\r\n")
	write(t, filepath.Join(dir, "b.json"), doc)
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(sub, "c.log"), cef+"\n")
	var progress bytes.Buffer
	n, err := Replay(context.Background(), kafkatest.Client(t), ReplayOptions{
		Source: "mixed", Prefix: prefix, Paths: []string{dir, Stdin}, In: strings.NewReader(l3 + "\n"),
		Progress: &progress,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{l1, l2, strings.TrimSpace(doc), cef, l3}
	if n != len(want) {
		t.Errorf("Replay = %d, want %d", n, len(want))
	}
	got := conntest.Consume(t, topic, len(want), 10*time.Second)
	if strings.Join(conntest.Values(got), "\n") != strings.Join(want, "\n") {
		t.Fatalf("topic holds %q, want %q", conntest.Values(got), want)
	}
	for _, r := range got {
		if conntest.Header(r, connector.HeaderConnector) != "replay" || conntest.Header(r, connector.HeaderSource) != "mixed" {
			t.Fatalf("headers %v", r.Headers)
		}
	}
	if !strings.Contains(progress.String(), "replay mixed") || !strings.Contains(progress.String(), "100%") {
		t.Errorf("progress output %q", progress.String())
	}
}

// cutAfter passes produces through to Kafka and cancels the replay's
// context once batches batches were acknowledged: a crash at a batch
// boundary, as the next ProduceSync fails.
type cutAfter struct {
	connector.Producer
	batches int32
	n       atomic.Int32
	cancel  context.CancelFunc
}

func (c *cutAfter) ProduceSync(ctx context.Context, rs ...*kgo.Record) kgo.ProduceResults {
	res := c.Producer.ProduceSync(ctx, rs...)
	if c.n.Add(1) == c.batches {
		c.cancel()
	}
	return res
}

// TestReplayCheckpointResume: a replay stopped mid-way and run again
// produces every line exactly once; a second full run produces nothing; an
// appended file produces only the new lines; a replaced file is read from
// its start.
func TestReplayCheckpointResume(t *testing.T) {
	prefix := kafkatest.TopicPrefix(t)
	topic := conntest.Topic(t, prefix+"raw.defender", 1)
	dir := t.TempDir()
	cp := filepath.Join(dir, "replay.checkpoint")
	var lines []string
	for i := range 25 {
		lines = append(lines, `{"i":`+itoa(i)+`}`)
	}
	path := write(t, filepath.Join(dir, "in.jsonl"), strings.Join(lines, "\n")+"\n")
	cl := kafkatest.Client(t)
	opts := ReplayOptions{Source: "defender", Prefix: prefix, Paths: []string{path}, BatchSize: 4,
		Checkpoint: cp, CheckpointEvery: time.Nanosecond}

	ctx, cancel := context.WithCancel(context.Background())
	n1, err := Replay(ctx, &cutAfter{Producer: cl, batches: 3, cancel: cancel}, opts)
	if err == nil || n1 != 12 {
		t.Fatalf("first run: n=%d err=%v, want 12 and a cancellation", n1, err)
	}
	n2, err := Replay(context.Background(), cl, opts)
	if err != nil || n2 != 13 {
		t.Fatalf("resumed run: n=%d err=%v, want 13", n2, err)
	}
	n3, err := Replay(context.Background(), cl, opts)
	if err != nil || n3 != 0 {
		t.Fatalf("third run: n=%d err=%v, want 0", n3, err)
	}
	got := conntest.Consume(t, topic, 26, time.Second)
	if strings.Join(conntest.Values(got), "\n") != strings.Join(lines, "\n") {
		t.Fatalf("topic holds %d records %q, want each line once", len(got), conntest.Values(got))
	}

	appendTo(t, path, l1+"\n")
	if n, err := Replay(context.Background(), cl, opts); err != nil || n != 1 {
		t.Fatalf("after append: n=%d err=%v, want 1", n, err)
	}
	// Replaced by another file (different first bytes, longer): from 0.
	write(t, path, l2+"\n"+l3+"\n"+strings.Repeat(l1+"\n", 10))
	if n, err := Replay(context.Background(), cl, opts); err != nil || n != 12 {
		t.Fatalf("after replace: n=%d err=%v, want 12", n, err)
	}
	// Truncated below the offset: from 0 as well.
	write(t, path, l3+"\n")
	if n, err := Replay(context.Background(), cl, opts); err != nil || n != 1 {
		t.Fatalf("after truncate: n=%d err=%v, want 1", n, err)
	}
	var cf checkpointFile
	b, _ := os.ReadFile(cp)
	if err := json.Unmarshal(b, &cf); err != nil || len(cf.Files) != 1 {
		t.Fatalf("checkpoint %s: %v", b, err)
	}
	for _, p := range cf.Files {
		if p.Offset != int64(len(l3)+1) || p.Mode != ModeLines || p.Size != p.Offset {
			t.Errorf("checkpoint position %+v", p)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestReplayRate: 30 records at 100/s with burst 1 cannot take less than
// 0.29 s (a lower bound only: the machine may be slower).
func TestReplayRate(t *testing.T) {
	prefix := kafkatest.TopicPrefix(t)
	topic := conntest.Topic(t, prefix+"raw.slow", 1)
	path := write(t, filepath.Join(t.TempDir(), "in.jsonl"), strings.Repeat(l3+"\n", 30))
	start := time.Now()
	n, err := Replay(context.Background(), kafkatest.Client(t), ReplayOptions{Source: "slow", Prefix: prefix, Paths: []string{path}, Rate: 100, Burst: 1})
	if err != nil || n != 30 {
		t.Fatalf("n=%d err=%v", n, err)
	}
	if d := time.Since(start); d < 290*time.Millisecond {
		t.Errorf("30 records at 100/s took %v", d)
	}
	if got := conntest.Consume(t, topic, 30, 5*time.Second); len(got) != 30 {
		t.Errorf("topic holds %d", len(got))
	}
}

func TestReplayErrors(t *testing.T) {
	cl := kafkatest.Client(t)
	if _, err := Replay(context.Background(), cl, ReplayOptions{Source: "../x", Paths: []string{"a"}}); err == nil {
		t.Error("bad source accepted")
	}
	if _, err := Replay(context.Background(), cl, ReplayOptions{Source: "x"}); err == nil {
		t.Error("no paths accepted")
	}
	if _, err := Replay(context.Background(), cl, ReplayOptions{Source: "x", Paths: []string{filepath.Join(t.TempDir(), "missing")}}); err == nil {
		t.Error("missing file accepted")
	}
	bad := write(t, filepath.Join(t.TempDir(), "cp"), "not json")
	if _, err := Replay(context.Background(), cl, ReplayOptions{Source: "x", Paths: []string{bad}, Checkpoint: bad}); err == nil || !strings.Contains(err.Error(), "checkpoint") {
		t.Errorf("corrupt checkpoint: %v", err)
	}
}

// TestReplaySamples replays the real samples: a pretty NSG flow log
// document is one record, a Defender JSON-lines file one record per line.
func TestReplaySamples(t *testing.T) {
	samples := conntest.Samples(t)
	prefix := kafkatest.TopicPrefix(t)
	cl := kafkatest.Client(t)
	tests := []struct {
		file string
		want func([]byte) int
	}{
		{"nsg-flow/azure-docs_nsg-flow-logs-overview_v2_sample.json", func([]byte) int { return 1 }},
		{"defender-xdr/elastic-m365_defender_streaming_device-events.jsonl", func(b []byte) int {
			n := 0
			for l := range bytes.Lines(b) {
				if len(bytes.TrimSpace(l)) > 0 {
					n++
				}
			}
			return n
		}},
	}
	for i, tt := range tests {
		path := filepath.Join(samples, tt.file)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		src := "s" + itoa(i)
		topic := conntest.Topic(t, prefix+"raw."+src, 1)
		n, err := Replay(context.Background(), cl, ReplayOptions{Source: src, Prefix: prefix, Paths: []string{path}})
		if err != nil {
			t.Fatal(err)
		}
		if want := tt.want(b); n != want {
			t.Errorf("%s: %d records, want %d", tt.file, n, want)
		}
		for _, r := range conntest.Consume(t, topic, n, 10*time.Second) {
			if !json.Valid(r.Value) {
				t.Errorf("%s: record is not JSON: %.80q", tt.file, r.Value)
			}
		}
	}
}

// BenchmarkReplay replays a 20000-line JSON-lines file to the test broker.
func BenchmarkReplay(b *testing.B) {
	prefix := kafkatest.TopicPrefix(b)
	conntest.Topic(b, prefix+"raw.bench", 1)
	path := filepath.Join(b.TempDir(), "in.jsonl")
	content := strings.Repeat(l1+"\n", 20000)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		b.Fatal(err)
	}
	cl := kafkatest.Client(b)
	b.SetBytes(int64(len(content)))
	for b.Loop() {
		n, err := Replay(context.Background(), cl, ReplayOptions{Source: "bench", Prefix: prefix, Paths: []string{path}})
		if err != nil || n != 20000 {
			b.Fatal(n, err)
		}
	}
	b.ReportMetric(float64(b.N)*20000/b.Elapsed().Seconds(), "records/s")
}
