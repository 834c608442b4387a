package normalize

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/pipeline/event"
)

// text handles the non-JSON inputs: syslog / CEF lines and CSV exports.
func (p *parser) text(data []byte) {
	first := data
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		first = data[:i]
	}
	first = bytes.TrimRight(first, "\r")
	syslogHint := p.hint == "syslog" || p.hint == "cef"
	if LooksLikeSyslog(first) || !bytes.ContainsRune(first, ',') || (syslogHint && !CSVHeaderLike(first)) {
		p.syslogLines(data)
		return
	}
	p.csv(data)
}

// CSVHeaderLike reports a line that reads as a CSV header: several short
// column names without the ':' or '=' that syslog messages carry.
func CSVHeaderLike(l []byte) bool {
	f := bytes.Split(l, []byte{','})
	if len(f) < 2 {
		return false
	}
	for _, c := range f {
		c = bytes.Trim(c, `" `)
		if len(c) == 0 || len(c) > 64 || bytes.ContainsAny(c, ":=<>") {
			return false
		}
	}
	return true
}

var months = []string{"Jan ", "Feb ", "Mar ", "Apr ", "May ", "Jun ", "Jul ", "Aug ", "Sep ", "Oct ", "Nov ", "Dec "}

// LooksLikeSyslog reports a line that starts like syslog or CEF.
func LooksLikeSyslog(l []byte) bool {
	if len(l) > 1 && l[0] == '<' && l[1] >= '0' && l[1] <= '9' {
		return true
	}
	if bytes.HasPrefix(l, []byte("CEF:")) || bytes.HasPrefix(l, []byte("LEEF:")) {
		return true
	}
	for _, m := range months {
		if bytes.HasPrefix(l, []byte(m)) {
			return true
		}
	}
	return len(l) > 20 && l[4] == '-' && l[7] == '-' && l[10] == 'T' && bytes.Contains(l, []byte("CEF:"))
}

// csv converts each data row of a Log Analytics / Sentinel CSV export into
// a JSON object of its columns and maps it like a JSON row. Column names
// lose the export's " [UTC]" / " [Local Time]" suffix (times in local time
// are read as UTC: the export does not say which zone), "X_dynamic" and
// "X_string" become X when no X column exists, values holding JSON
// (dynamic columns) are embedded as JSON, and empty values are left out.
func (p *parser) csv(data []byte) {
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	r.LazyQuotes = true
	r.ReuseRecord = true
	header, err := r.Read()
	if err != nil {
		p.fail(data, fmt.Errorf("csv header: %w", err))
		return
	}
	names := csvNames(header)
	for {
		off := r.InputOffset()
		row, err := r.Read()
		if err == io.EOF {
			return
		}
		if err != nil {
			end := r.InputOffset()
			p.fail(data[off:min(end, int64(len(data)))], fmt.Errorf("csv: %w", err))
			if end <= off {
				return
			}
			continue
		}
		obj := csvObject(names, row)
		p.object(obj, 0)
	}
}

func csvNames(header []string) []string {
	have := map[string]bool{}
	names := make([]string, len(header))
	for i, h := range header {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		if j := strings.Index(h, " ["); j > 0 && strings.HasSuffix(h, "]") {
			h = h[:j]
		}
		names[i] = h
		have[h] = true
	}
	for i, h := range names {
		for _, suf := range []string{"_dynamic", "_string"} {
			if base, ok := strings.CutSuffix(h, suf); ok && !have[base] {
				names[i] = base
				have[base] = true
			}
		}
	}
	return names
}

func csvObject(names, row []string) []byte {
	obj := make([]byte, 0, 1024)
	obj = append(obj, '{')
	for i, v := range row {
		if i >= len(names) || v == "" || names[i] == "" {
			continue
		}
		if len(obj) > 1 {
			obj = append(obj, ',')
		}
		obj = appendJSONString(obj, names[i])
		obj = append(obj, ':')
		t := strings.TrimSpace(v)
		if len(t) > 1 && (t[0] == '{' || t[0] == '[') && json.Valid([]byte(t)) {
			obj = append(obj, t...)
		} else {
			obj = appendJSONString(obj, v)
		}
	}
	return append(obj, '}')
}

