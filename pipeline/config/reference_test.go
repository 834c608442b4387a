package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestReference fails when REFERENCE.md differs from what the code
// generates. Regenerate with:
//
//	VIGIL_UPDATE_REFERENCE=1 go test ./pipeline/config -run TestReference
func TestReference(t *testing.T) {
	got := Reference()
	if os.Getenv("VIGIL_UPDATE_REFERENCE") != "" {
		if err := os.WriteFile("REFERENCE.md", []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Log("wrote REFERENCE.md")
	}
	want, err := os.ReadFile("REFERENCE.md")
	if err != nil {
		t.Fatalf("%v; generate it with VIGIL_UPDATE_REFERENCE=1 go test ./pipeline/config -run TestReference", err)
	}
	if string(want) != got {
		t.Fatal("REFERENCE.md is out of date with the Config struct; regenerate it with VIGIL_UPDATE_REFERENCE=1 go test ./pipeline/config -run TestReference")
	}
	// Every key appears with its variable.
	for _, l := range leaves(reflect.ValueOf(Defaults()).Elem(), "") {
		if l.FileOnly() {
			// A list of entries: its row and each entry key's row say so.
			rows := []leaf{l}
			rows = append(rows, entryLeaves(l)...)
			for _, r := range rows {
				if !strings.Contains(got, "| `"+r.Path+"` |") {
					t.Errorf("reference lacks %s", r.Path)
				}
			}
			if !strings.Contains(got, "| `"+l.Path+"` | list of entries | (empty) | file only |") {
				t.Errorf("reference row of %s does not say file only", l.Path)
			}
			continue
		}
		if !strings.Contains(got, "| `"+l.Path+"` |") || !strings.Contains(got, "`"+l.Env+"`") {
			t.Errorf("reference lacks %s / %s", l.Path, l.Env)
		}
	}
	for _, want := range []string{"`connectors.kafka[].topics`", "`VIGIL_CONNECTORS_KAFKA_<NAME>_SASL_PASSWORD_FILE`", "`VIGIL_CONNECTORS_SYSLOG_UDP`"} {
		if !strings.Contains(got, want) {
			t.Errorf("reference lacks %s", want)
		}
	}
	if !strings.Contains(got, "`VIGIL_KAFKA_SASL_PASSWORD_FILE`") {
		t.Error("reference does not document the _FILE variant of secrets")
	}
}

// TestExamples loads each committed example with the environment an
// operator would give it.
func TestExamples(t *testing.T) {
	conn := "Endpoint=sb://example-ns.servicebus.windows.net/;SharedAccessKeyName=vigil;SharedAccessKey=bm90LWEtcmVhbC1rZXk="
	secret := filepath.Join(t.TempDir(), "eh")
	if err := os.WriteFile(secret, []byte(conn), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		file  string
		env   []string
		check func(t *testing.T, c *Config)
	}{
		{"examples/local.yaml", nil, func(t *testing.T, c *Config) {
			if c.Kafka.Brokers[0] != "127.0.0.1:9092" || c.Log.Format != "console" {
				t.Errorf("local: %+v", c)
			}
		}},
		{"examples/eventhubs.yaml", []string{"VIGIL_KAFKA_SASL_PASSWORD_FILE=" + secret}, func(t *testing.T, c *Config) {
			k := c.Kafka
			if k.Brokers[0] != "example-ns.servicebus.windows.net:9093" || k.SASL.Username != EventHubsUser ||
				k.SASL.Mechanism != SASLPlain || !k.TLS.Enabled || k.Delivery != AtLeastOnce || !k.IsEventHubs() {
				t.Errorf("eventhubs: %+v", k)
			}
			if k.SASL.Password.Reveal() != conn {
				t.Error("password not read from _FILE")
			}
		}},
		{"examples/eventhubs.yaml", []string{
			"VIGIL_KAFKA_EVENT_HUBS_CONNECTION_STRING=" + conn, "VIGIL_KAFKA_SASL_PASSWORD=",
		}, func(t *testing.T, c *Config) {
			if c.Kafka.SASL.Password.Reveal() != conn {
				t.Error("connection string did not become the password")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			c, err := Load(tt.file, tt.env)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
	// Without its secret the Event Hubs example must not start.
	if _, err := Load("examples/eventhubs.yaml", nil); err == nil || !strings.Contains(err.Error(), "kafka.sasl.password") {
		t.Errorf("eventhubs without password: err = %v", err)
	}
}
