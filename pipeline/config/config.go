// Package config holds Vigil's configuration: one YAML file, overridden by
// VIGIL_* environment variables, validated before anything starts.
//
// # Layers
//
// Load applies, in order:
//
//  1. the defaults (Defaults), so a missing file or key always means "the
//     documented default", never a zero value;
//  2. the YAML file, decoded strictly: an unknown key, a duplicate key or a
//     value of the wrong type is an error naming file:line and the key path;
//  3. the environment: every key has a variable derived from its path
//     (kafka.sasl.password → VIGIL_KAFKA_SASL_PASSWORD; lists are
//     comma-separated), and every Secret also reads <VAR>_FILE, the path of
//     a file holding the secret (how Docker and Kubernetes mount secrets).
//     Lists of entries (connectors.kafka, files, blob_dirs, azure_blobs)
//     are file-only, since a variable cannot address one entry; only the
//     secrets of a named entry have variables,
//     VIGIL_<LIST>_<NAME>_<KEY>(_FILE);
//  4. derivations: an Event Hubs connection string fills in SASL, TLS and
//     the broker (see ApplyEventHubs);
//  5. Validate, which reports every problem at once, each naming the key
//     and the fix.
//
// The environment mapping, the strict decoder and REFERENCE.md are all
// produced by walking the Config struct over its yaml tags, so a new field
// is overridable and documented the moment it is added. The `doc` tag is
// the text of REFERENCE.md; a test fails when the committed file drifts.
//
// # Secrets
//
// Secret is a string that prints as [redacted] through fmt, JSON, YAML,
// encoding.TextMarshaler and slog, so a config dump or a logged struct
// never leaks a password. Code that needs the value calls Reveal.
package config

import (
	"time"
)

// Delivery modes (kafka.delivery).
const (
	// ExactlyOnce runs consume → process → produce in Kafka transactions.
	ExactlyOnce = "exactly_once"
	// AtLeastOnce commits offsets after producing; duplicates are made
	// harmless by deterministic alert and incident ids. For brokers without
	// transactions (Azure Event Hubs below Premium).
	AtLeastOnce = "at_least_once"
)

// SASL mechanisms (kafka.sasl.mechanism). Empty means no SASL.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// Stage names. StageNames is the one list of the stages this build knows,
// and Validate accepts only these; DefaultStages is what runs when
// `stages` is not set.
const (
	// StageConnectors runs the connectors configured under `connectors`
	// (not a consumer-group stage: it reads sources outside Vigil's topics).
	StageConnectors = "connectors"
	StageNormalize  = "normalize"
	StageCorrelate  = "correlate"
	StageIncident   = "incident"
)

// StageNames lists the known stages in data-flow order.
var StageNames = []string{StageConnectors, StageNormalize, StageCorrelate, StageIncident}

// DefaultStages are the stages run when `stages` is not set. Connectors
// are left out on purpose: they listen on ports and read local files, so a
// process runs them only when told to (--stages connectors,...), and a
// cluster usually runs them as their own deployment. `vigil dev` adds
// them when a connector is configured (DevStages).
var DefaultStages = []string{StageNormalize, StageCorrelate, StageIncident}

// Config is the whole configuration of a Vigil process.
type Config struct {
	Kafka   Kafka    `yaml:"kafka" doc:"Connection to the Kafka cluster (Apache Kafka, Redpanda, Confluent, Azure Event Hubs)."`
	Topics  Topics   `yaml:"topics" doc:"Names and shape of the topics Vigil creates and uses."`
	Stages  []string `yaml:"stages" doc:"Stages this process runs (comma list in the env var). Known: connectors, normalize, correlate, incident; connectors runs only when listed, except under vigil dev, which adds it when stages is not set and a connector is configured."`
	DataDir string   `yaml:"data_dir" doc:"Directory for local state (Pebble stores, the dev broker's log)."`
	HTTP    HTTP     `yaml:"http" doc:"The API / UI / health HTTP server."`
	Metrics Metrics  `yaml:"metrics" doc:"Prometheus metrics endpoint."`
	Log     Log      `yaml:"log" doc:"Logging."`
	Rules   Rules    `yaml:"rules" doc:"Detection rules."`
	Dev     Dev      `yaml:"dev" doc:"Embedded single-process mode (vigil dev)."`
	Enrich  Enrich   `yaml:"enrich" doc:"The entity table normalize enriches events from (and vigil detect, over its inputs)."`

	Connectors Connectors `yaml:"connectors" doc:"Sources read by the connectors stage and produced, as received, to raw.<source> (run them with stages: [connectors, ...]). Their sources' raw topics are created and read by normalize whether or not this process runs the connectors stage. Lists of entries (kafka, files, blob_dirs, azure_blobs) are set in the file only, except the secrets of a named kafka or azure_blobs entry, which also read VIGIL_CONNECTORS_KAFKA_<NAME>_<KEY>(_FILE) or VIGIL_CONNECTORS_AZURE_BLOBS_<NAME>_<KEY>(_FILE)."`

	// envWarnings are VIGIL_* variables that matched no key, from Load.
	envWarnings []string
	// stagesSet records that stages came from the file, the environment
	// or SetStages rather than from DefaultStages (see DevStages).
	stagesSet bool
}