// syslogLines parses one syslog or CEF message per line.
func (p *parser) syslogLines(data []byte) {
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		line = bytes.TrimRight(line, "\r")
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		n := len(p.events)
		if err := p.syslogLine(string(line)); err != nil {
			p.events = p.events[:n]
			p.fail(line, err)
			continue
		}
		p.idx++
	}
}

// syslogHeader is what the RFC 5424 / RFC 3164 header says.
type syslogHeader struct {
	Facility, Severity int
	HasPri             bool
	Time               time.Time
	Host, App, PID     string
	Msg                string
}

// parseSyslogHeader reads an optional <PRI>, then an RFC 5424 header
// ("1 TIMESTAMP HOST APP PROCID MSGID SD MSG") or a BSD one ("Mmm dd
// hh:mm:ss HOST TAG[PID]: MSG", also with an RFC 3339 timestamp). The
// colon after the tag is optional, as seen in real CEF senders. A line that
// fits neither is all message.
func parseSyslogHeader(line string, received time.Time) syslogHeader {
	var h syslogHeader
	s := line
	if len(s) > 2 && s[0] == '<' {
		if j := strings.IndexByte(s, '>'); j > 1 && j <= 4 {
			if pri, err := strconv.Atoi(s[1:j]); err == nil && pri <= 191 {
				h.Facility, h.Severity, h.HasPri = pri/8, pri%8, true
				s = s[j+1:]
			}
		}
	}
	if strings.HasPrefix(s, "CEF:") {
		h.Msg = s
		return h
	}
	if len(s) > 2 && s[0] >= '1' && s[0] <= '9' && s[1] == ' ' { // RFC 5424
		f := strings.SplitN(s[2:], " ", 6)
		if len(f) == 6 {
			h.Time, _ = parseTime(nilDash(f[0]))
			h.Host, h.App, h.PID = nilDash(f[1]), nilDash(f[2]), nilDash(f[3])
			h.Msg = skipSD(f[5])
			return h
		}
	}
	rest := s
	switch {
	case len(s) >= 16 && isMonth(s) && s[15] == ' ':
		ts := strings.Join(strings.Fields(s[:15]), " ")
		if t, err := time.Parse("Jan 2 15:04:05", ts); err == nil {
			t = t.AddDate(received.Year(), 0, 0)
			if t.After(received.Add(24 * time.Hour)) {
				t = t.AddDate(-1, 0, 0)
			}
			h.Time = t.UTC()
		}
		rest = s[16:]
	case len(s) > 20 && s[4] == '-' && s[10] == 'T':
		if sp := strings.IndexByte(s, ' '); sp > 0 {
			h.Time, _ = parseTime(s[:sp])
			rest = s[sp+1:]
		}
	default:
		h.Msg = s
		return h
	}
	if strings.HasPrefix(rest, "CEF:") {
		h.Msg = rest
		return h
	}
	host, after, _ := strings.Cut(rest, " ")
	h.Host = host
	tag, msg, found := strings.Cut(after, " ")
	if !found {
		tag, msg = after, ""
	}
	if strings.HasPrefix(tag, "CEF:") {
		h.Msg = after
		return h
	}
	tag = strings.TrimSuffix(tag, ":")
	if i := strings.IndexByte(tag, '['); i > 0 && strings.HasSuffix(tag, "]") {
		h.PID = tag[i+1 : len(tag)-1]
		tag = tag[:i]
	}
	h.App, h.Msg = tag, msg
	return h
}

func isMonth(s string) bool {
	for _, m := range months {
		if strings.HasPrefix(s, m) {
			return true
		}
	}
	return false
}

func nilDash(s string) string {
	if s == "-" {
		return ""
	}
	return s
}

// skipSD drops RFC 5424 structured data ("-" or [id k="v"]...) before MSG.
func skipSD(s string) string {
	if strings.HasPrefix(s, "-") {
		return strings.TrimPrefix(strings.TrimPrefix(s, "-"), " ")
	}
	for strings.HasPrefix(s, "[") {
		inq := false
		i := 1
		for ; i < len(s); i++ {
			c := s[i]
			if c == '\\' {
				i++
				continue
			}
			if c == '"' {
				inq = !inq
			}
			if c == ']' && !inq {
				break
			}
		}
		if i >= len(s) {
			return ""
		}
		s = s[i+1:]
	}
	return strings.TrimPrefix(s, " ")
}

