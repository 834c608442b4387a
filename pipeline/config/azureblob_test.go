package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Invented credentials: the shape of the real ones, none of their value.
const (
	testAccountKey = "ZmFrZS1zdG9yYWdlLWtleS1mb3ItdmlnaWwtdGVzdHMtb25seS0wMDAwMDAwMDAwMDA="
	testSASToken   = "sv=2024-08-04&ss=b&srt=co&sp=rl&se=2031-01-01T00:00:00Z&sig=VGVzdFNpZ25hdHVyZU5vdFJlYWwxMjM0NTY3ODkw%3D"
	testConnString = "DefaultEndpointsProtocol=https;AccountName=flowlogsacct;AccountKey=" + testAccountKey + ";EndpointSuffix=core.windows.net"
)

func TestValidateAzureBlobs(t *testing.T) {
	ok := func() AzureBlobConnector {
		return AzureBlobConnector{Name: "flows", Source: "network", ServiceURL: "https://flowlogsacct.blob.core.windows.net", AccountKey: testAccountKey}
	}
	tests := []struct {
		name   string
		mutate func(a *AzureBlobConnector)
		keys   []string
		msg    string // substring of the first problem's message
	}{
		{"shared key with service url", func(*AzureBlobConnector) {}, nil, ""},
		{"shared key with account name", func(a *AzureBlobConnector) { a.ServiceURL, a.AccountName = "", "flowlogsacct" }, nil, ""},
		{"connection string", func(a *AzureBlobConnector) { a.ServiceURL, a.AccountKey, a.ConnectionString = "", "", testConnString }, nil, ""},
		{"sas token on azurite with containers", func(a *AzureBlobConnector) {
			a.ServiceURL, a.AccountKey, a.SASToken = "http://127.0.0.1:10000/devstoreaccount1", "", "?"+testSASToken
			a.Containers = []string{"insights-logs-networksecuritygroupflowevent"}
			a.PollInterval = Duration(5 * time.Second)
		}, nil, ""},
		{"no credential", func(a *AzureBlobConnector) { a.AccountKey = "" },
			[]string{"connectors.azure_blobs[0].connection_string"}, "set exactly one of connection_string (VIGIL_CONNECTORS_AZURE_BLOBS_FLOWS_CONNECTION_STRING_FILE)"},
		{"two credentials", func(a *AzureBlobConnector) { a.SASToken = testSASToken },
			[]string{"connectors.azure_blobs[0].sas_token"}, "is set together with connectors.azure_blobs[0].account_key; set only one credential"},
		{"three credentials", func(a *AzureBlobConnector) {
			a.ServiceURL, a.SASToken, a.ConnectionString = "", testSASToken, testConnString
		}, []string{"connectors.azure_blobs[0].account_key"}, "together with connectors.azure_blobs[0].connection_string and connectors.azure_blobs[0].sas_token"},
		{"bad url", func(a *AzureBlobConnector) { a.ServiceURL = "flowlogsacct.blob.core.windows.net" },
			[]string{"connectors.azure_blobs[0].service_url"}, "is not an absolute URL"},
		{"plain http to a remote host", func(a *AzureBlobConnector) { a.ServiceURL = "http://flowlogsacct.blob.core.windows.net" },
			[]string{"connectors.azure_blobs[0].service_url"}, "https only (http is allowed on loopback, for Azurite)"},
		{"sas in the url", func(a *AzureBlobConnector) {
			a.AccountKey, a.SASToken = "", testSASToken
			a.ServiceURL += "?" + testSASToken
		},
			[]string{"connectors.azure_blobs[0].service_url"}, "a SAS token goes in connectors.azure_blobs[0].sas_token (or VIGIL_CONNECTORS_AZURE_BLOBS_FLOWS_SAS_TOKEN)"},
		{"credentials in the url", func(a *AzureBlobConnector) { a.ServiceURL = "https://u:p@flowlogsacct.blob.core.windows.net" },
			[]string{"connectors.azure_blobs[0].service_url"}, "carries credentials"},
		{"shared key without endpoint", func(a *AzureBlobConnector) { a.ServiceURL = "" },
			[]string{"connectors.azure_blobs[0].service_url"}, "a shared key needs one of them"},
		{"key not base64", func(a *AzureBlobConnector) { a.AccountKey = "not base64!" },
			[]string{"connectors.azure_blobs[0].account_key"}, "is not a base64 storage account key"},
		{"sas without sig, without url", func(a *AzureBlobConnector) { a.ServiceURL, a.AccountKey, a.SASToken = "", "", "sv=2024-08-04&sp=rl" },
			[]string{"connectors.azure_blobs[0].sas_token", "connectors.azure_blobs[0].service_url"}, "has no sig= parameter"},
		{"sas token given as url", func(a *AzureBlobConnector) { a.AccountKey, a.SASToken = "", Secret(a.ServiceURL+"?"+testSASToken) },
			[]string{"connectors.azure_blobs[0].sas_token"}, "looks like a URL"},
		{"connection string with endpoint keys", func(a *AzureBlobConnector) {
			a.AccountKey, a.ConnectionString, a.AccountName = "", testConnString, "flowlogsacct"
		},
			[]string{"connectors.azure_blobs[0].service_url", "connectors.azure_blobs[0].account_name"}, "the endpoint comes from connectors.azure_blobs[0].connection_string"},
		{"connection string garbage", func(a *AzureBlobConnector) { a.ServiceURL, a.AccountKey, a.ConnectionString = "", "", "just-a-key" },
			[]string{"connectors.azure_blobs[0].connection_string"}, "is not a storage connection string"},
		{"connection string without key", func(a *AzureBlobConnector) {
			a.ServiceURL, a.AccountKey, a.ConnectionString = "", "", "AccountName=flowlogsacct;EndpointSuffix=core.windows.net"
		}, []string{"connectors.azure_blobs[0].connection_string"}, "neither AccountName with AccountKey nor SharedAccessSignature"},
		{"connection string over http", func(a *AzureBlobConnector) {
			a.ServiceURL, a.AccountKey = "", ""
			a.ConnectionString = Secret(strings.Replace(testConnString, "https", "http", 1))
		}, []string{"connectors.azure_blobs[0].connection_string"}, "its blob endpoint uses http://flowlogsacct.blob.core.windows.net"},
		{"name, source, account, containers, poll", func(a *AzureBlobConnector) {
			a.Name, a.Source, a.ServiceURL, a.AccountName = "", "", "", "Flow_Logs"
			a.Containers = []string{"insights-logs-ok", "Bad/Name", "ab"}
			a.PollInterval = Duration(10 * time.Millisecond)
		}, []string{"connectors.azure_blobs[0].name", "connectors.azure_blobs[0].source", "connectors.azure_blobs[0].account_name",
			"connectors.azure_blobs[0].containers[1]", "connectors.azure_blobs[0].containers[2]", "connectors.azure_blobs[0].poll_interval"}, "name the entry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Defaults()
			a := ok()
			tt.mutate(&a)
			c.Connectors.AzureBlobs = []AzureBlobConnector{a}
			err := c.Validate()
			if !checkProblems(t, err, tt.keys, tt.msg) {
				return
			}
			// No message repeats a credential.
			for _, s := range []string{testAccountKey, "VGVzdFNpZ25hdHVyZU5vdFJlYWw", "just-a-key"} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error leaks %q:\n%v", s, err)
				}
			}
		})
	}
}

