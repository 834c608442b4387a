package app_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

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
