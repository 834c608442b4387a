package normalize

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// decodeTargets returns a fresh value of every per-source struct, so that
// tests can compare the plan decoder with goccy/go-json on each.
func decodeTargets() []func() any {
	return []func() any{
		func() any { return new(ahRow) }, func() any { return new(activity) }, func() any { return new(activityREST) },
		func() any { return new(storageLog) }, func() any { return new(appRow) }, func() any { return new(fwStructured) },
		func() any { return new(fwLegacy) }, func() any { return new(asimRow) }, func() any { return new(diagTop) },
		func() any { return new(signIn) }, func() any { return new(audit) }, func() any { return new(risk) },
		func() any { return new(nsgRecord) }, func() any { return new(vnetRecord) }, func() any { return new(mdcAlert) },
		func() any { return new([]mdcEntity) }, func() any { return new(assessment) }, func() any { return new(cefRow) },
		func() any { return new(syslogRow) }, func() any { return new([]auditTarget) },
	}
}

// sameDecode decodes in with both decoders into every target and reports
// the first difference: in error-ness, or in the value when both succeed.
func sameDecode(t *testing.T, name string, in []byte) {
	t.Helper()
	for _, mk := range decodeTargets() {
		plan, ref := mk(), mk()
		perr := unmarshal(in, plan)
		rerr := goccyUnmarshal(in, ref)
		if (perr == nil) != (rerr == nil) {
			t.Errorf("%s into %T: plan error %v, goccy error %v", name, plan, perr, rerr)
			continue
		}
		if perr == nil && !reflect.DeepEqual(plan, ref) {
			t.Errorf("%s into %T: plan and goccy differ:\nplan  %+v\ngoccy %+v", name, plan, plan, ref)
		}
	}
}

// TestPlanDecoderMatchesGoccy runs both decoders on every object of the
// committed fixtures (records and their properties) and on drift cases.
func TestPlanDecoderMatchesGoccy(t *testing.T) {
	cases := map[string]string{
		"drift":    `{"Timestamp":1700000000,"ReportId":"12","FileSize":"0x10","LocalPort":"","RemotePort":null,"ActionType":true,"DeviceName":{"a":1},"Success":"TRUE"}`,
		"case":     `{"timestamp":"2024-01-01T00:00:00Z","DEVICENAME":"h","devicename":"g","actiontype":"x","Type":"t","type":"u"}`,
		"escapes":  `{"Folder\u0050ath":"C:\\x\\y","FileName":"a\u00e9\ud83d\ude00","Title":"\"q\""}`,
		"nested":   `{"identity":"{\"claims\":{\"upn\":\"a@b.c\"}}","properties":{"eventDataId":"e"},"Claims":"{\"x\":1}"}`,
		"badembed": `{"identity":"{not json","Claims":"{also not","properties":"[1]"}`,
		"nulls":    `{"records":null,"flowRecords":null,"Entities":null,"identity":null,"properties":null,"time":null}`,
		"empty":    `{}`,
		"arrays":   `{"records":[],"targetResources":[{"userPrincipalName":"x@y.z"}],"Entities":"[]"}`,
	}
	for name, in := range cases {
		sameDecode(t, name, []byte(in))
	}
	files, _ := filepath.Glob("testdata/*.json*")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			eachObject([]byte(strings.TrimSpace(strings.TrimPrefix(line, "\ufeff"))), func(obj []byte) {
				sameDecode(t, filepath.Base(f), obj)
			})
		}
		eachObject(b[skipWS(b, 0):], func(obj []byte) { sameDecode(t, filepath.Base(f), obj) })
	}
}

// eachObject calls fn with every valid JSON object in v, v included.
func eachObject(v []byte, fn func([]byte)) {
	if len(v) == 0 || !json.Valid(v) {
		return
	}
	switch v[0] {
	case '{':
		fn(v)
		_ = eachMember(v, func(_, val []byte) bool { eachObject(val, fn); return true })
	case '[':
		_ = eachElement(v, func(el []byte) { eachObject(el, fn) })
	}
}

// TestPlanDecoderAliases checks that unescaped strings point into the
// input (no copy) and escaped ones are decoded.
func TestPlanDecoderAliases(t *testing.T) {
	in := []byte(`{"DeviceName":"wks-1","FolderPath":"C:\\W"}`)
	var r ahRow
	if err := unmarshal(in, &r); err != nil {
		t.Fatal(err)
	}
	if r.DeviceName != "wks-1" || r.FolderPath != `C:\W` {
		t.Fatalf("decoded %q %q", r.DeviceName, r.FolderPath)
	}
	in[15] = 'X' // DeviceName's first byte
	if r.DeviceName != "Xks-1" {
		t.Errorf("DeviceName %q does not alias the input", r.DeviceName)
	}
}

func FuzzPlanDecoder(f *testing.F) {
	addFixtureSeeds(f)
	f.Add([]byte(`{"Timestamp":"2024-01-01T00:00:00Z","ReportId":1,"identity":"{\"claims\":{}}","flowRecords":{"flows":[]}}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		if !json.Valid(in) {
			return // decoders only ever see valid JSON
		}
		sameDecode(t, "fuzz", in)
	})
}

// TestPlanDecoderConcurrentFirstUse decodes into a type no test has used
// yet from several goroutines at once: each must see a complete plan (run
// with -race).
func TestPlanDecoderConcurrentFirstUse(t *testing.T) {
	type row struct {
		A fstr
		B fint
		C obj[struct{ D fstr }]
		E []struct{ F fstr }
	}
	in := []byte(`{"a":"x","b":"7","c":"{\"d\":\"y\"}","e":[{"f":"z"}]}`)
	want := row{A: "x", B: 7, C: obj[struct{ D fstr }]{V: struct{ D fstr }{D: "y"}}, E: []struct{ F fstr }{{F: "z"}}}
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			var r row
			err := unmarshal(in, &r)
			if err == nil && !reflect.DeepEqual(r, want) {
				err = fmt.Errorf("decoded %+v", r)
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
