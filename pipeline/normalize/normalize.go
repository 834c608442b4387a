package normalize

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vigil-sec/vigil/internal/jsonscan"
	"github.com/vigil-sec/vigil/pipeline/event"
)

// RecordError is one record of a raw message that could not be parsed: its
// index in the envelope (or line), its own original bytes, and why.
type RecordError struct {
	// Index counts records in message order from 0: envelope elements,
	// JSON-lines documents, CSV data rows or syslog lines.
	Index int
	// Raw is the record's own bytes (a copy, owned by the error).
	Raw []byte
	Err error
}

func (e RecordError) Error() string { return fmt.Sprintf("record %d: %v", e.Index, e.Err) }

func (e RecordError) Unwrap() error { return e.Err }

// ErrUnknownFormat is wrapped by a RecordError whose record parsed as JSON
// (or text) but matched no known source shape.
var ErrUnknownFormat = errors.New("unknown record format")

// Parse parses one raw message (a Kafka record value: a {"records":[...]}
// envelope, a bare record, JSON lines, a JSON array, CSV export, syslog/CEF
// line...) into events. hint is the raw topic's source name (e.g.
// "defender", "entra", "azure", "auto" / ""), used only when
// auto-detection is ambiguous. received is the time Vigil received it. One
// bad record never loses the good ones beside it.
//
// Parse does not retain value: every event's Raw, and the event strings
// taken verbatim from unescaped JSON strings, point into one private copy
// of it, shared by the events of this call and never written again.
// Holding any of them keeps that copy alive.
func Parse(hint string, value []byte, received time.Time) ([]event.Event, []RecordError) {
	i := skipWS(value, 0)
	if i >= len(value) {
		return nil, nil
	}
	data := append([]byte(nil), value[i:]...)
	p := parser{hint: strings.ToLower(strings.TrimSpace(hint)), received: received.UTC()}
	p.scratch = scratchPool.Get().(*scratch)
	defer p.scratch.release()
	switch data[0] {
	case '{', '[':
		// Records run from a few hundred bytes (flow tuples, sign-ins)
		// to a few KB; growing a slice of 700-byte events from 1 costs
		// more than a guess that is a little too large.
		p.events = make([]event.Event, 0, min(len(data)/512+1, 4096))
		p.jsonStream(data)
	default:
		p.events = make([]event.Event, 0, min(bytes.Count(data, []byte{'\n'})+1, 4096))
		p.text(data)
	}
	return p.events, p.errs
}

