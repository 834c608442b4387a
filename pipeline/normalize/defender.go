package normalize

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/pipeline/event"
)

// defenderTables lists the Advanced Hunting tables with a specific mapping.
var defenderTables = []string{
	"DeviceProcessEvents", "DeviceNetworkEvents", "DeviceLogonEvents", "DeviceFileEvents",
	"DeviceRegistryEvents", "DeviceEvents", "DeviceImageLoadEvents", "DeviceFileCertificateInfo",
	"DeviceInfo", "DeviceNetworkInfo",
	"IdentityLogonEvents", "IdentityQueryEvents", "IdentityDirectoryEvents", "IdentityInfo",
	"EmailEvents", "EmailAttachmentInfo", "EmailUrlInfo", "EmailPostDeliveryEvents", "UrlClickEvents",
	"CloudAppEvents", "AlertInfo", "AlertEvidence",
}

// defenderSources holds "defender.<Table>" for the listed tables, so that
// the Source of the common rows costs no concatenation.
var defenderSources = func() map[string]string {
	m := make(map[string]string, len(defenderTables))
	for _, t := range defenderTables {
		m[t] = "defender." + t
	}
	return m
}()

func isDefenderTable(t string) bool {
	for _, p := range []string{"Device", "Identity", "Email", "UrlClick", "CloudApp", "Alert"} {
		if strings.HasPrefix(t, p) {
			return t != "AlertName"
		}
	}
	return false
}

// ahRow is the union of the Advanced Hunting columns Vigil maps, across all
// tables. Every field is a flex type: the streaming API's types drift
// (ReportId int or string, ports int or "", AdditionalFields string, object
// or null), and unknown columns are skipped by the decoder and kept in Raw.
type ahRow struct {
	Timestamp     ftime
	TimeGenerated ftime
	Type          fstr
	DeviceId      fstr
	DeviceName    fstr
	ReportId      fstr
	ActionType    fstr

	AccountName, AccountDomain, AccountSid, AccountUpn, AccountObjectId, AccountId fstr

	FileName, FolderPath, SHA1, SHA256, MD5 fstr
	FileSize                                fint
	ProcessCommandLine                      fstr
	ProcessId                               fint

	InitiatingProcessFileName, InitiatingProcessFolderPath, InitiatingProcessCommandLine fstr
	InitiatingProcessId                                                                  fint
	InitiatingProcessSHA1, InitiatingProcessSHA256, InitiatingProcessMD5                 fstr
	InitiatingProcessAccountName, InitiatingProcessAccountDomain                         fstr
	InitiatingProcessAccountUpn, InitiatingProcessAccountObjectId                        fstr
	InitiatingProcessParentFileName                                                      fstr
	InitiatingProcessParentId                                                            fint

	LocalIP, RemoteIP, RemoteUrl, Protocol fstr
	LocalPort, RemotePort                  fint
	LogonType, FailureReason               fstr
	RemoteDeviceName                       fstr

	RegistryKey, RegistryValueName fstr

	FileOriginUrl, FileOriginIP, RequestSourceIP           fstr
	RequestSourcePort                                      fint
	RequestAccountName, RequestAccountDomain               fstr
	IPAddress, DestinationIPAddress, DestinationDeviceName fstr
	Port, DestinationPort                                  fint
	Application, ApplicationId                             fstr
	CountryCode, Location                                  fstr
	QueryType, QueryTarget                                 fstr

	NetworkMessageId, SenderFromAddress, SenderFromDomain, SenderIPv4, SenderIPv6 fstr
	RecipientEmailAddress, RecipientObjectId, Subject, DeliveryAction             fstr
	Url, UrlDomain                                                                fstr

	AlertId, Title, Severity, EntityType, ServiceSource fstr
}

// mapDefenderEnvelope maps a streaming-API record: {"time", "tenantId",
// "category":"AdvancedHunting-<Table>", "properties":{<row>}}. Raw is the
// whole envelope record, properties included.
func mapDefenderEnvelope(p *parser, raw []byte, pr *probe) error {
	if pr.properties == nil {
		return errors.New("defender: record has no properties object")
	}
	table := strings.TrimPrefix(str(pr.category), "AdvancedHunting-")
	return p.defender(table, raw, pr.properties, envTime(pr))
}

// mapDefenderRow maps a bare row: a Sentinel table row (Type = table,
// TimeGenerated next to Timestamp) or a hunting-API export row.
func mapDefenderRow(p *parser, raw []byte, pr *probe) error {
	table := str(pr.typ)
	if table == "" {
		table = guessDefenderTable(p.hint, pr)
	}
	return p.defender(table, raw, raw, time.Time{})
}

