package runtime

import "github.com/twmb/franz-go/pkg/kgo"

// partitioner sends records of changelog topics to the partition they name
// (a changelog partition mirrors the input partition of the same number),
// and hashes everything else by key as the Java client does (murmur2), so
// other Kafka clients agree on where a key lives.
type partitioner struct {
	manual map[string]bool
	keyed  kgo.Partitioner
}

func newPartitioner(manual map[string]bool) kgo.Partitioner {
	return partitioner{manual: manual, keyed: kgo.StickyKeyPartitioner(nil)}
}

func (p partitioner) ForTopic(t string) kgo.TopicPartitioner {
	if p.manual[t] {
		return manualPartitioner{}
	}
	return p.keyed.ForTopic(t)
}

type manualPartitioner struct{}

func (manualPartitioner) RequiresConsistency(*kgo.Record) bool { return true }
func (manualPartitioner) Partition(r *kgo.Record, _ int) int   { return int(r.Partition) }
