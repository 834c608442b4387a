package normalize

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"

	"github.com/vigil-sec/vigil/internal/jsonscan"
)

// This file holds a small JSON scanner. It finds value boundaries (records
// inside an envelope, documents in a JSON-lines stream) and iterates an
// object's top-level members without decoding anything, so that format
// detection and envelope splitting cost one pass over the bytes and no
// allocation. Typed decoding happens later, per record, on the spans found
// here.

// skipWS skips JSON whitespace and any UTF-8 byte-order marks.
func skipWS(b []byte, i int) int {
	for i < len(b) {
		c := b[i]
		if jsonscan.IsSpace(c) {
			i++
			continue
		}
		if c == 0xEF && i+2 < len(b) && b[i+1] == 0xBB && b[i+2] == 0xBF {
			i += 3
			continue
		}
		break
	}
	return i
}

// eachMember calls fn with the raw key (without quotes, escapes left as
// they are) and the raw value span of every member of the object obj, in
// order, until fn returns false. obj must start with '{'.
func eachMember(obj []byte, fn func(key, val []byte) bool) error {
	return (*spanIndex)(nil).eachMember(obj, fn)
}

// eachMember is eachMember stepping over containers with ix (nil: by
// scanning).
func (ix *spanIndex) eachMember(obj []byte, fn func(key, val []byte) bool) error {
	if len(obj) == 0 || obj[0] != '{' {
		return errors.New("not a JSON object")
	}
	return ix.members(obj, func(key []byte, _ bool, val []byte, _ bool) (bool, error) {
		return fn(key, val), nil
	})
}

// members walks the object obj (its opening brace already checked) and
// calls fn with each member's key and value spans and whether they hold
// escapes; fn returns false to stop, or an error to fail the walk.
// Containers are stepped over with ix (nil: by scanning).
func (ix *spanIndex) members(obj []byte, fn func(key []byte, kesc bool, val []byte, vesc bool) (bool, error)) error {
	i := skipWS(obj, 1)
	if i < len(obj) && obj[i] == '}' {
		return nil
	}
	for {
		if i >= len(obj) || obj[i] != '"' {
			return fmt.Errorf("expected object key at offset %d", i)
		}
		kend, kesc, err := jsonscan.String(obj, i)
		if err != nil {
			return err
		}
		key := obj[i+1 : kend-1]
		i = skipWS(obj, kend)
		if i >= len(obj) || obj[i] != ':' {
			return fmt.Errorf("expected ':' at offset %d", i)
		}
		i = skipWS(obj, i+1)
		var vend int
		vesc := true
		if i < len(obj) && obj[i] == '"' {
			vend, vesc, err = jsonscan.String(obj, i)
		} else {
			vend, err = ix.skip(obj, i)
		}
		if err != nil {
			return err
		}
		if more, err := fn(key, kesc, obj[i:vend], vesc); !more || err != nil {
			return err
		}
		i = skipWS(obj, vend)
		if i >= len(obj) {
			return jsonscan.ErrUnexpectedEOF
		}
		switch obj[i] {
		case ',':
			i = skipWS(obj, i+1)
		case '}':
			return nil
		default:
			return fmt.Errorf("expected ',' or '}' at offset %d", i)
		}
	}
}

// eachElement calls fn with the raw span of every element of the array arr.
// A malformed element ends the iteration with an error; elements already
// reported stay reported.
func eachElement(arr []byte, fn func(elem []byte)) error {
	return (*spanIndex)(nil).eachElement(arr, fn)
}

// eachElement is eachElement stepping over containers with ix (nil: by
// scanning).
func (ix *spanIndex) eachElement(arr []byte, fn func(elem []byte)) error {
	if len(arr) == 0 || arr[0] != '[' {
		return errors.New("not a JSON array")
	}
	i := skipWS(arr, 1)
	if i < len(arr) && arr[i] == ']' {
		return nil
	}
	for {
		end, err := ix.skip(arr, i)
		if err != nil {
			return err
		}
		fn(arr[i:end])
		i = skipWS(arr, end)
		if i >= len(arr) {
			return jsonscan.ErrUnexpectedEOF
		}
		switch arr[i] {
		case ',':
			i = skipWS(arr, i+1)
		case ']':
			return nil
		default:
			return fmt.Errorf("expected ',' or ']' at offset %d", i)
		}
	}
}

// strBytes returns the contents of a JSON string span when it holds no
// escapes (the common case for keys and enum values), else nil, false.
func strBytes(v []byte) ([]byte, bool) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return nil, false
	}
	in := v[1 : len(v)-1]
	for _, c := range in {
		if c == '\\' {
			return nil, false
		}
	}
	return in, true
}

// jsonString decodes a JSON string span (with quotes) into a Go string.
// Invalid escapes are kept verbatim rather than failing: a record with an
// odd escape is still worth normalizing.
func jsonString(v []byte) string {
	if len(v) < 2 {
		return ""
	}
	in := v[1 : len(v)-1]
	esc := -1
	for i, c := range in {
		if c == '\\' {
			esc = i
			break
		}
	}
	if esc < 0 {
		return string(in)
	}
	out := make([]byte, 0, len(in))
	out = append(out, in[:esc]...)
	for i := esc; i < len(in); i++ {
		c := in[i]
		if c != '\\' || i+1 >= len(in) {
			out = append(out, c)
			continue
		}
		i++
		switch in[i] {
		case '"', '\\', '/':
			out = append(out, in[i])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, n := decodeU(in[i+1:])
			if n == 0 {
				out = append(out, '\\', 'u')
				continue
			}
			i += n
			if utf16.IsSurrogate(r) {
				if len(in) > i+2 && in[i+1] == '\\' && in[i+2] == 'u' {
					r2, n2 := decodeU(in[i+3:])
					if n2 > 0 {
						if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
							r = dec
							i += 2 + n2
						}
					}
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			out = append(out, '\\', in[i])
		}
	}
	return unsafe.String(unsafe.SliceData(out), len(out)) // out is never written again
}

// decodeU reads four hex digits; it returns the rune and 4, or 0, 0.
func decodeU(b []byte) (rune, int) {
	if len(b) < 4 {
		return 0, 0
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, 0
		}
	}
	return r, 4
}

// appendJSONString appends s as a JSON string literal.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	if !utf8.ValidString(s) {
		// Keep the output valid JSON (CSV and syslog input may be Latin-1).
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
