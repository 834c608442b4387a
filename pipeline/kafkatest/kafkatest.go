package kafkatest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Environment variables read by this package.
const (
	// EnvBrokers names a running Kafka to use (comma separated host:port).
	EnvBrokers = "VIGIL_KAFKA_BROKERS"
	// EnvRequireReal, when "1" or "true", forbids falling back to kfake.
	EnvRequireReal = "VIGIL_REQUIRE_REAL_KAFKA"
	// EnvDocker, when "0" or "false", skips the Docker probe.
	EnvDocker = "VIGIL_KAFKATEST_DOCKER"
	// EnvImage overrides the container image for testcontainers.
	EnvImage = "VIGIL_KAFKA_IMAGE"
)

// DefaultImage is the image testcontainers' Kafka module (v0.40) knows how to
// start in KRaft mode: its start script relies on Confluent's image layout.
const DefaultImage = "confluentinc/confluent-local:7.9.0"

// KfakePartitions is the default partition count of the kfake cluster, for
// topics created with -1 partitions.
const KfakePartitions = 10

// Kind says which broker was found.
type Kind string

// The broker kinds, in the order they are tried.
const (
	KindEnv       Kind = "env"
	KindContainer Kind = "testcontainers"
	KindKfake     Kind = "kfake"
)

// Cluster is the broker the tests of this binary use.
type Cluster struct {
	// Brokers are the seed addresses (host:port).
	Brokers []string
	Kind    Kind
	// Desc says in words what the broker is, for logs.
	Desc string
}

// Real tells whether the broker is Apache Kafka rather than kfake. Tests of
// behaviour kfake does not implement (log compaction, retention) skip
// themselves when it is false.
func (c Cluster) Real() bool { return c.Kind != KindKfake }

// ErrNoRealKafka is returned by discovery when VIGIL_REQUIRE_REAL_KAFKA is set
// and neither VIGIL_KAFKA_BROKERS nor a Docker engine is available.
var ErrNoRealKafka = errors.New("VIGIL_REQUIRE_REAL_KAFKA is set but no real Kafka is available: " +
	"set VIGIL_KAFKA_BROKERS (bash deploy/kafka/kafka.sh fetch && bash deploy/kafka/kafka.sh start) " +
	"or run a Docker engine for testcontainers")

// discoverer holds what discovery depends on, so that its decision logic is
// testable without touching the process environment.
type discoverer struct {
	brokersEnv  string
	requireReal bool
	useDocker   bool
	image       string
	pingTimeout time.Duration

	dockerPing     func(ctx context.Context) error
	startContainer func(ctx context.Context, image string) ([]string, func(), error)
	startKfake     func() (*kfake.Cluster, error)
}

func envDiscoverer() discoverer {
	image := os.Getenv(EnvImage)
	if image == "" {
		image = DefaultImage
	}
	return discoverer{
		brokersEnv:     os.Getenv(EnvBrokers),
		requireReal:    truthy(os.Getenv(EnvRequireReal)),
		useDocker:      !falsy(os.Getenv(EnvDocker)),
		image:          image,
		pingTimeout:    15 * time.Second,
		dockerPing:     dockerPing,
		startContainer: startContainer,
		startKfake:     newKfake,
	}
}

func truthy(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

func falsy(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "0", "false", "no", "off":
		return true
	}
	return false
}

