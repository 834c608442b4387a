package rules

import "github.com/vigil-sec/vigil/pipeline/event"

// Env is the environment expressions run against: the event's fields,
// promoted from the embedded *event.Event, with the two named string types
// (Category, Outcome) re-exposed as plain strings so that rule authors can
// write `Outcome == "failure"` (expr-lang refuses comparing a named type
// with a string literal).
//
// The engine builds one Env per event and reuses it for every step the
// event is dispatched to ("box the typed event once").
type Env struct {
	*event.Event
	Category string
	Outcome  string

	gen uint64 // counts Resets: a Frame's FieldView belongs to one event
}

// Reset points the environment at ev.
func (e *Env) Reset(ev *event.Event) {
	e.Event = ev
	e.gen++
	e.Category = string(ev.Category)
	e.Outcome = string(ev.Outcome)
}

// NewEnv returns an environment for ev.
func NewEnv(ev *event.Event) *Env {
	e := &Env{}
	e.Reset(ev)
	return e
}
