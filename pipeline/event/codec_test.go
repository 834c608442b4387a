package event

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

// processRaw is an invented DeviceProcessEvents record of the size Defender
// streams (1.2 KB), used as Raw by the fixtures and the benchmarks.
const processRaw = `{"Timestamp":"2025-03-14T09:26:53.5897932Z","DeviceId":"4f1c2a9be0d34e7a8c55b1f0a2d6e3c9b8a71234",` +
	`"DeviceName":"wks-fin-0042.contoso.example","ActionType":"ProcessCreated","FileName":"powershell.exe",` +
	`"FolderPath":"C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",` +
	`"SHA1":"0d5c1e7a9b3f4c2d8e6a1b0c9d8e7f6a5b4c3d2e","SHA256":"9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b",` +
	`"MD5":"1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d","FileSize":450560,"ProcessId":7312,` +
	`"ProcessCommandLine":"powershell.exe -NoProfile -ExecutionPolicy Bypass -EncodedCommand SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQAIABOAGUAdAAuAFcAZQBiAEMAbABpAGUAbgB0ACkA",` +
	`"ProcessCreationTime":"2025-03-14T09:26:53.5712345Z",` +
	`"AccountDomain":"contoso","AccountName":"avery.quinn",` +
	`"AccountUpn":"avery.quinn@contoso.example","AccountObjectId":"7d3e9f10-2b4c-4a6d-9e8f-0a1b2c3d4e5f",` +
	`"InitiatingProcessAccountDomain":"contoso","InitiatingProcessAccountName":"avery.quinn",` +
	`"InitiatingProcessFileName":"winword.exe",` +
	`"InitiatingProcessId":5120,"InitiatingProcessCommandLine":"\"WINWORD.EXE\" /n \"C:\\Users\\avery.quinn\\Downloads\\Invoice_0314.docm\"",` +
	`"InitiatingProcessParentFileName":"explorer.exe","InitiatingProcessParentId":4088,` +
	`"ReportId":18234,"MachineGroup":"Finance"}`

// processEvent is what normalize would make of processRaw.
func processEvent() Event {
	return Event{
		ID:       "4f1c2a9be0d34e7a8c55b1f0a2d6e3c9b8a71234-18234",
		Time:     time.Date(2025, 3, 14, 9, 26, 53, 589793200, time.UTC),
		Received: time.Date(2025, 3, 14, 9, 27, 1, 120000000, time.UTC),
		Source:   "defender.DeviceProcessEvents",
		Category: CatEndpoint,
		Type:     TypeProcess,
		Action:   "ProcessCreated",
		Outcome:  OutcomeSuccess,
		User:     "avery.quinn@contoso.example",
		UserID:   "7d3e9f10-2b4c-4a6d-9e8f-0a1b2c3d4e5f",
		Device:   "wks-fin-0042.contoso.example",
		DeviceID: "4f1c2a9be0d34e7a8c55b1f0a2d6e3c9b8a71234",
		Process: Process{
			Name:              "powershell.exe",
			Path:              `C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe`,
			CommandLine:       "powershell.exe -NoProfile -ExecutionPolicy Bypass -EncodedCommand SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQAIABOAGUAdAAuAFcAZQBiAEMAbABpAGUAbgB0ACkA",
			PID:               7312,
			SHA256:            "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b",
			SHA1:              "0d5c1e7a9b3f4c2d8e6a1b0c9d8e7f6a5b4c3d2e",
			MD5:               "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d",
			ParentName:        "winword.exe",
			ParentCommandLine: `"WINWORD.EXE" /n "C:\Users\avery.quinn\Downloads\Invoice_0314.docm"`,
			ParentPID:         5120,
		},
		Related: Related{Users: []string{"avery.quinn@contoso.example"}, IPs: []string{"10.20.30.40"}},
		Raw:     json.RawMessage(processRaw),
	}
}

