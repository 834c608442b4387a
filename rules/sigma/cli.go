package sigma

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Main is `vigil rules import-sigma [-o DIR] [--prefix P] [--skip-unsupported] FILE|DIR...`.
// It converts every .yml/.yaml file given (directories are walked) in one
// ConvertAll, so correlation rules find the rules they reference. With -o
// it writes one <rule id>.yaml per Vigil rule into DIR, else all rules to
// stdout separated by ---. Warnings and errors go to stderr.
//
// Exit status: 0 all converted (or, with --skip-unsupported, every failure
// was an unsupported construct); 1 some rule failed; 2 usage or I/O error.
func Main(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("import-sigma", flag.ContinueOnError)
	fset.SetOutput(stderr)
	outDir := fset.String("o", "", "output directory (default: stdout)")
	prefix := fset.String("prefix", "sigma.", "prefix of the Vigil rule ids")
	skip := fset.Bool("skip-unsupported", false, "exit 0 when the only failures are unsupported Sigma constructs")
	quiet := fset.Bool("q", false, "do not print warnings")
	fset.Usage = func() {
		fmt.Fprintln(stderr, "usage: vigil rules import-sigma [-o DIR] [--prefix P] [--skip-unsupported] [-q] FILE|DIR...")
		fset.PrintDefaults()
	}
	var paths []string
	for {
		if err := fset.Parse(args); err != nil {
			return 2
		}
		if fset.NArg() == 0 {
			break
		}
		paths = append(paths, fset.Arg(0))
		args = fset.Args()[1:]
	}
	if len(paths) == 0 {
		fset.Usage()
		return 2
	}
	var files [][]byte
	var names []string
	for _, p := range paths {
		err := filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if path != p && strings.HasPrefix(d.Name(), ".") {
					return filepath.SkipDir
				}
				return nil
			}
			ext := strings.ToLower(filepath.Ext(path))
			if path != p && ext != ".yml" && ext != ".yaml" {
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			files = append(files, b)
			names = append(names, path)
			return nil
		})
		if err != nil {
			fmt.Fprintf(stderr, "import-sigma: %v\n", err)
			return 2
		}
	}
	res, warns, err := ConvertAll(files, Options{IDPrefix: *prefix})
	if !*quiet {
		for _, w := range warns {
			fmt.Fprintf(stderr, "warning: %s\n", w)
		}
	}
	if *outDir != "" {
		if err := os.MkdirAll(*outDir, 0o755); err != nil {
			fmt.Fprintf(stderr, "import-sigma: %v\n", err)
			return 2
		}
	}
	for i, r := range res {
		if *outDir == "" {
			if i > 0 {
				fmt.Fprintln(stdout, "---")
			}
			if _, err := stdout.Write(r.YAML); err != nil {
				fmt.Fprintf(stderr, "import-sigma: %v\n", err)
				return 2
			}
			continue
		}
		if err := os.WriteFile(filepath.Join(*outDir, r.File), r.YAML, 0o644); err != nil {
			fmt.Fprintf(stderr, "import-sigma: %v\n", err)
			return 2
		}
	}
	failed, unsupported := 0, 0
	for _, e := range flatten(err) {
		failed++
		if errors.Is(e, ErrUnsupported) {
			unsupported++
		}
		fmt.Fprintf(stderr, "error: %v\n", e)
	}
	fmt.Fprintf(stderr, "import-sigma: %d file(s), %d Vigil rule(s) written, %d failed (%d unsupported)\n",
		len(names), len(res), failed, unsupported)
	if failed > 0 && !(*skip && failed == unsupported) {
		return 1
	}
	return 0
}

// flatten lists the errors of an errors.Join.
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
