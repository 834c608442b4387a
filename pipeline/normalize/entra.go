package normalize

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/pipeline/event"
)

// diagTop is the top level of an Azure Monitor diagnostic-settings record.
// Sentinel rows use the same names in PascalCase, which the decoder
// matches case-insensitively, so this also reads those rows' top-level
// columns.
type diagTop struct {
	Time            ftime `json:"time"`
	TimeGenerated   ftime
	Category        fstr `json:"category"`
	OperationName   fstr `json:"operationName"`
	ResultType      fstr `json:"resultType"`
	ResultSignature fstr `json:"resultSignature"`
	CallerIPAddress fstr `json:"callerIpAddress"`
	CorrelationID   fstr `json:"correlationId"`
	Location        fstr `json:"location"`
	ResourceID      fstr `json:"resourceId"`
	Properties      skip `json:"properties"`
}

// skip consumes a value without keeping it (the span is probed already).
type skip struct{}

func (*skip) UnmarshalJSON([]byte) error { return nil }

// signIn is an Entra sign-in: the properties of a diagnostic record, or a
// Sentinel SigninLogs row (same names, PascalCase, plus the top-level
// columns).
type signIn struct {
	ID                  fstr `json:"id"`
	CreatedDateTime     ftime
	TimeGenerated       ftime
	UserPrincipalName   fstr
	UserID              fstr `json:"userId"`
	UserDisplayName     fstr
	AppID               fstr `json:"appId"`
	AppDisplayName      fstr
	ResourceDisplayName fstr
	IPAddress           fstr `json:"ipAddress"`
	ServicePrincipalID  fstr `json:"servicePrincipalId"`
	ServicePrincipal    fstr `json:"servicePrincipalName"`
	ResultType          fstr
	Category            fstr
	Status              obj[struct {
		ErrorCode     fint
		FailureReason fstr
	}]
	DeviceDetail obj[struct {
		DeviceID    fstr `json:"deviceId"`
		DisplayName fstr
	}]
	// Location is properties.location (an object) in the diagnostic form
	// and the country code (a string) in Sentinel, where the object is
	// LocationDetails.
	Location              signInLocation
	LocationDetails       signInLocation
	RiskLevelDuringSignIn fstr
}

type signInLocation struct {
	CountryOrRegion fstr
}

func (l *signInLocation) UnmarshalJSON(b []byte) error {
	switch {
	case len(b) > 0 && b[0] == '"':
		l.CountryOrRegion = fstr(jsonString(b))
	case len(b) > 0 && b[0] == '{':
		var v struct{ CountryOrRegion fstr }
		if err := unmarshal(b, &v); err != nil {
			return err
		}
		l.CountryOrRegion = v.CountryOrRegion
	}
	return nil
}

// signInSources maps categories and Sentinel tables to Source names.
var signInSources = map[string]string{
	"SignInLogs":                          "entra.SignInLogs",
	"SigninLogs":                          "entra.SignInLogs",
	"NonInteractiveUserSignInLogs":        "entra.NonInteractiveUserSignInLogs",
	"AADNonInteractiveUserSignInLogs":     "entra.NonInteractiveUserSignInLogs",
	"ServicePrincipalSignInLogs":          "entra.ServicePrincipalSignInLogs",
	"AADServicePrincipalSignInLogs":       "entra.ServicePrincipalSignInLogs",
	"ManagedIdentitySignInLogs":           "entra.ManagedIdentitySignInLogs",
	"AADManagedIdentitySignInLogs":        "entra.ManagedIdentitySignInLogs",
	"MicrosoftServicePrincipalSignInLogs": "entra.MicrosoftServicePrincipalSignInLogs",
	"ADFSSignInLogs":                      "entra.ADFSSignInLogs",
}

// diagOrRow decodes the top level and returns the span holding the
// source's own fields: properties for a diagnostic record, the row itself
// for a Sentinel row.
func diagOrRow(raw []byte, pr *probe) (diagTop, []byte, error) {
	var top diagTop
	if err := unmarshal(raw, &top); err != nil {
		return top, nil, err
	}
	if pr.properties != nil && pr.typ == nil {
		return top, pr.properties, nil
	}
	return top, raw, nil
}

