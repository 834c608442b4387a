package enrich

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Follow consumes the entities topic from its start and applies every
// record to t, until ctx is cancelled (then it returns nil). Every worker
// follows every partition, without a consumer group: each keeps a full
// copy of the table. It reads committed records only, so associations of
// an aborted normalize transaction are never applied.
//
// A record that is not a valid entities record is logged and skipped; it
// must not stop the table from following the others. clientOpts carry the
// seeds, TLS and SASL; Follow adds the consuming options.
func Follow(ctx context.Context, clientOpts []kgo.Opt, topic string, t *Table) error {
	opts := append(append([]kgo.Opt(nil), clientOpts...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("enrich: follow %s: client: %w", topic, err)
	}
	defer cl.Close()
	log := t.opts.Logger.With().Str("component", "enrich").Str("topic", topic).Logger()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if fs.IsClientClosed() {
			return errors.New("enrich: follow " + topic + ": client closed")
		}
		fs.EachError(func(tp string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				log.Warn().Err(err).Int32("partition", p).Msg("fetch")
			}
		})
		fs.EachRecord(func(r *kgo.Record) {
			if err := t.Apply(r.Key, r.Value); err != nil {
				log.Warn().Err(err).Int32("partition", r.Partition).Int64("offset", r.Offset).Msg("skip entities record")
			}
		})
	}
}
