package kafka

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/vigil-sec/vigil/pipeline/config"
	"github.com/vigil-sec/vigil/pipeline/event"
	"github.com/vigil-sec/vigil/pipeline/kafkatest"
)

func testTopics(t *testing.T) config.Topics {
	tp := config.Defaults().Topics
	tp.Prefix = kafkatest.TopicPrefix(t)
	tp.Partitions = 3
	tp.ReplicationFactor = 1
	return tp
}

// cleanupTopics deletes everything under the test's prefix when it ends,
// so a shared real broker does not accumulate test topics.
func cleanupTopics(t *testing.T, adm *kadm.Client, prefix string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		all, err := adm.ListTopics(ctx)
		if err != nil {
			return
		}
		var mine []string
		for _, n := range all.Names() {
			if strings.HasPrefix(n, prefix) {
				mine = append(mine, n)
			}
		}
		if len(mine) > 0 {
			_, _ = adm.DeleteTopics(ctx, mine...)
		}
	})
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func names(specs []TopicSpec) []string {
	out := make([]string, len(specs))
	for i, s := range specs {
		out[i] = s.Name
	}
	sort.Strings(out)
	return out
}

func partitions(t *testing.T, adm *kadm.Client, topic string) int {
	t.Helper()
	d, err := adm.ListTopics(kadm.WithAuthorizedOps(ctx(t)), topic)
	if err != nil || d[topic].Err != nil {
		t.Fatalf("describe %s: %v %v", topic, err, d[topic].Err)
	}
	return len(d[topic].Partitions)
}

func cleanupPolicy(t *testing.T, adm *kadm.Client, topic string) string {
	t.Helper()
	rcs, err := adm.DescribeTopicConfigs(ctx(t), topic)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rcs[0].Configs {
		if c.Key == "cleanup.policy" {
			return c.MaybeValue()
		}
	}
	return ""
}

func TestSpecs(t *testing.T) {
	tp := config.Defaults().Topics
	tp.Retention = config.Duration(48 * time.Hour)
	specs := Specs(tp, Layout{
		Sources:   []string{"defender"},
		Keyspaces: []event.Keyspace{event.KeyUser, event.KeyIP},
		Changelogs: []Changelog{
			{Stage: "correlate", Store: "sequence"},
			{Stage: "incident", Store: "groups", CoPartitionWith: tp.Alerts()},
		},
	})
	type row struct {
		name, group string
		compact     bool
		retention   string
	}
	var got []row
	for _, s := range specs {
		r := row{name: s.Name, group: s.CoPartitionGroup, compact: s.Compacted()}
		if v := s.Configs["retention.ms"]; v != nil {
			r.retention = *v
		}
		if s.Partitions != 6 || s.Replication != 1 {
			t.Errorf("%s: partitions %d replication %d", s.Name, s.Partitions, s.Replication)
		}
		got = append(got, r)
	}
	want := []row{
		{"vigil.raw.defender", "", false, "172800000"},
		{"vigil.events.user", "events", false, "172800000"},
		{"vigil.events.ip", "events", false, "172800000"},
		{"vigil.alerts", "vigil.alerts", false, "172800000"},
		{"vigil.incidents", "", true, ""},
		{"vigil.actions", "", false, "172800000"},
		{"vigil.dlq", "", false, "172800000"},
		{"vigil.entities", "", true, ""},
		{"vigil.changelog.correlate.sequence", "events", true, ""},
		{"vigil.changelog.incident.groups", "vigil.alerts", true, ""},
	}
	if !slices.Equal(got, want) {
		t.Errorf("specs:\n got %v\nwant %v", got, want)
	}
	// All keyspaces by default; no compaction when the service lacks it.
	tp.Compact = false
	for _, s := range Specs(tp, Layout{}) {
		if s.Compacted() {
			t.Errorf("%s compacted with topics.compact=false", s.Name)
		}
	}
	if n := len(Specs(tp, Layout{})); n != len(event.Keyspaces)+5 {
		t.Errorf("default layout has %d topics", n)
	}
}

