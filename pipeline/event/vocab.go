package event

// Category is the broad family of an event. The vocabulary is closed: a
// parser picks one of these, and rules may rely on it.
//
//	| category | sources                                                   |
//	|----------|-----------------------------------------------------------|
//	| identity | Entra sign-ins and audit, Defender for Identity, risk      |
//	| endpoint | Defender for Endpoint Device* tables                       |
//	| network  | NSG/VNet flows, Azure Firewall, CEF firewalls, DNS         |
//	| cloud    | Azure Activity, Defender for Cloud, storage, cloud apps    |
//	| email    | Defender for Office 365 Email* tables, URL clicks          |
//	| app      | Application Insights, syslog applications                  |
//	| alert    | alerts from other products and from Vigil's own rules      |
type Category string

const (
	CatIdentity Category = "identity"
	CatEndpoint Category = "endpoint"
	CatNetwork  Category = "network"
	CatCloud    Category = "cloud"
	CatEmail    Category = "email"
	CatApp      Category = "app"
	CatAlert    Category = "alert"
)

// Event types. Type says what shape of activity happened, independent of
// the source; Action keeps the source's own verb.
//
//	| type      | meaning                                              |
//	|-----------|------------------------------------------------------|
//	| logon     | an authentication attempt (sign-in, network logon)   |
//	| process   | a process started                                    |
//	| network   | a connection or flow                                 |
//	| dns       | a name lookup                                        |
//	| file      | a file created, modified, renamed, deleted           |
//	| registry  | a registry key or value changed                      |
//	| audit     | a directory / control-plane change                   |
//	| alert     | a detection raised by a product or rule              |
//	| email     | a message delivered, its attachments and URLs        |
//	| url_click | a user clicked a URL                                 |
//	| request   | an application or storage request                    |
//	| other     | anything else (DeviceEvents catch-all, traces)       |
const (
	TypeLogon    = "logon"
	TypeProcess  = "process"
	TypeNetwork  = "network"
	TypeDNS      = "dns"
	TypeFile     = "file"
	TypeRegistry = "registry"
	TypeAudit    = "audit"
	TypeAlert    = "alert"
	TypeEmail    = "email"
	TypeURLClick = "url_click"
	TypeRequest  = "request"
	TypeOther    = "other"
)

// Outcome says whether the activity succeeded.
type Outcome string

const (
	OutcomeSuccess Outcome = "success"
	OutcomeFailure Outcome = "failure"
	OutcomeUnknown Outcome = "unknown"
)
