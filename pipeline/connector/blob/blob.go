// Package blob is the connector for Azure Monitor diagnostic-log and
// Network Watcher flow-log blobs, laid out as a storage account holds
// them:
//
//	insights-logs-<category>/resourceId=/SUBSCRIPTIONS/<id>/.../y=YYYY/m=MM/d=DD/h=HH/m=00[/macAddress=<MAC>]/PT1H.json
//
// read either from Azure Blob Storage (Azure, over an AzureStore) or from
// a local directory with the same layout (Dir, over a DirStore: a
// blobfuse mount, an azcopy sync, a test tree). Both are a Reader over a
// Store, the two calls it needs (List, ReadRange), so the growing-blob
// logic and the checkpoints below are the same for both.
//
// # Growing blobs
//
// An hourly blob grows while its hour lasts, and the connector polls it.
// A blob whose size and modification time (and, for Azure, ETag within
// one process) are those checkpointed is not read at all; a grown one is
// read from the checkpointed offset with a ranged read:
//
//   - JSON lines (resource and activity logs since 2018-11): each complete
//     line is one raw record, as received; the checkpoint is the byte
//     offset after the last produced line.
//   - one {"records":[...]} document (NSG and VNet flow logs): Azure
//     rewrites the closing "]}" as it appends records (it commits the
//     block list again with new blocks before a new closing block), so
//     the bytes past the end of the last produced record are parsed as
//     `, <record>... ]}` and the new records are sent as one raw record
//     {"records":[<new records, their bytes as stored>]} per poll. The
//     checkpoint is the count of produced records and the byte offset of
//     the end of the last one. A document caught mid-write is left for
//     the next poll; one whose tail is not such a continuation is parsed
//     whole and the records past the count already produced are sent.
//
// Each checkpoint also holds a hash of the blob's first bytes (up to the
// produced offset, at most 1 KiB), read again before resuming, so a blob
// that was replaced rather than grown is read from its start. Positions
// are recorded after ProduceSync succeeded and written atomically (the
// checkpoint file of pipeline/connector/file): a restart neither loses
// nor re-sends what was acknowledged, except what was acknowledged after
// the last checkpoint write (at-least-once).
//
// An Azure blob is read at the version listed (If-Match on its ETag), so
// the head check and the ranged read see the same bytes; a blob that
// changes in between is left for the next poll.
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
	"path/filepath"
	"strings"
	"sync"
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

