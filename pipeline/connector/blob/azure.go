package blob

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"

	"github.com/vigil-sec/vigil/pipeline/config"
	"github.com/vigil-sec/vigil/pipeline/connector"
	"github.com/vigil-sec/vigil/pipeline/connector/file"
)

// DefaultAzureName is the name of an Azure connector without one.
const DefaultAzureName = "azblob"

// AzureConfig says which storage account to read and how to sign in.
// Exactly one way of signing in is set: ConnectionString, SASURL, or
// AccountKey (shared key, with ServiceURL or AccountName).
//
// The client talks to the account's blob endpoint and nowhere else: a
// request to another host is refused and redirects are not followed.
// Plain http is accepted only for loopback endpoints (Azurite).
type AzureConfig struct {
	// ServiceURL is the blob endpoint: https://<account>.blob.core.windows.net/
	// or, for Azurite, http://127.0.0.1:10000/devstoreaccount1. Default
	// with AccountName: https://<AccountName>.blob.core.windows.net/.
	ServiceURL string
	// AccountName for shared-key sign-in; default: the account of ServiceURL.
	AccountName string
	// AccountKey is the account's base64 shared key.
	AccountKey config.Secret
	// SASURL is the service (or one container's) URL with a SAS token as
	// its query. A container URL limits the connector to that container.
	SASURL config.Secret
	// ConnectionString is the account's connection string
	// (DefaultEndpointsProtocol=https;AccountName=...;AccountKey=...;...).
	ConnectionString config.Secret
	// Containers to read; empty: every container named insights-logs-*.
	Containers []string
	// BlobPrefix limits listing to blobs whose name starts with it (for
	// instance resourceId=/SUBSCRIPTIONS/<id>/RESOURCEGROUPS/<rg>/).
	BlobPrefix string
	// MaxRetries of a failed request (throttling, 5xx); default 2. The
	// next poll tries again anyway.
	MaxRetries int32
}

// AzureStore is a Store over an Azure storage account (or Azurite).
type AzureStore struct {
	client     *azblob.Client
	endpoint   string // service URL without query, for keys and logs
	containers []string
	prefix     string
	auth       string
	// secrets are strings (a SAS signature, encoded as a URL or HTML
	// may carry it) that a response body could echo back: errors are
	// scrubbed of them before they reach a log.
	secrets []string
}

// Endpoint returns the blob service URL, without any SAS token.
func (s *AzureStore) Endpoint() string { return s.endpoint }

// Auth names the sign-in method: "shared key", "SAS" or
// "connection string".
func (s *AzureStore) Auth() string { return s.auth }

// NewAzureStore validates cfg and builds the client. It does not call
// the service. Errors never contain the key, SAS token or connection
// string.
func NewAzureStore(cfg AzureConfig) (*AzureStore, error) {
	set := 0
	for _, s := range []config.Secret{cfg.AccountKey, cfg.SASURL, cfg.ConnectionString} {
		if s != "" {
			set++
		}
	}
	if set != 1 {
		return nil, errors.New("azure blob: set exactly one of account_key, sas_url, connection_string")
	}
	for _, c := range cfg.Containers {
		if c == "" || strings.ContainsAny(c, "/?#") {
			return nil, fmt.Errorf("azure blob: invalid container name %q", c)
		}
	}
	t := &guardedTransport{}
	retries := cfg.MaxRetries
	if retries <= 0 {
		retries = 2
	}
	opts := &azblob.ClientOptions{ClientOptions: azcore.ClientOptions{
		Transport: t,
		Retry:     policy.RetryOptions{MaxRetries: retries, TryTimeout: 2 * time.Minute},
		Telemetry: policy.TelemetryOptions{ApplicationID: "vigil"},
	}}
	s := &AzureStore{containers: cfg.Containers, prefix: cfg.BlobPrefix}
	var err error
	switch {
	case cfg.ConnectionString != "":
		s.auth = "connection string"
		if cfg.ServiceURL != "" || cfg.AccountName != "" {
			return nil, errors.New("azure blob: service_url and account_name come from the connection string; leave them empty")
		}
		for _, kv := range strings.Split(cfg.ConnectionString.Reveal(), ";") {
			if k, v, ok := strings.Cut(kv, "="); ok && strings.EqualFold(strings.TrimSpace(k), "SharedAccessSignature") {
				s.secrets = sasSecrets("https://x/?" + strings.TrimPrefix(strings.TrimSpace(v), "?"))
			}
		}
		s.client, err = azblob.NewClientFromConnectionString(cfg.ConnectionString.Reveal(), opts)
		if err != nil {
			return nil, fmt.Errorf("azure blob: connection string: %w", err) // the SDK's errors do not echo it
		}
	case cfg.SASURL != "":
		s.auth = "SAS"
		if cfg.ServiceURL != "" || cfg.AccountName != "" {
			return nil, errors.New("azure blob: service_url and account_name come from sas_url; leave them empty")
		}
		svc, container, err := splitSASURL(cfg.SASURL.Reveal())
		if err != nil {
			return nil, err
		}
		if container != "" {
			if len(cfg.Containers) > 0 && (len(cfg.Containers) != 1 || cfg.Containers[0] != container) {
				return nil, fmt.Errorf("azure blob: sas_url names container %q; containers must be empty or only it", container)
			}
			s.containers = []string{container}
		}
		s.secrets = sasSecrets(cfg.SASURL.Reveal())
		if s.client, err = azblob.NewClientWithNoCredential(svc, opts); err != nil {
			return nil, errors.New("azure blob: sas_url is not a valid service or container URL")
		}
	default:
		s.auth = "shared key"
		svc, name := cfg.ServiceURL, cfg.AccountName
		if svc == "" {
			if name == "" {
				return nil, errors.New("azure blob: shared key needs service_url or account_name")
			}
			svc = "https://" + name + ".blob.core.windows.net/"
		}
		u, err := url.Parse(svc)
		if err != nil || u.Host == "" {
			return nil, errors.New("azure blob: service_url is not an absolute URL")
		}
		if u.RawQuery != "" {
			return nil, errors.New("azure blob: service_url must not carry a query (a SAS token goes in sas_url)")
		}
		if name == "" {
			if name = accountOf(u); name == "" {
				return nil, fmt.Errorf("azure blob: cannot tell the account from service_url %s; set account_name", svc)
			}
		}
		cred, err := azblob.NewSharedKeyCredential(name, cfg.AccountKey.Reveal())
		if err != nil {
			return nil, errors.New("azure blob: account_key is not a base64 storage account key")
		}
		if s.client, err = azblob.NewClientWithSharedKeyCredential(svc, cred, opts); err != nil {
			return nil, fmt.Errorf("azure blob: %w", err)
		}
	}
	u, err := url.Parse(s.client.URL())
	if err != nil || u.Host == "" {
		return nil, errors.New("azure blob: the service URL is not an absolute URL")
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && loopback(u.Hostname())) {
		return nil, fmt.Errorf("azure blob: endpoint %s://%s: only https, or http on a loopback address (Azurite)", u.Scheme, u.Host)
	}
	t.host = u.Host
	u.RawQuery, u.Fragment = "", ""
	s.endpoint = strings.TrimSuffix(u.String(), "/")
	return s, nil
}

