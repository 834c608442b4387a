// Package kafka sets up Vigil's Kafka clients and topics with franz-go.
//
//   - ClientOpts turns config.Kafka into kgo options: seed brokers, client
//     id, SASL (PLAIN, SCRAM-SHA-256/512; Azure Event Hubs is PLAIN with the
//     connection string), TLS from PEM files, producer compression. Roles
//     (consumer group, transactional producer, admin) add their own options.
//   - Logger adapts zerolog to kgo.Logger (franz-go has no zerolog plugin).
//   - Metrics hooks franz-go's kprom plugin into an injected Prometheus
//     registerer; see its doc for the metric names and the `client` label.
//   - Specs lists the topics of DESIGN.md for a configuration, and
//     EnsureTopics creates the missing ones and verifies the existing ones
//     (compaction where required, equal partition counts within a
//     co-partition group), which `vigil topics ensure` and `vigil dev` run.
//
// # Co-partitioning
//
// A worker owns partition N of every events.<keyspace> topic and the
// changelog partitions of the state it builds from them. Kafka's default
// partitioner maps a key to murmur2(key) mod partitions, so a key lands on
// the same partition number in two topics only when both have the same
// count. TopicSpec.CoPartitionGroup names such a set; EnsureTopics refuses
// a cluster where a group's counts differ and says how to fix it, because
// running on it would silently split one user's story across workers.
package kafka
