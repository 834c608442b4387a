package rules

import (
	"fmt"
	"net/netip"
	"regexp"
	"regexp/syntax"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/expr-lang/expr"
)

// funcs holds what the helper functions close over. It is immutable after
// LoadDir except for the caches of non-constant regex patterns and nets,
// which are safe for concurrent use, so one compiled Set serves every
// partition worker at once.
type funcs struct {
	lookups *Lookups
	// staticRe and staticNets hold the constant patterns and nets found
	// at compile time. They are written only while the set compiles (one
	// goroutine) and read-only once it is returned, so lookups need no
	// synchronisation: a plain map is several times cheaper than sync.Map.
	staticRe   map[string]*fastRegex
	staticNets map[string]netip.Prefix
	regexes    sync.Map // pattern -> *fastRegex
	cidrs      sync.Map // net string -> netip.Prefix (or error)
}

// fastRegex is a compiled regex with a prefilter: literals one of which
// every match contains. If the input contains none (case-folded when the
// regex folds), the regex cannot match and is not run. Go's regexp costs
// microseconds; the literal check costs nanoseconds and rejects almost
// every event. One literal is checked with a substring search; several
// (an alternation) with one Aho-Corasick pass (ac.go).
type fastRegex struct {
	re      *regexp.Regexp
	literal string // lower-case when fold
	fold    bool
	ac      *acMatcher

	// When every match begins with one of a few literals (heads), the
	// regex is tried only where those occur. Unanchored, Go's regexp
	// tries the pattern at every offset of the input — a case-insensitive
	// alternation gives it no literal prefix to skip to — which on a
	// kilobyte of audit-log JSON costs tens of microseconds a call.
	// anchored (the pattern behind ^) runs at offset 0; after (behind ^
	// and any one rune) runs from the byte before every other offset, so
	// that \b or (?m)^ at the head sees the byte it sees in the whole
	// input. A lone UTF-8 continuation byte reads as U+FFFD there: neither
	// a word byte nor a newline, like the non-ASCII rune it ends.
	heads    *acMatcher
	anchored *regexp.Regexp
	after    *regexp.Regexp
}

// maxHeads bounds the offsets tried with the anchored regex; an input
// with more occurrences goes to the unanchored regex, which stays linear
// in the input whatever it holds.
const maxHeads = 16

// headBudget bounds the bytes the anchored runs may read, in passes over
// the input (see fromHeads).
const headBudget = 4

// minLiteral is the shortest literal worth a prefilter: a one-byte check
// ("." in a file-name regex) rejects almost nothing.
const minLiteral = 2

func (f *funcs) regex(pattern string) (*fastRegex, error) {
	if fr := f.staticRe[pattern]; fr != nil {
		return fr, nil
	}
	if v, ok := f.regexes.Load(pattern); ok {
		return v.(*fastRegex), nil
	}
	fr, err := compileFastRegex(pattern)
	if err != nil {
		return nil, err
	}
	v, _ := f.regexes.LoadOrStore(pattern, fr)
	return v.(*fastRegex), nil
}

// precompileRegex compiles a constant pattern at load time into the
// lock-free table.
func (f *funcs) precompileRegex(pattern string) error {
	fr, err := compileFastRegex(pattern)
	if err != nil {
		return err
	}
	if f.staticRe == nil {
		f.staticRe = map[string]*fastRegex{}
	}
	f.staticRe[pattern] = fr
	return nil
}

