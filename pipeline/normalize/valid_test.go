package normalize

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/internal/jsonscan"
)

func TestValidValueMatchesEncodingJSON(t *testing.T) {
	for _, in := range []string{
		`{}`, `[]`, ` {"a" : [1, -2.5e+3, true, false, null, "x\u00e9\n"]} `, `"s"`, `0`, `-0.0E-0`,
		`{"a":{"b":{"c":[[],{}]}}}`, "\"\xff\xfe\"", `[1,]`, `{"a":1,}`, `{"a" 1}`, `{a:1}`, `[01]`,
		`[1.]`, `[.5]`, `[1e]`, `[-]`, `[tru]`, `[nul]`, `[falsey]`, `["\x"]`, `["\u12"]`, `["\u12G4"]`,
		"[\"a\tb\"]", `{"a":1}}`, `[1 2]`, `{"a":1 "b":2}`, `{,}`, `[,1]`, "\xef\xbb\xbf{}", `{"a":"\\"}`,
		`{"a":"\\\""}`, `"\`, `[`, `{"a":`, `{"a"`, `{"`, ``, ` `, `+1`, `[1e+]`, `["\/\b\f\r\t"]`,
		`{"long":"` + strings.Repeat(`abcdefgh\"`, 20) + `"}`, strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	} {
		if got, want := validAll([]byte(in)), json.Valid([]byte(in)); got != want {
			t.Errorf("validValue(%.60q) valid = %v, encoding/json says %v", in, got, want)
		}
	}
}

func TestValidValueEnd(t *testing.T) {
	for _, tc := range []struct {
		in  string
		end int
	}{
		{`{"a":1} {"b":2}`, 7},
		{`[1,2]x`, 5},
		{`{"a":"}"}]`, 9},
	} {
		end, err := validValue([]byte(tc.in), 0)
		if err != nil || end != tc.end {
			t.Errorf("validValue(%q) = %d, %v; want %d", tc.in, end, err, tc.end)
		}
	}
}

// TestScanStringSWAR checks the word-at-a-time string scan at every
// alignment of the closing quote and of the bytes that stop it.
func TestScanStringSWAR(t *testing.T) {
	for n := 0; n < 20; n++ {
		body := strings.Repeat("é", n/2) + strings.Repeat("a", n%2)
		for _, tail := range []string{`"`, `\""`, `\\"`, "\u007f\"", "\x1f\""} {
			in := []byte(`"` + body + tail + `,`)
			end, err := jsonscan.StringEnd(in, 0)
			wantErr := tail == "\x1f\""
			if wantErr {
				if err == nil {
					t.Errorf("jsonscan.StringEnd(%q) accepted a control character", in)
				}
				continue
			}
			if err != nil || end != len(in)-1 {
				t.Errorf("jsonscan.StringEnd(%q) = %d, %v; want %d", in, end, err, len(in)-1)
			}
			if vend, err := validString(in, 0); err != nil || vend != end {
				t.Errorf("validString(%q) = %d, %v; want %d", in, vend, err, end)
			}
		}
	}
}

func FuzzValidValue(f *testing.F) {
	addFixtureSeeds(f)
	f.Add([]byte(`{"a":[1,"\u00e9",true,null]}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		if got, want := validAll(in), json.Valid(in); got != want {
			t.Fatalf("validValue valid = %v, encoding/json says %v for %q", got, want, in)
		}
		// Every complete value found by the strict scan is also found,
		// with the same end, by the lenient one.
		i := skipJSONWS(in, 0)
		if end, err := validValue(in, i); err == nil && i < len(in) && bytes.IndexByte([]byte("{[\""), in[i]) >= 0 {
			if lend, err := jsonscan.Value(in, i); err != nil || lend != end {
				t.Fatalf("scanValue = %d, %v; validValue = %d for %q", lend, err, end, in)
			}
		}
	})
}
