// Package kafkasrc is the Kafka / Azure Event Hubs consumer connector: it
// consumes source topics (event hubs) with a consumer group and produces
// each message, unchanged, to raw.<source> on Vigil's cluster. This is the
// path of Defender XDR's streaming API and of Azure diagnostic settings,
// which both write to Event Hubs.
//
// # Delivery
//
// At-least-once, with no loss across restarts: auto-commit is off, and the
// offsets of a polled batch are committed to the source cluster only after
// ProduceSync acknowledged every record of the batch. Polling blocks
// rebalances (kgo.BlockRebalanceOnPoll) until the batch is committed, so a
// partition is never revoked between its produce and its commit. A crash
// between the two re-delivers the batch (duplicates, which normalize's
// deterministic ids absorb). A failed produce is retried with backoff
// while the batch is held; if that outlasts the group's rebalance timeout
// the member is evicted, its commit fails, and the partitions' new owner
// re-reads from the last commit — again nothing is lost.
//
// # Connecting
//
// ClientOpts carries the source cluster's options (seeds, SASL, TLS). Build
// them with kafka.ClientOpts from a config.Kafka: its
// event_hubs_connection_string sets SASL PLAIN ($ConnectionString), TLS and
// the namespace's :9093 endpoint; SCRAM and plain listeners are configured
// the same way. EventHubs is a shortcut for the common case.
//
// # Records
//
// Value and key are the source message's; headers are the raw-record
// headers plus vigil.origin = "topic/partition/offset" of the source
// message (the source message's own headers are not copied: Event Hubs
// adds its own AMQP properties there).
package kafkasrc

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-sec/vigil/pipeline/config"
	"github.com/vigil-sec/vigil/pipeline/connector"
	"github.com/vigil-sec/vigil/pipeline/kafka"
)

// HeaderOrigin names the source message of a raw record.
const HeaderOrigin = "vigil.origin"

// Defaults.
const (
	DefaultName           = "kafka"
	DefaultMaxPollRecords = 1000
)

// Consumer is the connector.
type Consumer struct {
	// ClientOpts for the source cluster (seeds, SASL, TLS); the consumer
	// adds its group options after them.
	ClientOpts []kgo.Opt
	// Topics to consume (event hub names).
	Topics []string
	// Group is the consumer group id on the source cluster (required).
	Group string
	// Source names the raw topic for every source topic, unless
	// SourceByTopic names one for that topic.
	Source        string
	SourceByTopic map[string]string
	// Prefix of Vigil's topic names (config.Topics.Prefix).
	Prefix string
	// ConnectorName; default DefaultName.
	ConnectorName string
	// StartAtEnd makes a group without committed offsets start at the end
	// of the source topics instead of their start (the default, which
	// loses nothing the source still retains).
	StartAtEnd bool
	// MaxPollRecords bounds one batch; default DefaultMaxPollRecords.
	MaxPollRecords int
	Metrics        *connector.Metrics
	Logger         zerolog.Logger
}

// EventHubs returns source-cluster options for an Event Hubs namespace
// from its connection string: SASL PLAIN with the string as password, TLS,
// and NAMESPACE.servicebus.windows.net:9093. Errors never contain the key.
func EventHubs(conn config.Secret) ([]kgo.Opt, error) {
	opts, err := kafka.ClientOpts(config.Kafka{EventHubsConnectionString: conn, ClientID: "vigil-connector"})
	if err != nil {
		return nil, fmt.Errorf("event hubs: %w", err)
	}
	return opts, nil
}

// Name implements connector.Connector.
func (c *Consumer) Name() string {
	if c.ConnectorName == "" {
		return DefaultName
	}
	return c.ConnectorName
}

func (c *Consumer) sourceOf(topic string) string {
	if s, ok := c.SourceByTopic[topic]; ok {
		return s
	}
	return c.Source
}

