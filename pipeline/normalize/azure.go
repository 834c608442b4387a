package normalize

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/vigil-sec/vigil/pipeline/event"
)

// activity is an Azure Activity log record: the diagnostic-settings form
// (identity.claims, properties) or a Sentinel AzureActivity row (Caller,
// Claims, OperationNameValue, ActivityStatusValue, _ResourceId).
type activity struct {
	Time               ftime `json:"time"`
	TimeGenerated      ftime
	ResourceID         fstr `json:"resourceId"`
	ResourceIDLA       fstr `json:"_ResourceId"`
	OperationName      fstr `json:"operationName"`
	OperationNameValue fstr
	Category           fstr `json:"category"`
	CategoryValue      fstr
	ResultType         fstr `json:"resultType"`
	ActivityStatus     fstr `json:"ActivityStatusValue"`
	CallerIPAddress    fstr `json:"callerIpAddress"`
	Caller             fstr
	EventDataID        fstr `json:"eventDataId"`
	Level              fstr `json:"level"`
	Identity           obj[struct {
		Claims obj[activityClaims] `json:"claims"`
	}] `json:"identity"`
	Claims     fraw
	Properties obj[struct {
		EventDataID fstr `json:"eventDataId"`
	}] `json:"properties"`
}

type activityClaims struct {
	UPN      fstr `json:"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"`
	Name     fstr `json:"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"`
	ShortUPN fstr `json:"upn"`
	AppID    fstr `json:"appid"`
	IPAddr   fstr `json:"ipaddr"`
	OID      fstr `json:"http://schemas.microsoft.com/identity/claims/objectidentifier"`
}

func mapActivity(p *parser, raw []byte, pr *probe) error {
	var a activity
	if err := p.unmarshal(raw, &a); err != nil {
		return fmt.Errorf("azure activity: %w", err)
	}
	claims := a.Identity.V.Claims.V
	if len(a.Claims) > 0 {
		_ = p.unmarshal(a.Claims, &claims) // Sentinel's Claims column; best effort
	}
	const src = "azure.Activity"
	user := firstNonEmpty(string(claims.UPN), string(claims.ShortUPN))
	if user == "" && strings.Contains(string(claims.Name), "@") {
		user = string(claims.Name)
	}
	if user == "" {
		user = string(a.Caller)
	}
	e := event.Event{
		ID:       firstNonEmpty(string(a.EventDataID), string(a.Properties.V.EventDataID)),
		Time:     pickTime(p.received, a.Time.Time, a.TimeGenerated.Time),
		Received: p.received,
		Source:   src,
		Category: event.CatCloud,
		Type:     event.TypeAudit,
		// Operation names arrive upper-case in diagnostic records and mixed
		// case elsewhere; lower-case so rules compare one spelling.
		Action:   strings.ToLower(firstNonEmpty(string(a.OperationNameValue), string(a.OperationName))),
		Outcome:  activityOutcome(firstNonEmpty(string(a.ActivityStatus), string(a.ResultType))),
		User:     event.NormalizeUser(user),
		UserID:   string(claims.OID),
		SrcIP:    normIP(firstNonEmpty(string(a.CallerIPAddress), string(claims.IPAddr))),
		App:      string(claims.AppID),
		Resource: strings.ToLower(firstNonEmpty(string(a.ResourceID), string(a.ResourceIDLA))),
		Raw:      raw,
	}
	if strings.Contains(e.User, "@") || e.UserID != "" {
		// a user principal; a GUID caller is a service principal (kept as user id)
	} else if isGUID(e.User) {
		e.UserID, e.User = e.User, ""
	}
	if e.ID == "" {
		e.ID = hashID(src, raw)
	}
	p.events = append(p.events, e)
	return nil
}

func activityOutcome(s string) event.Outcome {
	switch strings.ToLower(s) {
	case "success", "succeeded", "resolved", "updated", "active":
		return event.OutcomeSuccess
	case "failure", "failed":
		return event.OutcomeFailure
	}
	return event.OutcomeUnknown
}

func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return false
			}
		} else if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return false
		}
	}
	return true
}

// activityREST is the Activity log REST / alert-payload shape, where
// category, operationName and status are {value, localizedValue} objects.
type activityREST struct {
	EventTimestamp ftime
	EventDataID    fstr `json:"eventDataId"`
	ResourceID     fstr `json:"resourceId"`
	Caller         fstr
	CorrelationID  fstr `json:"correlationId"`
	Category       localized
	OperationName  localized
	EventName      localized
	Status         localized
	Claims         fraw
	HTTPRequest    obj[struct {
		ClientIPAddress fstr `json:"clientIpAddress"`
	}] `json:"httpRequest"`
	Properties obj[struct {
		Severity          fstr
		CompromisedEntity fstr
		AlertDisplayName  fstr `json:"alertDisplayName"`
	}]
}