// Options are the settings a Reader, Dir and Azure share.
type Options struct {
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

// Reader polls a Store and produces what its blobs gained since the
// checkpoint. Dir and Azure build one; use it directly for another Store.
type Reader struct {
	Store Store
	Options

	mu sync.Mutex
	// etags holds, per checkpoint key, the ETag of the version this
	// process checkpointed: a blob rewritten within the same second at
	// the same size still differs by ETag. (The checkpoint file keeps
	// size and modification time only, so after a restart those decide.)
	etags map[string]string
}

// Name implements connector.Connector.
func (r *Reader) Name() string {
	if r.ConnectorName == "" {
		return DefaultName
	}
	return r.ConnectorName
}

// Run polls the store until ctx is cancelled, then saves the checkpoint
// and returns nil. A produce or checkpoint failure ends Run with the
// error; a store that cannot be listed or read is logged and polled again.
func (r *Reader) Run(ctx context.Context, out connector.Producer) error {
	if r.Source != "" {
		if err := connector.ValidateSource(r.Source); err != nil {
			return fmt.Errorf("blob connector %s: %w", r.Name(), err)
		}
	}
	cp, err := file.LoadCheckpoints(r.Checkpoint)
	if err != nil {
		return fmt.Errorf("blob connector %s: %w", r.Name(), err)
	}
	poll := r.Poll
	if poll <= 0 {
		poll = DefaultPoll
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		if _, err := r.Pass(ctx, out, cp); err != nil {
			if ctx.Err() != nil {
				break
			}
			_ = cp.Save()
			return fmt.Errorf("blob connector %s: %w", r.Name(), err)
		}
		select {
		case <-ctx.Done():
		case <-t.C:
			continue
		}
		break
	}
	if err := cp.Save(); err != nil {
		return fmt.Errorf("blob connector %s: %w", r.Name(), err)
	}
	return nil
}

// readError is a failure of the store (not of Kafka): the blob is tried
// again next poll.
type readError struct{ err error }

func (e readError) Error() string { return e.err.Error() }
func (e readError) Unwrap() error { return e.err }

// Pass reads every blob once, produces what is new, records it in cp and
// saves cp. It returns the number of records produced.
func (r *Reader) Pass(ctx context.Context, out connector.Producer, cp *file.Checkpoints) (int, error) {
	objs, err := r.Store.List(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		r.Metrics.Error(r.Name(), connector.ReasonRead)
		r.Logger.Warn().Err(err).Msg("blob connector: listing failed; retrying")
		return 0, nil
	}
	total := 0
	for _, o := range objs {
		if ctx.Err() != nil {
			return total, ctx.Err()
		}
		n, err := r.blob(ctx, out, cp, o)
		total += n
		var re readError
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return total, ctx.Err()
		case errors.Is(err, ErrChanged):
			r.Logger.Debug().Str("blob", o.Key).Msg("blob connector: blob changed while read; next poll")
		case errors.As(err, &re):
			r.Metrics.Error(r.Name(), connector.ReasonRead)
			r.Logger.Warn().Err(err).Str("blob", o.Key).Msg("blob connector: read failed; retrying")
		default:
			return total, err
		}
	}
	return total, cp.Save()
}

func (r *Reader) read(ctx context.Context, o Object, off, n int64) ([]byte, error) {
	if n <= 0 {
		return nil, nil
	}
	b, err := r.Store.ReadRange(ctx, o, off, n)
	if err != nil {
		return nil, readError{fmt.Errorf("read %s bytes %d-%d: %w", o.Key, off, off+n-1, err)}
	}
	return b, nil
}

