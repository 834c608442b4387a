package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-sec/vigil/pipeline/enrich"
	"github.com/vigil-sec/vigil/pipeline/event"
	"github.com/vigil-sec/vigil/pipeline/kafkatest"
	"github.com/vigil-sec/vigil/pipeline/normalize"
	"github.com/vigil-sec/vigil/pipeline/runtime"
)

// Invented entities of the crash test.
const (
	crashDevice = "ws-lab-12.contoso-test.example"
	crashUser   = "dana.kim@contoso-test.example"
	crashIP     = "10.77.3.12"
)

// networkRecord is a Defender XDR DeviceNetworkEvents row in its
// streaming-API envelope: device crashDevice connects out from crashIP on
// behalf of crashUser, which teaches the table ip → device → user.
func networkRecord(ts time.Time) []byte {
	t := ts.UTC().Format(time.RFC3339Nano)
	return fmt.Appendf(nil, `{"records":[{"time":%q,"tenantId":"0b7e5c2a-1d3f-4e6a-8b9c-0d1e2f3a4b5c","operationName":"Publish","category":"AdvancedHunting-DeviceNetworkEvents","properties":{"ActionType":"ConnectionSuccess","DeviceId":"3c9e1f7a5b2d4c6e8f0a1b3c5d7e9f1a3b5c7d9e","DeviceName":%q,"InitiatingProcessAccountDomain":"contoso-test","InitiatingProcessAccountName":"dkim","InitiatingProcessAccountUpn":%q,"InitiatingProcessFileName":"msedge.exe","InitiatingProcessId":4410,"LocalIP":%q,"LocalIPType":"Private","LocalPort":50211,"Protocol":"Tcp","RemoteIP":"192.0.2.44","RemoteIPType":"Public","RemotePort":443,"RemoteUrl":"intranet.contoso-test.example","ReportId":7001,"Timestamp":%q},"Tenant":"DefaultTenant"}]}`,
		t, crashDevice, crashUser, crashIP, t)
}

// readTopic reads topic from its start at the given isolation level until
// no record arrived for quiet, and returns the records.
func readTopic(t *testing.T, topic string, iso kgo.IsolationLevel, quiet time.Duration) []*kgo.Record {
	t.Helper()
	cl := kafkatest.Client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(iso))
	var out []*kgo.Record
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		ctx, cancel := context.WithTimeout(context.Background(), quiet)
		fs := cl.PollFetches(ctx)
		cancel()
		if fs.NumRecords() == 0 {
			return out
		}
		out = append(out, fs.Records()...)
	}
	t.Fatalf("%s never went quiet", topic)
	return nil
}

// relatedOf enriches a flow from crashIP that names nobody and returns its
// related devices and users: what the table knows about the IP.
func relatedOf(t *testing.T, tb *enrich.Table, ts time.Time) ([]string, []string) {
	t.Helper()
	f := &event.Event{Time: ts, Source: "network.NSGFlow", Category: event.CatNetwork, Type: event.TypeNetwork,
		SrcIP: crashIP, DstIP: "192.0.2.44", SrcPort: 50300, DstPort: 443, Protocol: "tcp"}
	if err := tb.Enrich(f); err != nil {
		t.Fatal(err)
	}
	return f.Related.Devices, f.Related.Users
}

