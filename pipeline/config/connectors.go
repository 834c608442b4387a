package config

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// DefaultSyslogMaxMessageBytes is connectors.syslog.max_message_bytes
// unless set (the syslog connector's own default).
const DefaultSyslogMaxMessageBytes = 64 << 10

// maxSyslogMessageBytes bounds max_message_bytes: a bigger message would
// not fit in a Kafka record under most brokers' message.max.bytes anyway.
const maxSyslogMessageBytes = 16 << 20

// Connectors configures the connectors stage (DESIGN.md: "connectors read
// sources and produce to raw.<source>"). Each configured entry becomes one
// connector of pipeline/connector; the app builds and runs them.
//
// The list sections are file-only: an environment variable cannot name an
// entry of a list. Secrets are the exception, because they must be able to
// stay out of the file: a kafka or azure_blobs entry named NAME reads
// VIGIL_CONNECTORS_KAFKA_<NAME>_<KEY> (VIGIL_CONNECTORS_AZURE_BLOBS_...)
// and <...>_FILE for each of its secret keys (NAME upper-cased, '-' as
// '_').
type Connectors struct {
	Syslog   SyslogConnector    `yaml:"syslog" doc:"Syslog (RFC 5424 / RFC 3164) and CEF listener; on when udp or tcp is set."`
	Kafka    []KafkaConnector   `yaml:"kafka" doc:"Consumers of another Kafka cluster or an Azure Event Hubs namespace (Defender XDR streaming API, Entra / Azure diagnostic settings), each copying its topics to raw.<source>."`
	Files    []FileConnector    `yaml:"files" doc:"Files or directories tailed line by line (JSON lines, or whole JSON documents), each to raw.<source>."`
	BlobDirs []BlobDirConnector `yaml:"blob_dirs" doc:"Local directories holding diagnostic-log / flow-log blobs in the storage-account layout (insights-logs-*/…/PT1H.json), e.g. a blobfuse mount or an azcopy sync."`
	// AzureBlobs reads the same layout straight from storage accounts.
	AzureBlobs []AzureBlobConnector `yaml:"azure_blobs" doc:"Azure storage accounts whose diagnostic-log / flow-log containers (insights-logs-*/…/PT1H.json) are polled through the Blob API, each to raw.<source>. Secrets also read VIGIL_CONNECTORS_AZURE_BLOBS_<NAME>_<KEY>(_FILE)."`
}

// SyslogConnector configures the syslog / CEF listener.
type SyslogConnector struct {
	UDP             string    `yaml:"udp" doc:"host:port to receive syslog datagrams on (514 is the standard port); empty = no UDP."`
	TCP             string    `yaml:"tcp" doc:"host:port to accept syslog over TCP on (octet-counted or newline-framed; 601, or 6514 with TLS); empty = no TCP."`
	Source          string    `yaml:"source" doc:"Source name: records go to raw.<source>."`
	TLS             ServerTLS `yaml:"tls" doc:"TLS on the TCP listener (RFC 5425)."`
	MaxMessageBytes int       `yaml:"max_message_bytes" doc:"Longest message accepted; longer newline-framed messages are skipped and counted."`
}

// Enabled reports whether the listener is configured.
func (s SyslogConnector) Enabled() bool { return s.UDP != "" || s.TCP != "" }

// ServerTLS is the certificate a listener presents.
type ServerTLS struct {
	CertFile string `yaml:"cert_file" doc:"PEM certificate (chain) the listener presents; needs key_file. Empty = plain TCP."`
	KeyFile  string `yaml:"key_file" doc:"PEM private key of cert_file."`
}

// Enabled reports whether a certificate is configured.
func (t ServerTLS) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" }

