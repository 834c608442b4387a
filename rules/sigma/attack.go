package sigma

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/vigil-sec/vigil/pipeline/alert"
	"github.com/vigil-sec/vigil/rules"
)

var (
	techTag  = regexp.MustCompile(`^t\d{4}(\.\d{3})?$`)
	otherTag = regexp.MustCompile(`^[gs]\d{4}$`) // groups and software
)

// attackOf converts Sigma's attack.* tags: attack.t1059.001 -> T1059.001,
// attack.execution (or attack.defense_evasion) -> the tactic id (TA0002).
// Techniques missing from rules/attack.go fall back to their parent, else
// are dropped with a warning; tactics missing from the tags are taken from
// the techniques, as lint requires both.
func attackOf(tags []string, warn func(string)) (tactics, techniques []string) {
	addU := func(list *[]string, v string) {
		for _, x := range *list {
			if x == v {
				return
			}
		}
		*list = append(*list, v)
	}
	for _, t := range tags {
		t = strings.ToLower(strings.TrimSpace(t))
		rest, ok := strings.CutPrefix(t, "attack.")
		if !ok {
			continue
		}
		switch {
		case techTag.MatchString(rest):
			id := strings.ToUpper(rest)
			if _, ok := rules.LookupTechnique(id); ok {
				addU(&techniques, id)
				continue
			}
			parent, _, sub := strings.Cut(id, ".")
			if _, ok := rules.LookupTechnique(parent); sub && ok {
				warn(fmt.Sprintf("ATT&CK technique %s is not in rules/attack.go; using its parent %s", id, parent))
				addU(&techniques, parent)
				continue
			}
			warn(fmt.Sprintf("ATT&CK technique %s is not in rules/attack.go; dropped", id))
		case otherTag.MatchString(rest):
		default:
			name := strings.ReplaceAll(rest, "_", "-")
			if tac, ok := rules.LookupTactic(name); ok {
				addU(&tactics, tac.ID)
			} else {
				warn(fmt.Sprintf("unknown ATT&CK tactic tag %s; dropped", t))
			}
		}
	}
	if len(tactics) == 0 {
		for _, id := range techniques {
			tech, _ := rules.LookupTechnique(id)
			for _, short := range tech.Tactics {
				if tac, ok := rules.LookupTactic(short); ok {
					addU(&tactics, tac.ID)
				}
			}
		}
	}
	return tactics, techniques
}

// severityOf maps a Sigma level; Sigma's levels are Vigil's severities.
func severityOf(level string, warn func(string)) string {
	l := strings.ToLower(strings.TrimSpace(level))
	if alert.Severity(l).Rank() > 0 {
		return l
	}
	if l != "" {
		warn(fmt.Sprintf("unknown level %q; using medium", level))
	} else {
		warn("no level; using medium")
	}
	return "medium"
}

func maxSeverity(a, b string) string {
	if alert.Severity(b).Rank() > alert.Severity(a).Rank() {
		return b
	}
	return a
}
