package incident

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Watch consumes the incidents topic as any downstream consumer would
// (read_committed, from the start) and calls fn with each committed
// incident revision, until ctx is cancelled. opts connect to the cluster.
func Watch(ctx context.Context, opts []kgo.Opt, topic string, fn func(*Incident)) error {
	all := append(append([]kgo.Opt(nil), opts...),
		kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	cl, err := kgo.NewClient(all...)
	if err != nil {
		return fmt.Errorf("incident watch: %w", err)
	}
	defer cl.Close()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		for _, fe := range fs.Errors() {
			if !errors.Is(fe.Err, context.Canceled) {
				return fmt.Errorf("incident watch: fetch %s: %w", fe.Topic, fe.Err)
			}
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Value == nil {
				return // tombstone
			}
			var in Incident
			if json.Unmarshal(r.Value, &in) == nil {
				fn(&in)
			}
		})
	}
}

// Latest keeps the newest revision of the most recently updated incidents,
// bounded in memory (an LRU), for the API and the console.
type Latest struct{ c *lru.Cache[string, *Incident] }

// NewLatest keeps up to n incidents.
func NewLatest(n int) *Latest {
	c, _ := lru.New[string, *Incident](n)
	return &Latest{c: c}
}

// Add records a revision unless a newer one is held.
func (l *Latest) Add(in *Incident) {
	if old, ok := l.c.Peek(in.ID); ok && old.Revision > in.Revision {
		return
	}
	l.c.Add(in.ID, in)
}

// Get returns an incident by id.
func (l *Latest) Get(id string) (*Incident, bool) { return l.c.Get(id) }

// List returns the held incidents, most recently updated first.
func (l *Latest) List() []*Incident {
	keys := l.c.Keys() // oldest first
	out := make([]*Incident, 0, len(keys))
	for i := len(keys) - 1; i >= 0; i-- {
		if in, ok := l.c.Peek(keys[i]); ok {
			out = append(out, in)
		}
	}
	return out
}

// Line renders an incident as one readable line: severity, title,
// entities, ATT&CK.
func Line(in *Incident) string {
	var ents []string
	for _, e := range in.Entities {
		ents = append(ents, string(e.Type)+"="+e.Value)
	}
	return fmt.Sprintf("INCIDENT %s [%s] %s | entities: %s | ATT&CK: %s | alerts: %d (rev %d)",
		in.ID, strings.ToUpper(string(in.Severity)), in.Title, strings.Join(ents, ", "),
		strings.Join(append(append([]string(nil), in.Tactics...), in.Techniques...), " "), len(in.Alerts), in.Revision)
}