func TestEnsureTopicsCreatesThenVerifies(t *testing.T) {
	adm := kafkatest.Admin(t)
	tp := testTopics(t)
	cleanupTopics(t, adm, tp.Prefix)
	specs := Specs(tp, Layout{Sources: []string{"defender"}, Changelogs: []Changelog{{Stage: "correlate", Store: "seq"}}})

	created, err := EnsureTopics(ctx(t), adm, specs)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(created, names(specs)) {
		t.Fatalf("created %v, want %v", created, names(specs))
	}
	for _, s := range specs {
		if n := partitions(t, adm, s.Name); n != 3 {
			t.Errorf("%s has %d partitions, want 3", s.Name, n)
		}
		pol := cleanupPolicy(t, adm, s.Name)
		if s.Compacted() != strings.Contains(pol, "compact") {
			t.Errorf("%s: cleanup.policy=%q, compacted spec=%v", s.Name, pol, s.Compacted())
		}
	}

	// Second run: nothing to create, nothing wrong.
	created, err = EnsureTopics(ctx(t), adm, specs)
	if err != nil || len(created) != 0 {
		t.Fatalf("second run: created %v, err %v", created, err)
	}
}

func TestEnsureTopicsNotCompacted(t *testing.T) {
	adm := kafkatest.Admin(t)
	tp := testTopics(t)
	cleanupTopics(t, adm, tp.Prefix)
	// Someone created the incidents topic by hand, without compaction.
	if _, err := adm.CreateTopic(ctx(t), 3, 1, nil, tp.Incidents()); err != nil {
		t.Fatal(err)
	}
	kafkatest.WaitForTopic(t, nil, tp.Incidents())
	specs := Specs(tp, Layout{})
	created, err := EnsureTopics(ctx(t), adm, specs)
	if !errors.Is(err, ErrNotCompacted) {
		t.Fatalf("err = %v, want ErrNotCompacted", err)
	}
	msg := err.Error()
	for _, w := range []string{tp.Incidents() + " has cleanup.policy=delete", "--entity-name " + tp.Incidents(), "cleanup.policy=compact"} {
		if !strings.Contains(msg, w) {
			t.Errorf("error lacks %q: %s", w, msg)
		}
	}
	if errors.Is(err, ErrPartitionMismatch) {
		t.Errorf("unexpected mismatch: %v", err)
	}
	// The other topics were still created.
	if slices.Contains(created, tp.Incidents()) || len(created) != len(specs)-1 {
		t.Errorf("created %v", created)
	}
}

func TestEnsureTopicsPartitionMismatch(t *testing.T) {
	adm := kafkatest.Admin(t)
	tp := testTopics(t)
	cleanupTopics(t, adm, tp.Prefix)
	changelog := tp.Changelog("correlate", "seq")
	// events.user grew to 5 partitions; its changelog stayed at 3.
	for name, n := range map[string]int32{tp.Events(event.KeyUser): 5, changelog: 3} {
		cfg := map[string]*string{}
		if name == changelog {
			cfg["cleanup.policy"] = kadm.StringPtr("compact")
		}
		if _, err := adm.CreateTopic(ctx(t), n, 1, cfg, name); err != nil {
			t.Fatal(err)
		}
		kafkatest.WaitForTopic(t, nil, name)
	}
	specs := Specs(tp, Layout{Keyspaces: []event.Keyspace{event.KeyUser, event.KeyDevice}, Changelogs: []Changelog{{Stage: "correlate", Store: "seq"}}})
	created, err := EnsureTopics(ctx(t), adm, specs)
	if !errors.Is(err, ErrPartitionMismatch) {
		t.Fatalf("err = %v, want ErrPartitionMismatch", err)
	}
	msg := err.Error()
	for _, w := range []string{
		tp.Events(event.KeyUser) + " has 5", changelog + " has 3",
		"--alter --topic " + changelog + " --partitions 5",
		"let vigil recreate",
	} {
		if !strings.Contains(msg, w) {
			t.Errorf("error lacks %q:\n%s", w, msg)
		}
	}
	// Nothing is created in a group that is already inconsistent.
	if slices.Contains(created, tp.Events(event.KeyDevice)) {
		t.Errorf("created %s in a mismatched group", tp.Events(event.KeyDevice))
	}
	if !slices.Contains(created, tp.Alerts()) {
		t.Errorf("topics outside the group not created: %v", created)
	}
}

