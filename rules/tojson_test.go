package rules

import (
	"encoding/json"
	"testing"

	"github.com/tidwall/gjson"
)

// FuzzToJSON: appendToJSON gives encoding/json's MarshalIndent bytes for
// every value a record decodes to (through gjson, as the FieldView does,
// and through encoding/json, as Fields does).
func FuzzToJSON(f *testing.F) {
	for _, s := range []string{
		`{"b":1,"a":[true,null,"x<y>&z"],"c":{}}`,
		`[1e21, 1e-7, -0.000001, 123456789012345678901234, 0.1, -0]`,
		`{"Parameters":[{"Name":"ForwardTo","Value":"a@b.example"}],"e":[],"s":"\u2028\u0007\b\f\n\r\t\"\\ é"}`,
		`"\ud800"`, `{"a":1,"a":2}`, `"` + "\xff\xfe" + `"`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		var vals []any
		if gjson.Valid(in) {
			vals = append(vals, gjson.Parse(in).Value())
		}
		var v any
		if json.Unmarshal([]byte(in), &v) == nil {
			vals = append(vals, v)
		}
		vals = append(vals, in) // the input as a string value
		for _, v := range vals {
			want, werr := json.MarshalIndent(v, "", "  ")
			got, gerr := appendToJSON(nil, v, 0)
			if (werr != nil) != (gerr != nil) || werr == nil && string(got) != string(want) {
				t.Fatalf("toJSON(%#v):\n got %q (%v)\nwant %q (%v)", v, got, gerr, want, werr)
			}
		}
	})
}

// BenchmarkToJSON: toJSON of an Exchange audit record's parameters, as
// the inbox-rule and audit rules read them.
func BenchmarkToJSON(b *testing.B) {
	v := gjson.Parse(`{"Operation":"New-InboxRule","Parameters":[{"Name":"Identity","Value":"adele@contoso.com\\Inbox"},{"Name":"ForwardTo","Value":"drop@mailbox.example"},{"Name":"StopProcessingRules","Value":"True"},{"Name":"Name","Value":"."}],"ClientIP":"203.0.113.7:51234","UserId":"adele@contoso.com","ResultStatus":"True","OrganizationId":"00000000-0000-0000-0000-000000000000","RecordType":1,"Workload":"Exchange","CreationTime":"2025-06-21T04:00:00"}`).Value()
	b.Run("append", func(b *testing.B) {
		var buf []byte
		for i := 0; i < b.N; i++ {
			buf, _ = appendToJSON(buf[:0], v, 0)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			_, _ = json.MarshalIndent(v, "", "  ")
		}
	})
}
