// Package app wires a Vigil process from its configuration: it loads the
// rules, makes sure the topics exist, builds the configured stages, runs
// each as a runtime.Runner, and serves HTTP (metrics, health, API, ingest).
//
// Shutdown order: on cancellation every runner finishes its in-flight
// batch and leaves its group, then the HTTP server stops.
package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-sec/vigil/operators"
	"github.com/vigil-sec/vigil/pipeline/config"
	"github.com/vigil-sec/vigil/pipeline/correlate"
	"github.com/vigil-sec/vigil/pipeline/enrich"
	"github.com/vigil-sec/vigil/pipeline/event"
	"github.com/vigil-sec/vigil/pipeline/incident"
	"github.com/vigil-sec/vigil/pipeline/kafka"
	"github.com/vigil-sec/vigil/pipeline/normalize"
	"github.com/vigil-sec/vigil/pipeline/runtime"
	"github.com/vigil-sec/vigil/rules"
)

// DefaultSources are the raw.<source> topics created when the
// configuration names none.
var DefaultSources = []string{"defender", "entra", "azure", "mdc", "network", "firewall", "syslog", "app"}

// App is a configured process.
type App struct {
	Cfg      *config.Config
	Log      zerolog.Logger
	Registry *prometheus.Registry
	// Incidents holds the latest incidents seen on the incidents topic.
	Incidents *incident.Latest

	clientOpts []kgo.Opt
	entities   *enrich.Table // the entity table, when normalize runs here
	rules      atomic.Pointer[rules.Set]
	ready      atomic.Bool
	instance   string
}

// New loads the rules and prepares the Kafka client options. It fails
// with an actionable message on bad config or rules.
func New(cfg *config.Config, log zerolog.Logger) (*App, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	copts, err := kafka.ClientOpts(cfg.Kafka)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	copts = append(copts, kgo.WithLogger(kafka.Logger(log.Level(max(log.GetLevel(), zerolog.WarnLevel)))))
	set, err := LoadRules(cfg)
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	a := &App{
		Cfg: cfg, Log: log, Registry: reg,
		Incidents:  incident.NewLatest(1000),
		clientOpts: copts,
		instance:   host,
	}
	a.rules.Store(set)
	return a, nil
}

// LoadRules loads every configured rule directory into one set.
func LoadRules(cfg *config.Config) (*rules.Set, error) {
	set, err := rules.LoadDirs(cfg.Rules.Dirs, ruleOptions(cfg))
	if err != nil {
		return nil, fmt.Errorf("rules in %v (check with: vigil rules lint DIR):\n%w", cfg.Rules.Dirs, err)
	}
	return set, nil
}

func ruleOptions(cfg *config.Config) rules.Options {
	return rules.Options{MaxRetention: cfg.Rules.MaxRetention.D()}
}

// SetRules replaces the rule set in force, as a reload does.
func (a *App) SetRules(s *rules.Set) { a.rules.Store(s) }

// CurrentRules returns the rule set in force (it changes on reload).
func (a *App) CurrentRules() *rules.Set { return a.rules.Load() }

// watchRules reloads the rules when their files change or on SIGHUP. A
// broken edit is logged and the running set stays.
func (a *App) watchRules(ctx context.Context) {
	w, err := rules.NewWatcher(a.Cfg.Rules.Dirs, rules.WatchOptions{Options: ruleOptions(a.Cfg), Signals: []os.Signal{syscall.SIGHUP}, Logger: &a.Log})
	if err != nil {
		a.Log.Warn().Err(err).Msg("rule reload disabled")
		return
	}
	defer w.Close()
	err = w.Run(ctx, func(u rules.Update) {
		if u.Err != nil {
			a.Log.Error().Err(u.Err).Str("cause", u.Cause).Msg("rules not reloaded: the running rules stay in force")
			return
		}
		a.SetRules(u.Set)
		a.Log.Info().Str("cause", u.Cause).Msg("rules reloaded")
	})
	if err != nil && ctx.Err() == nil {
		a.Log.Warn().Err(err).Msg("rule watcher stopped")
	}
}

// ClientOpts are the options every Kafka client of the app starts from.
func (a *App) ClientOpts() []kgo.Opt { return append([]kgo.Opt(nil), a.clientOpts...) }

// Sources returns the raw sources the process reads: topics.sources (or
// DefaultSources) plus the sources of every configured connector.
func (a *App) Sources() []string {
	base := DefaultSources
	if len(a.Cfg.Topics.Sources) > 0 {
		base = a.Cfg.Topics.Sources
	}
	return mergeSources(base, a.Cfg.Connectors.Sources())
}

func (a *App) keyspaces() []event.Keyspace { return a.CurrentRules().Keyspaces() }

// Topics returns the specs of every topic the configured stages use.
func (a *App) Topics() []kafka.TopicSpec {
	t := a.Cfg.Topics
	var cls []kafka.Changelog
	for _, ks := range event.Keyspaces {
		cls = append(cls, kafka.Changelog{Stage: config.StageCorrelate, Store: string(ks)})
	}
	cls = append(cls, kafka.Changelog{Stage: config.StageIncident, Store: "alerts", CoPartitionWith: t.Alerts()})
	specs := kafka.Specs(t, kafka.Layout{Sources: a.Sources(), Changelogs: cls})
	// One alerts partition gives the incident stage a global view, so
	// grouping across entities is exact; alerts are few.
	for i := range specs {
		if specs[i].Name == t.Alerts() || specs[i].Name == t.Changelog(config.StageIncident, "alerts") {
			specs[i].Partitions = 1
		}
	}
	return specs
}

