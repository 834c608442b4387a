// Package blob is the connector for Azure Monitor diagnostic-log and
// Network Watcher flow-log blobs, read from a local directory laid out as
// the storage account is:
//
//	insights-logs-<category>/resourceId=/SUBSCRIPTIONS/<id>/.../y=YYYY/m=MM/d=DD/h=HH/m=00[/macAddress=<MAC>]/PT1H.json
//
// (a blobfuse / azcopy sync of the account, or a test tree). Reading
// Azure Blob Storage itself with azblob is not done yet; the layout and
// the checkpoint logic here are what it will reuse.
//
// # Growing blobs
//
// An hourly blob grows while its hour lasts, and the connector polls it:
//
//   - JSON lines (resource and activity logs since 2018-11): each complete
//     line is one raw record, as received; the checkpoint is the byte
//     offset after the last produced line.
//   - one {"records":[...]} document (NSG and VNet flow logs): Azure
//     rewrites the closing "]}" as it appends records, so the document is
//     re-parsed on growth and only the records past those already produced
//     are sent, as one raw record {"records":[<new records, their bytes as
//     stored>]} per poll. The checkpoint is the count of produced records,
//     and the byte offset of the end of the last one. A document that does
//     not parse yet (caught mid-write) is left for the next poll.
//
// Each checkpoint also holds a hash of the blob's first bytes (up to the
// produced offset), so a blob that was replaced rather than grown is read
// from its start. Positions are recorded after ProduceSync succeeded and
// written atomically: a restart neither loses nor re-sends what was
// acknowledged, except what was acknowledged after the last checkpoint
// write (at-least-once).
//
// # Source
//
// Source names the raw topic; when empty each blob's source is its
// container's category: insights-logs-networksecuritygroupflowevent →
// raw.networksecuritygroupflowevent.
package blob

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-sec/vigil/pipeline/connector"
	"github.com/vigil-sec/vigil/pipeline/connector/file"
)

// Defaults.
const (
	DefaultName      = "blob"
	DefaultPoll      = 30 * time.Second
	DefaultBatchSize = 1000
	// BlobName is the name of the hourly blobs.
	BlobName = "PT1H.json"
	// ContainerPrefix starts the name of diagnostic-settings containers.
	ContainerPrefix = "insights-logs-"
)

// Dir is the connector.
type Dir struct {
	// Root holds the insights-logs-* containers as directories.
	Root string
	// Source of every record; empty: the container's category.
	Source string
	// Prefix of topic names (config.Topics.Prefix).
	Prefix string
	// ConnectorName; default DefaultName.
	ConnectorName string
	// Checkpoint file; empty keeps positions in memory only.
	Checkpoint string
	// Poll interval; default DefaultPoll (Azure appends about once a minute).
	Poll      time.Duration
	BatchSize int
	Metrics   *connector.Metrics
	Logger    zerolog.Logger
	Now       func() time.Time
}

// Name implements connector.Connector.
func (d *Dir) Name() string {
	if d.ConnectorName == "" {
		return DefaultName
	}
	return d.ConnectorName
}

// Run polls Root until ctx is cancelled, then saves the checkpoint and
// returns nil. A produce or checkpoint failure ends Run with the error.
func (d *Dir) Run(ctx context.Context, out connector.Producer) error {
	if d.Source != "" {
		if err := connector.ValidateSource(d.Source); err != nil {
			return fmt.Errorf("blob connector %s: %w", d.Name(), err)
		}
	}
	cp, err := file.LoadCheckpoints(d.Checkpoint)
	if err != nil {
		return fmt.Errorf("blob connector %s: %w", d.Name(), err)
	}
	poll := d.Poll
	if poll <= 0 {
		poll = DefaultPoll
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		if _, err := d.Pass(ctx, out, cp); err != nil {
			if ctx.Err() != nil {
				break
			}
			_ = cp.Save()
			return fmt.Errorf("blob connector %s: %w", d.Name(), err)
		}
		select {
		case <-ctx.Done():
		case <-t.C:
			continue
		}
		break
	}
	if err := cp.Save(); err != nil {
		return fmt.Errorf("blob connector %s: %w", d.Name(), err)
	}
	return nil
}