// Kafka configures every Kafka client of the process.
type Kafka struct {
	Brokers  []string `yaml:"brokers" doc:"Seed brokers as host:port."`
	ClientID string   `yaml:"client_id" doc:"Kafka client id, visible in broker logs and quotas."`
	SASL     SASL     `yaml:"sasl" doc:"SASL authentication."`
	TLS      TLS      `yaml:"tls" doc:"TLS to the brokers."`
	Delivery string   `yaml:"delivery" doc:"exactly_once (Kafka transactions) or at_least_once (for brokers without transactions, e.g. Event Hubs below Premium; ids stay deterministic so duplicates collapse)."`
	// TransactionalIDPrefix starts every transactional id; two deployments
	// sharing a cluster need different prefixes or they fence each other.
	TransactionalIDPrefix string `yaml:"transactional_id_prefix" doc:"Prefix of transactional ids; give each deployment sharing a cluster its own."`
	Compression           string `yaml:"compression" doc:"Producer compression: none, gzip, snappy, lz4, zstd; empty = none for Event Hubs, else snappy."`
	// EventHubsConnectionString is the convenience form for Azure Event
	// Hubs: it implies SASL PLAIN with user $ConnectionString, TLS, and the
	// broker NAMESPACE.servicebus.windows.net:9093.
	EventHubsConnectionString Secret `yaml:"event_hubs_connection_string" doc:"Azure Event Hubs connection string (Endpoint=sb://NAMESPACE.servicebus.windows.net/;...). Sets SASL PLAIN user $ConnectionString, TLS on, and the broker NAMESPACE.servicebus.windows.net:9093 unless kafka.brokers is set."`
}

// SASL configures SASL authentication.
type SASL struct {
	Mechanism string `yaml:"mechanism" doc:"Empty (no SASL), PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512."`
	Username  string `yaml:"username" doc:"SASL user name."`
	Password  Secret `yaml:"password" doc:"SASL password."`
}

// TLS configures TLS to the brokers.
type TLS struct {
	Enabled            bool   `yaml:"enabled" doc:"Dial brokers with TLS."`
	CAFile             string `yaml:"ca_file" doc:"PEM file of CA certificates to trust instead of the system pool."`
	CertFile           string `yaml:"cert_file" doc:"PEM client certificate (mutual TLS); needs key_file."`
	KeyFile            string `yaml:"key_file" doc:"PEM private key of cert_file."`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify" doc:"Do not verify the broker certificate. For tests only."`
	ServerName         string `yaml:"server_name" doc:"Expected name in the broker certificate; empty = the host dialed."`
}

// Topics configures topic names and the shape of topics Vigil creates. Its
// methods build topic names (see topics.go).
type Topics struct {
	Prefix            string   `yaml:"prefix" doc:"Prefix of every topic name."`
	Partitions        int32    `yaml:"partitions" doc:"Partitions of topics Vigil creates. Co-partitioned topics (events.* and their changelogs) must all have the same count."`
	ReplicationFactor int16    `yaml:"replication_factor" doc:"Replication factor of topics Vigil creates; -1 = the broker's default."`
	Retention         Duration `yaml:"retention" doc:"retention.ms of the non-compacted topics Vigil creates (raw, events, alerts, actions, dlq); 0 = the broker's default."`
	Compact           bool     `yaml:"compact" doc:"Create incidents, entities and changelogs with cleanup.policy=compact and require it on existing ones. Set false only on a service without log compaction."`
	Sources           []string `yaml:"sources" doc:"Sources whose raw.<source> topics to create (comma list in the env var)."`
}

// HTTP configures the API / UI / health server.
type HTTP struct {
	Listen string `yaml:"listen" doc:"host:port of the HTTP server (API, UI, /healthz, /readyz)."`
	Token  Secret `yaml:"token" doc:"Bearer token required by the API and HTTP ingest; empty = those routes refuse every request (vigil dev generates a token and prints it)."`
}

// Metrics configures the Prometheus endpoint.
type Metrics struct {
	Listen    string `yaml:"listen" doc:"host:port serving /metrics; empty = served by the HTTP server on http.listen."`
	Namespace string `yaml:"namespace" doc:"Prefix of metric names."`
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level" doc:"trace, debug, info, warn or error."`
	Format string `yaml:"format" doc:"json (one object per line) or console (human-readable)."`
}