// KafkaConnector configures one consumer of a source cluster.
type KafkaConnector struct {
	Name   string   `yaml:"name" doc:"Unique name of the entry: the connector name in metrics and headers, the default consumer group, and NAME in the variables of its secrets."`
	Source string   `yaml:"source" doc:"Source name: every topic of the entry goes to raw.<source>."`
	Topics []string `yaml:"topics" doc:"Topics (event hubs) to consume."`
	Group  string   `yaml:"group" doc:"Consumer group on the source cluster; empty = vigil-<name>. With Event Hubs, a consumer group of the event hub is not needed: Kafka groups are separate."`
	// Brokers, SASL, TLS and EventHubsConnectionString have the meaning of
	// the same keys under kafka:, for the source cluster.
	Brokers                   []string `yaml:"brokers" doc:"Seed brokers of the source cluster as host:port; empty with event_hubs_connection_string = the namespace's :9093 endpoint."`
	EventHubsConnectionString Secret   `yaml:"event_hubs_connection_string" doc:"Azure Event Hubs connection string of the source namespace; implies SASL PLAIN ($ConnectionString), TLS and the broker, as kafka.event_hubs_connection_string does."`
	SASL                      SASL     `yaml:"sasl" doc:"SASL to the source cluster."`
	TLS                       TLS      `yaml:"tls" doc:"TLS to the source cluster."`
	StartAtEnd                bool     `yaml:"start_at_end" doc:"A group without committed offsets starts at the end of the topics instead of at their start (the default, which loses nothing the source still retains)."`
}

// GroupID is the consumer group on the source cluster.
func (k KafkaConnector) GroupID() string {
	if k.Group != "" {
		return k.Group
	}
	return "vigil-" + k.Name
}

// Client returns the source cluster's connection settings as a Kafka
// section (what kafka.ClientOpts takes), with the Event Hubs derivations
// applied when a connection string is set.
func (k KafkaConnector) Client(clientID string) Kafka {
	c := Kafka{
		Brokers:                   append([]string(nil), k.Brokers...),
		ClientID:                  clientID,
		SASL:                      k.SASL,
		TLS:                       k.TLS,
		EventHubsConnectionString: k.EventHubsConnectionString,
	}
	_ = c.ApplyEventHubs() // a bad string is reported by Validate with its key
	return c
}

// FileConnector configures one tailed file or directory.
type FileConnector struct {
	Path       string `yaml:"path" doc:"File, or directory walked recursively."`
	Pattern    string `yaml:"pattern" doc:"Glob on file base names under a directory (e.g. *.json); empty = every file."`
	Source     string `yaml:"source" doc:"Source name: records go to raw.<source>."`
	Checkpoint string `yaml:"checkpoint" doc:"File recording how far each file was produced; empty = <data_dir>/connectors/file-<source>-<hash of path>.json."`
}

// CheckpointPath is the configured checkpoint or the default under dataDir.
func (f FileConnector) CheckpointPath(dataDir string) string {
	if f.Checkpoint != "" {
		return f.Checkpoint
	}
	return defaultCheckpoint(dataDir, "file", f.Source, f.Path+"\x00"+f.Pattern)
}

// BlobDirConnector configures one directory of diagnostic-log blobs.
type BlobDirConnector struct {
	Root       string `yaml:"root" doc:"Directory holding the insights-logs-* containers."`
	Source     string `yaml:"source" doc:"Source name: records go to raw.<source> (required, so the raw topic is known before the first blob appears)."`
	Checkpoint string `yaml:"checkpoint" doc:"File recording how far each blob was produced; empty = <data_dir>/connectors/blob-<source>-<hash of root>.json."`
}

// CheckpointPath is the configured checkpoint or the default under dataDir.
func (b BlobDirConnector) CheckpointPath(dataDir string) string {
	if b.Checkpoint != "" {
		return b.Checkpoint
	}
	return defaultCheckpoint(dataDir, "blob", b.Source, b.Root)
}

// defaultCheckpoint names a checkpoint by kind, source and a hash of what
// is read, so reordering entries or adding one keeps each checkpoint with
// its input.
func defaultCheckpoint(dataDir, kind, source, what string) string {
	h := sha256.Sum256([]byte(what))
	return filepath.Join(dataDir, "connectors", kind+"-"+source+"-"+hex.EncodeToString(h[:4])+".json")
}

