package detect

import (
	"errors"
	"fmt"
	"os"

	"github.com/vigil-sec/vigil/pipeline/enrich"
	"github.com/vigil-sec/vigil/pipeline/event"
)

// Entities is an entity table private to one detect run: it starts
// empty and learns only from the run's inputs, in event-time order, as
// the normalize stage's table learns from the stream. It lives in a
// temporary directory that Close removes.
type Entities struct {
	tbl *enrich.Table
	dir string
}

// OpenEntities opens an empty entity table in a new directory under
// parent ("" = os.TempDir()).
func OpenEntities(parent string, opts enrich.Options) (*Entities, error) {
	dir, err := os.MkdirTemp(parent, "vigil-detect-entities-")
	if err != nil {
		return nil, fmt.Errorf("entity table: %w", err)
	}
	tbl, err := enrich.Open(dir, opts)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("entity table: %w", err)
	}
	return &Entities{tbl: tbl, dir: dir}, nil
}

// Enrich is what the normalize stage does to each event before keying:
// Observe (learn what the event asserts) then Enrich (add what the table
// associates with its entities). Use it as Options.Enrich. Observe's
// changes are dropped: there is no entities topic to publish them to.
func (e *Entities) Enrich(ev *event.Event) error {
	if _, err := e.tbl.Observe(ev); err != nil {
		return fmt.Errorf("entity table: observe: %w", err)
	}
	if err := e.tbl.Enrich(ev); err != nil {
		return fmt.Errorf("entity table: enrich: %w", err)
	}
	return nil
}

// Dir is the table's directory (removed by Close).
func (e *Entities) Dir() string { return e.dir }

// Close closes the table and removes its directory.
func (e *Entities) Close() error {
	return errors.Join(e.tbl.Close(), os.RemoveAll(e.dir))
}
