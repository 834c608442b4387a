package connector

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// ErrNoRecords is returned by SplitJSON for a body without any JSON value.
var ErrNoRecords = errors.New("no records in body")

// SplitJSON cuts a body into raw records: the values of a JSON array or
// of a sequence of JSON values (JSON lines), arrays split into their
// elements, each record a JSON object with its bytes as sent (a leading
// BOM and the whitespace between values dropped). An {"records":[...]}
// envelope is one object, so it stays whole. The returned slices may
// alias body: do not modify body while they are in use.
func SplitJSON(body []byte) ([][]byte, error) {
	body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))
	dec := json.NewDecoder(bytes.NewReader(body))
	var out [][]byte
	for n := 1; ; n++ {
		start := dec.InputOffset()
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("value %d (at byte %d): %w", n, start, err)
		}
		// Alias body rather than keep the decoder's copy: the value's
		// bytes end at the decoder's offset, after leading whitespace.
		end := dec.InputOffset()
		v := bytes.TrimLeft(body[start:end], " \t\r\n")
		switch v[0] {
		case '{':
			out = append(out, v)
		case '[':
			var elems []json.RawMessage
			if err := json.Unmarshal(v, &elems); err != nil {
				return nil, fmt.Errorf("value %d: %w", n, err)
			}
			for i, e := range elems {
				if len(e) == 0 || e[0] != '{' {
					return nil, fmt.Errorf("value %d, element %d: a record must be a JSON object, got %.20s", n, i, e)
				}
				out = append(out, e)
			}
		default:
			return nil, fmt.Errorf("value %d: a record must be a JSON object or an array of objects, got %.20s", n, v)
		}
	}
	if len(out) == 0 {
		return nil, ErrNoRecords
	}
	return out, nil
}
