package rules

import (
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"testing"
)

func TestACMatchesNaiveSearch(t *testing.T) {
	cases := []struct {
		lits []string
		fold bool
		in   string
		want bool
	}{
		{[]string{"he", "she", "his", "hers"}, false, "ushers", true},
		{[]string{"he", "she", "his", "hers"}, false, "ahixs", false},
		{[]string{"abcd", "bc"}, false, "xabcx", true}, // found through a failure link
		{[]string{"abcd", "cde"}, false, "abcde", true},
		{[]string{"vssadmin", "wbadmin"}, true, `C:\Windows\System32\VSSADMIN.EXE delete`, true},
		{[]string{"vssadmin", "wbadmin"}, false, `VSSADMIN.EXE delete`, false},
		{[]string{"kill"}, true, "\u212Aill", true}, // non-ASCII input: undecided, the regex runs
		{[]string{"exe", "dll"}, true, "", false},
	}
	for _, c := range cases {
		m := newAC(c.lits, c.fold)
		if m == nil {
			t.Fatalf("newAC(%q) = nil", c.lits)
		}
		if got := m.contains(c.in); got != c.want {
			t.Errorf("%q fold=%v contains(%q) = %v, want %v", c.lits, c.fold, c.in, got, c.want)
		}
	}
	if newAC([]string{"a", ""}, false) != nil || newAC(nil, false) != nil || newAC([]string{"é"}, true) != nil {
		t.Error("newAC must refuse empty and non-ASCII folded literals")
	}
}

func TestRegexPrefilter(t *testing.T) {
	cases := []struct {
		pattern string
		kind    string // "literal", "ac" or "none"
		in      []string
	}{
		{`(?i)-enc\w*\s+[a-z0-9+/=]{8,}`, "literal", []string{"powershell -ENC SQBFAFgAUwBF", "powershell -File x"}},
		{`(?i)(vssadmin(\.exe)?"?\s+[^\n]*delete\s+shadows|wmic\s+shadowcopy\s+delete|bcdedit)`, "ac",
			[]string{`vssadmin.exe delete shadows /all`, `WMIC shadowcopy delete`, `BCDEdit /set`, `notepad.exe`}},
		{`(?i)\.(exe|scr|com|pif|dll|ps1)$`, "ac", []string{"a.EXE", "b.ps1", "c.txt", "x.dll.txt"}},
		{`(?i)\.(e|s)$`, "none", []string{"a.e"}},
		{`^(New|Set|Add)-\w+`, "ac", []string{"New-InboxRule", "Get-Mailbox", "Set-x"}},
		{`a*b?`, "none", []string{"", "ab"}},
		{`(?i)ſtart`, "literal", []string{"START", "ſtart", "\u212Aill start"}}, // decided by the regex on non-ASCII input
	}
	for _, c := range cases {
		fr, err := compileFastRegex(c.pattern)
		if err != nil {
			t.Fatal(err)
		}
		kind := "none"
		if fr.literal != "" {
			kind = "literal"
		} else if fr.ac != nil {
			kind = "ac"
		}
		if kind != c.kind {
			t.Errorf("%s: prefilter %s, want %s", c.pattern, kind, c.kind)
		}
		re := regexp.MustCompile(c.pattern)
		for _, s := range c.in {
			if got, want := fr.match(s), re.MatchString(s); got != want {
				t.Errorf("%s on %q: %v, regexp says %v", c.pattern, s, got, want)
			}
		}
	}
}

