package enrich

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Kind names an association: a pair of entities observed together. Each
// kind is stored in both directions locally, but published once, under its
// forward key.
type Kind byte

// The association kinds. The letter is the first byte of the forward key;
// its upper-case form prefixes the reverse direction in the local store.
const (
	// KindIPDevice: the IP is (was) an address of the device. Forward
	// ip → device, reverse device → ip.
	KindIPDevice Kind = 'h'
	// KindDeviceUser: the user was active on the device (logged on, ran a
	// process). Forward device → user, reverse user → device.
	KindDeviceUser Kind = 'u'
	// KindIPUser: the user signed in or acted from the IP. Forward
	// ip → user, reverse user → ip.
	KindIPUser Kind = 's'
	// KindUserID: the directory object id belongs to the UPN. Forward
	// object id → UPN, reverse UPN → object id.
	KindUserID Kind = 'o'
)

func (k Kind) valid() bool {
	switch k {
	case KindIPDevice, KindDeviceUser, KindIPUser, KindUserID:
		return true
	}
	return false
}

// reverse is the local key prefix of the reverse direction.
func (k Kind) reverse() byte { return byte(k) - 'a' + 'A' }

func (k Kind) String() string {
	switch k {
	case KindIPDevice:
		return "ip-device"
	case KindDeviceUser:
		return "device-user"
	case KindIPUser:
		return "ip-user"
	case KindUserID:
		return "userid-upn"
	}
	return fmt.Sprintf("kind(%q)", byte(k))
}

// valueVersion is the first byte of an entities-topic value.
const valueVersion = 1

// valueLen is the length of an encoded value: version, then the last-seen
// event time as big-endian unix nanoseconds.
const valueLen = 9

// ErrMalformed means an entities-topic record is not one this build wrote:
// Follow logs and skips it.
var ErrMalformed = errors.New("enrich: malformed entities record")

// sep separates the two entities in a key. Normalized entity names (UPNs,
// host names, IPs, GUIDs) never contain it; assertions whose names do are
// dropped.
const sep = 0

// appendKey appends the key prefix + left + sep + right.
func appendKey(dst []byte, prefix byte, left, right string) []byte {
	dst = append(dst, prefix)
	dst = append(dst, left...)
	dst = append(dst, sep)
	return append(dst, right...)
}

func encodeValue(seen int64) []byte {
	v := make([]byte, valueLen)
	v[0] = valueVersion
	binary.BigEndian.PutUint64(v[1:], uint64(seen))
	return v
}

func decodeValue(v []byte) (int64, error) {
	if len(v) != valueLen || v[0] != valueVersion {
		return 0, fmt.Errorf("%w: value of %d bytes, version %d", ErrMalformed, len(v), firstByte(v))
	}
	return int64(binary.BigEndian.Uint64(v[1:])), nil
}

func firstByte(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	return int(b[0])
}

// parseKey splits a forward key (an entities-topic key) into its parts.
func parseKey(k []byte) (Kind, string, string, error) {
	if len(k) < 4 {
		return 0, "", "", fmt.Errorf("%w: key of %d bytes", ErrMalformed, len(k))
	}
	kind := Kind(k[0])
	if !kind.valid() {
		return 0, "", "", fmt.Errorf("%w: unknown kind %q", ErrMalformed, k[0])
	}
	i := bytes.IndexByte(k[1:], sep)
	if i <= 0 || i == len(k)-2 {
		return 0, "", "", fmt.Errorf("%w: key has no two entities", ErrMalformed)
	}
	right := k[i+2:]
	if bytes.IndexByte(right, sep) >= 0 {
		return 0, "", "", fmt.Errorf("%w: key has more than two entities", ErrMalformed)
	}
	return kind, string(k[1 : i+1]), string(right), nil
}
