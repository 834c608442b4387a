// Package httpingest is the HTTP ingest connector: POST /ingest/{source}
// with JSON records in the body, produced to raw.<source>.
//
// # Body shapes
//
// The body's shape is detected, not declared (Content-Type is ignored):
//
//   - a JSON array: one raw record per element (the element's bytes as sent);
//   - JSON lines, or any sequence of JSON values: one record per value; a
//     value that is an array is split into its elements;
//   - one object: one record; an Event Hubs style {"records":[...]}
//     envelope is one object and is passed through whole (normalize splits
//     it, and keeps one bad record from losing the others).
//
// Every record must be a JSON object. A leading UTF-8 BOM and whitespace
// (CRLF included) around values are dropped; the bytes of each value are
// not re-encoded.
//
// # Answers
//
//	202 {"accepted":N}  every record is acknowledged by Kafka (ProduceSync returned)
//	400 {"error":...}   malformed JSON, a non-object record, no record, a bad source name
//	401                 missing or wrong bearer token (when a token is configured)
//	413                 body (compressed or decompressed) over MaxBytes
//	415                 Content-Encoding other than gzip or identity
//	503                 Kafka did not acknowledge: retry (some records may have been
//	                    written; normalize dedupes by deterministic ids)
//
// Metrics: see package connector; this connector counts errors under the
// reasons auth, too_large, bad_json, bad_source, bad_input and produce.
package httpingest

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-sec/vigil/pipeline/config"
	"github.com/vigil-sec/vigil/pipeline/connector"
)

// Pattern is the ServeMux pattern the handler serves.
const Pattern = "POST /ingest/{source}"

// DefaultMaxBytes is the body limit when Options.MaxBytes is 0: Event Hubs
// messages are at most 1 MB and diagnostic batches a few MB.
const DefaultMaxBytes = 16 << 20

// DefaultName is the connector name when Options.Name is empty.
const DefaultName = "http"

// Options configure the handler.
type Options struct {
	// Prefix of topic names (config.Topics.Prefix).
	Prefix string
	// Name is the connector instance name (vigil.connector header, metric
	// label). Default DefaultName.
	Name string
	// Token is the bearer token clients must send. Empty: no
	// authentication (keep the listener on loopback then).
	Token config.Secret
	// MaxBytes limits the body, both as sent and after gzip decoding.
	// Default DefaultMaxBytes.
	MaxBytes int64
	// Sources, when not empty, is the list of sources accepted; others
	// are refused with 400 even when their name is valid, so a typo does
	// not create a topic.
	Sources []string
	// Metrics, nil for none.
	Metrics *connector.Metrics
	// Logger for refused requests and produce failures (never the body or
	// the token).
	Logger zerolog.Logger
	// Now returns the receive time; default time.Now.
	Now func() time.Time
}

// Handler serves POST /ingest/{source}.
type Handler struct {
	out       connector.Producer
	opts      Options
	stamp     connector.Stamp
	tokenHash [sha256.Size]byte
}