// guessDefenderTable names the table of a row without Type: from the hint
// ("defender.DeviceProcessEvents") or the columns present.
func guessDefenderTable(hint string, pr *probe) string {
	if i := strings.IndexByte(hint, '.'); i >= 0 {
		for _, t := range defenderTables {
			if strings.EqualFold(hint[i+1:], t) {
				return t
			}
		}
	}
	switch at := str(pr.actionType); {
	case strings.HasPrefix(at, "Process"):
		return "DeviceProcessEvents"
	case strings.HasPrefix(at, "Connection"), strings.HasPrefix(at, "Inbound"), strings.HasPrefix(at, "Listening"):
		return "DeviceNetworkEvents"
	case strings.HasPrefix(at, "Logon"):
		if pr.deviceID != nil {
			return "DeviceLogonEvents"
		}
		return "IdentityLogonEvents"
	case strings.HasPrefix(at, "File"):
		return "DeviceFileEvents"
	case strings.HasPrefix(at, "Registry"):
		return "DeviceRegistryEvents"
	case at == "ImageLoaded":
		return "DeviceImageLoadEvents"
	}
	return "DeviceEvents"
}

func (p *parser) defender(table string, raw, props []byte, envelope time.Time) error {
	r := &p.ah // scratch: a 1.2 KB row is not worth an allocation per record
	*r = ahRow{}
	if err := p.unmarshal(props, r); err != nil {
		return fmt.Errorf("defender %s: %w", table, err)
	}
	src := defenderSources[table]
	if src == "" {
		src = "defender." + table
	}
	e := event.Event{
		Time:     pickTime(p.received, r.Timestamp.Time, r.TimeGenerated.Time, envelope),
		Received: p.received,
		Source:   src,
		Action:   string(r.ActionType),
		Outcome:  event.OutcomeUnknown,
		Device:   event.NormalizeHost(string(r.DeviceName)),
		DeviceID: string(r.DeviceId),
		Raw:      raw,
	}
	// Most tables describe the initiating process and its account; tables
	// about a process (DeviceProcessEvents) override below.
	initProc := event.Process{
		Name:        strings.ToLower(string(r.InitiatingProcessFileName)),
		Path:        string(r.InitiatingProcessFolderPath),
		CommandLine: string(r.InitiatingProcessCommandLine),
		PID:         int64(r.InitiatingProcessId),
		SHA256:      string(r.InitiatingProcessSHA256),
		SHA1:        string(r.InitiatingProcessSHA1),
		MD5:         string(r.InitiatingProcessMD5),
		ParentName:  strings.ToLower(string(r.InitiatingProcessParentFileName)),
		ParentPID:   int64(r.InitiatingProcessParentId),
	}
	initUser := userOf(string(r.InitiatingProcessAccountUpn), string(r.InitiatingProcessAccountDomain), string(r.InitiatingProcessAccountName))
	acctUser := userOf(string(r.AccountUpn), string(r.AccountDomain), string(r.AccountName))
	file := event.File{
		Name:   string(r.FileName),
		Path:   string(r.FolderPath),
		SHA256: string(r.SHA256),
		SHA1:   string(r.SHA1),
		MD5:    string(r.MD5),
		Size:   int64(r.FileSize),
	}
	at := string(r.ActionType)

	switch {
	case table == "DeviceProcessEvents":
		e.Category, e.Type = event.CatEndpoint, event.TypeProcess
		e.Outcome = event.OutcomeSuccess
		e.User = firstNonEmpty(acctUser, initUser)
		e.UserID = firstNonEmpty(string(r.AccountObjectId), string(r.InitiatingProcessAccountObjectId))
		e.Process = event.Process{
			Name:              strings.ToLower(string(r.FileName)),
			Path:              string(r.FolderPath),
			CommandLine:       string(r.ProcessCommandLine),
			PID:               int64(r.ProcessId),
			SHA256:            string(r.SHA256),
			SHA1:              string(r.SHA1),
			MD5:               string(r.MD5),
			ParentName:        strings.ToLower(string(r.InitiatingProcessFileName)),
			ParentCommandLine: string(r.InitiatingProcessCommandLine),
			ParentPID:         int64(r.InitiatingProcessId),
		}
	case table == "DeviceNetworkEvents":
		e.Category, e.Type = event.CatEndpoint, event.TypeNetwork
		if at == "DnsConnectionInspected" {
			e.Type = event.TypeDNS
		}
		e.User, e.Process = initUser, initProc
		e.UserID = string(r.InitiatingProcessAccountObjectId)
		local, remote := normIP(string(r.LocalIP)), normIP(string(r.RemoteIP))
		if strings.HasPrefix(at, "Inbound") || at == "ListeningConnectionCreated" {
			e.SrcIP, e.SrcPort, e.DstIP, e.DstPort = remote, int(r.RemotePort), local, int(r.LocalPort)
		} else {
			e.SrcIP, e.SrcPort, e.DstIP, e.DstPort = local, int(r.LocalPort), remote, int(r.RemotePort)
		}
		e.Protocol = strings.ToLower(string(r.Protocol))
		e.URL = string(r.RemoteUrl)
		switch at {
		case "ConnectionSuccess", "InboundConnectionAccepted", "ConnectionAcknowledged":
			e.Outcome = event.OutcomeSuccess
		case "ConnectionFailed", "ConnectionAttempt":
			e.Outcome = event.OutcomeFailure
		}
	case table == "DeviceLogonEvents":
		e.Category, e.Type = event.CatEndpoint, event.TypeLogon
		e.User = acctUser
		e.UserID = string(r.AccountObjectId)
		e.Process = initProc
		e.SrcIP, e.SrcPort = normIP(string(r.RemoteIP)), int(r.RemotePort)
		e.Outcome = logonOutcome(at)
		if rd := event.NormalizeHost(string(r.RemoteDeviceName)); rd != "" {
			e.Related.Devices = append(e.Related.Devices, rd)
		}
	case table == "DeviceFileEvents" || table == "DeviceImageLoadEvents" || table == "DeviceFileCertificateInfo":
		e.Category, e.Type = event.CatEndpoint, event.TypeFile
		e.Outcome = event.OutcomeSuccess
		e.User = firstNonEmpty(initUser, userOf("", string(r.RequestAccountDomain), string(r.RequestAccountName)))
		e.UserID = string(r.InitiatingProcessAccountObjectId)
		e.Process, e.File = initProc, file
		e.SrcIP, e.SrcPort = normIP(firstNonEmpty(string(r.RequestSourceIP), string(r.FileOriginIP))), int(r.RequestSourcePort)
		e.URL = string(r.FileOriginUrl)
	case table == "DeviceRegistryEvents":
		e.Category, e.Type = event.CatEndpoint, event.TypeRegistry
		e.Outcome = event.OutcomeSuccess
		e.User, e.Process = initUser, initProc
		e.UserID = string(r.InitiatingProcessAccountObjectId)
	case strings.HasPrefix(table, "Device"):
		// DeviceEvents is a catch-all: ActionType decides which columns are filled.
		e.Category, e.Type = event.CatEndpoint, event.TypeOther
		e.User = firstNonEmpty(acctUser, initUser)
		e.UserID = firstNonEmpty(string(r.AccountObjectId), string(r.InitiatingProcessAccountObjectId))
		e.Process, e.File = initProc, file
		e.SrcIP, e.SrcPort = normIP(string(r.LocalIP)), int(r.LocalPort)
		e.DstIP, e.DstPort = normIP(string(r.RemoteIP)), int(r.RemotePort)
		e.URL = string(r.RemoteUrl)
		if rd := event.NormalizeHost(string(r.RemoteDeviceName)); rd != "" {
			e.Related.Devices = append(e.Related.Devices, rd)
		}
	case strings.HasPrefix(table, "Identity"):
		e.Category = event.CatIdentity
		e.User = acctUser
		e.UserID = string(r.AccountObjectId)
		e.SrcIP, e.SrcPort = normIP(string(r.IPAddress)), int(r.Port)
		e.DstIP, e.DstPort = normIP(string(r.DestinationIPAddress)), int(r.DestinationPort)
		e.App = string(r.Application)
		e.Country = string(r.Location)
		if dd := event.NormalizeHost(string(r.DestinationDeviceName)); dd != "" {
			e.Related.Devices = append(e.Related.Devices, dd)
		}
		switch table {
		case "IdentityLogonEvents":
			e.Type = event.TypeLogon
			e.Outcome = logonOutcome(at)
		case "IdentityQueryEvents":
			e.Type = event.TypeOther
			if strings.EqualFold(string(r.Protocol), "dns") || strings.HasPrefix(at, "DNS") {
				e.Type = event.TypeDNS
				e.Domain = strings.ToLower(string(r.QueryTarget))
			}
		case "IdentityDirectoryEvents":
			e.Type = event.TypeAudit
		default:
			e.Type = event.TypeOther
		}
	case table == "EmailEvents" || table == "EmailAttachmentInfo" || table == "EmailUrlInfo" || table == "EmailPostDeliveryEvents":
		e.Category, e.Type = event.CatEmail, event.TypeEmail
		e.User = event.NormalizeUser(string(r.RecipientEmailAddress))
		e.UserID = string(r.RecipientObjectId)
		e.Title = string(r.Subject)
		e.SrcIP = normIP(firstNonEmpty(string(r.SenderIPv4), string(r.SenderIPv6)))
		if s := event.NormalizeUser(string(r.SenderFromAddress)); s != "" {
			e.Related.Users = append(e.Related.Users, s)
		}
		e.Domain = strings.ToLower(firstNonEmpty(string(r.UrlDomain), string(r.SenderFromDomain)))
		e.URL = string(r.Url)
		if table == "EmailAttachmentInfo" {
			e.File = event.File{Name: string(r.FileName), SHA256: string(r.SHA256), Size: int64(r.FileSize)}
		}
		if e.Action == "" {
			e.Action = string(r.DeliveryAction)
		}
		switch strings.ToLower(string(r.DeliveryAction)) {
		case "delivered", "junked":
			e.Outcome = event.OutcomeSuccess
		case "blocked", "replaced":
			e.Outcome = event.OutcomeFailure
		}
	case table == "UrlClickEvents":
		e.Category, e.Type = event.CatEmail, event.TypeURLClick
		e.User = event.NormalizeUser(string(r.AccountUpn))
		e.SrcIP = normIP(string(r.IPAddress))
		e.URL = string(r.Url)
		switch at {
		case "ClickAllowed", "ClickedThrough":
			e.Outcome = event.OutcomeSuccess
		case "ClickBlocked":
			e.Outcome = event.OutcomeFailure
		}
	case table == "CloudAppEvents":
		e.Category, e.Type = event.CatCloud, event.TypeAudit
		if id := string(r.AccountId); strings.Contains(id, "@") {
			e.User = event.NormalizeUser(id)
		}
		e.UserID = string(r.AccountObjectId)
		e.SrcIP = normIP(string(r.IPAddress))
		e.Country = strings.ToUpper(string(r.CountryCode))
		e.App = string(r.Application)
	case table == "AlertInfo" || table == "AlertEvidence":
		e.Category, e.Type = event.CatAlert, event.TypeAlert
		e.Title = string(r.Title)
		e.Severity = severityOf(string(r.Severity))
		e.User = acctUser
		e.UserID = string(r.AccountObjectId)
		e.File = file
		e.Process.CommandLine = string(r.ProcessCommandLine)
		e.SrcIP = normIP(string(r.LocalIP))
		e.DstIP = normIP(string(r.RemoteIP))
		e.URL = string(r.RemoteUrl)
		if table == "AlertEvidence" && e.Action == "" {
			e.Action = string(r.EntityType)
		}
	default:
		e.Category, e.Type = defenderCategory(table), event.TypeOther
		e.User = acctUser
		e.UserID = string(r.AccountObjectId)
	}
	e.ID = defenderID(table, r, src, raw)
	p.events = append(p.events, e)
	return nil
}

