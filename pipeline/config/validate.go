package config

import (
	"fmt"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/rs/zerolog"
)

// Problem is one invalid setting: the dotted key and what to do about it.
type Problem struct {
	Key     string
	Message string
}

func (p Problem) String() string { return p.Key + ": " + p.Message }

// Problems is every invalid setting Validate found. It is an error so
// start-up can print all of them at once instead of one per attempt.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = "  " + p.String()
	}
	return fmt.Sprintf("invalid configuration (%d problem(s)):\n%s", len(ps), strings.Join(lines, "\n"))
}

// Keys lists the keys with problems, in order (for tests and tooling).
func (ps Problems) Keys() []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Key
	}
	return out
}

var (
	mechanisms  = []string{SASLPlain, SASLScramSHA256, SASLScramSHA512}
	deliveries  = []string{ExactlyOnce, AtLeastOnce}
	compressors = []string{"none", "gzip", "snappy", "lz4", "zstd"}
	logLevels   = []string{"trace", "debug", "info", "warn", "error"}
	logFormats  = []string{"json", "console"}
	// topicChars is what Kafka allows in a topic name.
	topicChars = regexp.MustCompile(`^[a-zA-Z0-9._-]*$`)
)

// maxTopicLen is Kafka's limit on topic name length.
const maxTopicLen = 249

// Validate checks every key and returns all problems as Problems, or nil.
// It also checks that configured files (TLS) exist, so a typo in a path
// stops start-up here rather than at the first connection.
func (c *Config) Validate() error {
	var ps Problems
	add := func(key, format string, args ...any) {
		ps = append(ps, Problem{Key: key, Message: fmt.Sprintf(format, args...)})
	}
	c.validateKafka(add)

	t := c.Topics
	switch {
	case !topicChars.MatchString(t.Prefix):
		add("topics.prefix", "%q has characters Kafka does not allow in topic names; use only letters, digits, '.', '_' and '-'", t.Prefix)
	case len(t.Prefix) > 100:
		add("topics.prefix", "is %d characters long; keep it under 100 so topic names stay under Kafka's %d", len(t.Prefix), maxTopicLen)
	}
	if t.Partitions < 1 {
		add("topics.partitions", "%d is not a partition count; set it to 1 or more (partitions bound the parallelism of each stage)", t.Partitions)
	}
	if t.ReplicationFactor == 0 || t.ReplicationFactor < -1 {
		add("topics.replication_factor", "%d is not a replication factor; set it to 1 or more, or -1 for the broker's default", t.ReplicationFactor)
	}
	if t.Retention < 0 {
		add("topics.retention", "%s is negative; set a positive duration such as 7d, or 0 for the broker's default", t.Retention)
	}
	for i, s := range t.Sources {
		if s == "" || !topicChars.MatchString(s) {
			add(fmt.Sprintf("topics.sources[%d]", i), "%q is not usable in a topic name; use only letters, digits, '.', '_' and '-'", s)
		}
	}

	if len(c.Stages) == 0 {
		add("stages", "is empty; list the stages to run, e.g. %s", strings.Join(StageNames, ","))
	}
	seen := map[string]bool{}
	for i, s := range c.Stages {
		key := fmt.Sprintf("stages[%d]", i)
		switch {
		case !slices.Contains(StageNames, s):
			add(key, "%q is not a stage; use %s", s, strings.Join(StageNames, ", "))
		case seen[s]:
			add(key, "%q is listed twice; list each stage once", s)
		}
		seen[s] = true
	}

	if strings.TrimSpace(c.DataDir) == "" {
		add("data_dir", "is empty; set a directory for local state, e.g. ./vigil-data")
	}
	checkListen(add, "http.listen", c.HTTP.Listen, false)
	checkListen(add, "metrics.listen", c.Metrics.Listen, true)
	if !promName.MatchString(c.Metrics.Namespace) {
		add("metrics.namespace", "%q is not a valid Prometheus name prefix; use letters, digits and '_', not starting with a digit", c.Metrics.Namespace)
	}
	if !slices.Contains(logLevels, c.Log.Level) {
		add("log.level", "%q is not a level; use %s", c.Log.Level, strings.Join(logLevels, ", "))
	} else if _, err := zerolog.ParseLevel(c.Log.Level); err != nil {
		add("log.level", "%q: %v", c.Log.Level, err)
	}
	if !slices.Contains(logFormats, c.Log.Format) {
		add("log.format", "%q is not a format; use json or console", c.Log.Format)
	}
	for i, d := range c.Rules.Dirs {
		if strings.TrimSpace(d) == "" {
			add(fmt.Sprintf("rules.dirs[%d]", i), "is empty; give a directory path or remove the entry")
		}
	}
	if c.Rules.Lateness < 0 {
		add("rules.lateness", "%s is negative; set 0 or a positive duration such as 5m", c.Rules.Lateness)
	}
	if c.Rules.MaxRetention <= 0 {
		add("rules.max_retention", "%s must be positive; set e.g. 7d", c.Rules.MaxRetention)
	} else if c.Rules.MaxRetention < c.Rules.Lateness {
		add("rules.max_retention", "%s is shorter than rules.lateness (%s); raise it or lower rules.lateness", c.Rules.MaxRetention, c.Rules.Lateness)
	}
	checkListen(add, "dev.broker_listen", c.Dev.BrokerListen, false)
	en := c.Enrich
	if en.TTL <= 0 {
		add("enrich.ttl", "%s must be positive; set e.g. 24h (how long an IP stays tied to a device after it was last seen)", en.TTL)
	}
	if en.Refresh < 0 {
		add("enrich.refresh", "%s is negative; set 0 for ttl/96 or a positive duration such as 15m", en.Refresh)
	} else if en.TTL > 0 && en.Refresh >= en.TTL {
		add("enrich.refresh", "%s is not shorter than enrich.ttl (%s): associations would expire before being refreshed; lower it or set 0", en.Refresh, en.TTL)
	}
	if en.CacheSize < 1 {
		add("enrich.cache_size", "%d is not a cache size; set 1 or more, e.g. 65536", en.CacheSize)
	}
	if en.MaxRelated < 1 || en.MaxRelated > MaxEnrichRelated {
		add("enrich.max_related", "%d is out of range; set 1 to %d (default 8)", en.MaxRelated, MaxEnrichRelated)
	}
	c.validateConnectors(add)
	if i := slices.Index(c.Stages, StageConnectors); i >= 0 && !c.Connectors.Any() {
		add(fmt.Sprintf("stages[%d]", i), "%q is listed but no connector is configured; configure one under connectors (syslog, kafka, files, blob_dirs, azure_blobs) or remove it from stages", StageConnectors)
	}

	if len(ps) == 0 {
		return nil
	}
	return ps
}

