package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-sec/vigil/pipeline/app"
	"github.com/vigil-sec/vigil/pipeline/config"
	"github.com/vigil-sec/vigil/pipeline/connector"
	"github.com/vigil-sec/vigil/pipeline/connector/blob"
	"github.com/vigil-sec/vigil/pipeline/connector/file"
	"github.com/vigil-sec/vigil/pipeline/connector/kafkasrc"
	"github.com/vigil-sec/vigil/pipeline/connector/syslog"
	"github.com/vigil-sec/vigil/pipeline/incident"
	"github.com/vigil-sec/vigil/pipeline/kafkatest"
)

// freeTCP and freeUDP return a loopback address that was free a moment
// ago (the listener is closed again so the connector can bind it).
func freeTCP(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func freeUDP(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().String()
}

// encodedPowerShell is a Defender XDR DeviceProcessEvents record in the
// streaming API's envelope, one line, with invented values: PowerShell
// started with -enc and a base64 command.
func encodedPowerShell(device string) string {
	now := time.Now().UTC().Format(time.RFC3339Nano)
	return fmt.Sprintf(`{"records":[{"time":%q,"tenantId":"00000000-0000-4000-8000-00000000c0de","operationName":"Publish","category":"AdvancedHunting-DeviceProcessEvents","properties":{"Timestamp":%q,"DeviceId":"5e1f0c2a9b7d4e3f8a6c1b2d3e4f5a6b7c8d9e0f","DeviceName":%q,"ActionType":"ProcessCreated","FileName":"powershell.exe","FolderPath":"C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe","ProcessCommandLine":"powershell.exe -NoP -W Hidden -enc SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQAKQA=","SHA256":"9f2c0e7a1b3d5f7092a4c6e8f0b2d4f6a8c0e2f4b6d8f0a2c4e6f8a0b2d4f6a8","AccountDomain":"contoso-test","AccountName":"avery.lin","AccountUpn":"avery.lin@contoso-test.example","InitiatingProcessFileName":"winword.exe","InitiatingProcessCommandLine":"\"WINWORD.EXE\" /n","ReportId":4711}}]}`,
		now, now, device)
}

// The connectors stage, from configuration, in one process with the
// other stages: a syslog listener on TCP and UDP and a tailed directory.
// A CEF line sent over TCP (and one over UDP) lands in raw.syslog with the
// raw-record headers; an encoded-PowerShell process event written to the
// watched file goes file → raw.defender → normalize → correlate →
// incident.
func TestConnectorsStage(t *testing.T) {
	a := newApp(t)
	watched := t.TempDir()
	tcpAddr, udpAddr := freeTCP(t), freeUDP(t)
	a.Cfg.Stages = []string{config.StageConnectors, config.StageNormalize, config.StageCorrelate, config.StageIncident}
	a.Cfg.Topics.Sources = []string{"entra"} // the connectors add syslog and defender
	a.Cfg.Connectors = config.Connectors{
		Syslog: config.SyslogConnector{TCP: tcpAddr, UDP: udpAddr, Source: "syslog", MaxMessageBytes: 4096},
		Files:  []config.FileConnector{{Path: watched, Pattern: "*.json", Source: "defender"}},
	}
	if err := a.Cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := a.Sources(); !slices.Equal(got, []string{"entra", "syslog", "defender"}) {
		t.Fatalf("Sources() = %q", got)
	}
	runApp(t, a)

	// The listener binds when its connector starts: retry the dial.
	var conn net.Conn
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", tcpAddr)
		if err == nil {
			conn = c
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("syslog TCP listener never accepted: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	defer conn.Close()
	tcpLine := "<134>May 18 16:02:00 fw-edge-01 CEF:0|Contoso|EdgeWall|4.2|2001|ssl-vpn tunnel-up|3|rt=1767225600000 src=198.51.100.23 spt=51000 dst=192.0.2.10 dpt=443 suser=avery.lin act=tunnel-up"
	if _, err := fmt.Fprint(conn, tcpLine+"\n"); err != nil {
		t.Fatal(err)
	}
	// The UDP socket is bound before the TCP one, so it is up by now.
	udpLine := "<134>May 18 16:02:01 fw-edge-01 CEF:0|Contoso|EdgeWall|4.2|3001|deny|5|src=203.0.113.7 dst=192.0.2.10 dpt=22 act=deny"
	uc, err := net.Dial("udp", udpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	if _, err := fmt.Fprint(uc, udpLine); err != nil {
		t.Fatal(err)
	}

	if err := os.WriteFile(filepath.Join(watched, "ignored.txt"), []byte(encodedPowerShell("not-read.contoso-test.example")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(watched, "export.json"), []byte(encodedPowerShell("lab-ws-12.contoso-test.example")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	in := waitIncident(t, a, func(in *incident.Incident) bool {
		return slices.Contains(in.Rules, "endpoint.encoded_powershell")
	})
	ents := map[string]bool{}
	for _, e := range in.Entities {
		ents[string(e.Type)+"="+e.Value] = true
	}
	if !ents["device=lab-ws-12.contoso-test.example"] || ents["device=not-read.contoso-test.example"] {
		t.Errorf("incident entities %v: want the device of export.json only (pattern *.json)", in.Entities)
	}

	// Both CEF lines are in raw.syslog, as received, with the headers.
	cl := kafkatest.Client(t, kgo.ConsumeTopics(a.Cfg.Topics.Raw("syslog")), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got := map[string]map[string]string{}
	for len(got) < 2 && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			h := map[string]string{}
			for _, x := range r.Headers {
				h[x.Key] = string(x.Value)
			}
			got[string(r.Value)] = h
		})
	}
	for _, line := range []string{tcpLine, udpLine} {
		h, ok := got[line]
		if !ok {
			t.Errorf("raw.syslog lacks %q (got %d records)", line, len(got))
			continue
		}
		if h[connector.HeaderSource] != "syslog" || h[connector.HeaderConnector] != "syslog" || h[connector.HeaderReceived] == "" {
			t.Errorf("headers of %q = %v", line, h)
		}
	}

	// The file connector keeps its default checkpoint under data_dir.
	cp := a.Cfg.Connectors.Files[0].CheckpointPath(a.Cfg.DataDir)
	for deadline := time.Now().Add(10 * time.Second); ; {
		b, err := os.ReadFile(cp)
		if err == nil && strings.Contains(string(b), "export.json") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("checkpoint %s never recorded export.json: %v %s", cp, err, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A connector that cannot run stops the app, and the error names it.
func TestConnectorFailureStopsApp(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	a := newApp(t)
	a.Cfg.Stages = []string{config.StageConnectors, config.StageNormalize}
	a.Cfg.Connectors.Syslog.TCP = busy.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	err = a.Run(ctx)
	if ctx.Err() != nil {
		t.Fatal("app kept running with a connector that cannot listen")
	}
	if err == nil || !strings.Contains(err.Error(), "connector syslog:") || !strings.Contains(err.Error(), busy.Addr().String()) {
		t.Fatalf("Run = %v, want the syslog connector's listen error", err)
	}
}

// Connectors builds one connector per configured entry, of the right
// kind, with names unique in the process; without the connectors stage
// their sources still get raw topics.
func TestConnectorsFromConfig(t *testing.T) {
	a := newApp(t)
	eh := config.Secret("Endpoint=sb://ns-test.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey=ZmFrZQ==")
	a.Cfg.Connectors = config.Connectors{
		Syslog: config.SyslogConnector{UDP: "127.0.0.1:0", Source: "cef", MaxMessageBytes: 1024},
		Kafka: []config.KafkaConnector{
			{Name: "eh-defender", Source: "defender", Topics: []string{"insights-logs-advancedhunting-deviceprocessevents"}, EventHubsConnectionString: eh},
		},
		Files: []config.FileConnector{
			{Path: t.TempDir(), Source: "app"},
			{Path: t.TempDir(), Source: "app"},
		},
		BlobDirs: []config.BlobDirConnector{{Root: t.TempDir(), Source: "network"}},
	}
	cs, err := a.Connectors()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range cs {
		names = append(names, c.Name())
	}
	if want := []string{"syslog", "kafka-eh-defender", "file-app", "file-app-2", "blob-network"}; !slices.Equal(names, want) {
		t.Fatalf("names = %q, want %q", names, want)
	}
	if l, ok := cs[0].(*syslog.Listener); !ok || l.Source != "cef" || l.MaxMessageBytes != 1024 || l.Prefix != a.Cfg.Topics.Prefix {
		t.Errorf("syslog = %#v", cs[0])
	}
	if k, ok := cs[1].(*kafkasrc.Consumer); !ok || k.Group != "vigil-eh-defender" || k.Source != "defender" || len(k.ClientOpts) == 0 {
		t.Errorf("kafka = %#v", cs[1])
	}
	f1, ok1 := cs[2].(*file.File)
	f2, ok2 := cs[3].(*file.File)
	if !ok1 || !ok2 || f1.Checkpoint == f2.Checkpoint || !strings.HasPrefix(f1.Checkpoint, filepath.Join(a.Cfg.DataDir, "connectors")) {
		t.Errorf("files = %#v, %#v", cs[2], cs[3])
	}
	if st, err := os.Stat(filepath.Dir(f1.Checkpoint)); err != nil || !st.IsDir() {
		t.Errorf("checkpoint directory not created: %v", err)
	}
	if b, ok := cs[4].(*blob.Dir); !ok || b.Source != "network" {
		t.Errorf("blob = %#v", cs[4])
	}
	// Not running the stage: the raw topics exist all the same, so
	// another process's connectors can write and this normalize reads.
	if a.Cfg.HasStage(config.StageConnectors) {
		t.Fatal("connectors must not be a default stage")
	}
	var topics []string
	for _, s := range a.Topics() {
		topics = append(topics, s.Name)
	}
	for _, src := range []string{"cef", "defender", "app", "network"} {
		if !slices.Contains(topics, a.Cfg.Topics.Raw(src)) {
			t.Errorf("topics lack %s", a.Cfg.Topics.Raw(src))
		}
	}

	// A bad syslog certificate is reported with its key at build time.
	a.Cfg.Connectors.Syslog.TCP = "127.0.0.1:0"
	a.Cfg.Connectors.Syslog.TLS = config.ServerTLS{CertFile: filepath.Join(t.TempDir(), "missing.pem"), KeyFile: "k.pem"}
	if _, err := a.Connectors(); err == nil || !strings.Contains(err.Error(), "connectors.syslog.tls") {
		t.Errorf("bad certificate: err = %v", err)
	}
}

// Environment of the Azurite test, as in pipeline/connector/blob.
const (
	envAzuriteURL     = "VIGIL_AZURITE_URL"     // blob endpoint printed by deploy/azurite/azurite.sh start
	envRequireAzurite = "VIGIL_REQUIRE_AZURITE" // 1: fail instead of skipping (CI)
	// azuriteKey is the public key of Azurite's development account
	// (devstoreaccount1, documented in Azurite's README).
	azuriteKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// azuriteURL returns the Azurite blob endpoint, or skips (fails with
// VIGIL_REQUIRE_AZURITE=1) when none is configured or it does not answer.
func azuriteURL(t *testing.T) string {
	t.Helper()
	skip := func(msg string) {
		switch os.Getenv(envRequireAzurite) {
		case "1", "true", "yes", "on":
			t.Fatalf("%s=1 but %s", envRequireAzurite, msg)
		}
		t.Skip(msg)
	}
	raw := strings.TrimSuffix(os.Getenv(envAzuriteURL), "/")
	if raw == "" {
		skip(envAzuriteURL + " is unset: start Azurite with `deploy/azurite/azurite.sh start` and export " +
			envAzuriteURL + "=<the URL it prints> (scripts/test.sh does both when npm is installed)")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		t.Fatalf("%s=%q is not a URL", envAzuriteURL, raw)
	}
	c, err := net.DialTimeout("tcp", u.Host, 2*time.Second)
	if err != nil {
		skip(fmt.Sprintf("Azurite at %s (%s) is not reachable: %v; start it with `deploy/azurite/azurite.sh start`", raw, envAzuriteURL, err))
	}
	c.Close()
	return raw
}

// nsgFlowDocument is a PT1H.json of the
// insights-logs-networksecuritygroupflowevent container as Azure writes
// it (pretty, CRLF), version 2 tuples, invented values.
func nsgFlowDocument(ts time.Time, resourceID string, tuples ...string) string {
	var recs []string
	for i, tu := range tuples {
		recs = append(recs, fmt.Sprintf(`{ "time": %q, "systemId": "7d1e3c5a-9b2f-4c6e-8a0d-2f4b6d8e0a1c", "macAddress": "000D3A7F22B%d", "category": "NetworkSecurityGroupFlowEvent", "resourceId": %q, "operationName": "NetworkSecurityGroupFlowEvents", "properties": {"Version":2,"flows":[{"rule":"DefaultRule_AllowVnetOutBound","flows":[{"mac":"000D3A7F22B%d","flowTuples":[%q]}]}]}}`,
			ts.Add(time.Duration(i)*time.Second).UTC().Format("2006-01-02T15:04:05.0000000Z"), i, resourceID, i, tu))
	}
	return "{\r\n\"records\":\r\n[\r\n" + strings.Join(recs, "\r\n,\r\n") + "\r\n]\r\n}"
}

// The connectors stage built from a configuration file naming an Azure
// storage account (Azurite), its shared key from the entry's variable:
// an NSG flow-log PT1H.json uploaded in the storage-account layout
// arrives, record by record, on raw.<source> with the connector's
// headers. No containers are configured, so the connector finds the
// insights-logs-* container itself; the blob prefix keeps it to this
// test's blobs.
func TestConnectorsAzureBlob(t *testing.T) {
	endpoint := azuriteURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	sub := fmt.Sprintf("%08X-0000-4000-8000-%012d", time.Now().UnixNano()&0xffffffff, time.Now().UnixNano()%1e12)
	resourceID := "/SUBSCRIPTIONS/" + sub + "/RESOURCEGROUPS/VIGIL-TEST/PROVIDERS/MICROSOFT.NETWORK/NETWORKSECURITYGROUPS/APP-NSG"
	prefix := "resourceId=" + resourceID + "/"
	const container = "insights-logs-networksecuritygroupflowevent"
	blobName := prefix + "y=2031/m=01/d=02/h=03/m=00/macAddress=000D3A7F22B0/PT1H.json"

	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "vigil.yaml")
	yaml := fmt.Sprintf(`stages: [connectors]
data_dir: %q
connectors:
  azure_blobs:
    - name: azurite
      source: nsgflow
      service_url: %s
      blob_prefix: %q
      poll_interval: 1s
`, filepath.Join(dir, "data"), endpoint, prefix)
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgFile, []string{"VIGIL_CONNECTORS_AZURE_BLOBS_AZURITE_ACCOUNT_KEY=" + azuriteKey})
	if err != nil {
		t.Fatal(err)
	}
	if dump := cfg.Redacted(); strings.Contains(dump, azuriteKey) || !strings.Contains(dump, "account_key: '[redacted]'") {
		t.Fatalf("config dump shows the key or hides that it is set:\n%s", dump)
	}
	cfg.Kafka.Brokers = kafkatest.Brokers(t)
	cfg.Topics.Prefix = kafkatest.TopicPrefix(t)
	cfg.Topics.Partitions = 1
	cfg.Kafka.TransactionalIDPrefix = cfg.Topics.Prefix + "txn"
	cfg.Rules.Dirs = []string{filepath.Join(repoRoot(), "rules", "library")}
	a, err := app.New(cfg, zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel))
	if err != nil {
		t.Fatal(err)
	}
	cs, err := a.Connectors()
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 || cs[0].Name() != "azblob-azurite" {
		t.Fatalf("connectors = %v", cs)
	}
	if az, ok := cs[0].(*blob.Azure); !ok || az.Source != "nsgflow" || az.Poll != time.Second ||
		az.Account.AccountKey.Reveal() != azuriteKey || az.Account.ServiceURL != endpoint ||
		!strings.HasPrefix(az.Checkpoint, filepath.Join(dir, "data", "connectors", "azblob-nsgflow-")) {
		t.Fatalf("connector = %#v", cs[0])
	}

	// Upload the hour's blob, as the diagnostic setting would.
	cred, err := azblob.NewSharedKeyCredential("devstoreaccount1", azuriteKey)
	if err != nil {
		t.Fatal(err)
	}
	bc, err := azblob.NewClientWithSharedKeyCredential(endpoint+"/", cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bc.CreateContainer(ctx, container, nil); err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		t.Fatalf("create container: %v", err)
	}
	ts := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
	tuples := []string{
		fmt.Sprintf("%d,10.20.1.4,203.0.113.50,50111,443,T,O,A,B,,,,", ts.Unix()),
		fmt.Sprintf("%d,10.20.1.4,198.51.100.9,50112,22,T,O,D,B,,,,", ts.Unix()+1),
		fmt.Sprintf("%d,10.20.1.7,10.20.2.8,50113,3389,T,O,A,E,4,420,6,1180", ts.Unix()+2),
	}
	if _, err := bc.UploadBuffer(ctx, container, blobName, []byte(nsgFlowDocument(ts, resourceID, tuples...)), nil); err != nil {
		t.Fatalf("upload: %v", err)
	}
	t.Cleanup(func() { _, _ = bc.DeleteBlob(context.Background(), container, blobName, nil) })

	runApp(t, a)

	// The connector produces what a poll found as one {"records":[...]}
	// envelope, the records' bytes as stored, as Event Hubs delivers them.
	cl := kafkatest.Client(t, kgo.ConsumeTopics(cfg.Topics.Raw("nsgflow")), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var recs []json.RawMessage
	for len(recs) < len(tuples) && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			h := map[string]string{}
			for _, x := range r.Headers {
				h[x.Key] = string(x.Value)
			}
			if h[connector.HeaderSource] != "nsgflow" || h[connector.HeaderConnector] != "azblob-azurite" || h[connector.HeaderReceived] == "" {
				t.Errorf("headers = %v", h)
			}
			var env struct {
				Records []json.RawMessage `json:"records"`
			}
			if err := json.Unmarshal(r.Value, &env); err != nil {
				t.Fatalf("raw record is not a records envelope: %v\n%s", err, r.Value)
			}
			recs = append(recs, env.Records...)
		})
	}
	if len(recs) != len(tuples) {
		t.Fatalf("raw.nsgflow holds %d flow records, want %d", len(recs), len(tuples))
	}
	for i, raw := range recs {
		var rec struct {
			ResourceID string `json:"resourceId"`
			Properties struct {
				Flows []struct {
					Flows []struct {
						FlowTuples []string `json:"flowTuples"`
					} `json:"flows"`
				} `json:"flows"`
			} `json:"properties"`
		}
		if err := json.Unmarshal(raw, &rec); err != nil {
			t.Fatalf("record %d: %v\n%s", i, err, raw)
		}
		if rec.ResourceID != resourceID || len(rec.Properties.Flows) != 1 || rec.Properties.Flows[0].Flows[0].FlowTuples[0] != tuples[i] {
			t.Errorf("record %d = %s, want the record of tuple %q", i, raw, tuples[i])
		}
	}
}

// Each credential of an azure_blobs entry reaches the blob connector in
// the form it takes, and a setting the client refuses stops the build
// with the entry's key; no error carries the secret. No network: the
// clients are built, not called.
func TestConnectorsAzureBlobFromConfig(t *testing.T) {
	a := newApp(t)
	sas := "sv=2024-08-04&ss=b&srt=co&sp=rl&se=2031-01-01T00:00:00Z&sig=SW52ZW50ZWRTaWduYXR1cmVGb3JUZXN0cw%3D%3D"
	conn := "DefaultEndpointsProtocol=https;AccountName=flowacct;AccountKey=" + azuriteKey + ";EndpointSuffix=core.windows.net"
	a.Cfg.Connectors.AzureBlobs = []config.AzureBlobConnector{
		{Name: "key", Source: "network", AccountName: "flowacct", AccountKey: azuriteKey, Containers: []string{"insights-logs-flowlogflowevent"}},
		{Name: "sas", Source: "network", ServiceURL: "https://flowacct.blob.core.windows.net/insights-logs-networksecuritygroupflowevent", SASToken: config.Secret("?" + sas)},
		{Name: "conn", Source: "network", ConnectionString: config.Secret(conn), BlobPrefix: "resourceId=/SUBSCRIPTIONS/X/"},
	}
	if err := a.Cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cs, err := a.Connectors()
	if err != nil {
		t.Fatal(err)
	}
	var got []*blob.Azure
	for _, c := range cs {
		az, ok := c.(*blob.Azure)
		if !ok {
			t.Fatalf("%s is a %T", c.Name(), c)
		}
		got = append(got, az)
	}
	if len(got) != 3 || got[0].Name() != "azblob-key" || got[1].Name() != "azblob-sas" || got[2].Name() != "azblob-conn" {
		t.Fatalf("connectors = %v", cs)
	}
	if acct := got[0].Account; acct.AccountKey.Reveal() != azuriteKey || acct.AccountName != "flowacct" || acct.SASURL != "" || acct.Containers[0] != "insights-logs-flowlogflowevent" {
		t.Errorf("shared key account = %#v", acct)
	}
	if acct := got[1].Account; acct.SASURL.Reveal() != "https://flowacct.blob.core.windows.net/insights-logs-networksecuritygroupflowevent?"+sas || acct.ServiceURL != "" || acct.AccountKey != "" {
		t.Errorf("SAS account: service %q, SAS URL set %v", acct.ServiceURL, acct.SASURL != "")
	}
	if acct := got[2].Account; acct.ConnectionString.Reveal() != conn || acct.ServiceURL != "" || acct.BlobPrefix != "resourceId=/SUBSCRIPTIONS/X/" || got[2].Poll != config.DefaultAzureBlobPoll {
		t.Errorf("connection-string account = %#v", acct)
	}
	if got[0].Checkpoint == got[1].Checkpoint || got[1].Checkpoint == got[2].Checkpoint {
		t.Errorf("checkpoints shared: %q %q %q", got[0].Checkpoint, got[1].Checkpoint, got[2].Checkpoint)
	}

	// The SAS URL names one container; containers lists another: the blob
	// client refuses, and the error names the entry.
	a.Cfg.Connectors.AzureBlobs[1].Containers = []string{"insights-logs-other"}
	_, err = a.Connectors()
	if err == nil || !strings.Contains(err.Error(), "connectors.azure_blobs[1] (sas)") {
		t.Fatalf("err = %v, want one naming connectors.azure_blobs[1]", err)
	}
	if strings.Contains(err.Error(), "SW52ZW50ZWRTaWduYXR1cmVGb3JUZXN0cw") {
		t.Errorf("error leaks the SAS signature: %v", err)
	}
}
