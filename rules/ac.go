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
// case folding or are unmaintained, and this needs ~100 lines.
type acMatcher struct {
	class  [256]uint8
	nclass int
	next   []int32 // state*nclass + class -> state
	accept []bool
	fold   bool
}

// newAC builds the matcher; nil if there are no literals, an empty
// literal (everything matches), or too many states to be worth it.
func newAC(lits []string, fold bool) *acMatcher {
	if len(lits) == 0 {
		return nil
	}
	m := &acMatcher{fold: fold}
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
				m.nclass++
				if m.nclass > 254 {
					return nil
				}
				m.class[c] = uint8(m.nclass)
			}
		}
	}
	if fold {
		for c := 'A'; c <= 'Z'; c++ {
			m.class[c] = m.class[c+'a'-'A']
		}
	}
	m.nclass++ // class 0: any other byte
	nc := m.nclass
	// Trie.
	trie := [][]int32{make([]int32, nc)}
	accept := []bool{false}
	for _, l := range lits {
		s := int32(0)
		for i := 0; i < len(l); i++ {
			c := m.class[l[i]]
			if trie[s][c] == 0 {
				trie = append(trie, make([]int32, nc))
				accept = append(accept, false)
				trie[s][c] = int32(len(trie) - 1)
			}
			s = trie[s][c]
		}
		accept[s] = true
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
	m.next = make([]int32, 0, len(trie)*nc)
	for _, row := range trie {
		m.next = append(m.next, row...)
	}
	m.accept = accept
	return m
}

// contains reports whether s contains one of the literals (or, with
// fold, holds a non-ASCII byte).
func (m *acMatcher) contains(s string) bool {
	nc := int32(m.nclass)
	st := int32(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if m.fold && c >= 0x80 {
			return true
		}
		st = m.next[st*nc+int32(m.class[c])]
		if m.accept[st] {
			return true
		}
	}
	return false
}
