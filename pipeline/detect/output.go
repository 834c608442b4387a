package detect

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"

	"github.com/vigil-sec/vigil/operators"
	"github.com/vigil-sec/vigil/pipeline/alert"
	"github.com/vigil-sec/vigil/pipeline/incident"
)

// AlertLine is the JSON line of an alert: the alert's own fields (as on
// the alerts topic) after "type":"alert".
type AlertLine struct {
	Type string `json:"type"`
	*alert.Alert
}

// IncidentLine is the JSON line of an incident revision: the incident's
// fields (as on the incidents topic) after "type":"incident".
type IncidentLine struct {
	Type string `json:"type"`
	*incident.Incident
}

// sortAlerts orders alerts by event time, then rule, key and id: a total
// order, so the output and the incidents built from it do not depend on
// the order in which engines of different keyspaces fired.
func sortAlerts(as []alert.Alert) {
	slices.SortStableFunc(as, func(a, b alert.Alert) int {
		return cmp.Or(a.Time.Compare(b.Time), a.FirstTime.Compare(b.FirstTime),
			cmp.Compare(a.RuleID, b.RuleID), cmp.Compare(a.Key, b.Key), cmp.Compare(a.ID, b.ID))
	})
}

// write prints the alerts in time order, groups them into incidents in
// that order, and prints the incidents (final revisions ordered by first
// time and id, or every revision as made).
func (r *run) write(out io.Writer) error {
	w := bufio.NewWriterSize(out, 64<<10)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	sortAlerts(r.out)
	for i := range r.out {
		if err := enc.Encode(AlertLine{Type: "alert", Alert: &r.out[i]}); err != nil {
			return fmt.Errorf("detect: write alert: %w", err)
		}
	}
	r.st.Alerts = len(r.out)

	g := incident.NewGrouper(operators.NewMemStore(), r.opts.Incident)
	final := map[string]*incident.Incident{}
	var order []string
	for i := range r.out {
		in, err := g.Add(r.out[i])
		if err != nil {
			return fmt.Errorf("detect: group alert %s: %w", r.out[i].ID, err)
		}
		if in == nil {
			continue // cannot happen: ids are distinct
		}
		if r.opts.AllRevisions {
			if err := enc.Encode(IncidentLine{Type: "incident", Incident: in}); err != nil {
				return fmt.Errorf("detect: write incident: %w", err)
			}
		}
		if _, ok := final[in.ID]; !ok {
			order = append(order, in.ID)
		}
		final[in.ID] = in
	}
	r.st.Incidents = len(final)
	if !r.opts.AllRevisions {
		ins := make([]*incident.Incident, 0, len(order))
		for _, id := range order {
			ins = append(ins, final[id])
		}
		slices.SortStableFunc(ins, func(a, b *incident.Incident) int {
			return cmp.Or(a.FirstTime.Compare(b.FirstTime), cmp.Compare(a.ID, b.ID))
		})
		for _, in := range ins {
			if err := enc.Encode(IncidentLine{Type: "incident", Incident: in}); err != nil {
				return fmt.Errorf("detect: write incident: %w", err)
			}
		}
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("detect: write: %w", err)
	}
	return nil
}
