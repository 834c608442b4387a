package normalize

import (
	"path/filepath"
	"testing"

	"github.com/vigil-sec/vigil/pipeline/event"
)

// TestRealSamplesPerSource asserts mapped fields against values read by
// hand from the real samples (one case per source shape).
func TestRealSamplesPerSource(t *testing.T) {
	dir := samplesDir(t)
	tests := []struct {
		file, source, action string
		count                int
		checks               func(e event.Event) []check
	}{
		{"entra-signin/azure-docs_reference-azure-monitor-sign-ins-log-schema_example.json", "entra.SignInLogs", "", 1, func(e event.Event) []check {
			return []check{{"Time", e.Time, ts("2019-03-12T16:02:15.5522137Z")}, {"ID", e.ID, "0231f922-93fa-4005-bb11-b344eca03c01"},
				{"Outcome (resultType 50140)", e.Outcome, event.OutcomeFailure}, {"App", e.App, "Azure Portal"}, {"Country", e.Country, "US"},
				{"DeviceID", e.DeviceID, "8bfcb982-6856-4402-924c-ada2486321cc"}, {"Type", e.Type, event.TypeLogon}}
		}},
		{"entra-signin/sentinel-training-lab_sign-in_adelete_first7.csv", "entra.SignInLogs", "", 7, func(e event.Event) []check {
			return []check{{"Time (CSV US locale)", e.Time, ts("2021-04-28T14:08:45.221Z")}, {"User", e.User, "adelev@m365x816222.onmicrosoft.com"},
				{"SrcIP", e.SrcIP, "175.45.176.99"}, {"Outcome", e.Outcome, event.OutcomeSuccess}, {"Country", e.Country, "IL"},
				{"UserID", e.UserID, "9b117c67-170e-4aed-9702-658b3fddc889"}}
		}},
		{"entra-audit/azure-docs_reference-azure-monitor-audit-log-schema_example3.json", "entra.AuditLogs", "Update policy", 1, func(e event.Event) []check {
			return []check{{"Time", e.Time, ts("2018-12-10T00:03:46.6161822Z")}, {"ID", e.ID, "Directory_VNXV4_28148892"},
				{"Outcome (result int 0)", e.Outcome, event.OutcomeSuccess}, {"Type", e.Type, event.TypeAudit}, {"SrcIP (<null>)", e.SrcIP, ""}}
		}},
		{"entra-audit/sentinel-training-lab_AuditLogs_Hunting.csv", "entra.AuditLogs", "", 3, func(e event.Event) []check {
			return []check{{"User", e.User, "victim@buildseccxpninja.onmicrosoft.com"}, {"SrcIP", e.SrcIP, "45.153.160.2"},
				{"Time (no time column: received)", e.Time, recv}, {"Outcome", e.Outcome, event.OutcomeSuccess}}
		}},
		{"azure-activity/azure-monitor-docs_activity-log-schema_storage-eventhub_example.json", "azure.Activity", "", 1, func(e event.Event) []check {
			return []check{{"Time", e.Time, ts("2019-01-21T22:14:26.9792776Z")}, {"User (claims upn)", e.User, "admin@contoso.com"},
				{"SrcIP", e.SrcIP, "111.111.111.11"}, {"Action", e.Action, "microsoft.support/supporttickets/write"},
				{"Outcome", e.Outcome, event.OutcomeSuccess}, {"Resource", e.Resource, "/subscriptions/s1/resourcegroups/mssupportgroup/providers/microsoft.support/supporttickets/123456112305841"}}
		}},
		{"azure-activity/sentinel-training-lab_azureActivity_adele_first2.csv", "azure.Activity", "", 2, func(e event.Event) []check {
			return []check{{"User (Caller)", e.User, "adelev@m365x816222.onmicrosoft.com"}, {"Action", e.Action, "microsoft.web/sites/delete"},
				{"ID", e.ID, "6f5ca24c-de95-451a-b91e-7a7ab209c28b"}, {"SrcIP", e.SrcIP, "37.142.150.162"}, {"Time", e.Time, ts("2021-04-28T14:32:14.029Z")}}
		}},
		{"defender-cloud/elastic-microsoft_defender_cloud_continuous-export_alert-assessment.jsonl", "mdc.Alert", "", 2, func(e event.Event) []check {
			return []check{{"Time", e.Time, ts("2023-05-11T13:15:45.0170422Z")}, {"Severity", e.Severity, "medium"},
				{"Device", e.Device, "sample-vm"}, {"SrcIP (entity)", e.SrcIP, "81.2.69.142"}, {"ID", e.ID, "2517184898549829577_cdcf9f94-ec53-47a6-ab87-76130f87218d"},
				{"Title", e.Title, "[SAMPLE ALERT] Login from a suspicious IP"}}
		}},
		{"defender-cloud/azure-rest-api-specs_GetAlertSubscriptionLocation_example.json", "mdc.Alert", "", 1, func(e event.Event) []check {
			return []check{{"Action", e.Action, "VM_EICAR"}, {"Severity", e.Severity, "high"}, {"Device", e.Device, "vm1"}, {"SrcIP", e.SrcIP, "192.0.2.1"},
				{"Resource", e.Resource, "/subscriptions/20ff7fc3-e762-44dd-bd96-b71116dcdc23/resourcegroups/myrg1/providers/microsoft.compute/virtualmachines/vm1"}}
		}},
		{"defender-cloud/azure-docs_alerts-schemas_activity-log-alert.json", "mdc.Alert", "", 1, func(e event.Event) []check {
			return []check{{"Time", e.Time, ts("2019-12-25T18:52:36.801035Z")}, {"Severity", e.Severity, "low"}, {"Device", e.Device, "asc-ignite-demo"}}
		}},
		{"nsg-flow/azure-docs_nsg-flow-logs-overview_v2_sample.json", "network.NSGFlow", "", 11, func(e event.Event) []check {
			return []check{{"Time (epoch s)", e.Time, ts("2018-11-13T12:00:02Z")}, {"SrcIP", e.SrcIP, "192.0.2.190"}, {"DstIP", e.DstIP, "10.5.16.4"},
				{"SrcPort", e.SrcPort, 28746}, {"DstPort", e.DstPort, 443}, {"Protocol", e.Protocol, "udp"}, {"Action", e.Action, "deny"}, {"Outcome", e.Outcome, event.OutcomeFailure}}
		}},
		{"vnet-flow/azure-docs_vnet-flow-logs-overview_sample.json", "network.VNetFlow", "", 19, func(e event.Event) []check {
			return []check{{"Time (epoch ms)", e.Time, ts("2022-09-14T09:00:03.599Z")}, {"DstIP", e.DstIP, "52.239.184.180"}, {"Protocol (6)", e.Protocol, "tcp"},
				{"Outcome", e.Outcome, event.OutcomeSuccess}}
		}},
		{"firewall/azure-docs_logs-and-metrics_AzureFirewallNetworkRule_legacy.json", "firewall.AzureFirewallNetworkRule", "", 1, func(e event.Event) []check {
			return []check{{"SrcIP", e.SrcIP, "111.35.136.173"}, {"SrcPort", e.SrcPort, 12518}, {"DstIP", e.DstIP, "13.78.143.217"}, {"DstPort", e.DstPort, 2323},
				{"Protocol", e.Protocol, "tcp"}, {"Outcome", e.Outcome, event.OutcomeFailure}, {"Time", e.Time, ts("2018-06-14T23:44:11.0590400Z")}}
		}},
		{"firewall/azure-docs_logs-and-metrics_AzureFirewallApplicationRule_legacy.json", "firewall.AzureFirewallApplicationRule", "", 1, func(e event.Event) []check {
			return []check{{"SrcIP", e.SrcIP, "10.1.0.5"}, {"Domain", e.Domain, "mydestination.com"}, {"DstPort", e.DstPort, 443}, {"Outcome", e.Outcome, event.OutcomeSuccess}}
		}},
		{"firewall/elastic-azure-firewall_AZFWNetworkRule_structured.jsonl", "firewall.AZFWNetworkRule", "", 2, func(e event.Event) []check {
			return []check{{"Time", e.Time, ts("2024-03-20T23:39:59.8494370Z")}, {"DstPort", e.DstPort, 1234}, {"Protocol", e.Protocol, "tcp"}, {"Action", e.Action, "allow"}}
		}},
		{"firewall/sentinel-asim_Microsoft_Azure-Firewall_NetworkSession_IngestedLogs_first4.csv", "firewall.NetworkSession", "", 4, func(e event.Event) []check {
			return []check{{"Time", e.Time, ts("2025-07-18T12:26:46.737Z")}, {"SrcIP", e.SrcIP, "10.0.200.4"}, {"DstIP", e.DstIP, "168.61.215.74"}, {"DstPort", e.DstPort, 123},
				{"Outcome", e.Outcome, event.OutcomeFailure}}
		}},
		{"storage/dynatrace-sample_StorageWrite_SetBlobMetadata.json", "storage.StorageBlobLogs", "SetBlobMetadata", 1, func(e event.Event) []check {
			return []check{{"SrcIP (ip:port)", e.SrcIP, "10.50.0.204"}, {"Outcome", e.Outcome, event.OutcomeSuccess}, {"Time", e.Time, ts("2023-12-12T12:12:19.1357605Z")}}
		}},
		{"appinsights/newrelic-testdata_AppRequests_records.json", "appinsights.AppRequests", "", 1, func(e event.Event) []check {
			return []check{{"Outcome", e.Outcome, event.OutcomeSuccess}, {"SrcIP (masked)", e.SrcIP, ""}, {"Type", e.Type, event.TypeRequest}}
		}},
		{"cef/sentinel-sample_RadiflowIsid_RawLogs_subset.log", "cef.CommonSecurityLog", "New Link Detected", 6, func(e event.Event) []check {
			return []check{{"SrcIP", e.SrcIP, "172.16.2.41"}, {"DstIP", e.DstIP, "172.16.8.17"}, {"Severity", e.Severity, "medium"},
				{"Device", e.Device, "radiflow-labs-isid"}, {"Time (BSD header, year from received)", e.Time, ts("2025-05-18T16:02:00Z")}}
		}},
		{"cef/sentinel-training-lab_solarigate_CEFevent_CommonSecurityLog.csv", "cef.CommonSecurityLog", "", 1, func(e event.Event) []check {
			return []check{{"SrcIP", e.SrcIP, "17.81.146.1"}, {"DstIP", e.DstIP, "15.230.137.45"}, {"DstPort", e.DstPort, 443},
				{"Time (AdditionalExtensions start)", e.Time, ts("2021-04-07T04:44:22Z")}, {"BytesIn", e.BytesIn, int64(56296)}}
		}},
		{"defender-xdr/sentinel-asim_M365_ProcessEvents_IngestedLogs_first2.csv", "defender.DeviceProcessEvents", "", 2, func(e event.Event) []check {
			return []check{{"User", e.User, `ip-172-31-46-50.eu-central-1.compute.internal\root`}, {"Process.PID", e.Process.PID, int64(10018)},
				{"Process.CommandLine", e.Process.CommandLine, "/app/grpc-health-probe -addr=:50051 -connect-timeout=5s -rpc-timeout=5s"},
				{"Time", e.Time, ts("2023-10-25T09:43:21.994Z")}}
		}},
	}
	for _, tc := range tests {
		t.Run(filepath.Base(tc.file), func(t *testing.T) {
			evs := parseFile(t, "", filepath.Join(dir, tc.file))
			if len(evs) != tc.count {
				t.Errorf("%d events, want %d", len(evs), tc.count)
			}
			e := findEvent(t, evs, tc.source, tc.action)
			expect(t, tc.source, tc.checks(e)...)
		})
	}
}
