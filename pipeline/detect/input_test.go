package detect

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-sec/vigil/pipeline/connector/file"
)

func TestSplit(t *testing.T) {
	const (
		l1  = `{"records":[{"time":"2025-10-07T03:00:00Z","category":"SignInLogs"}]}`
		l2  = `{"Timestamp":"2025-10-07T03:00:01Z","DeviceName":"ws-1"}`
		cef = `<134>1 2025-10-07T03:00:02Z fw01 panos - - - CEF:0|V|P|1|1|x|3|src=192.0.2.1`
	)
	pretty := "{\n  \"records\": [\n    {\"a\": 1},\n    {\"b\": 2}\n  ]\n}\n"
	array := "[\n  {\"a\": 1},\n\n  {\"b\": 2}\n]\n"
	csvText := "TimeGenerated [UTC],Caller,OperationNameValue\r\n\"10/7/2025, 3:00:00.000 AM\",a@b.example,X/DELETE\r\n"
	tests := []struct {
		name  string
		in    string
		hint  string
		mode  string
		msgs  []string
		lines []int
	}{
		{"json lines", l1 + "\n" + l2 + "\n", "", modeLines, []string{l1, l2}, []int{1, 2}},
		{"bom crlf blanks", "\xef\xbb\xbf\r\n" + l1 + "\r\n\r\n  " + l2 + "  \r\n", "", modeLines, []string{l1, l2}, []int{2, 4}},
		{"no final newline", l1 + "\n" + l2, "", modeLines, []string{l1, l2}, []int{1, 2}},
		{"torn line after the first stays a line", l2 + "\n" + l1[:20] + "\n", "", modeLines, []string{l2, l1[:20]}, []int{1, 2}},
		{"torn first line opens a document", l1[:20] + "\n" + l2 + "\n", "", modeDocument, []string{l1[:20] + "\n" + l2}, []int{1}},
		{"pretty envelope is one message", "\n" + pretty, "", modeDocument, []string{strings.TrimSpace(pretty)}, []int{2}},
		{"pretty array: one per element", array, "", modeDocument, []string{`{"a": 1}`, `{"b": 2}`}, []int{2, 4}},
		{"pretty documents back to back", pretty + pretty, "", modeDocument, []string{strings.TrimSpace(pretty), strings.TrimSpace(pretty)}, []int{1, 7}},
		{"broken document sent whole", "{\n  \"a\": [1,\n", "", modeDocument, []string{"{\n  \"a\": [1,"}, []int{1}},
		{"one-line array is a line", `[{"a":1},{"b":2}]`, "", modeLines, []string{`[{"a":1},{"b":2}]`}, []int{1}},
		{"syslog and cef lines", cef + "\nMar  5 10:06:01 fw01 sshd[811]: Failed password\n", "", modeLines,
			[]string{cef, "Mar  5 10:06:01 fw01 sshd[811]: Failed password"}, []int{1, 2}},
		{"csv export is one message", "\xef\xbb\xbf" + csvText, "", modeCSV, []string{csvText}, []int{1}},
		{"syslog hint: a comma line that is no header", "host app: a, b=c\n", "syslog", modeLines, []string{"host app: a, b=c"}, []int{1}},
		{"blank input", " \r\n\n", "", modeLines, nil, nil},
		{"empty input", "", "", modeLines, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msgs, mode := split([]byte(tc.in), tc.hint)
			if mode != tc.mode {
				t.Errorf("mode %s, want %s", mode, tc.mode)
			}
			var got []string
			var lines []int
			for _, m := range msgs {
				got = append(got, string(m.value))
				lines = append(lines, m.line)
				if m.csv != (mode == modeCSV) {
					t.Errorf("csv flag %v in mode %s", m.csv, mode)
				}
			}
			if !slices.Equal(got, tc.msgs) {
				t.Errorf("messages %q, want %q", got, tc.msgs)
			}
			if !slices.Equal(lines, tc.lines) {
				t.Errorf("lines %v, want %v", lines, tc.lines)
			}
		})
	}
}

// capture is a connector.Producer that keeps what it is given: the raw
// records the streaming path would put on the raw topic.
type capture struct{ values [][]byte }

func (c *capture) ProduceSync(_ context.Context, rs ...*kgo.Record) kgo.ProduceResults {
	out := make(kgo.ProduceResults, 0, len(rs))
	for _, r := range rs {
		c.values = append(c.values, r.Value)
		out = append(out, kgo.ProduceResult{Record: r})
	}
	return out
}