// flowEvent is a small network flow (an NSG flow tuple has no record of its
// own: Raw is the tuple's columns as JSON).
func flowEvent() Event {
	return Event{
		ID:       "nsg-3f2a1b0c-0007",
		Time:     time.Date(2025, 3, 14, 9, 30, 0, 0, time.UTC),
		Source:   "network.NSGFlow",
		Category: CatNetwork,
		Type:     TypeNetwork,
		Action:   "A",
		Outcome:  OutcomeSuccess,
		SrcIP:    "10.20.30.40",
		DstIP:    "203.0.113.77",
		SrcPort:  51234,
		DstPort:  443,
		Protocol: "tcp",
		BytesIn:  18211,
		BytesOut: 2290,
		Related:  Related{Devices: []string{"wks-fin-0042.contoso.example"}, Users: []string{"avery.quinn@contoso.example"}},
		Raw:      json.RawMessage(`{"t":1741944600,"src":"10.20.30.40","dst":"203.0.113.77","sp":51234,"dp":443,"p":"T","d":"O","a":"A"}`),
	}
}

func roundTrip(t *testing.T, in *Event) Event {
	t.Helper()
	b, err := Marshal(in)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	var out Event
	if err := Unmarshal(b, &out); err != nil {
		t.Fatalf("Unmarshal: %v (% x)", err, b)
	}
	return out
}

// diffEvents names the fields in which a and b differ, for failure messages
// that a 1 KB Raw does not drown.
func diffEvents(a, b Event) string {
	var out []string
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	for i := range va.NumField() {
		fa, fb := va.Field(i).Interface(), vb.Field(i).Interface()
		if !reflect.DeepEqual(fa, fb) {
			out = append(out, fmt.Sprintf("%s: got %#v, want %#v", va.Type().Field(i).Name, fa, fb))
		}
	}
	return strings.Join(out, "\n")
}

func TestRoundTrip(t *testing.T) {
	pre1970 := time.Date(1969, 7, 20, 20, 17, 40, 999999999, time.UTC)
	tests := []struct {
		name string
		in   Event
	}{
		{"zero event", Event{}},
		{"process event", processEvent()},
		{"flow event", flowEvent()},
		{"nanoseconds and zero received", Event{ID: "a", Time: time.Date(2025, 1, 2, 3, 4, 5, 1, time.UTC)}},
		{"received only", Event{Received: time.Date(2025, 1, 2, 3, 4, 5, 999999999, time.UTC)}},
		{"before 1970", Event{Time: pre1970}},
		{"year 1 and year 9999", Event{Time: time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC), Received: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)}},
		{"negative and extreme integers", Event{SrcPort: -1, DstPort: 1 << 40, BytesIn: -1 << 63, BytesOut: 1<<63 - 1,
			Process: Process{PID: -5, ParentPID: 1}, File: File{Size: 1 << 62}}},
		{"related with empty strings and duplicates", Event{Related: Related{Users: []string{"", "a", ""}, Devices: []string{"d"}, IPs: []string{"::1", "::1"}}}},
		{"unicode and control bytes", Event{Title: "Zugriff verweigert – 拒绝", User: "\x00\xff", Country: "DE"}},
		{"raw not JSON", Event{Raw: json.RawMessage{0, 1, 2, 0xff}}},
		{"file only", Event{File: File{Name: "a.dll", Path: `C:\a.dll`, SHA256: "x", SHA1: "y", MD5: "z", Size: 3}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := roundTrip(t, &tt.in)
			if !reflect.DeepEqual(got, tt.in) {
				t.Errorf("round trip changed the event:\n%s", diffEvents(got, tt.in))
			}
		})
	}
}

