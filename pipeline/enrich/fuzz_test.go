package enrich

import (
	"bytes"
	"testing"
)

// FuzzApply feeds arbitrary entities records to Apply: it never panics,
// and a record it accepts has a key that parses back to itself.
func FuzzApply(f *testing.F) {
	f.Add(appendKey(nil, byte(KindIPDevice), ip17, ws17), encodeValue(t0.UnixNano()))
	f.Add(appendKey(nil, byte(KindUserID), aliceOID, alice), encodeValue(1))
	f.Add(appendKey(nil, byte(KindDeviceUser), ws17, alice), []byte(nil))
	f.Add([]byte("s\x00\x00"), []byte{1, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte("h1\x002\x003"), []byte{2})
	tb := openTable(f, Options{})
	f.Fuzz(func(t *testing.T, key, value []byte) {
		if err := tb.Apply(key, value); err != nil {
			return
		}
		kind, l, r, err := parseKey(key)
		if err != nil {
			t.Fatalf("Apply accepted key %q that does not parse: %v", key, err)
		}
		if back := appendKey(nil, byte(kind), l, r); !bytes.Equal(back, key) {
			t.Fatalf("key %q parsed to %q", key, back)
		}
	})
}
