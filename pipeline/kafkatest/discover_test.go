package kafkatest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

func TestParseBrokers(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{" , ,", nil},
		{"127.0.0.1:9092", []string{"127.0.0.1:9092"}},
		{" a:1, ,b:2 ,", []string{"a:1", "b:2"}},
	}
	for _, tt := range tests {
		if got := parseBrokers(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("parseBrokers(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestTruthyFalsy(t *testing.T) {
	tests := []struct {
		in            string
		truthy, falsy bool
	}{
		{"", false, false},
		{"1", true, false},
		{" TRUE ", true, false},
		{"yes", true, false},
		{"0", false, true},
		{"false", false, true},
		{"off", false, true},
		{"maybe", false, false},
	}
	for _, tt := range tests {
		if got := truthy(tt.in); got != tt.truthy {
			t.Errorf("truthy(%q) = %v", tt.in, got)
		}
		if got := falsy(tt.in); got != tt.falsy {
			t.Errorf("falsy(%q) = %v", tt.in, got)
		}
	}
}

// prefixRE is what a prefix must look like to be usable in every topic name
// and to never collide with another through Kafka's '.'/'_' metric clash.
var prefixRE = regexp.MustCompile(`^t[0-9a-f]+(-[A-Za-z0-9]+(-[A-Za-z0-9]+)*)?\.$`)

func TestMakePrefix(t *testing.T) {
	tests := []struct {
		name, want string
	}{
		{"TestX", "tab12-TestX."},
		{"TestSeq/late_event#01", "tab12-TestSeq-late-event-01."},
		{"Test__a//b", "tab12-Test-a-b."},
		{"", "tab12."},
		{"///", "tab12."},
		{"/a/", "tab12-a."},
		{"日本", "tab12."},
		{strings.Repeat("x", 100), "tab12-" + strings.Repeat("x", maxNamePart) + "."},
		{strings.Repeat("x", maxNamePart) + "/y", "tab12-" + strings.Repeat("x", maxNamePart) + "."},
	}
	for _, tt := range tests {
		got := makePrefix("ab12", tt.name)
		if got != tt.want {
			t.Errorf("makePrefix(%q) = %q, want %q", tt.name, got, tt.want)
		}
		if !prefixRE.MatchString(got) {
			t.Errorf("makePrefix(%q) = %q: not a valid prefix", tt.name, got)
		}
	}
}

func FuzzMakePrefix(f *testing.F) {
	for _, s := range []string{"TestX", "a/b_c", "", "--", "日本/x", strings.Repeat("ab/", 40)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		got := makePrefix("0f", name)
		if !prefixRE.MatchString(got) {
			t.Fatalf("makePrefix(%q) = %q: not a valid prefix", name, got)
		}
		if len(got) > len("t0f-.")+maxNamePart {
			t.Fatalf("makePrefix(%q) = %q: too long", name, got)
		}
	})
}

func TestTopicPrefix(t *testing.T) {
	p := TopicPrefix(t)
	if !prefixRE.MatchString(p) || !strings.Contains(p, "-TestTopicPrefix.") {
		t.Fatalf("TopicPrefix = %q", p)
	}
	if again := TopicPrefix(t); again != p {
		t.Errorf("second call gave %q, first %q", again, p)
	}
	seen := map[string]bool{p: true}
	for i := range 3 {
		t.Run(fmt.Sprint("sub", i), func(t *testing.T) {
			sp := TopicPrefix(t)
			if seen[sp] {
				t.Errorf("subtest prefix %q not unique", sp)
			}
			seen[sp] = true
			if !strings.HasSuffix(sp, fmt.Sprintf("-TestTopicPrefix-sub%d.", i)) {
				t.Errorf("subtest prefix %q lacks the subtest name", sp)
			}
		})
	}
}

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestDiscover(t *testing.T) {
	live, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(live.Close)
	liveAddr := live.ListenAddrs()[0]
	dead := deadAddr(t)

	dockerDown := func(context.Context) error { return errNoDocker }
	dockerUp := func(context.Context) error { return nil }
	containerOK := func(context.Context, string) ([]string, func(), error) {
		return []string{liveAddr}, func() {}, nil
	}
	containerFails := func(context.Context, string) ([]string, func(), error) {
		return nil, nil, errors.New("image pull failed")
	}

	tests := []struct {
		name        string
		env         string
		requireReal bool
		noDocker    bool
		ping        func(context.Context) error
		container   func(context.Context, string) ([]string, func(), error)
		wantKind    Kind
		wantErr     string // substring; empty: no error
		wantNoReal  bool   // error wraps ErrNoRealKafka
	}{
		{name: "env wins over docker", env: " " + liveAddr + " ,", ping: dockerUp, container: containerFails, wantKind: KindEnv},
		{name: "env wins under require", env: liveAddr, requireReal: true, ping: dockerDown, wantKind: KindEnv},
		{name: "env dead fails, no fallback", env: dead, ping: dockerDown, wantErr: "does not answer"},
		{name: "env blank list fails", env: " , ", ping: dockerDown, wantErr: "names no broker"},
		{name: "container when docker answers", ping: dockerUp, container: containerOK, wantKind: KindContainer},
		{name: "container under require", requireReal: true, ping: dockerUp, container: containerOK, wantKind: KindContainer},
		{name: "container fails, falls back", ping: dockerUp, container: containerFails, wantKind: KindKfake},
		{name: "container fails under require", requireReal: true, ping: dockerUp, container: containerFails, wantErr: "image pull failed"},
		{name: "no docker, kfake", ping: dockerDown, wantKind: KindKfake},
		{name: "docker disabled, kfake", noDocker: true, ping: dockerUp, container: containerOK, wantKind: KindKfake},
		{name: "no docker under require fails", requireReal: true, ping: dockerDown, wantNoReal: true, wantErr: "VIGIL_KAFKA_BROKERS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pinged := false
			d := discoverer{
				brokersEnv:  tt.env,
				requireReal: tt.requireReal,
				useDocker:   !tt.noDocker,
				image:       "img",
				pingTimeout: time.Second,
				dockerPing: func(ctx context.Context) error {
					pinged = true
					return tt.ping(ctx)
				},
				startContainer: tt.container,
				startKfake:     newKfake,
			}
			f := d.discover(context.Background())
			if f.closeFn != nil {
				t.Cleanup(f.closeFn)
			}
			if tt.wantErr != "" || tt.wantNoReal {
				if f.err == nil {
					t.Fatalf("got %+v, want error %q", f.cluster, tt.wantErr)
				}
				if !strings.Contains(f.err.Error(), tt.wantErr) {
					t.Errorf("error %q lacks %q", f.err, tt.wantErr)
				}
				if tt.wantNoReal != errors.Is(f.err, ErrNoRealKafka) {
					t.Errorf("errors.Is(%v, ErrNoRealKafka) = %v", f.err, !tt.wantNoReal)
				}
				return
			}
			if f.err != nil {
				t.Fatalf("unexpected error: %v", f.err)
			}
			if f.cluster.Kind != tt.wantKind {
				t.Fatalf("kind = %s, want %s (%s)", f.cluster.Kind, tt.wantKind, f.cluster.Desc)
			}
			if tt.env != "" && pinged {
				t.Error("docker probed although the env named a broker")
			}
			if tt.noDocker && pinged {
				t.Error("docker probed although disabled")
			}
			if f.cluster.Real() == (tt.wantKind == KindKfake) {
				t.Errorf("Real() = %v for %s", f.cluster.Real(), tt.wantKind)
			}
			// Whatever was found must answer.
			if err := ping(context.Background(), f.cluster.Brokers, 5*time.Second); err != nil {
				t.Errorf("found broker %v does not answer: %v", f.cluster.Brokers, err)
			}
		})
	}
}

