package normalize

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/pipeline/event"
)

// nsgRecord is one NSG flow-log record (version 1 or 2).
type nsgRecord struct {
	Time       ftime `json:"time"`
	SystemID   fstr  `json:"systemId"`
	MacAddress fstr  `json:"macAddress"`
	ResourceID fstr  `json:"resourceId"`
	Properties struct {
		Version fint `json:"Version"`
		Flows   []struct {
			Rule  fstr `json:"rule"`
			Flows []struct {
				Mac        fstr   `json:"mac"`
				FlowTuples []fstr `json:"flowTuples"`
			} `json:"flows"`
		} `json:"flows"`
	} `json:"properties"`
}

// flowTuple is one parsed flow tuple of an NSG or VNet flow log.
type flowTuple struct {
	Time                 time.Time
	SrcIP, DstIP         string
	SrcPort, DstPort     int
	Protocol             string // tcp, udp, icmp or the IANA number
	Direction            string // I or O
	Decision             string // A or D (NSG); derived from state for VNet
	State                string // B, C, E (and D for VNet)
	Encryption           string // VNet only
	PacketsOut, BytesOut int64  // source → destination
	PacketsIn, BytesIn   int64  // destination → source
}

var errTuple = errors.New("malformed flow tuple")

// parseNSGTuple parses "ts,src,dst,sport,dport,T|U,I|O,A|D[,B|C|E,pkts,bytes,pkts,bytes]".
func parseNSGTuple(s string) (flowTuple, error) {
	var t flowTuple
	f := strings.Split(s, ",")
	if len(f) < 8 {
		return t, fmt.Errorf("%w: %d fields in %q", errTuple, len(f), truncate(s, 80))
	}
	sec, err := strconv.ParseInt(strings.TrimSpace(f[0]), 10, 64)
	if err != nil {
		return t, fmt.Errorf("%w: time %q", errTuple, f[0])
	}
	t.Time = time.Unix(sec, 0).UTC()
	t.SrcIP, t.DstIP = normIP(f[1]), normIP(f[2])
	t.SrcPort, _ = strconv.Atoi(f[3])
	t.DstPort, _ = strconv.Atoi(f[4])
	switch f[5] {
	case "T":
		t.Protocol = "tcp"
	case "U":
		t.Protocol = "udp"
	default:
		t.Protocol = strings.ToLower(f[5])
	}
	t.Direction, t.Decision = f[6], f[7]
	if len(f) > 8 {
		t.State = f[8]
	}
	if len(f) >= 13 {
		t.PacketsOut, t.BytesOut = atoi(f[9]), atoi(f[10])
		t.PacketsIn, t.BytesIn = atoi(f[11]), atoi(f[12])
	}
	return t, nil
}

// parseVNetTuple parses "ts_ms,src,dst,sport,dport,proto#,I|O,B|C|E|D,enc,pkts,bytes,pkts,bytes".
func parseVNetTuple(s string) (flowTuple, error) {
	var t flowTuple
	f := strings.Split(s, ",")
	if len(f) < 8 {
		return t, fmt.Errorf("%w: %d fields in %q", errTuple, len(f), truncate(s, 80))
	}
	ms, err := strconv.ParseInt(strings.TrimSpace(f[0]), 10, 64)
	if err != nil {
		return t, fmt.Errorf("%w: time %q", errTuple, f[0])
	}
	t.Time = time.UnixMilli(ms).UTC()
	t.SrcIP, t.DstIP = normIP(f[1]), normIP(f[2])
	t.SrcPort, _ = strconv.Atoi(f[3])
	t.DstPort, _ = strconv.Atoi(f[4])
	switch f[5] {
	case "6":
		t.Protocol = "tcp"
	case "17":
		t.Protocol = "udp"
	case "1":
		t.Protocol = "icmp"
	default:
		t.Protocol = f[5]
	}
	t.Direction, t.State = f[6], f[7]
	t.Decision = "A"
	if t.State == "D" {
		t.Decision = "D"
	}
	if len(f) > 8 {
		t.Encryption = f[8]
	}
	if len(f) >= 13 {
		t.PacketsOut, t.BytesOut = atoi(f[9]), atoi(f[10])
		t.PacketsIn, t.BytesIn = atoi(f[11]), atoi(f[12])
	}
	return t, nil
}

