package file

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/rs/zerolog"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
	"golang.org/x/time/rate"

	"github.com/vigil-sec/vigil/pipeline/connector"
)

// Stdin is the path that names standard input in ReplayOptions.Paths.
const Stdin = "-"

// ReplayOptions configure Replay.
type ReplayOptions struct {
	// Source whose raw topic receives the records (required).
	Source string
	// Prefix of topic names (config.Topics.Prefix).
	Prefix string
	// Name is the connector name in headers and metrics; default "replay".
	Name string
	// Paths are files, directories (read recursively, in path order) or
	// Stdin. Files are read as JSON lines / text lines, or whole when the
	// file is one multi-line JSON document (see the package doc).
	Paths []string
	// In is read for Stdin; default os.Stdin.
	In io.Reader
	// Rate limits records per second; 0 means no limit.
	Rate float64
	// Burst is how many records may go at once under Rate; default
	// max(1, Rate/10).
	Burst int
	// BatchSize is the number of records per ProduceSync; default
	// DefaultBatchSize.
	BatchSize int
	// Checkpoint is the checkpoint file; empty for none. With it, a
	// replay that is run again resumes after what Kafka acknowledged.
	// Stdin is never checkpointed.
	Checkpoint string
	// CheckpointEvery; default DefaultCheckpointEvery.
	CheckpointEvery time.Duration
	// Progress receives a progress bar; nil for none. TerminalProgress
	// gives os.Stderr when it is a terminal.
	Progress io.Writer
	// MaxLineBytes: longer lines are skipped and counted (too_large).
	MaxLineBytes int
	// MaxDocumentBytes: a longer whole-document file fails the replay.
	MaxDocumentBytes int64
	Metrics          *connector.Metrics
	Logger           zerolog.Logger
	// Now gives the receive time stamped on records; default time.Now.
	Now func() time.Time
}

// TerminalProgress returns os.Stderr when it is a terminal, else nil, so
// that a replay piped into a log file prints no progress bar.
func TerminalProgress() io.Writer {
	if term.IsTerminal(int(os.Stderr.Fd())) {
		return os.Stderr
	}
	return nil
}

// Replay produces the records of opts.Paths to raw.<source> and returns
// how many it produced. It stops at the first error; with a checkpoint,
// running it again resumes after the last acknowledged batch. A cancelled
// ctx returns ctx.Err().
func Replay(ctx context.Context, out connector.Producer, opts ReplayOptions) (n int, err error) {
	if opts.Name == "" {
		opts.Name = "replay"
	}
	e, err := newEngine(out, opts.Source, opts.Prefix, opts.Name, opts.Rate, opts.Burst, opts.BatchSize,
		opts.MaxLineBytes, opts.MaxDocumentBytes, opts.Metrics, opts.Logger, opts.Now)
	if err != nil {
		return 0, err
	}
	if len(opts.Paths) == 0 {
		return 0, errors.New("replay: no paths")
	}
	files, total, err := expand(opts.Paths)
	if err != nil {
		return 0, err
	}
	if opts.Checkpoint != "" {
		e.cp, err = LoadCheckpoints(opts.Checkpoint)
		if err != nil {
			return 0, err
		}
		e.cpEvery = opts.CheckpointEvery
		if e.cpEvery <= 0 {
			e.cpEvery = DefaultCheckpointEvery
		}
	}
	if opts.Progress != nil {
		bar := progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(opts.Progress),
			progressbar.OptionSetDescription("replay "+opts.Source),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowCount(),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(opts.Progress) }),
		)
		e.progress = func(n int64) { _ = bar.Add64(n) }
		defer func() { _ = bar.Finish() }()
	}
	for _, f := range files {
		if f == Stdin {
			in := opts.In
			if in == nil {
				in = os.Stdin
			}
			if _, err := e.stream(ctx, bufio.NewReaderSize(in, 64<<10), 0, "", true, nil); err != nil {
				return e.n, fmt.Errorf("replay stdin: %w", err)
			}
			continue
		}
		if err := e.readFile(ctx, f, true); err != nil {
			return e.n, fmt.Errorf("replay: %w", err)
		}
	}
	return e.n, nil
}

func newEngine(out connector.Producer, source, prefix, name string, rps float64, burst, batch, maxLine int,
	maxDoc int64, m *connector.Metrics, log zerolog.Logger, now func() time.Time) (*engine, error) {
	if out == nil {
		return nil, errors.New("nil producer")
	}
	if err := connector.ValidateSource(source); err != nil {
		return nil, err
	}
	if rps < 0 {
		return nil, fmt.Errorf("rate %v is negative", rps)
	}
	e := &engine{
		out: out, stamp: connector.Stamp{Prefix: prefix, Connector: name}, source: source, name: name,
		m: m, batch: batch, maxLine: maxLine, maxDoc: maxDoc, log: log, now: now,
	}
	if e.batch <= 0 {
		e.batch = DefaultBatchSize
	}
	if e.maxLine <= 0 {
		e.maxLine = DefaultMaxLineBytes
	}
	if e.maxDoc <= 0 {
		e.maxDoc = DefaultMaxDocumentBytes
	}
	if e.now == nil {
		e.now = time.Now
	}
	if rps > 0 {
		if burst <= 0 {
			burst = max(1, int(rps/10))
		}
		e.lim = rate.NewLimiter(rate.Limit(rps), burst)
	}
	return e, nil
}

// expand lists the files of paths (directories recursively, each in path
// order) and their total size for the progress bar.
func expand(paths []string) ([]string, int64, error) {
	var files []string
	var total int64
	for _, p := range paths {
		if p == Stdin {
			files = append(files, p)
			continue
		}
		st, err := os.Stat(p)
		if err != nil {
			return nil, 0, fmt.Errorf("replay: %w", err)
		}
		if !st.IsDir() {
			files = append(files, p)
			total += st.Size()
			continue
		}
		var sub []string
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Type().IsRegular() {
				sub = append(sub, path)
				if info, err := d.Info(); err == nil {
					total += info.Size()
				}
			}
			return nil
		})
		if err != nil {
			return nil, 0, fmt.Errorf("replay: %w", err)
		}
		sort.Strings(sub)
		files = append(files, sub...)
	}
	return files, total, nil
}
