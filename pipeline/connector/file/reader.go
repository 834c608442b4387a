package file

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/time/rate"

	"github.com/vigil-sec/vigil/pipeline/connector"
)

// Defaults of the reading limits.
const (
	DefaultBatchSize        = 1000
	DefaultMaxLineBytes     = 16 << 20
	DefaultMaxDocumentBytes = 256 << 20
	// DefaultCheckpointEvery bounds how often the checkpoint file is
	// rewritten while a file is being read; it is always written at the
	// end of each file and on exit. A crash re-produces at most this much
	// (at-least-once).
	DefaultCheckpointEvery = time.Second
)

// engine reads files and streams into raw records for one source and
// produces them in batches, acknowledging positions in the checkpoint only
// after the batch's ProduceSync succeeded.
type engine struct {
	out      connector.Producer
	stamp    connector.Stamp
	source   string
	name     string
	m        *connector.Metrics
	lim      *rate.Limiter // nil: no limit
	batch    int
	maxLine  int
	maxDoc   int64
	cp       *Checkpoints
	cpEvery  time.Duration
	lastSave time.Time
	log      zerolog.Logger
	now      func() time.Time
	progress func(n int64) // bytes consumed; nil: none

	mode      Mode // of the input being read, set before any ack
	pending   []*kgo.Record
	pendEnd   int64     // offset after the last pending record
	pendSince time.Time // when the oldest pending record was read
	n         int       // records produced
}

// maxHold is how long a rate-limited replay keeps a record unsent to
// fill a batch.
const maxHold = 100 * time.Millisecond

// ack is called after a batch ending at offset end was acknowledged.
type ack func(end int64) error

// errWait says a tailed file ends in the middle of a record: it is read
// again when it grows.
var errWait = errors.New("incomplete record at end of file")

func (e *engine) add(ctx context.Context, value []byte, end int64, a ack) error {
	if e.lim != nil {
		r := e.lim.Reserve()
		if d := r.Delay(); d > 0 {
			// Send what is ready before a long sleep, or when it has
			// waited long, so a slow rate does not hold records back for
			// a whole batch; short sleeps keep batching.
			if d >= maxHold || e.now().Sub(e.pendSince) >= maxHold {
				if err := e.flush(ctx, a); err != nil {
					r.Cancel()
					return err
				}
			}
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				r.Cancel()
				return ctx.Err()
			case <-t.C:
			}
		}
	}
	now := e.now()
	if len(e.pending) == 0 {
		e.pendSince = now
	}
	e.pending = append(e.pending, e.stamp.Record(e.source, nil, value, now))
	e.pendEnd = end
	if len(e.pending) >= e.batch {
		return e.flush(ctx, a)
	}
	return nil
}

func (e *engine) flush(ctx context.Context, a ack) error {
	if len(e.pending) == 0 {
		return nil
	}
	if err := connector.Produce(ctx, e.out, e.m, e.name, e.pending...); err != nil {
		return err
	}
	e.n += len(e.pending)
	clear(e.pending)
	e.pending = e.pending[:0]
	if a != nil {
		return a(e.pendEnd)
	}
	return nil
}

// save writes the checkpoint file when force or when cpEvery has passed.
func (e *engine) save(force bool) error {
	if e.cp == nil {
		return nil
	}
	if !force && time.Since(e.lastSave) < e.cpEvery {
		return nil
	}
	e.lastSave = time.Now()
	return e.cp.Save()
}

// stream reads records from br, which is positioned at byte start of its
// input, and produces them. mode "" detects the mode (start must be 0).
// final says the input is complete: a last line without a newline is a
// record and a document that is not valid JSON is still sent (normalize
// sends it to the DLQ); otherwise both wait for more input (errWait).
// It returns the mode used.
func (e *engine) stream(ctx context.Context, br *bufio.Reader, start int64, mode Mode, final bool, a ack) (Mode, error) {
	pos := start
	first := start == 0
	if mode == "" {
		// Find the first non-empty line: a line that starts a JSON value
		// and ends before the value does opens a multi-line document.
		for {
			line, n, complete, tooLong, err := readLine(br, e.maxLine)
			if err != nil && err != io.EOF {
				return "", err
			}
			if n == 0 && err == io.EOF {
				if !final {
					return "", errWait
				}
				return ModeLines, nil // empty input
			}
			if !complete && !final {
				return "", errWait
			}
			t := trimLine(line, first)
			if len(t) == 0 && !tooLong {
				pos += int64(n)
				first = false
				if complete {
					continue
				}
				e.mode = ModeLines
				return ModeLines, nil // only blanks
			}
			if !tooLong && opensDocument(t) {
				e.mode = ModeDocument
				return ModeDocument, e.document(ctx, br, pos, line, final, a)
			}
			mode = ModeLines
			e.mode = mode
			pos += int64(n)
			if err := e.line(ctx, t, tooLong, n, pos, a); err != nil {
				return mode, err
			}
			first = false
			break
		}
	}
	e.mode = mode
	if mode == ModeDocument {
		return mode, e.document(ctx, br, pos, nil, final, a)
	}
	for {
		line, n, complete, tooLong, err := readLine(br, e.maxLine)
		if err != nil && err != io.EOF {
			return mode, err
		}
		if n == 0 {
			break
		}
		if !complete && !final {
			break // a line still being written: wait for its newline
		}
		pos += int64(n)
		if t := trimLine(line, first); len(t) > 0 || tooLong {
			if err := e.line(ctx, t, tooLong, n, pos, a); err != nil {
				return mode, err
			}
		} else if e.progress != nil {
			e.progress(int64(n))
		}
		first = false
		if err == io.EOF {
			break
		}
	}
	return mode, e.flush(ctx, a)
}

