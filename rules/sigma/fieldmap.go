package sigma

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/vigil-sec/vigil/pipeline/event"
)

// kind is the static type of a field expression, which decides how values
// are compared against it.
type kind int

const (
	kString kind = iota // typed string field
	kInt                // typed integer field
	kAny                // from Fields: untyped, may be absent, string, number or bool
)

// fieldRef is a Sigma field resolved to a Vigil expression.
type fieldRef struct {
	expr string
	kind kind
	// name, if set, is a typed field holding the last path element of
	// expr (Process.Name for Process.Path): `Image|endswith: \cmd.exe`
	// becomes a cheap equality on it.
	name string
	// raw says expr reads the raw record (for the warning).
	raw bool
}

// rawShape says how a source's raw record is laid out, for fields the
// table does not list.
type rawShape int

const (
	rawPlain    rawShape = iota // Fields.<path>
	rawDefender                 // streamed {properties:{row}} or a flat Sentinel row
	rawAzure                    // Sentinel PascalCase columns or diagnostic-settings camelCase under properties
)

// source is what one Sigma logsource maps to.
type source struct {
	name     string // for messages
	filter   string // condition selecting the source's events
	keyspace event.Keyspace
	key      string
	entities []entitySpec
	fields   map[string]fieldRef // by lower-case Sigma field name
	raw      rawShape
}

type entitySpec struct {
	typ   string
	exprs []string
}

// resolve maps a Sigma field name; unknown fields become raw lookups and
// are reported through warn.
func (s *source) resolve(name string, warn func(string)) fieldRef {
	if f, ok := s.fields[strings.ToLower(name)]; ok {
		return f
	}
	f := rawField(name, s.raw)
	warn(fmt.Sprintf("field %s is not in the %s mapping; reading it from the raw record as %s", name, s.name, f.expr))
	return f
}

var identRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// pathExpr renders Fields access along segs with optional chaining.
func pathExpr(root string, segs []string) string {
	var b strings.Builder
	b.WriteString(root)
	for i, s := range segs {
		opt := "?."
		if i == 0 && root == "Fields" {
			opt = "."
		}
		if identRe.MatchString(s) {
			b.WriteString(opt + s)
		} else {
			if i == 0 && root == "Fields" {
				fmt.Fprintf(&b, "[%s]", quote(s))
			} else {
				fmt.Fprintf(&b, "?.[%s]", quote(s))
			}
		}
	}
	return b.String()
}

func lcFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

// rawField reads a Sigma field from the raw record.
func rawField(name string, shape rawShape) fieldRef {
	segs := strings.Split(name, ".")
	var alts []string
	add := func(e string) {
		for _, a := range alts {
			if a == e {
				return
			}
		}
		alts = append(alts, e)
	}
	switch shape {
	case rawDefender:
		add(pathExpr("Fields", append([]string{"properties"}, segs...)))
		add(pathExpr("Fields", segs))
	case rawAzure:
		lc := append([]string{lcFirst(segs[0])}, segs[1:]...)
		add(pathExpr("Fields", segs))
		add(pathExpr("Fields", lc))
		add(pathExpr("Fields", append([]string{"properties"}, lc...)))
	default:
		add(pathExpr("Fields", segs))
	}
	e := alts[0]
	if len(alts) > 1 {
		e = "(" + strings.Join(alts, " ?? ") + ")"
	}
	return fieldRef{expr: e, kind: kAny, raw: true}
}

func typed(e string) fieldRef    { return fieldRef{expr: e, kind: kString} }
func typedInt(e string) fieldRef { return fieldRef{expr: e, kind: kInt} }
func named(e, n string) fieldRef { return fieldRef{expr: e, kind: kString, name: n} }
func dcol(col string) fieldRef   { return rawField(col, rawDefender) }
func computed(e string) fieldRef { return fieldRef{expr: e, kind: kString} }
func dcolNamed(col, n string) fieldRef {
	f := dcol(col)
	f.name = n
	return f
}

// hashes renders Sysmon's Hashes field ("SHA1=..,MD5=..,SHA256=..") from
// the typed hash fields of p (Process or File).
func hashes(p string) fieldRef {
	return computed(fmt.Sprintf(`("SHA1=" + %[1]s.SHA1 + ",MD5=" + %[1]s.MD5 + ",SHA256=" + %[1]s.SHA256)`, p))
}