// defenderID is the source's own id when it has one: AlertId for
// AlertInfo; table, DeviceId and ReportId for device rows (ReportId is a
// per-device counter, so the time is included as the schema docs advise);
// table and ReportId for the rest. Else a hash of the raw record.
func defenderID(table string, r *ahRow, src string, raw []byte) string {
	switch {
	case table == "AlertInfo" && r.AlertId != "":
		return "AlertInfo:" + string(r.AlertId)
	case r.ReportId != "" && r.DeviceId != "":
		var ts [32]byte
		return table + ":" + string(r.DeviceId) + ":" + string(r.ReportId) + ":" + string(r.Timestamp.UTC().AppendFormat(ts[:0], "20060102T150405.0000000"))
	case r.ReportId != "" && table != "AlertEvidence":
		return table + ":" + string(r.ReportId) + ":" + string(r.NetworkMessageId) + ":" + string(r.RecipientEmailAddress)
	}
	return hashID(src, raw)
}

func defenderCategory(table string) event.Category {
	switch {
	case strings.HasPrefix(table, "Device"):
		return event.CatEndpoint
	case strings.HasPrefix(table, "Identity"):
		return event.CatIdentity
	case strings.HasPrefix(table, "Email"), strings.HasPrefix(table, "UrlClick"):
		return event.CatEmail
	case strings.HasPrefix(table, "Alert"):
		return event.CatAlert
	}
	return event.CatCloud
}

func logonOutcome(actionType string) event.Outcome {
	switch actionType {
	case "LogonSuccess":
		return event.OutcomeSuccess
	case "LogonFailed":
		return event.OutcomeFailure
	}
	return event.OutcomeUnknown
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
