package rules

import (
	"regexp"
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

// FuzzRegexPrefilter: the prefilter never changes a regex's answer.
func FuzzRegexPrefilter(f *testing.F) {
	f.Add(`(?i)(vssadmin|wmic\s+shadowcopy|bcdedit)`, "WMIC  ShadowCopy")
	f.Add(`(?i)\.(exe|scr|dll)$`, "x.DLL")
	f.Add(`(foo|bar)+baz{2,}`, "barbazz")
	f.Add(`(?i)k(ey|ill)`, "\u212Aill")
	f.Add(`(?i)straße|ss`, "STRASSE")
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
