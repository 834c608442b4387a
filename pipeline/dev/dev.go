// Package dev is `vigil dev`: every stage in one process against an
// embedded Kafka-protocol broker (franz-go's kfake, persisted under the
// data directory), plus a replay of a short demo attack so incidents show
// up within seconds.
//
// Nothing here is a different code path from production except the
// broker: the stages, topics, transactions and HTTP server are the ones
// `vigil run` uses, and any Kafka client can attach to the broker.
package dev

import (
	"bytes"
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"sort"
	"strings"
	"text/template"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-sec/vigil/pipeline/app"
	"github.com/vigil-sec/vigil/pipeline/config"
	"github.com/vigil-sec/vigil/pipeline/incident"
)

//go:embed demo/*.json
var demoFS embed.FS

// Broker starts the embedded broker on addr with its log under dir.
func Broker(addr, dir string) (*kfake.Cluster, error) {
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.DataDir(dir),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, addr) }),
	)
	if err != nil {
		return nil, fmt.Errorf("embedded broker on %s: %w (is another Vigil or Kafka using the port? set dev.broker_listen / VIGIL_DEV_BROKER_LISTEN)", addr, err)
	}
	return c, nil
}

// Run starts the broker, the app and the demo, printing each incident
// revision to out as one line, until ctx is cancelled.
func Run(ctx context.Context, cfg *config.Config, log zerolog.Logger, out io.Writer) error {
	broker, err := Broker(cfg.Dev.BrokerListen, filepath.Join(cfg.DataDir, "broker"))
	if err != nil {
		return err
	}
	defer broker.Close()
	cfg.Kafka.Brokers = broker.ListenAddrs()
	if cfg.HTTP.Token == "" {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		cfg.HTTP.Token = config.Secret(hex.EncodeToString(b))
		fmt.Fprintf(out, "API token for this run (set http.token / VIGIL_HTTP_TOKEN to choose one): %s\n", string(cfg.HTTP.Token))
	}
	a, err := app.New(cfg, log)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ingest, err := a.Ingest(ctx)
	if err != nil {
		return err
	}
	if err := a.ServeMetrics(ctx); err != nil {
		return err
	}
	addr, httpDone, err := app.Serve(ctx, cfg.HTTP.Listen, a.Handler(ingest))
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Kafka broker (embedded): %s   HTTP: http://%s (/metrics /healthz /api/v1/incidents)\n", broker.ListenAddrs()[0], addr)
	fmt.Fprintf(out, "Send more input: POST http://%s/ingest/{source}, or produce to %s<source> with any Kafka client.\n", addr, cfg.Topics.Raw(""))

	appDone := make(chan error, 1)
	go func() { appDone <- a.Run(ctx) }()
	go func() {
		_ = incident.Watch(ctx, a.ClientOpts(), cfg.Topics.Incidents(), func(in *incident.Incident) {
			fmt.Fprintln(out, incident.Line(in))
		})
	}()
	if cfg.Dev.Demo {
		go func() {
			if err := waitReady(ctx, a); err != nil {
				return
			}
			n, err := Replay(ctx, a.ClientOpts(), cfg.Topics, time.Now())
			if err != nil {
				log.Error().Err(err).Msg("demo replay failed")
				return
			}
			fmt.Fprintf(out, "Demo: replayed %d raw messages of a short attack (timestamps shifted to now).\n", n)
		}()
	}
	select {
	case err = <-appDone:
	case err = <-httpDone:
		cancel()
		<-appDone
	}
	return err
}

func waitReady(ctx context.Context, a *app.App) error {
	for !a.Ready() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// Replay produces the demo attack's raw records, shifted so that its last
// event happens at now. Files are named NN-<source>-<what>.json and replay
// in name order.
func Replay(ctx context.Context, opts []kgo.Opt, topics config.Topics, now time.Time) (int, error) {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	recs, err := DemoRecords(topics, now)
	if err != nil {
		return 0, err
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return 0, fmt.Errorf("demo: produce: %w", err)
	}
	return len(recs), nil
}

// DemoRecords renders the demo attack as raw records.
func DemoRecords(topics config.Topics, now time.Time) ([]*kgo.Record, error) {
	names, err := demoFS.ReadDir("demo")
	if err != nil {
		return nil, err
	}
	sort.Slice(names, func(i, j int) bool { return names[i].Name() < names[j].Name() })
	var recs []*kgo.Record
	for i, n := range names {
		parts := strings.SplitN(n.Name(), "-", 3)
		if len(parts) < 3 {
			return nil, fmt.Errorf("demo file %s: want NN-source-what.json", n.Name())
		}
		b, err := demoFS.ReadFile("demo/" + n.Name())
		if err != nil {
			return nil, err
		}
		v, err := render(n.Name(), b, now, i)
		if err != nil {
			return nil, err
		}
		recs = append(recs, &kgo.Record{Topic: topics.Raw(parts[1]), Value: v,
			Headers: []kgo.RecordHeader{{Key: "vigil.source", Value: []byte(parts[1])}, {Key: "vigil.connector", Value: []byte("demo")}}})
	}
	return recs, nil
}

// render fills a demo template. ago N is now−N seconds in the 7-digit
// UTC form Azure uses; agoOffset the +00:00 form Entra properties use;
// uuid N a per-run id; report a per-run Defender ReportId.
func render(name string, b []byte, now time.Time, seq int) ([]byte, error) {
	run := now.UnixNano()
	funcs := template.FuncMap{
		"ago": func(s int) string {
			return now.Add(-time.Duration(s) * time.Second).UTC().Format("2006-01-02T15:04:05.0000000Z")
		},
		"agoOffset": func(s int) string {
			return now.Add(-time.Duration(s) * time.Second).UTC().Format("2006-01-02T15:04:05.0000000+00:00")
		},
		"uuid": func(n int) string {
			h := fmt.Sprintf("%016x%016x", uint64(run), uint64(seq*1000+n))
			return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
		},
		"report": func() int64 { return run/1000 + int64(seq) },
	}
	t, err := template.New(name).Funcs(funcs).Option("missingkey=error").Parse(string(b))
	if err != nil {
		return nil, fmt.Errorf("demo file %s: %w", name, err)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, nil); err != nil {
		return nil, fmt.Errorf("demo file %s: %w", name, err)
	}
	return buf.Bytes(), nil
}
