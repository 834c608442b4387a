package app

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-sec/vigil/pipeline/connector"
	"github.com/vigil-sec/vigil/pipeline/connector/httpingest"
	"github.com/vigil-sec/vigil/pipeline/kafka"
)

// Handler returns the process's HTTP handler:
//
//	GET  /healthz                  liveness (always 200 while the process serves)
//	GET  /readyz                   200 once every stage runs, else 503
//	GET  /metrics                  Prometheus metrics
//	GET  /api/v1/incidents         latest incidents, newest first (token)
//	GET  /api/v1/incidents/{id}    one incident (token)
//	POST /ingest/{source}          HTTP ingest into raw.<source> (token), when ingest is given
//
// Every /api and /ingest route needs "Authorization: Bearer <http.token>".
func (a *App) Handler(ingest http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !a.Ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.Registry, promhttp.HandlerOpts{Registry: a.Registry}))
	auth := a.requireToken
	mux.Handle("GET /api/v1/incidents", auth(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, a.Incidents.List())
	})))
	mux.Handle("GET /api/v1/incidents/{id}", auth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in, ok := a.Incidents.Get(r.PathValue("id"))
		if !ok {
			http.Error(w, "no such incident", http.StatusNotFound)
			return
		}
		writeJSON(w, in)
	})))
	if ingest != nil {
		mux.Handle("POST /ingest/{source}", auth(ingest))
	}
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// requireToken refuses requests without the configured bearer token.
func (a *App) requireToken(next http.Handler) http.Handler {
	want := []byte(string(a.Cfg.HTTP.Token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if len(want) == 0 || !ok || subtle.ConstantTimeCompare([]byte(got), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="vigil"`)
			http.Error(w, "missing or wrong bearer token (http.token / VIGIL_HTTP_TOKEN)", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// ServeMetrics serves /metrics on metrics.listen when it is set apart from
// http.listen (so scrapers need not reach the API); it returns at once
// otherwise, /metrics being served by Handler.
func (a *App) ServeMetrics(ctx context.Context) error {
	l := a.Cfg.Metrics.Listen
	if l == "" || l == a.Cfg.HTTP.Listen {
		return nil
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.Registry, promhttp.HandlerOpts{Registry: a.Registry}))
	_, _, err := Serve(ctx, l, mux)
	return err
}

// Serve listens on http.listen and serves h until ctx is cancelled. The
// listener is bound before Serve returns its address, so callers can print it.
func Serve(ctx context.Context, addr string, h http.Handler) (bound string, done <-chan error, err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("http.listen %s: %w (choose a free host:port with http.listen / VIGIL_HTTP_LISTEN)", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	ch := make(chan error, 1)
	go func() {
		err := srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		ch <- err
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	return ln.Addr().String(), ch, nil
}

// Ingest returns the HTTP ingest handler, producing to raw.<source> with a
// client of its own that closes when ctx ends.
func (a *App) Ingest(ctx context.Context) (http.Handler, error) {
	opts := append(a.ClientOpts(), kafka.Metrics(a.Registry, "vigil", "ingest"))
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	context.AfterFunc(ctx, cl.Close)
	return httpingest.NewHandler(cl, httpingest.Options{
		Prefix:  a.Cfg.Topics.Prefix,
		Token:   a.Cfg.HTTP.Token,
		Sources: a.Sources(),
		Metrics: connector.NewMetrics(a.Registry),
		Logger:  a.Log,
	})
}