// splitSASURL returns the service URL (with the SAS query) and the
// container a SAS URL names, if any. Errors do not contain the URL.
func splitSASURL(raw string) (service, container string, err error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", "", errors.New("azure blob: sas_url is not an absolute URL")
	}
	if !u.Query().Has("sig") {
		return "", "", errors.New("azure blob: sas_url has no SAS token (no sig= in its query)")
	}
	parts, err := azblob.ParseURL(raw)
	if err != nil {
		return "", "", errors.New("azure blob: sas_url is not a valid storage URL")
	}
	if parts.BlobName != "" {
		return "", "", errors.New("azure blob: sas_url names a blob; give the service or container URL")
	}
	container = parts.ContainerName
	parts.ContainerName = ""
	return parts.String(), container, nil
}

// sasSecrets returns the forms in which the signature of a SAS URL can
// appear in a response: as sent (query-escaped), decoded, HTML-escaped.
func sasSecrets(raw string) []string {
	u, err := url.Parse(raw)
	if err != nil {
		return nil
	}
	sig := u.Query().Get("sig")
	if len(sig) < 4 {
		return nil
	}
	return []string{sig, url.QueryEscape(sig), html.EscapeString(url.QueryEscape(sig)), html.EscapeString(sig)}
}

// scrub returns err with the store's secrets replaced by [redacted] in
// its message; errors.Is/As still reach the original.
func (s *AzureStore) scrub(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := msg
	for _, sec := range s.secrets {
		clean = strings.ReplaceAll(clean, sec, config.Redacted)
	}
	if clean == msg {
		return err
	}
	return scrubbedError{msg: clean, err: err}
}

type scrubbedError struct {
	msg string
	err error
}

func (e scrubbedError) Error() string { return e.msg }
func (e scrubbedError) Unwrap() error { return e.err }

