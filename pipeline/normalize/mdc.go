package normalize

import (
	"fmt"
	"strings"

	"github.com/vigil-sec/vigil/pipeline/event"
)

// mdcAlert reads a Defender for Cloud alert in the continuous-export
// (PascalCase), REST properties (camelCase) and Sentinel SecurityAlert
// shapes; the decoder matches names case-insensitively.
type mdcAlert struct {
	SystemAlertID       fstr `json:"SystemAlertId"`
	AlertType           fstr
	AlertDisplayName    fstr
	AlertName           fstr
	Severity            fstr
	AlertSeverity       fstr
	Status              fstr
	StartTimeUtc        ftime
	StartTime           ftime
	TimeGenerated       ftime
	TimeGeneratedUtc    ftime
	CompromisedEntity   fstr
	AzureResourceID     fstr `json:"AzureResourceId"`
	ProductName         fstr
	ResourceIdentifiers []struct {
		AzureResourceID fstr `json:"AzureResourceId"`
		Type            fstr
	}
	Entities fraw
}

// mdcEntity is one entity of an alert. Entities reference each other with
// $id/$ref; nested members can be a full entity or a reference.
type mdcEntity struct {
	ID            fstr `json:"$id"`
	Ref           fstr `json:"$ref"`
	Type          fstr
	Address       fstr
	HostName      fstr
	NetBiosName   fstr
	DNSDomain     fstr `json:"DnsDomain"`
	Name          fstr
	NTDomain      fstr `json:"NTDomain"`
	UPNSuffix     fstr `json:"UPNSuffix"`
	AADUserID     fstr `json:"AadUserId"`
	CommandLine   fstr
	HostIPAddress *mdcEntity  `json:"HostIpAddress"`
	IPAdresses    []mdcEntity `json:"IpAdresses"`
	IPAddresses   []mdcEntity `json:"IpAddresses"`
	Host          *mdcEntity
	Account       *mdcEntity
	ParentProcess *mdcEntity
}

// entityIndex collects entity definitions. Every $ref points to a
// definition made elsewhere in the same list (top level or nested, e.g. a
// host inside a process), so collecting the definitions, and skipping the
// references, yields each entity once with its fields.
type entityIndex struct {
	all []*mdcEntity
}

func (x *entityIndex) collect(e *mdcEntity) {
	if e == nil {
		return
	}
	if e.Ref == "" && e.Type != "" {
		x.all = append(x.all, e)
	}
	x.collect(e.HostIPAddress)
	x.collect(e.Host)
	x.collect(e.Account)
	x.collect(e.ParentProcess)
	for i := range e.IPAdresses {
		x.collect(&e.IPAdresses[i])
	}
	for i := range e.IPAddresses {
		x.collect(&e.IPAddresses[i])
	}
}

// applyEntities resolves the alert's entities and copies users, hosts and
// IPs into the event's typed fields (first of each) and Related.
func applyEntities(e *event.Event, raw []byte) {
	if len(raw) == 0 {
		return
	}
	var list []mdcEntity
	if err := unmarshal(raw, &list); err != nil {
		return // entities are enrichment; a bad list must not cost the alert
	}
	var x entityIndex
	for i := range list {
		x.collect(&list[i])
	}
	for _, ent := range x.all {
		switch strings.ToLower(string(ent.Type)) {
		case "ip":
			e.Related.IPs = addUnique(e.Related.IPs, normIP(string(ent.Address)))
		case "host":
			h := firstNonEmpty(string(ent.HostName), string(ent.NetBiosName))
			e.Related.Devices = addUnique(e.Related.Devices, event.NormalizeHost(h))
		case "account":
			u := ""
			if ent.UPNSuffix != "" {
				u = userOf(string(ent.Name)+"@"+string(ent.UPNSuffix), "", "")
			} else {
				u = userOf("", string(ent.NTDomain), string(ent.Name))
			}
			e.Related.Users = addUnique(e.Related.Users, u)
		case "process":
			if e.Process.CommandLine == "" {
				e.Process.CommandLine = string(ent.CommandLine)
			}
		}
	}
	if e.User == "" && len(e.Related.Users) > 0 {
		e.User = e.Related.Users[0]
	}
	if e.Device == "" && len(e.Related.Devices) > 0 {
		e.Device = e.Related.Devices[0]
	}
	if e.SrcIP == "" && len(e.Related.IPs) > 0 {
		e.SrcIP = e.Related.IPs[0]
	}
}