func TestRoundTripNormalizes(t *testing.T) {
	paris := time.FixedZone("CET", 3600)
	in := Event{
		Time:    time.Date(2025, 3, 14, 10, 0, 0, 5, paris),
		Related: Related{Users: []string{}},
		Raw:     json.RawMessage{},
		Fields:  map[string]any{"x": 1.0},
	}
	got := roundTrip(t, &in)
	if !got.Time.Equal(in.Time) || got.Time.Location() != time.UTC {
		t.Errorf("time %v: want the same instant in UTC, got %v", in.Time, got.Time)
	}
	if got.Related.Users != nil || got.Raw != nil || got.Fields != nil {
		t.Errorf("empty slices and Fields should come back nil, got %#v %#v %#v", got.Related.Users, got.Raw, got.Fields)
	}
}

// leafFields lists every settable leaf of Event (fields of Process, File,
// Related included) with a setter that stores a distinct non-zero value
// derived from n. It fails the test on a field kind the codec test does not
// know, so a new field of a new kind is noticed here.
type leaf struct {
	path string
	set  func(e *Event, n int)
}

func leafFields(t *testing.T) []leaf {
	t.Helper()
	var out []leaf
	var walk func(typ reflect.Type, index []int, path string)
	walk = func(typ reflect.Type, index []int, path string) {
		for i := range typ.NumField() {
			sf := typ.Field(i)
			if !sf.IsExported() {
				continue
			}
			idx := append(append([]int(nil), index...), i)
			p := path + sf.Name
			get := func(e *Event) reflect.Value { return reflect.ValueOf(e).Elem().FieldByIndex(idx) }
			ft := sf.Type
			switch {
			case p == "Fields":
				// Derived from Raw, deliberately not encoded.
			case ft == reflect.TypeFor[time.Time]():
				out = append(out, leaf{p, func(e *Event, n int) {
					get(e).Set(reflect.ValueOf(time.Unix(1_700_000_000+int64(n)*3601, int64(n)*7919+1).UTC()))
				}})
			case ft == reflect.TypeFor[json.RawMessage]():
				out = append(out, leaf{p, func(e *Event, n int) {
					get(e).SetBytes([]byte(fmt.Sprintf(`{"n":%d}`, n)))
				}})
			case ft.Kind() == reflect.String:
				out = append(out, leaf{p, func(e *Event, n int) { get(e).SetString(fmt.Sprintf("%s-%d", p, n)) }})
			case ft.Kind() == reflect.Int || ft.Kind() == reflect.Int64:
				out = append(out, leaf{p, func(e *Event, n int) { get(e).SetInt(-int64(n)*1_000_003 - 1) }})
			case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.String:
				out = append(out, leaf{p, func(e *Event, n int) {
					get(e).Set(reflect.ValueOf([]string{fmt.Sprintf("%s-%d", p, n), "", "x"}))
				}})
			case ft.Kind() == reflect.Struct:
				walk(ft, idx, p+".")
			default:
				t.Fatalf("field %s has type %s, which codec.go does not encode: give it a field number and "+
					"extend AppendMarshal, Unmarshal and this test", p, ft)
			}
		}
	}
	walk(reflect.TypeFor[Event](), nil, "")
	return out
}

// TestRoundTripEveryField fails when someone adds an exported field to Event,
// Process, File or Related without giving it a place in the encoding.
func TestRoundTripEveryField(t *testing.T) {
	leaves := leafFields(t)
	if len(leaves) < 45 {
		t.Fatalf("found only %d fields; the reflection walk is broken", len(leaves))
	}
	// Each field alone: catches two fields sharing a number.
	for n, l := range leaves {
		t.Run(l.path, func(t *testing.T) {
			var in Event
			l.set(&in, n+1)
			if reflect.DeepEqual(in, Event{}) {
				t.Fatal("setter left the event zero")
			}
			if got := roundTrip(t, &in); !reflect.DeepEqual(got, in) {
				t.Errorf("field %s not round-tripped:\n%s", l.path, diffEvents(got, in))
			}
		})
	}
	// All fields at once, each with its own value.
	var in Event
	for n, l := range leaves {
		l.set(&in, n+1)
	}
	if got := roundTrip(t, &in); !reflect.DeepEqual(got, in) {
		t.Errorf("all fields: round trip changed the event:\n%s", diffEvents(got, in))
	}
}

