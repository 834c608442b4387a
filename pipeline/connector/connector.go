package connector

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Header keys every raw record carries (see the package doc).
const (
	HeaderSource    = "vigil.source"
	HeaderConnector = "vigil.connector"
	HeaderReceived  = "vigil.received"
)

// DefaultPrefix is Vigil's default topic prefix, for callers (flags,
// tests) that have no configuration to take it from.
const DefaultPrefix = "vigil."

// Producer writes raw records and waits until the broker acknowledged
// them. *kgo.Client satisfies it.
type Producer interface {
	ProduceSync(ctx context.Context, rs ...*kgo.Record) kgo.ProduceResults
}

// Connector reads one kind of source and produces what it reads to
// raw.<source> topics through out. Run blocks until ctx is cancelled (then
// it returns nil) or until it cannot go on (then it returns why).
type Connector interface {
	Name() string
	Run(ctx context.Context, out Producer) error
}

// ErrInvalidSource is wrapped by ValidateSource: the name cannot be a topic
// suffix. HTTP ingest answers 400 with it.
var ErrInvalidSource = errors.New("invalid source name")

// MaxSourceLen bounds a source name so that prefix + "raw." + source stays
// well under Kafka's 249-character topic-name limit.
const MaxSourceLen = 200

// ValidateSource checks that s can be used as the suffix of a raw topic:
// 1 to MaxSourceLen characters of [A-Za-z0-9._-], starting with a letter
// or digit, without "..". The rule is stricter than Kafka's own so that a
// source name typed in a URL cannot name "." or ".." or an internal topic.
func ValidateSource(s string) error {
	if s == "" {
		return fmt.Errorf("%w: empty", ErrInvalidSource)
	}
	if len(s) > MaxSourceLen {
		return fmt.Errorf("%w: longer than %d characters", ErrInvalidSource, MaxSourceLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if i == 0 && !alnum {
			return fmt.Errorf("%w: %q must start with a letter or digit", ErrInvalidSource, s)
		}
		if !alnum && c != '.' && c != '_' && c != '-' {
			return fmt.Errorf("%w: %q has character %q (allowed: letters, digits, '.', '_', '-')", ErrInvalidSource, s, c)
		}
		if c == '.' && i > 0 && s[i-1] == '.' {
			return fmt.Errorf("%w: %q contains \"..\"", ErrInvalidSource, s)
		}
	}
	return nil
}

// RawTopic is the topic a connector writes source's records to: prefix +
// "raw." + source, the same name config.Topics.Raw builds. The prefix is
// used as given (callers pass config.Topics.Prefix, DefaultPrefix unless
// configured otherwise), so that an empty prefix configured on purpose
// stays empty.
func RawTopic(prefix, source string) string { return prefix + "raw." + source }

// Stamp builds raw records for one connector instance.
type Stamp struct {
	// Prefix of topic names, used as given (see RawTopic).
	Prefix string
	// Connector is the instance name written to vigil.connector.
	Connector string
}

// Record returns the raw record of value, received at received, for
// source. The record keeps value and key (no copy): the caller must not
// modify them until the record has been produced.
func (s Stamp) Record(source string, key, value []byte, received time.Time) *kgo.Record {
	return &kgo.Record{
		Topic: RawTopic(s.Prefix, source),
		Key:   key,
		Value: value,
		Headers: []kgo.RecordHeader{
			{Key: HeaderSource, Value: []byte(source)},
			{Key: HeaderConnector, Value: []byte(s.Connector)},
			{Key: HeaderReceived, Value: []byte(received.UTC().Format(time.RFC3339Nano))},
		},
	}
}

// Produce sends rs with ProduceSync and returns the first error, wrapped
// with the topic it concerns. On success it counts the records on m
// (which may be nil).
func Produce(ctx context.Context, out Producer, m *Metrics, connector string, rs ...*kgo.Record) error {
	if len(rs) == 0 {
		return nil
	}
	for _, r := range out.ProduceSync(ctx, rs...) {
		if r.Err != nil {
			m.Error(connector, ReasonProduce)
			topic := ""
			if r.Record != nil {
				topic = r.Record.Topic
			}
			return fmt.Errorf("produce to %s: %w", topic, r.Err)
		}
	}
	m.Produced(connector, rs)
	return nil
}