// TestRegexHeads: a regex whose matches all begin with a literal is run
// only from where those literals occur, and answers as the whole regex
// does — also with more occurrences than it tries (the whole regex then
// decides), non-ASCII input under (?i), and assertions after the head.
func TestRegexHeads(t *testing.T) {
	many := strings.Repeat("forwardto ", maxHeads+2)
	cases := []struct {
		pattern string
		heads   []string // nil: not run from heads
		in      []string
	}{
		{`(?i)(ForwardTo|RedirectTo)\\?"\s*,\s*\\?"Value`, []string{"forwardto", "redirectto"},
			[]string{`{"Name":"ForwardTo","Value":"x"}`, `{\"Name\":\"REDIRECTTO\", \"Value\"`, `ForwardTo only`, many, many + `ForwardTo","Value`}},
		{`(?i)(cmd|powershell)\b[^\n]*-enc\b`, []string{"cmd", "powershell"},
			[]string{"powershell.exe -enc AAA", "powershellx -enc", "cmd -encx", "CMD /c x -ENC y", "\u212A cmd -enc"}},
		{`(?m)abc$`, []string{"abc"}, []string{"xabc\ny", "abcd", "abc"}},
		{`(?m)^abc`, []string{"abc"}, []string{"x\nabc", "xabc", "abc", "\nabc\n"}},
		{`^abc`, []string{"abc"}, []string{"x\nabc", "abc"}},
		{`\babc`, []string{"abc"}, []string{"xabc", " abc", "abc", "éabc", "\xffabc", "x\xe9abc"}},
		{`(?i)\Babc|\bdef`, []string{"abc", "def"}, []string{"xABC", " abc", "ABC", "éabc", "_def", "é def", "-DEF"}},
		{`(?i)(xy|\biwr\b)`, []string{"xy", "iwr"}, []string{"IWR http", "aiwr", "iwr2", "iwr"}},
		{`(?:^|\s)-e`, nil, []string{"a -e", "-e"}},
		{`(?i)(abc|\w+def)`, nil, []string{"ABC", "xdef"}},
		{`(?i)abc+d`, []string{"ab"}, []string{"ABCCCD", strings.Repeat("abc", 40) + "d", strings.Repeat("abc", 40)}},
		{`ſtart|xy`, []string{"ſtart", "xy"}, []string{"ſtart", "start", "axyz"}},
		{`(?i)\.(exe|dll)$`, nil, []string{"a.EXE", "b.dll.txt"}}, // a one-byte head: the prefilter decides
	}
	// Heads early in a long input: the anchored runs could read it
	// several times over, so the plain regex decides (and agrees).
	early := strings.Repeat("cmd ", 6) + strings.Repeat("x", 200) + " -enc"
	fr, err := compileFastRegex(`(?i)(cmd|powershell)\b[^\n]*-enc\b`)
	if err != nil {
		t.Fatal(err)
	}
	if _, decided := fr.fromHeads(early); decided {
		t.Errorf("six heads at the start of %d bytes: run from heads, want the plain regex", len(early))
	}
	if !fr.match(early) {
		t.Errorf("no match on %q", early)
	}
	for _, c := range cases {
		fr, err := compileFastRegex(c.pattern)
		if err != nil {
			t.Fatal(err)
		}
		if (fr.heads != nil) != (c.heads != nil) {
			t.Errorf("%s: run from heads %v, want %v", c.pattern, fr.heads != nil, c.heads != nil)
		}
		if c.heads != nil {
			tree, _ := syntax.Parse(c.pattern, syntax.Perl)
			got, _ := headLiterals(tree.Simplify())
			if !slices.Equal(mapLower(got), c.heads) {
				t.Errorf("%s: heads %q, want %q", c.pattern, got, c.heads)
			}
		}
		for _, s := range c.in {
			if got, want := fr.match(s), fr.re.MatchString(s); got != want {
				t.Errorf("%s on %q: %v, regexp says %v", c.pattern, s, got, want)
			}
		}
	}
}

func mapLower(l []string) []string {
	out := make([]string, len(l))
	for i, s := range l {
		if isASCII(s) {
			s = strings.ToLower(s)
		}
		out[i] = s
	}
	return out
}

// FuzzRegexPrefilter: the prefilter never changes a regex's answer.
func FuzzRegexPrefilter(f *testing.F) {
	f.Add(`(?i)(vssadmin|wmic\s+shadowcopy|bcdedit)`, "WMIC  ShadowCopy")
	f.Add(`(?i)\.(exe|scr|dll)$`, "x.DLL")
	f.Add(`(foo|bar)+baz{2,}`, "barbazz")
	f.Add(`(?i)k(ey|ill)`, "\u212Aill")
	f.Add(`(?i)straße|ss`, "STRASSE")
	f.Add(`(?i)(ab|cd)\b[^x]*e$`, "xxAB-e cd e")
	f.Add(`(?m)(ab|cd)$`, "ab\ncd")
	f.Fuzz(func(t *testing.T, pattern, in string) {
		if len(pattern) > 200 || strings.Count(pattern, "{") > 3 {
			return
		}
		fr, err := compileFastRegex(pattern)
		if err != nil {
			return
		}
		if got, want := fr.match(in), fr.re.MatchString(in); got != want {
			t.Fatalf("%q on %q: prefiltered %v, regexp %v (literal %q, ac %v)", pattern, in, got, want, fr.literal, fr.ac != nil)
		}
	})
}