func (p *parser) syslogLine(line string) error {
	h := parseSyslogHeader(line, p.received)
	if i := strings.Index(h.Msg, "CEF:"); i >= 0 {
		return p.cefLine(h, h.Msg[i:], line)
	}
	if i := strings.Index(line, "CEF:"); i >= 0 && p.hint == "cef" {
		return p.cefLine(syslogHeader{}, line[i:], line)
	}
	raw := []byte{'{'}
	if h.HasPri {
		raw = append(raw, `"Facility":`...)
		raw = strconv.AppendInt(raw, int64(h.Facility), 10)
		raw = append(raw, `,"SeverityLevel":`...)
		raw = strconv.AppendInt(raw, int64(h.Severity), 10)
	}
	if !h.Time.IsZero() {
		raw = appendField(raw, "EventTime", h.Time.Format(time.RFC3339Nano))
	}
	raw = appendField(raw, "HostName", h.Host)
	raw = appendField(raw, "ProcessName", h.App)
	raw = appendField(raw, "ProcessID", h.PID)
	raw = appendField(raw, "SyslogMessage", h.Msg)
	raw = append(raw, '}')
	const src = "syslog.Syslog"
	e := event.Event{
		ID:       hashID(src, []byte(line)),
		Time:     pickTime(p.received, h.Time),
		Received: p.received,
		Source:   src,
		Category: event.CatApp,
		Type:     event.TypeOther,
		Action:   h.App,
		Outcome:  event.OutcomeUnknown,
		Device:   event.NormalizeHost(h.Host),
		Process:  event.Process{Name: strings.ToLower(h.App), PID: atoi(h.PID)},
		Raw:      raw,
	}
	p.events = append(p.events, e)
	return nil
}

// cefRow holds a CEF event under its CommonSecurityLog column names; a
// Sentinel CommonSecurityLog row decodes into it directly and a CEF line
// is parsed into it.
type cefRow struct {
	TimeGenerated        ftime
	ReceiptTime          ftime
	DeviceVendor         fstr
	DeviceProduct        fstr
	DeviceVersion        fstr
	DeviceEventClassID   fstr
	Activity             fstr
	LogSeverity          fstr
	DeviceAction         fstr
	Computer             fstr
	DeviceName           fstr
	DeviceAddress        fstr
	SourceIP             fstr
	DestinationIP        fstr
	SourcePort           fint
	DestinationPort      fint
	Protocol             fstr
	SourceUserName       fstr
	DestinationUserName  fstr
	SourceHostName       fstr
	DestinationHostName  fstr
	RequestURL           fstr
	SentBytes            fint
	ReceivedBytes        fint
	FileName             fstr
	FileHash             fstr
	StartTime            ftime
	AdditionalExtensions fstr
}