// localized is a {value, localizedValue} pair; a plain string also reads.
type localized struct{ Value fstr }

func (l *localized) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '{' {
		var v struct{ Value fstr }
		if err := unmarshal(b, &v); err != nil {
			return err
		}
		l.Value = v.Value
		return nil
	}
	return l.Value.UnmarshalJSON(b)
}

func routeActivityREST(pr *probe) mapper { return mapActivityREST }

// mapActivityREST maps the REST shape; a Defender for Cloud alert
// (operation Microsoft.Security/locations/alerts/activate/action) becomes
// mdc.Alert.
func mapActivityREST(p *parser, raw []byte, pr *probe) error {
	var a activityREST
	if err := p.unmarshal(raw, &a); err != nil {
		return fmt.Errorf("azure activity: %w", err)
	}
	op := strings.ToLower(string(a.OperationName.Value))
	e := event.Event{
		ID:       string(a.EventDataID),
		Time:     pickTime(p.received, a.EventTimestamp.Time),
		Received: p.received,
		Source:   "azure.Activity",
		Category: event.CatCloud,
		Type:     event.TypeAudit,
		Action:   op,
		Outcome:  activityOutcome(string(a.Status.Value)),
		User:     event.NormalizeUser(string(a.Caller)),
		SrcIP:    normIP(string(a.HTTPRequest.V.ClientIPAddress)),
		Resource: strings.ToLower(string(a.ResourceID)),
		Raw:      raw,
	}
	if strings.HasPrefix(op, "microsoft.security/locations/alerts/") {
		e.Source, e.Category, e.Type = "mdc.Alert", event.CatAlert, event.TypeAlert
		e.Outcome = event.OutcomeUnknown
		e.Title = firstNonEmpty(string(a.EventName.Value), string(a.Properties.V.AlertDisplayName))
		e.Severity = severityOf(string(a.Properties.V.Severity))
		e.Device = event.NormalizeHost(string(a.Properties.V.CompromisedEntity))
	}
	if e.ID == "" {
		e.ID = hashID(e.Source, raw)
	}
	p.events = append(p.events, e)
	return nil
}

// storageLog is a Storage Analytics resource log (StorageRead/Write/Delete)
// or a Sentinel Storage*Logs row.
type storageLog struct {
	Time            ftime `json:"time"`
	TimeGenerated   ftime
	ResourceID      fstr `json:"resourceId"`
	Category        fstr `json:"category"`
	OperationName   fstr `json:"operationName"`
	StatusCode      fint `json:"statusCode"`
	StatusText      fstr `json:"statusText"`
	CallerIPAddress fstr `json:"callerIpAddress"`
	CorrelationID   fstr `json:"correlationId"`
	URI             fstr `json:"uri"`
	RequesterUpn    fstr
	Identity        obj[struct {
		Type      fstr `json:"type"`
		Requester obj[struct {
			UPN      fstr `json:"upn"`
			ObjectID fstr `json:"objectId"`
			AppID    fstr `json:"appId"`
		}] `json:"requester"`
	}] `json:"identity"`
	Properties obj[struct {
		ResponseBodySize fint `json:"responseBodySize"`
		RequestBodySize  fint `json:"requestBodySize"`
		UserAgentHeader  fstr `json:"userAgentHeader"`
	}] `json:"properties"`
	ResponseBodySize fint
	RequestBodySize  fint
}