// unchanged tells whether o is the version pos was recorded for, judged
// by size, modification time and (within this process) ETag.
func (r *Reader) unchanged(o Object, pos file.Position) bool {
	if o.Size != pos.Size || !o.ModTime.Equal(pos.ModTime) {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	e, seen := r.etags[o.Key]
	return !seen || e == o.ETag
}

func (r *Reader) record(o Object, pos file.Position, cp *file.Checkpoints) {
	cp.Set(o.Key, pos)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.etags == nil {
		r.etags = map[string]string{}
	}
	r.etags[o.Key] = o.ETag
}

func (r *Reader) blob(ctx context.Context, out connector.Producer, cp *file.Checkpoints, o Object) (int, error) {
	source := r.Source
	if source == "" {
		source = category(o.Container)
		if err := connector.ValidateSource(source); err != nil {
			r.Metrics.Error(r.Name(), connector.ReasonBadSource)
			return 0, nil
		}
	}
	pos, ok := cp.Get(o.Key)
	if ok && r.unchanged(o, pos) {
		return 0, nil
	}
	var head []byte // the blob's first pos.HeadLen bytes when resuming
	if ok {
		if o.Size < pos.Offset || o.Size < pos.HeadLen {
			pos, ok = file.Position{}, false // shorter: replaced
		} else {
			h, err := r.read(ctx, o, 0, pos.HeadLen)
			if err != nil {
				return 0, err
			}
			if fingerprint(h, pos.HeadLen) != pos.Head {
				pos, ok = file.Position{}, false // replaced
			} else {
				head = h
			}
		}
	}
	values, newPos, err := r.resume(ctx, o, pos, ok, head)
	if errors.Is(err, errIncomplete) {
		return 0, nil // mid-write: next poll
	}
	if err != nil {
		return 0, err
	}
	if newPos == nil {
		if values, newPos, err = r.whole(ctx, o, pos, ok); err != nil {
			return 0, err
		}
	}
	if newPos == nil {
		return 0, nil // mid-write: next poll
	}
	stamp := connector.Stamp{Prefix: r.Prefix, Connector: r.Name()}
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	recs := make([]*kgo.Record, len(values))
	for i, v := range values {
		recs[i] = stamp.Record(source, nil, v, now())
	}
	batch := r.BatchSize
	if batch <= 0 {
		batch = DefaultBatchSize
	}
	for i := 0; i < len(recs); i += batch {
		if err := connector.Produce(ctx, out, r.Metrics, r.Name(), recs[i:min(i+batch, len(recs))]...); err != nil {
			return i, err // nothing of this pass recorded: it is re-sent
		}
	}
	r.record(o, *newPos, cp)
	return len(recs), nil
}

// resume reads a blob known to have grown from pos.Offset on. A nil
// position with a nil error means it could not: whole must read it;
// errIncomplete means the document is being written.
func (r *Reader) resume(ctx context.Context, o Object, pos file.Position, ok bool, head []byte) ([][]byte, *file.Position, error) {
	if !ok || pos.Offset == 0 {
		return nil, nil, nil
	}
	switch {
	case pos.Mode == file.ModeDocument && pos.Records > 0:
		tail, err := r.read(ctx, o, pos.Offset, o.Size-pos.Offset)
		if err != nil {
			return nil, nil, err
		}
		recs, ends, err := parseTail(tail)
		if errors.Is(err, errIncomplete) {
			return nil, nil, err
		}
		if err != nil {
			r.Logger.Debug().Err(err).Str("blob", o.Key).Msg("blob connector: document rewritten; parsing it whole")
			return nil, nil, nil
		}
		end := pos.Offset
		var values [][]byte
		if len(recs) > 0 {
			end += ends[len(ends)-1]
			values = [][]byte{envelope(recs)}
		}
		p := r.position(o, joinHead(head, tail, pos), end, file.ModeDocument, pos.Records+len(recs))
		return values, &p, nil
	case pos.Mode == file.ModeLines:
		data, err := r.read(ctx, o, pos.Offset, o.Size-pos.Offset)
		if err != nil {
			return nil, nil, err
		}
		values, end := splitLines(data, pos.Offset)
		p := r.position(o, joinHead(head, data, pos), end, file.ModeLines, 0)
		return values, &p, nil
	}
	return nil, nil, nil
}

// whole reads a blob from its start: new, replaced, or a document whose
// tail did not parse as a continuation. A nil position means the blob is
// a document caught mid-write.
func (r *Reader) whole(ctx context.Context, o Object, pos file.Position, ok bool) ([][]byte, *file.Position, error) {
	data, err := r.read(ctx, o, 0, o.Size)
	if err != nil {
		return nil, nil, err
	}
	trimmed := bytes.TrimLeft(bytes.TrimPrefix(data, bom), " \t\r\n")
	if !isDocument(trimmed, pos, ok) {
		values, end := splitLines(data, 0)
		p := r.position(o, data, end, file.ModeLines, 0)
		return values, &p, nil
	}
	records, ends, err := parseDocument(data)
	if err != nil {
		return nil, nil, nil // mid-write: next poll
	}
	done := 0
	if ok {
		done = pos.Records
	}
	if done > len(records) {
		done = 0 // fewer records than produced: replaced
	}
	if done == len(records) {
		end := int64(0)
		if done > 0 {
			end = ends[done-1]
		}
		p := r.position(o, data, end, file.ModeDocument, done)
		return nil, &p, nil
	}
	p := r.position(o, data, ends[len(records)-1], file.ModeDocument, len(records))
	return [][]byte{envelope(records[done:])}, &p, nil
}

var bom = []byte("\xef\xbb\xbf")

// splitLines cuts data, the bytes of a blob from offset base on, into
// its complete non-empty lines, and returns the offset after the last
// one taken.
func splitLines(data []byte, base int64) (values [][]byte, end int64) {
	end = base
	rest := data
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			// The last line of a finished hour may lack a newline: take
			// it once it is a whole JSON value; a line still being
			// written is not.
			if l := bytes.TrimSpace(rest); json.Valid(l) {
				values = append(values, l)
				end += int64(len(rest))
			}
			break
		}
		line := bytes.TrimSpace(rest[:i])
		if end == 0 {
			line = bytes.TrimSpace(bytes.TrimPrefix(line, bom))
		}
		end += int64(i + 1)
		rest = rest[i+1:]
		if len(line) > 0 {
			values = append(values, line)
		}
	}
	return values, end
}

