package app

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-sec/vigil/pipeline/config"
	"github.com/vigil-sec/vigil/pipeline/connector"
	"github.com/vigil-sec/vigil/pipeline/connector/blob"
	"github.com/vigil-sec/vigil/pipeline/connector/file"
	"github.com/vigil-sec/vigil/pipeline/connector/kafkasrc"
	"github.com/vigil-sec/vigil/pipeline/connector/syslog"
	"github.com/vigil-sec/vigil/pipeline/kafka"
)

// Connectors builds the connectors configured under `connectors`, in a
// fixed order: the syslog listener, the kafka entries, the files, the blob
// directories, the Azure storage accounts. Each gets a name unique in the
// process (syslog, kafka-<name>, file-<source>, blob-<source>,
// azblob-<name>, with -2, -3... for repeats):
// it is the vigil.connector header of its records and the connector label
// of its metrics.
//
// Nothing is started: certificates and the source clusters' TLS files are
// read, and the storage accounts' clients built (without calling them),
// here so that a bad setting stops start-up with the key that names it.
// Checkpoint directories are created.
func (a *App) Connectors() ([]connector.Connector, error) {
	cc := a.Cfg.Connectors
	prefix := a.Cfg.Topics.Prefix
	m := connector.NewMetrics(a.Registry)
	used := map[string]int{}
	unique := func(name string) string {
		used[name]++
		if n := used[name]; n > 1 {
			return name + "-" + strconv.Itoa(n)
		}
		return name
	}
	logFor := func(name string) zerolog.Logger { return a.Log.With().Str("connector", name).Logger() }

	var out []connector.Connector
	if s := cc.Syslog; s.Enabled() {
		name := unique("syslog")
		l := &syslog.Listener{
			UDP: s.UDP, TCP: s.TCP, Source: s.Source, Prefix: prefix, ConnectorName: name,
			MaxMessageBytes: s.MaxMessageBytes, Metrics: m, Logger: logFor(name),
		}
		if s.TLS.Enabled() {
			cert, err := tls.LoadX509KeyPair(s.TLS.CertFile, s.TLS.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("connectors.syslog.tls: cert_file %s / key_file %s: %w", s.TLS.CertFile, s.TLS.KeyFile, err)
			}
			l.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		}
		out = append(out, l)
	}
	for i, k := range cc.Kafka {
		name := unique("kafka-" + k.Name)
		opts, err := kafka.ClientOpts(k.Client(a.Cfg.Kafka.ClientID))
		if err != nil {
			// kafka.ClientOpts names keys as kafka.*: say which entry.
			return nil, fmt.Errorf("connectors.kafka[%d] (%s): source cluster: %w", i, k.Name, err)
		}
		opts = append(opts, kafka.Metrics(a.Registry, "vigil", "connector-"+name))
		out = append(out, &kafkasrc.Consumer{
			ClientOpts: opts, Topics: k.Topics, Group: k.GroupID(), Source: k.Source,
			Prefix: prefix, ConnectorName: name, StartAtEnd: k.StartAtEnd,
			Metrics: m, Logger: logFor(name),
		})
	}
	for i, f := range cc.Files {
		name := unique("file-" + f.Source)
		cp := f.CheckpointPath(a.Cfg.DataDir)
		if err := os.MkdirAll(filepath.Dir(cp), 0o755); err != nil {
			return nil, fmt.Errorf("connectors.files[%d].checkpoint: %w", i, err)
		}
		out = append(out, &file.File{
			Path: f.Path, Pattern: f.Pattern, Source: f.Source, Prefix: prefix,
			ConnectorName: name, Checkpoint: cp, Metrics: m, Logger: logFor(name),
		})
	}
	for i, b := range cc.BlobDirs {
		name := unique("blob-" + b.Source)
		cp := b.CheckpointPath(a.Cfg.DataDir)
		if err := os.MkdirAll(filepath.Dir(cp), 0o755); err != nil {
			return nil, fmt.Errorf("connectors.blob_dirs[%d].checkpoint: %w", i, err)
		}
		out = append(out, &blob.Dir{Root: b.Root, Options: blob.Options{
			Source: b.Source, Prefix: prefix,
			ConnectorName: name, Checkpoint: cp, Metrics: m, Logger: logFor(name),
		}})
	}
	for i, az := range cc.AzureBlobs {
		name := unique("azblob-" + az.Name)
		acct := azureAccount(az)
		// Build the client once here for its errors (none holds a
		// secret); the connector builds its own when it starts.
		if _, err := blob.NewAzureStore(acct); err != nil {
			return nil, fmt.Errorf("connectors.azure_blobs[%d] (%s): %w", i, az.Name, err)
		}
		cp := az.CheckpointPath(a.Cfg.DataDir)
		if err := os.MkdirAll(filepath.Dir(cp), 0o755); err != nil {
			return nil, fmt.Errorf("connectors.azure_blobs[%d].checkpoint: %w", i, err)
		}
		out = append(out, &blob.Azure{Account: acct, Options: blob.Options{
			Source: az.Source, Prefix: prefix, ConnectorName: name,
			Checkpoint: cp, Poll: az.Poll(), Metrics: m, Logger: logFor(name),
		}})
	}
	return out, nil
}

