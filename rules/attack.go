package rules

import "strings"

// AttackVersion is the MITRE ATT&CK Enterprise release the table below was
// taken from. Lint checks rule mappings against it; the Navigator layer
// declares it.
const AttackVersion = "17"

// Tactic is an ATT&CK Enterprise tactic.
type Tactic struct {
	ID        string // TA0006
	ShortName string // credential-access (Navigator's name)
	Name      string // Credential Access
}

// Technique is an ATT&CK technique or sub-technique.
type Technique struct {
	ID      string   // T1110.003
	Name    string   // Password Spraying (sub-technique part only)
	Tactics []string // short names; sub-techniques inherit their parent's
}

// Tactics lists the Enterprise tactics in kill-chain order.
var Tactics = []Tactic{
	{"TA0043", "reconnaissance", "Reconnaissance"},
	{"TA0042", "resource-development", "Resource Development"},
	{"TA0001", "initial-access", "Initial Access"},
	{"TA0002", "execution", "Execution"},
	{"TA0003", "persistence", "Persistence"},
	{"TA0004", "privilege-escalation", "Privilege Escalation"},
	{"TA0005", "defense-evasion", "Defense Evasion"},
	{"TA0006", "credential-access", "Credential Access"},
	{"TA0007", "discovery", "Discovery"},
	{"TA0008", "lateral-movement", "Lateral Movement"},
	{"TA0009", "collection", "Collection"},
	{"TA0011", "command-and-control", "Command and Control"},
	{"TA0010", "exfiltration", "Exfiltration"},
	{"TA0040", "impact", "Impact"},
}