// cefLine parses "CEF:Version|Vendor|Product|Version|SignatureID|Name|Severity|Extension".
func (p *parser) cefLine(h syslogHeader, cef, line string) error {
	hdr, ext, err := splitCEFHeader(cef)
	if err != nil {
		return err
	}
	var r cefRow
	r.DeviceVendor, r.DeviceProduct, r.DeviceVersion = fstr(hdr[1]), fstr(hdr[2]), fstr(hdr[3])
	r.DeviceEventClassID, r.Activity, r.LogSeverity = fstr(hdr[4]), fstr(hdr[5]), fstr(hdr[6])
	r.Computer = fstr(h.Host)

	raw := []byte{'{'}
	raw = appendField(raw, "CEFVersion", strings.TrimPrefix(hdr[0], "CEF:"))
	raw = appendField(raw, "DeviceVendor", hdr[1])
	raw = appendField(raw, "DeviceProduct", hdr[2])
	raw = appendField(raw, "DeviceVersion", hdr[3])
	raw = appendField(raw, "DeviceEventClassID", hdr[4])
	raw = appendField(raw, "Activity", hdr[5])
	raw = appendField(raw, "LogSeverity", hdr[6])
	if h.Host != "" {
		raw = appendField(raw, "Computer", h.Host)
	}
	var rt, start string
	for _, kv := range cefExtension(ext) {
		k, v := kv[0], kv[1]
		raw = appendField(raw, k, v)
		switch k {
		case "src":
			r.SourceIP = fstr(v)
		case "dst":
			r.DestinationIP = fstr(v)
		case "spt":
			r.SourcePort = fint(atoi(v))
		case "dpt":
			r.DestinationPort = fint(atoi(v))
		case "proto":
			r.Protocol = fstr(v)
		case "suser":
			r.SourceUserName = fstr(v)
		case "duser":
			r.DestinationUserName = fstr(v)
		case "shost":
			r.SourceHostName = fstr(v)
		case "dhost":
			r.DestinationHostName = fstr(v)
		case "act":
			r.DeviceAction = fstr(v)
		case "request":
			r.RequestURL = fstr(v)
		case "dvchost":
			r.DeviceName = fstr(v)
		case "dvc":
			r.DeviceAddress = fstr(v)
		case "in":
			r.ReceivedBytes = fint(atoi(v))
		case "out":
			r.SentBytes = fint(atoi(v))
		case "fname":
			r.FileName = fstr(v)
		case "fileHash":
			r.FileHash = fstr(v)
		case "rt":
			rt = v
		case "start":
			start = v
		}
	}
	raw = append(raw, '}')
	t, _ := parseTime(firstNonEmpty(start, rt))
	r.StartTime.Time = t
	if t.IsZero() {
		r.StartTime.Time = h.Time
	}
	p.events = append(p.events, p.cefEvent(&r, raw, []byte(line)))
	return nil
}

// splitCEFHeader splits the seven header fields (with \| and \\ escapes)
// from the extension.
func splitCEFHeader(s string) ([7]string, string, error) {
	var hdr [7]string
	n, start := 0, 0
	var b strings.Builder
	for i := 0; i < len(s) && n < 7; i++ {
		switch s[i] {
		case '\\':
			if i+1 < len(s) && (s[i+1] == '|' || s[i+1] == '\\') {
				b.WriteByte(s[i+1])
				i++
				continue
			}
			b.WriteByte('\\')
		case '|':
			hdr[n] = b.String()
			b.Reset()
			n++
			start = i + 1
		default:
			b.WriteByte(s[i])
		}
	}
	if n < 7 {
		return hdr, "", fmt.Errorf("cef: %d header fields, want 7", n)
	}
	return hdr, s[start:], nil
}

// cefExtension splits "k1=v1 k2=v two k3=v3": a value runs until the space
// before the next unescaped "key=". Escapes \= \\ \n \r and rsyslog's
// "#012" (newline) are undone; values are trimmed.
func cefExtension(ext string) [][2]string {
	type mark struct{ keyStart, eq int }
	var marks []mark
	for i := 0; i < len(ext); i++ {
		if ext[i] == '\\' {
			i++
			continue
		}
		if ext[i] != '=' {
			continue
		}
		j := i
		for j > 0 && isCEFKeyByte(ext[j-1]) {
			j--
		}
		if j == i || (j > 0 && ext[j-1] != ' ') {
			continue
		}
		marks = append(marks, mark{j, i})
	}
	out := make([][2]string, 0, len(marks))
	for k, m := range marks {
		end := len(ext)
		if k+1 < len(marks) {
			end = marks[k+1].keyStart
		}
		out = append(out, [2]string{ext[m.keyStart:m.eq], cefUnescape(strings.TrimSpace(ext[m.eq+1 : end]))})
	}
	return out
}

func isCEFKeyByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-'
}

