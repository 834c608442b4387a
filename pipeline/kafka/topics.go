package kafka

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/vigil-sec/vigil/pipeline/config"
	"github.com/vigil-sec/vigil/pipeline/event"
)

// TopicSpec is a topic Vigil needs and how it must look.
type TopicSpec struct {
	Name string
	// Partitions to create the topic with (≥ 1). A missing member of a
	// co-partition group is created with the group's existing count instead.
	Partitions int32
	// Replication factor to create with; -1 lets the broker decide.
	Replication int16
	// Configs are passed at creation. A "cleanup.policy" containing
	// "compact" is also required of an existing topic.
	Configs map[string]*string
	// CoPartitionGroup names topics whose partition N must hold the same
	// keys: the keyed events topics and the changelogs of state built from
	// them. Members must have equal partition counts. Empty: no group.
	CoPartitionGroup string
}

// Compacted reports whether the spec asks for log compaction.
func (s TopicSpec) Compacted() bool {
	v, ok := s.Configs["cleanup.policy"]
	return ok && v != nil && strings.Contains(*v, "compact")
}

// Errors EnsureTopics wraps, so a caller can tell a layout problem an
// operator must fix from a broker that is unreachable.
var (
	// ErrPartitionMismatch: co-partitioned topics have different counts.
	ErrPartitionMismatch = errors.New("co-partitioned topics differ in partition count")
	// ErrNotCompacted: a topic that must be compacted is not.
	ErrNotCompacted = errors.New("topic is not compacted")
	// ErrInvalidSpec: the requested specs themselves are inconsistent.
	ErrInvalidSpec = errors.New("invalid topic spec")
)

var topicName = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)

// Co-partition groups of the standard layout.
const (
	GroupEvents = "events"
)

// Changelog declares a state store whose changelog topic Specs must add.
type Changelog struct {
	Stage, Store string
	// CoPartitionWith is the input topic whose partitions the store is
	// partitioned by; the changelog joins that topic's co-partition group.
	// Empty: the events group (state of correlate over events.<keyspace>).
	CoPartitionWith string
}

// Layout says which optional topics a deployment needs.
type Layout struct {
	// Sources whose raw.<source> topics to create.
	Sources []string
	// Keyspaces whose events.<keyspace> topics to create; nil = all.
	Keyspaces []event.Keyspace
	// Changelogs of the stages' state stores.
	Changelogs []Changelog
}

// Specs returns the topics of DESIGN.md for the given topic settings and
// layout: raw.<source>, events.<keyspace> (one co-partition group with the
// correlate changelogs), alerts, incidents (compacted), actions, dlq,
// entities (compacted) and the changelogs (compacted).
func Specs(t config.Topics, l Layout) []TopicSpec {
	var retention map[string]*string
	if t.Retention > 0 {
		retention = map[string]*string{"retention.ms": kadm.StringPtr(strconv.FormatInt(t.Retention.D().Milliseconds(), 10))}
	}
	compact := func() map[string]*string {
		if !t.Compact {
			return nil
		}
		return map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}
	}
	spec := func(name string, cfg map[string]*string, group string) TopicSpec {
		// Each spec owns its Configs map, so a caller may adjust one topic.
		return TopicSpec{Name: name, Partitions: t.Partitions, Replication: t.ReplicationFactor, Configs: maps.Clone(cfg), CoPartitionGroup: group}
	}
	var out []TopicSpec
	for _, s := range l.Sources {
		out = append(out, spec(t.Raw(s), retention, ""))
	}
	kss := l.Keyspaces
	if kss == nil {
		kss = event.Keyspaces
	}
	for _, ks := range kss {
		out = append(out, spec(t.Events(ks), retention, GroupEvents))
	}
	out = append(out,
		spec(t.Alerts(), retention, ""),
		spec(t.Incidents(), compact(), ""),
		spec(t.Actions(), retention, ""),
		spec(t.DLQ(), retention, ""),
		spec(t.Entities(), compact(), ""),
	)
	for _, c := range l.Changelogs {
		group := GroupEvents
		if c.CoPartitionWith != "" {
			group = ""
			for i := range out {
				if out[i].Name == c.CoPartitionWith {
					if out[i].CoPartitionGroup == "" {
						out[i].CoPartitionGroup = c.CoPartitionWith
					}
					group = out[i].CoPartitionGroup
				}
			}
			if group == "" { // input not in this plan: group by its name
				group = c.CoPartitionWith
			}
		}
		out = append(out, spec(t.Changelog(c.Stage, c.Store), compact(), group))
	}
	return out
}