// serveUnix serves h on a fresh unix socket and returns its path.
func serveUnix(t *testing.T, h http.HandlerFunc) string {
	path := filepath.Join(t.TempDir(), "docker.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: time.Second}
	go srv.Serve(ln) //nolint:errcheck // ends with Close
	t.Cleanup(func() { srv.Close() })
	return path
}

func TestDockerPing(t *testing.T) {
	ok := serveUnix(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/_ping" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte("OK"))
	})
	broken := serveUnix(t, func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "daemon sick", http.StatusInternalServerError)
	})
	hang := serveUnix(t, func(_ http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	})
	tests := []struct {
		name, host string
		wantErr    string
	}{
		{"engine answers", "unix://" + ok, ""},
		{"engine errors", "unix://" + broken, "500"},
		{"engine hangs", "unix://" + hang, "deadline"},
		{"no socket", "unix://" + filepath.Join(t.TempDir(), "none.sock"), "no such file"},
		{"tcp refused", "tcp://" + deadAddr(t), "refused"},
		{"unsupported scheme", "ssh://user@host", "not probed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("DOCKER_HOST", tt.host)
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			start := time.Now()
			err := dockerPing(ctx)
			if el := time.Since(start); el > 2*time.Second {
				t.Errorf("ping took %v; discovery must fall through fast", el)
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("dockerPing: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("dockerPing error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