// Any reports whether at least one connector is configured.
func (c Connectors) Any() bool {
	return c.Syslog.Enabled() || len(c.Kafka) > 0 || len(c.Files) > 0 || len(c.BlobDirs) > 0 || len(c.AzureBlobs) > 0
}

// Sources lists the distinct sources of the configured connectors, in
// configuration order: the raw topics they write to.
func (c Connectors) Sources() []string {
	var out []string
	seen := map[string]bool{}
	add := func(s string) {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	if c.Syslog.Enabled() {
		add(c.Syslog.Source)
	}
	for _, k := range c.Kafka {
		add(k.Source)
	}
	for _, f := range c.Files {
		add(f.Source)
	}
	for _, b := range c.BlobDirs {
		add(b.Source)
	}
	for _, a := range c.AzureBlobs {
		add(a.Source)
	}
	return out
}

// entryEnvName is the variable prefix of the entry named name of the list
// at path: VIGIL_CONNECTORS_KAFKA_EH_DEFENDER for connectors.kafka / eh-defender.
func entryEnvName(path, name string) string {
	return envName(path) + "_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// connectorName is what a kafka entry's name may hold: it becomes part of
// a consumer group, a metric label and environment variable names.
var connectorName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_-]{0,63}$`)

// sourceProblem checks a source name by the rule connector.ValidateSource
// enforces (repeated here: config imports no pipeline package), returning
// "" when it is fine.
func sourceProblem(s string) string {
	switch {
	case s == "":
		return "is empty; name the source, e.g. defender (records go to raw.<source>)"
	case len(s) > 200:
		return fmt.Sprintf("is %d characters long; keep it under 200", len(s))
	case !topicChars.MatchString(s):
		return fmt.Sprintf("%q has characters Kafka does not allow in topic names; use only letters, digits, '.', '_' and '-'", s)
	case !isAlnum(s[0]):
		return fmt.Sprintf("%q must start with a letter or digit", s)
	case strings.Contains(s, ".."):
		return fmt.Sprintf("%q contains \"..\"; use single dots", s)
	}
	return ""
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// validateConnectors checks the connectors section; it runs whether or not
// the connectors stage is listed, since the sources also decide which raw
// topics exist.
func (c *Config) validateConnectors(add func(key, format string, args ...any)) {
	cc := c.Connectors
	s := cc.Syslog
	checkListen(add, "connectors.syslog.udp", s.UDP, true)
	checkListen(add, "connectors.syslog.tcp", s.TCP, true)
	if s.Enabled() {
		if p := sourceProblem(s.Source); p != "" {
			add("connectors.syslog.source", "%s", p)
		}
	}
	if s.MaxMessageBytes < 1 || s.MaxMessageBytes > maxSyslogMessageBytes {
		add("connectors.syslog.max_message_bytes", "%d is out of range; set 1 to %d (default %d)", s.MaxMessageBytes, maxSyslogMessageBytes, DefaultSyslogMaxMessageBytes)
	}
	if s.TLS.Enabled() {
		if s.TCP == "" {
			add("connectors.syslog.tls", "is set but connectors.syslog.tcp is empty; TLS applies to the TCP listener: set connectors.syslog.tcp (e.g. 0.0.0.0:6514) or remove the tls keys")
		}
		if s.TLS.CertFile == "" {
			add("connectors.syslog.tls.cert_file", "is empty but connectors.syslog.tls.key_file is set; a TLS listener needs both")
		}
		if s.TLS.KeyFile == "" {
			add("connectors.syslog.tls.key_file", "is empty but connectors.syslog.tls.cert_file is set; a TLS listener needs both")
		}
		checkFile(add, "connectors.syslog.tls.cert_file", s.TLS.CertFile)
		checkFile(add, "connectors.syslog.tls.key_file", s.TLS.KeyFile)
	}

	names := map[string]int{}
	for i, k := range cc.Kafka {
		p := fmt.Sprintf("connectors.kafka[%d].", i)
		entryName(add, "connectors.kafka", i, k.Name, "eh-defender (used for its consumer group, metrics and secret variables)", names)
		if sp := sourceProblem(k.Source); sp != "" {
			add(p+"source", "%s", sp)
		}
		if len(k.Topics) == 0 {
			add(p+"topics", "is empty; list the topics (event hubs) to consume, e.g. [insights-logs-signinlogs]")
		}
		for j, t := range k.Topics {
			if t == "" || !topicChars.MatchString(t) {
				add(fmt.Sprintf("%stopics[%d]", p, j), "%q is not a topic name; use letters, digits, '.', '_' and '-'", t)
			}
		}
		env := func(key string) string {
			if k.Name == "" {
				return "(name the entry to set it from the environment)"
			}
			return entryEnvName("connectors.kafka", k.Name) + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
		}
		validateKafkaConn(add, p, k.Client("vigil"), env)
	}

	checkpoints := map[string]string{}
	checkpoint := func(key, path string) {
		abs, err := filepath.Abs(path)
		if err != nil {
			abs = path
		}
		if other, dup := checkpoints[abs]; dup {
			add(key, "%s is also the checkpoint of %s; two connectors would overwrite each other's positions: give each its own checkpoint", path, other)
			return
		}
		checkpoints[abs] = key
	}
	for i, f := range cc.Files {
		p := fmt.Sprintf("connectors.files[%d].", i)
		if strings.TrimSpace(f.Path) == "" {
			add(p+"path", "is empty; give the file or directory to tail")
		}
		if f.Pattern != "" {
			if _, err := filepath.Match(f.Pattern, ""); err != nil {
				add(p+"pattern", "%q is not a glob (%v); write e.g. *.json", f.Pattern, err)
			}
		}
		if sp := sourceProblem(f.Source); sp != "" {
			add(p+"source", "%s", sp)
		}
		checkpoint(p+"checkpoint", f.CheckpointPath(c.DataDir))
	}
	for i, b := range cc.BlobDirs {
		p := fmt.Sprintf("connectors.blob_dirs[%d].", i)
		if strings.TrimSpace(b.Root) == "" {
			add(p+"root", "is empty; give the directory holding the insights-logs-* containers")
		} else if st, err := os.Stat(b.Root); err == nil && !st.IsDir() {
			add(p+"root", "%s is a file; give the directory holding the insights-logs-* containers", b.Root)
		}
		if sp := sourceProblem(b.Source); sp != "" {
			add(p+"source", "%s", sp)
		}
		checkpoint(p+"checkpoint", b.CheckpointPath(c.DataDir))
	}
	azNames := map[string]int{}
	for i, a := range cc.AzureBlobs {
		p := fmt.Sprintf("connectors.azure_blobs[%d].", i)
		entryName(add, "connectors.azure_blobs", i, a.Name, "flowlogs-prod (used for its connector name, metrics and secret variables)", azNames)
		validateAzureBlob(add, p, a)
		checkpoint(p+"checkpoint", a.CheckpointPath(c.DataDir))
	}
}

// checkFile reports a configured file that cannot be read.
func checkFile(add func(key, format string, args ...any), key, path string) {
	if path == "" {
		return
	}
	if st, err := os.Stat(path); err != nil {
		add(key, "cannot read %s: %v; fix the path", path, unwrapPathErr(err))
	} else if st.IsDir() {
		add(key, "%s is a directory; give the PEM file", path)
	}
}

// entryName checks the name of entry i of a named connector list: set,
// usable in variable names, and unique as its variables (seen maps the
// variable prefix to the first entry using it).
func entryName(add func(key, format string, args ...any), list string, i int, name, example string, seen map[string]int) {
	key := fmt.Sprintf("%s[%d].name", list, i)
	switch {
	case name == "":
		add(key, "is empty; name the entry, e.g. %s", example)
	case !connectorName.MatchString(name):
		add(key, "%q is not a usable name; use 1 to 64 letters, digits, '-' and '_', starting with a letter or digit", name)
	default:
		env := entryEnvName(list, name)
		if j, dup := seen[env]; dup {
			add(key, "%q is also the name of %s[%d] (names are compared as their variables %s_*); give each entry its own name", name, list, j, env)
		}
		seen[env] = i
	}
}
