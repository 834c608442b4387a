// Package event defines the normalized event: the one record shape that
// normalize produces, operators and rules read, and the workspace stores.
//
// Typed fields hold what rules join and filter on (time, entities, process,
// network tuple, outcome). Everything else the source sent stays in Raw, the
// source record's original JSON, and is decoded into Fields only when a rule
// or sink asks for it: most events never need it, and decoding a 1–2 KB
// record into map[string]any costs more than the whole normalize step.
//
// Vocabulary of Category, Type, Outcome: see vocab.go. The binary
// encoding on the events.<keyspace> topics, chosen by benchmark over JSON,
// CBOR and msgpack (numbers and wire format in codec.go): see Marshal.
package event

import (
	"encoding/json"
	"strings"
	"time"
)

// Event is a normalized security event. The zero value is an empty event.
// Strings that name entities are normalized by the parser: User is a
// lower-case UPN (or DOMAIN\name when no UPN exists), Device a lower-case
// host name, IPs in canonical text form.
type Event struct {
	// ID identifies the event for deduplication and alert ids: the source's
	// own record id when it has one, else a hash of the source and raw bytes.
	ID string `json:"id"`
	// Time is the event time (when it happened at the source), UTC.
	Time time.Time `json:"time"`
	// Received is when Vigil (or the transport envelope) received it, UTC.
	Received time.Time `json:"received,omitzero"`
	// Source names the product and table, e.g. "defender.DeviceProcessEvents".
	Source   string   `json:"source"`
	Category Category `json:"category"`
	Type     string   `json:"type"`
	// Action is the source's own verb (ActionType, operationName, ...).
	Action  string  `json:"action,omitempty"`
	Outcome Outcome `json:"outcome,omitempty"`
	// Severity is set for alert-like events (Defender alerts, CEF severity).
	Severity string `json:"severity,omitempty"`
	// Title is set for alert-like events.
	Title string `json:"title,omitempty"`

	User     string  `json:"user,omitempty"`
	UserID   string  `json:"user_id,omitempty"` // directory object id
	Device   string  `json:"device,omitempty"`
	DeviceID string  `json:"device_id,omitempty"`
	SrcIP    string  `json:"src_ip,omitempty"`
	DstIP    string  `json:"dst_ip,omitempty"`
	SrcPort  int     `json:"src_port,omitempty"`
	DstPort  int     `json:"dst_port,omitempty"`
	Protocol string  `json:"protocol,omitempty"`
	Process  Process `json:"process,omitzero"`
	File     File    `json:"file,omitzero"`
	// Resource is an Azure resource id, lower-cased.
	Resource string `json:"resource,omitempty"`
	App      string `json:"app,omitempty"` // application name or id (sign-ins, cloud apps)
	URL      string `json:"url,omitempty"`
	Domain   string `json:"domain,omitempty"`
	Country  string `json:"country,omitempty"`
	BytesIn  int64  `json:"bytes_in,omitempty"`
	BytesOut int64  `json:"bytes_out,omitempty"`

	// Related holds entities associated with this event by enrichment
	// (a flow's source IP resolved to a device and its users).
	Related Related `json:"related,omitzero"`

	// Raw is the source record's original JSON (for CSV/syslog sources, a
	// JSON object built from the columns). It is owned by the event.
	Raw json.RawMessage `json:"raw,omitempty"`

	// Fields is Raw decoded, populated by DecodeFields. Rules reach source
	// fields through it: Fields.RiskLevelDuringSignIn.
	Fields map[string]any `json:"-"`
	// fieldsFrom is the FieldPaths Fields was decoded with; nil when
	// Fields holds the whole record.
	fieldsFrom *FieldPaths
}

// Process describes the process of an endpoint event and its parent.
type Process struct {
	Name              string `json:"name,omitempty"` // lower-case file name
	Path              string `json:"path,omitempty"`
	CommandLine       string `json:"command_line,omitempty"`
	PID               int64  `json:"pid,omitempty"`
	SHA256            string `json:"sha256,omitempty"`
	SHA1              string `json:"sha1,omitempty"`
	MD5               string `json:"md5,omitempty"`
	ParentName        string `json:"parent_name,omitempty"`
	ParentCommandLine string `json:"parent_command_line,omitempty"`
	ParentPID         int64  `json:"parent_pid,omitempty"`
}

// IsZero reports whether no process field is set.
func (p Process) IsZero() bool { return p == Process{} }

// File describes the file an event acted on.
type File struct {
	Name   string `json:"name,omitempty"`
	Path   string `json:"path,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	SHA1   string `json:"sha1,omitempty"`
	MD5    string `json:"md5,omitempty"`
	Size   int64  `json:"size,omitempty"`
}

// IsZero reports whether no file field is set.
func (f File) IsZero() bool { return f == File{} }

// Related lists entities tied to the event by enrichment or by the source
// itself (an alert's evidence). Values are normalized like the typed fields.
type Related struct {
	Users   []string `json:"users,omitempty"`
	Devices []string `json:"devices,omitempty"`
	IPs     []string `json:"ips,omitempty"`
}

// IsZero reports whether nothing is related.
func (r Related) IsZero() bool { return len(r.Users)+len(r.Devices)+len(r.IPs) == 0 }

// DecodeFields fills Fields from Raw if it is not yet filled. A Raw that is
// not a JSON object leaves Fields empty (not nil) and returns the error.
func (e *Event) DecodeFields() error {
	if e.Fields != nil && e.fieldsFrom == nil {
		return nil
	}
	e.fieldsFrom = nil
	e.Fields = map[string]any{}
	if len(e.Raw) == 0 {
		return nil
	}
	return json.Unmarshal(e.Raw, &e.Fields)
}

// Keyspace is an entity kind that correlation keys events by.
type Keyspace string

const (
	KeyUser     Keyspace = "user"
	KeyDevice   Keyspace = "device"
	KeyIP       Keyspace = "ip"
	KeyResource Keyspace = "resource"
)

// Keyspaces lists every keyspace in a stable order.
var Keyspaces = []Keyspace{KeyUser, KeyDevice, KeyIP, KeyResource}

// Keys returns the event's key values in keyspace ks: the typed entity
// fields first, then related entities, deduplicated, never empty strings.
// An event is written to events.<ks> once per returned key.
func (e *Event) Keys(ks Keyspace) []string {
	var out []string
	add := func(v string) {
		if v == "" {
			return
		}
		for _, o := range out {
			if o == v {
				return
			}
		}
		out = append(out, v)
	}
	switch ks {
	case KeyUser:
		add(e.User)
		for _, u := range e.Related.Users {
			add(u)
		}
	case KeyDevice:
		add(e.Device)
		for _, d := range e.Related.Devices {
			add(d)
		}
	case KeyIP:
		add(e.SrcIP)
		add(e.DstIP)
		for _, ip := range e.Related.IPs {
			add(ip)
		}
	case KeyResource:
		add(e.Resource)
	}
	return out
}

// NormalizeUser lower-cases and trims a user name or UPN.
func NormalizeUser(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// NormalizeHost lower-cases and trims a host name.
func NormalizeHost(s string) string { return strings.ToLower(strings.TrimSpace(s)) }