// EnsureTopics creates missing topics and verifies existing ones.
func (a *App) EnsureTopics(ctx context.Context) error {
	cl, err := kgo.NewClient(a.ClientOpts()...)
	if err != nil {
		return err
	}
	defer cl.Close()
	created, err := kafka.EnsureTopics(ctx, kadm.NewClient(cl), a.Topics())
	if err != nil {
		return err
	}
	if len(created) > 0 {
		a.Log.Info().Strs("topics", created).Msg("created topics")
	}
	return nil
}

// Stages builds the declarations of the configured stages.
func (a *App) Stages() ([]runtime.Stage, error) {
	t := a.Cfg.Topics
	events := map[event.Keyspace]string{}
	for _, ks := range event.Keyspaces {
		events[ks] = t.Events(ks)
	}
	var out []runtime.Stage
	for _, name := range a.Cfg.Stages {
		switch name {
		case config.StageNormalize:
			var raws []string
			for _, s := range a.Sources() {
				raws = append(raws, t.Raw(s))
			}
			var en normalize.Enricher
			if a.entities != nil {
				en = enricher{a.entities}
			}
			out = append(out, normalize.Stage(normalize.StageTopics{
				Raw: raws, Events: events, DLQ: t.DLQ(), RawPrefix: t.Raw(""), Entities: t.Entities(),
			}, a.keyspaces(), en))
		case config.StageCorrelate:
			s, err := correlate.Stage(correlate.Topics{
				Events: events, Alerts: t.Alerts(), DLQ: t.DLQ(),
				Changelog: func(ks event.Keyspace) string { return t.Changelog("correlate", string(ks)) },
			}, a.CurrentRules, correlate.Options{
				Engine:  operators.Options{Lateness: a.Cfg.Rules.Lateness.D()},
				Metrics: correlate.NewMetrics(a.Registry),
				Log:     a.Log,
			})
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		case config.StageIncident:
			out = append(out, incident.Stage(incident.Topics{
				Alerts: t.Alerts(), Incidents: t.Incidents(), DLQ: t.DLQ(),
				Changelog: t.Changelog("incident", "alerts"),
			}, incident.Options{}))
		case config.StageConnectors:
			// Not a consumer-group stage: Run starts the connectors.
		default:
			return nil, fmt.Errorf("stages: unknown stage %q (known: %v)", name, config.StageNames)
		}
	}
	return out, nil
}

// Run ensures topics, starts every configured stage and the HTTP server,
// and blocks until ctx is cancelled or a stage fails.
func (a *App) Run(ctx context.Context) error {
	delivery := runtime.ExactlyOnce
	if a.Cfg.Kafka.Delivery == config.AtLeastOnce {
		delivery = runtime.AtLeastOnce
		a.Log.Warn().Msg("delivery is at-least-once (kafka.delivery): outputs may repeat after a crash; alert and incident ids are deterministic so consumers can drop repeats")
	} else {
		a.Log.Info().Msg("delivery is exactly-once: outputs, state changes and offsets commit in Kafka transactions")
	}
	if err := a.EnsureTopics(ctx); err != nil {
		return fmt.Errorf("topics: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	if a.Cfg.HasStage(config.StageNormalize) {
		tbl, err := enrich.Open(filepath.Join(a.Cfg.DataDir, "entities"), enrich.OptionsFrom(a.Cfg.Enrich, a.Log))
		if err != nil {
			return fmt.Errorf("entity table: %w", err)
		}
		a.entities = tbl
		defer func() { wg.Wait(); tbl.Close(); a.entities = nil }()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := enrich.Follow(ctx, a.ClientOpts(), a.Cfg.Topics.Entities(), tbl); err != nil && ctx.Err() == nil {
				a.Log.Warn().Err(err).Msg("entity table follower stopped")
			}
		}()
	}
	stages, err := a.Stages()
	if err != nil {
		return err
	}
	conns, err := a.connectorsToRun()
	if err != nil {
		return err
	}
	metrics := runtime.NewMetrics(a.Registry)
	cache := pebble.NewCache(64 << 20)
	defer cache.Unref()

	errs := make(chan error, len(stages)+len(conns)+2)
	for _, s := range stages {
		r, err := runtime.NewRunner(s, runtime.Options{
			ClientOpts:      a.ClientOpts(),
			MainClientOpts:  []kgo.Opt{kafka.Metrics(a.Registry, "vigil", s.Name)},
			Group:           a.Cfg.Topics.Prefix + s.Name,
			TransactionalID: fmt.Sprintf("%s-%s-%s", a.Cfg.Kafka.TransactionalIDPrefix, s.Name, a.instance),
			Delivery:        delivery,
			DataDir:         filepath.Join(a.Cfg.DataDir, "state"),
			Cache:           cache,
			Log:             a.Log,
			Metrics:         metrics,
		})
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.Run(ctx); err != nil {
				errs <- fmt.Errorf("stage %s: %w", s.Name, err)
				cancel()
			}
		}()
	}
	if err := a.runConnectors(ctx, cancel, conns, &wg, errs); err != nil {
		return err
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := incident.Watch(ctx, a.ClientOpts(), a.Cfg.Topics.Incidents(), a.Incidents.Add)
		if err != nil {
			a.Log.Warn().Err(err).Msg("incident watch stopped")
		}
	}()
	if a.Cfg.HasStage(config.StageCorrelate) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.watchRules(ctx)
		}()
	}
	a.ready.Store(true)
	<-ctx.Done()
	a.ready.Store(false)
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

// Ready reports whether every stage is running.
func (a *App) Ready() bool { return a.ready.Load() }
