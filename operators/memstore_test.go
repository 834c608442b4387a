package operators

import (
	"bytes"
	"testing"
)

// TestMemStoreReusesBuffersSafely: a rewritten key reuses its buffer, yet
// what Get returned earlier and what the caller passed to Set never change
// behind anyone's back; a nil value reads as absent, an empty one as
// present.
func TestMemStoreReusesBuffersSafely(t *testing.T) {
	s := NewMemStore()
	in := []byte("first value")
	if err := s.Set([]byte("k"), in); err != nil {
		t.Fatal(err)
	}
	in[0] = 'X' // the caller reuses its buffer
	got, _ := s.Get([]byte("k"))
	if string(got) != "first value" {
		t.Fatalf("stored value follows the caller's buffer: %q", got)
	}
	p := s.m["k"]
	_ = s.Set([]byte("k"), []byte("second"))
	if string(got) != "first value" {
		t.Fatalf("an earlier Get changed with a rewrite: %q", got)
	}
	if s.m["k"] != p || string(s.value("k")) != "second" {
		t.Fatalf("rewrite did not reuse the entry: %q", s.value("k"))
	}
	_ = s.Set([]byte("k"), []byte("a longer third value than before"))
	var scanned []byte
	_ = s.Scan([]byte("k"), func(_, v []byte) error { scanned = bytes.Clone(v); return nil })
	if string(scanned) != "a longer third value than before" {
		t.Fatalf("scan after a growing rewrite: %q", scanned)
	}
	_ = s.Set([]byte("nil"), nil)
	_ = s.Set([]byte("empty"), []byte{})
	if v, _ := s.Get([]byte("nil")); v != nil {
		t.Fatal("a nil value reads as present")
	}
	if v, _ := s.Get([]byte("empty")); v == nil {
		t.Fatal("an empty value reads as absent")
	}
}

// value returns the stored bytes of key (tests: not a copy), or nil.
func (s *MemStore) value(key string) []byte {
	if p := s.m[key]; p != nil {
		return *p
	}
	return nil
}

// put stores v under key as is (tests).
func (s *MemStore) put(key string, v []byte) { s.m[key] = &v }