func (e *engine) line(ctx context.Context, t []byte, tooLong bool, n int, end int64, a ack) error {
	if e.progress != nil {
		e.progress(int64(n))
	}
	if tooLong {
		e.m.Error(e.name, connector.ReasonTooLarge)
		e.log.Warn().Str("source", e.source).Int64("offset", end).Int("max_line_bytes", e.maxLine).Msg("line over the limit skipped")
		return nil
	}
	// t aliases readLine's buffer, which is reused: copy.
	return e.add(ctx, bytes.Clone(t), end, a)
}

// document reads the rest of a whole-document input (head is what was
// already read of it) and produces it: one record, or one per element of
// a top-level array (or per document of a stream of pretty-printed
// documents). An envelope stays one record.
func (e *engine) document(ctx context.Context, br *bufio.Reader, start int64, head []byte, final bool, a ack) error {
	head = bytes.Clone(head) // it aliases br's buffer, which ReadAll reuses
	rest, err := io.ReadAll(io.LimitReader(br, e.maxDoc+1-int64(len(head))))
	if err != nil {
		return err
	}
	doc := append(head, rest...)
	size := int64(len(doc))
	if size > e.maxDoc {
		e.m.Error(e.name, connector.ReasonTooLarge)
		return fmt.Errorf("document over the limit of %d bytes", e.maxDoc)
	}
	if e.progress != nil {
		e.progress(size)
	}
	t := bytes.TrimSpace(bytes.TrimPrefix(doc, bom))
	if len(t) == 0 {
		return nil
	}
	recs, err := connector.SplitJSON(t)
	if err != nil {
		if !final {
			return errWait // still being written
		}
		e.m.Error(e.name, connector.ReasonBadJSON)
		e.log.Warn().Err(err).Str("source", e.source).Msg("document is not valid JSON; sent whole for normalize to report")
		recs = [][]byte{t}
	}
	for _, r := range recs {
		if err := e.add(ctx, r, start+size, nil); err != nil {
			return err
		}
	}
	// A document is acknowledged only whole.
	if err := e.flush(ctx, nil); err != nil {
		return err
	}
	if a != nil {
		return a(start + size)
	}
	return nil
}

// readLine reads one line, up to and including '\n'. It returns at most
// max bytes of it (tooLong when there were more; the rest is consumed and
// dropped), the number of bytes consumed, and whether the line ended with
// '\n'. The returned slice is valid until the next call.
func readLine(br *bufio.Reader, max int) (line []byte, n int, complete, tooLong bool, err error) {
	var buf []byte
	for {
		frag, err := br.ReadSlice('\n')
		n += len(frag)
		if !tooLong {
			if len(buf)+len(frag) > max+2 { // +2: the CRLF does not count
				tooLong = true
				buf = nil
			} else if buf == nil && err == nil {
				return frag, n, true, false, nil // common case: no copy
			} else {
				buf = append(buf, frag...)
			}
		}
		switch {
		case err == nil:
			return buf, n, true, tooLong, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return buf, n, false, tooLong, err
		}
	}
}

// readFile produces the records of the file at path from its checkpoint
// on and records the new position in the checkpoint after each batch.
func (e *engine) readFile(ctx context.Context, path string, final bool) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	f, err := os.Open(abs)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	var (
		start int64
		mode  Mode
	)
	if e.cp != nil {
		p, ok := e.cp.Get(abs)
		var done bool
		start, mode, done, err = resume(f, st, p, ok)
		if err != nil {
			return fmt.Errorf("%s: resume: %w", abs, err)
		}
		if done {
			if e.progress != nil {
				e.progress(st.Size())
			}
			return nil
		}
		if mode == ModeDocument {
			start = 0 // a changed document is read whole again
		}
	}
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		return err
	}
	if e.progress != nil && start > 0 {
		e.progress(start)
	}
	a := func(end int64) error {
		if e.cp == nil {
			return nil
		}
		cur, err := f.Stat()
		if err != nil {
			return err
		}
		p, err := position(f, cur, end, e.mode)
		if err != nil {
			return err
		}
		e.cp.Set(abs, p)
		return e.save(false)
	}
	br := bufio.NewReaderSize(f, 64<<10)
	_, err = e.stream(ctx, br, start, mode, final, a)
	if err != nil {
		if errors.Is(err, errWait) {
			return nil
		}
		return fmt.Errorf("%s: %w", abs, err)
	}
	return e.save(true)
}

// opensDocument tells whether line starts a JSON value that goes on past
// the line's end. A line that is complete but malformed is not: it is a
// bad JSON line, sent as it is for normalize to report.
func opensDocument(line []byte) bool {
	if line[0] != '{' && line[0] != '[' {
		return false
	}
	var v json.RawMessage
	err := json.NewDecoder(bytes.NewReader(line)).Decode(&v)
	return errors.Is(err, io.ErrUnexpectedEOF)
}