func mapStorage(p *parser, raw []byte, pr *probe) error {
	var s storageLog
	if err := p.unmarshal(raw, &s); err != nil {
		return fmt.Errorf("storage log: %w", err)
	}
	rid := strings.ToLower(string(s.ResourceID))
	table := str(pr.typ)
	if table == "" {
		table = "StorageBlobLogs"
		switch {
		case strings.Contains(rid, "/fileservices/"):
			table = "StorageFileLogs"
		case strings.Contains(rid, "/queueservices/"):
			table = "StorageQueueLogs"
		case strings.Contains(rid, "/tableservices/"):
			table = "StorageTableLogs"
		}
	}
	src := "storage." + table
	e := event.Event{
		Time:     pickTime(p.received, s.Time.Time, s.TimeGenerated.Time),
		Received: p.received,
		Source:   src,
		Category: event.CatCloud,
		Type:     event.TypeRequest,
		Action:   string(s.OperationName),
		User:     event.NormalizeUser(firstNonEmpty(string(s.Identity.V.Requester.V.UPN), string(s.RequesterUpn))),
		UserID:   string(s.Identity.V.Requester.V.ObjectID),
		App:      string(s.Identity.V.Requester.V.AppID),
		SrcIP:    normIP(string(s.CallerIPAddress)),
		Resource: rid,
		URL:      string(s.URI),
		BytesOut: int64(max(s.Properties.V.ResponseBodySize, s.ResponseBodySize)),
		BytesIn:  int64(max(s.Properties.V.RequestBodySize, s.RequestBodySize)),
		Raw:      raw,
	}
	switch {
	case s.StatusCode >= 200 && s.StatusCode < 400:
		e.Outcome = event.OutcomeSuccess
	case s.StatusCode >= 400:
		e.Outcome = event.OutcomeFailure
	default:
		e.Outcome = event.OutcomeUnknown
	}
	e.ID = hashID(src, raw)
	p.events = append(p.events, e)
	return nil
}

// appRow is an Application Insights row (workspace-based export or table).
type appRow struct {
	Time                  ftime `json:"time"`
	TimeGenerated         ftime
	Type                  fstr
	ResourceID            fstr `json:"resourceId"`
	ID                    fstr `json:"Id"`
	Name                  fstr
	OperationName         fstr
	URL                   fstr `json:"Url"`
	Success               fbool
	ResultCode            fstr
	ClientIP              fstr
	Target                fstr
	ProblemID             fstr `json:"ProblemId"`
	OuterMessage          fstr
	Message               fstr
	SeverityLevel         fstr
	UserAuthenticatedID   fstr `json:"UserAuthenticatedId"`
	ClientCountryOrRegion fstr
}

func mapAppInsights(p *parser, raw []byte, pr *probe) error {
	var a appRow
	if err := p.unmarshal(raw, &a); err != nil {
		return fmt.Errorf("app insights: %w", err)
	}
	table := firstNonEmpty(string(a.Type), str(pr.category))
	src := "appinsights." + table
	e := event.Event{
		Time:     pickTime(p.received, a.Time.Time, a.TimeGenerated.Time),
		Received: p.received,
		Source:   src,
		Category: event.CatApp,
		Type:     event.TypeOther,
		Action:   firstNonEmpty(string(a.Name), string(a.OperationName)),
		Outcome:  event.OutcomeUnknown,
		URL:      string(a.URL),
		SrcIP:    normIP(string(a.ClientIP)),
		User:     event.NormalizeUser(string(a.UserAuthenticatedID)),
		Resource: strings.ToLower(string(a.ResourceID)),
		Raw:      raw,
	}
	switch table {
	case "AppRequests", "AppDependencies", "AppPageViews", "AppAvailabilityResults":
		e.Type = event.TypeRequest
		if a.Success.Set {
			e.Outcome = event.OutcomeFailure
			if a.Success.V {
				e.Outcome = event.OutcomeSuccess
			}
		}
		if table == "AppDependencies" {
			e.Domain = strings.ToLower(string(a.Target))
		}
	case "AppExceptions":
		e.Outcome = event.OutcomeFailure
		e.Title = firstNonEmpty(string(a.OuterMessage), string(a.ProblemID))
		e.Severity = appSeverity(string(a.SeverityLevel))
	case "AppTraces":
		e.Title = truncate(string(a.Message), 256)
	}
	if a.ID != "" {
		e.ID = table + ":" + string(a.ID)
	} else {
		e.ID = hashID(src, raw)
	}
	p.events = append(p.events, e)
	return nil
}

// fwStructured is an AZFW* resource-specific firewall record; its fields
// sit under properties (diagnostic form) or at the top (table row).
type fwStructured struct {
	Time            ftime `json:"time"`
	TimeGenerated   ftime
	ResourceID      fstr `json:"resourceId"`
	Protocol        fstr
	SourceIP        fstr `json:"SourceIp"`
	SourcePort      fint
	DestinationIP   fstr `json:"DestinationIp"`
	DestinationPort fint
	Action          fstr
	Fqdn            fstr
	TargetURL       fstr `json:"TargetUrl"`
	URL             fstr `json:"Url"`
	QueryName       fstr
	Rule            fstr
	Policy          fstr
	ThreatDesc      fstr `json:"ThreatDescription"`
	Description     fstr
	Severity        fstr
	SignatureID     fstr `json:"SignatureId"`
}

