package app

import (
	"github.com/vigil-sec/vigil/pipeline/enrich"
	"github.com/vigil-sec/vigil/pipeline/event"
	"github.com/vigil-sec/vigil/pipeline/normalize"
)

// enricher adapts the entity table to the normalize stage.
type enricher struct{ t *enrich.Table }

func (e enricher) Txn() normalize.EntityTxn { return entityTxn{e.t.Txn()} }

func (e enricher) Enrich(ev *event.Event) error { return e.t.Enrich(ev) }

// entityTxn adapts enrich.Txn: one per normalize partition.
type entityTxn struct{ *enrich.Txn }

func (x entityTxn) Observe(ev *event.Event) ([]normalize.EntityChange, error) {
	cs, err := x.Txn.Observe(ev)
	out := make([]normalize.EntityChange, len(cs))
	for i, c := range cs {
		out[i] = normalize.EntityChange{Key: c.Key, Value: c.Value}
	}
	return out, err
}
