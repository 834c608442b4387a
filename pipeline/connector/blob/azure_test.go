package blob

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vigil-sec/vigil/pipeline/config"
)

func TestParseTail(t *testing.T) {
	tests := []struct {
		name string
		tail string
		want []string
		err  error // nil, errIncomplete, or errOther
	}{
		{"no new records", "\r\n]\r\n}", nil, nil},
		{"two new, pretty", "\r\n,\r\n" + flow2 + "\r\n,\r\n" + flow3 + "\r\n]\r\n}\r\n", []string{flow2, flow3}, nil},
		{"minified", "," + flow2 + "]}", []string{flow2}, nil},
		{"empty", "", nil, errIncomplete},
		{"closing bracket only", "\r\n]", nil, errIncomplete},
		{"record cut", ",\r\n" + flow2[:40], nil, errIncomplete},
		{"comma then end", ",\r\n", nil, errIncomplete},
		{"not a continuation", `{"records":[` + flow1 + `]}`, nil, errOther},
		{"garbage after", "]}x", nil, errOther},
		{"other key after records", `],"x":1}`, nil, errOther},
		{"bad value", ",nope]}", nil, errOther},
	}
	for _, tt := range tests {
		got, ends, err := parseTail([]byte(tt.tail))
		switch {
		case tt.err == nil && err != nil, tt.err != nil && err == nil:
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.err)
			continue
		case tt.err == errIncomplete && !errors.Is(err, errIncomplete):
			t.Errorf("%s: err = %v, want errIncomplete", tt.name, err)
			continue
		case tt.err == errOther && errors.Is(err, errIncomplete):
			t.Errorf("%s: err = %v, want a parse error", tt.name, err)
			continue
		}
		if len(got) != len(tt.want) {
			t.Errorf("%s: got %d records, want %d", tt.name, len(got), len(tt.want))
			continue
		}
		for i := range got {
			if string(got[i]) != tt.want[i] || !strings.HasSuffix(tt.tail[:ends[i]], tt.want[i]) {
				t.Errorf("%s: record %d = %q, end %d", tt.name, i, got[i], ends[i])
			}
		}
	}
}

var errOther = errors.New("a parse error other than errIncomplete")

// FuzzParseTail: whatever the bytes, records are valid JSON lying where
// ends says, and a document cut anywhere after a produced record parses
// as incomplete or as the records it holds, never as others.
func FuzzParseTail(f *testing.F) {
	f.Add([]byte("\r\n,\r\n"+flow2+"\r\n]\r\n}"), 0)
	f.Add([]byte(","+flow3+","+flow2+"]}"), 7)
	f.Fuzz(func(t *testing.T, b []byte, cut int) {
		recs, ends, err := parseTail(b)
		if err == nil {
			for i, r := range recs {
				if !json.Valid(r) || ends[i] > int64(len(b)) || string(b[ends[i]-int64(len(r)):ends[i]]) != string(r) {
					t.Fatalf("record %q end %d", r, ends[i])
				}
			}
		}
		if cut < 0 || cut > len(b) {
			return
		}
		// A prefix of a valid tail is never a valid tail with more records.
		if err == nil {
			pr, _, perr := parseTail(b[:cut])
			if perr == nil && len(pr) > len(recs) {
				t.Fatalf("prefix %q parsed to %d records, whole to %d", b[:cut], len(pr), len(recs))
			}
		}
	})
}

const devKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