func compileFastRegex(pattern string) (*fastRegex, error) {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("regex %q: %w", pattern, err)
	}
	fr := &fastRegex{re: re}
	if tree, err := syntax.Parse(pattern, syntax.Perl); err == nil {
		tree = tree.Simplify()
		lits, fold := requiredLiterals(tree)
		if fold {
			for i, l := range lits {
				lits[i] = strings.ToLower(l)
			}
		}
		switch {
		case len(lits) == 1:
			fr.literal, fr.fold = lits[0], fold
		case len(lits) > 1:
			fr.ac = newAC(lits, fold)
		}
		if heads, fold := headLiterals(tree); len(heads) > 0 && len(heads) <= 256 && shortest(heads) >= minLiteral {
			if fold {
				for i, l := range heads {
					heads[i] = strings.ToLower(l)
				}
			}
			// The group keeps the pattern's own flags inside it, so ^
			// stays "start of text" whatever (?m) the pattern sets.
			a, err1 := regexp.Compile(`^(?:` + pattern + `)`)
			b, err2 := regexp.Compile(`^(?s:.)(?:` + pattern + `)`)
			if err1 == nil && err2 == nil {
				fr.heads, fr.anchored, fr.after = newAC(heads, fold), a, b
			}
		}
	}
	return fr, nil
}

// headLiterals returns literals one of which every match of re begins
// with (nil if it finds none), and whether they compare case-
// insensitively. Empty-width assertions before the literal (\b, ^,
// (?m)^) are passed over: they look at the byte before the match, which
// fastRegex.match keeps in front of the offset it runs from.
func headLiterals(re *syntax.Regexp) ([]string, bool) {
	switch re.Op {
	case syntax.OpCapture, syntax.OpPlus:
		return headLiterals(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return headLiterals(re.Sub[0])
		}
	case syntax.OpLiteral:
		return literalOf(re)
	case syntax.OpConcat:
		for _, sub := range re.Sub {
			switch sub.Op {
			case syntax.OpWordBoundary, syntax.OpNoWordBoundary, syntax.OpBeginLine, syntax.OpBeginText, syntax.OpEmptyMatch:
				continue
			}
			return headLiterals(sub)
		}
	case syntax.OpAlternate:
		return unionOf(re.Sub, headLiterals)
	}
	return nil, false
}

func (fr *fastRegex) match(s string) bool {
	if fr.literal != "" {
		if fr.fold {
			// Unicode folds ſ onto s and the Kelvin sign onto k: on
			// non-ASCII input only the regex can decide.
			if isASCII(s) && !containsFold(s, fr.literal) {
				return false
			}
		} else if !strings.Contains(s, fr.literal) {
			return false
		}
	}
	if fr.heads != nil {
		// Finding the heads is the pass the prefilter would make.
		if ok, decided := fr.fromHeads(s); decided {
			return ok
		}
	}
	if fr.ac != nil && !fr.ac.contains(s) {
		return false
	}
	return fr.re.MatchString(s)
}

// fromHeads runs the regex from each offset of s where a head literal
// begins; decided is false when s has more than maxHeads of them or,
// under fold, a non-ASCII byte.
func (fr *fastRegex) fromHeads(s string) (ok, decided bool) {
	var buf [maxHeads]int
	at, decided := fr.heads.starts(s, buf[:0], maxHeads)
	if !decided {
		return false, false
	}
	// An anchored run can read to the end of s: past headBudget times
	// one pass in all, the single unanchored run is the cheaper bound
	// (a crafted command line with many heads early in it).
	work := 0
	for _, i := range at {
		work += len(s) - i
	}
	if work > headBudget*len(s) {
		return false, false
	}
	for _, i := range at {
		if i == 0 && fr.anchored.MatchString(s) || i > 0 && fr.after.MatchString(s[i-1:]) {
			return true, true
		}
	}
	return false, true
}

// requiredLiterals returns literals one of which every match of re must
// contain (nil if it finds none worth checking), and whether they are
// compared case-insensitively. It looks through captures, repetitions of
// at least one, concatenations (taking the sub-expression with the best
// set: longest shortest literal, then fewest literals) and alternations
// (the union of every branch's set; a branch without one spoils it).
func requiredLiterals(re *syntax.Regexp) ([]string, bool) {
	lits, fold := literalSet(re)
	for _, l := range lits {
		if len(l) < minLiteral {
			return nil, false
		}
	}
	if len(lits) > 256 {
		return nil, false
	}
	return lits, fold
}

