package state

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"testing"
)

func TestStoreStagesUntilCommit(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.Offset(); ok {
		t.Fatal("new store reports an offset")
	}
	must(t, s.Set([]byte("a/1"), []byte("one")))
	must(t, s.Set([]byte("a/2"), []byte("two")))
	must(t, s.Set([]byte("b/1"), []byte("other")))
	v, err := s.Get([]byte("a/1"))
	if err != nil || string(v) != "one" {
		t.Fatalf("staged read: %q %v", v, err)
	}
	var scanned []string
	must(t, s.Scan([]byte("a/"), func(k, v []byte) error {
		scanned = append(scanned, fmt.Sprintf("%s=%s", k, v))
		return nil
	}))
	if fmt.Sprint(scanned) != "[a/1=one a/2=two]" {
		t.Fatalf("scan = %v", scanned)
	}
	must(t, s.Delete([]byte("a/2")))
	p := s.Pending()
	if len(p) != 3 || string(p[1].Key) != "a/2" || p[1].Value != nil || string(p[0].Value) != "one" {
		t.Fatalf("pending = %+v", p)
	}
	must(t, s.Commit(42))
	if len(s.Pending()) != 0 {
		t.Fatal("pending not cleared by commit")
	}

	// Staged then aborted writes vanish.
	must(t, s.Set([]byte("a/1"), []byte("changed")))
	s.Abort()
	v, _ = s.Get([]byte("a/1"))
	if string(v) != "one" {
		t.Fatalf("abort kept a staged write: %q", v)
	}
	must(t, s.Set([]byte("a/3"), []byte("uncommitted")))
	must(t, s.Close())

	// Reopen: committed state and offset survive, uncommitted writes do not.
	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	off, ok, err := s.Offset()
	if err != nil || !ok || off != 42 {
		t.Fatalf("offset = %d %v %v", off, ok, err)
	}
	if v, _ := s.Get([]byte("a/3")); v != nil {
		t.Fatalf("uncommitted write survived close: %q", v)
	}
	if v, _ := s.Get([]byte("a/2")); v != nil {
		t.Fatalf("deleted key present: %q", v)
	}

	// Wipe then restore from changelog records.
	must(t, s.Wipe())
	if _, ok, _ := s.Offset(); ok {
		t.Fatal("wipe kept the offset")
	}
	if v, _ := s.Get([]byte("a/1")); v != nil {
		t.Fatal("wipe kept state")
	}
	must(t, s.Restore([]byte("x"), []byte("1")))
	must(t, s.Restore([]byte("y"), []byte("2")))
	must(t, s.Restore([]byte("x"), nil))
	if v, _ := s.Get([]byte("y")); string(v) != "2" {
		t.Fatalf("restored value = %q", v)
	}
	if v, _ := s.Get([]byte("x")); v != nil {
		t.Fatal("restored tombstone ignored")
	}
	if len(s.Pending()) != 0 {
		t.Fatal("restore must not create changelog records")
	}
}

