package normalize

import (
	"encoding/json"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/pipeline/event"
)

// TestAllSamplesParse walks every real sample and requires zero record
// errors, at least one event per file, and the invariants every event
// must meet whatever its source.
func TestAllSamplesParse(t *testing.T) {
	dir := samplesDir(t)
	sources := map[string]bool{}
	for _, s := range Sources() {
		sources[s] = true
	}
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if strings.HasSuffix(path, ".md") {
			return nil
		}
		files++
		rel, _ := filepath.Rel(dir, path)
		hint := strings.SplitN(rel, string(filepath.Separator), 2)[0]
		evs, errs := Parse(hint, readFile(t, path), recv)
		for _, e := range errs {
			t.Errorf("%s: %v\n  raw: %.300s", rel, e, e.Raw)
		}
		if len(evs) == 0 {
			t.Errorf("%s: no events", rel)
		}
		for i, e := range evs {
			checkInvariants(t, rel, i, &e, sources)
		}
		t.Logf("%-90s %3d events (%s)", rel, len(evs), evs[0].Source)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 20 {
		t.Errorf("walked %d sample files, expected the full set", files)
	}
}

func checkInvariants(t *testing.T, file string, i int, e *event.Event, sources map[string]bool) {
	t.Helper()
	where := func(what string, v any) { t.Errorf("%s event %d (%s): %s %v", file, i, e.Source, what, v) }
	if e.ID == "" {
		where("empty ID", "")
	}
	if e.Time.IsZero() || e.Time.Location().String() != "UTC" {
		where("time not set or not UTC:", e.Time)
	}
	if !e.Received.Equal(recv) {
		where("Received", e.Received)
	}
	if !sources[e.Source] && !strings.HasPrefix(e.Source, "defender.") {
		where("source not listed in Sources():", e.Source)
	}
	switch e.Category {
	case event.CatIdentity, event.CatEndpoint, event.CatNetwork, event.CatCloud, event.CatEmail, event.CatApp, event.CatAlert:
	default:
		where("category outside vocabulary:", e.Category)
	}
	switch e.Type {
	case event.TypeLogon, event.TypeProcess, event.TypeNetwork, event.TypeDNS, event.TypeFile, event.TypeRegistry,
		event.TypeAudit, event.TypeAlert, event.TypeEmail, event.TypeURLClick, event.TypeRequest, event.TypeOther:
	default:
		where("type outside vocabulary:", e.Type)
	}
	switch e.Outcome {
	case event.OutcomeSuccess, event.OutcomeFailure, event.OutcomeUnknown:
	default:
		where("outcome outside vocabulary:", e.Outcome)
	}
	if e.User != strings.ToLower(e.User) || e.Device != strings.ToLower(e.Device) || e.Resource != strings.ToLower(e.Resource) {
		where("entity not lower-case:", e.User+" "+e.Device+" "+e.Resource)
	}
	if !json.Valid(e.Raw) || len(e.Raw) == 0 || e.Raw[0] != '{' {
		where("Raw is not a JSON object:", string(e.Raw))
	}
}
