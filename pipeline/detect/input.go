package detect

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/pipeline/connector"
	"github.com/vigil-sec/vigil/pipeline/normalize"
)

// Input is one export to hunt over: a file, or any reader with a name.
type Input struct {
	// Name identifies the input in error lines (a path for files).
	Name string
	// Hint is the source hint normalize.Parse gets, as the raw topic's
	// source name would give it in streaming ("defender", "entra",
	// "syslog", ...; empty for auto-detection). It only breaks ties.
	Hint string
	// Received is the receive time of the input's records: the event time
	// of records that carry none, and the year of BSD syslog lines. Zero
	// means Options.Received, else the file's modification time (so a
	// re-run over the same file gives the same output), else time.Now.
	Received time.Time
	// Open returns the content; Run closes it.
	Open func() (io.ReadCloser, error)
	// modTime is set by File and used when Received is zero.
	modTime func() (time.Time, error)
}

// File returns the input of the file at path.
func File(path, hint string) Input {
	return Input{
		Name: path, Hint: hint,
		Open: func() (io.ReadCloser, error) { return os.Open(path) },
		modTime: func() (time.Time, error) {
			st, err := os.Stat(path)
			if err != nil {
				return time.Time{}, err
			}
			return st.ModTime().UTC(), nil
		},
	}
}

// Reader returns an input that reads r (standard input, a test buffer).
// Run reads r once; it closes r if it is an io.Closer.
func Reader(name, hint string, r io.Reader) Input {
	return Input{
		Name: name, Hint: hint,
		Open: func() (io.ReadCloser, error) {
			if rc, ok := r.(io.ReadCloser); ok {
				return rc, nil
			}
			return io.NopCloser(r), nil
		},
	}
}

// message is one raw message: what the streaming path would put in one
// record of a raw.<source> topic.
type message struct {
	value []byte
	// line is the 1-based line of the input where the message starts.
	line int
	// csv marks a whole CSV export: a RecordError's Index counts its data
	// rows, so the row's line is line+1+Index (exact unless a quoted field
	// spans lines).
	csv bool
}

// Split modes, after the file connector's (pipeline/connector/file).
const (
	modeLines    = "lines"
	modeDocument = "document"
	modeCSV      = "csv"
)

var bom = []byte("\xef\xbb\xbf")

// split cuts an input into raw messages the way the file connector cuts a
// replayed file, so that detect parses exactly what streaming would:
//
//   - document: the first non-blank line opens a JSON value it does not
//     complete (a pretty-printed envelope, an NSG flow-log PT1H.json, a
//     JSON array): the rest is split with connector.SplitJSON, one
//     message per object (an envelope stays whole), or sent whole if it
//     does not split, for normalize to report;
//   - csv: the first line is a CSV header (as normalize.Parse decides it):
//     the whole input is one message, since a CSV row means nothing
//     without its header (the file connector would cut it into lines);
//   - lines: otherwise one message per non-blank line (JSON lines,
//     syslog, CEF), the line terminator (LF or CRLF), a leading BOM and
//     surrounding blanks dropped.
func split(data []byte, hint string) ([]message, string) {
	data = bytes.TrimPrefix(data, bom)
	// The first non-blank line decides.
	start, line := 0, 1
	for start < len(data) {
		end := lineEnd(data, start)
		t := bytes.TrimSpace(data[start:end])
		if len(t) > 0 {
			break
		}
		start = end
		line++
	}
	if start >= len(data) {
		return nil, modeLines
	}
	first := bytes.TrimSpace(data[start:lineEnd(data, start)])
	switch {
	case opensDocument(first):
		return splitDocument(data, start, line), modeDocument
	case first[0] != '{' && first[0] != '[' && isCSV(first, hint):
		return []message{{value: data[start:], line: line, csv: true}}, modeCSV
	}
	var out []message
	for i := start; i < len(data); line++ {
		end := lineEnd(data, i)
		if t := bytes.TrimSpace(data[i:end]); len(t) > 0 {
			out = append(out, message{value: t, line: line})
		}
		i = end
	}
	return out, modeLines
}

// splitDocument splits the multi-line JSON document(s) starting at
// data[start] (on line line).
func splitDocument(data []byte, start, line int) []message {
	doc := bytes.TrimSpace(data[start:])
	recs, err := connector.SplitJSON(doc)
	if err != nil {
		return []message{{value: doc, line: line}}
	}
	out := make([]message, 0, len(recs))
	off, at := 0, line // running newline count, so the cost stays linear
	for _, r := range recs {
		// r aliases doc: its offset is the difference of their capacities.
		o := cap(doc) - cap(r)
		at += bytes.Count(doc[off:o], []byte{'\n'})
		off = o
		out = append(out, message{value: r, line: at})
	}
	return out
}

func lineEnd(b []byte, i int) int {
	if j := bytes.IndexByte(b[i:], '\n'); j >= 0 {
		return i + j + 1
	}
	return len(b)
}

// opensDocument tells whether line starts a JSON value that goes on past
// the line's end (the file connector's rule). A complete but malformed
// line is not one: it is a bad JSON line, for normalize to report.
func opensDocument(line []byte) bool {
	if line[0] != '{' && line[0] != '[' {
		return false
	}
	var v json.RawMessage
	err := json.NewDecoder(bytes.NewReader(line)).Decode(&v)
	return errors.Is(err, io.ErrUnexpectedEOF)
}

// isCSV mirrors normalize.Parse's choice between syslog lines and a CSV
// export for text input whose first line is first.
func isCSV(first []byte, hint string) bool {
	if normalize.LooksLikeSyslog(first) || !bytes.ContainsRune(first, ',') {
		return false
	}
	if hint == "syslog" || hint == "cef" {
		return normalize.CSVHeaderLike(first)
	}
	return true
}

// read returns the content of in and its receive time.
func (in Input) read(def time.Time) ([]byte, time.Time, error) {
	if in.Open == nil {
		return nil, time.Time{}, errors.New("input has no Open function")
	}
	rc, err := in.Open()
	if err != nil {
		return nil, time.Time{}, err
	}
	data, err := io.ReadAll(rc)
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("read: %w", err)
	}
	recv := in.Received
	if recv.IsZero() {
		recv = def
	}
	if recv.IsZero() && in.modTime != nil {
		if t, err := in.modTime(); err == nil {
			recv = t
		}
	}
	if recv.IsZero() {
		recv = time.Now()
	}
	return data, recv.UTC(), nil
}

// Stdin is the path that names standard input in Paths.
const Stdin = "-"

// Paths turns command-line paths into inputs: files as they are,
// directories walked recursively in lexical order (hidden entries
// skipped), Stdin read from stdin. All get the same source hint. A path
// that does not exist is an error here rather than an error line, since
// it is a typo on the command line, not a bad record.
func Paths(paths []string, hint string, stdin io.Reader) ([]Input, error) {
	var out []Input
	for _, p := range paths {
		if p == Stdin {
			out = append(out, Reader("stdin", hint, stdin))
			continue
		}
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("detect: input %w", err)
		}
		if !st.IsDir() {
			out = append(out, File(p, hint))
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if path != p && strings.HasPrefix(d.Name(), ".") {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if d.Type().IsRegular() {
				out = append(out, File(path, hint))
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("detect: input %s: %w", p, err)
		}
	}
	return out, nil
}

// Messages cuts an export into raw messages exactly as detect (and the
// file connector) does; `vigil normalize` uses it so both agree.
func Messages(data []byte, hint string) [][]byte {
	ms, _ := split(data, hint)
	out := make([][]byte, len(ms))
	for i, m := range ms {
		out[i] = m.value
	}
	return out
}
