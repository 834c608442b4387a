package normalize

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func addFixtureSeeds(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.*")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil && !strings.HasSuffix(p, ".log") {
			f.Add(b)
		}
	}
}

// checkParse asserts what must hold for any input: no panic, every event
// has an id and a JSON-object Raw, every error a valid index.
func checkParse(t *testing.T, hint string, in []byte) {
	evs, errs := Parse(hint, in, recv)
	for i, e := range evs {
		if e.ID == "" {
			t.Fatalf("event %d without ID", i)
		}
		if !json.Valid(e.Raw) {
			t.Fatalf("event %d Raw is not valid JSON: %q", i, e.Raw)
		}
	}
	for _, e := range errs {
		if e.Index < 0 || e.Err == nil {
			t.Fatalf("bad RecordError %+v", e)
		}
	}
}

func FuzzParse(f *testing.F) {
	addFixtureSeeds(f)
	f.Add([]byte(`{"records":[{"category":"AdvancedHunting-DeviceProcessEvents","properties":{"Timestamp":"2024-01-01T00:00:00Z"}}]}`))
	f.Fuzz(func(t *testing.T, in []byte) { checkParse(t, "", in) })
}

func FuzzParseCSV(f *testing.F) {
	f.Add([]byte("Type,TimeGenerated [UTC],UserPrincipalName,Status_dynamic\nSigninLogs,\"4/28/2021, 2:08:45.221 PM\",a@b.c,\"{\"\"errorCode\"\":0}\"\n"))
	f.Add([]byte("Type,DeviceName,ReportId,Timestamp\nDeviceProcessEvents,h,1,2024-01-01T00:00:00Z\n"))
	f.Add([]byte("Type,SourceIP,AdditionalExtensions\nCommonSecurityLog,1.2.3.4,start=1617770662000;x=y\n"))
	f.Fuzz(func(t *testing.T, in []byte) { checkParse(t, "csv", in) })
}

func FuzzParseSyslog(f *testing.F) {
	if b, err := os.ReadFile("testdata/syslog_cef.log"); err == nil {
		for _, l := range bytes.Split(b, []byte("\n")) {
			f.Add(l) // line by line: small seeds fuzz far faster than the file
		}
	}
	f.Add([]byte("<134>1 2024-03-05T10:06:00Z h a 1 m - CEF:0|a|b|c|d|e|5|src=1.2.3.4 k=v x\\=y"))
	f.Add([]byte("May 18 16:02:00 host tag[1] CEF:0|v|p|1|2|n|Medium|cat='x' id=2 src=1.1.1.1"))
	f.Fuzz(func(t *testing.T, in []byte) { checkParse(t, "syslog", in) })
}

func FuzzFlowTuple(f *testing.F) {
	f.Add("1542110402,192.0.2.190,10.5.16.4,28746,443,U,I,D,B,,,,")
	f.Add("1663146003606,10.0.0.6,52.239.184.180,23956,443,6,O,E,NX,3,767,2,1580")
	f.Add(",,,,,,,")
	f.Fuzz(func(t *testing.T, s string) {
		for _, parse := range []func(string) (flowTuple, error){parseNSGTuple, parseVNetTuple} {
			tup, err := parse(s)
			if err != nil {
				continue
			}
			p := parser{received: recv}
			e := p.flowEvent("network.NSGFlow", "r", "rule", "mac", tup, s, []byte{'{'})
			if !json.Valid(e.Raw) {
				t.Fatalf("flow Raw invalid: %q", e.Raw)
			}
		}
	})
}
