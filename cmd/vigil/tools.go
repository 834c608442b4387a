package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-sec/vigil/pipeline/app"
	"github.com/vigil-sec/vigil/pipeline/connector/file"
	"github.com/vigil-sec/vigil/pipeline/detect"
	"github.com/vigil-sec/vigil/pipeline/enrich"
	"github.com/vigil-sec/vigil/pipeline/kafka"
	"github.com/vigil-sec/vigil/pipeline/normalize"
)

// replayCmd is `vigil replay`: JSON-lines / exported files into raw.<source>.
func replayCmd(c *common) *cobra.Command {
	var o file.ReplayOptions
	cmd := &cobra.Command{
		Use:   "replay --source SOURCE [--rate N] [--checkpoint FILE] FILE|DIR|-...",
		Short: "Produce exported logs (JSON lines, envelopes, CSV, syslog) to raw.<source>, rate-limited, with a progress bar",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := c.load(cmd)
			if err != nil {
				return err
			}
			opts, err := kafka.ClientOpts(cfg.Kafka)
			if err != nil {
				return err
			}
			cl, err := kgo.NewClient(opts...)
			if err != nil {
				return err
			}
			defer cl.Close()
			ctx, stop := signalContext()
			defer stop()
			o.Paths = args
			o.Prefix = cfg.Topics.Prefix
			o.Progress = file.TerminalProgress()
			o.Logger = logger(cfg)
			n, err := file.Replay(ctx, cl, o)
			fmt.Fprintf(os.Stderr, "replayed %d records to %s\n", n, cfg.Topics.Raw(o.Source))
			return err
		},
	}
	cmd.Flags().StringVar(&o.Source, "source", "", "source name: the records go to raw.<source> (required)")
	cmd.Flags().Float64Var(&o.Rate, "rate", 0, "records per second (0 = as fast as Kafka takes them)")
	cmd.Flags().StringVar(&o.Checkpoint, "checkpoint", "", "checkpoint file: a second run resumes after what Kafka acknowledged")
	_ = cmd.MarkFlagRequired("source")
	return cmd
}

// normalizeCmd is `vigil normalize`: parse files without Kafka and print
// the normalized events as JSON lines — for debugging a new source.
func normalizeCmd() *cobra.Command {
	var hint string
	var inputs []string
	cmd := &cobra.Command{
		Use:   "normalize --input FILE...",
		Short: "Print the normalized events of exported logs (any supported format, auto-detected) as JSON lines",
		RunE: func(cmd *cobra.Command, args []string) error {
			inputs = append(inputs, args...)
			if len(inputs) == 0 {
				return fmt.Errorf("give at least one --input FILE (or - for stdin)")
			}
			w := bufio.NewWriter(os.Stdout)
			defer w.Flush()
			bad := 0
			for _, in := range inputs {
				n, err := normalizeFile(in, hint, w, os.Stderr)
				if err != nil {
					return err
				}
				bad += n
			}
			if bad > 0 {
				return fmt.Errorf("%d record(s) could not be parsed (see stderr)", bad)
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVarP(&inputs, "input", "i", nil, "input files (- for stdin)")
	cmd.Flags().StringVar(&hint, "source", "", "source hint when the format is ambiguous (defender, entra, azure, ...)")
	return cmd
}

// normalizeFile parses one file, cut into messages as detect and the file
// connector cut it.
func normalizeFile(path, hint string, out, errw io.Writer) (int, error) {
	var b []byte
	var err error
	if path == "-" {
		b, err = io.ReadAll(os.Stdin)
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return 0, err
	}
	msgs := detect.Messages(b, hint)
	enc := json.NewEncoder(out)
	bad := 0
	now := time.Now().UTC()
	for _, m := range msgs {
		evs, errs := normalize.Parse(hint, m, now)
		for i := range evs {
			if err := enc.Encode(&evs[i]); err != nil {
				return bad, err
			}
		}
		for _, e := range errs {
			bad++
			fmt.Fprintf(errw, "%s: record %d: %v\n", path, e.Index, e.Err)
		}
	}
	return bad, nil
}

// detectCmd is `vigil detect`: normalize → correlate → incident over
// exported logs in one process, without Kafka. Events are enriched from
// an entity table learnt from the inputs themselves (in a temporary
// directory, removed after), with the enrich settings of the
// configuration, as the streaming normalize stage enriches them; without
// it a rule keyed by user would miss a flow that only enrichment ties to
// its user, and detect would disagree with the stream.
func detectCmd(c *common) *cobra.Command {
	var hint string
	var all, noEnrich bool
	cmd := &cobra.Command{
		Use:   "detect [--rules DIR] [--no-enrich] --input FILE...",
		Short: "Run the rules over exported logs without Kafka; print alerts and incidents as JSON lines",
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := c.load(cmd)
			if err != nil {
				return err
			}
			set, err := app.LoadRules(cfg)
			if err != nil {
				return err
			}
			paths, _ := cmd.Flags().GetStringSlice("input")
			inputs, err := detect.Paths(append(paths, args...), hint, cmd.InOrStdin())
			if err != nil {
				return err
			}
			opts := detect.Options{AllRevisions: all, Lateness: cfg.Rules.Lateness.D(), Errors: cmd.ErrOrStderr()}
			if !noEnrich {
				ents, err := detect.OpenEntities("", enrich.OptionsFrom(cfg.Enrich, logger(cfg)))
				if err != nil {
					return err
				}
				defer func() {
					if err := ents.Close(); err != nil {
						fmt.Fprintf(cmd.ErrOrStderr(), "detect: removing the entity table %s: %v\n", ents.Dir(), err)
					}
				}()
				opts.Enrich = ents.Enrich
			}
			ctx, stop := signalContext()
			defer stop()
			st, err := detect.Run(ctx, set, inputs, cmd.OutOrStdout(), opts)
			fmt.Fprintf(cmd.ErrOrStderr(), "detect: %d events, %d alerts, %d incidents, %d errors\n", st.Events, st.Alerts, st.Incidents, st.Errors)
			return err
		},
	}
	cmd.Flags().StringSliceP("input", "i", nil, "input files or directories (- for stdin)")
	cmd.Flags().StringVar(&hint, "source", "", "source hint when the format is ambiguous")
	cmd.Flags().BoolVar(&all, "all-revisions", false, "print every incident revision, not only the final one")
	cmd.Flags().BoolVar(&noEnrich, "no-enrich", false, "do not enrich events from the entity table (the streaming normalize stage always does; alerts may then differ)")
	cmd.Flags().StringSliceVar(&c.rulesDirs, "rules", nil, "rule directories (default rules.dirs)")
	return cmd
}
