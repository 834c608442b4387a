package normalize

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"sort"
	"unsafe"

	"github.com/vigil-sec/vigil/internal/jsonscan"
)

// validValue checks that b[i:] starts with one complete JSON value that is
// valid by RFC 8259 grammar (what encoding/json.Valid accepts: strings may
// hold invalid UTF-8, nesting is limited to maxDepth) and returns the index
// just past it. It is the one full validation pass of a document: when it
// succeeds, every span inside the document is valid JSON, so records need
// no json.Valid of their own and later scans of the same bytes may trust
// the structure. On failure, the caller falls back to the lenient,
// per-record path so that one bad record costs only itself.
func validValue(b []byte, i int) (int, error) { return validIndex(b, i, nil) }

// validIndex is validValue that also records, when ix is not nil, where
// every non-empty container of the value ends (see spanIndex).
func validIndex(b []byte, i int, ix *spanIndex) (int, error) {
	var small [32]byte
	stack := small[:0] // open containers: '{' or '['
	var smallOpen [32]int
	open := smallOpen[:0] // ix: the index in ix.starts of each open container
	if ix != nil {
		ix.reset(b)
	}
	for {
		i = skipJSONWS(b, i)
		if i >= len(b) {
			return 0, jsonscan.ErrUnexpectedEOF
		}
		// One value starts at b[i].
		switch c := b[i]; {
		case c == '{':
			if len(stack) >= maxDepth {
				return 0, errTooDeep
			}
			start := i
			i = skipJSONWS(b, i+1)
			if i < len(b) && b[i] == '}' {
				i++
				break
			}
			stack = append(stack, '{')
			if ix != nil {
				open = append(open, ix.open(start))
			}
			var err error
			if i, err = validKey(b, i); err != nil {
				return 0, err
			}
			continue
		case c == '[':
			if len(stack) >= maxDepth {
				return 0, errTooDeep
			}
			start := i
			i = skipJSONWS(b, i+1)
			if i < len(b) && b[i] == ']' {
				i++
				break
			}
			stack = append(stack, '[')
			if ix != nil {
				open = append(open, ix.open(start))
			}
			continue
		case c == '"':
			end, err := validString(b, i)
			if err != nil {
				return 0, err
			}
			i = end
		case c == '-' || (c >= '0' && c <= '9'):
			end, err := validNumber(b, i)
			if err != nil {
				return 0, err
			}
			i = end
		case c == 't':
			if !hasLiteral(b, i, "true") {
				return 0, syntaxErr(b, i)
			}
			i += 4
		case c == 'f':
			if !hasLiteral(b, i, "false") {
				return 0, syntaxErr(b, i)
			}
			i += 5
		case c == 'n':
			if !hasLiteral(b, i, "null") {
				return 0, syntaxErr(b, i)
			}
			i += 4
		default:
			return 0, syntaxErr(b, i)
		}
		// A value ended at i: close containers or move to the next member.
		for {
			if len(stack) == 0 {
				return i, nil
			}
			i = skipJSONWS(b, i)
			if i >= len(b) {
				return 0, jsonscan.ErrUnexpectedEOF
			}
			top := stack[len(stack)-1]
			c := b[i]
			if c == ',' {
				i++
				if top == '{' {
					var err error
					if i, err = validKey(b, skipJSONWS(b, i)); err != nil {
						return 0, err
					}
				}
				break
			}
			if (top == '{' && c == '}') || (top == '[' && c == ']') {
				stack = stack[:len(stack)-1]
				i++
				if ix != nil {
					ix.ends[open[len(open)-1]] = i
					open = open[:len(open)-1]
				}
				continue
			}
			return 0, syntaxErr(b, i)
		}
	}
}

// validAll reports whether b is exactly one valid JSON value (surrounded
// by whitespace), the question encoding/json.Valid answers.
func validAll(b []byte) bool {
	end, err := validValue(b, 0)
	return err == nil && skipJSONWS(b, end) == len(b)
}

// maxDepth is encoding/json's nesting limit; deeper documents are invalid
// for it, so they are for us.
const maxDepth = 10000

var errTooDeep = errors.New("JSON nested too deeply")

func syntaxErr(b []byte, i int) error {
	if i >= len(b) {
		return jsonscan.ErrUnexpectedEOF
	}
	return fmt.Errorf("invalid character %q at offset %d", b[i], i)
}

