package file

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// headLen is how many leading bytes of a file identify it. A file whose
// first bytes changed was replaced (rotation, rewrite) and is read again
// from the start; a file that only grew keeps its position.
const headLen = 1024

// Mode is how a file is cut into records.
type Mode string

// The modes a file can be read in.
const (
	// ModeLines: one record per non-empty line (JSON lines, syslog, CEF).
	ModeLines Mode = "lines"
	// ModeDocument: the file is one JSON document (a pretty-printed
	// envelope); it is one record, or one per element if it is an array.
	ModeDocument Mode = "document"
)

// Position is how far a file has been produced and acknowledged.
type Position struct {
	// Offset is the number of bytes of the file whose records Kafka
	// acknowledged; reading resumes there.
	Offset int64 `json:"offset"`
	// Size and ModTime are the file's at the time of the checkpoint: when
	// both are unchanged and Offset == Size the file is skipped unread.
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mtime"`
	// Head is the SHA-256 of the file's first HeadLen bytes (at most
	// headLen, at most Offset): it tells a grown file from a replaced one.
	Head    string `json:"head"`
	HeadLen int64  `json:"head_len"`
	Mode    Mode   `json:"mode"`
	// Records counts the records of a growing document produced so far
	// (used by the blob connector, whose documents grow in place).
	Records int `json:"records,omitempty"`
}

// Checkpoints is the checkpoint file: the acknowledged position of each
// file, by absolute path. It is safe for concurrent use.
type Checkpoints struct {
	path  string
	mu    sync.Mutex
	files map[string]Position
	dirty bool
}

type checkpointFile struct {
	Version int                 `json:"version"`
	Files   map[string]Position `json:"files"`
}

// LoadCheckpoints reads the checkpoint file at path; a missing file is an
// empty checkpoint. An empty path gives checkpoints kept in memory only.
func LoadCheckpoints(path string) (*Checkpoints, error) {
	c := &Checkpoints{path: path, files: map[string]Position{}}
	if path == "" {
		return c, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	var cf checkpointFile
	if err := json.Unmarshal(b, &cf); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w (delete it to start over)", path, err)
	}
	if cf.Files != nil {
		c.files = cf.Files
	}
	return c, nil
}

// Get returns the position recorded for path (an absolute path).
func (c *Checkpoints) Get(path string) (Position, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.files[path]
	return p, ok
}

// Set records the position of path; Save writes it out.
func (c *Checkpoints) Set(path string, p Position) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.files[path] = p
	c.dirty = true
}

// Save writes the checkpoint file if something changed, atomically (temp
// file, fsync, rename) so a crash leaves the old or the new one whole.
func (c *Checkpoints) Save() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.dirty || c.path == "" {
		return nil
	}
	b, err := json.MarshalIndent(checkpointFile{Version: 1, Files: c.files}, "", "  ")
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	dir := filepath.Dir(c.path)
	tmp, err := os.CreateTemp(dir, filepath.Base(c.path)+".tmp*")
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", c.path, err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("checkpoint %s: %w", c.path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("checkpoint %s: %w", c.path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("checkpoint %s: %w", c.path, err)
	}
	if err := os.Rename(tmp.Name(), c.path); err != nil {
		return fmt.Errorf("checkpoint %s: %w", c.path, err)
	}
	c.dirty = false
	return nil
}

// Fingerprint hashes the first n bytes of f, as Position.Head does.
func Fingerprint(f io.ReaderAt, n int64) (string, error) { return head(f, n) }

// HeadLen is how many leading bytes of a file Position.Head covers at
// most.
const HeadLen = headLen

// head hashes the first n bytes of f.
func head(f io.ReaderAt, n int64) (string, error) {
	if n <= 0 {
		return "", nil
	}
	b := make([]byte, n)
	if _, err := f.ReadAt(b, 0); err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// position builds the checkpoint of f after offset bytes were acknowledged.
func position(f *os.File, st fs.FileInfo, offset int64, mode Mode) (Position, error) {
	n := min(offset, headLen)
	h, err := head(f, n)
	if err != nil {
		return Position{}, err
	}
	return Position{Offset: offset, Size: st.Size(), ModTime: st.ModTime().UTC(), Head: h, HeadLen: n, Mode: mode}, nil
}

// resume tells where to start reading f given its recorded position: the
// recorded offset if f is the same file (same leading bytes, not shorter
// than the offset), else 0. done says the file is unchanged since it was
// fully produced, so it need not be opened further.
func resume(f *os.File, st fs.FileInfo, p Position, ok bool) (offset int64, mode Mode, done bool, err error) {
	if !ok {
		return 0, "", false, nil
	}
	if st.Size() == p.Size && st.ModTime().Equal(p.ModTime) && p.Offset == p.Size {
		return p.Offset, p.Mode, true, nil
	}
	if st.Size() < p.Offset || st.Size() < p.HeadLen {
		return 0, "", false, nil // truncated or replaced by a shorter file
	}
	h, err := head(f, p.HeadLen)
	if err != nil {
		return 0, "", false, err
	}
	if h != p.Head {
		return 0, "", false, nil // replaced
	}
	return p.Offset, p.Mode, false, nil
}

var bom = []byte("\xef\xbb\xbf")

// trimLine drops the line terminator (LF or CRLF), a BOM at the start of
// the file, and surrounding blanks.
func trimLine(line []byte, first bool) []byte {
	if first {
		line = bytes.TrimPrefix(line, bom)
	}
	return bytes.TrimSpace(line)
}