func literalSet(re *syntax.Regexp) ([]string, bool) {
	switch re.Op {
	case syntax.OpCapture:
		return literalSet(re.Sub[0])
	case syntax.OpLiteral:
		return literalOf(re)
	case syntax.OpPlus:
		return literalSet(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return literalSet(re.Sub[0])
		}
	case syntax.OpConcat:
		var best []string
		bestFold := false
		for _, sub := range re.Sub {
			l, f := literalSet(sub)
			if better(l, best) {
				best, bestFold = l, f
			}
		}
		return best, bestFold
	case syntax.OpAlternate:
		return unionOf(re.Sub, literalSet)
	}
	return nil, false
}

// unionOf is the literal set of an alternation: every branch's set, or
// none when a branch has none. A folded check of a case-sensitive
// literal accepts more, never less: still a correct prefilter.
func unionOf(subs []*syntax.Regexp, set func(*syntax.Regexp) ([]string, bool)) ([]string, bool) {
	var all []string
	fold := false
	for _, sub := range subs {
		l, f := set(sub)
		if len(l) == 0 {
			return nil, false
		}
		all = append(all, l...)
		fold = fold || f
	}
	return all, fold
}

// literalOf is the one-literal set of an OpLiteral node (none for a
// case-folded non-ASCII literal: Unicode folding is the regex's to do).
func literalOf(re *syntax.Regexp) ([]string, bool) {
	fold := re.Flags&syntax.FoldCase != 0
	if fold && !isASCII(string(re.Rune)) {
		return nil, false
	}
	return []string{string(re.Rune)}, fold
}

// better prefers the set whose shortest literal is longer, then the
// smaller set.
func better(a, b []string) bool {
	if len(a) == 0 {
		return false
	}
	if len(b) == 0 {
		return true
	}
	ma, mb := shortest(a), shortest(b)
	if ma != mb {
		return ma > mb
	}
	return len(a) < len(b)
}

func shortest(l []string) int {
	m := len(l[0])
	for _, s := range l[1:] {
		m = min(m, len(s))
	}
	return m
}

func (f *funcs) prefix(s string) (netip.Prefix, error) {
	if p, ok := f.staticNets[s]; ok {
		return p, nil
	}
	if v, ok := f.cidrs.Load(s); ok {
		if p, ok := v.(netip.Prefix); ok {
			return p, nil
		}
		return netip.Prefix{}, v.(error)
	}
	p, err := parsePrefix(s)
	if err != nil {
		f.cidrs.Store(s, err)
		return netip.Prefix{}, err
	}
	f.cidrs.Store(s, p)
	return p, nil
}

// precompilePrefix parses a constant net at load time into the lock-free
// table (see funcs.staticNets).
func (f *funcs) precompilePrefix(s string) error {
	p, err := parsePrefix(s)
	if err != nil {
		return err
	}
	if f.staticNets == nil {
		f.staticNets = map[string]netip.Prefix{}
	}
	f.staticNets[s] = p
	return nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		if a, aerr := netip.ParseAddr(strings.TrimSpace(s)); aerr == nil {
			p, err = a.Prefix(a.BitLen())
		}
	}
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("cidr %q: %w", s, err)
	}
	return p.Masked(), nil
}

// containsFold reports whether s contains lowerSub (already lower-case),
// ignoring case, without allocating when s is ASCII.
func containsFold(s, lowerSub string) bool {
	n := len(lowerSub)
	if n == 0 {
		return true
	}
	if !isASCII(s) || !isASCII(lowerSub) {
		return strings.Contains(strings.ToLower(s), lowerSub)
	}
	first := lowerSub[0]
	for i := 0; i+n <= len(s); i++ {
		if lowerASCII(s[i]) != first {
			continue
		}
		if equalFoldASCII(s[i:i+n], lowerSub) {
			return true
		}
	}
	return false
}