func TestPrefixEnd(t *testing.T) {
	for _, c := range []struct{ in, want string }{{"a", "b"}, {"a\xff", "b"}, {"\xff\xff", ""}} {
		if got := string(prefixEnd([]byte(c.in))); got != c.want {
			t.Errorf("prefixEnd(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestReopenAfterCloseKeepsCommits: without a write-ahead log the store
// must flush on Close, or a clean restart would lose its last commits and
// pay a full restore from the changelog.
func TestReopenAfterCloseKeepsCommits(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Set([]byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(42); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	off, ok, err := s.Offset()
	if err != nil || !ok || off != 42 {
		t.Fatalf("offset after reopen: %d %v %v", off, ok, err)
	}
	if v, err := s.Get([]byte("k")); err != nil || string(v) != "v" {
		t.Fatalf("value after reopen: %q %v", v, err)
	}
}

// TestStagedReadsMatchModel: Get and Scan see staged writes and deletes
// over the committed state, Abort drops them and Commit keeps them, over
// random operations checked against a plain map after every step.
func TestStagedReadsMatchModel(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	committed, staged := map[string]string{}, map[string]*string{}
	view := func() map[string]string {
		m := map[string]string{}
		for k, v := range committed {
			m[k] = v
		}
		for k, v := range staged {
			if v == nil {
				delete(m, k)
			} else {
				m[k] = *v
			}
		}
		return m
	}
	rnd := uint64(3)
	next := func(n int) int {
		rnd ^= rnd << 13
		rnd ^= rnd >> 7
		rnd ^= rnd << 17
		return int(rnd % uint64(n))
	}
	prefixes := []string{"a/", "b/", "ab/"}
	for i := 0; i < 3000; i++ {
		k := fmt.Sprintf("%s%d", prefixes[next(3)], next(30))
		switch op := next(20); {
		case op < 9:
			v := fmt.Sprintf("v%d", i)
			must(t, s.Set([]byte(k), []byte(v)))
			staged[k] = &v
		case op < 15:
			must(t, s.Delete([]byte(k)))
			staged[k] = nil
		case op < 17:
			must(t, s.Commit(int64(i)))
			committed = view()
			staged = map[string]*string{}
		case op < 18:
			s.Abort()
			staged = map[string]*string{}
		}
		want := view()
		got, err := s.Get([]byte(k))
		if _, present := want[k]; err != nil || (got == nil) == present || string(got) != want[k] {
			t.Fatalf("step %d: Get(%s) = %q %v, want %q", i, k, got, err, want[k])
		}
		p := prefixes[next(3)]
		var scanned, expected []string
		must(t, s.Scan([]byte(p), func(k, v []byte) error {
			scanned = append(scanned, string(k)+"="+string(v))
			return nil
		}))
		var keys []string
		for k := range want {
			if strings.HasPrefix(k, p) {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys) // Scan's order: byte order of the keys
		for _, k := range keys {
			expected = append(expected, k+"="+want[k])
		}
		if strings.Join(scanned, " ") != strings.Join(expected, " ") {
			t.Fatalf("step %d: Scan(%s) = %v, want %v", i, p, scanned, expected)
		}
	}
}

// TestStagedValuesAreCopies: Set copies the value (the engine reuses its
// buffer for the next one), a staged value cannot be grown into the next
// one, and the values Pending hands to changelog records stay as they
// were after Commit and after later writes.
func TestStagedValuesAreCopies(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	buf := []byte("first")
	must(t, s.Set([]byte("k/1"), buf))
	copy(buf, "XXXXX") // the caller's buffer, reused
	must(t, s.Set([]byte("k/2"), buf))
	big := bytes.Repeat([]byte("b"), 100<<10)
	must(t, s.Set([]byte("k/3"), big))
	p := s.Pending()
	if len(p) != 3 || string(p[0].Value) != "first" || string(p[1].Value) != "XXXXX" || !bytes.Equal(p[2].Value, big) {
		t.Fatalf("pending = %q", p[:min(len(p), 2)])
	}
	_ = append(p[0].Value, "-grown"...) // must not write into k/2's value
	if v, _ := s.Get([]byte("k/2")); string(v) != "XXXXX" {
		t.Fatalf("k/2 = %q after appending to k/1's value", v)
	}
	must(t, s.Commit(1))
	for i := 0; i < 100; i++ {
		must(t, s.Set([]byte(fmt.Sprintf("n/%d", i)), bytes.Repeat([]byte{'z'}, 1000)))
	}
	if string(p[0].Value) != "first" || string(p[1].Value) != "XXXXX" || !bytes.Equal(p[2].Value, big) {
		t.Fatal("a value handed out by Pending changed after Commit")
	}
	for k, want := range map[string]string{"k/1": "first", "k/2": "XXXXX"} {
		if v, _ := s.Get([]byte(k)); string(v) != want {
			t.Fatalf("committed %s = %q, want %q", k, v, want)
		}
	}
}
