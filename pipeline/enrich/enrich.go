package enrich

import (
	"cmp"
	"slices"

	"github.com/vigil-sec/vigil/pipeline/event"
)

// cand is a candidate related entity: tier 0 is one association away from
// a typed entity of the event, tier 1 two away.
type cand struct {
	name string
	seen int64
	tier uint8
}

func cmpCand(a, b cand) int {
	if c := cmp.Compare(a.tier, b.tier); c != 0 {
		return c
	}
	if c := cmp.Compare(b.seen, a.seen); c != 0 {
		return c
	}
	return cmp.Compare(a.name, b.name)
}

// Enrich adds to ev.Related the entities the table associates with ev's
// typed entities, and resolves its user (semantic 11 of DESIGN.md):
//
//   - User empty, UserID known: User becomes the UPN of the object id.
//   - User not a UPN (DOMAIN\name), UserID known: the UPN is added to
//     Related.Users, so the event is keyed under it too.
//   - UserID empty, User a UPN: UserID becomes its object id.
//   - SrcIP and DstIP: their devices, the users of those devices, and the
//     users who signed in from the IP; when the IP has no device but
//     exactly one such user, that user's devices.
//   - Device: its IPs and its users.
//   - User: the devices the user was active on.
//
// Each list is ordered direct associations first, then by last-seen time
// (newest first), then by name, and holds at most MaxRelated entries
// (entries the parser set are kept first and count towards it). Entities
// the event names in its typed fields are not repeated. Expired
// associations are ignored even before a sweep removes them.
func (t *Table) Enrich(ev *event.Event) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.users, t.devices, t.ips = t.users[:0], t.devices[:0], t.ips[:0]
	live := t.live()

	// collect appends the live neighbours of (dir, from) to *dst.
	collect := func(dst *[]cand, dir byte, from string, tier uint8) (*neighbors, error) {
		if from == "" {
			return nil, nil
		}
		nb, err := t.neighbors(dir, from)
		if err != nil {
			return nil, err
		}
		for _, n := range nb.items {
			if n.seen < live {
				break
			}
			*dst = append(*dst, cand{n.name, n.seen, tier})
		}
		return nb, nil
	}

	// Object id ↔ UPN.
	user := ev.User
	if ev.UserID != "" && !isUPN(ev.User) {
		upn, err := t.best(byte(KindUserID), ev.UserID)
		if err != nil {
			return err
		}
		if upn != "" {
			if ev.User == "" {
				ev.User = upn
			} else {
				t.users = append(t.users, cand{upn, 1<<63 - 1, 0})
			}
			user = upn
		}
	} else if ev.UserID == "" && isUPN(ev.User) {
		oid, err := t.best(byte(KindUserID)-'a'+'A', ev.User)
		if err != nil {
			return err
		}
		ev.UserID = oid
	}

	for i, ip := range [2]string{ev.SrcIP, ev.DstIP} {
		if ip == "" || (i == 1 && ip == ev.SrcIP) {
			continue
		}
		n0 := len(t.devices)
		if _, err := collect(&t.devices, byte(KindIPDevice), ip, 0); err != nil {
			return err
		}
		devs := t.devices[n0:]
		for _, d := range devs {
			if _, err := collect(&t.users, byte(KindDeviceUser), d.name, 1); err != nil {
				return err
			}
		}
		u0 := len(t.users)
		if _, err := collect(&t.users, byte(KindIPUser), ip, 0); err != nil {
			return err
		}
		if len(devs) == 0 && len(t.users)-u0 == 1 {
			if _, err := collect(&t.devices, KindDeviceUser.reverse(), t.users[u0].name, 1); err != nil {
				return err
			}
		}
	}
	if ev.Device != "" {
		if _, err := collect(&t.ips, KindIPDevice.reverse(), ev.Device, 0); err != nil {
			return err
		}
		if _, err := collect(&t.users, byte(KindDeviceUser), ev.Device, 0); err != nil {
			return err
		}
	}
	if user != "" {
		if _, err := collect(&t.devices, KindDeviceUser.reverse(), user, 0); err != nil {
			return err
		}
	}

	limit := t.opts.MaxRelated
	ev.Related.Users = merge(ev.Related.Users, t.users, limit, ev.User, "")
	ev.Related.Devices = merge(ev.Related.Devices, t.devices, limit, ev.Device, "")
	ev.Related.IPs = merge(ev.Related.IPs, t.ips, limit, ev.SrcIP, ev.DstIP)
	return nil
}

// merge appends the best candidates to have, skipping names already there
// and the excluded ones, until have holds limit entries.
func merge(have []string, cands []cand, limit int, ex1, ex2 string) []string {
	if len(cands) == 0 || len(have) >= limit {
		return have
	}
	slices.SortFunc(cands, cmpCand)
	for _, c := range cands {
		if len(have) >= limit {
			break
		}
		if c.name == ex1 || c.name == ex2 || slices.Contains(have, c.name) {
			continue
		}
		have = append(have, c.name)
	}
	return have
}