// flowEvent builds the event of one tuple. Raw is a JSON object built from
// the record's identifying fields and the tuple, named as in the docs, so
// a rule reaches Fields.rule or Fields.FlowState.
func (p *parser) flowEvent(src, resource, rule, mac string, t flowTuple, tuple string, ctx []byte) event.Event {
	e := event.Event{
		Time:     t.Time,
		Received: p.received,
		Source:   src,
		Category: event.CatNetwork,
		Type:     event.TypeNetwork,
		SrcIP:    t.SrcIP,
		DstIP:    t.DstIP,
		SrcPort:  t.SrcPort,
		DstPort:  t.DstPort,
		Protocol: t.Protocol,
		BytesOut: t.BytesOut,
		BytesIn:  t.BytesIn,
		Resource: resource,
	}
	if t.Decision == "D" {
		e.Action, e.Outcome = "deny", event.OutcomeFailure
	} else {
		e.Action, e.Outcome = "allow", event.OutcomeSuccess
	}
	raw := make([]byte, 0, 256+len(tuple)+len(resource)+len(ctx))
	raw = append(raw, ctx...)
	raw = appendField(raw, "rule", rule)
	raw = appendField(raw, "mac", mac)
	raw = appendField(raw, "flowTuple", tuple)
	raw = appendField(raw, "Direction", t.Direction)
	raw = appendField(raw, "Decision", t.Decision)
	raw = appendField(raw, "FlowState", t.State)
	if t.Encryption != "" {
		raw = appendField(raw, "Encryption", t.Encryption)
	}
	raw = append(raw, `,"PacketsSrcToDst":`...)
	raw = strconv.AppendInt(raw, t.PacketsOut, 10)
	raw = append(raw, `,"PacketsDstToSrc":`...)
	raw = strconv.AppendInt(raw, t.PacketsIn, 10)
	raw = append(raw, '}')
	e.Raw = raw
	e.ID = hashID(src, []byte(resource), []byte(rule), []byte(mac), []byte(tuple))
	return e
}

// appendField appends `,"k":"v"` (or `"k":"v"` right after '{').
func appendField(dst []byte, k, v string) []byte {
	if len(dst) > 0 && dst[len(dst)-1] != '{' {
		dst = append(dst, ',')
	}
	dst = appendJSONString(dst, k)
	dst = append(dst, ':')
	return appendJSONString(dst, v)
}

func mapNSGFlow(p *parser, raw []byte, pr *probe) error {
	var r nsgRecord
	if err := p.unmarshal(raw, &r); err != nil {
		return fmt.Errorf("nsg flow: %w", err)
	}
	const src = "network.NSGFlow"
	res := strings.ToLower(string(r.ResourceID))
	ctx := []byte{'{'}
	ctx = appendField(ctx, "time", r.Time.UTC().Format(time.RFC3339Nano))
	ctx = appendField(ctx, "category", "NetworkSecurityGroupFlowEvent")
	ctx = appendField(ctx, "resourceId", string(r.ResourceID))
	ctx = appendField(ctx, "systemId", string(r.SystemID))
	if r.MacAddress != "" {
		ctx = appendField(ctx, "macAddress", string(r.MacAddress))
	}
	ctx = append(ctx, `,"Version":`...)
	ctx = strconv.AppendInt(ctx, int64(r.Properties.Version), 10)
	for _, rf := range r.Properties.Flows {
		for _, mf := range rf.Flows {
			for _, tup := range mf.FlowTuples {
				t, err := parseNSGTuple(string(tup))
				if err != nil {
					return fmt.Errorf("nsg flow rule %s: %w", rf.Rule, err)
				}
				p.events = append(p.events, p.flowEvent(src, res, string(rf.Rule), string(mf.Mac), t, string(tup), ctx))
			}
		}
	}
	return nil
}

// vnetRecord is one VNet flow-log record (flowLogVersion 4).
type vnetRecord struct {
	Time              ftime `json:"time"`
	FlowLogVersion    fint  `json:"flowLogVersion"`
	FlowLogGUID       fstr  `json:"flowLogGUID"`
	MacAddress        fstr  `json:"macAddress"`
	FlowLogResourceID fstr  `json:"flowLogResourceID"`
	TargetResourceID  fstr  `json:"targetResourceID"`
	FlowRecords       struct {
		Flows []struct {
			ACLID      fstr `json:"aclID"`
			FlowGroups []struct {
				Rule       fstr   `json:"rule"`
				FlowTuples []fstr `json:"flowTuples"`
			} `json:"flowGroups"`
		} `json:"flows"`
	} `json:"flowRecords"`
}

func mapVNetFlow(p *parser, raw []byte, pr *probe) error {
	var r vnetRecord
	if err := p.unmarshal(raw, &r); err != nil {
		return fmt.Errorf("vnet flow: %w", err)
	}
	const src = "network.VNetFlow"
	res := strings.ToLower(string(r.TargetResourceID))
	for _, fl := range r.FlowRecords.Flows {
		ctx := []byte{'{'}
		ctx = appendField(ctx, "time", r.Time.UTC().Format(time.RFC3339Nano))
		ctx = appendField(ctx, "category", "FlowLogFlowEvent")
		ctx = appendField(ctx, "flowLogResourceID", string(r.FlowLogResourceID))
		ctx = appendField(ctx, "targetResourceID", string(r.TargetResourceID))
		ctx = appendField(ctx, "macAddress", string(r.MacAddress))
		ctx = appendField(ctx, "aclID", string(fl.ACLID))
		for _, g := range fl.FlowGroups {
			for _, tup := range g.FlowTuples {
				t, err := parseVNetTuple(string(tup))
				if err != nil {
					return fmt.Errorf("vnet flow rule %s: %w", g.Rule, err)
				}
				p.events = append(p.events, p.flowEvent(src, res, string(g.Rule), string(r.MacAddress), t, string(tup), ctx))
			}
		}
	}
	return nil
}