// Two entries: names are unique, checkpoints are too.
func TestValidateAzureBlobsAcrossEntries(t *testing.T) {
	c := Defaults()
	a := AzureBlobConnector{Name: "flows", Source: "network", AccountName: "flowlogsacct", AccountKey: testAccountKey}
	b := a
	b.Name = "FLOWS"
	c.Connectors.AzureBlobs = []AzureBlobConnector{a, b}
	var ps Problems
	if !errors.As(c.Validate(), &ps) {
		t.Fatal("two entries reading the same account into one checkpoint validated")
	}
	want := []string{"connectors.azure_blobs[1].name", "connectors.azure_blobs[1].checkpoint"}
	if !slices.Equal(ps.Keys(), want) {
		t.Fatalf("keys = %q, want %q", ps.Keys(), want)
	}
	// Another prefix is another input: its own default checkpoint.
	b.Name, b.BlobPrefix = "flows-rg2", "resourceId=/SUBSCRIPTIONS/00000000-0000-4000-8000-000000000001/RESOURCEGROUPS/RG2/"
	c.Connectors.AzureBlobs = []AzureBlobConnector{a, b}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

// An azure_blobs entry from YAML, its secrets from VIGIL_* and *_FILE;
// the dump (vigil config show) and fmt never print them.
func TestAzureBlobsYAML(t *testing.T) {
	keyFile := writeFile(t, "key", testAccountKey+"\n")
	tests := []struct {
		name, yaml string
		env        []string
		errs       []string // substrings of the error; nil: loads
		check      func(t *testing.T, c *Config)
	}{
		{"shared key from a file", `
stages: [connectors, normalize]
connectors:
  azure_blobs:
    - name: nsg-prod
      source: network
      service_url: https://flowlogsacct.blob.core.windows.net/
      containers: [insights-logs-networksecuritygroupflowevent]
      blob_prefix: resourceId=/SUBSCRIPTIONS/
      poll_interval: 1m
`, []string{"VIGIL_CONNECTORS_AZURE_BLOBS_NSG_PROD_ACCOUNT_KEY_FILE=" + keyFile}, nil, func(t *testing.T, c *Config) {
			a := c.Connectors.AzureBlobs[0]
			if a.AccountKey.Reveal() != testAccountKey || a.Poll() != time.Minute || a.Endpoint() != "https://flowlogsacct.blob.core.windows.net" ||
				!slices.Equal(c.Connectors.Sources(), []string{"network"}) || !c.Connectors.Any() {
				t.Errorf("entry %+v, sources %q", a, c.Connectors.Sources())
			}
			if cp := a.CheckpointPath(c.DataDir); !strings.HasPrefix(cp, filepath.Join("vigil-data", "connectors", "azblob-network-")) {
				t.Errorf("checkpoint %q", cp)
			}
		}},
		{"sas token from env, default poll and containers", `
connectors:
  azure_blobs:
    - {name: lab, source: flows, service_url: "http://127.0.0.1:10000/devstoreaccount1"}
`, []string{"VIGIL_CONNECTORS_AZURE_BLOBS_LAB_SAS_TOKEN=?" + testSASToken}, nil, func(t *testing.T, c *Config) {
			a := c.Connectors.AzureBlobs[0]
			if a.Poll() != DefaultAzureBlobPoll || len(a.Containers) != 0 ||
				a.SASURL().Reveal() != "http://127.0.0.1:10000/devstoreaccount1?"+testSASToken {
				t.Errorf("entry %+v sas url %q", a, a.SASURL().Reveal())
			}
		}},
		{"connection string from env", "connectors:\n  azure_blobs:\n    - {name: cs, source: network}\n",
			[]string{"VIGIL_CONNECTORS_AZURE_BLOBS_CS_CONNECTION_STRING=" + testConnString}, nil, func(t *testing.T, c *Config) {
				if e := c.Connectors.AzureBlobs[0].Endpoint(); e != "https://flowlogsacct.blob.core.windows.net" {
					t.Errorf("endpoint %q", e)
				}
			}},
		{"no credential anywhere", "connectors:\n  azure_blobs:\n    - {name: cs, source: network, account_name: flowlogsacct}\n", nil,
			[]string{"connectors.azure_blobs[0].connection_string: no credential is set", "VIGIL_CONNECTORS_AZURE_BLOBS_CS_ACCOUNT_KEY_FILE"}, nil},
		{"credential in file and env", "connectors:\n  azure_blobs:\n    - {name: cs, source: network, account_name: flowlogsacct, account_key: " + testAccountKey + "}\n",
			[]string{"VIGIL_CONNECTORS_AZURE_BLOBS_CS_SAS_TOKEN=" + testSASToken},
			[]string{"connectors.azure_blobs[0].sas_token: is set together with connectors.azure_blobs[0].account_key"}, nil},
		{"typo in a key", "connectors:\n  azure_blobs:\n    - {name: cs, source: network, service_uri: https://a.blob.core.windows.net}\n", nil,
			[]string{`unknown key connectors.azure_blobs[0].service_uri; did you mean "service_url"?`}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(writeFile(t, "c.yaml", tt.yaml), tt.env)
			if tt.errs == nil {
				if err != nil {
					t.Fatal(err)
				}
				tt.check(t, c)
				if w := c.Warnings(); len(w) != 0 {
					t.Errorf("warnings %q", w)
				}
				for _, out := range []string{c.Redacted(), fmt.Sprintf("%v %+v %#v", c.Connectors.AzureBlobs, c.Connectors.AzureBlobs, c.Connectors.AzureBlobs)} {
					for _, s := range []string{testAccountKey, "VGVzdFNpZ25hdHVyZU5vdFJlYWw", "AccountKey="} {
						if strings.Contains(out, s) {
							t.Errorf("output leaks %q:\n%s", s, out)
						}
					}
				}
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
			for _, s := range []string{testAccountKey, "VGVzdFNpZ25hdHVyZU5vdFJlYWw"} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error leaks %q", s)
				}
			}
		})
	}
}

