package alert

import "testing"

// TestMakeIDStable: alert ids are a contract with the consumers of the
// incident topic (the same firing gives the same id in every release, so
// re-deliveries deduplicate); these were made by the MakeID every earlier
// release ran. The event ids' order does not matter, and the caller's
// slice keeps its own.
func TestMakeIDStable(t *testing.T) {
	ids := []string{"b-2", "a-1", "c"}
	if got := MakeID("r.x", "3f2a", "user", "alice@contoso.com", ids); got != "ed5e6a46c7026f5bb839940340fd0c02" {
		t.Errorf("MakeID = %s, want ed5e6a46c7026f5bb839940340fd0c02", got)
	}
	if ids[0] != "b-2" {
		t.Errorf("MakeID reordered the caller's ids: %q", ids)
	}
	if got := MakeID("r.x", "3f2a", "user", "alice@contoso.com", []string{"c", "b-2", "a-1"}); got != "ed5e6a46c7026f5bb839940340fd0c02" {
		t.Errorf("MakeID depends on the order of event ids: %s", got)
	}
	if got := MakeID("r", "", "ip", "", nil); got != "ed26ee2e4bdab85e45d39a59684eabda" {
		t.Errorf("MakeID without events = %s, want ed26ee2e4bdab85e45d39a59684eabda", got)
	}
}