var promName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

func (c *Config) validateKafka(add func(key, format string, args ...any)) {
	k := c.Kafka
	env := func(key string) string { return envName("kafka." + key) }
	validateKafkaConn(add, "kafka.", k, env)
	if strings.TrimSpace(k.ClientID) == "" {
		add("kafka.client_id", "is empty; set a name such as vigil")
	}
	if !slices.Contains(deliveries, k.Delivery) {
		add("kafka.delivery", "%q is not a delivery mode; use exactly_once (Kafka transactions) or at_least_once (brokers without transactions, e.g. Event Hubs below Premium)", k.Delivery)
	}
	if k.Delivery == ExactlyOnce && strings.TrimSpace(k.TransactionalIDPrefix) == "" {
		add("kafka.transactional_id_prefix", "is empty but kafka.delivery is exactly_once; set a prefix unique to this deployment, e.g. vigil")
	}
	if k.Compression != "" && !slices.Contains(compressors, k.Compression) {
		add("kafka.compression", "%q is not a codec; use one of %s, or leave it empty", k.Compression, strings.Join(compressors, ", "))
	}
}

// validateKafkaConn checks how a client reaches a cluster (brokers, Event
// Hubs string, SASL, TLS): Vigil's own (p = "kafka.") or a connector's
// source cluster (p = "connectors.kafka[i]."). env names the variable that
// sets a key under p (for the fix of a missing secret). k has had
// ApplyEventHubs applied.
func validateKafkaConn(add func(key, format string, args ...any), p string, k Kafka, env func(key string) string) {
	eh := k.EventHubsConnectionString != ""
	ehKey := p + "event_hubs_connection_string"
	if eh {
		if _, err := ParseEventHubs(k.EventHubsConnectionString.Reveal()); err != nil {
			add(ehKey, "%v", err)
		} else {
			if k.SASL.Mechanism != "" && k.SASL.Mechanism != SASLPlain {
				add(p+"sasl.mechanism", "%q conflicts with %s, which uses PLAIN; remove %ssasl or the connection string", k.SASL.Mechanism, ehKey, p)
			}
			if k.SASL.Username != "" && k.SASL.Username != EventHubsUser {
				add(p+"sasl.username", "%q conflicts with %s, which uses %s; remove %ssasl.username", k.SASL.Username, ehKey, EventHubsUser, p)
			}
			if k.SASL.Password != "" && k.SASL.Password != k.EventHubsConnectionString {
				add(p+"sasl.password", "is set and differs from %s; remove %ssasl.password", ehKey, p)
			}
		}
	}
	if len(k.Brokers) == 0 && !eh {
		add(p+"brokers", "is empty; list at least one seed broker as host:port, e.g. 127.0.0.1:9092, or set %s (%s or %s_FILE)", ehKey, env("event_hubs_connection_string"), env("event_hubs_connection_string"))
	}
	for i, b := range k.Brokers {
		key := fmt.Sprintf("%sbrokers[%d]", p, i)
		if err := checkHostPort(b); err != nil {
			add(key, "%q: %v; write host:port, e.g. kafka-1.example.com:9092", b, err)
		}
	}

	m := k.SASL.Mechanism
	switch {
	case m == "" && !eh:
		if k.SASL.Username != "" || k.SASL.Password != "" {
			add(p+"sasl.mechanism", "is empty but %ssasl.username or password is set; set it to one of %s, or remove the credentials", p, strings.Join(mechanisms, ", "))
		}
	case m != "" && !slices.Contains(mechanisms, m):
		hint := ""
		if up := strings.ToUpper(m); slices.Contains(mechanisms, up) {
			hint = fmt.Sprintf(" (write it as %s)", up)
		}
		add(p+"sasl.mechanism", "%q is not one of %s%s; set it to one of them or leave it empty for no SASL", m, strings.Join(mechanisms, ", "), hint)
	case m != "" && !eh:
		if k.SASL.Username == "" {
			add(p+"sasl.username", "is empty but %ssasl.mechanism is %s; set the user name", p, m)
		}
		if k.SASL.Password == "" {
			add(p+"sasl.password", "is empty but %ssasl.mechanism is %s; set it or %s(_FILE)", p, m, env("sasl.password"))
		}
	}

	tl := k.TLS
	if !tl.Enabled && !eh {
		for _, f := range []struct{ key, v string }{
			{p + "tls.ca_file", tl.CAFile}, {p + "tls.cert_file", tl.CertFile},
			{p + "tls.key_file", tl.KeyFile}, {p + "tls.server_name", tl.ServerName},
		} {
			if f.v != "" {
				add(f.key, "is set but %stls.enabled is false; set %stls.enabled: true or remove %s", p, p, f.key)
			}
		}
		if tl.InsecureSkipVerify {
			add(p+"tls.insecure_skip_verify", "is true but %stls.enabled is false; set %stls.enabled: true or remove it", p, p)
		}
	}
	if (tl.CertFile == "") != (tl.KeyFile == "") {
		if tl.CertFile == "" {
			add(p+"tls.cert_file", "is empty but %stls.key_file is set; client certificates need both", p)
		} else {
			add(p+"tls.key_file", "is empty but %stls.cert_file is set; client certificates need both", p)
		}
	}
	for _, f := range []struct{ key, path string }{
		{p + "tls.ca_file", tl.CAFile}, {p + "tls.cert_file", tl.CertFile}, {p + "tls.key_file", tl.KeyFile},
	} {
		checkFile(add, f.key, f.path)
	}
}

