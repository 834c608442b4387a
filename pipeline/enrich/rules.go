package enrich

import (
	"net/netip"
	"strings"

	"github.com/vigil-sec/vigil/pipeline/event"
)

// assoc is one association asserted by an event: left and right in the
// forward direction of kind (see Kind).
type assoc struct {
	kind        Kind
	left, right string
}

// derive appends the associations ev asserts (the rules of the package
// doc). user is the event's user after object-id resolution (a
// DOMAIN\name resolved to its UPN), ignore filters service accounts.
// It reads only typed fields, so every source that fills them the way
// pipeline/normalize does is covered without a per-source case.
func derive(dst []assoc, ev *event.Event, user string, ignore func(string) bool) []assoc {
	// Alerts are derived from other events (and Vigil's own alerts come
	// back as events): learning from them would feed output into input.
	if ev.Category == event.CatAlert || ev.Type == event.TypeAlert {
		return dst
	}
	add := func(k Kind, l, r string) {
		if l == "" || r == "" || strings.IndexByte(l, sep) >= 0 || strings.IndexByte(r, sep) >= 0 {
			return
		}
		for _, a := range dst {
			if a.kind == k && a.left == l && a.right == r {
				return
			}
		}
		dst = append(dst, assoc{k, l, r})
	}
	okUser := user != "" && !ignore(user)
	ok := ev.Outcome != event.OutcomeFailure

	// Email recipients are addresses, which may be aliases of the UPN.
	if ev.Category != event.CatEmail && ev.UserID != "" && isUPN(ev.User) {
		add(KindUserID, ev.UserID, ev.User)
	}

	switch ev.Category {
	case event.CatEndpoint:
		dev := ev.Device
		if dev == "" {
			break
		}
		switch ev.Type {
		case event.TypeNetwork, event.TypeDNS:
			local := ev.SrcIP
			if inbound(ev.Action) {
				local = ev.DstIP
			}
			if hostIP(local) {
				add(KindIPDevice, local, dev)
			}
		case event.TypeOther:
			// DeviceEvents: SrcIP is the row's LocalIP.
			if hostIP(ev.SrcIP) {
				add(KindIPDevice, ev.SrcIP, dev)
			}
		case event.TypeLogon:
			// SrcIP is the remote end, the machine the user came from; the
			// parser names it in Related.Devices when the source does.
			if ok && len(ev.Related.Devices) == 1 && hostIP(ev.SrcIP) {
				add(KindIPDevice, ev.SrcIP, ev.Related.Devices[0])
			}
			if ok && okUser && hostIP(ev.SrcIP) {
				add(KindIPUser, ev.SrcIP, user)
			}
		}
		if ok && okUser {
			add(KindDeviceUser, dev, user)
		}
	case event.CatIdentity:
		if ok && okUser && ev.Device != "" && ev.Type == event.TypeLogon {
			add(KindDeviceUser, ev.Device, user)
		}
		// A sign-in's IP is usually a public egress (NAT, proxy) shared by
		// many devices; only a private one is the device's own address
		// (Defender for Identity on-premises logons, hybrid sign-ins).
		if ev.Device != "" && privateIP(ev.SrcIP) {
			add(KindIPDevice, ev.SrcIP, ev.Device)
		}
		if len(ev.Related.Devices) == 1 && privateIP(ev.DstIP) {
			add(KindIPDevice, ev.DstIP, ev.Related.Devices[0])
		}
		if ok && okUser && hostIP(ev.SrcIP) {
			add(KindIPUser, ev.SrcIP, user)
		}
	case event.CatCloud:
		if ok && okUser && hostIP(ev.SrcIP) {
			add(KindIPUser, ev.SrcIP, user)
		}
	case event.CatApp:
		// Syslog: the reporting host and its own address.
		if ev.Device != "" && hostIP(ev.SrcIP) {
			add(KindIPDevice, ev.SrcIP, ev.Device)
		}
	}
	return dst
}

// inbound tells whether a Defender network action describes a connection
// to the device, whose local address is then DstIP.
func inbound(action string) bool {
	return strings.HasPrefix(action, "Inbound") || strings.HasPrefix(action, "Listening")
}

func isUPN(u string) bool { return strings.IndexByte(u, '@') > 0 }

// hostIP tells whether ip can name one host: loopback, link-local,
// multicast and unspecified addresses are the same on every device.
func hostIP(ip string) bool {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	return !(a.IsLoopback() || a.IsUnspecified() || a.IsMulticast() || a.IsLinkLocalUnicast() ||
		a.IsLinkLocalMulticast() || a.IsInterfaceLocalMulticast() || a == broadcast)
}

var broadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

func privateIP(ip string) bool {
	a, err := netip.ParseAddr(ip)
	return err == nil && a.IsPrivate()
}

// IsServiceAccount is the default Options.IgnoreUser: built-in Windows
// accounts and machine accounts, which run on every device and would tie
// unrelated devices (and their flows) to one "user".
func IsServiceAccount(user string) bool {
	switch user {
	case "system", "local service", "network service", "anonymous logon", "-":
		return true
	}
	if strings.HasSuffix(user, "$") {
		return true
	}
	for _, p := range []string{`nt authority\`, `nt service\`, `font driver host\`, `window manager\`, `iis apppool\`} {
		if strings.HasPrefix(user, p) {
			return true
		}
	}
	return false
}