// TestEnsureTopicsJoinsGroupCount: a changelog added later is created with
// the events topics' actual count, not the configured one.
func TestEnsureTopicsJoinsGroupCount(t *testing.T) {
	adm := kafkatest.Admin(t)
	tp := testTopics(t)
	cleanupTopics(t, adm, tp.Prefix)
	if _, err := EnsureTopics(ctx(t), adm, Specs(tp, Layout{})); err != nil {
		t.Fatal(err)
	}
	tp.Partitions = 8 // config changed since; existing events topics keep 3
	specs := Specs(tp, Layout{Changelogs: []Changelog{{Stage: "correlate", Store: "threshold"}}})
	created, err := EnsureTopics(ctx(t), adm, specs)
	if err != nil {
		t.Fatal(err)
	}
	cl := tp.Changelog("correlate", "threshold")
	if !slices.Equal(created, []string{cl}) {
		t.Fatalf("created %v", created)
	}
	if n := partitions(t, adm, cl); n != 3 {
		t.Errorf("%s has %d partitions, want the group's 3", cl, n)
	}
}

// TestEnsureTopicsConcurrent: several workers starting at once all succeed
// and each topic is created exactly once.
func TestEnsureTopicsConcurrent(t *testing.T) {
	tp := testTopics(t)
	specs := Specs(tp, Layout{Sources: []string{"entra"}, Changelogs: []Changelog{{Stage: "correlate", Store: "seq"}}})
	const workers = 4
	adms := make([]*kadm.Client, workers)
	for i := range adms {
		adms[i] = kafkatest.Admin(t)
		// Connect first, so the workers reach the broker at the same time.
		if _, err := adms[i].ListTopics(ctx(t)); err != nil {
			t.Fatal(err)
		}
	}
	cleanupTopics(t, adms[0], tp.Prefix)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		all     []string
		errs    []error
		started = make(chan struct{})
	)
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-started
			created, err := EnsureTopics(ctx(t), adms[i], specs)
			mu.Lock()
			defer mu.Unlock()
			all = append(all, created...)
			if err != nil {
				errs = append(errs, err)
			}
		}()
	}
	close(started)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("errors: %v", errs)
	}
	sort.Strings(all)
	if !slices.Equal(all, names(specs)) {
		t.Errorf("created across workers %v, want each of %v once", all, names(specs))
	}
}

func TestEnsureTopicsInvalidSpecs(t *testing.T) {
	adm := kafkatest.Admin(t)
	tests := []struct {
		name  string
		specs []TopicSpec
		want  string
	}{
		{"bad name", []TopicSpec{{Name: "has space", Partitions: 1, Replication: 1}}, `"has space" is not a valid topic name`},
		{"duplicate", []TopicSpec{{Name: "a", Partitions: 1, Replication: 1}, {Name: "a", Partitions: 1, Replication: 1}}, "listed twice"},
		{"zero partitions", []TopicSpec{{Name: "a", Partitions: 0, Replication: 1}}, "0 partitions"},
		{"zero replication", []TopicSpec{{Name: "a", Partitions: 1, Replication: 0}}, "replication 0"},
		{"group disagrees", []TopicSpec{
			{Name: "a", Partitions: 2, Replication: 1, CoPartitionGroup: "g"},
			{Name: "b", Partitions: 4, Replication: 1, CoPartitionGroup: "g"},
		}, "a (2) and b (4)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			created, err := EnsureTopics(ctx(t), adm, tt.specs)
			if !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrInvalidSpec with %q", err, tt.want)
			}
			if len(created) != 0 {
				t.Errorf("created %v from invalid specs", created)
			}
		})
	}
}

// BenchmarkEnsureTopicsExisting measures the start-up check when every
// topic already exists (the common case): one metadata and one
// describe-configs round trip.
func BenchmarkEnsureTopicsExisting(b *testing.B) {
	adm := kafkatest.Admin(b)
	tp := config.Defaults().Topics
	tp.Prefix = kafkatest.TopicPrefix(b)
	specs := Specs(tp, Layout{Sources: []string{"defender"}, Changelogs: []Changelog{{Stage: "correlate", Store: "seq"}}})
	c := context.Background()
	if _, err := EnsureTopics(c, adm, specs); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if created, err := EnsureTopics(c, adm, specs); err != nil || len(created) != 0 {
			b.Fatal(created, err)
		}
	}
}