// TestSplitMatchesReplay: for every input that is not a CSV export, split
// gives exactly the raw records `vigil replay` (the file connector)
// produces for the streaming path, the fixtures and the shared real
// samples alike.
func TestSplitMatchesReplay(t *testing.T) {
	paths := []string{fixture(t, "signins.jsonl"), fixture(t, "audit.json"), fixture(t, "defender.jsonl")}
	samples := filepath.Join(pkgDir(t), "..", "..", "..", "shared", "samples")
	if _, err := os.Stat(samples); err == nil {
		_ = filepath.WalkDir(samples, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && !strings.HasSuffix(p, ".md") && !strings.HasSuffix(p, ".csv") {
				paths = append(paths, p)
			}
			return nil
		})
	} else {
		t.Logf("shared samples not found at %s: comparing the fixtures only", samples)
	}
	t.Logf("comparing %d files", len(paths))
	for _, p := range paths {
		var c capture
		if _, err := file.Replay(context.Background(), &c, file.ReplayOptions{Source: "x", Paths: []string{p}}); err != nil {
			t.Fatalf("replay %s: %v", p, err)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		msgs, mode := split(data, "")
		if mode == modeCSV {
			t.Errorf("%s: read as CSV", p)
			continue
		}
		if len(msgs) != len(c.values) {
			t.Errorf("%s: %d messages, replay produced %d", filepath.Base(p), len(msgs), len(c.values))
			continue
		}
		for i, m := range msgs {
			if !bytes.Equal(m.value, c.values[i]) {
				t.Errorf("%s: message %d differs from replay's record:\n%.200q\n%.200q", filepath.Base(p), i, m.value, c.values[i])
			}
		}
	}
}

// TestSamplesDetect runs every shared real sample through detect with the
// library: every record parses (the line/document/CSV split loses none),
// and the run is deterministic.
func TestSamplesDetect(t *testing.T) {
	samples := filepath.Join(pkgDir(t), "..", "..", "..", "shared", "samples")
	if _, err := os.Stat(samples); err != nil {
		t.Skipf("shared samples not found at %s", samples)
	}
	var in []Input
	_ = filepath.WalkDir(samples, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasSuffix(p, ".md") {
			rel, _ := filepath.Rel(samples, p)
			in = append(in, File(p, strings.SplitN(rel, string(filepath.Separator), 2)[0]))
		}
		return nil
	})
	res := detect(t, in, Options{})
	for _, e := range res.errors {
		t.Errorf("%s:%d: %s: %s", e.Input, e.Line, e.Stage, e.Error)
	}
	if res.stats.Events < 50 {
		t.Errorf("only %d events from %d sample files", res.stats.Events, len(in))
	}
	slices.Reverse(in)
	if again := detect(t, in, Options{}); !bytes.Equal(res.raw, again.raw) {
		t.Error("samples in reverse order give another output")
	}
	t.Logf("%d files, %d events, %d alerts, %d incidents", len(in), res.stats.Events, res.stats.Alerts, res.stats.Incidents)
}

// FuzzSplit: split never panics, never returns an empty message, keeps
// lines within the input and in order, and a line-mode message never
// spans a line.
func FuzzSplit(f *testing.F) {
	for _, name := range []string{"signins.jsonl", "audit.json", "defender.jsonl", "activity_export.csv"} {
		b, err := os.ReadFile(fixture(f, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, "")
	}
	f.Add([]byte("[\n{\"a\":1},\n"), "")
	f.Add([]byte("\xef\xbb\xbf<13>Mar  5 10:06:03 host2 app: x\r\nCEF:0|a|b|1|2|n|3|src=1.2.3.4"), "syslog")
	f.Fuzz(func(t *testing.T, data []byte, hint string) {
		msgs, mode := split(data, hint)
		total := bytes.Count(data, []byte{'\n'}) + 1
		prev := 0
		for _, m := range msgs {
			if len(bytes.TrimSpace(m.value)) == 0 {
				t.Fatalf("empty message in mode %s", mode)
			}
			if m.line < 1 || m.line > total || m.line < prev {
				t.Fatalf("line %d (previous %d, %d lines) in mode %s", m.line, prev, total, mode)
			}
			prev = m.line
			if mode == modeLines && bytes.IndexByte(m.value, '\n') >= 0 {
				t.Fatalf("line message spans lines: %q", m.value)
			}
		}
		if mode == modeCSV && len(msgs) != 1 {
			t.Fatalf("csv mode with %d messages", len(msgs))
		}
	})
}

func TestPaths(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"b/2.jsonl", "a.json", "b/1.log", ".hidden/x.json", "b/.skip.json"} {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("{}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	in, err := Paths([]string{filepath.Join(dir, "b", "2.jsonl"), Stdin, dir}, "entra", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, i := range in {
		rel, _ := filepath.Rel(dir, i.Name)
		if i.Name == "stdin" {
			rel = "stdin"
		}
		got = append(got, rel)
		if i.Hint != "entra" {
			t.Errorf("%s: hint %q", i.Name, i.Hint)
		}
	}
	want := []string{"b/2.jsonl", "stdin", "a.json", "b/1.log", "b/2.jsonl"}
	if !slices.Equal(got, want) {
		t.Errorf("inputs %q, want %q", got, want)
	}
	if _, err := Paths([]string{filepath.Join(dir, "nope")}, "", nil); err == nil {
		t.Error("a missing path gave no error")
	}
}
