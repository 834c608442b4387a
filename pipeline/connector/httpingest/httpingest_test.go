package httpingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-sec/vigil/pipeline/connector"
	"github.com/vigil-sec/vigil/pipeline/connector/internal/conntest"
	"github.com/vigil-sec/vigil/pipeline/kafkatest"
)

func TestMain(m *testing.M) { kafkatest.Main(m) }

// Invented records in the real formats (a Defender XDR streaming envelope
// record, an Entra sign-in record).
const (
	recA = `{"time":"2024-03-01T10:00:00.1234567Z","category":"AdvancedHunting-DeviceProcessEvents","properties":{"DeviceName":"ws-017.contoso.test","FileName":"powershell.exe"}}`
	recB = `{"time":"2024-03-01T10:00:01Z","category":"SignInLogs","resultType":"50126","properties":{"userPrincipalName":"ann@contoso.test","ipAddress":"203.0.113.9"}}`
	recC = `{ "time" : "2024-03-01T10:00:02Z", "category": "AuditLogs" }`
)

func TestSplit(t *testing.T) {
	envelope := `{"records":[` + recA + `,` + recB + `]}`
	tests := []struct {
		name    string
		body    string
		want    []string
		wantErr string
	}{
		{"array", "[" + recA + ",\n  " + recB + "]", []string{recA, recB}, ""},
		{"single object", recC, []string{recC}, ""},
		{"envelope passes whole", envelope, []string{envelope}, ""},
		{"pretty envelope", "{\n  \"records\": [\n    " + recA + "\n  ]\n}\n", []string{"{\n  \"records\": [\n    " + recA + "\n  ]\n}"}, ""},
		{"json lines", recA + "\n" + recB + "\n" + recC + "\n", []string{recA, recB, recC}, ""},
		{"json lines CRLF BOM", "\xef\xbb\xbf" + recA + "\r\n" + recB + "\r\n", []string{recA, recB}, ""},
		{"lines of arrays", "[" + recA + "]\n[" + recB + "," + recC + "]", []string{recA, recB, recC}, ""},
		{"empty", "  \n", nil, "no records"},
		{"empty array", "[]", nil, "no records"},
		{"truncated", `{"a":1`, nil, "value 1"},
		{"bad second line", recA + "\n{\"a\":}\n", nil, "value 2"},
		{"number", "42", nil, "JSON object"},
		{"array of strings", `["x"]`, nil, "element 0"},
		{"null", "null", nil, "JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Split([]byte(tt.body))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d records %q, want %d", len(got), got, len(tt.want))
			}
			for i := range got {
				if string(got[i]) != tt.want[i] {
					t.Errorf("record %d = %q, want %q (bytes as sent)", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func FuzzSplit(f *testing.F) {
	for _, s := range []string{recA, "[" + recA + "," + recB + "]", recA + "\n" + recB, `{"records":[]}`, "[1]", "\xef\xbb\xbf{}", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		recs, err := Split(body)
		if err != nil {
			return
		}
		for _, r := range recs {
			if !json.Valid(r) || r[0] != '{' {
				t.Fatalf("record %q is not a JSON object", r)
			}
		}
	})
}

type env struct {
	prefix string
	url    string
	reg    *prometheus.Registry
	m      *connector.Metrics
}

// setup serves a handler over a real client of the test broker, with the
// raw topics of sources created.
func setup(t *testing.T, opts Options, sources ...string) env {
	t.Helper()
	prefix := kafkatest.TopicPrefix(t)
	for _, s := range sources {
		conntest.Topic(t, connector.RawTopic(prefix, s), 1)
	}
	reg := prometheus.NewRegistry()
	opts.Prefix = prefix
	opts.Metrics = connector.NewMetrics(reg)
	h, err := NewHandler(kafkatest.Client(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return env{prefix: prefix, url: srv.URL, reg: reg, m: opts.Metrics}
}

func post(t *testing.T, url, body string, hdr map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func gz(t *testing.T, s string) string {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	if _, err := w.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func counter(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// TestIngestShapesReachKafka posts each body shape and reads the records
// back from the broker: the values are the bytes as sent, with the raw
// record headers.
func TestIngestShapesReachKafka(t *testing.T) {
	now := time.Date(2024, 3, 1, 10, 0, 5, 0, time.UTC)
	e := setup(t, Options{Token: "s3cret-token", Now: func() time.Time { return now }}, "defender")
	auth := map[string]string{"Authorization": "Bearer s3cret-token"}
	authGz := map[string]string{"Authorization": "Bearer s3cret-token", "Content-Encoding": "gzip"}
	envelope := `{"records":[` + recA + `,` + recB + `]}`
	posts := []struct {
		name string
		body string
		hdr  map[string]string
		want int
	}{
		{"array", "[" + recA + "," + recB + "]", auth, 2},
		{"envelope", envelope, auth, 1},
		{"single", recC, auth, 1},
		{"json lines", recA + "\r\n" + recC + "\n", auth, 2},
		{"gzip lines", gz(t, recB+"\n"+recC+"\n"), authGz, 2},
	}
	var want []string
	for _, p := range posts {
		status, body := post(t, e.url+"/ingest/defender", p.body, p.hdr)
		if status != http.StatusAccepted {
			t.Fatalf("%s: status %d %s", p.name, status, body)
		}
		var ack struct{ Accepted int }
		if err := json.Unmarshal([]byte(body), &ack); err != nil || ack.Accepted != p.want {
			t.Fatalf("%s: answer %s, want accepted %d", p.name, body, p.want)
		}
	}
	want = []string{recA, recB, envelope, recC, recA, recC, recB, recC}
	got := conntest.Consume(t, e.prefix+"raw.defender", len(want), 10*time.Second)
	if vs := conntest.Values(got); strings.Join(vs, "\n") != strings.Join(want, "\n") {
		t.Fatalf("raw topic holds\n%s\nwant\n%s", strings.Join(vs, "\n"), strings.Join(want, "\n"))
	}
	for _, r := range got {
		if conntest.Header(r, connector.HeaderSource) != "defender" ||
			conntest.Header(r, connector.HeaderConnector) != "http" ||
			conntest.Header(r, connector.HeaderReceived) != "2024-03-01T10:00:05Z" || r.Key != nil {
			t.Fatalf("record headers/key: %v key %q", r.Headers, r.Key)
		}
	}
	if n := counter(t, e.reg, "vigil_connector_records_total", map[string]string{"source": "defender"}); n != 8 {
		t.Errorf("records_total = %v, want 8", n)
	}
	if n := counter(t, e.reg, "vigil_connector_bytes_total", nil); n != float64(len(strings.Join(want, ""))) {
		t.Errorf("bytes_total = %v, want %d", n, len(strings.Join(want, "")))
	}
}

func TestIngestRefusals(t *testing.T) {
	e := setup(t, Options{Token: "s3cret-token", MaxBytes: 1024, Sources: []string{"entra", "defender"}}, "entra")
	ok := map[string]string{"Authorization": "Bearer s3cret-token"}
	big := "[" + strings.Repeat(recA+",", 10) + recA + "]"
	tests := []struct {
		name   string
		path   string
		body   string
		hdr    map[string]string
		status int
		reason string
		inBody string
	}{
		{"no token", "/ingest/entra", recB, nil, 401, connector.ReasonAuth, "token"},
		{"wrong token", "/ingest/entra", recB, map[string]string{"Authorization": "Bearer s3cret-tokeX"}, 401, connector.ReasonAuth, ""},
		{"token prefix", "/ingest/entra", recB, map[string]string{"Authorization": "Bearer s3cret"}, 401, connector.ReasonAuth, ""},
		{"basic scheme", "/ingest/entra", recB, map[string]string{"Authorization": "Basic s3cret-token"}, 401, connector.ReasonAuth, ""},
		{"too large", "/ingest/entra", big, ok, 413, connector.ReasonTooLarge, "limit"},
		{"gzip bomb", "/ingest/entra", gz(t, "["+strings.Repeat(" ", 4096)+"]"), map[string]string{"Authorization": "Bearer s3cret-token", "Content-Encoding": "gzip"}, 413, connector.ReasonTooLarge, "decoded"},
		{"bad gzip", "/ingest/entra", "not gzip", map[string]string{"Authorization": "Bearer s3cret-token", "Content-Encoding": "gzip"}, 400, connector.ReasonBadInput, "gzip"},
		{"brotli", "/ingest/entra", recB, map[string]string{"Authorization": "Bearer s3cret-token", "Content-Encoding": "br"}, 415, connector.ReasonBadInput, "br"},
		{"malformed json", "/ingest/entra", `{"a":`, ok, 400, connector.ReasonBadJSON, "value 1"},
		{"second line malformed", "/ingest/entra", recB + "\n{oops}\n", ok, 400, connector.ReasonBadJSON, "value 2"},
		{"empty body", "/ingest/entra", "", ok, 400, connector.ReasonBadJSON, "no records"},
		{"bad source", "/ingest/.hidden", recB, ok, 400, connector.ReasonBadSource, "invalid source"},
		{"bad source chars", "/ingest/a%20b", recB, ok, 400, connector.ReasonBadSource, "invalid source"},
		{"unconfigured source", "/ingest/entra2", recB, ok, 400, connector.ReasonBadSource, "not configured"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := counter(t, e.reg, "vigil_connector_errors_total", map[string]string{"reason": tt.reason})
			status, body := post(t, e.url+tt.path, tt.body, tt.hdr)
			if status != tt.status {
				t.Fatalf("status %d %s, want %d", status, body, tt.status)
			}
			if !strings.Contains(body, tt.inBody) {
				t.Errorf("answer %q does not say %q", body, tt.inBody)
			}
			if strings.Contains(body, "s3cret") {
				t.Errorf("answer leaks the token: %s", body)
			}
			if after := counter(t, e.reg, "vigil_connector_errors_total", map[string]string{"reason": tt.reason}); after != before+1 {
				t.Errorf("errors_total{reason=%s} went %v -> %v", tt.reason, before, after)
			}
		})
	}
	// Nothing refused reached Kafka; a good post afterwards does.
	if status, body := post(t, e.url+"/ingest/entra", recB, ok); status != 202 {
		t.Fatalf("good post: %d %s", status, body)
	}
	got := conntest.Consume(t, e.prefix+"raw.entra", 2, 2*time.Second)
	if len(got) != 1 || string(got[0].Value) != recB {
		t.Fatalf("raw.entra holds %q, want only the good record", conntest.Values(got))
	}
	// GET is not routed to the handler.
	resp, err := http.Get(e.url + "/ingest/entra")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET status %d, want 405", resp.StatusCode)
	}
}

// TestIngest503WhenKafkaFails: when the produce fails (here a closed
// client: deterministic on every broker) the answer is 503, never 202.
func TestIngest503WhenKafkaFails(t *testing.T) {
	prefix := kafkatest.TopicPrefix(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafkatest.Brokers(t)...))
	if err != nil {
		t.Fatal(err)
	}
	cl.Close()
	reg := prometheus.NewRegistry()
	h, err := NewHandler(cl, Options{Prefix: prefix, Metrics: connector.NewMetrics(reg)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	status, body := post(t, srv.URL+"/ingest/nosuchtopic", recA, nil)
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "retry") {
		t.Fatalf("status %d %s, want 503", status, body)
	}
	if n := counter(t, reg, "vigil_connector_errors_total", map[string]string{"reason": connector.ReasonProduce}); n != 1 {
		t.Errorf("errors{produce} = %v", n)
	}
}

// TestServerRun runs the connector form: it serves on a listener and stops
// when its context is cancelled.
func TestServerRun(t *testing.T) {
	prefix := kafkatest.TopicPrefix(t)
	conntest.Topic(t, prefix+"raw.syslogjson", 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Listener: ln, Options: Options{Prefix: prefix, Name: "http-edge"}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, kafkatest.Client(t)) }()
	status, body := post(t, "http://"+ln.Addr().String()+"/ingest/syslogjson", recC, nil)
	if status != 202 {
		t.Fatalf("status %d %s", status, body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v after cancel", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	got := conntest.Consume(t, prefix+"raw.syslogjson", 1, 5*time.Second)
	if len(got) != 1 || conntest.Header(got[0], connector.HeaderConnector) != "http-edge" {
		t.Fatalf("got %v", got)
	}
	if s.Name() != "http-edge" {
		t.Errorf("Name = %q", s.Name())
	}
}

// BenchmarkIngest posts 500-record JSON arrays through the handler to the
// test broker (kfake in-process unless VIGIL_KAFKA_BROKERS is set): the
// whole path, including ProduceSync's round trip.
func BenchmarkIngest(b *testing.B) {
	prefix := kafkatest.TopicPrefix(b)
	conntest.Topic(b, prefix+"raw.bench", 1)
	h, err := NewHandler(kafkatest.Client(b), Options{Prefix: prefix})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	body := "[" + strings.Repeat(recA+",", 499) + recA + "]"
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		resp, err := http.Post(srv.URL+"/ingest/bench", "application/json", strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			b.Fatal(resp.Status)
		}
	}
	b.ReportMetric(float64(b.N)*500/b.Elapsed().Seconds(), "records/s")
}
