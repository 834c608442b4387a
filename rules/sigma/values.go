package sigma

import (
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf16"
)

// part is one piece of a Sigma string: a literal, or a wildcard ('*' any
// run of characters, '?' one character).
type part struct {
	lit  string
	wild byte
}

// sstr is a Sigma string value split into literals and wildcards.
type sstr []part

// parseSStr splits a Sigma value the way pySigma does: `*` and `?` are
// wildcards; a backslash escapes `*`, `?` and a backslash; any other
// backslash is a literal (so `C:\Windows\` needs no doubling).
func parseSStr(s string) sstr {
	var out sstr
	var b strings.Builder
	flush := func() {
		if b.Len() > 0 {
			out = append(out, part{lit: b.String()})
			b.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\\':
			if i+1 < len(s) && (s[i+1] == '*' || s[i+1] == '?' || s[i+1] == '\\') {
				b.WriteByte(s[i+1])
				i++
				continue
			}
			b.WriteByte(c)
		case '*', '?':
			flush()
			out = append(out, part{wild: c})
		default:
			b.WriteByte(c)
		}
	}
	flush()
	return out
}

func lit(s string) sstr {
	if s == "" {
		return sstr{}
	}
	return sstr{{lit: s}}
}

func (s sstr) hasWild() bool {
	for _, p := range s {
		if p.wild != 0 {
			return true
		}
	}
	return false
}

// plain concatenates the literals (callers check hasWild first).
func (s sstr) plain() string {
	var b strings.Builder
	for _, p := range s {
		b.WriteString(p.lit)
	}
	return b.String()
}

func (s sstr) startsStar() bool { return len(s) > 0 && s[0].wild == '*' }
func (s sstr) endsStar() bool   { return len(s) > 0 && s[len(s)-1].wild == '*' }

// wrap adds a leading and/or trailing '*' (|contains, |startswith, |endswith).
func (s sstr) wrap(lead, trail bool) sstr {
	out := append(sstr(nil), s...)
	if lead && !out.startsStar() {
		out = append(sstr{{wild: '*'}}, out...)
	}
	if trail && !out.endsStar() {
		out = append(out, part{wild: '*'})
	}
	return out
}

// shape classifies a value for rendering.
type shape int

const (
	shapeExact    shape = iota // no wildcard
	shapeContains              // *lit*
	shapePrefix                // lit*
	shapeSuffix                // *lit
	shapeAny                   // only '*': present and not empty
	shapeGlob                  // anything else: regex
)

// classify returns the shape and the literal of the simple shapes.
func (s sstr) classify() (shape, string) {
	if !s.hasWild() {
		return shapeExact, s.plain()
	}
	allStar := true
	for _, p := range s {
		if p.wild != '*' {
			allStar = false
		}
	}
	if allStar {
		return shapeAny, ""
	}
	inner := s
	lead, trail := s.startsStar(), s.endsStar()
	if lead {
		inner = inner[1:]
	}
	if trail && len(inner) > 0 {
		inner = inner[:len(inner)-1]
	}
	if inner.hasWild() {
		return shapeGlob, ""
	}
	l := inner.plain()
	switch {
	case lead && trail:
		return shapeContains, l
	case lead:
		return shapeSuffix, l
	case trail:
		return shapePrefix, l
	}
	return shapeGlob, ""
}

// regex returns an anchored RE2 pattern equivalent to the glob.
func (s sstr) regex(cased bool) string {
	var b strings.Builder
	if cased {
		b.WriteString("(?s)")
	} else {
		b.WriteString("(?is)")
	}
	// A leading or trailing '*' is what an unanchored match does anyway.
	lead, trail := s.startsStar(), s.endsStar()
	if lead {
		s = s[1:]
	} else {
		b.WriteString("^")
	}
	if trail && len(s) > 0 {
		s = s[:len(s)-1]
	}
	for _, p := range s {
		switch p.wild {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(p.lit))
		}
	}
	if !trail {
		b.WriteString("$")
	}
	return b.String()
}

// needPlain is for transformations that work on bytes: a wildcard cannot
// be encoded.
func needPlain(v sstr, mod string) (string, error) {
	if v.hasWild() {
		return "", fmt.Errorf("modifier |%s on a value with wildcards: %w", mod, ErrUnsupported)
	}
	return v.plain(), nil
}

// encodeUTF16 implements |wide / |utf16le / |utf16be / |utf16 (LE with BOM).
func encodeUTF16(s, mod string) string {
	u := utf16.Encode([]rune(s))
	var b strings.Builder
	if mod == "utf16" {
		b.WriteString("\xff\xfe")
	}
	for _, c := range u {
		if mod == "utf16be" {
			b.WriteByte(byte(c >> 8))
			b.WriteByte(byte(c))
		} else {
			b.WriteByte(byte(c))
			b.WriteByte(byte(c >> 8))
		}
	}
	return b.String()
}

// base64Offsets implements |base64offset as pySigma does: the value
// encoded at the three possible alignments inside a longer base64 text,
// with the characters that depend on the unknown neighbours cut off.
func base64Offsets(s string) []string {
	start := [3]int{0, 2, 3}
	end := [3]int{0, 3, 2} // chars cut from the end, by (len+i)%3
	var out []string
	seen := map[string]bool{}
	for i := 0; i < 3; i++ {
		enc := base64.StdEncoding.EncodeToString([]byte(strings.Repeat(" ", i) + s))
		e := len(enc) - end[(len(s)+i)%3]
		if start[i] >= e {
			continue
		}
		v := enc[start[i]:e]
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

var dashVariants = []string{"-", "/", "\u2013", "\u2014", "\u2015"}

// maxWindash bounds the expansion of |windash (5^n variants for n switches).
const maxWindash = 625

// windash expands every '-' or '/' that starts a command-line switch (no
// word character before it, one after it) into the five dash variants
// Windows accepts.
func windash(v sstr) ([]sstr, error) {
	out := []sstr{nil}
	for _, p := range v {
		if p.wild != 0 {
			for i := range out {
				out[i] = append(out[i], p)
			}
			continue
		}
		// split the literal at switch dashes
		var pieces []string
		var dashes int
		last := 0
		for i := 0; i < len(p.lit); i++ {
			c := p.lit[i]
			if c != '-' && c != '/' {
				continue
			}
			prevWord := i > 0 && isWord(p.lit[i-1])
			nextWord := i+1 < len(p.lit) && isWord(p.lit[i+1])
			if !prevWord && nextWord {
				pieces = append(pieces, p.lit[last:i])
				last = i + 1
				dashes++
			}
		}
		pieces = append(pieces, p.lit[last:])
		if dashes == 0 {
			for i := range out {
				out[i] = append(out[i], p)
			}
			continue
		}
		n := len(out)
		for d := 0; d < dashes && n <= maxWindash; d++ {
			n *= len(dashVariants)
		}
		if n > maxWindash {
			return nil, fmt.Errorf("|windash would expand to %d variants (limit %d): %w", n, maxWindash, ErrUnsupported)
		}
		var next []sstr
		for _, prefix := range out {
			combos := []string{pieces[0]}
			for k := 1; k < len(pieces); k++ {
				var nc []string
				for _, c := range combos {
					for _, dv := range dashVariants {
						nc = append(nc, c+dv+pieces[k])
					}
				}
				combos = nc
			}
			for _, c := range combos {
				next = append(next, append(append(sstr(nil), prefix...), part{lit: c}))
			}
		}
		out = next
	}
	return out, nil
}

func isWord(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}
