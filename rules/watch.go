package rules

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/rs/zerolog"
)

// Update is the outcome of one reload by a Watcher.
type Update struct {
	// Set is the newly loaded rule set; nil when Err is set.
	Set *Set
	// Err holds every problem of the new rules (file:line: rule id:
	// message). A broken edit never replaces the running set: keep the
	// current one and report Err.
	Err error
	// Cause says what triggered the reload: "signal hangup", "file
	// change" or "request".
	Cause string
}

// WatchOptions configure a Watcher.
type WatchOptions struct {
	// Options are the load options of every reload.
	Options
	// Debounce is how long the rule tree must stay quiet after a change
	// before it is reloaded, so that an editor's save (or a git checkout
	// touching many files) gives one reload. Default 300ms.
	Debounce time.Duration
	// Signals reload the rules when received. Nil means SIGHUP; an empty
	// non-nil slice means none.
	Signals []os.Signal
	// Logger gets watch errors and reload causes; nil logs nothing.
	Logger *zerolog.Logger
}

// Watcher reloads rule directories when a file under them changes, on
// SIGHUP, or on request, and delivers each new set (or its errors). It
// watches every directory of the trees (new subdirectories included) and
// the lookups directories; dot and underscore files, editor backups (~,
// .swp) and permission-only changes are ignored.
type Watcher struct {
	dirs   []string
	opts   WatchOptions
	fsw    *fsnotify.Watcher
	sig    chan os.Signal
	req    chan struct{}
	log    zerolog.Logger
	closer sync.Once
}

// NewWatcher starts watching dirs. Changes are delivered by Run; call
// Close if Run is never called. Signals are caught from now on (so a
// SIGHUP sent after NewWatcher returns never kills the process).
func NewWatcher(dirs []string, opts WatchOptions) (*Watcher, error) {
	if len(dirs) == 0 {
		return nil, errors.New("rules: watcher needs a rule directory")
	}
	if opts.Debounce <= 0 {
		opts.Debounce = 300 * time.Millisecond
	}
	if opts.Signals == nil {
		opts.Signals = []os.Signal{syscall.SIGHUP}
	}
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("rules: watch: %w", err)
	}
	w := &Watcher{dirs: dirs, opts: opts, fsw: fsw, req: make(chan struct{}, 1), log: zerolog.Nop()}
	if opts.Logger != nil {
		w.log = *opts.Logger
	}
	for _, d := range append(append([]string(nil), dirs...), opts.LookupDirs...) {
		if err := w.addTree(d); err != nil {
			_ = fsw.Close()
			return nil, err
		}
	}
	if len(opts.Signals) > 0 {
		w.sig = make(chan os.Signal, 1)
		signal.Notify(w.sig, opts.Signals...)
	}
	return w, nil
}

// addTree watches dir and every directory under it.
func (w *Watcher) addTree(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("rules: watch %s: %w", p, err)
		}
		if !d.IsDir() {
			return nil
		}
		if p != dir && ignored(d.Name()) {
			return filepath.SkipDir
		}
		if err := w.fsw.Add(p); err != nil {
			return fmt.Errorf("rules: watch %s: %w", p, err)
		}
		return nil
	})
}

// Reload asks for a reload now (as SIGHUP does). It does not block.
func (w *Watcher) Reload() {
	select {
	case w.req <- struct{}{}:
	default: // one is already pending
	}
}

// Close stops watching. Run calls it when it returns.
func (w *Watcher) Close() error {
	var err error
	w.closer.Do(func() {
		if w.sig != nil {
			signal.Stop(w.sig)
		}
		err = w.fsw.Close()
	})
	return err
}

// Run watches until ctx is cancelled, calling deliver (from Run's
// goroutine) with each reload's outcome. It returns nil when ctx ends.
func (w *Watcher) Run(ctx context.Context, deliver func(Update)) error {
	defer w.Close()
	var (
		timer   *time.Timer
		timerC  <-chan time.Time
		pending string
	)
	reload := func(cause string) {
		set, err := LoadDirs(w.dirs, w.opts.Options)
		if err != nil {
			w.log.Warn().Str("cause", cause).Err(err).Msg("rules reload failed; the running rules stay")
			deliver(Update{Err: err, Cause: cause})
			return
		}
		w.log.Info().Str("cause", cause).Int("rules", len(set.Rules)).Msg("rules reloaded")
		deliver(Update{Set: set, Cause: cause})
	}
	for {
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return nil
		case s := <-w.sig:
			reload("signal " + s.String())
		case <-w.req:
			reload("request")
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return errors.New("rules: watcher closed")
			}
			if !w.relevant(ev) {
				continue
			}
			if ev.Has(fsnotify.Create) {
				if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() {
					if err := w.addTree(ev.Name); err != nil {
						w.log.Warn().Err(err).Msg("rules watch: new directory")
					}
				}
			}
			pending = "file change"
			if timer == nil {
				timer = time.NewTimer(w.opts.Debounce)
			} else {
				timer.Reset(w.opts.Debounce)
			}
			timerC = timer.C
		case <-timerC:
			timerC = nil
			reload(pending)
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return errors.New("rules: watcher closed")
			}
			w.log.Warn().Err(err).Msg("rules watch error")
		}
	}
}

// relevant filters out what cannot change the rules.
func (w *Watcher) relevant(ev fsnotify.Event) bool {
	if ev.Op == fsnotify.Chmod {
		return false
	}
	base := filepath.Base(ev.Name)
	if ignored(base) || strings.HasSuffix(base, "~") || strings.HasSuffix(base, ".swp") ||
		strings.HasSuffix(base, ".tmp") {
		return false
	}
	return true
}
