package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Store is where the hourly blobs live: a local directory (DirStore) or
// an Azure storage account (AzureStore). The Reader needs only these two
// calls, so both share one reading and checkpointing logic.
type Store interface {
	// List returns the PT1H.json blobs of the insights-logs-* containers,
	// ordered by (container, name): per resource, in hour order.
	List(ctx context.Context) ([]Object, error)
	// ReadRange returns the n bytes of obj that start at off. The read is
	// of the version List returned: when the blob changed since, it fails
	// with an error wrapping ErrChanged (or returns the current bytes
	// where the store cannot tell, as a directory cannot). The caller owns
	// the returned slice.
	ReadRange(ctx context.Context, obj Object, off, n int64) ([]byte, error)
}

// ErrChanged is wrapped by Store.ReadRange when the blob is no longer the
// version that was listed (rewritten, grown or deleted meanwhile): the
// Reader leaves it for the next poll.
var ErrChanged = errors.New("blob changed since it was listed")

// Object is one listed blob.
type Object struct {
	// Key identifies the blob in the checkpoint: the absolute path of a
	// file, or the blob's URL without query (never a SAS token).
	Key string
	// Container is the storage container (the directory under the root).
	Container string
	// Name is the blob name inside the container (slash-separated).
	Name    string
	Size    int64
	ModTime time.Time
	// ETag changes on every write of an Azure blob; empty for files.
	ETag string
}

// DirStore is a directory laid out as a storage account: Root holds the
// insights-logs-* containers as directories.
type DirStore struct{ Root string }

// List implements Store.
func (s DirStore) List(ctx context.Context) ([]Object, error) {
	root, err := filepath.Abs(s.Root)
	if err != nil {
		return nil, err
	}
	containers, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	var out []Object
	for _, c := range containers {
		if !c.IsDir() || !strings.HasPrefix(c.Name(), ContainerPrefix) {
			continue
		}
		dir := filepath.Join(root, c.Name())
		err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !e.Type().IsRegular() || e.Name() != BlobName {
				return nil
			}
			st, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking
			}
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(dir, path)
			out = append(out, Object{Key: path, Container: c.Name(), Name: filepath.ToSlash(rel),
				Size: st.Size(), ModTime: st.ModTime().UTC()})
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	sortObjects(out)
	return out, nil
}

// ReadRange implements Store. A file that shrank below off+n fails with
// ErrChanged.
func (s DirStore) ReadRange(_ context.Context, obj Object, off, n int64) ([]byte, error) {
	f, err := os.Open(obj.Key)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, n)
	k, err := f.ReadAt(b, off)
	if errors.Is(err, io.EOF) && int64(k) < n {
		return nil, fmt.Errorf("%s: %w (shorter than %d bytes)", obj.Key, ErrChanged, off+n)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b, nil
}

func sortObjects(objs []Object) {
	sort.Slice(objs, func(i, j int) bool {
		if objs[i].Container != objs[j].Container {
			return objs[i].Container < objs[j].Container
		}
		return objs[i].Name < objs[j].Name
	})
}

// isHourly tells whether a blob name is an hourly diagnostic blob.
func isHourly(name string) bool {
	return name == BlobName || strings.HasSuffix(name, "/"+BlobName)
}

// category returns the source a container's blobs go to by default:
// insights-logs-<category> → <category>, lower case.
func category(container string) string {
	return strings.ToLower(strings.TrimPrefix(container, ContainerPrefix))
}

// DirStore is a Store.
var _ Store = DirStore{}