// Rules configures rule loading and event-time handling.
type Rules struct {
	Dirs         []string `yaml:"dirs" doc:"Directories searched recursively for rule files (comma list in the env var)."`
	Lateness     Duration `yaml:"lateness" doc:"Allowed lateness: how far behind the newest event time an event may arrive and still be matched; later ones go to the DLQ."`
	MaxRetention Duration `yaml:"max_retention" doc:"Upper bound on any rule window and on operator state age."`
}

// Dev configures `vigil dev`, the embedded single-process mode.
type Dev struct {
	BrokerListen string `yaml:"broker_listen" doc:"host:port of the embedded Kafka-protocol broker."`
	Demo         bool   `yaml:"demo" doc:"Replay the demo attack at start."`
}

// Enrich configures the entity table (pipeline/enrich): which IP was
// which device, who was on which device, who signed in from which IP.
// The streaming normalize stage and `vigil detect` use the same settings,
// so they enrich alike.
type Enrich struct {
	TTL        Duration `yaml:"ttl" doc:"How long, in event time, an association (ip-device, device-user, ip-user) lives after it was last seen; DHCP leases and sessions change."`
	Refresh    Duration `yaml:"refresh" doc:"How much newer an observation must be than the stored last-seen time to be written and published again; 0 = ttl/96 (15m for a day). Bounds the entities topic to a few records per association per hour."`
	CacheSize  int      `yaml:"cache_size" doc:"Entities whose neighbour lists the in-memory LRU cache holds (the Pebble copy serves the rest)."`
	MaxRelated int      `yaml:"max_related" doc:"At most this many users, devices and IPs each are added to an event's related entities (1 to 32)."`
}

// MaxEnrichRelated bounds enrich.max_related (the entity table keeps 32
// neighbours per entity in its cache).
const MaxEnrichRelated = 32

// Defaults returns the configuration used for every key the file and the
// environment leave unset.
func Defaults() *Config {
	return &Config{
		Kafka: Kafka{
			Brokers:               []string{"127.0.0.1:9092"},
			ClientID:              "vigil",
			Delivery:              ExactlyOnce,
			TransactionalIDPrefix: "vigil",
		},
		Topics: Topics{
			Prefix:            "vigil.",
			Partitions:        6,
			ReplicationFactor: 1,
			Compact:           true,
		},
		Stages:  append([]string(nil), DefaultStages...),
		DataDir: "./vigil-data",
		HTTP:    HTTP{Listen: "127.0.0.1:8080"},
		Metrics: Metrics{Namespace: "vigil"},
		Log:     Log{Level: "info", Format: "json"},
		Rules: Rules{
			Dirs:         []string{"rules/library"},
			Lateness:     Duration(5 * time.Minute),
			MaxRetention: Duration(30 * 24 * time.Hour),
		},
		Dev: Dev{BrokerListen: "127.0.0.1:9092", Demo: true},
		Enrich: Enrich{
			TTL:        Duration(24 * time.Hour),
			CacheSize:  1 << 16,
			MaxRelated: 8,
		},
		Connectors: Connectors{Syslog: SyslogConnector{
			Source: "syslog", MaxMessageBytes: DefaultSyslogMaxMessageBytes,
		}},
	}
}

// SetStages sets the stages as chosen by the operator (the --stages
// flag): DevStages then keeps them as they are. Call Validate after.
func (c *Config) SetStages(stages []string) {
	c.Stages = append([]string(nil), stages...)
	c.stagesSet = true
}

// StagesSet reports whether stages was chosen by the operator (file key,
// VIGIL_STAGES, SetStages) rather than left at DefaultStages.
func (c *Config) StagesSet() bool { return c.stagesSet }

// DevStages is the stage list of `vigil dev`, which runs "every stage in
// one process": the operator's choice when stages was set, exactly as
// `vigil run` takes it; otherwise DefaultStages, with connectors in front
// when any connector is configured. Connectors are out of DefaultStages
// because a cluster runs them as their own deployment; in dev there is no
// other process to run them, so configuring one is asking for it.
func (c *Config) DevStages() []string {
	if c.stagesSet {
		return append([]string(nil), c.Stages...)
	}
	out := make([]string, 0, len(DefaultStages)+1)
	if c.Connectors.Any() {
		out = append(out, StageConnectors)
	}
	return append(out, DefaultStages...)
}

// HasStage reports whether the process runs the named stage.
func (c *Config) HasStage(name string) bool {
	for _, s := range c.Stages {
		if s == name {
			return true
		}
	}
	return false
}