func TestNewAzureStoreConfig(t *testing.T) {
	const sig = "c2VjcmV0c2lnbmF0dXJl"
	sas := "https://acct.blob.core.windows.net/?sv=2023-11-03&ss=b&srt=co&sp=rl&se=2030-01-01T00:00:00Z&sig=" + sig
	tests := []struct {
		name       string
		cfg        AzureConfig
		endpoint   string
		containers []string
		err        string
	}{
		{"shared key by account name", AzureConfig{AccountName: "acct", AccountKey: devKey},
			"https://acct.blob.core.windows.net", nil, ""},
		{"shared key, account from URL", AzureConfig{ServiceURL: "https://acct.blob.core.windows.net/", AccountKey: devKey},
			"https://acct.blob.core.windows.net", nil, ""},
		{"shared key, Azurite", AzureConfig{ServiceURL: "http://127.0.0.1:10000/devstoreaccount1", AccountKey: devKey,
			Containers: []string{"insights-logs-a"}}, "http://127.0.0.1:10000/devstoreaccount1", []string{"insights-logs-a"}, ""},
		{"connection string", AzureConfig{ConnectionString: config.Secret("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=" + devKey + ";EndpointSuffix=core.windows.net")},
			"https://acct.blob.core.windows.net", nil, ""},
		{"service SAS", AzureConfig{SASURL: config.Secret(sas)}, "https://acct.blob.core.windows.net", nil, ""},
		{"container SAS", AzureConfig{SASURL: config.Secret("https://acct.blob.core.windows.net/insights-logs-x?sv=2023-11-03&sr=c&sp=rl&sig=" + sig)},
			"https://acct.blob.core.windows.net", []string{"insights-logs-x"}, ""},
		{"container SAS, other container", AzureConfig{SASURL: config.Secret("https://acct.blob.core.windows.net/insights-logs-x?sr=c&sig=" + sig),
			Containers: []string{"insights-logs-y"}}, "", nil, "names container"},
		{"SAS without sig", AzureConfig{SASURL: "https://acct.blob.core.windows.net/?sv=1"}, "", nil, "no SAS token"},
		{"SAS names a blob", AzureConfig{SASURL: config.Secret("https://acct.blob.core.windows.net/c/b.json?sig=" + sig)}, "", nil, "names a blob"},
		{"SAS not a URL", AzureConfig{SASURL: config.Secret("::" + sig)}, "", nil, "not an absolute URL"},
		{"no auth", AzureConfig{ServiceURL: "https://acct.blob.core.windows.net/"}, "", nil, "exactly one"},
		{"two auths", AzureConfig{AccountName: "acct", AccountKey: devKey, SASURL: config.Secret(sas)}, "", nil, "exactly one"},
		{"key not base64", AzureConfig{AccountName: "acct", AccountKey: "not*base64" + sig}, "", nil, "not a base64"},
		{"plain http off loopback", AzureConfig{ServiceURL: "http://acct.blob.core.windows.net/", AccountKey: devKey}, "", nil, "only https"},
		{"SAS in service_url", AzureConfig{ServiceURL: "https://acct.blob.core.windows.net/?sig=" + sig, AccountKey: devKey}, "", nil, "must not carry a query"},
		{"bad connection string", AzureConfig{ConnectionString: config.Secret("AccountKey=" + sig)}, "", nil, "connection string"},
		{"bad container", AzureConfig{AccountName: "acct", AccountKey: devKey, Containers: []string{"a/b"}}, "", nil, "invalid container"},
	}
	for _, tt := range tests {
		s, err := NewAzureStore(tt.cfg)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: err = %v, want one containing %q", tt.name, err, tt.err)
			}
			if err != nil && (strings.Contains(err.Error(), sig) || strings.Contains(err.Error(), devKey)) {
				t.Errorf("%s: error reveals a secret: %v", tt.name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if s.Endpoint() != tt.endpoint || strings.Join(s.containers, ",") != strings.Join(tt.containers, ",") {
			t.Errorf("%s: endpoint %q containers %q, want %q %q", tt.name, s.Endpoint(), s.containers, tt.endpoint, tt.containers)
		}
	}
}

// TestAzureStoreOnlyEndpoint: the client follows no redirect to another
// host, and a transport error does not carry the SAS token.
func TestAzureStoreOnlyEndpoint(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	defer other.Close()
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.RequestURI(), http.StatusTemporaryRedirect)
	}))
	defer redirect.Close()
	const sig = "dG9wc2VjcmV0"
	s, err := NewAzureStore(AzureConfig{SASURL: config.Secret(redirect.URL + "/devstoreaccount1?sv=2023-11-03&sig=" + sig), MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.List(context.Background())
	if err == nil || elsewhere.Load() != 0 {
		t.Fatalf("List through a redirect: err %v, %d requests reached the other host", err, elsewhere.Load())
	}
	if strings.Contains(err.Error(), sig) {
		t.Fatalf("error reveals the SAS: %v", err)
	}

	// A closed port: the transport error names the URL, without query.
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	s, err = NewAzureStore(AzureConfig{SASURL: config.Secret(dead.URL + "/devstoreaccount1?sv=2023-11-03&sig=" + sig), MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.List(context.Background())
	if err == nil || strings.Contains(err.Error(), sig) {
		t.Fatalf("List against a closed port: err %v (must fail without the SAS)", err)
	}
	// And the guard refuses a host it was not configured for.
	g := &guardedTransport{host: "127.0.0.1:1"}
	req, _ := http.NewRequest(http.MethodGet, other.URL, nil)
	if _, err := g.Do(req); err == nil || elsewhere.Load() != 0 {
		t.Fatalf("guard let a request to %s through (err %v)", other.URL, err)
	}
}