func mapSignIn(p *parser, raw []byte, pr *probe) error {
	top, body, err := diagOrRow(raw, pr)
	if err != nil {
		return fmt.Errorf("entra sign-in: %w", err)
	}
	var s signIn
	if err := p.unmarshal(body, &s); err != nil {
		return fmt.Errorf("entra sign-in: %w", err)
	}
	kind := firstNonEmpty(str(pr.category), str(pr.typ))
	src := signInSources[kind]
	if src == "" {
		src = "entra.SignInLogs"
	}
	e := event.Event{
		ID:       string(s.ID),
		Time:     pickTime(p.received, s.CreatedDateTime.Time, top.Time.Time, s.TimeGenerated.Time),
		Received: p.received,
		Source:   src,
		Category: event.CatIdentity,
		Type:     event.TypeLogon,
		Action:   firstNonEmpty(string(top.OperationName), "Sign-in activity"),
		User:     event.NormalizeUser(string(s.UserPrincipalName)),
		UserID:   firstNonEmpty(string(s.UserID), string(s.ServicePrincipalID)),
		Device:   event.NormalizeHost(string(s.DeviceDetail.V.DisplayName)),
		DeviceID: string(s.DeviceDetail.V.DeviceID),
		SrcIP:    normIP(firstNonEmpty(string(s.IPAddress), string(top.CallerIPAddress))),
		App:      firstNonEmpty(string(s.AppDisplayName), string(s.ServicePrincipal), string(s.AppID)),
		Country:  strings.ToUpper(firstNonEmpty(string(s.Location.CountryOrRegion), string(s.LocationDetails.CountryOrRegion), string(top.Location))),
		Raw:      raw,
	}
	code := firstNonEmpty(string(top.ResultType), string(s.ResultType))
	switch {
	case code == "0" || (code == "" && s.Status.V.ErrorCode == 0 && s.Status.V.FailureReason == ""):
		e.Outcome = event.OutcomeSuccess
	case code != "" || s.Status.V.ErrorCode != 0:
		e.Outcome = event.OutcomeFailure
	default:
		e.Outcome = event.OutcomeUnknown
	}
	if e.ID == "" {
		e.ID = hashID(src, raw)
	}
	p.events = append(p.events, e)
	return nil
}

// audit is an Entra audit record's properties, or a Sentinel AuditLogs row.
type audit struct {
	ID                  fstr `json:"id"`
	Category            fstr
	ActivityDisplayName fstr
	OperationName       fstr
	ActivityDateTime    ftime
	TimeGenerated       ftime
	OperationType       fstr
	AADOperationType    fstr
	Result              fstr
	LoggedByService     fstr
	InitiatedBy         fraw
	TargetResources     fraw
}

type auditInitiator struct {
	User obj[struct {
		ID                fstr `json:"id"`
		UserPrincipalName fstr
		IPAddress         fstr `json:"ipAddress"`
	}]
	App obj[struct {
		AppID                fstr `json:"appId"`
		DisplayName          fstr
		ServicePrincipalID   fstr `json:"servicePrincipalId"`
		ServicePrincipalName fstr
	}]
}

type auditTarget struct {
	ID                fstr `json:"id"`
	Type              fstr
	UserPrincipalName fstr
}

func mapAudit(p *parser, raw []byte, pr *probe) error {
	top, body, err := diagOrRow(raw, pr)
	if err != nil {
		return fmt.Errorf("entra audit: %w", err)
	}
	var a audit
	if err := p.unmarshal(body, &a); err != nil {
		return fmt.Errorf("entra audit: %w", err)
	}
	const src = "entra.AuditLogs"
	e := event.Event{
		ID:       string(a.ID),
		Time:     pickTime(p.received, a.ActivityDateTime.Time, top.Time.Time, a.TimeGenerated.Time),
		Received: p.received,
		Source:   src,
		Category: event.CatIdentity,
		Type:     event.TypeAudit,
		Action:   strings.TrimSpace(firstNonEmpty(string(a.ActivityDisplayName), string(top.OperationName), string(a.OperationName))),
		Raw:      raw,
	}
	switch strings.ToLower(string(a.Result)) {
	case "success", "0":
		e.Outcome = event.OutcomeSuccess
	case "failure", "1":
		e.Outcome = event.OutcomeFailure
	default:
		e.Outcome = event.OutcomeUnknown
	}
	if len(a.InitiatedBy) > 0 {
		var in auditInitiator
		if err := p.unmarshal(a.InitiatedBy, &in); err == nil {
			e.User = event.NormalizeUser(string(in.User.V.UserPrincipalName))
			e.UserID = string(in.User.V.ID)
			e.SrcIP = normIP(string(in.User.V.IPAddress))
			if e.User == "" {
				e.App = firstNonEmpty(string(in.App.V.DisplayName), string(in.App.V.ServicePrincipalName), string(in.App.V.AppID))
				e.UserID = firstNonEmpty(string(in.App.V.ServicePrincipalID), string(in.App.V.AppID))
			}
		}
	}
	if e.SrcIP == "" {
		e.SrcIP = normIP(string(top.CallerIPAddress))
	}
	if len(a.TargetResources) > 0 {
		var targets []auditTarget
		if err := p.unmarshal(a.TargetResources, &targets); err == nil {
			for _, t := range targets {
				e.Related.Users = addUnique(e.Related.Users, event.NormalizeUser(string(t.UserPrincipalName)))
			}
		}
	}
	if e.ID == "" {
		e.ID = hashID(src, raw)
	}
	p.events = append(p.events, e)
	return nil
}

