// Command vigil runs Vigil's stages and tools. main only wires: every
// command is a thin layer over a package under pipeline/ or rules/.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/vigil-sec/vigil/pipeline/app"
	"github.com/vigil-sec/vigil/pipeline/config"
	"github.com/vigil-sec/vigil/pipeline/dev"
)

func main() {
	if err := root().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "vigil:", err)
		os.Exit(1)
	}
}

// flags shared by the commands that load a configuration.
type common struct {
	config    string
	stages    []string
	rulesDirs []string
}

func (c *common) load(cmd *cobra.Command) (*config.Config, error) {
	cfg, err := config.Load(c.config, os.Environ())
	if err != nil {
		return nil, err
	}
	if cmd.Flags().Changed("stages") {
		cfg.SetStages(c.stages)
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
	}
	if len(c.rulesDirs) > 0 {
		cfg.Rules.Dirs = c.rulesDirs
	}
	for _, w := range cfg.Warnings() {
		fmt.Fprintln(os.Stderr, "vigil: warning:", w)
	}
	if cfg.HTTP.Token == "" && cmd.Name() == "run" {
		fmt.Fprintln(os.Stderr, "vigil: warning: http.token is empty: the API and HTTP ingest refuse every request; set http.token or VIGIL_HTTP_TOKEN(_FILE)")
	}
	return cfg, nil
}

func logger(cfg *config.Config) zerolog.Logger {
	lvl, err := zerolog.ParseLevel(cfg.Log.Level)
	if err != nil {
		lvl = zerolog.InfoLevel
	}
	var l zerolog.Logger
	if cfg.Log.Format == "console" {
		l = zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: "15:04:05"})
	} else {
		l = zerolog.New(os.Stderr)
	}
	return l.Level(lvl).With().Timestamp().Logger()
}

// signalContext is cancelled by SIGINT or SIGTERM; stages then finish
// their in-flight batch and leave their groups.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func root() *cobra.Command {
	var c common
	cmd := &cobra.Command{
		Use:           "vigil",
		Short:         "Real-time security correlation for Azure, Entra ID and Defender XDR signals, on Kafka",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cmd.PersistentFlags().StringVarP(&c.config, "config", "c", "", "YAML config file (every key can also be set with VIGIL_* env vars)")
	cmd.PersistentFlags().StringSliceVar(&c.stages, "stages", nil, "stages to run, comma separated ("+strings.Join(config.StageNames, ",")+")")

	cmd.AddCommand(
		&cobra.Command{
			Use:   "dev",
			Short: "Run every stage in one process on an embedded broker, with a demo attack",
			RunE: func(cmd *cobra.Command, _ []string) error {
				cfg, err := c.load(cmd)
				if err != nil {
					return err
				}
				if !cmd.Flags().Changed("config") && os.Getenv("VIGIL_LOG_FORMAT") == "" {
					cfg.Log.Format = "console"
				}
				// Every stage runs here, connectors too when configured
				// (unless stages or --stages says otherwise).
				cfg.Stages = cfg.DevStages()
				ctx, stop := signalContext()
				defer stop()
				return dev.Run(ctx, cfg, logger(cfg), os.Stdout)
			},
		},
		&cobra.Command{
			Use:   "run",
			Short: "Run the configured stages against the configured Kafka cluster",
			RunE: func(cmd *cobra.Command, _ []string) error {
				cfg, err := c.load(cmd)
				if err != nil {
					return err
				}
				log := logger(cfg)
				a, err := app.New(cfg, log)
				if err != nil {
					return err
				}
				ctx, stop := signalContext()
				defer stop()
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
				log.Info().Str("http", addr).Strs("stages", cfg.Stages).Msg("vigil running")
				err = a.Run(ctx)
				stop()
				return errors.Join(err, <-httpDone)
			},
		},
		topicsCmd(&c),
		rulesCmd(&c),
		replayCmd(&c),
		normalizeCmd(),
		detectCmd(&c),
		configCmd(&c),
	)
	return cmd
}

func topicsCmd(c *common) *cobra.Command {
	cmd := &cobra.Command{Use: "topics", Short: "Manage Vigil's Kafka topics"}
	cmd.AddCommand(&cobra.Command{
		Use:   "ensure",
		Short: "Create the topics the configured stages need and verify existing ones",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := c.load(cmd)
			if err != nil {
				return err
			}
			a, err := app.New(cfg, logger(cfg))
			if err != nil {
				return err
			}
			ctx, stop := signalContext()
			defer stop()
			if err := a.EnsureTopics(ctx); err != nil {
				return err
			}
			for _, t := range a.Topics() {
				fmt.Printf("%-48s partitions=%d compact=%v\n", t.Name, t.Partitions, t.Compacted())
			}
			return nil
		},
	})
	return cmd
}

func configCmd(c *common) *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Inspect the configuration"}
	cmd.AddCommand(&cobra.Command{
		Use:   "show",
		Short: "Print the effective configuration (file + env + defaults), secrets redacted",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := c.load(cmd)
			if err != nil {
				return err
			}
			fmt.Fprint(cmd.OutOrStdout(), cfg.Redacted())
			return nil
		},
	})
	return cmd
}