func mapFirewallStructured(p *parser, raw []byte, pr *probe) error {
	var top, f fwStructured
	if err := p.unmarshal(raw, &top); err != nil {
		return fmt.Errorf("firewall: %w", err)
	}
	f = top
	if pr.properties != nil {
		if err := p.unmarshal(pr.properties, &f); err != nil {
			return fmt.Errorf("firewall properties: %w", err)
		}
		f.Time, f.ResourceID = top.Time, top.ResourceID
	}
	table := firstNonEmpty(str(pr.category), str(pr.typ))
	src := "firewall." + table
	e := event.Event{
		Time:     pickTime(p.received, f.Time.Time, f.TimeGenerated.Time),
		Received: p.received,
		Source:   src,
		Category: event.CatNetwork,
		Type:     event.TypeNetwork,
		Action:   strings.ToLower(string(f.Action)),
		Outcome:  firewallOutcome(string(f.Action)),
		SrcIP:    normIP(string(f.SourceIP)),
		SrcPort:  int(f.SourcePort),
		DstIP:    normIP(string(f.DestinationIP)),
		DstPort:  int(f.DestinationPort),
		Protocol: strings.ToLower(string(f.Protocol)),
		Domain:   strings.ToLower(firstNonEmpty(string(f.Fqdn), string(f.QueryName))),
		URL:      firstNonEmpty(string(f.TargetURL), string(f.URL)),
		Resource: strings.ToLower(string(f.ResourceID)),
		Raw:      raw,
	}
	switch table {
	case "AZFWDnsQuery":
		e.Type = event.TypeDNS
		e.Outcome = event.OutcomeUnknown
	case "AZFWThreatIntel", "AZFWIdpsSignature":
		e.Category, e.Type = event.CatNetwork, event.TypeAlert
		e.Title = firstNonEmpty(string(f.ThreatDesc), string(f.Description))
		e.Severity = severityOf(string(f.Severity))
	}
	e.ID = hashID(src, raw)
	p.events = append(p.events, e)
	return nil
}

func firewallOutcome(action string) event.Outcome {
	switch strings.ToLower(strings.TrimRight(strings.TrimSpace(action), ".")) {
	case "allow", "allowed", "dnat", "snat":
		return event.OutcomeSuccess
	case "deny", "denied", "drop", "block", "blocked":
		return event.OutcomeFailure
	}
	return event.OutcomeUnknown
}

// The legacy (AzureDiagnostics) firewall log keeps everything in a free-text
// msg. These patterns are deliberately loose: trailing spaces, doubled
// periods and missing ports all occur.
var (
	fwFlowRe   = regexp.MustCompile(`^\s*(\S+?)(?: Type=\d+)? request from ([0-9A-Fa-f.:\[\]]+?)(?::(\d*))? to ([^\s:]+|\[[^\]]+\])(?::(\d*))?\.?(?:\s|$)`)
	fwActionRe = regexp.MustCompile(`Action:\s*([A-Za-z]+)`)
	fwDNATRe   = regexp.MustCompile(`DNAT'ed to ([0-9A-Fa-f.:]+?)(?::(\d+))?[\s.]*$`)
	fwURLRe    = regexp.MustCompile(`Url:\s*(\S+?)\.?(?:\s|$)`)
	fwRuleRe   = regexp.MustCompile(`Rule:\s*([^.]+)`)
)

type fwLegacy struct {
	Time          ftime `json:"time"`
	TimeGenerated ftime
	ResourceID    fstr `json:"resourceId"`
	Category      fstr `json:"category"`
	Msg           fstr `json:"msg"`
	MsgS          fstr `json:"msg_s"`
	Properties    obj[struct {
		Msg fstr `json:"msg"`
	}] `json:"properties"`
}

func mapFirewallLegacy(p *parser, raw []byte, pr *probe) error {
	var f fwLegacy
	if err := p.unmarshal(raw, &f); err != nil {
		return fmt.Errorf("firewall: %w", err)
	}
	cat := firstNonEmpty(string(f.Category), "AzureFirewallNetworkRule")
	msg := firstNonEmpty(string(f.Properties.V.Msg), string(f.Msg), string(f.MsgS))
	src := "firewall." + cat
	e := event.Event{
		Time:     pickTime(p.received, f.Time.Time, f.TimeGenerated.Time),
		Received: p.received,
		Source:   src,
		Category: event.CatNetwork,
		Type:     event.TypeNetwork,
		Outcome:  event.OutcomeUnknown,
		Resource: strings.ToLower(string(f.ResourceID)),
		Raw:      raw,
	}
	if cat == "AzureFirewallDnsProxy" {
		e.Type = event.TypeDNS
	}
	parseFirewallMsg(&e, msg)
	if strings.Contains(msg, "DNAT'ed") {
		e.Source = "firewall.AzureFirewallNatRule"
	}
	e.ID = hashID(e.Source, raw)
	p.events = append(p.events, e)
	return nil
}

