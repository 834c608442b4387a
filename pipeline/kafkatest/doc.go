// Package kafkatest gives integration tests a Kafka broker, and topics on it
// that do not collide with other tests.
//
// Every package that talks to Kafka tests against a real Kafka protocol
// implementation rather than a mock, because the bugs that matter (group
// rebalances, transactions, read_committed visibility, compaction) live in
// the protocol. Which broker is used depends on the environment, in this
// order:
//
//  1. VIGIL_KAFKA_BROKERS (comma separated host:port list): an Apache Kafka
//     the caller started, e.g. with deploy/kafka/kafka.sh (what `make test`
//     and CI do). It must answer within 15 s or the test fails: the caller
//     asked for that broker, so silently using another would hide the problem.
//  2. testcontainers-go's Kafka module, when a Docker engine answers a ping
//     within 2 s (DOCKER_HOST or the usual socket paths; set
//     VIGIL_KAFKATEST_DOCKER=0 to skip). The image defaults to
//     confluentinc/confluent-local (the one the module supports); override
//     with VIGIL_KAFKA_IMAGE. The container lives as long as the test binary;
//     Ryuk, or Main, removes it.
//  3. An in-process kfake cluster (github.com/twmb/franz-go/pkg/kfake): fast,
//     supports groups and transactions, no setup.
//
// With VIGIL_REQUIRE_REAL_KAFKA=1, step 3 is refused: a test that asks for a
// broker fails when neither 1 nor 2 is available. CI sets it so that a
// broken broker set-up cannot silently turn the integration suite into a
// kfake run.
//
// The broker is found once per test binary (the first call pays for it);
// the choice is written once to stderr ("vigil kafkatest: using ...") and to
// each asking test's log.
//
// Tests share the broker, so every name a test creates must be unique:
// TopicPrefix gives each test its own prefix (use it as Vigil's topic prefix
// in stage configs), and NewTopic creates a topic under it, waits until it
// has leaders and deletes it when the test ends. Group ids and transactional
// ids should carry the prefix too.
//
// On Apache Kafka a topic is briefly unknown to the broker after
// CreateTopics returns, and kadm's Metadata answers from a cache kept for
// MetadataMinAge (5 s), so an "unknown topic" seen right after creation
// sticks for 5 s. When the code under test creates its own topics, call
// WaitForTopic before using them. kfake has neither delay, so a test that
// passes on kfake only can still race on Apache Kafka: run the suite against
// deploy/kafka/kafka.sh (`make test`) before trusting it.
package kafkatest
