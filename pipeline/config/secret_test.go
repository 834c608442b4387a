package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"go.yaml.in/yaml/v3"
)

const plain = "hunter2-TOP-SECRET"

func secretConfig() *Config {
	c := Defaults()
	c.Kafka.SASL = SASL{Mechanism: SASLPlain, Username: "svc", Password: plain}
	c.Kafka.TLS.Enabled = true
	c.HTTP.Token = plain + "-token"
	c.Kafka.EventHubsConnectionString = ""
	return c
}

// TestSecretNeverPrinted renders a secret and a config holding secrets
// every way a program might print them; none may contain the value.
func TestSecretNeverPrinted(t *testing.T) {
	s := Secret(plain)
	c := secretConfig()
	var zbuf bytes.Buffer
	zl := zerolog.New(&zbuf)
	zl.Info().Interface("cfg", c).Stringer("pw", s).Interface("pw2", s).Any("kafka", c.Kafka).Msg("start")
	var sbuf bytes.Buffer
	sl := slog.New(slog.NewJSONHandler(&sbuf, nil))
	sl.Info("start", "pw", s, "sasl", c.Kafka.SASL)

	js, _ := json.Marshal(c)
	ys, _ := yaml.Marshal(c)
	sj, _ := json.Marshal(s)
	st, _ := s.MarshalText()
	renders := map[string]string{
		"%v":        fmt.Sprintf("%v", s),
		"%s":        fmt.Sprintf("%s", s),
		"%+v":       fmt.Sprintf("%+v", s),
		"%#v":       fmt.Sprintf("%#v", s),
		"%q":        fmt.Sprintf("%q", s),
		"%x":        fmt.Sprintf("%x", s),
		"%10s":      fmt.Sprintf("%10s", s),
		"Sprint":    fmt.Sprint(s),
		"Println":   fmt.Sprintln(s),
		"cfg %v":    fmt.Sprintf("%v", c),
		"cfg %+v":   fmt.Sprintf("%+v", c),
		"cfg %#v":   fmt.Sprintf("%#v", *c),
		"sasl %+v":  fmt.Sprintf("%+v", c.Kafka.SASL),
		"ptr %+v":   fmt.Sprintf("%+v", &c.Kafka.SASL),
		"json cfg":  string(js),
		"json s":    string(sj),
		"text":      string(st),
		"yaml cfg":  string(ys),
		"Redacted":  c.Redacted(),
		"zerolog":   zbuf.String(),
		"slog":      sbuf.String(),
		"Error":     fmt.Errorf("connect: %v", s).Error(),
		"Problems":  Problems{{Key: "kafka.sasl.password", Message: fmt.Sprint(s)}}.Error(),
		"String()":  s.String(),
		"map value": fmt.Sprint(map[string]Secret{"k": s}),
	}
	for how, out := range renders {
		if strings.Contains(out, plain) || strings.Contains(out, fmt.Sprintf("%x", plain)) {
			t.Errorf("%s leaks the secret: %s", how, out)
		}
		if !strings.Contains(out, Redacted) {
			t.Errorf("%s does not show %s: %s", how, Redacted, out)
		}
	}
	if s.Reveal() != plain {
		t.Error("Reveal lost the value")
	}
}

func TestEmptySecretPrintsEmpty(t *testing.T) {
	var s Secret
	if got := fmt.Sprintf("%v|%s|%q", s, s, s); got != `||""` {
		t.Errorf("empty secret prints %q", got)
	}
	b, _ := json.Marshal(s)
	if string(b) != `""` {
		t.Errorf("json %s", b)
	}
	if strings.Contains(Defaults().Redacted(), Redacted) {
		t.Error("defaults have no secrets, yet Redacted shows [redacted]")
	}
}

