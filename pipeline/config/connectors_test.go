package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The committed connectors example loads with its secrets given through
// the entry variables, and means what its comments say.
func TestConnectorsExample(t *testing.T) {
	dir := t.TempDir()
	defender := "Endpoint=sb://sec-ns.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey=ZmFrZS1rZXktMQ=="
	entra := "Endpoint=sb://diag-ns.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey=ZmFrZS1rZXktMg=="
	f := filepath.Join(dir, "eh-defender")
	if err := os.WriteFile(f, []byte(defender+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load("examples/connectors.yaml", []string{
		"VIGIL_CONNECTORS_KAFKA_EH_DEFENDER_EVENT_HUBS_CONNECTION_STRING_FILE=" + f,
		"VIGIL_CONNECTORS_KAFKA_EH_ENTRA_EVENT_HUBS_CONNECTION_STRING=" + entra,
		"VIGIL_CONNECTORS_SYSLOG_UDP=127.0.0.1:5514",
		"VIGIL_CONNECTORS_AZURE_BLOBS_FLOWLOGS_PROD_SAS_TOKEN=sv=2024-08-04&sp=rl&sig=ZmFrZS1zaWc%3D",
	})
	if err != nil {
		t.Fatal(err)
	}
	if w := c.Warnings(); len(w) != 0 {
		t.Errorf("warnings: %q", w)
	}
	cc := c.Connectors
	if !c.HasStage(StageConnectors) || !cc.Any() {
		t.Errorf("stages %v, connectors configured %v", c.Stages, cc.Any())
	}
	if cc.Syslog.UDP != "127.0.0.1:5514" || cc.Syslog.TCP != "0.0.0.0:601" || cc.Syslog.Source != "syslog" {
		t.Errorf("syslog = %+v (env must override udp only)", cc.Syslog)
	}
	if len(cc.Kafka) != 2 {
		t.Fatalf("kafka entries = %d", len(cc.Kafka))
	}
	d, e := cc.Kafka[0], cc.Kafka[1]
	if d.EventHubsConnectionString.Reveal() != defender || e.EventHubsConnectionString.Reveal() != entra {
		t.Error("entry connection strings not read from the environment")
	}
	if d.GroupID() != "vigil-eh-defender" || e.GroupID() != "vigil-entra" {
		t.Errorf("groups %q %q", d.GroupID(), e.GroupID())
	}
	if len(d.Topics) != 5 || d.Topics[0] != "insights-logs-advancedhunting-deviceprocessevents" {
		t.Errorf("defender topics %q", d.Topics)
	}
	k := e.Client("vigil")
	if !slices.Equal(k.Brokers, []string{"diag-ns.servicebus.windows.net:9093"}) || k.SASL.Mechanism != SASLPlain ||
		k.SASL.Username != EventHubsUser || k.SASL.Password.Reveal() != entra || !k.TLS.Enabled {
		t.Errorf("entra source client = %+v", k)
	}
	if got := cc.Sources(); !slices.Equal(got, []string{"syslog", "defender", "entra", "app", "network"}) {
		t.Errorf("sources = %q", got)
	}
	if cp := cc.BlobDirs[0].CheckpointPath(c.DataDir); !strings.HasPrefix(cp, filepath.Join("vigil-data", "connectors", "blob-network-")) {
		t.Errorf("blob checkpoint %q", cp)
	}
	if az := cc.AzureBlobs[0]; az.SASToken.Reveal() != "sv=2024-08-04&sp=rl&sig=ZmFrZS1zaWc%3D" || az.Poll().String() != "1m0s" ||
		az.Endpoint() != "https://flowlogsprod.blob.core.windows.net" {
		t.Errorf("azure_blobs entry %+v", az)
	}
	// The dump redacts the entry secrets.
	dump := c.Redacted()
	if strings.Contains(dump, "ZmFrZS1rZXkt") || strings.Contains(dump, "ZmFrZS1zaWc") || !strings.Contains(dump, "event_hubs_connection_string: '[redacted]'") ||
		!strings.Contains(dump, "sas_token: '[redacted]'") {
		t.Errorf("dump leaks or lacks the entry secrets:\n%s", dump)
	}

	// Without the secrets the entries have no cluster to read: each
	// problem names the entry key and the variable that fixes it.
	_, err = Load("examples/connectors.yaml", nil)
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("without secrets: err = %v", err)
	}
	if !slices.Equal(ps.Keys(), []string{"connectors.kafka[0].brokers", "connectors.kafka[1].brokers", "connectors.azure_blobs[0].connection_string"}) {
		t.Errorf("keys = %q", ps.Keys())
	}
	if !strings.Contains(ps[0].Message, "VIGIL_CONNECTORS_KAFKA_EH_DEFENDER_EVENT_HUBS_CONNECTION_STRING_FILE") {
		t.Errorf("message lacks the variable: %s", ps[0].Message)
	}
	if !strings.Contains(ps[2].Message, "VIGIL_CONNECTORS_AZURE_BLOBS_FLOWLOGS_PROD_SAS_TOKEN_FILE") {
		t.Errorf("message lacks the variable: %s", ps[2].Message)
	}
}

func TestConnectorsYAML(t *testing.T) {
	tests := []struct {
		name, yaml string
		env        []string
		errs       []string // substrings of the error; nil: loads
		check      func(t *testing.T, c *Config)
	}{
		{"defaults: nothing configured", "", nil, nil, func(t *testing.T, c *Config) {
			if c.Connectors.Any() || c.HasStage(StageConnectors) || c.Connectors.Syslog.MaxMessageBytes != DefaultSyslogMaxMessageBytes {
				t.Errorf("defaults: %+v stages %v", c.Connectors, c.Stages)
			}
		}},
		{"syslog from env only", "", []string{"VIGIL_CONNECTORS_SYSLOG_TCP=127.0.0.1:1601", "VIGIL_CONNECTORS_SYSLOG_SOURCE=cef",
			"VIGIL_CONNECTORS_SYSLOG_MAX_MESSAGE_BYTES=2048", "VIGIL_STAGES=connectors,normalize"}, nil, func(t *testing.T, c *Config) {
			s := c.Connectors.Syslog
			if !s.Enabled() || s.TCP != "127.0.0.1:1601" || s.Source != "cef" || s.MaxMessageBytes != 2048 || !c.HasStage(StageConnectors) {
				t.Errorf("syslog %+v stages %v", s, c.Stages)
			}
		}},
		{"kafka entry with scram secret from env", `
connectors:
  kafka:
    - name: other-cluster
      source: partner
      topics: [alerts]
      brokers: [kafka.partner.example:9093]
      sasl: {mechanism: SCRAM-SHA-512, username: vigil}
      tls: {enabled: true}
`, []string{"VIGIL_CONNECTORS_KAFKA_OTHER_CLUSTER_SASL_PASSWORD=pw-1"}, nil, func(t *testing.T, c *Config) {
			k := c.Connectors.Kafka[0]
			if k.SASL.Password.Reveal() != "pw-1" || k.Client("x").Brokers[0] != "kafka.partner.example:9093" {
				t.Errorf("entry %+v", k)
			}
		}},
		{"unknown key inside an entry", "connectors:\n  files:\n    - path: /x\n      sorce: s\n", nil,
			[]string{`:4: unknown key connectors.files[0].sorce; did you mean "source"?`}, nil},
		{"entry is not a mapping", "connectors:\n  kafka:\n    - eh\n", nil,
			[]string{":3: connectors.kafka[0] must be a mapping of keys (name, source, topics"}, nil},
		{"list is a mapping", "connectors:\n  blob_dirs: {root: /x}\n", nil,
			[]string{":2: connectors.blob_dirs: expected a list of entries, each a mapping of keys (root, source, checkpoint)"}, nil},
		{"empty entry", "connectors:\n  files:\n    -\n", nil, []string{"connectors.files[0] is empty"}, nil},
		{"wrong type inside an entry", "connectors:\n  kafka:\n    - {name: a, start_at_end: maybe}\n", nil,
			[]string{"connectors.kafka[0].start_at_end: expected bool"}, nil},
		{"secret env and file both set", "connectors:\n  kafka:\n    - {name: a, source: s, topics: [t], brokers: [h:1], sasl: {mechanism: PLAIN, username: u}}\n",
			[]string{"VIGIL_CONNECTORS_KAFKA_A_SASL_PASSWORD=x", "VIGIL_CONNECTORS_KAFKA_A_SASL_PASSWORD_FILE=/nonexistent"},
			[]string{"VIGIL_CONNECTORS_KAFKA_A_SASL_PASSWORD and VIGIL_CONNECTORS_KAFKA_A_SASL_PASSWORD_FILE are both set for connectors.kafka[0].sasl.password"}, nil},
		{"secret file missing", "connectors:\n  kafka:\n    - {name: a, source: s, topics: [t], brokers: [h:1]}\n",
			[]string{"VIGIL_CONNECTORS_KAFKA_A_EVENT_HUBS_CONNECTION_STRING_FILE=/nonexistent/eh"},
			[]string{"read secret for connectors.kafka[0].event_hubs_connection_string"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := ""
			if tt.yaml != "" {
				path = writeFile(t, "c.yaml", tt.yaml)
			}
			c, err := Load(path, tt.env)
			if tt.errs == nil {
				if err != nil {
					t.Fatal(err)
				}
				tt.check(t, c)
				return
			}
			if err == nil {
				t.Fatal("loaded; want an error")
			}
			for _, want := range tt.errs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q:\n%v", want, err)
				}
			}
		})
	}
}