// scratch is the reusable working memory of a Parse call: the container
// index of the document and the decode targets of the hottest mappers.
// Nothing in it outlives the call: decoded strings are copied into
// events by value (they point into the call's private copy of the input),
// and release clears every reference before pooling.
type scratch struct {
	ix     spanIndex
	ah     ahRow
	probes [maxEnvelopeDepth + 1]probe
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func (s *scratch) release() {
	s.ix.reset(nil)
	s.ah = ahRow{}
	s.probes = [maxEnvelopeDepth + 1]probe{}
	if cap(s.ix.starts) > 1<<16 {
		s.ix.starts, s.ix.ends = nil, nil // one huge message must not pin its index
	}
	scratchPool.Put(s)
}

// maxEnvelopeDepth bounds nested envelopes (a REST example's body holding
// a records envelope...): beyond it an object is taken as a record.
const maxEnvelopeDepth = 4

// parser carries the state of one Parse call.
type parser struct {
	hint     string
	received time.Time
	idx      int // next record index
	// valid is set while the JSON document being mapped passed validValue:
	// its records need no validation of their own.
	valid    bool
	*scratch // ix: the containers of the valid document being mapped
	events   []event.Event
	errs     []RecordError
}

func (p *parser) fail(raw []byte, err error) {
	p.errs = append(p.errs, RecordError{Index: p.idx, Raw: append([]byte(nil), raw...), Err: err})
	p.idx++
}

// jsonStream handles one or more concatenated JSON documents (a single
// document, JSON lines, pretty-printed documents back to back). A document
// that does not scan is reported up to the end of its line and parsing
// resumes on the next line, so one torn line in a JSON-lines blob costs
// only itself.
func (p *parser) jsonStream(data []byte) {
	i := 0
	lineMode := false // set once the first document sits on one line: JSON lines
	first := true
	for {
		i = skipWS(data, i)
		if i >= len(data) {
			return
		}
		limit := len(data)
		if lineMode {
			limit = lineEnd(data, i)
		}
		if c := data[i]; c != '{' && c != '[' {
			end := lineEnd(data, i)
			p.fail(trimEOL(data[i:end]), fmt.Errorf("expected a JSON object or array, found %q", truncate(string(data[i:end]), 32)))
			i = end
			continue
		}
		// One strict pass validates the whole document; only a document
		// that fails it takes the lenient path (bracket balance here, a
		// json.Valid per record) that isolates the bad record.
		end, err := validIndex(data[:limit], i, &p.ix)
		p.valid = err == nil
		if err != nil {
			p.ix.reset(nil) // a partial index must not be trusted
			end, err = jsonscan.Value(data[:limit], i)
		}
		if err == nil && lineMode {
			if j := skipWS(data[:limit], end); j < limit {
				err = fmt.Errorf("trailing data after JSON value at offset %d", j)
			}
		}
		if err != nil {
			le := lineEnd(data, i)
			p.fail(trimEOL(data[i:le]), fmt.Errorf("malformed JSON: %w", err))
			i = le
			continue
		}
		doc := data[i:end]
		if first {
			first = false
			lineMode = bytes.IndexByte(doc, '\n') < 0 && bytes.IndexByte(data[end:], '\n') >= 0
		}
		if doc[0] == '[' {
			p.array(doc)
		} else {
			p.object(doc, 0)
		}
		i = end
	}
}

func trimEOL(b []byte) []byte { return bytes.TrimRight(b, "\r\n") }

func lineEnd(b []byte, i int) int {
	if j := bytes.IndexByte(b[i:], '\n'); j >= 0 {
		return i + j + 1
	}
	return len(b)
}

// array handles a JSON array whose elements are records or envelopes.
func (p *parser) array(arr []byte) {
	err := p.ix.eachElement(arr, func(el []byte) {
		if len(el) > 0 && el[0] == '{' {
			p.object(el, 0)
			return
		}
		p.fail(el, errors.New("array element is not a JSON object"))
	})
	if err != nil {
		p.fail(arr, fmt.Errorf("malformed JSON array: %w", err))
	}
}

// object handles one JSON object: an envelope ({"records":[...]}, a REST
// list {"value":[...]}, an API-spec example) or a record.
func (p *parser) object(obj []byte, depth int) {
	pr := &p.probes[depth]
	*pr = probe{}
	if err := pr.scan(&p.ix, obj); err != nil {
		p.fail(obj, fmt.Errorf("malformed JSON object: %w", err))
		return
	}
	if depth < maxEnvelopeDepth {
		switch {
		case isArray(pr.records):
			p.array(pr.records)
			return
		case isArray(pr.value) && pr.category == nil && pr.typ == nil:
			p.array(pr.value)
			return
		case pr.responses != nil && pr.category == nil:
			// azure-rest-api-specs example: {"parameters":…, "responses":{"200":{"body":…}}}
			if body := restExampleBody(pr.responses); body != nil {
				p.object(body, depth+1)
				return
			}
		}
	}
	p.record(obj, pr)
}

func isArray(v []byte) bool { return len(v) > 0 && v[0] == '[' }

// restExampleBody returns the first 2xx response body of a REST example.
func restExampleBody(responses []byte) []byte {
	var body []byte
	_ = eachMember(responses, func(code, resp []byte) bool {
		if len(code) == 0 || code[0] != '2' || len(resp) == 0 || resp[0] != '{' {
			return true
		}
		_ = eachMember(resp, func(k, v []byte) bool {
			if string(k) == "body" && len(v) > 0 && v[0] == '{' {
				body = v
				return false
			}
			return true
		})
		return body == nil
	})
	return body
}

// record maps one record. A mapper appends its events; on error, anything
// it appended is dropped and the record is reported whole.
func (p *parser) record(raw []byte, pr *probe) {
	n := len(p.events)
	// The lenient scanner checks structure only and the decoders skip
	// unknown members leniently; Raw must be valid JSON for DecodeFields
	// and sinks.
	if !p.valid && !json.Valid(raw) {
		p.fail(raw, errors.New("malformed JSON record"))
		return
	}
	m, err := p.route(pr)
	if err == nil {
		err = m(p, raw, pr)
	}
	if err != nil {
		p.events = p.events[:n]
		p.fail(raw, err)
		return
	}
	p.idx++
}

// mapper appends the events of one record to p.events.
type mapper func(p *parser, raw []byte, pr *probe) error

// probe holds the raw spans of the top-level members that decide which
// source a record comes from.
type probe struct {
	category, typ, properties, records, value, responses []byte
	time, operationName, resourceID, flowRecords         []byte
	systemAlertID, alertName, msg, timestamp, actionType []byte
	deviceID, userPrincipalName, table                   []byte
	n                                                    int
}

func (pr *probe) scan(ix *spanIndex, obj []byte) error {
	return ix.eachMember(obj, func(k, v []byte) bool {
		pr.n++
		switch string(k) {
		case "category", "Category":
			pr.category = v
		case "Type", "type":
			pr.typ = v
		case "$table":
			pr.table = v
		case "properties", "Properties":
			if len(v) > 0 && v[0] == '{' {
				pr.properties = v
			}
		case "records":
			pr.records = v
		case "value":
			pr.value = v
		case "responses":
			pr.responses = v
		case "time":
			pr.time = v
		case "operationName", "OperationName":
			pr.operationName = v
		case "resourceId", "ResourceId", "_ResourceId":
			pr.resourceID = v
		case "flowRecords":
			pr.flowRecords = v
		case "SystemAlertId":
			pr.systemAlertID = v
		case "AlertName":
			pr.alertName = v
		case "msg":
			pr.msg = v
		case "Timestamp":
			pr.timestamp = v
		case "ActionType":
			pr.actionType = v
		case "DeviceId":
			pr.deviceID = v
		case "UserPrincipalName", "userPrincipalName":
			pr.userPrincipalName = v
		}
		return true
	})
}

// str returns a probed string value ("" when absent or not a string).
func str(v []byte) string {
	if len(v) == 0 || v[0] != '"' {
		return ""
	}
	return aliasString(v, true) // probed spans lie in immutable input
}

// route picks the mapper for a record from its envelope category, table
// name or shape.
func (p *parser) route(pr *probe) (mapper, error) {
	// A table name (Sentinel / Log Analytics rows, App Insights, REST
	// objects) is the most specific signal: rows also carry a Category
	// column that means something else (AuditLogs' ApplicationManagement).
	typ := str(pr.typ)
	if typ == "" {
		typ = str(pr.table)
	}
	if typ != "" {
		if m := tableMappers[typ]; m != nil {
			return m, nil
		}
		if isDefenderTable(typ) {
			return mapDefenderRow, nil
		}
		if strings.HasPrefix(typ, "App") && pr.resourceID != nil {
			return mapAppInsights, nil
		}
		if strings.HasPrefix(typ, "AZFW") {
			return mapFirewallStructured, nil
		}
		switch strings.ToLower(typ) {
		case "microsoft.security/locations/alerts":
			return mapMDCRest, nil
		case "microsoft.security/assessments", "microsoft.security/assessments/subassessments":
			return mapMDCAssessment, nil
		}
	}
	cat := str(pr.category)
	if cat == "" && len(pr.category) > 0 && pr.category[0] == '{' {
		return mapActivityREST, nil
	}
	if cat != "" {
		if strings.HasPrefix(cat, "AdvancedHunting-") {
			return mapDefenderEnvelope, nil
		}
		if m := categoryMappers[cat]; m != nil {
			return m, nil
		}
		switch {
		case strings.HasPrefix(cat, "AZFW"):
			return mapFirewallStructured, nil
		case strings.HasPrefix(cat, "AzureFirewall"):
			return mapFirewallLegacy, nil
		}
	}
	switch {
	case pr.systemAlertID != nil && pr.alertName == nil:
		return mapMDCExport, nil
	case pr.alertName != nil:
		return mapSecurityAlert, nil
	case pr.flowRecords != nil:
		return mapVNetFlow, nil
	case cat != "" && pr.properties != nil && pr.resourceID != nil && strings.HasPrefix(strings.ToLower(str(pr.resourceID)), "/subscriptions/"):
		// An Activity-log category this table does not list yet.
		return mapActivity, nil
	}
	// A bare Advanced Hunting row without Type (hunting API export).
	if pr.timestamp != nil && (pr.actionType != nil || pr.deviceID != nil) {
		return mapDefenderRow, nil
	}
	return nil, fmt.Errorf("%w: category %q, type %q, %d top-level keys (hint %q)", ErrUnknownFormat, cat, typ, pr.n, p.hint)
}

// categoryMappers maps diagnostic-settings categories to mappers.
var categoryMappers = map[string]mapper{
	"SignInLogs":                          mapSignIn,
	"NonInteractiveUserSignInLogs":        mapSignIn,
	"ServicePrincipalSignInLogs":          mapSignIn,
	"ManagedIdentitySignInLogs":           mapSignIn,
	"MicrosoftServicePrincipalSignInLogs": mapSignIn,
	"ADFSSignInLogs":                      mapSignIn,
	"AuditLogs":                           mapAudit,
	"RiskyUsers":                          mapRisk,
	"UserRiskEvents":                      mapRisk,
	"RiskyServicePrincipals":              mapRisk,
	"ServicePrincipalRiskEvents":          mapRisk,
	"Administrative":                      mapActivity,
	"Write":                               mapActivity,
	"Action":                              mapActivity,
	"Delete":                              mapActivity,
	"Security":                            mapActivity,
	"Policy":                              mapActivity,
	"ResourceHealth":                      mapActivity,
	"ServiceHealth":                       mapActivity,
	"Alert":                               mapActivity,
	"Autoscale":                           mapActivity,
	"Recommendation":                      mapActivity,
	"NetworkSecurityGroupFlowEvent":       mapNSGFlow,
	"FlowLogFlowEvent":                    mapVNetFlow,
	"AzureFirewallNetworkRule":            mapFirewallLegacy,
	"AzureFirewallApplicationRule":        mapFirewallLegacy,
	"AzureFirewallDnsProxy":               mapFirewallLegacy,
	"StorageRead":                         mapStorage,
	"StorageWrite":                        mapStorage,
	"StorageDelete":                       mapStorage,
}

// tableMappers maps Log Analytics / Sentinel table names (the Type column)
// to mappers.
var tableMappers = map[string]mapper{
	"SigninLogs":                          mapSignIn,
	"AADNonInteractiveUserSignInLogs":     mapSignIn,
	"AADServicePrincipalSignInLogs":       mapSignIn,
	"AADManagedIdentitySignInLogs":        mapSignIn,
	"AuditLogs":                           mapAudit,
	"AADUserRiskEvents":                   mapRisk,
	"AADRiskyUsers":                       mapRisk,
	"AzureActivity":                       mapActivity,
	"SecurityAlert":                       mapSecurityAlert,
	"CommonSecurityLog":                   mapCEFRow,
	"Syslog":                              mapSyslogRow,
	"StorageBlobLogs":                     mapStorage,
	"StorageFileLogs":                     mapStorage,
	"StorageQueueLogs":                    mapStorage,
	"StorageTableLogs":                    mapStorage,
	"AzureDiagnostics":                    mapAzureDiagnostics,
	"AzureNetworkAnalytics_CL":            mapAzureDiagnostics,
	"AppRequests":                         mapAppInsights,
	"AppExceptions":                       mapAppInsights,
	"AppDependencies":                     mapAppInsights,
	"AppTraces":                           mapAppInsights,
	"AppEvents":                           mapAppInsights,
	"AppPageViews":                        mapAppInsights,
	"AppAvailabilityResults":              mapAppInsights,
	"AppMetrics":                          mapAppInsights,
	"AppPerformanceCounters":              mapAppInsights,
	"AppBrowserTimings":                   mapAppInsights,
	"AppSystemEvents":                     mapAppInsights,
	"AZFWNetworkRule":                     mapFirewallStructured,
	"AZFWApplicationRule":                 mapFirewallStructured,
	"AZFWNatRule":                         mapFirewallStructured,
	"AZFWThreatIntel":                     mapFirewallStructured,
	"AZFWDnsQuery":                        mapFirewallStructured,
	"AZFWIdpsSignature":                   mapFirewallStructured,
	"AZFWNetworkRuleAggregation":          mapFirewallStructured,
	"AZFWApplicationRuleAggregation":      mapFirewallStructured,
	"AZFWNatRuleAggregation":              mapFirewallStructured,
	"AZFWFqdnResolveFailure":              mapFirewallStructured,
	"AZFWFatFlow":                         mapFirewallStructured,
	"AZFWFlowTrace":                       mapFirewallStructured,
	"Microsoft.Security/Locations/alerts": mapMDCRest,
}

// hashID returns the fallback event id: sha256 of source and raw bytes,
// hex, truncated to 128 bits.
func hashID(source string, raw ...[]byte) string {
	h := sha256.New()
	h.Write([]byte(source))
	for _, r := range raw {
		h.Write([]byte{0})
		h.Write(r)
	}
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:16])
}

