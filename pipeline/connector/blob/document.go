package blob

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// errIncomplete: the bytes end before the document does (caught while
// Azure or a sync tool writes it). The blob is read again next poll.
var errIncomplete = errors.New("document incomplete")

// parseDocument returns the records of a {"records":[...]} document, each
// as its bytes in data, and the offset in data after each.
func parseDocument(data []byte) (records [][]byte, ends []int64, err error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, nil, fmt.Errorf("not a JSON object")
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return nil, nil, err
		}
		if key != "records" {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return nil, nil, err
			}
			continue
		}
		if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
			return nil, nil, fmt.Errorf("records is not an array")
		}
		for dec.More() {
			start := dec.InputOffset()
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return nil, nil, err
			}
			end := dec.InputOffset()
			rec := bytes.TrimLeft(data[start:end], " \t\r\n,")
			records = append(records, rec)
			ends = append(ends, end)
		}
		if _, err := dec.Token(); err != nil { // ]
			return nil, nil, err
		}
	}
	if _, err := dec.Token(); err != nil { // }
		return nil, nil, err
	}
	return records, ends, nil
}

// parseTail parses what follows the last produced record of a growing
// {"records":[...]} document: zero or more `, <record>`, then `]`, then
// `}`, with JSON whitespace anywhere between. It returns the new records,
// each as its bytes in tail, and the offset in tail after each. It fails
// with errIncomplete when tail ends early, and with another error when
// tail is not such a continuation (the document was rewritten
// differently: the caller parses it whole).
func parseTail(tail []byte) (records [][]byte, ends []int64, err error) {
	i := skipSpace(tail, 0)
	for {
		if i == len(tail) {
			return nil, nil, errIncomplete
		}
		if tail[i] == ']' {
			break
		}
		if tail[i] != ',' {
			return nil, nil, fmt.Errorf("offset %d: want ',' or ']', found %q", i, tail[i])
		}
		i = skipSpace(tail, i+1)
		dec := json.NewDecoder(bytes.NewReader(tail[i:]))
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, nil, errIncomplete
			}
			return nil, nil, fmt.Errorf("offset %d: %w", i, err)
		}
		end := i + int(dec.InputOffset())
		records = append(records, tail[i:end])
		ends = append(ends, int64(end))
		i = skipSpace(tail, end)
	}
	i = skipSpace(tail, i+1)
	if i == len(tail) {
		return nil, nil, errIncomplete
	}
	if tail[i] != '}' {
		return nil, nil, fmt.Errorf("offset %d: want '}' after the records, found %q", i, tail[i])
	}
	if i = skipSpace(tail, i+1); i != len(tail) {
		return nil, nil, fmt.Errorf("offset %d: data after the document", i)
	}
	return records, ends, nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}