func TestUnmarshalDoesNotAliasInput(t *testing.T) {
	in := processEvent()
	b, err := Marshal(&in)
	if err != nil {
		t.Fatal(err)
	}
	var got Event
	if err := Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 0xAA
	}
	if !reflect.DeepEqual(got, in) {
		t.Fatal("decoded event changed when the input buffer was overwritten")
	}
	// Appending to Raw must not write into another field's memory either.
	got.Raw = append(got.Raw, " tail"...)
	if got.Process.CommandLine != in.Process.CommandLine {
		t.Fatal("appending to Raw changed another field")
	}
}

// TestUnmarshalSharedRaw: UnmarshalShared decodes the same event as
// Unmarshal, its Raw lies inside the input (no copy), an append to Raw
// does not write into the input, and the strings do not alias it.
func TestUnmarshalSharedRaw(t *testing.T) {
	in := processEvent()
	b, err := Marshal(&in)
	if err != nil {
		t.Fatal(err)
	}
	var got, want Event
	if err := Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if err := UnmarshalShared(b, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("UnmarshalShared differs from Unmarshal:\n%s", diffEvents(got, want))
	}
	if len(got.Raw) == 0 || !bytes.Contains(b, got.Raw) || &got.Raw[0] != &b[bytes.Index(b, got.Raw)] {
		t.Fatal("Raw is not a subslice of the input")
	}
	before := bytes.Clone(b)
	_ = append(got.Raw, " tail"...)
	if !bytes.Equal(b, before) {
		t.Fatal("appending to the shared Raw wrote into the input")
	}
	for i := range b {
		b[i] = 0xAA
	}
	got.Raw, want.Raw = nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Fatal("a decoded string changed when the input was overwritten")
	}
}

// TestDecodedSlicesAreIndependent guards the shared backing arrays of
// Unmarshal: growing one slice of a decoded event must not write into
// another.
func TestDecodedSlicesAreIndependent(t *testing.T) {
	in := Event{
		User:    "u0",
		Related: Related{Users: []string{"u1", "u2"}, Devices: []string{"d1"}, IPs: []string{"i1", "i2"}},
		Raw:     json.RawMessage(`{"a":1}`),
	}
	got := roundTrip(t, &in)
	got.Related.Users = append(got.Related.Users, "u3")
	got.Related.Devices = append(got.Related.Devices, "d2")
	got.Related.Devices[0] = "changed"
	got.Raw = append(got.Raw, "garbage"...)
	got.Raw[0] = '['
	want := Related{Users: []string{"u1", "u2", "u3"}, Devices: []string{"changed", "d2"}, IPs: []string{"i1", "i2"}}
	if !reflect.DeepEqual(got.Related, want) || got.User != "u0" {
		t.Errorf("slices of one decoded event share memory: got %+v, user %q", got.Related, got.User)
	}
}

func TestUnmarshalOverwritesTarget(t *testing.T) {
	small := flowEvent()
	small.Related = Related{}
	b, err := Marshal(&small)
	if err != nil {
		t.Fatal(err)
	}
	got := processEvent()
	got.Fields = map[string]any{"stale": true}
	if err := Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, small) {
		t.Errorf("fields of the previous event survived:\n%s", diffEvents(got, small))
	}
}

func TestAppendMarshalKeepsPrefix(t *testing.T) {
	ev := flowEvent()
	want, err := Marshal(&ev)
	if err != nil {
		t.Fatal(err)
	}
	buf := []byte("prefix")
	buf, err = AppendMarshal(buf, &ev)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(buf, []byte("prefix")) || !bytes.Equal(buf[len("prefix"):], want) {
		t.Fatalf("AppendMarshal = %q, want prefix + %x", buf, want)
	}
	// Reusing the buffer gives the same bytes again.
	buf2, _ := AppendMarshal(buf[:0], &ev)
	if !bytes.Equal(buf2, want) {
		t.Fatalf("reused buffer: got %x, want %x", buf2, want)
	}
}