// An entry variable for an entry that does not exist is a warning, like
// any VIGIL_* variable that matches no key.
func TestConnectorsEnvTypo(t *testing.T) {
	p := writeFile(t, "c.yaml", "connectors:\n  kafka:\n    - {name: eh-a, source: s, topics: [t], brokers: [h:1]}\n")
	c, err := Load(p, []string{"VIGIL_CONNECTORS_KAFKA_EH_B_SASL_PASSWORD=x", "VIGIL_CONNECTORS_SYSLOG_UPD=:514"})
	if err != nil {
		t.Fatal(err)
	}
	w := strings.Join(c.Warnings(), "\n")
	for _, want := range []string{
		"VIGIL_CONNECTORS_KAFKA_EH_B_SASL_PASSWORD matches no config key and is ignored; did you mean VIGIL_CONNECTORS_KAFKA_EH_A_SASL_PASSWORD?",
		"VIGIL_CONNECTORS_SYSLOG_UPD matches no config key and is ignored; did you mean VIGIL_CONNECTORS_SYSLOG_UDP?",
	} {
		if !strings.Contains(w, want) {
			t.Errorf("warnings lack %q:\n%s", want, w)
		}
	}
}

func TestValidateConnectors(t *testing.T) {
	pem := writeFile(t, "cert.pem", "x")
	dirAsFile := writeFile(t, "notadir", "x")
	eh := Secret("Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=c2VjcmV0")
	okKafka := func() KafkaConnector {
		return KafkaConnector{Name: "eh", Source: "defender", Topics: []string{"t"}, EventHubsConnectionString: eh}
	}
	tests := []struct {
		name   string
		mutate func(c *Config)
		keys   []string
		msg    string // substring of the first problem's message
	}{
		{"full and valid", func(c *Config) {
			c.Stages = []string{StageConnectors, StageNormalize}
			c.Connectors = Connectors{
				Syslog:   SyslogConnector{UDP: ":514", TCP: "127.0.0.1:6514", Source: "syslog", MaxMessageBytes: 1024, TLS: ServerTLS{CertFile: pem, KeyFile: pem}},
				Kafka:    []KafkaConnector{okKafka(), {Name: "plain", Source: "p", Topics: []string{"a"}, Brokers: []string{"h:9092"}}},
				Files:    []FileConnector{{Path: "/x", Pattern: "*.json", Source: "app"}, {Path: "/y", Source: "app"}},
				BlobDirs: []BlobDirConnector{{Root: "/flows", Source: "network"}},
			}
		}, nil, ""},
		{"connectors stage without connectors", func(c *Config) { c.Stages = []string{StageNormalize, StageConnectors} },
			[]string{"stages[1]"}, `"connectors" is listed but no connector is configured`},
		{"syslog listen addresses", func(c *Config) { c.Connectors.Syslog.UDP = "514"; c.Connectors.Syslog.TCP = "h:70000" },
			[]string{"connectors.syslog.udp", "connectors.syslog.tcp"}, `"514" is not host:port`},
		{"syslog source", func(c *Config) { c.Connectors.Syslog.TCP = ":601"; c.Connectors.Syslog.Source = "" },
			[]string{"connectors.syslog.source"}, "is empty; name the source"},
		{"syslog source unused when off", func(c *Config) { c.Connectors.Syslog.Source = "" }, nil, ""},
		{"syslog size", func(c *Config) { c.Connectors.Syslog.MaxMessageBytes = 0 },
			[]string{"connectors.syslog.max_message_bytes"}, "out of range"},
		{"syslog tls", func(c *Config) {
			c.Connectors.Syslog.UDP = ":514"
			c.Connectors.Syslog.TLS.CertFile = "/nonexistent.pem"
		},
			[]string{"connectors.syslog.tls", "connectors.syslog.tls.key_file", "connectors.syslog.tls.cert_file"}, "TLS applies to the TCP listener"},
		{"kafka entry without topics, name, source", func(c *Config) {
			c.Connectors.Kafka = []KafkaConnector{{EventHubsConnectionString: eh}}
		}, []string{"connectors.kafka[0].name", "connectors.kafka[0].source", "connectors.kafka[0].topics"}, "name the entry"},
		{"kafka entry names", func(c *Config) {
			a, b, d := okKafka(), okKafka(), okKafka()
			b.Name = "e h"
			d.Name = "EH"
			c.Connectors.Kafka = []KafkaConnector{a, b, d}
		}, []string{"connectors.kafka[1].name", "connectors.kafka[2].name"}, `"e h" is not a usable name`},
		{"kafka entry cluster", func(c *Config) {
			k := okKafka()
			k.EventHubsConnectionString = ""
			k.SASL = SASL{Mechanism: SASLScramSHA256, Username: "u"}
			k.TLS.CAFile = pem
			k.Topics = []string{"ok", "bad topic"}
			c.Connectors.Kafka = []KafkaConnector{k}
		}, []string{"connectors.kafka[0].topics[1]", "connectors.kafka[0].brokers", "connectors.kafka[0].sasl.password", "connectors.kafka[0].tls.ca_file"}, `"bad topic" is not a topic name`},
		{"kafka entry event hubs conflict", func(c *Config) {
			k := okKafka()
			k.SASL.Mechanism = SASLScramSHA512
			c.Connectors.Kafka = []KafkaConnector{k}
		}, []string{"connectors.kafka[0].sasl.mechanism"}, "conflicts with connectors.kafka[0].event_hubs_connection_string"},
		{"kafka entry bad event hubs string", func(c *Config) {
			k := okKafka()
			k.EventHubsConnectionString = "Endpoint=https://x/;SharedAccessKeyName=k;SharedAccessKey=s"
			c.Connectors.Kafka = []KafkaConnector{k}
		}, []string{"connectors.kafka[0].event_hubs_connection_string"}, "is not sb://"},
		{"files", func(c *Config) {
			c.Connectors.Files = []FileConnector{{Path: "", Source: "a"}, {Path: "/x", Pattern: "[", Source: "bad/source"}, {Path: "/z", Source: ".x"}}
		}, []string{"connectors.files[0].path", "connectors.files[1].pattern", "connectors.files[1].source", "connectors.files[2].source"}, "give the file or directory"},
		{"shared checkpoint", func(c *Config) {
			c.Connectors.Files = []FileConnector{{Path: "/x", Source: "a", Checkpoint: "/cp.json"}}
			c.Connectors.BlobDirs = []BlobDirConnector{{Root: "/r", Source: "b", Checkpoint: "/cp.json"}}
		}, []string{"connectors.blob_dirs[0].checkpoint"}, "also the checkpoint of connectors.files[0].checkpoint"},
		{"same default checkpoint", func(c *Config) {
			c.Connectors.Files = []FileConnector{{Path: "/x", Source: "a"}, {Path: "/x", Source: "a"}}
		}, []string{"connectors.files[1].checkpoint"}, "overwrite each other"},
		{"blob dirs", func(c *Config) {
			c.Connectors.BlobDirs = []BlobDirConnector{{Root: dirAsFile, Source: "network"}, {Root: "/r"}}
		}, []string{"connectors.blob_dirs[0].root", "connectors.blob_dirs[1].source"}, "is a file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Defaults()
			tt.mutate(c)
			err := c.Validate()
			if !checkProblems(t, err, tt.keys, tt.msg) {
				return
			}
		})
	}
}