// A normalize worker learns ip → device → user from a record, writes the
// associations to the entities topic inside its transaction, and dies
// before the commit. The shared entity table must not keep them (the
// record was never processed as far as Kafka is concerned); after a
// restart re-processes the record, the table holds them and the entities
// topic carries each exactly once for committed readers.
func TestEntityChangesOfAbortedBatchAreForgotten(t *testing.T) {
	cl := kafkatest.Client(t)
	raw := kafkatest.NewTopic(t, cl, 1, nil)
	entities := kafkatest.NewTopic(t, cl, 1, map[string]string{"cleanup.policy": "compact"})
	topics := normalize.StageTopics{
		Raw: []string{raw},
		Events: map[event.Keyspace]string{
			event.KeyUser:   kafkatest.NewTopic(t, cl, 1, nil),
			event.KeyDevice: kafkatest.NewTopic(t, cl, 1, nil),
			event.KeyIP:     kafkatest.NewTopic(t, cl, 1, nil),
		},
		DLQ:      kafkatest.NewTopic(t, cl, 1, nil),
		Entities: entities,
	}
	brokers := kafkatest.Brokers(t)
	clientOpts := []kgo.Opt{kgo.SeedBrokers(brokers...)}
	group := kafkatest.TopicPrefix(t) + "normalize"

	tb, err := enrich.Open(t.TempDir(), enrich.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// As in App.Run: the table follows the entities topic meanwhile.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := enrich.Follow(ctx, clientOpts, entities, tb); err != nil {
			t.Errorf("follow: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait(); _ = tb.Close() })

	stage := normalize.Stage(topics, []event.Keyspace{event.KeyUser, event.KeyDevice, event.KeyIP}, enricher{tb})
	runner := func(crash func(int) bool) *runtime.Runner {
		r, err := runtime.NewRunner(stage, runtime.Options{
			ClientOpts:        clientOpts,
			Group:             group,
			TransactionalID:   group + "-a", // the restart reuses it and fences the open transaction
			Log:               zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
			IdleTick:          200 * time.Millisecond,
			CrashBeforeCommit: crash,
		})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	now := time.Now().UTC()
	var crashes atomic.Int32
	a := runner(func(records int) bool {
		if records > 0 {
			crashes.Add(1)
			return true
		}
		return false
	})
	done := make(chan error, 1)
	go func() { done <- a.Run(context.Background()) }()
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: raw, Value: networkRecord(now.Add(-time.Minute))}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, runtime.ErrCrashed) {
			t.Fatalf("worker: %v, want a crash", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("worker never crashed")
	}

	// The aborted batch's changes did reach the broker (in the open
	// transaction), so the test exercised a real abort...
	wantKeys := []string{"h" + crashIP + "\x00" + crashDevice, "u" + crashDevice + "\x00" + crashUser}
	uncommitted := readTopic(t, entities, kgo.ReadUncommitted(), time.Second)
	if got := recordKeys(uncommitted); !slices.Equal(got, wantKeys) {
		t.Fatalf("entities records of the crashed batch: %q, want %q", got, wantKeys)
	}
	// ...and the table kept none of them.
	if devs, users := relatedOf(t, tb, now); len(devs)+len(users) != 0 {
		t.Fatalf("after the abort the table still knows devices %v users %v", devs, users)
	}

	// A restart re-processes the record and commits.
	b := runner(nil)
	bctx, bcancel := context.WithCancel(context.Background())
	doneB := make(chan error, 1)
	go func() { doneB <- b.Run(bctx) }()
	defer func() {
		bcancel()
		if err := <-doneB; err != nil {
			t.Errorf("restarted worker: %v", err)
		}
	}()
	waitGroupCommitted(t, group, 1)

	devs, users := relatedOf(t, tb, now)
	if !slices.Equal(devs, []string{crashDevice}) || !slices.Equal(users, []string{crashUser}) {
		t.Fatalf("after re-processing: devices %v users %v, want [%s] [%s]", devs, users, crashDevice, crashUser)
	}
	committed := readTopic(t, entities, kgo.ReadCommitted(), 2*time.Second)
	if got := recordKeys(committed); !slices.Equal(got, wantKeys) {
		t.Errorf("committed entities records: %q, want each association once: %q", got, wantKeys)
	}
	if n := crashes.Load(); n != 1 {
		t.Errorf("%d crashes, want 1", n)
	}
}

func recordKeys(recs []*kgo.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, string(r.Key))
	}
	slices.Sort(out)
	return out
}

// waitGroupCommitted waits until group has committed n records in all.
func waitGroupCommitted(t *testing.T, group string, n int64) {
	t.Helper()
	adm := kafkatest.Admin(t)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		offs, err := adm.FetchOffsets(context.Background(), group)
		if err != nil {
			continue
		}
		var sum int64
		offs.Each(func(o kadm.OffsetResponse) { sum += max(o.At, 0) })
		if sum >= n {
			return
		}
	}
	t.Fatalf("group %s never committed %d records", group, n)
}
