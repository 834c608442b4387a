package rules

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestLoadDirs(t *testing.T) {
	lib := writeTree(t, map[string]string{
		"a/match.yaml":     validRule,
		"lookups/vip.csv":  "value\nceo@x.example\n",
		"_draft/skip.yaml": "not: a rule",
	})
	site := writeTree(t, map[string]string{
		"vip.yaml": strings.NewReplacer("id: t.match", "id: site.vip", `Process.Name == "powershell.exe"`,
			`watchlist("vip", User)`).Replace(validRule),
	})
	cases := []struct {
		name    string
		dirs    []string
		ids     []string
		wantErr string
	}{
		{"two trees share lookups", []string{lib, site}, []string{"site.vip", "t.match"}, ""},
		{"one tree", []string{lib}, []string{"t.match"}, ""},
		{"lookup only in the other tree", []string{site}, nil, `unknown watchlist "vip"`},
		{"duplicate id across trees", []string{lib, lib}, nil, "duplicate rule id"},
		{"missing dir", []string{lib, filepath.Join(site, "nope")}, nil, "read rules"},
		{"no dirs", nil, nil, "no rule directory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			set, err := LoadDirs(tc.dirs, Options{})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, r := range set.Rules {
				ids = append(ids, r.ID)
			}
			if strings.Join(ids, ",") != strings.Join(tc.ids, ",") {
				t.Fatalf("ids = %v, want %v", ids, tc.ids)
			}
		})
	}
}

// watch starts a Watcher on dir and returns its updates.
func watch(t *testing.T, dirs []string, opts WatchOptions) (*Watcher, <-chan Update) {
	t.Helper()
	w, err := NewWatcher(dirs, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan Update, 16)
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, func(u Update) { ch <- u }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return w, ch
}

func next(t *testing.T, ch <-chan Update) Update {
	t.Helper()
	select {
	case u := <-ch:
		return u
	case <-time.After(10 * time.Second):
		t.Fatal("no reload within 10s")
	}
	return Update{}
}

func quiet(t *testing.T, ch <-chan Update, d time.Duration) {
	t.Helper()
	select {
	case u := <-ch:
		t.Fatalf("unexpected reload: cause %q, err %v", u.Cause, u.Err)
	case <-time.After(d):
	}
}

func write(t *testing.T, p, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestWatcherReloadsOnChange: an edit delivers a new set with the new
// version; a broken edit delivers its errors and no set; a fix and a rule
// in a new subdirectory come through; a burst of writes is one reload;
// editor swap files do nothing.
func TestWatcherReloadsOnChange(t *testing.T) {
	dir := writeTree(t, map[string]string{"r/match.yaml": validRule})
	v0, err := LoadDir(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, ch := watch(t, []string{dir}, WatchOptions{Debounce: 100 * time.Millisecond, Signals: []os.Signal{}})
	p := filepath.Join(dir, "r", "match.yaml")

	write(t, p, strings.Replace(validRule, `"powershell.exe"`, `"pwsh.exe"`, 1))
	u := next(t, ch)
	if u.Err != nil || u.Set == nil || u.Cause != "file change" {
		t.Fatalf("edit: %+v", u)
	}
	if u.Set.Rule("t.match").Version == v0.Rule("t.match").Version {
		t.Fatal("edit did not change the version")
	}

	write(t, p, strings.Replace(validRule, "Process.Name ==", "Proces.Name ==", 1))
	u = next(t, ch)
	if u.Err == nil || u.Set != nil || !strings.Contains(u.Err.Error(), "unknown name Proces") {
		t.Fatalf("broken edit must deliver only its error: %+v", u)
	}

	write(t, p, validRule)
	write(t, filepath.Join(dir, "r", "new", "deeper", "second.yaml"), strings.Replace(validRule, "id: t.match", "id: t.second", 1))
	u = next(t, ch)
	for u.Set == nil || u.Set.Rule("t.second") == nil { // the new directory's file may come in a second reload
		u = next(t, ch)
	}
	if u.Err != nil || u.Set.Rule("t.second") == nil || u.Set.Rule("t.match").Version != v0.Rule("t.match").Version {
		t.Fatalf("fix + new directory: %+v", u)
	}

	// A rule written in the new subdirectory later is seen: it is watched.
	write(t, filepath.Join(dir, "r", "new", "deeper", "third.yaml"), strings.Replace(validRule, "id: t.match", "id: t.third", 1))
	if u = next(t, ch); u.Set == nil || u.Set.Rule("t.third") == nil {
		t.Fatalf("file in new directory: %+v", u)
	}

	for i := 0; i < 5; i++ {
		write(t, p, validRule+strings.Repeat("\n", i))
	}
	if u = next(t, ch); u.Set == nil {
		t.Fatalf("burst: %+v", u)
	}
	quiet(t, ch, 400*time.Millisecond) // debounced: one reload for the burst

	write(t, filepath.Join(dir, "r", ".match.yaml.swp"), "x")
	write(t, filepath.Join(dir, "r", "match.yaml~"), "x")
	quiet(t, ch, 400*time.Millisecond)
}

// TestWatcherReloadsOnSignalAndRequest: SIGHUP and Reload() reload
// without any file change.
func TestWatcherReloadsOnSignalAndRequest(t *testing.T) {
	dir := writeTree(t, map[string]string{"match.yaml": validRule})
	w, ch := watch(t, []string{dir}, WatchOptions{Debounce: 50 * time.Millisecond})
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if u := next(t, ch); u.Set == nil || u.Cause != "signal hangup" {
		t.Fatalf("SIGHUP: %+v", u)
	}
	w.Reload()
	if u := next(t, ch); u.Set == nil || u.Cause != "request" {
		t.Fatalf("Reload(): %+v", u)
	}
}
