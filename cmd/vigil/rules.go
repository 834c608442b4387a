package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/vigil-sec/vigil/rules"
	"github.com/vigil-sec/vigil/rules/ruletest"
	"github.com/vigil-sec/vigil/rules/sigma"
)

func rulesCmd(c *common) *cobra.Command {
	cmd := &cobra.Command{Use: "rules", Short: "Lint, test and inspect detection rules"}
	dirArg := func(args []string) string {
		if len(args) == 1 {
			return args[0]
		}
		return "rules/library"
	}
	cmd.AddCommand(
		&cobra.Command{
			Use:                "import-sigma [-o DIR] [--prefix P] [--skip-unsupported] [-q] FILE|DIR...",
			Short:              "Convert Sigma rules (and Sigma correlation rules) into Vigil rules",
			DisableFlagParsing: true,
			RunE: func(cmd *cobra.Command, args []string) error {
				if code := sigma.Main(args, os.Stdout, os.Stderr); code != 0 {
					return fmt.Errorf("import-sigma exited with status %d", code)
				}
				return nil
			},
		},
		&cobra.Command{
			Use:   "lint [DIR]",
			Short: "Compile and type-check every rule; print file:line: rule: problem",
			Args:  cobra.MaximumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				cfg, err := c.load(cmd)
				if err != nil {
					return err
				}
				dir := dirArg(args)
				diags := rules.Lint(dir, rules.Options{MaxRetention: cfg.Rules.MaxRetention.D()})
				errs := 0
				for _, d := range diags {
					fmt.Println(d.String())
					if !d.Warning {
						errs++
					}
				}
				if errs > 0 {
					return fmt.Errorf("%d problem(s) in %s", errs, dir)
				}
				fmt.Printf("ok: %s (%d warning(s))\n", dir, len(diags))
				return nil
			},
		},
		func() *cobra.Command {
			var verbose bool
			t := &cobra.Command{
				Use:   "test [DIR]",
				Short: "Run every rule's inline fixtures through the real operators",
				Args:  cobra.MaximumNArgs(1),
				RunE: func(cmd *cobra.Command, args []string) error {
					passed, failed, err := ruletest.RunTests(dirArg(args), os.Stdout, verbose)
					if err != nil {
						return err
					}
					fmt.Printf("%d passed, %d failed\n", passed, failed)
					if failed > 0 {
						return errors.New("rule tests failed")
					}
					return nil
				},
			}
			t.Flags().BoolVarP(&verbose, "verbose", "v", false, "print every case, not only failures")
			return t
		}(),
		func() *cobra.Command {
			var layer string
			cv := &cobra.Command{
				Use:   "coverage [DIR]",
				Short: "Print the ATT&CK techniques the rules cover; optionally write an ATT&CK Navigator layer",
				Args:  cobra.MaximumNArgs(1),
				RunE: func(cmd *cobra.Command, args []string) error {
					cfg, err := c.load(cmd)
					if err != nil {
						return err
					}
					set, err := rules.LoadDir(dirArg(args), rules.Options{MaxRetention: cfg.Rules.MaxRetention.D()})
					if err != nil {
						return err
					}
					if err := rules.Coverage(set).WriteText(os.Stdout); err != nil {
						return err
					}
					if layer == "" {
						return nil
					}
					f, err := os.Create(layer)
					if err != nil {
						return err
					}
					if err := rules.WriteNavigatorLayer(f, set, "Vigil rules"); err != nil {
						f.Close()
						return err
					}
					return f.Close()
				},
			}
			cv.Flags().StringVar(&layer, "layer", "", "write an ATT&CK Navigator layer (JSON) to this file")
			return cv
		}(),
	)
	return cmd
}