// risk is an Identity Protection risk detection (UserRiskEvents) or risky
// user / service principal (RiskyUsers) record.
type risk struct {
	ID                      fstr `json:"id"`
	RiskEventType           fstr
	RiskLevel               fstr
	RiskState               fstr
	RiskDetail              fstr
	Activity                fstr
	IPAddress               fstr `json:"ipAddress"`
	UserPrincipalName       fstr
	UserID                  fstr `json:"userId"`
	ServicePrincipalID      fstr `json:"servicePrincipalId"`
	AppID                   fstr `json:"appId"`
	DisplayName             fstr
	DetectedDateTime        ftime
	ActivityDateTime        ftime
	RiskLastUpdatedDateTime ftime
	LastUpdatedDateTime     ftime
	TimeGenerated           ftime
	Location                signInLocation
}

var riskSources = map[string]string{
	"RiskyUsers":                 "entra.RiskyUsers",
	"AADRiskyUsers":              "entra.RiskyUsers",
	"UserRiskEvents":             "entra.UserRiskEvents",
	"AADUserRiskEvents":          "entra.UserRiskEvents",
	"RiskyServicePrincipals":     "entra.RiskyServicePrincipals",
	"ServicePrincipalRiskEvents": "entra.ServicePrincipalRiskEvents",
}

func mapRisk(p *parser, raw []byte, pr *probe) error {
	top, body, err := diagOrRow(raw, pr)
	if err != nil {
		return fmt.Errorf("entra risk: %w", err)
	}
	var r risk
	if err := p.unmarshal(body, &r); err != nil {
		return fmt.Errorf("entra risk: %w", err)
	}
	src := riskSources[firstNonEmpty(str(pr.category), str(pr.typ))]
	if src == "" {
		return errors.New("entra risk: unknown category")
	}
	e := event.Event{
		ID:       string(r.ID),
		Time:     pickTime(p.received, r.DetectedDateTime.Time, r.ActivityDateTime.Time, r.RiskLastUpdatedDateTime.Time, r.LastUpdatedDateTime.Time, top.Time.Time, r.TimeGenerated.Time),
		Received: p.received,
		Source:   src,
		Category: event.CatIdentity,
		Type:     event.TypeAlert,
		Action:   firstNonEmpty(string(r.RiskEventType), string(r.RiskState)),
		Outcome:  event.OutcomeUnknown,
		Severity: severityOf(string(r.RiskLevel)),
		Title:    firstNonEmpty(string(r.RiskEventType), string(r.RiskDetail), "risky principal"),
		User:     event.NormalizeUser(string(r.UserPrincipalName)),
		UserID:   firstNonEmpty(string(r.UserID), string(r.ServicePrincipalID)),
		SrcIP:    normIP(string(r.IPAddress)),
		App:      string(r.AppID),
		Country:  strings.ToUpper(string(r.Location.CountryOrRegion)),
		Raw:      raw,
	}
	if e.ID == "" {
		e.ID = hashID(src, raw)
	} else if src == "entra.RiskyUsers" || src == "entra.RiskyServicePrincipals" {
		// A risky-user record is a state that changes under one id.
		e.ID = e.ID + ":" + e.Time.Format(time.RFC3339Nano)
	}
	p.events = append(p.events, e)
	return nil
}