// parseFirewallMsg fills the network fields from a legacy firewall msg.
func parseFirewallMsg(e *event.Event, msg string) {
	if m := fwFlowRe.FindStringSubmatch(msg); m != nil {
		e.Protocol = strings.ToLower(m[1])
		e.SrcIP = normIP(strings.Trim(m[2], "[]"))
		e.SrcPort, _ = strconv.Atoi(m[3])
		dst := strings.Trim(m[4], "[]")
		if ip := normIP(dst); ip != "" {
			e.DstIP = ip
		} else {
			e.Domain = strings.ToLower(strings.TrimRight(dst, "."))
		}
		e.DstPort, _ = strconv.Atoi(m[5])
	}
	if m := fwActionRe.FindStringSubmatch(msg); m != nil {
		e.Action = strings.ToLower(m[1])
		e.Outcome = firewallOutcome(m[1])
		if e.Action == "alert" {
			e.Type = event.TypeAlert
			e.Title = msg
		}
	}
	if m := fwURLRe.FindStringSubmatch(msg); m != nil {
		e.URL = m[1]
	}
	if m := fwDNATRe.FindStringSubmatch(msg); m != nil && e.Action == "" {
		e.Action = "dnat"
		e.Outcome = event.OutcomeSuccess
	}
	_ = fwRuleRe
}

// asimRow is an ASIM NetworkSession row (the parsers' output over
// AzureDiagnostics firewall logs), and the AzureDiagnostics legacy form.
type asimRow struct {
	TimeGenerated  ftime
	EventStartTime ftime
	SrcIPAddr      fstr `json:"SrcIpAddr"`
	SrcPortNumber  fint
	DstIPAddr      fstr `json:"DstIpAddr"`
	DstPortNumber  fint
	NetworkProto   fstr `json:"NetworkProtocol"`
	DvcAction      fstr
	EventResult    fstr
	EventSeverity  fstr
	EventProduct   fstr
	DvcID          fstr `json:"DvcId"`
	ResourceID     fstr `json:"_ResourceId"`
	Category       fstr
	MsgS           fstr `json:"msg_s"`
}

func mapAzureDiagnostics(p *parser, raw []byte, pr *probe) error {
	var a asimRow
	if err := p.unmarshal(raw, &a); err != nil {
		return fmt.Errorf("azure diagnostics: %w", err)
	}
	if a.SrcIPAddr == "" && a.MsgS != "" || strings.HasPrefix(string(a.Category), "AzureFirewall") {
		return mapFirewallLegacy(p, raw, pr)
	}
	src := "firewall.NetworkSession"
	e := event.Event{
		Time:     pickTime(p.received, a.EventStartTime.Time, a.TimeGenerated.Time),
		Received: p.received,
		Source:   src,
		Category: event.CatNetwork,
		Type:     event.TypeNetwork,
		Action:   strings.ToLower(string(a.DvcAction)),
		Outcome:  firewallOutcome(string(a.DvcAction)),
		SrcIP:    normIP(string(a.SrcIPAddr)),
		SrcPort:  int(a.SrcPortNumber),
		DstIP:    normIP(string(a.DstIPAddr)),
		DstPort:  int(a.DstPortNumber),
		Protocol: strings.ToLower(string(a.NetworkProto)),
		Resource: strings.ToLower(firstNonEmpty(string(a.ResourceID), string(a.DvcID))),
		Raw:      raw,
	}
	if e.Outcome == event.OutcomeUnknown {
		e.Outcome = activityOutcome(string(a.EventResult))
	}
	e.ID = hashID(src, raw)
	p.events = append(p.events, e)
	return nil
}

// appSeverity maps App Insights SeverityLevel (0 Verbose … 4 Critical).
func appSeverity(s string) string {
	switch s {
	case "0", "1", "Verbose", "Information":
		return "informational"
	case "2", "Warning":
		return "low"
	case "3", "Error":
		return "medium"
	case "4", "Critical":
		return "high"
	}
	return severityOf(s)
}