// BenchmarkRegexPrefilter: a library-style alternation regex on a
// command line it does not match, with the Aho-Corasick prefilter and
// with the regex alone.
func BenchmarkRegexPrefilter(b *testing.B) {
	const pattern = `(?i)(vssadmin(\.exe)?"?\s+[^\n]*delete\s+shadows|wmic(\.exe)?"?\s+shadowcopy\s+delete|wbadmin(\.exe)?"?\s+delete\s+catalog|bcdedit(\.exe)?"?\s+/set\s+[^\n]*recoveryenabled\s+no)`
	const in = `"C:\Program Files\Google\Chrome\Application\chrome.exe" --type=renderer --lang=en-US --field-trial-handle=1796,i,1548 --enable-features=NetworkService /prefetch:1`
	fr, err := compileFastRegex(pattern)
	if err != nil || fr.ac == nil {
		b.Fatalf("no prefilter: %v", err)
	}
	b.Run("prefiltered", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if fr.match(in) {
				b.Fatal("matched")
			}
		}
	})
	b.Run("regexp", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if fr.re.MatchString(in) {
				b.Fatal("matched")
			}
		}
	})
}

// BenchmarkRegexHeads: an inbox-rule regex (matches begin with one of
// its action names) on the JSON parameters of an audit record that holds
// one: tried from the heads' offsets, and by the regex alone.
func BenchmarkRegexHeads(b *testing.B) {
	const pattern = `(?i)(ForwardTo|RedirectTo|ForwardAsAttachmentTo)\\?"\s*,\s*\\?"Value\\?"\s*:\s*\\?"[^"\\\s]|(Forward|Redirect|ForwardAsAttachment)ToRecipientsAction|(DeleteMessage|SoftDeleteMessage|PermanentDelete)\\?"\s*,\s*\\?"Value\\?"\s*:\s*\\?"True`
	in := `[` + strings.Repeat(`{"Name":"Identity","Value":"adele@contoso.com\\Inbox"},{"Name":"StopProcessingRules","Value":"True"},`, 12) +
		`{"Name":"ForwardTo","Value":"drop@mailbox.example"}]`
	fr, err := compileFastRegex(pattern)
	if err != nil || fr.heads == nil || !fr.match(in) {
		b.Fatalf("no heads or no match: %v", err)
	}
	b.Run("heads", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			fr.match(in)
		}
	})
	b.Run("regexp", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			fr.re.MatchString(in)
		}
	})
}

// FuzzACStarts: the offsets starts reports are exactly those where a
// literal begins (as a naive search finds them), and it declines only
// past max offsets or, folded, on non-ASCII input.
func FuzzACStarts(f *testing.F) {
	f.Add("he,she,his,hers", "ushers and his", false)
	f.Add("abcd,bc,c", "xabcdbcc", true)
	f.Add("Kill,ab", "\u212Aill ab", true)
	f.Fuzz(func(t *testing.T, list, in string, fold bool) {
		lits := strings.Split(list, ",")
		if fold {
			for i, l := range lits {
				lits[i] = strings.ToLower(l)
			}
		}
		m := newAC(lits, fold)
		if m == nil {
			return
		}
		hay := in
		if fold {
			if !isASCII(in) {
				if _, ok := m.starts(in, nil, 64); ok || !m.contains(in) {
					t.Fatalf("%q in %q: non-ASCII input under fold must stay undecided", lits, in)
				}
				return
			}
			hay = strings.ToLower(in)
		}
		var want []int
		for i := range len(in) {
			for _, l := range lits {
				if strings.HasPrefix(hay[i:], l) && !slices.Contains(want, i) {
					want = append(want, i)
				}
			}
		}
		got, ok := m.starts(in, nil, 64)
		slices.Sort(got)
		got = slices.Compact(got)
		switch {
		case !ok && len(got) < len(want):
		case !ok:
			t.Fatalf("%q in %q: declined with %d of %d offsets", lits, in, len(got), len(want))
		case !slices.Equal(got, want):
			t.Fatalf("%q in %q (fold %v): starts %v, want %v", lits, in, fold, got, want)
		}
		if c := m.contains(in); ok && c != (len(want) > 0) {
			t.Fatalf("%q in %q: contains %v with %d offsets", lits, in, c, len(want))
		}
	})
}