func hasPrefixFold(s, lowerP string) bool {
	if len(s) < len(lowerP) {
		return false
	}
	if isASCII(s) && isASCII(lowerP) {
		return equalFoldASCII(s[:len(lowerP)], lowerP)
	}
	return strings.HasPrefix(strings.ToLower(s), lowerP)
}

func hasSuffixFold(s, lowerP string) bool {
	if len(s) < len(lowerP) {
		return false
	}
	if isASCII(s) && isASCII(lowerP) {
		return equalFoldASCII(s[len(s)-len(lowerP):], lowerP)
	}
	return strings.HasSuffix(strings.ToLower(s), lowerP)
}

func equalFoldASCII(s, lower string) bool {
	for i := 0; i < len(lower); i++ {
		if lowerASCII(s[i]) != lower[i] {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// lowerConst lower-cases a pattern argument; literal arguments repeat on
// every call, so small results are cached.
func lowerConst(s string) string {
	if isASCII(s) {
		for i := 0; i < len(s); i++ {
			if 'A' <= s[i] && s[i] <= 'Z' {
				return strings.ToLower(s)
			}
		}
		return s
	}
	return strings.ToLower(s)
}

func str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return ""
	case fmt.Stringer:
		return x.String()
	}
	return fmt.Sprint(v)
}

func strList(v any) []string {
	switch x := v.(type) {
	case []string:
		return x
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			out = append(out, str(e))
		}
		return out
	case nil:
		return nil
	}
	return []string{str(v)}
}