// parseBrokers splits a comma separated broker list, dropping blanks.
func parseBrokers(s string) []string {
	var out []string
	for _, b := range strings.Split(s, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// found is the outcome of discovery: a cluster, or why there is none, plus
// how to release what discovery started.
type found struct {
	cluster Cluster
	err     error
	notes   []string // what was tried and skipped, for the log line
	closeFn func()
}

func (d discoverer) discover(ctx context.Context) found {
	var f found
	if d.brokersEnv != "" {
		brokers := parseBrokers(d.brokersEnv)
		if len(brokers) == 0 {
			f.err = fmt.Errorf("%s=%q names no broker", EnvBrokers, d.brokersEnv)
			return f
		}
		if err := ping(ctx, brokers, d.pingTimeout); err != nil {
			f.err = fmt.Errorf("%s=%s: broker does not answer: %w", EnvBrokers, d.brokersEnv, err)
			return f
		}
		f.cluster = Cluster{Brokers: brokers, Kind: KindEnv,
			Desc: fmt.Sprintf("Apache Kafka at %s (%s)", strings.Join(brokers, ","), EnvBrokers)}
		return f
	}
	f.notes = append(f.notes, EnvBrokers+" unset")

	if !d.useDocker {
		f.notes = append(f.notes, "Docker probe disabled by "+EnvDocker)
	} else {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := d.dockerPing(pctx)
		cancel()
		if err != nil {
			f.notes = append(f.notes, "no Docker engine ("+err.Error()+")")
		} else {
			brokers, closeFn, err := d.startContainer(ctx, d.image)
			if err == nil {
				f.cluster = Cluster{Brokers: brokers, Kind: KindContainer,
					Desc: fmt.Sprintf("Kafka container %s at %s (testcontainers)", d.image, strings.Join(brokers, ","))}
				f.closeFn = closeFn
				return f
			}
			if d.requireReal {
				f.err = fmt.Errorf("%s is set and the Kafka container failed: %w", EnvRequireReal, err)
				return f
			}
			f.notes = append(f.notes, "Kafka container failed ("+err.Error()+")")
		}
	}

	if d.requireReal {
		f.err = fmt.Errorf("%w (%s)", ErrNoRealKafka, strings.Join(f.notes, "; "))
		return f
	}
	c, err := d.startKfake()
	if err != nil {
		f.err = fmt.Errorf("start kfake: %w", err)
		return f
	}
	f.cluster = Cluster{Brokers: c.ListenAddrs(), Kind: KindKfake,
		Desc: fmt.Sprintf("in-process kfake at %s (%s)", strings.Join(c.ListenAddrs(), ","), strings.Join(f.notes, "; "))}
	f.closeFn = c.Close
	return f
}

// newKfake starts the fallback cluster. One broker keeps it cheap and
// matches the single-node Kafka of deploy/kafka; the group session minimum
// matches that broker's too, so rebalance tests behave alike on both.
func newKfake() (*kfake.Cluster, error) {
	return kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.DefaultNumPartitions(KfakePartitions),
		kfake.GroupMinSessionTimeout(time.Second),
	)
}

// ping asks the brokers for their API versions, proving one answers.
func ping(ctx context.Context, brokers []string, timeout time.Duration) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := cl.Ping(ctx); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	return nil
}

var (
	once   sync.Once
	result found
	logged sync.Map // testing.TB -> true: tests told which broker they use
)

// discoverOnce runs discovery the first time and reports its outcome once on
// stderr, so that a test binary's output says which broker it ran against.
func discoverOnce() found {
	once.Do(func() {
		// Starting a container can pull an image: give it minutes.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		result = envDiscoverer().discover(ctx)
		if result.err != nil {
			fmt.Fprintf(os.Stderr, "vigil kafkatest: no broker: %v\n", result.err)
			return
		}
		fmt.Fprintf(os.Stderr, "vigil kafkatest: using %s\n", result.cluster.Desc)
	})
	return result
}

// Get returns the broker for this test binary, finding it on first use. It
// fails the test when there is none (see the package doc for the order and
// VIGIL_REQUIRE_REAL_KAFKA).
func Get(t testing.TB) Cluster {
	t.Helper()
	f := discoverOnce()
	if f.err != nil {
		t.Fatalf("kafkatest: %v", f.err)
	}
	if _, seen := logged.LoadOrStore(t, true); !seen {
		t.Logf("kafkatest: using %s", f.cluster.Desc)
		t.Cleanup(func() { logged.Delete(t) })
	}
	c := f.cluster
	c.Brokers = append([]string(nil), c.Brokers...)
	return c
}

// Brokers returns the seed addresses of the broker for this test binary.
func Brokers(t testing.TB) []string {
	t.Helper()
	return Get(t).Brokers
}

// Main runs the tests and then releases the broker (kfake cluster or
// container) before exiting. It is optional: without it the kfake cluster
// dies with the process and Ryuk removes the container. Use it as
//
//	func TestMain(m *testing.M) { kafkatest.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	if result.closeFn != nil {
		result.closeFn()
	}
	os.Exit(code)
}

// Client returns a client seeded with the test broker, closed when the test
// ends. opts come after the seeds, so they may add to or override them.
func Client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	all := append([]kgo.Opt{kgo.SeedBrokers(Brokers(t)...)}, opts...)
	cl, err := kgo.NewClient(all...)
	if err != nil {
		t.Fatalf("kafkatest: new client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// Admin returns an admin client on the test broker, closed when the test ends.
func Admin(t testing.TB) *kadm.Client {
	t.Helper()
	return kadm.NewClient(Client(t))
}