func (c *Consumer) validate() error {
	if len(c.Topics) == 0 {
		return errors.New("no source topics")
	}
	if c.Group == "" {
		return errors.New("no consumer group")
	}
	for _, t := range c.Topics {
		if err := connector.ValidateSource(c.sourceOf(t)); err != nil {
			return fmt.Errorf("source of topic %s: %w", t, err)
		}
	}
	return nil
}

// Run consumes until ctx is cancelled, then leaves the group and returns
// nil. It returns an error when the configuration is invalid or the
// client cannot be built; source-cluster errors are logged, counted
// (reason read) and retried.
func (c *Consumer) Run(ctx context.Context, out connector.Producer) error {
	if err := c.validate(); err != nil {
		return fmt.Errorf("kafka connector %s: %w", c.Name(), err)
	}
	start := kgo.NewOffset().AtStart()
	if c.StartAtEnd {
		start = kgo.NewOffset().AtEnd()
	}
	opts := append(append([]kgo.Opt(nil), c.ClientOpts...),
		kgo.ConsumerGroup(c.Group),
		kgo.ConsumeTopics(c.Topics...),
		kgo.ConsumeResetOffset(start),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.WithLogger(kafka.Logger(c.Logger)),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("kafka connector %s: client: %w", c.Name(), err)
	}
	defer cl.Close()
	maxPoll := c.MaxPollRecords
	if maxPoll <= 0 {
		maxPoll = DefaultMaxPollRecords
	}
	stamp := connector.Stamp{Prefix: c.Prefix, Connector: c.Name()}
	var raw []*kgo.Record
	for {
		fs := cl.PollRecords(ctx, maxPoll)
		if ctx.Err() != nil || fs.IsClientClosed() {
			cl.AllowRebalance()
			return nil
		}
		failed := false
		fs.EachError(func(topic string, p int32, err error) {
			if errors.Is(err, context.Canceled) {
				return
			}
			failed = true
			c.Metrics.Error(c.Name(), connector.ReasonRead)
			c.Logger.Warn().Err(err).Str("topic", topic).Int32("partition", p).Msg("kafka connector: fetch failed; retrying")
		})
		recs := fs.Records()
		if len(recs) == 0 {
			cl.AllowRebalance()
			if failed {
				sleep(ctx, time.Second)
			}
			continue
		}
		received := time.Now()
		raw = raw[:0]
		for _, r := range recs {
			rr := stamp.Record(c.sourceOf(r.Topic), r.Key, r.Value, received)
			rr.Headers = append(rr.Headers, kgo.RecordHeader{Key: HeaderOrigin,
				Value: []byte(r.Topic + "/" + strconv.Itoa(int(r.Partition)) + "/" + strconv.FormatInt(r.Offset, 10))})
			raw = append(raw, rr)
		}
		if err := c.produce(ctx, out, raw); err != nil {
			cl.AllowRebalance()
			return nil // only ctx cancellation ends produce retries
		}
		if err := cl.CommitRecords(ctx, recs...); err != nil {
			// Not fatal: the batch will be consumed again (duplicates).
			c.Metrics.Error(c.Name(), connector.ReasonCommit)
			c.Logger.Warn().Err(err).Int("records", len(recs)).Msg("kafka connector: commit failed; the batch will be re-delivered")
		}
		cl.AllowRebalance()
	}
}

// produce retries until the batch is acknowledged or ctx is cancelled.
func (c *Consumer) produce(ctx context.Context, out connector.Producer, raw []*kgo.Record) error {
	backoff := 250 * time.Millisecond
	for {
		err := connector.Produce(ctx, out, c.Metrics, c.Name(), raw...)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.Logger.Error().Err(err).Int("records", len(raw)).Msg("kafka connector: produce failed; retrying")
		if !sleep(ctx, backoff) {
			return ctx.Err()
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Consumer is a connector.Connector.
var _ connector.Connector = (*Consumer)(nil)
