package blob

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/vigil-sec/vigil/pipeline/connector"
	"github.com/vigil-sec/vigil/pipeline/connector/file"
	"github.com/vigil-sec/vigil/pipeline/connector/internal/conntest"
	"github.com/vigil-sec/vigil/pipeline/kafkatest"
)

func TestMain(m *testing.M) { kafkatest.Main(m) }

// Invented NSG flow-log records (version 2 tuples) and sign-in lines.
const (
	flow1 = `{"time":"2024-03-01T10:01:00.0000000Z","systemId":"11111111-2222-3333-4444-555555555555","macAddress":"000D3A000001","category":"NetworkSecurityGroupFlowEvent","resourceId":"/SUBSCRIPTIONS/00000000-0000-0000-0000-000000000000/RESOURCEGROUPS/RG1/PROVIDERS/MICROSOFT.NETWORK/NETWORKSECURITYGROUPS/NSG1","operationName":"NetworkSecurityGroupFlowEvents","properties":{"Version":2,"flows":[{"rule":"DefaultRule_DenyAllInBound","flows":[{"mac":"000D3A000001","flowTuples":["1709287260,198.51.100.7,10.0.0.4,52211,3389,T,I,D,B,,,,"]}]}]}}`
	flow2 = `{"time":"2024-03-01T10:02:00.0000000Z","category":"NetworkSecurityGroupFlowEvent","properties":{"Version":2,"flows":[]}}`
	flow3 = `{"time":"2024-03-01T10:03:00.0000000Z","category":"NetworkSecurityGroupFlowEvent","properties":{"Version":2,"flows":[{"rule":"UserRule_AllowRDP","flows":[]}]}}`
	sign1 = `{"time":"2024-03-01T10:00:00.1234567Z","category":"SignInLogs","resultType":"50126","properties":{"userPrincipalName":"ann@contoso.test"}}`
	sign2 = `{"time":"2024-03-01T10:00:05.0000000Z","category":"SignInLogs","resultType":"0","properties":{"userPrincipalName":"bob@contoso.test"}}`
	sign3 = `{"time":"2024-03-01T10:07:00Z","category":"SignInLogs","resultType":"0"}`
)

const nsgPath = "insights-logs-networksecuritygroupflowevent/resourceId=/SUBSCRIPTIONS/00000000-0000-0000-0000-000000000000/RESOURCEGROUPS/RG1/PROVIDERS/MICROSOFT.NETWORK/NETWORKSECURITYGROUPS/NSG1/y=2024/m=03/d=01/h=10/m=00/macAddress=000D3A000001/PT1H.json"
const signPath = "insights-logs-signinlogs/resourceId=/tenants/00000000-0000-0000-0000-000000000001/providers/Microsoft.aadiam/y=2024/m=03/d=01/h=10/m=00/PT1H.json"

// nsgDoc renders a flow-log document as Azure writes it: pretty, CRLF.
func nsgDoc(recs ...string) string {
	return "{\r\n\"records\":\r\n[\r\n" + strings.Join(recs, "\r\n,\r\n") + "\r\n]\r\n}"
}

func put(t *testing.T, root, rel, content string) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	// Mtime resolution can be coarse: make every write visible.
	later := time.Now().Add(time.Duration(len(content)) * time.Millisecond)
	_ = os.Chtimes(p, later, later)
}

func TestParseDocument(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []string
		err  bool
	}{
		{"pretty", nsgDoc(flow1, flow2), []string{flow1, flow2}, false},
		{"minified", `{"records":[` + flow2 + `,` + flow3 + `]}`, []string{flow2, flow3}, false},
		{"other keys", `{"x":{"records":1},"records":[` + flow2 + `],"y":[]}`, []string{flow2}, false},
		{"empty", `{"records":[]}`, nil, false},
		{"mid-write", "{\r\n\"records\":\r\n[\r\n" + flow1 + "\r\n,\r\n{\"time\":", nil, true},
		{"not object", `[1]`, nil, true},
		{"records not array", `{"records":{}}`, nil, true},
	}
	for _, tt := range tests {
		got, ends, err := parseDocument([]byte(tt.doc))
		if (err != nil) != tt.err {
			t.Errorf("%s: err %v", tt.name, err)
			continue
		}
		if len(got) != len(tt.want) {
			t.Errorf("%s: got %d records", tt.name, len(got))
			continue
		}
		for i := range got {
			if string(got[i]) != tt.want[i] || !strings.HasSuffix(tt.doc[:ends[i]], tt.want[i]) {
				t.Errorf("%s: record %d = %q end %d", tt.name, i, got[i], ends[i])
			}
		}
	}
}

