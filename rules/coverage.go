package rules

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
)

// TechniqueCoverage is one technique and the enabled rules mapped to it.
type TechniqueCoverage struct {
	ID      string
	Name    string
	Tactics []string
	Rules   []string
}

// CoverageReport lists the ATT&CK techniques the loaded rules cover.
type CoverageReport struct {
	AttackVersion string
	Techniques    []TechniqueCoverage // sorted by id
	// Tactics maps a tactic short name to the number of techniques covered.
	Tactics map[string]int
}

// Coverage computes the ATT&CK coverage of the enabled rules of set.
func Coverage(set *Set) CoverageReport {
	by := map[string]*TechniqueCoverage{}
	for _, r := range set.Rules {
		if r.Disabled {
			continue
		}
		for _, id := range r.Techniques {
			tc := by[id]
			if tc == nil {
				t, _ := LookupTechnique(id)
				tc = &TechniqueCoverage{ID: id, Name: TechniqueName(id), Tactics: t.Tactics}
				by[id] = tc
			}
			tc.Rules = append(tc.Rules, r.ID)
		}
	}
	rep := CoverageReport{AttackVersion: AttackVersion, Tactics: map[string]int{}}
	for _, tc := range by {
		sort.Strings(tc.Rules)
		rep.Techniques = append(rep.Techniques, *tc)
		for _, t := range tc.Tactics {
			rep.Tactics[t]++
		}
	}
	sort.Slice(rep.Techniques, func(i, j int) bool { return rep.Techniques[i].ID < rep.Techniques[j].ID })
	return rep
}

// WriteText prints the report: tactics in kill-chain order with counts,
// then one line per technique.
func (c CoverageReport) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "ATT&CK v%s coverage: %d techniques\n", c.AttackVersion, len(c.Techniques))
	for _, t := range Tactics {
		fmt.Fprintf(&b, "  %-22s %3d\n", t.ShortName, c.Tactics[t.ShortName])
	}
	for _, t := range c.Techniques {
		fmt.Fprintf(&b, "%-10s %-55s %s\n", t.ID, t.Name, strings.Join(t.Rules, ", "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// navigatorLayer is the subset of the ATT&CK Navigator layer format (4.5)
// that Vigil writes.
type navigatorLayer struct {
	Name        string            `json:"name"`
	Versions    map[string]string `json:"versions"`
	Domain      string            `json:"domain"`
	Description string            `json:"description"`
	Techniques  []navTechnique    `json:"techniques"`
	Gradient    navGradient       `json:"gradient"`
	Legend      []any             `json:"legendItems"`
}

type navTechnique struct {
	TechniqueID string `json:"techniqueID"`
	Tactic      string `json:"tactic,omitempty"`
	Score       int    `json:"score"`
	Comment     string `json:"comment"`
	Enabled     bool   `json:"enabled"`
}

type navGradient struct {
	Colors   []string `json:"colors"`
	MinValue int      `json:"minValue"`
	MaxValue int      `json:"maxValue"`
}

// WriteNavigatorLayer writes an ATT&CK Navigator layer (JSON) scoring
// each covered technique by the number of rules mapped to it, once per
// tactic it belongs to.
func WriteNavigatorLayer(w io.Writer, set *Set, name string) error {
	rep := Coverage(set)
	layer := navigatorLayer{
		Name:        name,
		Versions:    map[string]string{"attack": AttackVersion, "navigator": "5.1.0", "layer": "4.5"},
		Domain:      "enterprise-attack",
		Description: "Techniques covered by Vigil rules; score = number of rules.",
		Gradient:    navGradient{Colors: []string{"#ffffff", "#66b1ff"}, MinValue: 0, MaxValue: 1},
		Legend:      []any{},
	}
	for _, t := range rep.Techniques {
		if len(t.Rules) > layer.Gradient.MaxValue {
			layer.Gradient.MaxValue = len(t.Rules)
		}
		for _, tac := range t.Tactics {
			layer.Techniques = append(layer.Techniques, navTechnique{
				TechniqueID: t.ID, Tactic: tac, Score: len(t.Rules), Enabled: true,
				Comment: strings.Join(t.Rules, ", "),
			})
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(layer); err != nil {
		return fmt.Errorf("navigator layer: %w", err)
	}
	return nil
}