var cefUnescaper = strings.NewReplacer(`\=`, "=", `\\`, `\`, `\n`, "\n", `\r`, "\r", "#012", "\n")

func cefUnescape(s string) string {
	if strings.IndexByte(s, '\\') < 0 && !strings.Contains(s, "#012") {
		return s
	}
	return strings.TrimSpace(cefUnescaper.Replace(s))
}

// cefEvent maps a CommonSecurityLog-shaped record.
func (p *parser) cefEvent(r *cefRow, raw, idSeed []byte) event.Event {
	const src = "cef.CommonSecurityLog"
	e := event.Event{
		Time:     pickTime(p.received, r.StartTime.Time, r.ReceiptTime.Time, r.TimeGenerated.Time),
		Received: p.received,
		Source:   src,
		Category: event.CatNetwork,
		Type:     event.TypeOther,
		Action:   firstNonEmpty(string(r.DeviceAction), string(r.Activity)),
		Outcome:  firewallOutcome(string(r.DeviceAction)),
		Severity: severityOf(string(r.LogSeverity)),
		Title:    string(r.Activity),
		User:     event.NormalizeUser(firstNonEmpty(string(r.SourceUserName), string(r.DestinationUserName))),
		Device:   event.NormalizeHost(firstNonEmpty(string(r.DeviceName), string(r.Computer))),
		SrcIP:    normIP(string(r.SourceIP)),
		DstIP:    normIP(string(r.DestinationIP)),
		SrcPort:  int(r.SourcePort),
		DstPort:  int(r.DestinationPort),
		Protocol: strings.ToLower(string(r.Protocol)),
		URL:      string(r.RequestURL),
		Domain:   strings.ToLower(string(r.DestinationHostName)),
		BytesOut: int64(r.SentBytes),
		BytesIn:  int64(r.ReceivedBytes),
		File:     event.File{Name: string(r.FileName)},
		Raw:      raw,
	}
	if e.SrcIP != "" || e.DstIP != "" {
		e.Type = event.TypeNetwork
	}
	if u := event.NormalizeUser(string(r.DestinationUserName)); u != "" && u != e.User {
		e.Related.Users = append(e.Related.Users, u)
	}
	if h := event.NormalizeHost(string(r.SourceHostName)); h != "" {
		e.Related.Devices = append(e.Related.Devices, h)
	}
	e.ID = hashID(src, idSeed)
	return e
}

// mapCEFRow maps a Sentinel CommonSecurityLog row (JSON or CSV).
func mapCEFRow(p *parser, raw []byte, pr *probe) error {
	var r cefRow
	if err := p.unmarshal(raw, &r); err != nil {
		return fmt.Errorf("CommonSecurityLog: %w", err)
	}
	if r.StartTime.IsZero() && r.AdditionalExtensions != "" {
		// Unmapped keys ride in AdditionalExtensions as k=v;k=v.
		for _, kv := range strings.Split(string(r.AdditionalExtensions), ";") {
			k, v, _ := strings.Cut(kv, "=")
			if k == "start" || k == "rt" {
				if t, err := parseTime(v); err == nil && !t.IsZero() {
					r.StartTime.Time = t
					break
				}
			}
		}
	}
	p.events = append(p.events, p.cefEvent(&r, raw, raw))
	return nil
}

// syslogRow is a Sentinel Syslog table row.
type syslogRow struct {
	TimeGenerated ftime
	EventTime     ftime
	HostName      fstr
	Computer      fstr
	HostIP        fstr
	ProcessName   fstr
	ProcessID     fint
	SyslogMessage fstr
}

func mapSyslogRow(p *parser, raw []byte, pr *probe) error {
	var r syslogRow
	if err := p.unmarshal(raw, &r); err != nil {
		return fmt.Errorf("syslog row: %w", err)
	}
	if i := strings.Index(string(r.SyslogMessage), "CEF:"); i >= 0 {
		return p.cefLine(syslogHeader{Host: string(firstNonEmpty(string(r.HostName), string(r.Computer))), Time: r.EventTime.Time}, string(r.SyslogMessage)[i:], string(raw))
	}
	const src = "syslog.Syslog"
	p.events = append(p.events, event.Event{
		ID:       hashID(src, raw),
		Time:     pickTime(p.received, r.EventTime.Time, r.TimeGenerated.Time),
		Received: p.received,
		Source:   src,
		Category: event.CatApp,
		Type:     event.TypeOther,
		Action:   string(r.ProcessName),
		Outcome:  event.OutcomeUnknown,
		Device:   event.NormalizeHost(firstNonEmpty(string(r.HostName), string(r.Computer))),
		SrcIP:    normIP(string(r.HostIP)),
		Process:  event.Process{Name: strings.ToLower(string(r.ProcessName)), PID: int64(r.ProcessID)},
		Raw:      raw,
	})
	return nil
}