// pickTime returns the first non-zero time, or fallback.
func pickTime(fallback time.Time, ts ...time.Time) time.Time {
	for _, t := range ts {
		if !t.IsZero() {
			return t.UTC()
		}
	}
	return fallback
}

// envTime parses the probed envelope "time"; zero when absent or unreadable
// (the mapper then falls back to its own columns or the receive time).
func envTime(pr *probe) time.Time {
	t, _ := parseTime(str(pr.time))
	return t
}

// normIP returns the canonical text form of an IP ("" if not an IP).
// Masked or placeholder addresses ("0.0.0.0", "<null>", "") give "".
func normIP(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		// "ip:port" or "[v6]:port"
		ap, err2 := netip.ParseAddrPort(s)
		if err2 != nil {
			return ""
		}
		a = ap.Addr()
	}
	if a.IsUnspecified() {
		return ""
	}
	a = a.Unmap()
	// Most addresses arrive canonical: keep the input string then.
	var buf [64]byte
	if out := a.AppendTo(buf[:0]); string(out) != s {
		return string(out)
	}
	return s
}

// userOf returns the normalized user: the UPN when present, else
// DOMAIN\name, else name.
func userOf(upn, domain, name string) string {
	if upn = strings.TrimSpace(upn); upn != "" {
		return event.NormalizeUser(upn)
	}
	name = strings.TrimSpace(name)
	if name == "" {
		return ""
	}
	if domain = strings.TrimSpace(domain); domain != "" {
		return event.NormalizeUser(domain + `\` + name)
	}
	return event.NormalizeUser(name)
}

// baseName returns the file name of a Windows or POSIX path, lower-cased.
func baseName(path string) string {
	if i := strings.LastIndexAny(path, `\/`); i >= 0 {
		path = path[i+1:]
	}
	return strings.ToLower(path)
}

// addUnique appends v to list unless empty or present.
func addUnique(list []string, v string) []string {
	if v == "" {
		return list
	}
	for _, o := range list {
		if o == v {
			return list
		}
	}
	return append(list, v)
}

// severityOf normalizes product severities (words, or CEF's 0–10 scale)
// to the alert vocabulary.
func severityOf(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	switch s {
	case "":
		return ""
	case "informational", "information", "info":
		return "informational"
	case "low", "very-low":
		return "low"
	case "medium", "moderate":
		return "medium"
	case "high":
		return "high"
	case "critical", "very-high":
		return "critical"
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		switch {
		case f < 4:
			return "low"
		case f < 7:
			return "medium"
		case f < 9:
			return "high"
		default:
			return "critical"
		}
	}
	return s
}

// Sources lists every Source name Parse produces, sorted. Defender tables
// not listed here still parse, as defender.<Table> with Type "other".
func Sources() []string {
	var out []string
	seen := map[string]bool{}
	add := func(s string) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, t := range defenderTables {
		add("defender." + t)
	}
	for _, s := range []string{
		"entra.SignInLogs", "entra.NonInteractiveUserSignInLogs", "entra.ServicePrincipalSignInLogs",
		"entra.ManagedIdentitySignInLogs", "entra.MicrosoftServicePrincipalSignInLogs", "entra.ADFSSignInLogs",
		"entra.AuditLogs", "entra.RiskyUsers", "entra.UserRiskEvents", "entra.RiskyServicePrincipals",
		"entra.ServicePrincipalRiskEvents",
		"azure.Activity",
		"mdc.Alert", "mdc.Assessment", "sentinel.SecurityAlert",
		"network.NSGFlow", "network.VNetFlow",
		"firewall.AzureFirewallNetworkRule", "firewall.AzureFirewallApplicationRule",
		"firewall.AzureFirewallNatRule", "firewall.AzureFirewallDnsProxy",
		"firewall.AZFWNetworkRule", "firewall.AZFWApplicationRule", "firewall.AZFWNatRule",
		"firewall.AZFWThreatIntel", "firewall.AZFWDnsQuery", "firewall.AZFWIdpsSignature",
		"firewall.NetworkSession",
		"storage.StorageBlobLogs", "storage.StorageFileLogs", "storage.StorageQueueLogs", "storage.StorageTableLogs",
		"appinsights.AppRequests", "appinsights.AppExceptions", "appinsights.AppDependencies",
		"appinsights.AppTraces", "appinsights.AppEvents",
		"cef.CommonSecurityLog", "syslog.Syslog",
	} {
		add(s)
	}
	sort.Strings(out)
	return out
}