// TestEnvErrorRedaction: an error about a secret variable never echoes
// the secret.
func TestEnvErrorRedaction(t *testing.T) {
	f := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load("", []string{"VIGIL_KAFKA_SASL_PASSWORD=" + plain, "VIGIL_KAFKA_SASL_PASSWORD_FILE=" + f})
	if err == nil || strings.Contains(err.Error(), plain) {
		t.Fatalf("err = %v", err)
	}
}

func TestEventHubsParse(t *testing.T) {
	tests := []struct {
		in      string
		broker  string
		entity  string
		wantErr string
	}{
		{"Endpoint=sb://contoso-sec.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=AbC+dEf/123=", "contoso-sec.servicebus.windows.net:9093", "", ""},
		{" Endpoint=sb://NS2.servicebus.windows.net/ ; SharedAccessKeyName=listen;SharedAccessKey=k==;EntityPath=insights-logs ;", "ns2.servicebus.windows.net:9093", "insights-logs", ""},
		{"Endpoint=sb://gov.servicebus.usgovcloudapi.net/;SharedAccessKeyName=a;SharedAccessKey=b", "gov.servicebus.usgovcloudapi.net:9093", "", ""},
		{"SharedAccessKeyName=a;SharedAccessKey=b", "", "", "no Endpoint"},
		{"Endpoint=https://x.servicebus.windows.net/;SharedAccessKeyName=a;SharedAccessKey=b", "", "", "is not sb://"},
		{"Endpoint=sb://x.servicebus.windows.net/;SharedAccessKeyName=a", "", "", "lacks SharedAccessKeyName or SharedAccessKey"},
		{"Endpoint=sb://x.servicebus.windows.net/;garbage;SharedAccessKey=b", "", "", "part 2 is not Name=Value"},
		{"", "", "", "no Endpoint"},
	}
	for _, tt := range tests {
		eh, err := ParseEventHubs(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: err = %v, want %q", tt.in, err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "SharedAccessKey=b") {
				t.Errorf("error leaks the key: %v", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if eh.Broker != tt.broker || eh.EntityPath != tt.entity {
			t.Errorf("%q: broker %q entity %q", tt.in, eh.Broker, eh.EntityPath)
		}
	}
}

func TestEventHubsFromEnv(t *testing.T) {
	conn := "Endpoint=sb://contoso-sec.servicebus.windows.net/;SharedAccessKeyName=vigil;SharedAccessKey=Zm9vYmFyYmF6cXV4=="
	f := filepath.Join(t.TempDir(), "eh")
	if err := os.WriteFile(f, []byte(conn+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load("", []string{"VIGIL_KAFKA_EVENT_HUBS_CONNECTION_STRING_FILE=" + f, "VIGIL_KAFKA_DELIVERY=at_least_once"})
	if err != nil {
		t.Fatal(err)
	}
	k := c.Kafka
	if !slices.Equal(k.Brokers, []string{"contoso-sec.servicebus.windows.net:9093"}) {
		t.Errorf("brokers = %q", k.Brokers)
	}
	if k.SASL.Mechanism != SASLPlain || k.SASL.Username != "$ConnectionString" || k.SASL.Password.Reveal() != conn || !k.TLS.Enabled {
		t.Errorf("sasl/tls not derived: %+v", k)
	}
	if strings.Contains(c.Redacted(), "Zm9vYmFy") {
		t.Error("Redacted leaks the connection string key")
	}
	// An explicit broker list is kept (e.g. a private endpoint alias).
	c, err = Load("", []string{"VIGIL_KAFKA_EVENT_HUBS_CONNECTION_STRING=" + conn, "VIGIL_KAFKA_BROKERS=pe.internal:9093"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Kafka.Brokers, []string{"pe.internal:9093"}) {
		t.Errorf("explicit brokers replaced: %q", c.Kafka.Brokers)
	}
	if w := strings.Join(c.Warnings(), "\n"); !strings.Contains(w, "Premium") {
		t.Errorf("no exactly_once warning on Event Hubs: %q", w)
	}
}