// envelope wraps records (their bytes as stored) as {"records":[...]}.
func envelope(records [][]byte) []byte {
	var env bytes.Buffer
	env.WriteString(`{"records":[`)
	for i, r := range records {
		if i > 0 {
			env.WriteByte(',')
		}
		env.Write(r)
	}
	env.WriteString("]}")
	return env.Bytes()
}

// joinHead returns the known leading bytes of a blob being resumed: head
// (its first pos.HeadLen bytes), followed by rest (its bytes from
// pos.Offset) when the two touch.
func joinHead(head, rest []byte, pos file.Position) []byte {
	if pos.HeadLen == pos.Offset {
		return append(head[:len(head):len(head)], rest...)
	}
	return head
}

// position is the checkpoint of o after offset bytes were produced;
// lead holds at least the blob's first min(offset, file.HeadLen) bytes.
func (r *Reader) position(o Object, lead []byte, offset int64, mode file.Mode, records int) file.Position {
	n := min(offset, file.HeadLen, int64(len(lead)))
	return file.Position{Offset: offset, Size: o.Size, ModTime: o.ModTime, Head: fingerprint(lead, n), HeadLen: n,
		Mode: mode, Records: records}
}

// fingerprint hashes the first n bytes of b as file.Position.Head does.
func fingerprint(b []byte, n int64) string {
	if int64(len(b)) < n {
		return ""
	}
	h, _ := file.Fingerprint(bytes.NewReader(b), n) // reading memory cannot fail
	return h
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

// Dir is the connector over a local directory: a Reader over
// DirStore{Root}, configured by the same fields.
type Dir struct {
	// Root holds the insights-logs-* containers as directories.
	Root string
	Options

	once sync.Once
	r    *Reader
}

func (d *Dir) reader() *Reader {
	d.once.Do(func() {
		d.r = &Reader{Store: DirStore{Root: d.Root}, Options: d.Options}
	})
	return d.r
}

// Name implements connector.Connector.
func (d *Dir) Name() string { return d.reader().Name() }

// Run polls Root until ctx is cancelled (see Reader.Run).
func (d *Dir) Run(ctx context.Context, out connector.Producer) error { return d.reader().Run(ctx, out) }

// Pass reads every blob once (see Reader.Pass).
func (d *Dir) Pass(ctx context.Context, out connector.Producer, cp *file.Checkpoints) (int, error) {
	return d.reader().Pass(ctx, out, cp)
}

// List returns the paths of the PT1H.json blobs under the insights-logs-*
// containers of root, in path order (so, per resource, in hour order).
func List(root string) ([]string, error) {
	objs, err := DirStore{Root: root}.List(context.Background())
	if err != nil {
		return nil, err
	}
	out := make([]string, len(objs))
	for i, o := range objs {
		out[i] = filepath.Join(root, o.Container, filepath.FromSlash(o.Name))
	}
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
	return category(container)
}

// Dir and Reader are connector.Connectors.
var (
	_ connector.Connector = (*Dir)(nil)
	_ connector.Connector = (*Reader)(nil)
)
