package enrich_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/pipeline/enrich"
	"github.com/vigil-sec/vigil/pipeline/event"
	"github.com/vigil-sec/vigil/pipeline/normalize"
)

// samplesDir is ../shared/samples from the repository root, found from
// this file's location; the test skips when it is absent.
func samplesDir(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	for dir := filepath.Dir(file); ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			s := filepath.Join(dir, "..", "shared", "samples")
			if _, err := os.Stat(s); err != nil {
				t.Skipf("real samples not available at %s (../shared/samples from the repo root): %v", s, err)
			}
			return s
		}
		if filepath.Dir(dir) == dir {
			t.Skip("repository root not found; real samples not available")
		}
	}
}

// TestRealSamples runs every real sample through normalize, then Observe
// and Enrich in event-time order, twice on fresh tables: the associations
// the rules are meant to find in Defender and Entra data are found, every
// list stays bounded, and the result is the same both times.
func TestRealSamples(t *testing.T) {
	dir := samplesDir(t)
	var evs []event.Event
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(path, ".md") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		got, _ := normalize.Parse(strings.SplitN(rel, string(filepath.Separator), 2)[0], b, time.Now())
		evs = append(evs, got...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortStableFunc(evs, func(a, b event.Event) int { return a.Time.Compare(b.Time) })

	run := func() ([]event.Related, map[byte]int) {
		// The samples span months; a long TTL keeps them all in play.
		tb, err := enrich.Open(t.TempDir(), enrich.Options{TTL: 365 * 24 * time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		defer tb.Close()
		kinds := map[byte]int{}
		var out []event.Related
		for i := range evs {
			ev := evs[i]
			ev.Related = event.Related{
				Users:   slices.Clone(ev.Related.Users),
				Devices: slices.Clone(ev.Related.Devices),
				IPs:     slices.Clone(ev.Related.IPs),
			}
			before := ev.Related
			changes, err := tb.Observe(&ev)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range changes {
				if c.Value != nil {
					kinds[c.Key[0]]++
				}
			}
			if err := tb.Enrich(&ev); err != nil {
				t.Fatal(err)
			}
			for name, l := range map[string][2][]string{"users": {before.Users, ev.Related.Users},
				"devices": {before.Devices, ev.Related.Devices}, "ips": {before.IPs, ev.Related.IPs}} {
				if len(l[1]) > max(8, len(l[0])) || !slices.Equal(l[1][:len(l[0])], l[0]) {
					t.Errorf("%s: related %s %v from parser's %v", ev.Source, name, l[1], l[0])
				}
			}
			out = append(out, ev.Related)
		}
		return out, kinds
	}
	first, kinds := run()
	second, _ := run()
	enriched := 0
	for i := range first {
		if !slices.Equal(first[i].Users, second[i].Users) || !slices.Equal(first[i].Devices, second[i].Devices) ||
			!slices.Equal(first[i].IPs, second[i].IPs) {
			t.Fatalf("event %d (%s): %+v then %+v", i, evs[i].Source, first[i], second[i])
		}
		if len(first[i].Users)+len(first[i].Devices)+len(first[i].IPs) >
			len(evs[i].Related.Users)+len(evs[i].Related.Devices)+len(evs[i].Related.IPs) {
			enriched++
		}
	}
	t.Logf("%d events, %d enriched; associations learned: ip-device %d, device-user %d, ip-user %d, userid-upn %d",
		len(evs), enriched, kinds['h'], kinds['u'], kinds['s'], kinds['o'])
	for _, k := range []enrich.Kind{enrich.KindIPDevice, enrich.KindDeviceUser, enrich.KindIPUser, enrich.KindUserID} {
		if kinds[byte(k)] == 0 {
			t.Errorf("no %s association learned from the real samples", k)
		}
	}
	if enriched == 0 {
		t.Error("no event enriched")
	}
}
