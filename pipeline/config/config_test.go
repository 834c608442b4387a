package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadDefaults(t *testing.T) {
	c, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, Defaults()) {
		t.Fatalf("Load with no file and no env differs from Defaults:\n%s\nvs\n%s", c.Redacted(), Defaults().Redacted())
	}
	// An empty file and a file with an empty section are defaults too.
	for _, body := range []string{"", "# nothing\n", "kafka:\n", "---\n"} {
		c, err := Load(writeFile(t, "c.yaml", body), nil)
		if err != nil {
			t.Fatalf("%q: %v", body, err)
		}
		if !reflect.DeepEqual(c, Defaults()) {
			t.Fatalf("%q: not the defaults:\n%s", body, c.Redacted())
		}
	}
}

func TestFileThenEnv(t *testing.T) {
	file := writeFile(t, "vigil.yaml", `
kafka:
  brokers: [k1:9092, k2:9092]
  client_id: from-file
  sasl:
    mechanism: SCRAM-SHA-512
    username: alice
    password: file-secret
  tls:
    enabled: true
topics:
  prefix: "prod."
  partitions: 12
rules:
  lateness: 10m
  max_retention: 30d
stages: [normalize]
`)
	tests := []struct {
		name  string
		env   []string
		check func(t *testing.T, c *Config)
	}{
		{"file only", nil, func(t *testing.T, c *Config) {
			want := []string{"k1:9092", "k2:9092"}
			if !slices.Equal(c.Kafka.Brokers, want) {
				t.Errorf("brokers = %v, want %v", c.Kafka.Brokers, want)
			}
			if c.Kafka.SASL.Password.Reveal() != "file-secret" || c.Topics.Partitions != 12 || c.Rules.MaxRetention.D() != 30*24*time.Hour {
				t.Errorf("file values not applied: %+v", c)
			}
			// Keys the file leaves out keep their defaults.
			if c.Topics.ReplicationFactor != 1 || c.HTTP.Listen != "127.0.0.1:8080" || c.Kafka.Delivery != ExactlyOnce {
				t.Errorf("defaults lost: %+v", c)
			}
			if !slices.Equal(c.Stages, []string{"normalize"}) {
				t.Errorf("stages = %v: a list in the file must replace the default, not merge", c.Stages)
			}
		}},
		{"nested env wins over file", []string{
			"VIGIL_KAFKA_BROKERS= a:1 , b:2,",
			"VIGIL_KAFKA_SASL_PASSWORD=env-secret",
			"VIGIL_KAFKA_SASL_MECHANISM=SCRAM-SHA-256",
			"VIGIL_KAFKA_TLS_ENABLED=false",
			"VIGIL_TOPICS_PREFIX=staging.",
			"VIGIL_TOPICS_PARTITIONS=3",
			"VIGIL_TOPICS_REPLICATION_FACTOR=-1",
			"VIGIL_RULES_LATENESS=1d2h",
			"VIGIL_DEV_DEMO=false",
			"VIGIL_STAGES=normalize,correlate",
			"VIGIL_DATA_DIR=/var/lib/vigil",
			"UNRELATED=1",
		}, func(t *testing.T, c *Config) {
			if !slices.Equal(c.Kafka.Brokers, []string{"a:1", "b:2"}) {
				t.Errorf("brokers = %q", c.Kafka.Brokers)
			}
			if c.Kafka.SASL.Password.Reveal() != "env-secret" || c.Kafka.SASL.Mechanism != SASLScramSHA256 {
				t.Errorf("sasl = %q %q", c.Kafka.SASL.Mechanism, c.Kafka.SASL.Password.Reveal())
			}
			if c.Kafka.TLS.Enabled {
				t.Error("tls.enabled: env false must override file true")
			}
			if c.Kafka.ClientID != "from-file" {
				t.Errorf("client_id = %q: file value lost", c.Kafka.ClientID)
			}
			if c.Topics.Prefix != "staging." || c.Topics.Partitions != 3 || c.Topics.ReplicationFactor != -1 {
				t.Errorf("topics = %+v", c.Topics)
			}
			if c.Rules.Lateness.D() != 26*time.Hour || c.Dev.Demo || c.DataDir != "/var/lib/vigil" {
				t.Errorf("lateness=%s demo=%v data_dir=%s", c.Rules.Lateness, c.Dev.Demo, c.DataDir)
			}
			if !slices.Equal(c.Stages, []string{"normalize", "correlate"}) {
				t.Errorf("stages = %v", c.Stages)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(file, tt.env)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

// TestEveryKeyHasEnv proves the reflection mapping covers every key: each
// leaf's variable, set to a value unlike its default, changes that leaf.
func TestEveryKeyHasEnv(t *testing.T) {
	seen := map[string]string{}
	def := Defaults()
	var fileOnly []string
	for _, l := range leaves(reflect.ValueOf(def).Elem(), "") {
		if l.FileOnly() {
			fileOnly = append(fileOnly, l.Path)
			continue
		}
		if prev, dup := seen[l.Env]; dup {
			t.Fatalf("keys %s and %s map to the same variable %s", prev, l.Path, l.Env)
		}
		seen[l.Env] = l.Path
		if l.Doc == "" {
			t.Errorf("%s has no doc tag; REFERENCE.md needs one", l.Path)
		}
		var val string
		switch typeName(l.V.Type()) {
		case "duration":
			val = "3d"
		case "bool":
			val = "true"
			if l.V.Bool() {
				val = "false"
			}
		case "int":
			val = "7"
		case "list of string":
			val = "x1,x2"
		default:
			val = "changed-" + strings.ToLower(l.Env)
		}
		c := Defaults()
		if _, err := applyEnv(c, []string{l.Env + "=" + val}); err != nil {
			t.Fatalf("%s: %v", l.Env, err)
		}
		if reflect.DeepEqual(c, Defaults()) {
			t.Errorf("%s=%s did not change %s", l.Env, val, l.Path)
		}
	}
	// Only lists of entries are file-only.
	if want := []string{"connectors.kafka", "connectors.files", "connectors.blob_dirs", "connectors.azure_blobs"}; !slices.Equal(fileOnly, want) {
		t.Errorf("file-only keys = %q, want %q", fileOnly, want)
	}
	for _, want := range []string{"VIGIL_KAFKA_BROKERS", "VIGIL_KAFKA_SASL_PASSWORD", "VIGIL_TOPICS_PREFIX", "VIGIL_KAFKA_TLS_CA_FILE", "VIGIL_DEV_BROKER_LISTEN",
		"VIGIL_CONNECTORS_SYSLOG_UDP", "VIGIL_CONNECTORS_SYSLOG_TCP", "VIGIL_CONNECTORS_SYSLOG_TLS_CERT_FILE", "VIGIL_CONNECTORS_SYSLOG_MAX_MESSAGE_BYTES"} {
		if _, ok := seen[want]; !ok {
			t.Errorf("no key maps to %s", want)
		}
	}
}

func TestEnvErrors(t *testing.T) {
	tests := []struct {
		env  []string
		want []string // substrings of the error
	}{
		{[]string{"VIGIL_TOPICS_PARTITIONS=many"}, []string{"VIGIL_TOPICS_PARTITIONS", "topics.partitions", "integer"}},
		{[]string{"VIGIL_TOPICS_REPLICATION_FACTOR=40000"}, []string{"topics.replication_factor", "16 bits"}},
		{[]string{"VIGIL_DEV_DEMO=maybe"}, []string{"dev.demo", "boolean"}},
		{[]string{"VIGIL_RULES_LATENESS=5 minutes"}, []string{"rules.lateness", "duration"}},
	}
	for _, tt := range tests {
		_, err := Load("", tt.env)
		if err == nil {
			t.Errorf("%v: no error", tt.env)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q lacks %q", tt.env, err, w)
			}
		}
	}
}

func TestEnvTypoWarning(t *testing.T) {
	c, err := Load("", []string{"VIGIL_KAFKA_BROKER=x:1", "VIGIL_REQUIRE_REAL_KAFKA=1"})
	if err != nil {
		t.Fatal(err)
	}
	w := strings.Join(c.Warnings(), "\n")
	if !strings.Contains(w, "VIGIL_KAFKA_BROKER ") || !strings.Contains(w, "did you mean VIGIL_KAFKA_BROKERS") {
		t.Errorf("warnings = %q, want a hint for VIGIL_KAFKA_BROKER", w)
	}
	if strings.Contains(w, "VIGIL_REQUIRE_REAL_KAFKA") {
		t.Errorf("warnings mention a non-config variable: %q", w)
	}
}

func TestSecretFileEnv(t *testing.T) {
	secretFile := writeFile(t, "pw", "s3cr3t-from-file\n")
	c, err := Load("", []string{
		"VIGIL_KAFKA_SASL_MECHANISM=PLAIN", "VIGIL_KAFKA_SASL_USERNAME=u", "VIGIL_KAFKA_TLS_ENABLED=true",
		"VIGIL_KAFKA_SASL_PASSWORD_FILE=" + secretFile,
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Kafka.SASL.Password.Reveal(); got != "s3cr3t-from-file" {
		t.Fatalf("password = %q, want the file content without its newline", got)
	}

	_, err = Load("", []string{"VIGIL_HTTP_TOKEN=a", "VIGIL_HTTP_TOKEN_FILE=" + secretFile})
	if err == nil || !strings.Contains(err.Error(), "set only one") {
		t.Errorf("both VAR and VAR_FILE: err = %v", err)
	}
	missing := filepath.Join(t.TempDir(), "absent")
	_, err = Load("", []string{"VIGIL_HTTP_TOKEN_FILE=" + missing})
	if err == nil || !strings.Contains(err.Error(), "VIGIL_HTTP_TOKEN_FILE") || !strings.Contains(err.Error(), "http.token") {
		t.Errorf("missing secret file: err = %v", err)
	}
	// _FILE is for secrets only: a plain key has no such variable.
	c, err = Load("", []string{"VIGIL_DATA_DIR_FILE=" + secretFile})
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "./vigil-data" {
		t.Errorf("data_dir = %q", c.DataDir)
	}
}

func TestStrictYAML(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []string
	}{
		{"unknown nested key", "kafka:\n  brokers: [a:1]\n  sasl:\n    mechanizm: PLAIN\n",
			[]string{"c.yaml:4:", "unknown key kafka.sasl.mechanizm", `did you mean "mechanism"`}},
		{"unknown top key", "kafka: {}\ntopic:\n  prefix: x\n",
			[]string{"c.yaml:2:", "unknown key topic", `did you mean "topics"`}},
		{"several problems at once", "kafka:\n  brokerz: [a]\nlog:\n  levl: debug\n",
			[]string{"2 problem(s)", "c.yaml:2:", "kafka.brokerz", "c.yaml:4:", "log.levl"}},
		{"duplicate key", "log:\n  level: info\n  level: debug\n",
			[]string{"c.yaml:3:", "log.level is set twice (first on line 2)"}},
		{"wrong type", "topics:\n  partitions: lots\n",
			[]string{"c.yaml:2:", "topics.partitions", `expected int, got "lots"`}},
		{"mapping for scalar", "log:\n  level:\n    x: 1\n",
			[]string{"c.yaml:3:", "log.level: expected a single string"}},
		{"section not a mapping", "kafka: 5\n",
			[]string{"c.yaml:1:", "kafka must be a mapping"}},
		{"bad duration", "rules:\n  lateness: 5\n",
			[]string{"c.yaml:2:", "rules.lateness"}},
		{"two documents", "log: {}\n---\nlog: {}\n",
			[]string{"c.yaml:2:", "several YAML documents"}},
		{"syntax error", "kafka:\n  brokers: [a\n",
			[]string{"c.yaml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeFile(t, "c.yaml", tt.body)
			_, err := Load(p, nil)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestYAMLScalarList(t *testing.T) {
	c, err := Load(writeFile(t, "c.yaml", "kafka:\n  brokers: a:9092, b:9092\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Kafka.Brokers, []string{"a:9092", "b:9092"}) {
		t.Fatalf("brokers = %q", c.Kafka.Brokers)
	}
}

func TestValidate(t *testing.T) {
	caFile := writeFile(t, "ca.pem", "x")
	tests := []struct {
		name   string
		mutate func(c *Config)
		keys   []string
		msg    string // substring of the first problem's message
	}{
		{"defaults are valid", func(c *Config) {}, nil, ""},
		{"sasl mechanism", func(c *Config) { c.Kafka.SASL.Mechanism = "SCRAM" },
			[]string{"kafka.sasl.mechanism"},
			`"SCRAM" is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512; set it to one of them or leave it empty for no SASL`},
		{"sasl lower case", func(c *Config) {
			c.Kafka.SASL = SASL{Mechanism: "plain", Username: "u", Password: "p"}
		}, []string{"kafka.sasl.mechanism"}, "write it as PLAIN"},
		{"sasl needs credentials", func(c *Config) { c.Kafka.SASL.Mechanism = SASLScramSHA256 },
			[]string{"kafka.sasl.username", "kafka.sasl.password"}, "set the user name"},
		{"credentials without mechanism", func(c *Config) { c.Kafka.SASL.Password = "p" },
			[]string{"kafka.sasl.mechanism"}, "is empty but"},
		{"brokers", func(c *Config) { c.Kafka.Brokers = []string{"ok:9092", "noport", "h:99999"} },
			[]string{"kafka.brokers[1]", "kafka.brokers[2]"}, "not host:port"},
		{"no brokers", func(c *Config) { c.Kafka.Brokers = nil }, []string{"kafka.brokers"}, "at least one"},
		{"delivery", func(c *Config) { c.Kafka.Delivery = "exactly-once" }, []string{"kafka.delivery"}, "exactly_once"},
		{"tls files without tls", func(c *Config) { c.Kafka.TLS.CAFile = caFile },
			[]string{"kafka.tls.ca_file"}, "set kafka.tls.enabled: true"},
		{"tls missing file", func(c *Config) {
			c.Kafka.TLS = TLS{Enabled: true, CAFile: "/nonexistent/ca.pem"}
		}, []string{"kafka.tls.ca_file"}, "cannot read /nonexistent/ca.pem"},
		{"tls cert without key", func(c *Config) { c.Kafka.TLS = TLS{Enabled: true, CertFile: caFile} },
			[]string{"kafka.tls.key_file"}, "need both"},
		{"topics", func(c *Config) {
			c.Topics.Prefix = "bad prefix/"
			c.Topics.Partitions = 0
			c.Topics.ReplicationFactor = 0
			c.Topics.Sources = []string{"ok", "no way"}
		}, []string{"topics.prefix", "topics.partitions", "topics.replication_factor", "topics.sources[1]"}, "not allow"},
		{"stages", func(c *Config) { c.Stages = []string{"normalize", "corelate", "normalize"} },
			[]string{"stages[1]", "stages[2]"}, `"corelate" is not a stage; use connectors, normalize, correlate, incident`},
		{"no stages", func(c *Config) { c.Stages = nil }, []string{"stages"}, "is empty"},
		{"log", func(c *Config) { c.Log = Log{Level: "verbose", Format: "text"} },
			[]string{"log.level", "log.format"}, `"verbose" is not a level`},
		{"listen", func(c *Config) { c.HTTP.Listen = "8080"; c.Dev.BrokerListen = "" },
			[]string{"http.listen", "dev.broker_listen"}, "not host:port"},
		{"durations", func(c *Config) {
			c.Rules.Lateness = Duration(2 * time.Hour)
			c.Rules.MaxRetention = Duration(time.Hour)
		}, []string{"rules.max_retention"}, "shorter than rules.lateness"},
		{"event hubs conflicts", func(c *Config) {
			c.Kafka.EventHubsConnectionString = "Endpoint=sb://ns1.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=abc="
			c.Kafka.SASL = SASL{Mechanism: SASLScramSHA512, Username: "bob", Password: "other"}
		}, []string{"kafka.sasl.mechanism", "kafka.sasl.username", "kafka.sasl.password"}, "conflicts with kafka.event_hubs_connection_string"},
		{"event hubs bad string", func(c *Config) {
			c.Kafka.EventHubsConnectionString = "Endpoint=https://x/;SharedAccessKeyName=k;SharedAccessKey=s"
		},
			[]string{"kafka.event_hubs_connection_string"}, "is not sb://"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Defaults()
			tt.mutate(c)
			err := c.Validate()
			if !checkProblems(t, err, tt.keys, tt.msg) {
				return
			}
			if !strings.Contains(err.Error(), tt.keys[0]+": ") {
				t.Errorf("Error() does not name the key: %v", err)
			}
		})
	}
}

func TestLoadReportsValidation(t *testing.T) {
	p := writeFile(t, "c.yaml", "kafka:\n  sasl:\n    mechanism: SCRAM\n")
	_, err := Load(p, []string{"VIGIL_TOPICS_PARTITIONS=0"})
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("err = %v, want Problems", err)
	}
	if !slices.Equal(ps.Keys(), []string{"kafka.sasl.mechanism", "topics.partitions"}) {
		t.Errorf("keys = %q", ps.Keys())
	}
	if !strings.Contains(err.Error(), p) {
		t.Errorf("error does not name the file: %v", err)
	}
}

func TestDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		str  string
		err  bool
	}{
		{"5m", 5 * time.Minute, "5m", false},
		{"90s", 90 * time.Second, "1m30s", false},
		{"7d", 7 * 24 * time.Hour, "7d", false},
		{"1d12h", 36 * time.Hour, "1d12h", false},
		{"0d", 0, "0s", false},
		{"0", 0, "0s", false},
		{"2h30m", 150 * time.Minute, "2h30m", false},
		{"1.5h", 90 * time.Minute, "1h30m", false},
		{"-1d", -24 * time.Hour, "-1d", false},
		{"5", 0, "", true},
		{"d", 0, "", true},
		{"1.5d", 0, "", true},
		{"1d-5m", 0, "", true},
		{"", 0, "", true},
		{"7 days", 0, "", true},
	}
	for _, tt := range tests {
		d, err := ParseDuration(tt.in)
		if (err != nil) != tt.err {
			t.Errorf("%q: err = %v", tt.in, err)
			continue
		}
		if tt.err {
			continue
		}
		if d.D() != tt.want || d.String() != tt.str {
			t.Errorf("%q = %v (%s), want %v (%s)", tt.in, d.D(), d, tt.want, tt.str)
		}
	}
}

func FuzzDuration(f *testing.F) {
	for _, s := range []string{"5m", "7d", "1d12h", "0", "-3d4h", "1.5h", "999999d", "+1d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			return
		}
		back, err := ParseDuration(d.String())
		if err != nil || back != d {
			t.Fatalf("%q → %v → %q → %v, %v", s, d.D(), d.String(), back.D(), err)
		}
	})
}

// FuzzDecodeYAML: any input either decodes or errors; never panics.
func FuzzDecodeYAML(f *testing.F) {
	for _, s := range []string{
		"kafka:\n  brokers: [a:1]\n", "kafka: &a {client_id: x}\ntopics: *a\n", "<<: {a: 1}\n",
		"stages: normalize\n", "rules:\n  lateness: 1d\n  dirs: [[x]]\n", "- a\n- b\n", "kafka: {sasl: {password: [1]}}",
		"connectors:\n  kafka:\n    - {name: a, source: s, topics: [t], sasl: {password: x}}\n  files: []\n",
		"connectors: {files: [{path: /x, source: s}, ~], blob_dirs: {root: x}}\n", "connectors: {kafka: [[1]]}\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c := Defaults()
		if decodeYAML("f.yaml", []byte(s), c) != nil {
			return
		}
		// What decodes must survive the Redacted dump (secrets aside):
		// `vigil config show` output is itself a loadable config.
		redact(c)
		back := Defaults()
		if err := decodeYAML("back.yaml", []byte(c.Redacted()), back); err != nil {
			t.Fatalf("Redacted output does not load: %v\n%s", err, c.Redacted())
		}
		if !reflect.DeepEqual(normalize(c), normalize(back)) {
			t.Fatalf("round trip changed the config:\n%s\nvs\n%s", c.Redacted(), back.Redacted())
		}
	})
}

// redact replaces set secrets by the text they print as.
func redact(c *Config) {
	for _, l := range valueLeaves(reflect.ValueOf(c).Elem(), "") {
		if l.V.Type() == secretType && l.V.String() != "" {
			l.V.SetString(Redacted)
		}
	}
}

// normalize maps empty lists to nil: YAML writes both as [].
func normalize(c *Config) *Config {
	for _, l := range valueLeaves(reflect.ValueOf(c).Elem(), "") {
		if l.V.Kind() == reflect.Slice && l.V.Len() == 0 {
			l.V.Set(reflect.Zero(l.V.Type()))
		}
	}
	return c
}

func FuzzParseEventHubs(f *testing.F) {
	for _, s := range []string{
		"Endpoint=sb://a.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=c2VjcmV0LWtleQ==",
		"Endpoint=sb://a/;SharedAccessKeyName=k;SharedAccessKey=x;EntityPath=h", "Endpoint=sb://:0/", ";;=;",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		eh, err := ParseEventHubs(s)
		if err != nil {
			if _, key, ok := strings.Cut(s, "SharedAccessKey="); ok && len(key) > 8 && strings.Contains(err.Error(), key) {
				t.Fatalf("error leaks the key: %v", err)
			}
			return
		}
		if eh.Host == "" || eh.Broker != eh.Host+":9093" || eh.KeyName == "" {
			t.Fatalf("%q parsed to %+v", s, eh)
		}
	})
}

func TestTopicNames(t *testing.T) {
	tp := Defaults().Topics
	got := []string{tp.Raw("defender"), tp.Events("user"), tp.Alerts(), tp.Incidents(), tp.Actions(), tp.DLQ(), tp.Entities(), tp.Changelog("correlate", "seq")}
	want := []string{"vigil.raw.defender", "vigil.events.user", "vigil.alerts", "vigil.incidents", "vigil.actions", "vigil.dlq", "vigil.entities", "vigil.changelog.correlate.seq"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	tp.Prefix = ""
	if tp.Alerts() != "alerts" {
		t.Errorf("empty prefix: %q", tp.Alerts())
	}
}

// BenchmarkLoad measures start-up cost of the example file plus env.
func BenchmarkLoad(b *testing.B) {
	env := []string{"VIGIL_KAFKA_BROKERS=a:9092,b:9092", "VIGIL_TOPICS_PARTITIONS=12", "PATH=/usr/bin"}
	for b.Loop() {
		if _, err := Load("examples/local.yaml", env); err != nil {
			b.Fatal(err)
		}
	}
}

// checkProblems checks a Validate error against a table case: none when
// keys is nil, else Problems naming exactly keys, the first message
// holding msg. It reports whether there was an error to look at further.
func checkProblems(t *testing.T, err error, keys []string, msg string) bool {
	t.Helper()
	if keys == nil {
		if err != nil {
			t.Fatalf("unexpected: %v", err)
		}
		return false
	}
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("err = %v, want Problems", err)
	}
	if !slices.Equal(ps.Keys(), keys) {
		t.Errorf("keys = %q, want %q\n%v", ps.Keys(), keys, err)
	}
	if !strings.Contains(ps[0].Message, msg) {
		t.Errorf("message %q lacks %q", ps[0].Message, msg)
	}
	return true
}