// accountOf returns the storage account of a service URL: the first
// label of <account>.blob.core.windows.net, or the first path segment of
// an IP-style (Azurite) URL.
func accountOf(u *url.URL) string {
	if net.ParseIP(u.Hostname()) != nil || u.Hostname() == "localhost" {
		seg, _, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
		return seg
	}
	label, _, _ := strings.Cut(u.Hostname(), ".")
	return label
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// guardedTransport sends requests to the configured host only, never
// follows redirects, and strips queries (SAS tokens) from transport
// errors so that they can be logged.
type guardedTransport struct {
	host string
	once sync.Once
	c    *http.Client
}

func (t *guardedTransport) Do(req *http.Request) (*http.Response, error) {
	if !strings.EqualFold(req.URL.Host, t.host) {
		return nil, fmt.Errorf("azure blob: refusing a request to %s: only %s is configured", req.URL.Host, t.host)
	}
	t.once.Do(func() {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		t.c = &http.Client{
			Transport:     tr,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	})
	resp, err := t.c.Do(req)
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = redactURL(ue.URL)
	}
	return resp, err
}

// redactURL drops the query of a URL.
func redactURL(raw string) string {
	base, _, _ := strings.Cut(raw, "?")
	return base
}

// List implements Store.
func (s *AzureStore) List(ctx context.Context) ([]Object, error) {
	objs, err := s.list(ctx)
	return objs, s.scrub(err)
}

func (s *AzureStore) list(ctx context.Context) ([]Object, error) {
	containers := s.containers
	if len(containers) == 0 {
		pfx := ContainerPrefix
		pager := s.client.NewListContainersPager(&azblob.ListContainersOptions{Prefix: &pfx})
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("list containers of %s: %w", s.endpoint, err)
			}
			for _, c := range page.ContainerItems {
				if c != nil && c.Name != nil {
					containers = append(containers, *c.Name)
				}
			}
		}
	}
	var out []Object
	for _, c := range containers {
		opts := &azblob.ListBlobsFlatOptions{}
		if s.prefix != "" {
			opts.Prefix = &s.prefix
		}
		pager := s.client.NewListBlobsFlatPager(c, opts)
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if bloberror.HasCode(err, bloberror.ContainerNotFound) {
				break // diagnostic settings create it with the first blob
			}
			if err != nil {
				return nil, fmt.Errorf("list blobs of %s/%s: %w", s.endpoint, c, err)
			}
			if page.Segment == nil {
				continue
			}
			for _, b := range page.Segment.BlobItems {
				if b == nil || b.Name == nil || !isHourly(*b.Name) || b.Properties == nil ||
					b.Properties.ContentLength == nil || b.Properties.LastModified == nil {
					continue
				}
				o := Object{Key: s.endpoint + "/" + c + "/" + *b.Name, Container: c, Name: *b.Name,
					Size: *b.Properties.ContentLength, ModTime: b.Properties.LastModified.UTC()}
				if b.Properties.ETag != nil {
					o.ETag = string(*b.Properties.ETag)
				}
				out = append(out, o)
			}
		}
	}
	sortObjects(out)
	return out, nil
}

// ReadRange implements Store with a ranged GET conditional on the listed
// ETag: a blob rewritten since it was listed fails with ErrChanged.
func (s *AzureStore) ReadRange(ctx context.Context, obj Object, off, n int64) ([]byte, error) {
	b, err := s.readRange(ctx, obj, off, n)
	return b, s.scrub(err)
}

func (s *AzureStore) readRange(ctx context.Context, obj Object, off, n int64) ([]byte, error) {
	opts := &azblob.DownloadStreamOptions{Range: azblob.HTTPRange{Offset: off, Count: n}}
	if obj.ETag != "" {
		etag := azcore.ETag(obj.ETag)
		opts.AccessConditions = &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: &etag}}
	}
	resp, err := s.client.DownloadStream(ctx, obj.Container, obj.Name, opts)
	if bloberror.HasCode(err, bloberror.ConditionNotMet, bloberror.BlobNotFound, bloberror.InvalidRange) {
		return nil, fmt.Errorf("%w: %v", ErrChanged, bloberror.Code(codeOf(err)))
	}
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, n+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) != n {
		return nil, fmt.Errorf("%w: got %d bytes, want %d", ErrChanged, len(b), n)
	}
	return b, nil
}

func codeOf(err error) string {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.ErrorCode
	}
	return ""
}

// Azure is the connector over an Azure storage account: a Reader over
// the AzureStore that Account describes.
type Azure struct {
	Account AzureConfig
	// Options; ConnectorName defaults to DefaultAzureName.
	Options

	once sync.Once
	r    *Reader
	err  error
}

func (a *Azure) reader() (*Reader, error) {
	a.once.Do(func() {
		st, err := NewAzureStore(a.Account)
		if err != nil {
			a.err = err
			return
		}
		a.r = &Reader{Store: st, Options: a.Options}
		a.r.ConnectorName = a.Name()
		a.Logger.Info().Str("endpoint", st.Endpoint()).Str("auth", st.Auth()).Strs("containers", st.containers).
			Str("blob_prefix", a.Account.BlobPrefix).Msg("blob connector: reading Azure Blob Storage")
	})
	return a.r, a.err
}

// Name implements connector.Connector.
func (a *Azure) Name() string {
	if a.ConnectorName == "" {
		return DefaultAzureName
	}
	return a.ConnectorName
}

// Run polls the account until ctx is cancelled (see Reader.Run). An
// invalid configuration ends it at once.
func (a *Azure) Run(ctx context.Context, out connector.Producer) error {
	r, err := a.reader()
	if err != nil {
		return fmt.Errorf("blob connector %s: %w", a.Name(), err)
	}
	return r.Run(ctx, out)
}

// Pass reads every blob once (see Reader.Pass).
func (a *Azure) Pass(ctx context.Context, out connector.Producer, cp *file.Checkpoints) (int, error) {
	r, err := a.reader()
	if err != nil {
		return 0, fmt.Errorf("blob connector %s: %w", a.Name(), err)
	}
	return r.Pass(ctx, out, cp)
}

var (
	_ Store               = (*AzureStore)(nil)
	_ connector.Connector = (*Azure)(nil)
)
