package file

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/rs/zerolog"

	"github.com/vigil-sec/vigil/pipeline/connector"
)

// DefaultPoll is how often File looks for new data when Poll is 0.
const DefaultPoll = time.Second

// File is the connector that tails a file, or every file under a
// directory, producing each complete line (or each complete document, see
// the package doc) to raw.<source>. Its checkpoint records per file how
// far Kafka acknowledged, with the file's size, modification time and
// leading bytes, so that a restart resumes where it stopped, a file that
// grew is read from where it was, and a file that was replaced (rotated,
// rewritten) is read from its start.
//
// A line is produced only once its newline is written; a document only
// once it parses. A document file that changes later is produced again
// whole.
type File struct {
	// Path is a file or a directory (walked recursively).
	Path string
	// Pattern filters file base names under a directory (filepath.Match);
	// empty means every file.
	Pattern string
	// Source whose raw topic receives the records (required).
	Source string
	// Prefix of topic names (config.Topics.Prefix).
	Prefix string
	// ConnectorName is the connector name; default "file".
	ConnectorName string
	// Checkpoint is the checkpoint file; empty keeps positions in memory
	// only (a restart reads everything again).
	Checkpoint string
	// CheckpointEvery; default DefaultCheckpointEvery.
	CheckpointEvery time.Duration
	// Poll is the interval between looks for new data; default DefaultPoll.
	Poll time.Duration
	// Rate limits records per second; 0 means no limit.
	Rate      float64
	Burst     int
	BatchSize int
	// MaxLineBytes and MaxDocumentBytes: see ReplayOptions.
	MaxLineBytes     int
	MaxDocumentBytes int64
	Metrics          *connector.Metrics
	Logger           zerolog.Logger
	Now              func() time.Time
}

// Name implements connector.Connector.
func (c *File) Name() string {
	if c.ConnectorName == "" {
		return "file"
	}
	return c.ConnectorName
}

// Run tails until ctx is cancelled, then saves the checkpoint and returns
// nil. A file that cannot be read is logged and counted (reason read) and
// tried again at the next poll; a failed produce or checkpoint write ends
// Run with the error (nothing was acknowledged past it).
func (c *File) Run(ctx context.Context, out connector.Producer) error {
	e, err := newEngine(out, c.Source, c.Prefix, c.Name(), c.Rate, c.Burst, c.BatchSize,
		c.MaxLineBytes, c.MaxDocumentBytes, c.Metrics, c.Logger, c.Now)
	if err != nil {
		return fmt.Errorf("file connector %s: %w", c.Name(), err)
	}
	if e.cp, err = LoadCheckpoints(c.Checkpoint); err != nil {
		return fmt.Errorf("file connector %s: %w", c.Name(), err)
	}
	e.cpEvery = c.CheckpointEvery
	if e.cpEvery <= 0 {
		e.cpEvery = DefaultCheckpointEvery
	}
	poll := c.Poll
	if poll <= 0 {
		poll = DefaultPoll
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		if err := c.pass(ctx, e); err != nil {
			if ctx.Err() != nil {
				break
			}
			_ = e.cp.Save() // keep what was acknowledged before the failure
			return fmt.Errorf("file connector %s: %w", c.Name(), err)
		}
		select {
		case <-ctx.Done():
		case <-t.C:
			continue
		}
		break
	}
	if err := e.cp.Save(); err != nil {
		return fmt.Errorf("file connector %s: %w", c.Name(), err)
	}
	return nil
}

// pass reads what is new in every file once.
func (c *File) pass(ctx context.Context, e *engine) error {
	files, err := c.list()
	if err != nil {
		e.m.Error(e.name, connector.ReasonRead)
		c.Logger.Warn().Err(err).Str("path", c.Path).Msg("file connector: listing failed; retrying")
		return nil
	}
	for _, f := range files {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		err := e.readFile(ctx, f, false)
		var pe *fs.PathError
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.As(err, &pe):
			// Vanished between listing and opening, unreadable...: the
			// next poll sees it again.
			e.m.Error(e.name, connector.ReasonRead)
			c.Logger.Warn().Err(err).Msg("file connector: read failed; retrying")
		default:
			return err
		}
	}
	return nil
}

func (c *File) list() ([]string, error) {
	st, err := os.Stat(c.Path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return []string{c.Path}, nil
	}
	var out []string
	err = filepath.WalkDir(c.Path, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		if c.Pattern != "" {
			if ok, _ := filepath.Match(c.Pattern, d.Name()); !ok {
				return nil
			}
		}
		out = append(out, path)
		return nil
	})
	sort.Strings(out)
	return out, err
}

// File is a connector.Connector.
var _ connector.Connector = (*File)(nil)
