package config

import (
	"fmt"
	"log/slog"
)

// Redacted is what a non-empty Secret prints as.
const Redacted = "[redacted]"

// Secret is a string that never prints its value: fmt (every verb,
// including %#v and %q), JSON, YAML, text marshaling and slog all show
// [redacted]. An empty Secret prints as empty, so a dump still tells
// "not set" from "set". Call Reveal where the value is really needed.
//
// A Secret decodes from YAML and the environment like a plain string.
type Secret string

// Reveal returns the secret value. Keep the result out of logs.
func (s Secret) Reveal() string { return string(s) }

func (s Secret) shown() string {
	if s == "" {
		return ""
	}
	return Redacted
}

// String implements fmt.Stringer.
func (s Secret) String() string { return s.shown() }

// GoString implements fmt.GoStringer, so %#v does not print the value.
func (s Secret) GoString() string { return fmt.Sprintf("config.Secret(%q)", s.shown()) }

// Format implements fmt.Formatter, so no verb (%x, %q, %d...) reaches the
// underlying string.
func (s Secret) Format(f fmt.State, verb rune) {
	switch verb {
	case 'v':
		if f.Flag('#') {
			fmt.Fprint(f, s.GoString())
			return
		}
		fmt.Fprint(f, s.shown())
	case 'q':
		fmt.Fprintf(f, "%q", s.shown())
	default:
		fmt.Fprint(f, s.shown())
	}
}

// MarshalText implements encoding.TextMarshaler (used by JSON map keys,
// zerolog and many encoders).
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.shown()), nil }

// MarshalJSON implements json.Marshaler.
func (s Secret) MarshalJSON() ([]byte, error) {
	return fmt.Appendf(nil, "%q", s.shown()), nil
}

// MarshalYAML implements yaml.Marshaler.
func (s Secret) MarshalYAML() (any, error) { return s.shown(), nil }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.shown()) }
