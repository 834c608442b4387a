package normalize

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The flex types below absorb the type drift of real records (FORMATS.md):
// a column that is a string in one row and a number, bool, object or null in
// the next must not cost the record. Only a timestamp that is present but
// unreadable is an error, because an event without a time cannot be
// correlated.

// fstr is a string that also accepts numbers, bools (their JSON text),
// null ("") and objects/arrays (their raw JSON text).
type fstr string

func (s *fstr) UnmarshalJSON(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	switch b[0] {
	case '"':
		*s = fstr(jsonString(b))
	case 'n':
		*s = ""
	default:
		*s = fstr(b)
	}
	return nil
}

func (s fstr) String() string { return string(s) }

// fint is an integer that also accepts numeric strings, floats, hex
// ("0x1e49a"), "" and null (0). Unreadable text reads as 0.
type fint int64

func (n *fint) UnmarshalJSON(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	var s []byte
	switch b[0] {
	case '"':
		s = bytes.TrimSpace(b[1 : len(b)-1])
	case 'n', 'f', '{', '[':
		*n = 0
		return nil
	case 't':
		*n = 1
		return nil
	default:
		s = b
	}
	*n = fint(atoi(string(s)))
	return nil
}

// atoi parses decimal, hex or float text; anything else is 0.
func atoi(s string) int64 {
	if s == "" {
		return 0
	}
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		return v
	}
	if v, err := strconv.ParseInt(s, 0, 64); err == nil {
		return v
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return int64(f)
	}
	return 0
}

// fbool accepts true/false, "true"/"TRUE"/"True", 1/0 and "1"/"0".
type fbool struct {
	Set, V bool
}

func (v *fbool) UnmarshalJSON(b []byte) error {
	s := string(bytes.Trim(b, `"`))
	switch strings.ToLower(s) {
	case "true", "1", "yes":
		*v = fbool{true, true}
	case "false", "0", "no":
		*v = fbool{true, false}
	default:
		*v = fbool{}
	}
	return nil
}

// ftime is a timestamp in any format FORMATS.md lists: RFC 3339 with 0–9
// fractional digits and any offset, "2006-01-02 15:04:05", US locale
// ("4/28/2021, 2:08:45.221 PM"), or epoch seconds/milliseconds as a number
// or numeric string. Times without a zone are taken as UTC.
type ftime struct{ time.Time }

func (t *ftime) UnmarshalJSON(b []byte) error {
	if len(b) == 0 || b[0] == 'n' {
		return nil
	}
	var s string
	if b[0] == '"' {
		s = jsonString(b)
	} else {
		s = string(b)
	}
	v, err := parseTime(s)
	if err != nil {
		return err
	}
	t.Time = v
	return nil
}

// fraw is a JSON value kept raw for a second decode, accepting the value
// itself or a string holding JSON text (Sentinel's dynamic columns).
type fraw []byte

func (r *fraw) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		// Only JSON text: the value is decoded again later.
		s := strings.TrimSpace(jsonString(b))
		if len(s) > 0 && (s[0] == '{' || s[0] == '[') && validAll([]byte(s)) {
			*r = fraw(s)
		}
		return nil
	}
	if len(b) > 0 && (b[0] == '{' || b[0] == '[') {
		*r = b // aliases the record; decoded before the record is released
	}
	return nil
}

// usLayouts are the US-locale forms of the Log Analytics CSV export, the
// storage lastModifiedTime and the Defender for Cloud activity properties.
var usLayouts = []string{
	"1/2/2006, 3:04:05.999999999 PM",
	"1/2/2006 3:04:05.999999999 PM",
	"1/2/2006, 3:04:05 PM",
	"1/2/2006 3:04:05 PM",
}

// parseTime parses every timestamp shape seen in the samples into UTC.
func parseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if len(s) >= 19 && s[4] == '-' && s[7] == '-' {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return t.UTC(), nil
		}
		// No zone, or a space instead of T: take as UTC.
		ss := s
		if ss[10] == ' ' {
			ss = ss[:10] + "T" + ss[11:]
		}
		if t, err := time.Parse("2006-01-02T15:04:05.999999999", ss); err == nil {
			return t.UTC(), nil
		}
		if t, err := time.Parse(time.RFC3339Nano, strings.Replace(ss, " ", "", 1)); err == nil {
			return t.UTC(), nil
		}
	}
	if c := s[0]; c >= '0' && c <= '9' && strings.IndexByte(s, '/') < 0 {
		if n, err := strconv.ParseFloat(s, 64); err == nil {
			return epoch(n), nil
		}
	}
	if strings.IndexByte(s, '/') > 0 {
		for _, l := range usLayouts {
			if t, err := time.Parse(l, s); err == nil {
				return t.UTC(), nil
			}
		}
	}
	if t, err := time.Parse("Jan 2 2006 15:04:05", s); err == nil { // CEF rt
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("unrecognized timestamp %q", truncate(s, 64))
}

// epoch converts epoch seconds, milliseconds or microseconds (chosen by
// magnitude) to a UTC time.
func epoch(n float64) time.Time {
	switch {
	case n > 1e17: // nanoseconds
		return time.Unix(0, int64(n)).UTC()
	case n > 1e14: // microseconds
		return time.UnixMicro(int64(n)).UTC()
	case n > 1e11: // milliseconds
		return time.UnixMilli(int64(n)).UTC()
	default:
		sec := int64(n)
		return time.Unix(sec, int64((n-float64(sec))*1e9)).UTC()
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// obj is a nested object that may also arrive as a JSON-encoded string
// (Sentinel dynamic columns, CSV exports), as null, or as some other type
// after drift; anything but an object (or a string holding one) leaves V
// zero instead of failing the record.
type obj[T any] struct{ V T }

func (o *obj[T]) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		s := strings.TrimSpace(jsonString(b))
		if len(s) == 0 || s[0] != '{' || !validAll([]byte(s)) {
			return nil
		}
		b = []byte(s)
	}
	if len(b) == 0 || b[0] != '{' {
		return nil
	}
	return unmarshal(b, &o.V)
}