// registryTarget renders Sysmon's TargetObject (HKLM\...\Key\Value) from
// Defender's RegistryKey (HKEY_LOCAL_MACHINE\...\Key) and RegistryValueName.
var registryTarget = func() fieldRef {
	key := `string(Fields.properties?.RegistryKey ?? Fields.RegistryKey ?? "")`
	for _, r := range [][2]string{
		{"HKEY_LOCAL_MACHINE", "HKLM"}, {"HKEY_USERS", "HKU"}, {"HKEY_CURRENT_USER", "HKU"}, {"HKEY_CLASSES_ROOT", "HKCR"},
	} {
		key = fmt.Sprintf("replace(%s, %q, %q)", key, r[0], r[1])
	}
	val := `string(Fields.properties?.RegistryValueName ?? Fields.RegistryValueName ?? "")`
	f := computed(fmt.Sprintf(`(%s + (%s != "" ? "\\" + %s : ""))`, key, val, val))
	f.raw = true
	return f
}()

// registryEventType renders Sysmon's EventType from Defender's ActionType.
var registryEventType = computed(`(Action == "RegistryValueSet" ? "SetValue" : Action == "RegistryKeyCreated" ? "CreateKey" : ` +
	`Action == "RegistryKeyDeleted" ? "DeleteKey" : Action == "RegistryValueDeleted" ? "DeleteValue" : ` +
	`Action == "RegistryKeyRenamed" ? "RenameKey" : Action)`)

func fieldTable(m map[string]fieldRef) map[string]fieldRef {
	out := make(map[string]fieldRef, len(m))
	for k, v := range m {
		out[strings.ToLower(k)] = v
	}
	return out
}

// Field tables. Sysmon-style names (Sigma's Windows taxonomy) are mapped
// onto Defender for Endpoint tables as normalize fills them
// (pipeline/normalize/defender.go): FolderPath is the full image path, the
// parent is the InitiatingProcess*.
var (
	hostFields = map[string]fieldRef{
		"Computer": typed("Device"), "ComputerName": typed("Device"), "Hostname": typed("Device"),
		"DeviceName": typed("Device"),
	}
	processFields = merge(hostFields, map[string]fieldRef{
		"Image":             named("Process.Path", "Process.Name"),
		"CommandLine":       typed("Process.CommandLine"),
		"ParentImage":       dcolNamed("InitiatingProcessFolderPath", "Process.ParentName"),
		"ParentCommandLine": typed("Process.ParentCommandLine"),
		"User":              typed("User"),
		"OriginalFileName":  dcol("ProcessVersionInfoOriginalFileName"),
		"Product":           dcol("ProcessVersionInfoProductName"),
		"Description":       dcol("ProcessVersionInfoFileDescription"),
		"Company":           dcol("ProcessVersionInfoCompanyName"),
		"IntegrityLevel":    dcol("ProcessIntegrityLevel"),
		"Hashes":            hashes("Process"),
		"md5":               typed("Process.MD5"),
		"sha1":              typed("Process.SHA1"),
		"sha256":            typed("Process.SHA256"),
		"ProcessId":         typedInt("Process.PID"),
		"ParentProcessId":   typedInt("Process.ParentPID"),
		"LogonId":           dcol("LogonId"),
		"ParentUser":        dcol("InitiatingProcessAccountName"),
	})
	initiatorFields = merge(hostFields, map[string]fieldRef{
		"Image":       named("Process.Path", "Process.Name"),
		"CommandLine": typed("Process.CommandLine"),
		"User":        typed("User"),
		"ProcessId":   typedInt("Process.PID"),
	})
	networkFields = merge(initiatorFields, map[string]fieldRef{
		"Protocol":            typed("Protocol"),
		"SourceIp":            typed("SrcIP"),
		"SourcePort":          typedInt("SrcPort"),
		"DestinationIp":       typed("DstIP"),
		"DestinationPort":     typedInt("DstPort"),
		"DestinationHostname": typed("URL"),
		"SourceHostname":      typed("Device"),
		"Initiated":           computed(`((Action startsWith "Inbound" || Action == "ListeningConnectionCreated") ? "false" : "true")`),
	})
	fileFields = merge(initiatorFields, map[string]fieldRef{
		"TargetFilename": named("File.Path", "File.Name"),
		"SourceFilename": dcol("PreviousFolderPath"),
		"Hashes":         hashes("File"),
	})
	imageLoadFields = merge(initiatorFields, map[string]fieldRef{
		"ImageLoaded": named("File.Path", "File.Name"),
		"Hashes":      hashes("File"),
	})
	registryFields = merge(initiatorFields, map[string]fieldRef{
		"TargetObject": registryTarget,
		"Details":      dcol("RegistryValueData"),
		"EventType":    registryEventType,
	})
	signInFields = merge(azureCols("ResultType", "ResultDescription", "ResultSignature", "Status", "ClientAppUsed", "UserAgent",
		"AuthenticationRequirement", "ConditionalAccessStatus", "RiskState", "RiskLevelDuringSignIn", "RiskLevelAggregated",
		"RiskDetail", "RiskEventTypes", "RiskEventTypes_v2", "ResourceDisplayName", "ResourceId", "AppId", "IsInteractive",
		"UserType", "UserId", "UserDisplayName", "DeviceDetail", "LocationDetails", "HomeTenantId", "ResourceTenantId",
		"CrossTenantAccessType", "AuthenticationDetails", "AuthenticationProtocol", "IncomingTokenType", "TokenIssuerType",
		"OperationName", "Category", "Identity", "CorrelationId"),
		map[string]fieldRef{
			"UserPrincipalName": typed("User"), "Username": typed("User"),
			"IPAddress": typed("SrcIP"), "AppDisplayName": typed("App"), "Location": typed("Country"),
		})
	auditFields = merge(azureCols("Category", "LoggedByService", "InitiatedBy", "TargetResources", "AdditionalDetails",
		"AADOperationType", "OperationType", "ResultReason", "ResultDescription", "Identity", "CorrelationId"),
		map[string]fieldRef{
			"OperationName": typed("Action"), "ActivityDisplayName": typed("Action"), "Result": typed("Outcome"),
		})
	activityFields = merge(azureCols("ActivityStatusValue", "ActivitySubstatusValue", "CategoryValue", "ResourceProviderValue",
		"ResourceGroup", "SubscriptionId", "Authorization", "Claims", "Properties", "HTTPRequest", "Level", "status",
		"resultType", "resultSignature", "category", "durationMs", "identity", "properties", "correlationId"),
		map[string]fieldRef{
			"operationName": typed("Action"), "OperationNameValue": typed("Action"),
			"Caller": typed("User"), "CallerIpAddress": typed("SrcIP"),
			"ResourceId": typed("Resource"), "_ResourceId": typed("Resource"),
		})
	m365Fields = map[string]fieldRef{
		"Operation": typed("Action"), "eventName": typed("Action"), "ActionType": typed("Action"),
		"UserId": typed("User"), "UserPrincipalName": typed("User"),
		"ClientIP": typed("SrcIP"), "IPAddress": typed("SrcIP"),
		"Workload": typed("App"), "Application": typed("App"),
	}
)

