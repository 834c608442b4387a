package config

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// AzureBlobConnector configures one Azure storage account read through
// the Blob API: the diagnostic-log and flow-log containers Azure Monitor
// writes (insights-logs-*/…/PT1H.json), polled for new blocks.
//
// Exactly one credential is set: connection_string (the account's, from
// the portal's Access keys page), account_key (a shared key, with
// service_url or account_name), or sas_token (with service_url). Each is a
// Secret and, like a kafka entry's, also reads
// VIGIL_CONNECTORS_AZURE_BLOBS_<NAME>_<KEY>(_FILE), so it can stay out of
// the file.
//
// The connector calls the account's blob endpoint and nothing else: no
// redirect is followed and plain http is accepted for loopback endpoints
// (Azurite) only.
type AzureBlobConnector struct {
	Name             string   `yaml:"name" doc:"Unique name of the entry: the connector name in metrics and headers (azblob-<name>), and NAME in the variables of its secrets."`
	Source           string   `yaml:"source" doc:"Source name: records go to raw.<source> (required, so the raw topic is known before the first blob appears)."`
	ServiceURL       string   `yaml:"service_url" doc:"Blob endpoint of the account, https://<account>.blob.core.windows.net (or a container's URL with sas_token; http only on loopback, for Azurite). Empty with account_key = built from account_name; must be empty with connection_string."`
	AccountName      string   `yaml:"account_name" doc:"Storage account name, for account_key; empty = taken from service_url."`
	Containers       []string `yaml:"containers" doc:"Containers to read; empty = every container whose name starts with insights-logs- (what diagnostic settings and flow logs create)."`
	BlobPrefix       string   `yaml:"blob_prefix" doc:"Read only blobs whose name starts with this, e.g. resourceId=/SUBSCRIPTIONS/<id>/RESOURCEGROUPS/<rg>/ ; empty = all."`
	PollInterval     Duration `yaml:"poll_interval" doc:"How often the account is listed for new or grown blobs (Azure appends about once a minute); 0 = 30s."`
	Checkpoint       string   `yaml:"checkpoint" doc:"File recording how far each blob was produced; empty = <data_dir>/connectors/azblob-<source>-<hash of endpoint, containers and prefix>.json."`
	ConnectionString Secret   `yaml:"connection_string" doc:"Storage account connection string (DefaultEndpointsProtocol=https;AccountName=...;AccountKey=...;EndpointSuffix=..., or BlobEndpoint=...;SharedAccessSignature=...)."`
	AccountKey       Secret   `yaml:"account_key" doc:"Shared key (base64) of the account."`
	SASToken         Secret   `yaml:"sas_token" doc:"SAS token (the query part: sv=...&sig=..., with or without the leading ?) for service_url; needs List and Read permissions."`
}

// DefaultAzureBlobPoll is the poll interval of an entry without one (the
// blob connector's own default).
const DefaultAzureBlobPoll = 30 * time.Second

// Poll is the configured poll interval or DefaultAzureBlobPoll.
func (a AzureBlobConnector) Poll() time.Duration {
	if a.PollInterval > 0 {
		return a.PollInterval.D()
	}
	return DefaultAzureBlobPoll
}

// Endpoint returns the blob service URL the entry reads (no query, no
// secret), or "" when the settings do not tell it: for logs, the default
// checkpoint, and validation.
func (a AzureBlobConnector) Endpoint() string {
	raw := a.ServiceURL
	if a.ConnectionString != "" {
		cs, err := parseStorageConnectionString(a.ConnectionString.Reveal())
		if err != nil {
			return ""
		}
		raw = cs.endpoint
	} else if raw == "" && a.AccountName != "" {
		raw = "https://" + a.AccountName + ".blob.core.windows.net"
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return ""
	}
	u.RawQuery, u.Fragment, u.User = "", "", nil
	return strings.TrimSuffix(u.String(), "/")
}