func (p *parser) mdcAlertEvent(a *mdcAlert, src string, raw []byte) {
	res := string(a.AzureResourceID)
	for _, ri := range a.ResourceIdentifiers {
		if res == "" && ri.AzureResourceID != "" {
			res = string(ri.AzureResourceID)
		}
	}
	e := event.Event{
		ID:       string(a.SystemAlertID),
		Time:     pickTime(p.received, a.StartTimeUtc.Time, a.StartTime.Time, a.TimeGeneratedUtc.Time, a.TimeGenerated.Time),
		Received: p.received,
		Source:   src,
		Category: event.CatAlert,
		Type:     event.TypeAlert,
		Action:   string(a.AlertType),
		Outcome:  event.OutcomeUnknown,
		Title:    firstNonEmpty(string(a.AlertDisplayName), string(a.AlertName)),
		Severity: severityOf(firstNonEmpty(string(a.Severity), string(a.AlertSeverity))),
		Device:   event.NormalizeHost(string(a.CompromisedEntity)),
		Resource: strings.ToLower(res),
		Raw:      raw,
	}
	applyEntities(&e, a.Entities)
	if e.ID == "" {
		e.ID = hashID(src, raw)
	}
	p.events = append(p.events, e)
}

// mapMDCExport maps the continuous-export alert object.
func mapMDCExport(p *parser, raw []byte, pr *probe) error {
	var a mdcAlert
	if err := p.unmarshal(raw, &a); err != nil {
		return fmt.Errorf("defender for cloud alert: %w", err)
	}
	p.mdcAlertEvent(&a, "mdc.Alert", raw)
	return nil
}

// mapMDCRest maps the Alerts REST API object {id, name, type, properties}.
func mapMDCRest(p *parser, raw []byte, pr *probe) error {
	if pr.properties == nil {
		return fmt.Errorf("defender for cloud alert: no properties")
	}
	var a mdcAlert
	if err := p.unmarshal(pr.properties, &a); err != nil {
		return fmt.Errorf("defender for cloud alert: %w", err)
	}
	p.mdcAlertEvent(&a, "mdc.Alert", raw)
	return nil
}

// mapSecurityAlert maps a Sentinel SecurityAlert row.
func mapSecurityAlert(p *parser, raw []byte, pr *probe) error {
	var a mdcAlert
	if err := p.unmarshal(raw, &a); err != nil {
		return fmt.Errorf("security alert: %w", err)
	}
	p.mdcAlertEvent(&a, "sentinel.SecurityAlert", raw)
	return nil
}

// assessment is a continuous-export Microsoft.Security/assessments object.
type assessment struct {
	ID         fstr `json:"id"`
	Properties obj[struct {
		DisplayName     fstr
		ResourceDetails obj[struct{ ID fstr }]
		Status          obj[struct {
			Code             fstr
			StatusChangeDate ftime
		}]
		Metadata obj[struct{ Severity fstr }]
	}]
	Enrichment obj[struct{ Action fstr }] `json:"assessmentEventDataEnrichment"`
}

func mapMDCAssessment(p *parser, raw []byte, pr *probe) error {
	var a assessment
	if err := p.unmarshal(raw, &a); err != nil {
		return fmt.Errorf("defender for cloud assessment: %w", err)
	}
	pp := a.Properties.V
	const src = "mdc.Assessment"
	e := event.Event{
		ID:       hashID(src, raw), // one assessment id is re-exported on every change
		Time:     pickTime(p.received, pp.Status.V.StatusChangeDate.Time),
		Received: p.received,
		Source:   src,
		Category: event.CatCloud,
		Type:     event.TypeOther,
		Action:   string(a.Enrichment.V.Action),
		Title:    string(pp.DisplayName),
		Severity: severityOf(string(pp.Metadata.V.Severity)),
		Resource: strings.ToLower(string(pp.ResourceDetails.V.ID)),
		Raw:      raw,
	}
	switch strings.ToLower(string(pp.Status.V.Code)) {
	case "healthy":
		e.Outcome = event.OutcomeSuccess
	case "unhealthy":
		e.Outcome = event.OutcomeFailure
	default:
		e.Outcome = event.OutcomeUnknown
	}
	p.events = append(p.events, e)
	return nil
}
