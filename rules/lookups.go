package rules

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// TI indicator kinds.
const (
	TIIP     = "ip"
	TIDomain = "domain"
	TIURL    = "url"
	TIHash   = "hash"
)

// Lookups holds watchlists and threat-intelligence indicators, loaded once
// and read-only afterwards (safe for concurrent readers).
type Lookups struct {
	watchlists map[string]*watchlist
	ti         map[string]map[string]bool // kind -> lower-case value
	tiNets     []netip.Prefix
}

type watchlist struct {
	header []string
	rows   map[string][]string // lower-case key -> row
}

// NewLookups returns empty lookups.
func NewLookups() *Lookups {
	return &Lookups{watchlists: map[string]*watchlist{}, ti: map[string]map[string]bool{}}
}

// HasWatchlist reports whether a watchlist of that name was loaded.
func (l *Lookups) HasWatchlist(name string) bool {
	_, ok := l.watchlists[strings.ToLower(name)]
	return ok
}

// InWatchlist reports whether value is a key of watchlist name.
func (l *Lookups) InWatchlist(name, value string) bool {
	w := l.watchlists[strings.ToLower(name)]
	if w == nil {
		return false
	}
	_, ok := w.rows[strings.ToLower(strings.TrimSpace(value))]
	return ok
}

// WatchlistField returns column col of the row keyed by value, or "".
func (l *Lookups) WatchlistField(name, value, col string) string {
	w := l.watchlists[strings.ToLower(name)]
	if w == nil {
		return ""
	}
	row, ok := w.rows[strings.ToLower(strings.TrimSpace(value))]
	if !ok {
		return ""
	}
	for i, h := range w.header {
		if strings.EqualFold(h, col) && i < len(row) {
			return row[i]
		}
	}
	return ""
}

// TI reports whether v is an indicator of the given kind ("" = any kind).
func (l *Lookups) TI(kind, v string) bool {
	v = strings.ToLower(strings.TrimSpace(v))
	if v == "" {
		return false
	}
	if kind == "" {
		for k := range l.ti {
			if l.ti[k][v] {
				return true
			}
		}
		return l.tiNet(v)
	}
	if l.ti[kind][v] {
		return true
	}
	return kind == TIIP && l.tiNet(v)
}

func (l *Lookups) tiNet(v string) bool {
	if len(l.tiNets) == 0 {
		return false
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return false
	}
	for _, p := range l.tiNets {
		if p.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

func (l *Lookups) addTI(kind, v string) {
	v = strings.ToLower(strings.TrimSpace(v))
	if v == "" {
		return
	}
	if kind == TIIP && strings.Contains(v, "/") {
		if p, err := netip.ParsePrefix(v); err == nil {
			l.tiNets = append(l.tiNets, p.Masked())
			return
		}
	}
	m := l.ti[kind]
	if m == nil {
		m = map[string]bool{}
		l.ti[kind] = m
	}
	m[v] = true
}

// LoadDir reads every *.csv (watchlist) and *.json (STIX 2.1) file in dir.
// validAt, when non-zero, drops indicators whose valid_until is before it.
func (l *Lookups) LoadDir(dir string, validAt time.Time) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("lookups: %w", err)
	}
	var errs []error
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		p := filepath.Join(dir, e.Name())
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".csv":
			name := strings.TrimSuffix(e.Name(), filepath.Ext(e.Name()))
			if err := l.loadCSV(name, p); err != nil {
				errs = append(errs, err)
			}
		case ".json":
			if err := l.loadSTIX(p, validAt); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func (l *Lookups) loadCSV(name, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("watchlist %s: %w", path, err)
	}
	defer f.Close()
	return l.AddWatchlist(name, f)
}

// AddWatchlist reads a CSV watchlist: a header row, then rows keyed by the
// column named "value" (or the first column).
func (l *Lookups) AddWatchlist(name string, r io.Reader) error {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err != nil {
		return fmt.Errorf("watchlist %s: header: %w", name, err)
	}
	if len(header) > 0 {
		header[0] = strings.TrimPrefix(header[0], "\ufeff")
	}
	keyCol := 0
	for i, h := range header {
		if strings.EqualFold(strings.TrimSpace(h), "value") {
			keyCol = i
		}
	}
	w := &watchlist{header: header, rows: map[string][]string{}}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("watchlist %s: %w", name, err)
		}
		if keyCol < len(rec) {
			w.rows[strings.ToLower(strings.TrimSpace(rec[keyCol]))] = rec
		}
	}
	l.watchlists[strings.ToLower(name)] = w
	return nil
}

type stixObject struct {
	Type        string       `json:"type"`
	PatternType string       `json:"pattern_type"`
	Pattern     string       `json:"pattern"`
	Revoked     bool         `json:"revoked"`
	ValidUntil  string       `json:"valid_until"`
	Objects     []stixObject `json:"objects"`
}

func (l *Lookups) loadSTIX(path string, validAt time.Time) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("stix %s: %w", path, err)
	}
	if err := l.AddSTIX(b, validAt); err != nil {
		return fmt.Errorf("stix %s: %w", path, err)
	}
	return nil
}

// stixComparison matches one comparison of a STIX pattern, e.g.
// ipv4-addr:value = '1.2.3.4' or file:hashes.'SHA-256' = 'ab..'.
var stixComparison = regexp.MustCompile(`([a-z0-9-]+):([A-Za-z0-9_.'-]+)\s*=\s*'((?:[^'\\]|\\.)*)'`)

// AddSTIX reads a STIX 2.1 bundle or a single indicator object.
func (l *Lookups) AddSTIX(b []byte, validAt time.Time) error {
	var root stixObject
	if err := json.Unmarshal(b, &root); err != nil {
		return err
	}
	objs := root.Objects
	if root.Type == "indicator" {
		objs = []stixObject{root}
	}
	for _, o := range objs {
		if o.Type != "indicator" || o.Revoked || (o.PatternType != "" && o.PatternType != "stix") {
			continue
		}
		if !validAt.IsZero() && o.ValidUntil != "" {
			if t, err := time.Parse(time.RFC3339, o.ValidUntil); err == nil && t.Before(validAt) {
				continue
			}
		}
		for _, m := range stixComparison.FindAllStringSubmatch(o.Pattern, -1) {
			obj, prop, val := m[1], strings.ToLower(m[2]), strings.ReplaceAll(m[3], `\'`, `'`)
			switch {
			case (obj == "ipv4-addr" || obj == "ipv6-addr") && prop == "value":
				l.addTI(TIIP, val)
			case obj == "domain-name" && prop == "value":
				l.addTI(TIDomain, val)
			case obj == "url" && prop == "value":
				l.addTI(TIURL, val)
			case obj == "file" && strings.HasPrefix(prop, "hashes."):
				l.addTI(TIHash, val)
			}
		}
	}
	return nil
}