// Reordering entries keeps each default checkpoint with its input.
func TestDefaultCheckpointStable(t *testing.T) {
	a := FileConnector{Path: "/logs/a", Source: "app"}
	b := FileConnector{Path: "/logs/b", Source: "app"}
	if a.CheckpointPath("d") == b.CheckpointPath("d") {
		t.Error("two paths share a default checkpoint")
	}
	if a.CheckpointPath("d") != (FileConnector{Path: "/logs/a", Source: "app"}).CheckpointPath("d") {
		t.Error("default checkpoint is not a function of the entry")
	}
	if got := (FileConnector{Path: "/x", Source: "s", Checkpoint: "/cp"}).CheckpointPath("d"); got != "/cp" {
		t.Errorf("configured checkpoint = %q", got)
	}
}

// BenchmarkLoadConnectors loads the connectors example with its entry
// secrets from the environment: the start-up cost of the list sections.
func BenchmarkLoadConnectors(b *testing.B) {
	env := []string{
		"VIGIL_CONNECTORS_KAFKA_EH_DEFENDER_EVENT_HUBS_CONNECTION_STRING=Endpoint=sb://a.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=eA==",
		"VIGIL_CONNECTORS_KAFKA_EH_ENTRA_EVENT_HUBS_CONNECTION_STRING=Endpoint=sb://b.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=eA==",
		"VIGIL_CONNECTORS_AZURE_BLOBS_FLOWLOGS_PROD_SAS_TOKEN=sv=2024-08-04&sp=rl&sig=eA%3D%3D",
	}
	for b.Loop() {
		if _, err := Load("examples/connectors.yaml", env); err != nil {
			b.Fatal(err)
		}
	}
}