// Techniques lists the techniques Vigil's rules use or are likely to use
// (identity, endpoint, network, cloud, email). It is deliberately not the
// whole matrix: adding a row is a one-line review, and an unknown id in a
// rule is far more often a typo than a technique we lack.
var Techniques = []Technique{
	{"T1001", "Data Obfuscation", []string{"command-and-control"}},
	{"T1003", "OS Credential Dumping", []string{"credential-access"}},
	{"T1003.001", "LSASS Memory", nil},
	{"T1003.002", "Security Account Manager", nil},
	{"T1003.003", "NTDS", nil},
	{"T1003.006", "DCSync", nil},
	{"T1005", "Data from Local System", []string{"collection"}},
	{"T1016", "System Network Configuration Discovery", []string{"discovery"}},
	{"T1018", "Remote System Discovery", []string{"discovery"}},
	{"T1020", "Automated Exfiltration", []string{"exfiltration"}},
	{"T1021", "Remote Services", []string{"lateral-movement"}},
	{"T1021.001", "Remote Desktop Protocol", nil},
	{"T1021.002", "SMB/Windows Admin Shares", nil},
	{"T1021.004", "SSH", nil},
	{"T1021.006", "Windows Remote Management", nil},
	{"T1027", "Obfuscated Files or Information", []string{"defense-evasion"}},
	{"T1027.010", "Command Obfuscation", nil},
	{"T1030", "Data Transfer Size Limits", []string{"exfiltration"}},
	{"T1033", "System Owner/User Discovery", []string{"discovery"}},
	{"T1036", "Masquerading", []string{"defense-evasion"}},
	{"T1036.005", "Match Legitimate Resource Name or Location", nil},
	{"T1040", "Network Sniffing", []string{"credential-access", "discovery"}},
	{"T1041", "Exfiltration Over C2 Channel", []string{"exfiltration"}},
	{"T1046", "Network Service Discovery", []string{"discovery"}},
	{"T1047", "Windows Management Instrumentation", []string{"execution"}},
	{"T1048", "Exfiltration Over Alternative Protocol", []string{"exfiltration"}},
	{"T1049", "System Network Connections Discovery", []string{"discovery"}},
	{"T1053", "Scheduled Task/Job", []string{"execution", "persistence", "privilege-escalation"}},
	{"T1053.005", "Scheduled Task", nil},
	{"T1055", "Process Injection", []string{"defense-evasion", "privilege-escalation"}},
	{"T1057", "Process Discovery", []string{"discovery"}},
	{"T1059", "Command and Scripting Interpreter", []string{"execution"}},
	{"T1059.001", "PowerShell", nil},
	{"T1059.003", "Windows Command Shell", nil},
	{"T1059.004", "Unix Shell", nil},
	{"T1059.005", "Visual Basic", nil},
	{"T1059.007", "JavaScript", nil},
	{"T1059.009", "Cloud API", nil},
	{"T1068", "Exploitation for Privilege Escalation", []string{"privilege-escalation"}},
	{"T1069", "Permission Groups Discovery", []string{"discovery"}},
	{"T1069.002", "Domain Groups", nil},
	{"T1069.003", "Cloud Groups", nil},
	{"T1070", "Indicator Removal", []string{"defense-evasion"}},
	{"T1070.001", "Clear Windows Event Logs", nil},
	{"T1070.004", "File Deletion", nil},
	{"T1070.008", "Clear Mailbox Data", nil},
	{"T1071", "Application Layer Protocol", []string{"command-and-control"}},
	{"T1071.001", "Web Protocols", nil},
	{"T1071.002", "File Transfer Protocols", nil},
	{"T1071.004", "DNS", nil},
	{"T1072", "Software Deployment Tools", []string{"execution", "lateral-movement"}},
	{"T1078", "Valid Accounts", []string{"initial-access", "persistence", "privilege-escalation", "defense-evasion"}},
	{"T1078.001", "Default Accounts", nil},
	{"T1078.002", "Domain Accounts", nil},
	{"T1078.003", "Local Accounts", nil},
	{"T1078.004", "Cloud Accounts", nil},
	{"T1082", "System Information Discovery", []string{"discovery"}},
	{"T1083", "File and Directory Discovery", []string{"discovery"}},
	{"T1087", "Account Discovery", []string{"discovery"}},
	{"T1087.002", "Domain Account", nil},
	{"T1087.004", "Cloud Account", nil},
	{"T1090", "Proxy", []string{"command-and-control"}},
	{"T1090.003", "Multi-hop Proxy", nil},
	{"T1095", "Non-Application Layer Protocol", []string{"command-and-control"}},
	{"T1098", "Account Manipulation", []string{"persistence", "privilege-escalation"}},
	{"T1098.001", "Additional Cloud Credentials", nil},
	{"T1098.002", "Additional Email Delegate Permissions", nil},
	{"T1098.003", "Additional Cloud Roles", nil},
	{"T1098.005", "Device Registration", nil},
	{"T1102", "Web Service", []string{"command-and-control"}},
	{"T1105", "Ingress Tool Transfer", []string{"command-and-control"}},
	{"T1110", "Brute Force", []string{"credential-access"}},
	{"T1110.001", "Password Guessing", nil},
	{"T1110.003", "Password Spraying", nil},
	{"T1110.004", "Credential Stuffing", nil},
	{"T1112", "Modify Registry", []string{"defense-evasion", "persistence"}},
	{"T1114", "Email Collection", []string{"collection"}},
	{"T1114.002", "Remote Email Collection", nil},
	{"T1114.003", "Email Forwarding Rule", nil},
	{"T1133", "External Remote Services", []string{"initial-access", "persistence"}},
	{"T1135", "Network Share Discovery", []string{"discovery"}},
	{"T1136", "Create Account", []string{"persistence"}},
	{"T1136.001", "Local Account", nil},
	{"T1136.002", "Domain Account", nil},
	{"T1136.003", "Cloud Account", nil},
	{"T1137", "Office Application Startup", []string{"persistence"}},
	{"T1137.005", "Outlook Rules", nil},
	{"T1140", "Deobfuscate/Decode Files or Information", []string{"defense-evasion"}},
	{"T1190", "Exploit Public-Facing Application", []string{"initial-access"}},
	{"T1197", "BITS Jobs", []string{"defense-evasion", "persistence"}},
	{"T1199", "Trusted Relationship", []string{"initial-access"}},
	{"T1201", "Password Policy Discovery", []string{"discovery"}},
	{"T1203", "Exploitation for Client Execution", []string{"execution"}},
	{"T1204", "User Execution", []string{"execution"}},
	{"T1204.001", "Malicious Link", nil},
	{"T1204.002", "Malicious File", nil},
	{"T1213", "Data from Information Repositories", []string{"collection"}},
	{"T1213.002", "Sharepoint", nil},
	{"T1218", "System Binary Proxy Execution", []string{"defense-evasion"}},
	{"T1218.005", "Mshta", nil},
	{"T1218.010", "Regsvr32", nil},
	{"T1218.011", "Rundll32", nil},
	{"T1219", "Remote Access Tools", []string{"command-and-control"}},
	{"T1482", "Domain Trust Discovery", []string{"discovery"}},
	{"T1484", "Domain or Tenant Policy Modification", []string{"defense-evasion", "privilege-escalation"}},
	{"T1484.002", "Trust Modification", nil},
	{"T1485", "Data Destruction", []string{"impact"}},
	{"T1486", "Data Encrypted for Impact", []string{"impact"}},
	{"T1489", "Service Stop", []string{"impact"}},
	{"T1490", "Inhibit System Recovery", []string{"impact"}},
	{"T1496", "Resource Hijacking", []string{"impact"}},
	{"T1496.001", "Compute Hijacking", nil},
	{"T1498", "Network Denial of Service", []string{"impact"}},
	{"T1499", "Endpoint Denial of Service", []string{"impact"}},
	{"T1505", "Server Software Component", []string{"persistence"}},
	{"T1505.003", "Web Shell", nil},
	{"T1518", "Software Discovery", []string{"discovery"}},
	{"T1518.001", "Security Software Discovery", nil},
	{"T1526", "Cloud Service Discovery", []string{"discovery"}},
	{"T1528", "Steal Application Access Token", []string{"credential-access"}},
	{"T1530", "Data from Cloud Storage", []string{"collection"}},
	{"T1531", "Account Access Removal", []string{"impact"}},
	{"T1534", "Internal Spearphishing", []string{"lateral-movement"}},
	{"T1537", "Transfer Data to Cloud Account", []string{"exfiltration"}},
	{"T1538", "Cloud Service Dashboard", []string{"discovery"}},
	{"T1539", "Steal Web Session Cookie", []string{"credential-access"}},
	{"T1543", "Create or Modify System Process", []string{"persistence", "privilege-escalation"}},
	{"T1543.003", "Windows Service", nil},
	{"T1547", "Boot or Logon Autostart Execution", []string{"persistence", "privilege-escalation"}},
	{"T1547.001", "Registry Run Keys / Startup Folder", nil},
	{"T1548", "Abuse Elevation Control Mechanism", []string{"privilege-escalation", "defense-evasion"}},
	{"T1548.002", "Bypass User Account Control", nil},
	{"T1548.005", "Temporary Elevated Cloud Access", nil},
	{"T1550", "Use Alternate Authentication Material", []string{"defense-evasion", "lateral-movement"}},
	{"T1550.001", "Application Access Token", nil},
	{"T1550.002", "Pass the Hash", nil},
	{"T1550.003", "Pass the Ticket", nil},
	{"T1552", "Unsecured Credentials", []string{"credential-access"}},
	{"T1552.001", "Credentials In Files", nil},
	{"T1552.005", "Cloud Instance Metadata API", nil},
	{"T1555", "Credentials from Password Stores", []string{"credential-access"}},
	{"T1555.006", "Cloud Secrets Management Stores", nil},
	{"T1556", "Modify Authentication Process", []string{"credential-access", "defense-evasion", "persistence"}},
	{"T1556.006", "Multi-Factor Authentication", nil},
	{"T1556.007", "Hybrid Identity", nil},
	{"T1557", "Adversary-in-the-Middle", []string{"credential-access", "collection"}},
	{"T1558", "Steal or Forge Kerberos Tickets", []string{"credential-access"}},
	{"T1558.003", "Kerberoasting", nil},
	{"T1560", "Archive Collected Data", []string{"collection"}},
	{"T1562", "Impair Defenses", []string{"defense-evasion"}},
	{"T1562.001", "Disable or Modify Tools", nil},
	{"T1562.002", "Disable Windows Event Logging", nil},
	{"T1562.004", "Disable or Modify System Firewall", nil},
	{"T1562.007", "Disable or Modify Cloud Firewall", nil},
	{"T1562.008", "Disable or Modify Cloud Logs", nil},
	{"T1564", "Hide Artifacts", []string{"defense-evasion"}},
	{"T1564.008", "Email Hiding Rules", nil},
	{"T1566", "Phishing", []string{"initial-access"}},
	{"T1566.001", "Spearphishing Attachment", nil},
	{"T1566.002", "Spearphishing Link", nil},
	{"T1566.003", "Spearphishing via Service", nil},
	{"T1567", "Exfiltration Over Web Service", []string{"exfiltration"}},
	{"T1567.002", "Exfiltration to Cloud Storage", nil},
	{"T1568", "Dynamic Resolution", []string{"command-and-control"}},
	{"T1568.002", "Domain Generation Algorithms", nil},
	{"T1569", "System Services", []string{"execution"}},
	{"T1569.002", "Service Execution", nil},
	{"T1570", "Lateral Tool Transfer", []string{"lateral-movement"}},
	{"T1571", "Non-Standard Port", []string{"command-and-control"}},
	{"T1572", "Protocol Tunneling", []string{"command-and-control"}},
	{"T1573", "Encrypted Channel", []string{"command-and-control"}},
	{"T1578", "Modify Cloud Compute Infrastructure", []string{"defense-evasion"}},
	{"T1578.002", "Create Cloud Instance", nil},
	{"T1580", "Cloud Infrastructure Discovery", []string{"discovery"}},
	{"T1589", "Gather Victim Identity Information", []string{"reconnaissance"}},
	{"T1595", "Active Scanning", []string{"reconnaissance"}},
	{"T1595.001", "Scanning IP Blocks", nil},
	{"T1595.002", "Vulnerability Scanning", nil},
	{"T1606", "Forge Web Credentials", []string{"credential-access"}},
	{"T1606.002", "SAML Tokens", nil},
	{"T1619", "Cloud Storage Object Discovery", []string{"discovery"}},
	{"T1621", "Multi-Factor Authentication Request Generation", []string{"credential-access"}},
	{"T1648", "Serverless Execution", []string{"execution"}},
	{"T1651", "Cloud Administration Command", []string{"execution"}},
}