// azureAccount maps an azure_blobs entry to the blob connector's account
// settings: a SAS token travels as the SAS URL the connector takes, and
// the endpoint keys are left out with it and with a connection string,
// where they come from the credential.
func azureAccount(az config.AzureBlobConnector) blob.AzureConfig {
	c := blob.AzureConfig{Containers: az.Containers, BlobPrefix: az.BlobPrefix}
	switch {
	case az.ConnectionString != "":
		c.ConnectionString = az.ConnectionString
	case az.SASToken != "":
		c.SASURL = az.SASURL()
	default:
		c.ServiceURL, c.AccountName, c.AccountKey = az.ServiceURL, az.AccountName, az.AccountKey
	}
	return c
}

// connectorsToRun returns the connectors when this process runs the
// connectors stage, else none.
func (a *App) connectorsToRun() ([]connector.Connector, error) {
	if !a.Cfg.HasStage(config.StageConnectors) {
		return nil, nil
	}
	cs, err := a.Connectors()
	if err != nil {
		return nil, fmt.Errorf("stage %s: %w", config.StageConnectors, err)
	}
	return cs, nil
}

// runConnectors runs each connector in its own goroutine, all producing
// through one client (its metrics labelled client="connectors"), which
// closes once every connector has returned: on cancellation a connector
// still produces what it already received. A connector that fails sends
// its error, named, to errs (which must have room for one error per
// connector) and cancels the app, as a failed stage does. wg is done when
// every connector has returned and the client is closed.
func (a *App) runConnectors(ctx context.Context, cancel context.CancelFunc, cs []connector.Connector, wg *sync.WaitGroup, errs chan<- error) error {
	if len(cs) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(append(a.ClientOpts(), kafka.Metrics(a.Registry, "vigil", "connectors"))...)
	if err != nil {
		return fmt.Errorf("stage %s: producer: %w", config.StageConnectors, err)
	}
	var running sync.WaitGroup
	for _, c := range cs {
		running.Add(1)
		go func() {
			defer running.Done()
			log := a.Log.With().Str("connector", c.Name()).Logger()
			log.Info().Msg("connector started")
			err := c.Run(ctx, cl)
			switch {
			case err != nil:
				// Failing while running stops the app; failing while
				// stopping (e.g. received messages not produced) is
				// reported by Run all the same.
				log.Error().Err(err).Msg("connector failed")
				errs <- fmt.Errorf("connector %s: %w", c.Name(), err)
				cancel()
			case ctx.Err() == nil:
				log.Warn().Msg("connector stopped on its own")
			default:
				log.Info().Msg("connector stopped")
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		running.Wait()
		cl.Close()
	}()
	return nil
}

// mergeSources appends to base the sources of extra it lacks, so a
// connector's raw topic is created and read by normalize even when
// topics.sources does not list it.
func mergeSources(base, extra []string) []string {
	out := append([]string(nil), base...)
	for _, s := range extra {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