// NewHandler returns the ingest handler producing to out.
func NewHandler(out connector.Producer, opts Options) (*Handler, error) {
	if out == nil {
		return nil, errors.New("httpingest: nil producer")
	}
	if opts.Name == "" {
		opts.Name = DefaultName
	}
	if opts.MaxBytes == 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.MaxBytes < 0 {
		return nil, fmt.Errorf("httpingest: MaxBytes %d is negative", opts.MaxBytes)
	}
	for _, s := range opts.Sources {
		if err := connector.ValidateSource(s); err != nil {
			return nil, fmt.Errorf("httpingest: sources: %w", err)
		}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	h := &Handler{out: out, opts: opts, stamp: connector.Stamp{Prefix: opts.Prefix, Connector: opts.Name}}
	if opts.Token != "" {
		h.tokenHash = sha256.Sum256([]byte(opts.Token.Reveal()))
	}
	return h, nil
}

// Register adds the handler to mux under Pattern.
func (h *Handler) Register(mux *http.ServeMux) { mux.Handle(Pattern, h) }

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.fail(w, http.StatusMethodNotAllowed, connector.ReasonBadInput, "method %s not allowed; use POST", r.Method)
		return
	}
	if !h.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="vigil ingest"`)
		h.fail(w, http.StatusUnauthorized, connector.ReasonAuth, "missing or wrong bearer token")
		return
	}
	source := r.PathValue("source")
	if source == "" { // served outside a ServeMux pattern
		source = strings.TrimPrefix(r.URL.Path, "/ingest/")
	}
	if err := connector.ValidateSource(source); err != nil {
		h.fail(w, http.StatusBadRequest, connector.ReasonBadSource, "%v", err)
		return
	}
	if len(h.opts.Sources) > 0 && !slices.Contains(h.opts.Sources, source) {
		h.fail(w, http.StatusBadRequest, connector.ReasonBadSource, "source %q is not configured for ingest", source)
		return
	}
	if r.ContentLength > h.opts.MaxBytes {
		h.fail(w, http.StatusRequestEntityTooLarge, connector.ReasonTooLarge, "body of %d bytes is over the limit of %d", r.ContentLength, h.opts.MaxBytes)
		return
	}
	body, status, err := h.readBody(w, r)
	if err != nil {
		reason := connector.ReasonBadInput
		if status == http.StatusRequestEntityTooLarge {
			reason = connector.ReasonTooLarge
		}
		h.fail(w, status, reason, "%v", err)
		return
	}
	values, err := Split(body)
	if err != nil {
		h.fail(w, http.StatusBadRequest, connector.ReasonBadJSON, "%v", err)
		return
	}
	received := h.opts.Now()
	recs := make([]*kgo.Record, len(values))
	for i, v := range values {
		recs[i] = h.stamp.Record(source, nil, v, received)
	}
	if err := connector.Produce(r.Context(), h.out, h.opts.Metrics, h.opts.Name, recs...); err != nil {
		h.opts.Logger.Error().Err(err).Str("source", source).Int("records", len(recs)).Msg("ingest: produce failed")
		w.Header().Set("Retry-After", "5")
		// Counted as ReasonProduce by connector.Produce.
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "records not stored in Kafka; retry: " + err.Error()})
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]int{"accepted": len(recs)})
}

// authorized compares the bearer token in constant time. Hashing both
// sides first makes the comparison independent of the token's length too.
func (h *Handler) authorized(r *http.Request) bool {
	if h.opts.Token == "" {
		return true
	}
	auth := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(got[:], h.tokenHash[:]) == 1
}

// readBody reads the body, gunzipping it when Content-Encoding says so,
// within MaxBytes both before and after decoding (a gzip bomb is a small
// body). It returns the HTTP status to answer with on error.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, int, error) {
	limit := h.opts.MaxBytes
	var rd io.Reader = http.MaxBytesReader(w, r.Body, limit)
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(rd)
		if err != nil {
			return nil, statusOf(err), fmt.Errorf("gzip: %w", err)
		}
		defer zr.Close()
		rd = zr
	default:
		return nil, http.StatusUnsupportedMediaType, fmt.Errorf("content encoding %q not supported (use gzip or none)", enc)
	}
	body, err := io.ReadAll(io.LimitReader(rd, limit+1))
	if err != nil {
		return nil, statusOf(err), fmt.Errorf("read body: %w", err)
	}
	if int64(len(body)) > limit {
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("decoded body is over the limit of %d bytes", limit)
	}
	return body, 0, nil
}

func statusOf(err error) int {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusBadRequest
}

func (h *Handler) fail(w http.ResponseWriter, status int, reason, format string, args ...any) {
	h.opts.Metrics.Error(h.opts.Name, reason)
	msg := fmt.Sprintf(format, args...)
	h.opts.Logger.Debug().Int("status", status).Str("reason", reason).Msg("ingest refused: " + msg)
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v) // maps of strings and ints always encode
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// Split cuts a body into raw records: see connector.SplitJSON.
func Split(body []byte) ([][]byte, error) { return connector.SplitJSON(body) }

// Server is the HTTP ingest connector as a Connector: it listens on Addr
// (or Listener) and serves the handler until its context is cancelled.
type Server struct {
	// Addr is host:port to listen on, unless Listener is set.
	Addr string
	// Listener, when set, is served instead of listening on Addr.
	Listener net.Listener
	// TLS, when set, serves HTTPS.
	TLS *tls.Config
	// Options of the handler.
	Options Options
	// ShutdownTimeout bounds how long in-flight requests may finish after
	// cancellation; default 10 s.
	ShutdownTimeout time.Duration
}

// Name implements connector.Connector.
func (s *Server) Name() string {
	if s.Options.Name == "" {
		return DefaultName
	}
	return s.Options.Name
}

// Run serves until ctx is cancelled, then shuts down gracefully: requests
// in flight finish (and get their 202 only if their records were
// produced).
func (s *Server) Run(ctx context.Context, out connector.Producer) error {
	h, err := NewHandler(out, s.Options)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	h.Register(mux)
	ln := s.Listener
	if ln == nil {
		ln, err = net.Listen("tcp", s.Addr)
		if err != nil {
			return fmt.Errorf("httpingest: listen %s: %w", s.Addr, err)
		}
	}
	if s.TLS != nil {
		ln = tls.NewListener(ln, s.TLS)
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("httpingest: serve: %w", err)
	case <-ctx.Done():
	}
	timeout := s.ShutdownTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("httpingest: shutdown: %w", err)
	}
	<-errc
	return nil
}

// Server is a connector.Connector.
var _ connector.Connector = (*Server)(nil)
