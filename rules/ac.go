package rules

// acMatcher answers "does s contain any of these literals?" in one pass
// over s: an Aho-Corasick automaton compiled to a full DFA over byte
// classes (the bytes the literals use, plus one class for every other
// byte). It is the prefilter of a regex whose matches must contain one of
// several literals — `(?i)(vssadmin|wmic|bcdedit)…` — where the
// single-literal check has nothing to test and Go's backtracker costs
// tens of nanoseconds per input byte.
//
// With fold, literals are lower-case ASCII and the input is folded
// byte by byte; an input byte ≥ 0x80 makes contains answer true (Unicode
// case folding maps a few non-ASCII runes onto ASCII letters, e.g. the
// Kelvin sign onto k, so only the regex can decide).
//
// Hand-rolled: the Go Aho-Corasick modules on the proxy either lack ASCII
// case folding or are unmaintained, and this needs ~150 lines.
type acMatcher struct {
	class [256]uint8
	// lead marks the bytes that leave the root state: from the root, the
	// bytes up to the next lead byte are skipped in a loop without the
	// DFA's load-to-load dependency.
	lead [256]bool
	// next is the DFA, row-major: next[off+class] for the state whose
	// row starts at off (state × number of classes) is the row offset of
	// the next state, negated when that state accepts — a literal ends
	// there, or, with fold, the input held a byte ≥ 0x80 (row undecided,
	// which never leaves). One load and one sign test per input byte.
	next      []int32
	nclass    int32
	undecided int32
	// ends lists, per state, the lengths of the literals that end there
	// (through failure links too): what starts needs to turn an end
	// offset into the offsets where literals begin.
	ends [][]int32
}

// newAC builds the matcher; nil if there are no literals, an empty
// literal (everything matches), or too many states to be worth it.
func newAC(lits []string, fold bool) *acMatcher {
	if len(lits) == 0 {
		return nil
	}
	m := &acMatcher{}
	nc := 1 // class 0: any other byte
	for _, l := range lits {
		if l == "" {
			return nil
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if fold {
				if c >= 0x80 {
					return nil
				}
				c = lowerASCII(c)
			}
			if m.class[c] == 0 {
				if nc == 255 {
					return nil
				}
				m.class[c] = uint8(nc)
				nc++
			}
		}
	}
	hi := -1 // with fold, the class of bytes ≥ 0x80
	if fold {
		for c := 'A'; c <= 'Z'; c++ {
			m.class[c] = m.class[c+'a'-'A']
		}
		hi = nc
		for c := 0x80; c < 0x100; c++ {
			m.class[c] = uint8(hi)
		}
		nc++
	}
	// Trie.
	trie := [][]int32{make([]int32, nc)}
	accept := []bool{false}
	ends := [][]int32{nil}
	for _, l := range lits {
		s := int32(0)
		for i := 0; i < len(l); i++ {
			c := m.class[l[i]]
			if trie[s][c] == 0 {
				trie = append(trie, make([]int32, nc))
				accept = append(accept, false)
				ends = append(ends, nil)
				trie[s][c] = int32(len(trie) - 1)
			}
			s = trie[s][c]
		}
		accept[s] = true
		ends[s] = appendNew(ends[s], int32(len(l)))
		if len(trie) > 1<<14 {
			return nil
		}
	}
	// Failure links by BFS, folded into full DFA transitions.
	fail := make([]int32, len(trie))
	queue := make([]int32, 0, len(trie))
	for c := 0; c < nc; c++ {
		if t := trie[0][c]; t != 0 {
			queue = append(queue, t)
		}
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		accept[s] = accept[s] || accept[fail[s]]
		for _, n := range ends[fail[s]] {
			ends[s] = appendNew(ends[s], n)
		}
		for c := 0; c < nc; c++ {
			t := trie[s][c]
			if t == 0 {
				trie[s][c] = trie[fail[s]][c]
				continue
			}
			fail[t] = trie[fail[s]][c]
			queue = append(queue, t)
		}
	}
	if hi >= 0 {
		u := int32(len(trie))
		trie = append(trie, make([]int32, nc))
		accept = append(accept, true)
		ends = append(ends, nil)
		for _, row := range trie {
			row[hi] = u
		}
		for c := range trie[u] {
			trie[u][c] = u
		}
		m.undecided = u * int32(nc)
	}
	for c := range m.lead {
		m.lead[c] = trie[0][m.class[c]] != 0
	}
	m.nclass = int32(nc)
	m.next = make([]int32, 0, len(trie)*nc)
	for _, row := range trie {
		for _, t := range row {
			off := t * int32(nc)
			if accept[t] {
				off = -off // t > 0: the root never accepts
			}
			m.next = append(m.next, off)
		}
	}
	m.ends = ends
	return m
}

func appendNew(l []int32, n int32) []int32 {
	for _, x := range l {
		if x == n {
			return l
		}
	}
	return append(l, n)
}

// contains reports whether s contains one of the literals (or, with
// fold, holds a non-ASCII byte).
func (m *acMatcher) contains(s string) bool {
	next, class, lead := m.next, &m.class, &m.lead
	off := int32(0)
	for i := 0; i < len(s); i++ {
		if off == 0 {
			if i = skipToLead(lead, s, i); i == len(s) {
				return false
			}
		}
		off = next[off+int32(class[s[i]])]
		if off < 0 {
			return true
		}
	}
	return false
}

// starts appends to dst the offsets in s where one of the literals
// begins, in order of where the literals end. It gives up (ok false)
// after max offsets, and with fold on an input byte ≥ 0x80, where only
// the regex can decide.
func (m *acMatcher) starts(s string, dst []int, max int) (_ []int, ok bool) {
	next, class, lead := m.next, &m.class, &m.lead
	off := int32(0)
	for i := 0; i < len(s); i++ {
		if off == 0 {
			if i = skipToLead(lead, s, i); i == len(s) {
				break
			}
		}
		off = next[off+int32(class[s[i]])]
		if off >= 0 {
			continue
		}
		off = -off
		if off == m.undecided {
			return dst, false
		}
		for _, n := range m.ends[off/m.nclass] {
			if len(dst) == max {
				return dst, false
			}
			dst = append(dst, i+1-int(n))
		}
	}
	return dst, true
}

// skipToLead returns the offset of the first byte at or after i that
// leaves the root state (len(s) if none).
func skipToLead(lead *[256]bool, s string, i int) int {
	for i < len(s) && !lead[s[i]] {
		i++
	}
	return i
}
