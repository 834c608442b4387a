// Package loadgen generates a realistic mix of raw records in the formats
// the sources really emit (Defender XDR streaming envelopes, Entra ID
// diagnostic records, NSG flow logs), over a configurable population of
// users, devices and IPs, for benchmarks and load tests. Values are
// invented; the shapes follow the real records.
package loadgen

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// Record is one generated raw message and the source it belongs to.
type Record struct {
	Source string
	Value  []byte
}

// Generator produces records deterministically from its seed.
type Generator struct {
	rng     *rand.Rand
	users   int
	devices int
	seq     int64
	// Attack is the fraction of process events that carry an encoded
	// PowerShell command line (a detection).
	Attack float64
}

// New returns a generator over the given population sizes.
func New(seed uint64, users, devices int) *Generator {
	return &Generator{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), users: users, devices: devices, Attack: 0.001}
}

// Next returns the next record of the mix (50% process events, 25%
// network events, 20% sign-ins, 5% NSG flow batches) at event time t.
func (g *Generator) Next(t time.Time) Record {
	g.seq++
	switch r := g.rng.IntN(100); {
	case r < 50:
		return Record{"defender", g.process(t)}
	case r < 75:
		return Record{"defender", g.network(t)}
	case r < 95:
		return Record{"entra", g.signin(t)}
	default:
		return Record{"network", g.flow(t)}
	}
}

func ts(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.0000000Z") }

func (g *Generator) user() (string, int) {
	i := g.rng.IntN(g.users)
	return fmt.Sprintf("user%05d@contoso-load.example", i), i
}

func (g *Generator) device() (string, string, int) {
	i := g.rng.IntN(g.devices)
	return fmt.Sprintf("ws-%05d.contoso-load.example", i), fmt.Sprintf("%040x", uint64(i)*0x9e3779b97f4a7c15), i
}

func ip(i int) string { return fmt.Sprintf("10.%d.%d.%d", (i>>16)&255, (i>>8)&255, i&255+1) }

var benign = []string{
	`"svchost.exe -k netsvcs -p -s Schedule"`,
	`"C:\\Program Files\\Microsoft Office\\root\\Office16\\OUTLOOK.EXE" /recycle`,
	`"msedge.exe" --type=renderer --lang=en-US`,
	`powershell.exe -NoProfile -File C:\\scripts\\inventory.ps1`,
}

func (g *Generator) process(t time.Time) []byte {
	u, _ := g.user()
	d, id, _ := g.device()
	cmd, file := benign[g.rng.IntN(len(benign))], "svchost.exe"
	if g.rng.Float64() < g.Attack {
		cmd, file = `powershell.exe -nop -w hidden -enc SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQAKQA=`, "powershell.exe"
	}
	return fmt.Appendf(nil, `{"records":[{"time":"%s","tenantId":"00000000-1111-2222-3333-444444444444","operationName":"Publish","category":"AdvancedHunting-DeviceProcessEvents","properties":{"Timestamp":"%s","DeviceId":"%s","DeviceName":"%s","ActionType":"ProcessCreated","FileName":"%s","FolderPath":"C:\\Windows\\System32\\%s","ProcessCommandLine":%q,"ProcessId":%d,"ProcessCreationTime":"%s","SHA256":"%064x","AccountDomain":"contoso","AccountName":"%s","AccountUpn":"%s","InitiatingProcessFileName":"explorer.exe","InitiatingProcessCommandLine":"explorer.exe","InitiatingProcessId":%d,"InitiatingProcessAccountUpn":"%s","ReportId":%d,"AdditionalFields":null,"MachineGroup":"UnassignedGroup"},"Tenant":"DefaultTenant"}]}`,
		ts(t), ts(t), id, d, file, file, cmd, 1000+g.seq%60000, ts(t), g.seq, u[:9], u, 500+g.seq%4000, u, g.seq)
}

func (g *Generator) network(t time.Time) []byte {
	d, id, i := g.device()
	return fmt.Appendf(nil, `{"records":[{"time":"%s","tenantId":"00000000-1111-2222-3333-444444444444","operationName":"Publish","category":"AdvancedHunting-DeviceNetworkEvents","properties":{"Timestamp":"%s","DeviceId":"%s","DeviceName":"%s","ActionType":"ConnectionSuccess","LocalIP":"%s","LocalPort":%d,"RemoteIP":"203.0.113.%d","RemotePort":443,"RemoteUrl":"cdn%d.example.net","Protocol":"Tcp","InitiatingProcessFileName":"msedge.exe","InitiatingProcessId":%d,"ReportId":%d,"MachineGroup":"UnassignedGroup"},"Tenant":"DefaultTenant"}]}`,
		ts(t), ts(t), id, d, ip(i), 49152+g.seq%16000, g.rng.IntN(254)+1, g.rng.IntN(50), 700+g.seq%3000, g.seq)
}

func (g *Generator) signin(t time.Time) []byte {
	u, i := g.user()
	result, code := "0", 0
	if g.rng.IntN(20) == 0 {
		result, code = "50126", 50126
	}
	return fmt.Appendf(nil, `{"records":[{"time":"%s","resourceId":"/tenants/00000000-1111-2222-3333-444444444444/providers/Microsoft.aadiam","operationName":"Sign-in activity","category":"SignInLogs","tenantId":"00000000-1111-2222-3333-444444444444","resultType":"%s","callerIpAddress":"198.51.100.%d","correlationId":"%016x","identity":"User %d","Level":4,"location":"US","properties":{"id":"%016x-%08x","createdDateTime":"%s","userPrincipalName":"%s","userId":"%08x-0000-4000-8000-000000000000","appDisplayName":"Microsoft Teams","ipAddress":"198.51.100.%d","status":{"errorCode":%d},"clientAppUsed":"Browser","isInteractive":true,"riskLevelDuringSignIn":"none","riskLevelAggregated":"none","location":{"city":"Seattle","countryOrRegion":"US"}}}]}`,
		ts(t), result, i%254+1, g.seq, i, g.seq, i, t.UTC().Format(time.RFC3339Nano), u, i, i%254+1, code)
}

func (g *Generator) flow(t time.Time) []byte {
	_, _, i := g.device()
	return fmt.Appendf(nil, `{"records":[{"time":"%s","systemId":"5a1b2c3d-0000-4000-8000-000000000001","macAddress":"000D3AF8801A","category":"NetworkSecurityGroupFlowEvent","resourceId":"/SUBSCRIPTIONS/00000000-0000-0000-0000-000000000000/RESOURCEGROUPS/LOAD/PROVIDERS/MICROSOFT.NETWORK/NETWORKSECURITYGROUPS/LOAD-NSG","operationName":"NetworkSecurityGroupFlowEvents","properties":{"Version":2,"flows":[{"rule":"DefaultRule_AllowInternetOutBound","flows":[{"mac":"000D3AF8801A","flowTuples":["%d,%s,203.0.113.9,%d,443,T,O,A,E,12,1500,10,9000","%d,%s,203.0.113.10,%d,443,T,O,A,B,,,,"]}]}]}}]}`,
		ts(t), t.Unix(), ip(i), 50000+g.seq%15000, t.Unix(), ip(i), 50000+(g.seq+1)%15000)
}