// TestGoldenBytes pins version 1 on the wire: records of earlier releases
// live on in topics and changelogs, so an accidental renumbering or wire
// type change must fail here, not in production.
func TestGoldenBytes(t *testing.T) {
	ev := Event{
		ID:       "e1",
		Time:     time.Date(2025, 1, 1, 0, 0, 0, 5, time.UTC),
		Category: CatNetwork,
		DstPort:  443,
		BytesIn:  -2,
		Process:  Process{PID: 7},
		Related:  Related{IPs: []string{"ip1", ""}},
		Raw:      json.RawMessage(`{}`),
	}
	// 62 layout: 12 string bytes, 0 users, 0 devices, 2 IPs
	const layout = "f901" + "04" + "0c" + "00" + "00" + "02"
	const fields = "05" + "02" + "6531" + // 1 ID (1<<2|1), len 2, "e1"
		"0a" + "8096a4f70c" + "05" + // 2 Time (2<<2|2), unix 1735689600 zig-zag, 5 ns
		"15" + "07" + "6e6574776f726b" + // 5 Category
		"48" + "f606" + // 18 DstPort (18<<2|0), zig-zag 443
		"64" + "03" + // 25 BytesIn, zig-zag -2
		"8c01" + "0e" + // 35 Process.PID, zig-zag 7
		"e901" + "03" + "697031" + // 58 Related.IPs "ip1"
		"e901" + "00" + // 58 Related.IPs ""
		"fd01" + "02" + "7b7d" // 63 Raw
	const want = "01" + layout + fields // version, layout, fields
	got, err := Marshal(&ev)
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(got) != want {
		t.Fatalf("encoding changed:\n got %x\nwant %s", got, want)
	}
	// Records of the previous release have no layout; a layout that does
	// not fit the record is ignored.
	for _, rec := range []string{want, "01" + fields, "01" + "f901" + "04" + "ff7f" + "00" + "02" + fields} {
		wb, _ := hex.DecodeString(rec)
		var back Event
		if err := Unmarshal(wb, &back); err != nil || !reflect.DeepEqual(back, ev) {
			t.Fatalf("%s decodes to %+v, %v", rec, back, err)
		}
	}
}

// TestLayoutMatchesSizingPass: the layout Marshal writes holds exactly what
// Unmarshal's sizing pass would count, for each field set alone (a field
// added to Event but not to appendLayout fails here), all of them, and the
// sample events.
func TestLayoutMatchesSizingPass(t *testing.T) {
	evs := []Event{processEvent(), flowEvent()}
	var all Event
	for n, l := range leafFields(t) {
		var one Event
		l.set(&one, n+1)
		l.set(&all, n+1)
		evs = append(evs, one)
	}
	evs = append(evs, all)
	for i, ev := range evs {
		b, err := Marshal(&ev)
		if err != nil {
			t.Fatal(err)
		}
		d := decoder{b: b, off: 1}
		hs, hu, hd, hi, ok := d.layout()
		if !ok {
			t.Fatalf("event %d: no layout", i)
		}
		// The sizing pass over the same record, its layout skipped.
		p := decoder{b: b, off: d.off}
		var strBytes, users, devices, ips int
		for p.off < len(b) {
			key, _ := p.uvarint()
			num, wire := key>>2, key&3
			if wire != wireBytes {
				_ = p.skip(wire)
				continue
			}
			v, _ := p.bytes()
			switch num {
			case fRaw, fLayout:
				continue
			case fRelatedUsers:
				users++
			case fRelatedDevices:
				devices++
			case fRelatedIPs:
				ips++
			}
			strBytes += len(v)
		}
		if hs != strBytes || hu != users || hd != devices || hi != ips {
			t.Errorf("event %d: layout %d/%d/%d/%d, sizing pass %d/%d/%d/%d", i, hs, hu, hd, hi, strBytes, users, devices, ips)
		}
	}
}