// SASURL returns service_url with sas_token as its query, the form the
// blob connector takes, or "" without a SAS token.
func (a AzureBlobConnector) SASURL() Secret {
	if a.SASToken == "" {
		return ""
	}
	return Secret(strings.TrimSuffix(a.ServiceURL, "?") + "?" + strings.TrimPrefix(a.SASToken.Reveal(), "?"))
}

// CheckpointPath is the configured checkpoint or the default under dataDir.
func (a AzureBlobConnector) CheckpointPath(dataDir string) string {
	if a.Checkpoint != "" {
		return a.Checkpoint
	}
	return defaultCheckpoint(dataDir, "azblob", a.Source,
		a.Endpoint()+"\x00"+strings.Join(a.Containers, ",")+"\x00"+a.BlobPrefix)
}

// storageConnectionString is what validation needs from a storage
// account connection string, parsed as azblob parses it.
type storageConnectionString struct {
	endpoint string // blob service URL
	key      string // AccountKey, if any
	sas      bool   // SharedAccessSignature present
}

// parseStorageConnectionString follows azblob's parser (case-sensitive
// keys, ';'-separated key=value pairs). Its errors never contain the
// string.
func parseStorageConnectionString(s string) (storageConnectionString, error) {
	m := map[string]string{}
	for part := range strings.SplitSeq(strings.TrimRight(s, ";"), ";") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return storageConnectionString{}, fmt.Errorf("is not a storage connection string (want Key=value pairs separated by ';')")
		}
		m[k] = v
	}
	var out storageConnectionString
	protocol, suffix := m["DefaultEndpointsProtocol"], m["EndpointSuffix"]
	if protocol == "" {
		protocol = "https"
	}
	if suffix == "" {
		suffix = "core.windows.net"
	}
	name, hasName := m["AccountName"]
	switch be, ok := m["BlobEndpoint"]; {
	case ok:
		out.endpoint = be
	case hasName:
		out.endpoint = protocol + "://" + name + ".blob." + suffix
	default:
		return out, fmt.Errorf("has neither AccountName nor BlobEndpoint; copy the whole connection string from the storage account's Access keys page")
	}
	key, hasKey := m["AccountKey"]
	_, out.sas = m["SharedAccessSignature"]
	switch {
	case hasName && hasKey:
		out.key = key
	case out.sas:
	default:
		return out, fmt.Errorf("has neither AccountName with AccountKey nor SharedAccessSignature; copy the whole connection string from the storage account's Access keys page")
	}
	return out, nil
}