var (
	tacticByKey   = map[string]Tactic{}
	techniqueByID = map[string]Technique{}
)

func init() {
	for _, t := range Tactics {
		tacticByKey[strings.ToLower(t.ID)] = t
		tacticByKey[t.ShortName] = t
		tacticByKey[strings.ToLower(t.Name)] = t
		tacticByKey[strings.ReplaceAll(strings.ToLower(t.Name), " ", "")] = t
	}
	for i, t := range Techniques {
		if parent, _, ok := strings.Cut(t.ID, "."); ok && len(t.Tactics) == 0 {
			t.Tactics = techniqueByID[parent].Tactics
			Techniques[i] = t
		}
		techniqueByID[t.ID] = t
	}
}

// LookupTactic finds a tactic by id (TA0006), short name
// (credential-access) or name (Credential Access, CredentialAccess).
func LookupTactic(s string) (Tactic, bool) {
	t, ok := tacticByKey[strings.ToLower(strings.TrimSpace(s))]
	return t, ok
}

// LookupTechnique finds a technique by id (T1110 or T1110.003).
func LookupTechnique(id string) (Technique, bool) {
	t, ok := techniqueByID[strings.ToUpper(strings.TrimSpace(id))]
	return t, ok
}

// TechniqueName returns "Brute Force: Password Spraying" for a
// sub-technique and the plain name otherwise.
func TechniqueName(id string) string {
	t, ok := LookupTechnique(id)
	if !ok {
		return id
	}
	if parent, _, sub := strings.Cut(t.ID, "."); sub {
		if p, ok := techniqueByID[parent]; ok {
			return p.Name + ": " + t.Name
		}
	}
	return t.Name
}
