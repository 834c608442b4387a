// Package jsonscan finds the boundaries of JSON values without decoding
// them: the end of a string (eight bytes at a time), of a number, of any
// value, and whitespace. The normalize stage splits envelopes and walks
// records with it; the rule engine's FieldView finds the members rules
// read.
package jsonscan

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
)

// ErrUnexpectedEOF reports a value cut short.
var ErrUnexpectedEOF = errors.New("unexpected end of JSON input")

// IsSpace reports JSON whitespace.
func IsSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\r' || c == '\t' }

// StringEnd is String without the escape report.
func StringEnd(b []byte, i int) (int, error) {
	end, _, err := String(b, i)
	return end, err
}

// SkipSpace returns the index of the first byte at or after i that is not
// JSON whitespace.
func SkipSpace(b []byte, i int) int {
	for i < len(b) && IsSpace(b[i]) {
		i++
	}
	return i
}

// String returns the index just past the closing quote of the string
// starting at b[i] == '"', and whether the string holds
// an escape (if not, its bytes are its value). It tests eight bytes at a
// time for a quote, a backslash or a control character (SWAR), so long
// command lines and paths cost about one load per word rather than three
// compares per byte.
func String(b []byte, i int) (int, bool, error) {
	j := i + 1
	esc := false
	for {
		for j+8 <= len(b) {
			if m := Special(binary.LittleEndian.Uint64(b[j:])); m != 0 {
				// The lowest flagged byte is a real hit.
				j += bits.TrailingZeros64(m) >> 3
				break
			}
			j += 8
		}
		if j >= len(b) {
			return 0, esc, ErrUnexpectedEOF
		}
		switch c := b[j]; {
		case c == '"':
			return j + 1, esc, nil
		case c == '\\':
			esc = true
			j += 2
		case c < 0x20:
			return 0, esc, fmt.Errorf("control character in string at offset %d", j)
		default:
			j++
		}
	}
}

// SWAR constants: every byte 0x01, every byte 0x80.
const (
	swarOnes = 0x0101010101010101
	swarHigh = 0x8080808080808080
)

// Special is non-zero when one of the eight bytes of w is '"', '\\'
// or below 0x20 (the bytes that end or interrupt a JSON string's plain
// run). It may flag extra bytes above a real hit (borrows), never miss
// one, and never flag a byte below the first hit: the lowest set bit
// marks the first special byte.
func Special(w uint64) uint64 {
	q := w ^ (swarOnes * '"')
	bs := w ^ (swarOnes * '\\')
	return ((q-swarOnes)&^q | (bs-swarOnes)&^bs | (w-swarOnes*0x20)&^w) & swarHigh
}

// Number returns the index just past the JSON number that starts at b[i]
// — -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? — and false when no
// number of that grammar starts there.
func Number(b []byte, i int) (int, bool) {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && isDigit(b[i]):
		i = digits(b, i)
	default:
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		if i++; i >= len(b) || !isDigit(b[i]) {
			return 0, false
		}
		i = digits(b, i)
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return 0, false
		}
		i = digits(b, i)
	}
	return i, true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func digits(b []byte, i int) int {
	for i < len(b) && isDigit(b[i]) {
		i++
	}
	return i
}

// isDelim reports bytes that end a JSON literal or number.
func isDelim(c byte) bool {
	return c == ',' || c == '}' || c == ']' || c == ':' || IsSpace(c) || c == '"'
}

// Value returns the index just past the JSON value starting at b[i]. It
// checks bracket balance and string termination, not full grammar; the
// typed decoder that reads the span later rejects what this lets through.
func Value(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, ErrUnexpectedEOF
	}
	switch c := b[i]; c {
	case '"':
		return StringEnd(b, i)
	case '{', '[':
		var small [64]byte
		stack := small[:0]
		for j := i; j < len(b); j++ {
			switch c := b[j]; c {
			case '"':
				end, err := StringEnd(b, j)
				if err != nil {
					return 0, err
				}
				j = end - 1
			case '{', '[':
				stack = append(stack, c)
			case '}', ']':
				open := byte('{')
				if c == ']' {
					open = '['
				}
				if len(stack) == 0 || stack[len(stack)-1] != open {
					return 0, fmt.Errorf("unbalanced %q at offset %d", c, j)
				}
				stack = stack[:len(stack)-1]
				if len(stack) == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, ErrUnexpectedEOF
	case '}', ']', ',', ':':
		return 0, fmt.Errorf("unexpected %q at offset %d", c, i)
	default:
		j := i
		for j < len(b) && !isDelim(b[j]) {
			j++
		}
		return j, nil
	}
}
