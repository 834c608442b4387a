package connector

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// ErrNoRecords is returned by SplitJSON for a body without any JSON value.
var ErrNoRecords = errors.New("no records in body")

// SplitJSON cuts a body into raw records: the values of a JSON array or
// of a sequence of JSON values (JSON lines), arrays split into their
// elements, each record a JSON object with its bytes as sent (a leading
// BOM and the whitespace between values dropped). An {"records":[...]}
// envelope is one object, so it stays whole. The returned slices alias
// body: do not modify body while they are in use.
//
// It finds where each object ends with a small scanner (strings and
// nesting only) and validates each object with json.Valid, which is
// several times faster than decoding into json.RawMessage and allocates
// nothing per record.
func SplitJSON(body []byte) ([][]byte, error) {
	body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))
	var out [][]byte
	i := 0
	for n := 1; ; n++ {
		i = skipSpace(body, i)
		if i == len(body) {
			break
		}
		switch body[i] {
		case '{':
			end, err := object(body, i)
			if err != nil {
				return nil, fmt.Errorf("value %d (at byte %d): %w", n, i, err)
			}
			out = append(out, body[i:end])
			i = end
		case '[':
			start := i
			i = skipSpace(body, i+1)
			if i < len(body) && body[i] == ']' {
				i++
				continue
			}
			for elem := 0; ; elem++ {
				if i == len(body) {
					return nil, fmt.Errorf("value %d (at byte %d): unexpected end of JSON input", n, start)
				}
				if body[i] != '{' {
					return nil, fmt.Errorf("value %d, element %d: a record must be a JSON object, got %.20q", n, elem, body[i:])
				}
				end, err := object(body, i)
				if err != nil {
					return nil, fmt.Errorf("value %d, element %d (at byte %d): %w", n, elem, i, err)
				}
				out = append(out, body[i:end])
				i = skipSpace(body, end)
				if i == len(body) {
					return nil, fmt.Errorf("value %d (at byte %d): unexpected end of JSON input", n, start)
				}
				if body[i] == ']' {
					i++
					break
				}
				if body[i] != ',' {
					return nil, fmt.Errorf("value %d (at byte %d): invalid character %q after array element", n, i, body[i])
				}
				i = skipSpace(body, i+1)
			}
		default:
			return nil, fmt.Errorf("value %d: a record must be a JSON object or an array of objects, got %.20q", n, body[i:])
		}
	}
	if len(out) == 0 {
		return nil, ErrNoRecords
	}
	return out, nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// object returns the end of the JSON object starting at b[i] == '{',
// checked with json.Valid.
func object(b []byte, i int) (int, error) {
	depth := 0
	for j := i; j < len(b); j++ {
		switch b[j] {
		case '"':
			// Skip the string, honouring escapes.
			for j++; j < len(b) && b[j] != '"'; j++ {
				if b[j] == '\\' {
					j++
				}
			}
			if j >= len(b) {
				return 0, errors.New("unexpected end of JSON input in a string")
			}
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				if !json.Valid(b[i : j+1]) {
					var v json.RawMessage
					return 0, json.Unmarshal(b[i:j+1], &v) // says why
				}
				return j + 1, nil
			}
		}
	}
	return 0, errors.New("unexpected end of JSON input")
}
