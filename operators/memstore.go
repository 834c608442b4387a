package operators

import (
	"bytes"
	"sort"
	"strings"
)

// MemStore is a map-backed Store for tests, `vigil rules test`, `vigil
// detect` and one-shot runs without Kafka. It is not safe for concurrent
// use. A key rewritten (a busy state, every batch) reuses its value's
// buffer instead of allocating a copy each time.
type MemStore struct {
	m map[string]*[]byte
}

// NewMemStore returns an empty store.
func NewMemStore() *MemStore { return &MemStore{m: map[string]*[]byte{}} }

// Get returns a copy of the value, or (nil, nil).
func (s *MemStore) Get(key []byte) ([]byte, error) {
	p, ok := s.m[string(key)]
	if !ok {
		return nil, nil
	}
	return bytes.Clone(*p), nil
}

// Set stores a copy of value.
func (s *MemStore) Set(key, value []byte) error {
	if p, ok := s.m[string(key)]; ok && value != nil {
		*p = append((*p)[:0], value...)
		return nil
	}
	v := bytes.Clone(value)
	s.m[string(key)] = &v
	return nil
}

// Delete removes key.
func (s *MemStore) Delete(key []byte) error {
	delete(s.m, string(key))
	return nil
}

// Scan calls fn for keys with prefix, in key order.
func (s *MemStore) Scan(prefix []byte, fn func(key, value []byte) error) error {
	var keys []string
	p := string(prefix)
	for k := range s.m {
		if strings.HasPrefix(k, p) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var kb []byte // fn's key: valid only during fn, so one buffer serves all
	for _, k := range keys {
		kb = append(kb[:0], k...)
		if err := fn(kb, *s.m[k]); err != nil {
			return err
		}
	}
	return nil
}

// Len returns the number of keys.
func (s *MemStore) Len() int { return len(s.m) }

// Size returns the total bytes of keys and values.
func (s *MemStore) Size() int {
	n := 0
	for k, v := range s.m {
		n += len(k) + len(*v)
	}
	return n
}