func FuzzParseDocument(f *testing.F) {
	f.Add([]byte(nsgDoc(flow1, flow2)))
	f.Add([]byte(`{"records":[{}],"a":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, ends, err := parseDocument(b)
		if err != nil {
			return
		}
		for i, r := range recs {
			if !json.Valid(r) || ends[i] > int64(len(b)) {
				t.Fatalf("record %q end %d", r, ends[i])
			}
		}
	})
}

func TestSourceOfAndList(t *testing.T) {
	root := t.TempDir()
	put(t, root, nsgPath, nsgDoc(flow1))
	put(t, root, signPath, sign1+"\n")
	put(t, root, "insights-logs-signinlogs/other.json", sign1+"\n")
	put(t, root, "unrelated/PT1H.json", sign1+"\n")
	got, err := List(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || SourceOf(root, got[0]) != "networksecuritygroupflowevent" || SourceOf(root, got[1]) != "signinlogs" {
		t.Fatalf("List = %q", got)
	}
}

// TestDirGrowingBlobs: a growing NSG document and a growing JSON-lines
// blob; each pass produces only what is new, a restart with the
// checkpoint produces nothing again, and a replaced blob is read whole.
func TestDirGrowingBlobs(t *testing.T) {
	prefix := kafkatest.TopicPrefix(t)
	nsgTopic := conntest.Topic(t, prefix+"raw.networksecuritygroupflowevent", 1)
	signTopic := conntest.Topic(t, prefix+"raw.signinlogs", 1)
	root := t.TempDir()
	cpPath := filepath.Join(t.TempDir(), "blob.checkpoint")
	cl := kafkatest.Client(t)
	d := &Dir{Root: root, Options: Options{Prefix: prefix, Checkpoint: cpPath, Logger: zerolog.Nop(), Metrics: connector.NewMetrics(nil)}}
	pass := func(want int) {
		t.Helper()
		cp, err := file.LoadCheckpoints(cpPath)
		if err != nil {
			t.Fatal(err)
		}
		n, err := d.Pass(context.Background(), cl, cp)
		if err != nil || n != want {
			t.Fatalf("pass produced %d (%v), want %d", n, err, want)
		}
	}

	put(t, root, nsgPath, nsgDoc(flow1, flow2))
	put(t, root, signPath, "\xef\xbb\xbf"+sign1+"\r\n"+sign2+"\r\n")
	pass(3)
	put(t, root, nsgPath, nsgDoc(flow1, flow2, flow3))
	put(t, root, signPath, "\xef\xbb\xbf"+sign1+"\r\n"+sign2+"\r\n"+sign3) // last line without newline
	pass(2)
	pass(0)
	// Mid-write document: nothing, and nothing lost once it completes.
	put(t, root, nsgPath, nsgDoc(flow1, flow2, flow3)[:len(nsgDoc(flow1, flow2, flow3))-3]+",\r\n{\"time\":")
	pass(0)
	put(t, root, nsgPath, nsgDoc(flow1, flow2, flow3, flow2))
	pass(1)

	// Restart through Run with the same checkpoint: nothing new.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	if err := (&Dir{Root: root, Options: Options{Prefix: prefix, Checkpoint: cpPath, Poll: 50 * time.Millisecond, Logger: zerolog.Nop()}}).Run(ctx, cl); err != nil {
		t.Fatal(err)
	}
	cancel()
	// Replaced blob (a new hour's content under the same name).
	put(t, root, nsgPath, nsgDoc(flow3))
	pass(1)

	envs := conntest.Values(conntest.Consume(t, nsgTopic, 5, time.Second))
	want := []string{
		`{"records":[` + flow1 + `,` + flow2 + `]}`,
		`{"records":[` + flow3 + `]}`,
		`{"records":[` + flow2 + `]}`,
		`{"records":[` + flow3 + `]}`,
	}
	if strings.Join(envs, "\n") != strings.Join(want, "\n") {
		t.Fatalf("NSG topic holds\n%s\nwant\n%s", strings.Join(envs, "\n"), strings.Join(want, "\n"))
	}
	lines := conntest.Values(conntest.Consume(t, signTopic, 4, time.Second))
	if strings.Join(lines, "\n") != strings.Join([]string{sign1, sign2, sign3}, "\n") {
		t.Fatalf("sign-in topic holds %q", lines)
	}
}

// TestDirSample reads the real NSG flow log sample laid out as a blob: one
// envelope with every record of the sample.
func TestDirSample(t *testing.T) {
	samples := conntest.Samples(t)
	b, err := os.ReadFile(filepath.Join(samples, "nsg-flow", "azure-docs_nsg-flow-logs-overview_v2_sample.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ Records []json.RawMessage }
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	prefix := kafkatest.TopicPrefix(t)
	topic := conntest.Topic(t, prefix+"raw.nsg", 1)
	root := t.TempDir()
	put(t, root, nsgPath, string(b))
	cp, _ := file.LoadCheckpoints("")
	n, err := (&Dir{Root: root, Options: Options{Prefix: prefix, Source: "nsg"}}).Pass(context.Background(), kafkatest.Client(t), cp)
	if err != nil || n != 1 {
		t.Fatalf("Pass = %d, %v", n, err)
	}
	got := conntest.Consume(t, topic, 1, 5*time.Second)
	var env struct{ Records []json.RawMessage }
	if len(got) != 1 || json.Unmarshal(got[0].Value, &env) != nil || len(env.Records) != len(doc.Records) {
		t.Fatalf("got %d records, envelope of %d, want %d", len(got), len(env.Records), len(doc.Records))
	}
}

// TestReaderRangedReads runs the Reader over a DirStore that counts what
// it reads: a grown document costs its head and its new bytes, an
// unchanged pass reads nothing, and a document whose end was rewritten
// (not a continuation) is parsed whole without re-sending records.
func TestReaderRangedReads(t *testing.T) {
	prefix := kafkatest.TopicPrefix(t)
	topic := conntest.Topic(t, prefix+"raw.nsg", 1)
	root := t.TempDir()
	cs := &countingStore{Store: DirStore{Root: root}}
	r := &Reader{Store: cs, Options: Options{Source: "nsg", Prefix: prefix, Logger: zerolog.Nop()}}
	cp, _ := file.LoadCheckpoints("")
	cl := kafkatest.Client(t)
	pass := func(want int, wantRead int64) {
		t.Helper()
		cs.read.Store(0)
		n, err := r.Pass(context.Background(), cl, cp)
		if err != nil || n != want {
			t.Fatalf("pass produced %d (%v), want %d", n, err, want)
		}
		if wantRead >= 0 && cs.read.Load() != wantRead {
			t.Fatalf("pass read %d bytes, want %d", cs.read.Load(), wantRead)
		}
	}
	first := []string{flow1, flow2, flow1, flow2}
	doc := nsgDoc(first...)
	put(t, root, nsgPath, doc)
	pass(1, int64(len(doc)))
	pass(0, 0)
	grown := nsgDoc(append(first, flow3)...)
	put(t, root, nsgPath, grown)
	tailLen := len(grown) - (strings.LastIndex(doc, flow2) + len(flow2))
	pass(1, file.HeadLen+int64(tailLen))
	// The end rewritten with another key: parsed whole, nothing re-sent,
	// then the next record appended to that shape is sent alone.
	put(t, root, nsgPath, strings.TrimSuffix(grown, "\r\n}")+`,"x":1}`)
	pass(0, -1)
	put(t, root, nsgPath, strings.TrimSuffix(nsgDoc(append(first, flow3, flow2)...), "\r\n}")+`,"x":1}`)
	pass(1, -1)
	got := conntest.Values(conntest.Consume(t, topic, 4, time.Second))
	want := []string{`{"records":[` + strings.Join(first, ",") + `]}`, `{"records":[` + flow3 + `]}`, `{"records":[` + flow2 + `]}`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("topic holds\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestDirStoreReadRangeShrunk(t *testing.T) {
	root := t.TempDir()
	put(t, root, nsgPath, nsgDoc(flow1))
	objs, err := DirStore{Root: root}.List(context.Background())
	if err != nil || len(objs) != 1 || objs[0].Container != "insights-logs-networksecuritygroupflowevent" {
		t.Fatalf("List = %+v, %v", objs, err)
	}
	put(t, root, nsgPath, "{}")
	if _, err := (DirStore{Root: root}).ReadRange(context.Background(), objs[0], 0, objs[0].Size); !errors.Is(err, ErrChanged) {
		t.Fatalf("ReadRange of a shrunk file: %v, want ErrChanged", err)
	}
}