func unwrapPathErr(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" {
		return fmt.Errorf("not host:port")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	return nil
}

func checkListen(add func(key, format string, args ...any), key, v string, emptyOK bool) {
	if v == "" {
		if !emptyOK {
			add(key, "is empty; set host:port, e.g. 127.0.0.1:8080")
		}
		return
	}
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		add(key, "%q is not host:port; write e.g. 127.0.0.1:8080 (or :8080 for all interfaces)", v)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		add(key, "%q: port %q is not a number from 0 to 65535", v, port)
	}
}

// Warnings lists settings that are valid but probably not what was meant:
// environment variables that matched no key, credentials sent without TLS,
// an unauthenticated API on a non-loopback address, exactly-once on Event
// Hubs. Start-up logs each one.
func (c *Config) Warnings() []string {
	w := append([]string(nil), c.envWarnings...)
	if c.Kafka.SASL.Mechanism == SASLPlain && !c.Kafka.TLS.Enabled {
		w = append(w, "kafka.sasl.mechanism is PLAIN without kafka.tls.enabled: the password crosses the network in clear text")
	}
	if c.Kafka.TLS.InsecureSkipVerify {
		w = append(w, "kafka.tls.insecure_skip_verify is true: the broker's certificate is not checked")
	}
	if c.Kafka.IsEventHubs() && c.Kafka.Delivery == ExactlyOnce {
		w = append(w, "kafka.delivery is exactly_once on Azure Event Hubs: transactions need the Premium or Dedicated tier; set kafka.delivery: at_least_once otherwise")
	}
	if c.HTTP.Token == "" && !isLoopback(c.HTTP.Listen) {
		w = append(w, fmt.Sprintf("http.listen is %s with no http.token: the API is open to the network; set http.token or listen on 127.0.0.1", c.HTTP.Listen))
	}
	return w
}

func isLoopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