// validKey checks `"key" :` at b[i] and returns the index past the colon.
func validKey(b []byte, i int) (int, error) {
	if i >= len(b) || b[i] != '"' {
		return 0, syntaxErr(b, i)
	}
	end, err := validString(b, i)
	if err != nil {
		return 0, err
	}
	i = skipJSONWS(b, end)
	if i >= len(b) || b[i] != ':' {
		return 0, syntaxErr(b, i)
	}
	return i + 1, nil
}

// skipJSONWS skips JSON whitespace only (a BOM inside a document is an
// error, as for encoding/json).
func skipJSONWS(b []byte, i int) int {
	for i < len(b) && jsonscan.IsSpace(b[i]) {
		i++
	}
	return i
}

func hasLiteral(b []byte, i int, lit string) bool {
	return len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit
}

// validString is scanString plus escape checking.
func validString(b []byte, i int) (int, error) {
	j := i + 1
	for {
		for j+8 <= len(b) {
			if m := jsonscan.Special(binary.LittleEndian.Uint64(b[j:])); m != 0 {
				// The lowest flagged byte is a real hit.
				j += bits.TrailingZeros64(m) >> 3
				break
			}
			j += 8
		}
		if j >= len(b) {
			return 0, jsonscan.ErrUnexpectedEOF
		}
		switch c := b[j]; {
		case c == '"':
			return j + 1, nil
		case c == '\\':
			if j+1 >= len(b) {
				return 0, jsonscan.ErrUnexpectedEOF
			}
			switch b[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j += 2
			case 'u':
				if len(b)-j < 6 {
					return 0, jsonscan.ErrUnexpectedEOF
				}
				for _, h := range b[j+2 : j+6] {
					if !isHex(h) {
						return 0, fmt.Errorf("invalid \\u escape at offset %d", j)
					}
				}
				j += 6
			default:
				return 0, fmt.Errorf("invalid escape %q at offset %d", b[j+1], j)
			}
		case c < 0x20:
			return 0, fmt.Errorf("control character in string at offset %d", j)
		default:
			j++
		}
	}
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// validNumber checks the JSON number at b[i] (jsonscan.Number).
func validNumber(b []byte, i int) (int, error) {
	end, ok := jsonscan.Number(b, i)
	if !ok {
		return 0, fmt.Errorf("invalid number at offset %d", i)
	}
	return end, nil
}

// spanIndex records, for one validated document, the offset just past the
// end of every non-empty object and array, in order of their opening byte.
// The scans that follow validation (envelope members, records, a record's
// top-level members, the typed decode) use it to step over a container in
// one lookup instead of re-reading its bytes: after validation, each byte
// of a record is read about once more, by the decode, rather than at
// every level of nesting.
type spanIndex struct {
	base   uintptr // address of the document's first byte
	n      int     // document length
	starts []int   // offsets of the opening bytes, increasing
	ends   []int   // offset just past each container
	cur    int     // next lookup guess: scans mostly move forward
}

func (ix *spanIndex) reset(doc []byte) {
	ix.starts, ix.ends, ix.cur, ix.n = ix.starts[:0], ix.ends[:0], 0, len(doc)
	ix.base = 0
	if len(doc) > 0 {
		ix.base = uintptr(unsafe.Pointer(&doc[0]))
	}
}

// open records a container opening at offset i and returns its slot.
func (ix *spanIndex) open(i int) int {
	ix.starts = append(ix.starts, i)
	ix.ends = append(ix.ends, 0)
	return len(ix.starts) - 1
}

// end returns the index in b just past the container opening at b[i], or
// -1 when b[i] is not a recorded container of the indexed document.
func (ix *spanIndex) end(b []byte, i int) int {
	if ix == nil || len(ix.starts) == 0 {
		return -1
	}
	addr := uintptr(unsafe.Pointer(&b[i]))
	if addr < ix.base || addr-ix.base >= uintptr(ix.n) {
		return -1 // not in the document (a decoded string, a built row)
	}
	pos := int(addr - ix.base)
	k := ix.cur
	if k >= len(ix.starts) || ix.starts[k] != pos {
		k = sort.SearchInts(ix.starts, pos)
		if k >= len(ix.starts) || ix.starts[k] != pos {
			return -1
		}
	}
	ix.cur = k + 1
	e := i + ix.ends[k] - pos
	if e > len(b) {
		return -1
	}
	return e
}

// skip returns the index just past the value at b[i]: from the index for
// a recorded container, else by scanning.
func (ix *spanIndex) skip(b []byte, i int) (int, error) {
	if i < len(b) && (b[i] == '{' || b[i] == '[') {
		if e := ix.end(b, i); e >= 0 {
			return e, nil
		}
	}
	return jsonscan.Value(b, i)
}