func TestUnmarshalErrors(t *testing.T) {
	valid, _ := Marshal(&Event{ID: "x"})
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"nil", nil, ErrMalformed},
		{"unknown version 0", []byte{0, 5, 1, 'x'}, ErrUnknownVersion},
		{"unknown version 2", []byte{2}, ErrUnknownVersion},
		{"JSON where binary is expected", []byte(`{"id":"x"}`), ErrUnknownVersion},
		{"truncated key", []byte{1, 0x80}, ErrMalformed},
		{"varint longer than 64 bits", []byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, ErrMalformed},
		{"string length past the end", []byte{1, 0x05, 0x09, 'a'}, ErrMalformed},
		{"huge string length", []byte{1, 0x05, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, ErrMalformed},
		{"string field with varint wire type", []byte{1, 0x04, 0x01}, ErrMalformed},
		{"time field with bytes wire type", []byte{1, 0x09, 0x00}, ErrMalformed},
		{"time without nanoseconds", []byte{1, 0x0a, 0x02}, ErrMalformed},
		{"nanoseconds out of range", []byte{1, 0x0a, 0x02, 0x80, 0x94, 0xeb, 0xdc, 0x03}, ErrMalformed},
		{"raw with varint wire type", []byte{1, 0xfc, 0x01, 0x00}, ErrMalformed},
		{"unknown wire type", []byte{1, 0x07, 0x00}, ErrMalformed},
		{"unknown field truncated", []byte{1, 0x81, 0x08, 0x05, 'a'}, ErrMalformed},
		{"valid then garbage", append(append([]byte(nil), valid...), 0xff), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e Event
			err := Unmarshal(tt.in, &e)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Unmarshal(% x) = %v, want %v", tt.in, err, tt.want)
			}
		})
	}
}

// TestUnmarshalSkipsUnknownFields is the forward-compatibility promise: a
// record from a release with more fields still decodes, known fields intact.
func TestUnmarshalSkipsUnknownFields(t *testing.T) {
	ev := flowEvent()
	b, _ := Marshal(&ev)
	b = appendKey(b, 200, wireBytes)
	b = append(b, 3, 'n', 'e', 'w')
	b = appendKey(b, 201, wireVarint)
	b = append(b, 0x96, 0x01)
	b = appendTime(b, 202, time.Unix(5, 6))
	b = appendString(b, fCountry, "NL") // a known field after the unknown ones
	var got Event
	if err := Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	ev.Country = "NL"
	if !reflect.DeepEqual(got, ev) {
		t.Errorf("unknown fields changed the event:\n%s", diffEvents(got, ev))
	}
}

// TestUnmarshalTruncated cuts a valid record at every length: a cut inside a
// field is an error, a cut between fields decodes the fields before it.
func TestUnmarshalTruncated(t *testing.T) {
	ev := processEvent()
	b, _ := Marshal(&ev)
	boundaries := map[int]bool{1: true}
	d := decoder{b: b, off: 1}
	for d.off < len(b) {
		key, err := d.uvarint()
		if err != nil {
			t.Fatal(err)
		}
		if err := d.skip(key & 3); err != nil {
			t.Fatal(err)
		}
		boundaries[d.off] = true
	}
	if len(boundaries) < 20 {
		t.Fatalf("only %d field boundaries in the fixture", len(boundaries))
	}
	for n := 0; n < len(b); n++ {
		var got Event
		err := Unmarshal(b[:n], &got)
		if boundaries[n] {
			if err != nil {
				t.Errorf("cut at field boundary %d: %v", n, err)
			}
			continue
		}
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("cut at %d inside a field: err = %v, want ErrMalformed", n, err)
		}
	}
}

// sharedDir finds /work/shared (../shared from the repo root) by walking up
// from this file.
func sharedDir(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Skip("cannot locate the test file to find ../shared")
	}
	for dir := filepath.Dir(file); ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			s := filepath.Join(dir, "..", "shared", "samples")
			if _, err := os.Stat(s); err != nil {
				t.Skipf("shared samples not found at %s: skipping the test on real records", s)
			}
			return s
		}
		if filepath.Dir(dir) == dir {
			t.Skip("repository root not found: skipping the test on real records")
		}
	}
}