func splitUPN(s string) (user, domain string) {
	s = strings.ToLower(strings.TrimSpace(s))
	if u, d, ok := strings.Cut(s, "@"); ok {
		return u, d
	}
	if d, u, ok := strings.Cut(s, `\`); ok {
		return u, d
	}
	return s, ""
}

var (
	cgnat   = netip.MustParsePrefix("100.64.0.0/10")
	docNets = []netip.Prefix{
		netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("198.51.100.0/24"),
		netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8::/32"),
	}
)

// parseAddr reads an IP address the way the helpers do: surrounding
// space ignored, an IPv4-mapped IPv6 address as IPv4.
func parseAddr(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	return a.Unmap(), err == nil
}

func isPrivate(s string) bool {
	a, ok := parseAddr(s)
	return ok && privateAddr(a)
}

func privateAddr(a netip.Addr) bool {
	return a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() || cgnat.Contains(a)
}

func isPublic(s string) bool {
	a, ok := parseAddr(s)
	return ok && publicAddr(a)
}

func publicAddr(a netip.Addr) bool {
	if a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsMulticast() || a.IsUnspecified() || a.IsInterfaceLocalMulticast() || cgnat.Contains(a) {
		return false
	}
	for _, p := range docNets {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// FuncNames lists the helper functions Vigil adds to expr-lang.
var FuncNames = []string{
	"icontains", "istartswith", "iendswith", "iequals", "icontains_any", "iequals_any",
	"regex", "upn_user", "upn_domain", "cidr", "in_cidrs", "is_private", "is_public",
	"watchlist", "watchlist_field", "ti_ip", "ti_domain", "ti_url", "ti_hash", "ti",
}

// options returns the expr options that define Vigil's helper functions.
func (f *funcs) options() []expr.Option {
	b := func(v bool) (any, error) { return v, nil }
	return []expr.Option{
		expr.Function("icontains", func(p ...any) (any, error) {
			return b(containsFold(str(p[0]), lowerConst(str(p[1]))))
		}, new(func(string, string) bool)),
		expr.Function("istartswith", func(p ...any) (any, error) {
			return b(hasPrefixFold(str(p[0]), lowerConst(str(p[1]))))
		}, new(func(string, string) bool)),
		expr.Function("iendswith", func(p ...any) (any, error) {
			return b(hasSuffixFold(str(p[0]), lowerConst(str(p[1]))))
		}, new(func(string, string) bool)),
		expr.Function("iequals", func(p ...any) (any, error) {
			return b(strings.EqualFold(str(p[0]), str(p[1])))
		}, new(func(string, string) bool)),
		expr.Function("icontains_any", func(p ...any) (any, error) {
			s := str(p[0])
			for _, sub := range strList(p[1]) {
				if containsFold(s, lowerConst(sub)) {
					return true, nil
				}
			}
			return false, nil
		}, new(func(string, []string) bool), new(func(string, []any) bool)),
		expr.Function("iequals_any", func(p ...any) (any, error) {
			s := str(p[0])
			for _, o := range strList(p[1]) {
				if strings.EqualFold(s, o) {
					return true, nil
				}
			}
			return false, nil
		}, new(func(string, []string) bool), new(func(string, []any) bool)),
		expr.Function("regex", func(p ...any) (any, error) {
			re, err := f.regex(str(p[1]))
			if err != nil {
				return nil, err
			}
			return re.match(str(p[0])), nil
		}, new(func(string, string) bool)),
		expr.Function("upn_user", func(p ...any) (any, error) {
			u, _ := splitUPN(str(p[0]))
			return u, nil
		}, new(func(string) string)),
		expr.Function("upn_domain", func(p ...any) (any, error) {
			_, d := splitUPN(str(p[0]))
			return d, nil
		}, new(func(string) string)),
		expr.Function("cidr", func(p ...any) (any, error) {
			a, err := netip.ParseAddr(strings.TrimSpace(str(p[0])))
			if err != nil {
				return false, nil
			}
			pf, err := f.prefix(str(p[1]))
			if err != nil {
				return nil, err
			}
			return pf.Contains(a.Unmap()), nil
		}, new(func(string, string) bool)),
		expr.Function("in_cidrs", func(p ...any) (any, error) {
			a, err := netip.ParseAddr(strings.TrimSpace(str(p[0])))
			if err != nil {
				return false, nil
			}
			for _, n := range strList(p[1]) {
				pf, err := f.prefix(n)
				if err != nil {
					return nil, err
				}
				if pf.Contains(a.Unmap()) {
					return true, nil
				}
			}
			return false, nil
		}, new(func(string, []string) bool), new(func(string, []any) bool)),
		expr.Function("is_private", func(p ...any) (any, error) { return isPrivate(str(p[0])), nil },
			new(func(string) bool)),
		expr.Function("is_public", func(p ...any) (any, error) { return isPublic(str(p[0])), nil },
			new(func(string) bool)),
		expr.Function("watchlist", func(p ...any) (any, error) {
			return f.lookups.InWatchlist(str(p[0]), str(p[1])), nil
		}, new(func(string, string) bool)),
		expr.Function("watchlist_field", func(p ...any) (any, error) {
			return f.lookups.WatchlistField(str(p[0]), str(p[1]), str(p[2])), nil
		}, new(func(string, string, string) string)),
		expr.Function("ti_ip", func(p ...any) (any, error) { return f.lookups.TI(TIIP, str(p[0])), nil },
			new(func(string) bool)),
		expr.Function("ti_domain", func(p ...any) (any, error) { return f.lookups.TI(TIDomain, str(p[0])), nil },
			new(func(string) bool)),
		expr.Function("ti_url", func(p ...any) (any, error) { return f.lookups.TI(TIURL, str(p[0])), nil },
			new(func(string) bool)),
		expr.Function("ti_hash", func(p ...any) (any, error) { return f.lookups.TI(TIHash, str(p[0])), nil },
			new(func(string) bool)),
		expr.Function("ti", func(p ...any) (any, error) { return f.lookups.TI("", str(p[0])), nil },
			new(func(string) bool)),
	}
}

// runOnce evaluates e on env with a fresh VM (tests, one-off use).
func runOnce(e *Expr, env *Env) (any, error) {
	if e.UsesFields {
		_ = env.Event.DecodeFields()
	}
	return expr.Run(e.Program, env)
}
