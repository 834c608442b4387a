package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration written as a Go duration string with one
// extension: a leading whole number of days, "7d" or "1d12h", because rule
// windows and retention are naturally counted in days.
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// ParseDuration parses a Go duration string optionally starting with a
// number of days ("7d", "1d12h", "90m", "0").
func ParseDuration(s string) (Duration, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return 0, fmt.Errorf("empty duration; write e.g. 90s, 5m, 12h or 7d")
	}
	neg := false
	rest := in
	if rest[0] == '-' || rest[0] == '+' {
		neg = rest[0] == '-'
		rest = rest[1:]
	}
	var days time.Duration
	hadDays := false
	if i := strings.IndexByte(rest, 'd'); i > 0 {
		hadDays = true
		n, err := strconv.ParseUint(rest[:i], 10, 32)
		if err != nil {
			return 0, fmt.Errorf("duration %q: days must be a whole number before 'd' (e.g. 7d, 1d12h)", s)
		}
		days = time.Duration(n) * 24 * time.Hour
		rest = rest[i+1:]
	}
	var part time.Duration
	if rest != "" {
		var err error
		part, err = time.ParseDuration(rest)
		if err != nil || part < 0 || rest[0] == '-' || rest[0] == '+' {
			return 0, fmt.Errorf("duration %q: not a duration; write e.g. 90s, 5m, 12h, 7d or 1d12h", s)
		}
	} else if !hadDays {
		return 0, fmt.Errorf("duration %q: not a duration; write e.g. 90s, 5m, 12h, 7d or 1d12h", s)
	}
	d := days + part
	if d < days { // overflow
		return 0, fmt.Errorf("duration %q: too large", s)
	}
	if neg {
		d = -d
	}
	return Duration(d), nil
}

// String formats the duration the way ParseDuration reads it, using days
// when the value has a whole-day part: 168h → "7d", 36h → "1d12h".
func (d Duration) String() string {
	v := time.Duration(d)
	if v == 0 {
		return "0s"
	}
	sign := ""
	if v < 0 {
		sign, v = "-", -v
	}
	const day = 24 * time.Hour
	if v < day {
		return sign + shortDur(v)
	}
	days, rest := v/day, v%day
	s := sign + strconv.FormatInt(int64(days), 10) + "d"
	if rest != 0 {
		s += shortDur(rest)
	}
	return s
}

// shortDur drops the zero units Go prints ("5m0s" → "5m").
func shortDur(v time.Duration) string {
	s := v.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalYAML implements yaml.Unmarshaler. A bare integer is refused
// (is 300 seconds or nanoseconds?) except 0.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("expected a duration such as 5m or 7d")
	}
	return d.UnmarshalText([]byte(n.Value))
}