// TestRoundTripSampleRecords carries each real JSON-lines sample record as
// Raw, with typed fields taken from it, and reports the encoded sizes.
func TestRoundTripSampleRecords(t *testing.T) {
	dir := sharedDir(t)
	files, _ := filepath.Glob(filepath.Join(dir, "*", "*.jsonl"))
	if len(files) == 0 {
		t.Skipf("no .jsonl samples under %s", dir)
	}
	var nrec, jsonBytes, binBytes int
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := bytes.TrimSpace(sc.Bytes())
			if len(line) == 0 {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal(line, &m); err != nil {
				continue
			}
			in := Event{
				ID:     fmt.Sprintf("%s:%d", filepath.Base(f), nrec),
				Time:   time.Unix(1_741_944_600+int64(nrec), int64(nrec)*1_000_001).UTC(),
				Source: "sample." + strings.TrimSuffix(filepath.Base(f), ".jsonl"),
				Raw:    append(json.RawMessage(nil), line...),
			}
			for k, v := range m {
				if s, ok := v.(string); ok {
					in.Related.Users = append(in.Related.Users, k+"="+s)
				}
			}
			got := roundTrip(t, &in)
			if !reflect.DeepEqual(got, in) {
				t.Fatalf("%s record %d: round trip changed the event", f, nrec)
			}
			jb, _ := json.Marshal(&in)
			bb, _ := Marshal(&in)
			jsonBytes += len(jb)
			binBytes += len(bb)
			nrec++
		}
		fh.Close()
		if err := sc.Err(); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	if nrec == 0 {
		t.Skip("no JSON records in the samples")
	}
	t.Logf("%d sample records: JSON %d bytes, binary v%d %d bytes", nrec, jsonBytes, CodecVersion, binBytes)
	if binBytes >= jsonBytes {
		t.Errorf("binary encoding (%d bytes) is not smaller than JSON (%d bytes)", binBytes, jsonBytes)
	}
}

func FuzzUnmarshal(f *testing.F) {
	for _, ev := range []Event{{}, processEvent(), flowEvent()} {
		b, _ := Marshal(&ev)
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{2})
	f.Add([]byte{1, 0x81, 0x08, 0x05, 'a'})
	f.Add([]byte(`{"id":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var e Event
		if err := Unmarshal(b, &e); err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownVersion) {
				t.Fatalf("error %v wraps neither ErrMalformed nor ErrUnknownVersion", err)
			}
			return
		}
		// Whatever decodes must survive a round trip unchanged.
		again := roundTrip(t, &e)
		if !reflect.DeepEqual(again, e) {
			t.Fatalf("decode → encode → decode changed the event:\n%s", diffEvents(again, e))
		}
	})
}

func FuzzRoundTrip(f *testing.F) {
	f.Add("id", int64(1_741_944_600), uint32(5), "user@x", 443, int64(-1), []byte(`{"a":1}`), "a,,b")
	f.Add("", int64(-62135596800), uint32(0), "", 0, int64(0), []byte{}, "")
	f.Fuzz(func(t *testing.T, id string, sec int64, nsec uint32, user string, port int, n int64, raw []byte, rel string) {
		in := Event{
			ID: id, Time: time.Unix(sec, int64(nsec%1e9)).UTC(), User: user, DstPort: port, BytesOut: n,
			Process: Process{PID: n}, Raw: raw,
		}
		if len(raw) == 0 {
			in.Raw = nil
		}
		if rel != "" {
			in.Related.IPs = strings.Split(rel, ",")
		}
		if got := roundTrip(t, &in); !reflect.DeepEqual(got, in) {
			t.Fatalf("round trip changed the event:\n%s", diffEvents(got, in))
		}
	})
}