// azureCols maps well-known Entra / Azure columns to raw lookups that try
// the Sentinel name and the diagnostic-settings name (no warning: the
// column is known to exist in those records).
func azureCols(names ...string) map[string]fieldRef {
	out := map[string]fieldRef{}
	for _, n := range names {
		out[n] = rawField(n, rawAzure)
	}
	return out
}

func merge(a, b map[string]fieldRef) map[string]fieldRef {
	out := map[string]fieldRef{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

var (
	endpointEntities = []entitySpec{{"device", []string{"Device"}}, {"user", []string{"User"}}}
	byDevice         = func(s source) source { s.keyspace, s.key, s.raw = event.KeyDevice, "Device", rawDefender; return s }
	byUser           = func(s source) source { s.keyspace, s.key = event.KeyUser, "User"; return s }
)

const (
	srcProcess  = `Source == "defender.DeviceProcessEvents"`
	srcNetwork  = `Source == "defender.DeviceNetworkEvents"`
	srcFile     = `Source == "defender.DeviceFileEvents"`
	srcRegistry = `Source == "defender.DeviceRegistryEvents"`
	srcImage    = `Source == "defender.DeviceImageLoadEvents"`
)

// windowsCategories maps Sigma's Windows categories to Defender tables.
var windowsCategories = map[string]source{
	"process_creation": byDevice(source{filter: srcProcess, fields: processFields,
		entities: append(endpointEntities, entitySpec{"process", []string{"Process.CommandLine"}}, entitySpec{"file", []string{"Process.SHA256"}})}),
	"network_connection": byDevice(source{filter: srcNetwork + ` && Type == "network"`, fields: networkFields,
		entities: append(endpointEntities, entitySpec{"ip", []string{"SrcIP", "DstIP"}}, entitySpec{"process", []string{"Process.CommandLine"}})}),
	"file_event":     byDevice(source{filter: `Action in ["FileCreated", "FileModified"] && ` + srcFile, fields: fileFields, entities: append(endpointEntities, entitySpec{"file", []string{"File.Path"}})}),
	"file_change":    byDevice(source{filter: `Action == "FileModified" && ` + srcFile, fields: fileFields, entities: append(endpointEntities, entitySpec{"file", []string{"File.Path"}})}),
	"file_delete":    byDevice(source{filter: `Action == "FileDeleted" && ` + srcFile, fields: fileFields, entities: append(endpointEntities, entitySpec{"file", []string{"File.Path"}})}),
	"file_rename":    byDevice(source{filter: `Action == "FileRenamed" && ` + srcFile, fields: fileFields, entities: append(endpointEntities, entitySpec{"file", []string{"File.Path"}})}),
	"image_load":     byDevice(source{filter: srcImage, fields: imageLoadFields, entities: append(endpointEntities, entitySpec{"file", []string{"File.Path"}})}),
	"registry_event": byDevice(source{filter: srcRegistry, fields: registryFields, entities: endpointEntities}),
	"registry_add":   byDevice(source{filter: `Action == "RegistryKeyCreated" && ` + srcRegistry, fields: registryFields, entities: endpointEntities}),
	"registry_delete": byDevice(source{filter: `Action in ["RegistryKeyDeleted", "RegistryValueDeleted"] && ` + srcRegistry,
		fields: registryFields, entities: endpointEntities}),
	"registry_set":    byDevice(source{filter: `Action == "RegistryValueSet" && ` + srcRegistry, fields: registryFields, entities: endpointEntities}),
	"registry_rename": byDevice(source{filter: `Action == "RegistryKeyRenamed" && ` + srcRegistry, fields: registryFields, entities: endpointEntities}),
}

// azureServices maps Sigma's azure services to Entra / Azure sources.
var azureServices = map[string]source{
	"signinlogs": byUser(source{filter: `Source == "entra.SignInLogs"`, fields: signInFields, raw: rawAzure,
		entities: []entitySpec{{"user", []string{"User"}}, {"ip", []string{"SrcIP"}}, {"app", []string{"App"}}}}),
	"auditlogs": byUser(source{filter: `Source == "entra.AuditLogs"`, fields: auditFields, raw: rawAzure,
		entities: []entitySpec{{"user", []string{"User"}}, {"ip", []string{"SrcIP"}}}}),
	"riskdetection": byUser(source{filter: `Source == "entra.UserRiskEvents"`, fields: signInFields, raw: rawAzure,
		entities: []entitySpec{{"user", []string{"User"}}, {"ip", []string{"SrcIP"}}}}),
	"activitylogs": {filter: `Source == "azure.Activity"`, fields: activityFields, raw: rawAzure,
		keyspace: event.KeyResource, key: "Resource",
		entities: []entitySpec{{"resource", []string{"Resource"}}, {"user", []string{"User"}}, {"ip", []string{"SrcIP"}}}},
}

var m365Source = byUser(source{filter: `Source == "defender.CloudAppEvents"`, fields: m365Fields, raw: rawDefender,
	entities: []entitySpec{{"user", []string{"User"}}, {"ip", []string{"SrcIP"}}, {"app", []string{"App"}}}})

// lookupSource finds the mapping of a Sigma logsource.
func lookupSource(ls logSource) (*source, error) {
	var s source
	var ok bool
	switch strings.ToLower(ls.Product) {
	case "windows":
		s, ok = windowsCategories[strings.ToLower(ls.Category)]
	case "azure":
		s, ok = azureServices[strings.ToLower(ls.Service)]
	case "m365", "microsoft365", "office365":
		s, ok = m365Source, true
	}
	if !ok {
		return nil, fmt.Errorf("logsource %s has no Vigil mapping (supported: %s): %w", ls, supportedLogsources(), ErrUnsupported)
	}
	s.name = ls.String()
	s.fields = fieldTable(s.fields)
	return &s, nil
}

func supportedLogsources() string {
	var out []string
	for c := range windowsCategories {
		out = append(out, "windows/"+c)
	}
	for sv := range azureServices {
		out = append(out, "azure/"+sv)
	}
	sort.Strings(out)
	return strings.Join(append(out, "m365"), ", ")
}