// Redacted shows that a secret is set without its value, for each of the
// three credentials.
func TestAzureBlobsRedacted(t *testing.T) {
	c := Defaults()
	c.Connectors.AzureBlobs = []AzureBlobConnector{
		{Name: "a", Source: "n", AccountName: "accta", AccountKey: testAccountKey},
		{Name: "b", Source: "n", ServiceURL: "https://acctb.blob.core.windows.net", SASToken: testSASToken},
		{Name: "c", Source: "n", ConnectionString: testConnString},
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	dump := c.Redacted()
	for _, want := range []string{"account_key: '[redacted]'", "sas_token: '[redacted]'", "connection_string: '[redacted]'", "account_name: accta"} {
		if !strings.Contains(dump, want) {
			t.Errorf("dump lacks %q", want)
		}
	}
	for _, s := range []string{testAccountKey, "sig=", "AccountKey"} {
		if strings.Contains(dump, s) {
			t.Errorf("dump leaks %q:\n%s", s, dump)
		}
	}
}

// DevStages: the operator's stages when set (file, env, --stages), else
// the defaults with connectors in front when one is configured.
func TestDevStages(t *testing.T) {
	flows := "connectors:\n  azure_blobs:\n    - {name: a, source: network, account_name: flowlogsacct, account_key: " + testAccountKey + "}\n"
	tests := []struct {
		name, yaml string
		env        []string
		flag       []string // SetStages, as --stages does
		want       []string
	}{
		{"nothing configured", "", nil, nil, DefaultStages},
		{"connectors configured", flows, nil, nil, append([]string{StageConnectors}, DefaultStages...)},
		{"syslog from env", "", []string{"VIGIL_CONNECTORS_SYSLOG_UDP=127.0.0.1:5514"}, nil, append([]string{StageConnectors}, DefaultStages...)},
		{"stages in the file win", flows + "stages: [normalize]\n", nil, nil, []string{StageNormalize}},
		{"stages in env win", flows, []string{"VIGIL_STAGES=normalize,correlate"}, nil, []string{StageNormalize, StageCorrelate}},
		{"stages flag wins", flows, nil, []string{StageCorrelate}, []string{StageCorrelate}},
		{"null stages key is the default", flows + "stages:\n", nil, nil, append([]string{StageConnectors}, DefaultStages...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := ""
			if tt.yaml != "" {
				path = writeFile(t, "c.yaml", tt.yaml)
			}
			c, err := Load(path, tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if tt.flag != nil {
				c.SetStages(tt.flag)
			}
			if got := c.DevStages(); !slices.Equal(got, tt.want) {
				t.Errorf("DevStages = %q, want %q", got, tt.want)
			}
			// vigil run keeps the plain stages: connectors only when listed.
			if !c.StagesSet() && !slices.Equal(c.Stages, DefaultStages) {
				t.Errorf("Stages = %q", c.Stages)
			}
		})
	}
	// An explicit empty list is still an error, not the default.
	if _, err := Load(writeFile(t, "c.yaml", "stages: []\n"), nil); err == nil || !strings.Contains(err.Error(), "stages: is empty") {
		t.Errorf("stages: [] loaded: %v", err)
	}
}

// The enrichment settings are validated with the key and the fix.
func TestValidateEnrich(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(e *Enrich)
		keys   []string
	}{
		{"defaults", func(*Enrich) {}, nil},
		{"ttl", func(e *Enrich) { e.TTL = 0 }, []string{"enrich.ttl"}},
		{"refresh not under ttl", func(e *Enrich) { e.Refresh = e.TTL }, []string{"enrich.refresh"}},
		{"refresh negative", func(e *Enrich) { e.Refresh = -1 }, []string{"enrich.refresh"}},
		{"sizes", func(e *Enrich) { e.CacheSize, e.MaxRelated = 0, MaxEnrichRelated+1 }, []string{"enrich.cache_size", "enrich.max_related"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Defaults()
			tt.mutate(&c.Enrich)
			err := c.Validate()
			var ps Problems
			errors.As(err, &ps)
			if !slices.Equal(ps.Keys(), tt.keys) {
				t.Errorf("keys = %q, want %q (%v)", ps.Keys(), tt.keys, err)
			}
		})
	}
	c, err := Load("", []string{"VIGIL_ENRICH_TTL=2h", "VIGIL_ENRICH_MAX_RELATED=4"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Enrich.TTL.D() != 2*time.Hour || c.Enrich.MaxRelated != 4 || c.Enrich.CacheSize != 1<<16 {
		t.Errorf("enrich = %+v", c.Enrich)
	}
}

// The connection-string parser never panics, accepts what azblob's
// accepts (an endpoint and a key or SAS), and its errors never echo the
// string (it holds the account key).
func FuzzStorageConnectionString(f *testing.F) {
	f.Add(testConnString)
	f.Add("BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;SharedAccessSignature=sv=1&sig=abc")
	f.Add("AccountName=a;AccountKey=;")
	f.Add(";;=")
	f.Fuzz(func(t *testing.T, s string) {
		cs, err := parseStorageConnectionString(s)
		if err != nil {
			if len(s) >= 8 && strings.Contains(err.Error(), s) {
				t.Fatalf("error %q echoes the input", err)
			}
			return
		}
		if cs.endpoint == "" && !strings.Contains(s, "BlobEndpoint=") {
			t.Fatalf("accepted %q without an endpoint", s)
		}
		if cs.key == "" && !cs.sas && !strings.Contains(s, "AccountKey=") {
			t.Fatalf("accepted %q without a credential", s)
		}
		// Validation of an entry holding it never panics either.
		c := Defaults()
		c.Connectors.AzureBlobs = []AzureBlobConnector{{Name: "f", Source: "s", ConnectionString: Secret(s)}}
		_ = c.Validate()
	})
}
