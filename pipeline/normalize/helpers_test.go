package normalize

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/pipeline/event"
)

// recv is the receive time used by tests.
var recv = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// samplesDir returns ../shared/samples relative to the repository root, or
// skips the test when the shared folder is absent (it is not part of the
// repository).
func samplesDir(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Skip("cannot locate test file")
	}
	dir := filepath.Dir(file)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("repository root not found")
		}
		dir = parent
	}
	s := filepath.Join(filepath.Dir(dir), "shared", "samples")
	if _, err := os.Stat(s); err != nil {
		t.Skipf("real samples not available at %s (../shared/samples from the repo root): %v", s, err)
	}
	return s
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// parseFile parses a file and fails on any record error.
func parseFile(t testing.TB, hint, path string) []event.Event {
	t.Helper()
	evs, errs := Parse(hint, readFile(t, path), recv)
	for _, e := range errs {
		t.Errorf("%s: %v (raw %.200q)", filepath.Base(path), e, e.Raw)
	}
	return evs
}

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

// findEvent returns the first event with the given source and action.
func findEvent(t testing.TB, evs []event.Event, source, action string) event.Event {
	t.Helper()
	for _, e := range evs {
		if e.Source == source && (action == "" || e.Action == action) {
			return e
		}
	}
	t.Fatalf("no event with source %q action %q among %d", source, action, len(evs))
	return event.Event{}
}

// check compares named values and reports every mismatch.
type check struct {
	name      string
	got, want any
}

func expect(t testing.TB, label string, cs ...check) {
	t.Helper()
	for _, c := range cs {
		if gt, ok := c.got.(time.Time); ok {
			if !gt.Equal(c.want.(time.Time)) {
				t.Errorf("%s: %s = %v, want %v", label, c.name, gt, c.want)
			}
			continue
		}
		if c.got != c.want {
			t.Errorf("%s: %s = %#v, want %#v", label, c.name, c.got, c.want)
		}
	}
}
