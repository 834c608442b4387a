package operators

import (
	"encoding/json"

	"github.com/vigil-sec/vigil/pipeline/alert"
	"github.com/vigil-sec/vigil/pipeline/event"
	"github.com/vigil-sec/vigil/rules"
)

// AlertEvent turns an alert into the event that re-enters the correlate
// stage so other rules can chain on it (FORMAT.md "Chaining"): category and
// type "alert", Source "vigil.alert", Action the rule id, the first entity
// of each type in the typed fields and all of them in Related. The stage
// writes it to events.<ks> once per key of Keys(ks).
func AlertEvent(a *alert.Alert) event.Event {
	ev := event.Event{
		ID: a.ID, Time: a.Time, Source: rules.AlertSource, Category: event.CatAlert,
		Type: event.TypeAlert, Action: a.RuleID, Severity: string(a.Severity), Title: a.Title,
	}
	add := func(list *[]string, v string) {
		for _, x := range *list {
			if x == v {
				return
			}
		}
		*list = append(*list, v)
	}
	for _, en := range a.Entities {
		switch en.Type {
		case alert.EntityUser:
			if ev.User == "" {
				ev.User = en.Value
			}
			add(&ev.Related.Users, en.Value)
		case alert.EntityDevice:
			if ev.Device == "" {
				ev.Device = en.Value
			}
			add(&ev.Related.Devices, en.Value)
		case alert.EntityIP:
			if ev.SrcIP == "" {
				ev.SrcIP = en.Value
			}
			add(&ev.Related.IPs, en.Value)
		case alert.EntityResource:
			if ev.Resource == "" {
				ev.Resource = en.Value
			}
		case alert.EntityFile:
			if ev.File.SHA256 == "" {
				ev.File.SHA256 = en.Value
			}
		case alert.EntityProcess:
			if ev.Process.CommandLine == "" {
				ev.Process.CommandLine = en.Value
			}
		case alert.EntityURL:
			if ev.URL == "" {
				ev.URL = en.Value
			}
		case alert.EntityDomain:
			if ev.Domain == "" {
				ev.Domain = en.Value
			}
		case alert.EntityApp:
			if ev.App == "" {
				ev.App = en.Value
			}
		}
	}
	raw, err := json.Marshal(map[string]any{
		"rule_id": a.RuleID, "rule_version": a.RuleVersion, "severity": a.Severity,
		"tactics": a.Tactics, "techniques": a.Techniques, "keyspace": a.Keyspace, "key": a.Key,
		"first_time": a.FirstTime,
	})
	if err == nil {
		ev.Raw = raw
	}
	return ev
}