// EnsureTopics creates the topics in specs that do not exist and verifies
// those that do. It returns the names it created (sorted) and, when
// something needs an operator, an error listing every problem with its
// fix:
//
//   - a topic whose spec asks for compaction but whose cleanup.policy lacks
//     "compact" (ErrNotCompacted);
//   - members of a co-partition group with different partition counts
//     (ErrPartitionMismatch), which would send one key to different
//     partition numbers in, say, events.user and its changelog.
//
// A missing member of a co-partition group whose existing members agree is
// created with their count rather than its spec's, so adding a changelog to
// a cluster whose events topics were grown does not create a mismatch. A
// topic created concurrently by another process (TOPIC_ALREADY_EXISTS) is
// verified like any existing one. Existing topics are never altered.
func EnsureTopics(ctx context.Context, adm *kadm.Client, specs []TopicSpec) (created []string, err error) {
	if err := validateSpecs(specs); err != nil {
		return nil, err
	}
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	counts, missing, problems, err := describe(ctx, adm, names)
	if err != nil {
		return nil, err
	}

	// Groups whose existing members disagree get nothing created: any
	// count would be wrong for some member. The mismatch is reported below.
	groupCount := map[string]int32{}
	groupBad := map[string]bool{}
	for _, s := range specs {
		n, ok := counts[s.Name]
		if s.CoPartitionGroup == "" || !ok {
			continue
		}
		if c, seen := groupCount[s.CoPartitionGroup]; seen && c != n {
			groupBad[s.CoPartitionGroup] = true
		}
		groupCount[s.CoPartitionGroup] = n
	}

	var raced []string
	for _, s := range specs {
		if !missing[s.Name] || groupBad[s.CoPartitionGroup] {
			continue
		}
		p := s.Partitions
		if c, ok := groupCount[s.CoPartitionGroup]; ok && s.CoPartitionGroup != "" {
			p = c
		}
		resp, cerr := adm.CreateTopic(ctx, p, s.Replication, s.Configs, s.Name)
		switch {
		case errors.Is(cerr, kerr.TopicAlreadyExists):
			raced = append(raced, s.Name)
		case cerr != nil:
			msg := cerr.Error()
			if resp.ErrMessage != "" {
				msg += ": " + resp.ErrMessage
			}
			problems = append(problems, fmt.Errorf("create topic %s (%d partitions, replication %d): %s", s.Name, p, s.Replication, msg))
		default:
			created = append(created, s.Name)
			if resp.NumPartitions > 0 {
				p = resp.NumPartitions
			}
			counts[s.Name] = p
			if s.CoPartitionGroup != "" {
				if _, ok := groupCount[s.CoPartitionGroup]; !ok {
					groupCount[s.CoPartitionGroup] = p
				}
			}
		}
	}
	// Topics another process created between our describe and create:
	// metadata may lag the creation briefly, so ask a few times.
	for attempt := 0; len(raced) > 0; attempt++ {
		rc, stillMissing, rp, err := describe(ctx, adm, raced)
		if err != nil {
			return created, err
		}
		problems = append(problems, rp...)
		for n, c := range rc {
			counts[n] = c
		}
		raced = raced[:0]
		for n := range stillMissing {
			if attempt == 9 {
				problems = append(problems, fmt.Errorf("topic %s: the broker said it exists but does not describe it; retry", n))
				continue
			}
			raced = append(raced, n)
		}
		if len(raced) > 0 {
			select {
			case <-ctx.Done():
				return created, ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}

	// A created topic takes a moment to reach every broker's metadata;
	// return only once it describes, so callers can use it at once.
	if err := waitVisible(ctx, adm, created); err != nil {
		problems = append(problems, err)
	}
	problems = append(problems, verifyCompaction(ctx, adm, specs, counts, created)...)
	problems = append(problems, verifyGroups(specs, counts)...)
	sort.Strings(created)
	if len(problems) > 0 {
		return created, errors.Join(problems...)
	}
	return created, nil
}

// waitVisible polls until every named topic describes with a leader for
// each partition, for up to 30 seconds.
func waitVisible(ctx context.Context, adm *kadm.Client, names []string) error {
	pending := slices.Clone(names)
	deadline := time.Now().Add(30 * time.Second)
	for len(pending) > 0 {
		details, err := adm.ListTopics(kadm.WithAuthorizedOps(ctx), pending...)
		if err == nil {
			pending = slices.DeleteFunc(pending, func(n string) bool {
				d, ok := details[n]
				if !ok || d.Err != nil || len(d.Partitions) == 0 {
					return false
				}
				for _, p := range d.Partitions {
					if p.Leader < 0 || p.Err != nil {
						return false
					}
				}
				return true
			})
		}
		if len(pending) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("topics %v were created but are not visible in the cluster metadata after 30s", pending)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

func validateSpecs(specs []TopicSpec) error {
	var errs []error
	seen := map[string]bool{}
	groupParts := map[string]TopicSpec{}
	for _, s := range specs {
		switch {
		case !topicName.MatchString(s.Name) || len(s.Name) > 249 || s.Name == "." || s.Name == "..":
			errs = append(errs, fmt.Errorf("%w: %q is not a valid topic name (letters, digits, '.', '_', '-'; at most 249)", ErrInvalidSpec, s.Name))
		case seen[s.Name]:
			errs = append(errs, fmt.Errorf("%w: topic %s listed twice", ErrInvalidSpec, s.Name))
		}
		seen[s.Name] = true
		if s.Partitions < 1 {
			errs = append(errs, fmt.Errorf("%w: topic %s: %d partitions; set topics.partitions to 1 or more", ErrInvalidSpec, s.Name, s.Partitions))
		}
		if s.Replication == 0 || s.Replication < -1 {
			errs = append(errs, fmt.Errorf("%w: topic %s: replication %d; use 1 or more, or -1 for the broker default", ErrInvalidSpec, s.Name, s.Replication))
		}
		if g := s.CoPartitionGroup; g != "" {
			if first, ok := groupParts[g]; ok && first.Partitions != s.Partitions {
				errs = append(errs, fmt.Errorf("%w: co-partitioned topics %s (%d) and %s (%d) are specified with different partition counts",
					ErrInvalidSpec, first.Name, first.Partitions, s.Name, s.Partitions))
			} else if !ok {
				groupParts[g] = s
			}
		}
	}
	return errors.Join(errs...)
}

// describe returns the partition counts of the named topics that exist and
// the set that does not.
func describe(ctx context.Context, adm *kadm.Client, names []string) (counts map[string]int32, missing map[string]bool, problems []error, err error) {
	// WithAuthorizedOps makes kadm bypass its metadata cache, which would
	// otherwise keep answering "unknown topic" for one just created.
	details, err := adm.ListTopics(kadm.WithAuthorizedOps(ctx), names...)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("list topics: %w", err)
	}
	counts = map[string]int32{}
	missing = map[string]bool{}
	for _, n := range names {
		d, ok := details[n]
		switch {
		case !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition):
			missing[n] = true
		case d.Err != nil:
			problems = append(problems, fmt.Errorf("describe topic %s: %w", n, d.Err))
		default:
			counts[n] = int32(len(d.Partitions))
		}
	}
	return counts, missing, problems, nil
}

func verifyCompaction(ctx context.Context, adm *kadm.Client, specs []TopicSpec, counts map[string]int32, created []string) []error {
	var check []string
	for _, s := range specs {
		if _, exists := counts[s.Name]; exists && s.Compacted() && !slices.Contains(created, s.Name) {
			check = append(check, s.Name)
		}
	}
	if len(check) == 0 {
		return nil
	}
	rcs, err := describeConfigs(ctx, adm, check)
	if err != nil {
		return []error{fmt.Errorf("describe topic configs: %w", err)}
	}
	var problems []error
	for _, rc := range rcs {
		if rc.Err != nil {
			problems = append(problems, fmt.Errorf("describe configs of %s: %w", rc.Name, rc.Err))
			continue
		}
		policy := "delete" // Kafka's default when the broker omits it
		for _, c := range rc.Configs {
			if c.Key == "cleanup.policy" && c.Value != nil {
				policy = *c.Value
			}
		}
		if !strings.Contains(policy, "compact") {
			problems = append(problems, fmt.Errorf("%w: %s has cleanup.policy=%s but Vigil keeps only the latest record per key there; "+
				"fix: kafka-configs.sh --bootstrap-server BROKER --alter --entity-type topics --entity-name %s --add-config cleanup.policy=compact",
				ErrNotCompacted, rc.Name, policy, rc.Name))
		}
	}
	return problems
}

// describeConfigs retries briefly: right after a concurrent creation a
// broker may not yet serve the new topic's configs.
func describeConfigs(ctx context.Context, adm *kadm.Client, names []string) (kadm.ResourceConfigs, error) {
	var rcs kadm.ResourceConfigs
	var err error
	for attempt := range 5 {
		rcs, err = adm.DescribeTopicConfigs(ctx, names...)
		retry := err != nil
		for _, rc := range rcs {
			retry = retry || errors.Is(rc.Err, kerr.UnknownTopicOrPartition)
		}
		if !retry {
			return rcs, nil
		}
		select {
		case <-ctx.Done():
			return rcs, ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 100 * time.Millisecond):
		}
	}
	return rcs, err
}

func verifyGroups(specs []TopicSpec, counts map[string]int32) []error {
	groups := map[string][]string{}
	var order []string
	for _, s := range specs {
		if s.CoPartitionGroup == "" {
			continue
		}
		if _, ok := counts[s.Name]; !ok {
			continue
		}
		if _, ok := groups[s.CoPartitionGroup]; !ok {
			order = append(order, s.CoPartitionGroup)
		}
		groups[s.CoPartitionGroup] = append(groups[s.CoPartitionGroup], s.Name)
	}
	var problems []error
	for _, g := range order {
		members := groups[g]
		maxN := int32(0)
		distinct := map[int32]bool{}
		for _, m := range members {
			distinct[counts[m]] = true
			maxN = max(maxN, counts[m])
		}
		if len(distinct) < 2 {
			continue
		}
		var have, grow []string
		for _, m := range members {
			have = append(have, fmt.Sprintf("%s has %d", m, counts[m]))
			if counts[m] < maxN {
				grow = append(grow, m)
			}
		}
		var fix []string
		for _, m := range grow {
			fix = append(fix, fmt.Sprintf("kafka-topics.sh --bootstrap-server BROKER --alter --topic %s --partitions %d", m, maxN))
		}
		problems = append(problems, fmt.Errorf("%w (group %q): %s. Partition N of each must hold the same keys, so the counts must be equal. "+
			"Fix: grow the smaller topics to %d (%s) — growing re-maps keys, so stop Vigil first and expect state for moved keys to be rebuilt; "+
			"or, if their data may be lost, delete the smaller topics and let vigil recreate them with the group's count",
			ErrPartitionMismatch, g, strings.Join(have, ", "), maxN, strings.Join(fix, "; ")))
	}
	return problems
}