// containerName is Azure's rule for container names.
var containerName = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9]|-[a-z0-9]){2,62}$`)

// storageAccountName is Azure's rule for storage account names.
var storageAccountName = regexp.MustCompile(`^[a-z0-9]{3,24}$`)

// endpointProblem checks a blob endpoint URL: absolute, https or http on
// loopback, no query or credentials. what names the setting in messages.
func endpointProblem(raw string) string {
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "" || u.Scheme == "":
		return "is not an absolute URL; write e.g. https://<account>.blob.core.windows.net"
	case u.User != nil:
		return "carries credentials in the URL; put them in account_key, sas_token or connection_string"
	case u.Scheme != "https" && !(u.Scheme == "http" && loopbackHost(u.Hostname())):
		return fmt.Sprintf("uses %s://%s; Vigil calls storage accounts over https only (http is allowed on loopback, for Azurite)", u.Scheme, u.Host)
	}
	return ""
}

func loopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// validateAzureBlob checks connectors.azure_blobs[i] (prefix p).
func validateAzureBlob(add func(key, format string, args ...any), p string, a AzureBlobConnector) {
	envOf := func(key string) string {
		if a.Name == "" || !connectorName.MatchString(a.Name) {
			return "(name the entry to set it from the environment)"
		}
		return entryEnvName("connectors.azure_blobs", a.Name) + "_" + strings.ToUpper(key)
	}
	if sp := sourceProblem(a.Source); sp != "" {
		add(p+"source", "%s", sp)
	}
	var creds []string
	for _, c := range []struct {
		key string
		v   Secret
	}{{"connection_string", a.ConnectionString}, {"account_key", a.AccountKey}, {"sas_token", a.SASToken}} {
		if c.v != "" {
			creds = append(creds, p+c.key)
		}
	}
	switch len(creds) {
	case 0:
		add(p+"connection_string", "no credential is set; set exactly one of connection_string (%s_FILE), account_key with service_url or account_name (%s_FILE), or sas_token with service_url (%s_FILE)",
			envOf("connection_string"), envOf("account_key"), envOf("sas_token"))
	case 1:
	default:
		add(creds[1], "is set together with %s; set only one credential and remove the others", strings.Join(append(creds[:1:1], creds[2:]...), " and "))
	}

	switch {
	case a.ConnectionString != "":
		if a.ServiceURL != "" {
			add(p+"service_url", "is set but the endpoint comes from %sconnection_string; remove service_url (or use account_key / sas_token with it)", p)
		}
		if a.AccountName != "" {
			add(p+"account_name", "is set but the account comes from %sconnection_string; remove account_name", p)
		}
		cs, err := parseStorageConnectionString(a.ConnectionString.Reveal())
		if err != nil {
			add(p+"connection_string", "%v", err)
			break
		}
		if ep := endpointProblem(cs.endpoint); ep != "" {
			add(p+"connection_string", "its blob endpoint %s", ep)
		}
		if cs.key != "" && !base64OK(cs.key) {
			add(p+"connection_string", "its AccountKey is not base64; copy the key again from the storage account's Access keys page")
		}
	case a.AccountKey != "":
		if !base64OK(a.AccountKey.Reveal()) {
			add(p+"account_key", "is not a base64 storage account key; copy key1 or key2 from the storage account's Access keys page")
		}
		if a.ServiceURL == "" && a.AccountName == "" {
			add(p+"service_url", "is empty and so is %saccount_name; a shared key needs one of them, e.g. service_url: https://<account>.blob.core.windows.net", p)
		}
	case a.SASToken != "":
		tok := a.SASToken.Reveal()
		if strings.Contains(tok, "://") {
			add(p+"sas_token", "looks like a URL; put the URL without its query in %sservice_url and only the query (sv=...&sig=...) in sas_token", p)
		} else if q, err := url.ParseQuery(strings.TrimPrefix(tok, "?")); err != nil || q.Get("sig") == "" {
			add(p+"sas_token", "has no sig= parameter; copy the whole SAS token (sv=...&...&sig=...)")
		}
		if a.ServiceURL == "" {
			add(p+"service_url", "is empty but %ssas_token is set; give the account's (or a container's) blob URL the token is for", p)
		}
		if a.AccountName != "" {
			add(p+"account_name", "is set but is used only with account_key; remove it")
		}
	}
	if a.ServiceURL != "" {
		if ep := endpointProblem(a.ServiceURL); ep != "" {
			add(p+"service_url", "%q %s", a.ServiceURL, ep)
		} else if u, _ := url.Parse(a.ServiceURL); u.RawQuery != "" {
			add(p+"service_url", "carries a query; a SAS token goes in %ssas_token (or %s), not in the URL, so that it stays secret", p, envOf("sas_token"))
		}
	}
	if a.AccountName != "" && !storageAccountName.MatchString(a.AccountName) {
		add(p+"account_name", "%q is not a storage account name (3 to 24 lower-case letters and digits)", a.AccountName)
	}
	for j, c := range a.Containers {
		if !containerName.MatchString(c) {
			add(fmt.Sprintf("%scontainers[%d]", p, j), "%q is not a container name (3 to 63 lower-case letters, digits and single '-'), e.g. insights-logs-networksecuritygroupflowevent", c)
		}
	}
	if a.PollInterval < 0 {
		add(p+"poll_interval", "%s is negative; set e.g. 30s, or 0 for the default", a.PollInterval)
	} else if a.PollInterval > 0 && a.PollInterval.D() < time.Second {
		add(p+"poll_interval", "%s lists the account more than once a second; set 1s or more (Azure appends about once a minute)", a.PollInterval)
	}
}

func base64OK(s string) bool {
	_, err := base64.StdEncoding.DecodeString(s)
	return err == nil && s != ""
}