// Pass reads every blob once, produces what is new, records it in cp and
// saves cp. It returns the number of records produced.
func (d *Dir) Pass(ctx context.Context, out connector.Producer, cp *file.Checkpoints) (int, error) {
	blobs, err := List(d.Root)
	if err != nil {
		d.Metrics.Error(d.Name(), connector.ReasonRead)
		d.Logger.Warn().Err(err).Str("root", d.Root).Msg("blob connector: listing failed; retrying")
		return 0, nil
	}
	total := 0
	for _, b := range blobs {
		if ctx.Err() != nil {
			return total, ctx.Err()
		}
		n, err := d.blob(ctx, out, cp, b)
		total += n
		var pe *fs.PathError
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return total, ctx.Err()
		case errors.As(err, &pe):
			d.Metrics.Error(d.Name(), connector.ReasonRead)
			d.Logger.Warn().Err(err).Msg("blob connector: read failed; retrying")
		default:
			return total, err
		}
	}
	return total, cp.Save()
}

// List returns the PT1H.json blobs under the insights-logs-* containers of
// root, in path order (so, per resource, in hour order).
func List(root string) ([]string, error) {
	containers, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, c := range containers {
		if !c.IsDir() || !strings.HasPrefix(c.Name(), ContainerPrefix) {
			continue
		}
		err := filepath.WalkDir(filepath.Join(root, c.Name()), func(path string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if e.Type().IsRegular() && e.Name() == BlobName {
				out = append(out, path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	sort.Strings(out)
	return out, nil
}

// SourceOf returns the category source of a blob path under root:
// insights-logs-<category>/... → <category>.
func SourceOf(root, path string) string {
	rel, err := filepath.Rel(root, path)
	if err != nil {
		return ""
	}
	container, _, _ := strings.Cut(filepath.ToSlash(rel), "/")
	return strings.ToLower(strings.TrimPrefix(container, ContainerPrefix))
}

func (d *Dir) blob(ctx context.Context, out connector.Producer, cp *file.Checkpoints, path string) (int, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return 0, err
	}
	source := d.Source
	if source == "" {
		source = SourceOf(d.Root, path)
		if err := connector.ValidateSource(source); err != nil {
			d.Metrics.Error(d.Name(), connector.ReasonBadSource)
			return 0, nil
		}
	}
	f, err := os.Open(abs)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	pos, ok := cp.Get(abs)
	if ok && st.Size() == pos.Size && st.ModTime().UTC().Equal(pos.ModTime) {
		return 0, nil // unchanged since the last pass
	}
	if ok && !d.same(f, st, pos) {
		pos, ok = file.Position{}, false // replaced: from the start
	}
	data := make([]byte, st.Size())
	if _, err := f.ReadAt(data, 0); err != nil {
		return 0, fmt.Errorf("%s: %w", abs, err)
	}
	stamp := connector.Stamp{Prefix: d.Prefix, Connector: d.Name()}
	now := time.Now
	if d.Now != nil {
		now = d.Now
	}
	trimmed := bytes.TrimLeft(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")), " \t\r\n")
	var recs []*kgo.Record
	var newPos file.Position
	if isDocument(trimmed, pos, ok) {
		records, ends, err := parseDocument(data)
		if err != nil {
			return 0, nil // mid-write: next poll
		}
		done := 0
		if ok {
			done = pos.Records
		}
		if done > len(records) {
			done = 0 // fewer records than produced: replaced
		}
		if done == len(records) {
			newPos = position(f, st, pos.Offset, file.ModeDocument, done)
		} else {
			var env bytes.Buffer
			env.WriteString(`{"records":[`)
			for i, r := range records[done:] {
				if i > 0 {
					env.WriteByte(',')
				}
				env.Write(r)
			}
			env.WriteString("]}")
			recs = append(recs, stamp.Record(source, nil, env.Bytes(), now()))
			newPos = position(f, st, ends[len(records)-1], file.ModeDocument, len(records))
		}
	} else {
		start := int64(0)
		if ok {
			start = pos.Offset
		}
		end := start
		rest := data[start:]
		for len(rest) > 0 {
			i := bytes.IndexByte(rest, '\n')
			if i < 0 {
				// The last line of a finished hour may lack a newline: take
				// it once it is a whole JSON value; a line still being
				// written is not.
				if l := bytes.TrimSpace(rest); json.Valid(l) {
					recs = append(recs, stamp.Record(source, nil, l, now()))
					end += int64(len(rest))
				}
				break
			}
			line := bytes.TrimSpace(rest[:i])
			if end == 0 {
				line = bytes.TrimSpace(bytes.TrimPrefix(line, []byte("\xef\xbb\xbf")))
			}
			end += int64(i + 1)
			rest = rest[i+1:]
			if len(line) > 0 {
				recs = append(recs, stamp.Record(source, nil, line, now()))
			}
		}
		newPos = position(f, st, end, file.ModeLines, 0)
	}
	batch := d.BatchSize
	if batch <= 0 {
		batch = DefaultBatchSize
	}
	for i := 0; i < len(recs); i += batch {
		if err := connector.Produce(ctx, out, d.Metrics, d.Name(), recs[i:min(i+batch, len(recs))]...); err != nil {
			return i, err // nothing of this pass recorded: it is re-sent
		}
	}
	if newPos.Mode != "" {
		cp.Set(abs, newPos)
	}
	return len(recs), nil
}

// same tells whether f is the blob pos was recorded for: its leading bytes
// (up to the produced offset) are unchanged.
func (d *Dir) same(f *os.File, st fs.FileInfo, pos file.Position) bool {
	if st.Size() < pos.Offset || st.Size() < pos.HeadLen {
		return false
	}
	h, err := file.Fingerprint(f, pos.HeadLen)
	return err == nil && h == pos.Head
}

func position(f *os.File, st fs.FileInfo, offset int64, mode file.Mode, records int) file.Position {
	n := min(offset, file.HeadLen)
	h, _ := file.Fingerprint(f, n) // a failed read only makes the next pass re-check
	return file.Position{Offset: offset, Size: st.Size(), ModTime: st.ModTime().UTC(), Head: h, HeadLen: n,
		Mode: mode, Records: records}
}

// isDocument: a recorded mode wins. Else a blob whose first line does
// not hold a whole JSON value is a (pretty-printed) document, and a blob
// of one line is a document if that line is a {"records":[...]} envelope.
func isDocument(trimmed []byte, pos file.Position, ok bool) bool {
	if ok && pos.Mode != "" {
		return pos.Mode == file.ModeDocument
	}
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return false
	}
	line, rest, _ := bytes.Cut(trimmed, []byte("\n"))
	if !json.Valid(bytes.TrimSpace(line)) {
		return true
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return false // several lines, each a value: JSON lines
	}
	var probe struct {
		Records json.RawMessage `json:"records"`
	}
	return json.Unmarshal(line, &probe) == nil && len(probe.Records) > 0 && probe.Records[0] == '['
}

// parseDocument returns the records of a {"records":[...]} document, each
// as its bytes in data, and the offset in data after each.
func parseDocument(data []byte) (records [][]byte, ends []int64, err error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, nil, fmt.Errorf("not a JSON object")
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return nil, nil, err
		}
		if key != "records" {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return nil, nil, err
			}
			continue
		}
		if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
			return nil, nil, fmt.Errorf("records is not an array")
		}
		for dec.More() {
			start := dec.InputOffset()
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return nil, nil, err
			}
			end := dec.InputOffset()
			rec := bytes.TrimLeft(data[start:end], " \t\r\n,")
			records = append(records, rec)
			ends = append(ends, end)
		}
		if _, err := dec.Token(); err != nil { // ]
			return nil, nil, err
		}
	}
	if _, err := dec.Token(); err != nil { // }
		return nil, nil, err
	}
	return records, ends, nil
}

// Dir is a connector.Connector.
var _ connector.Connector = (*Dir)(nil)
