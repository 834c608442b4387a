package syslog

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/leodido/go-syslog/v4/rfc3164"
	"github.com/leodido/go-syslog/v4/rfc5424"
	"github.com/rs/zerolog"

	"github.com/vigil-sec/vigil/pipeline/connector"
	"github.com/vigil-sec/vigil/pipeline/connector/internal/conntest"
	"github.com/vigil-sec/vigil/pipeline/kafkatest"
)

func TestMain(m *testing.M) { kafkatest.Main(m) }

// Invented messages in the three formats.
const (
	m5424 = `<165>1 2024-03-01T10:00:00.123456Z fw-01.contoso.test sshd 4123 ID47 [exampleSDID@32473 iut="3" eventSource="Application"] Failed password for root from 198.51.100.7 port 52211 ssh2`
	m3164 = `<34>Mar  1 10:00:01 mailhost su: 'su root' failed for ann on /dev/pts/8`
	mCEF  = `<134>Mar  1 10:00:02 edge-fw CEF:0|Contoso|EdgeFW|2.1|4001|Port scan detected|7|src=203.0.113.50 dst=10.1.0.12 dpt=3389 act=blocked`
	bare  = `CEF:0|Contoso|EdgeFW|2.1|4002|Allowed|1|src=10.1.0.12 dst=192.0.2.10`
)

func TestFramer(t *testing.T) {
	tests := []struct {
		name string
		in   string
		max  int
		want []string
		err  error // after the wanted messages
	}{
		{"newline", m3164 + "\n" + mCEF + "\n", 1024, []string{m3164, mCEF}, io.EOF},
		{"crlf and nul", m3164 + "\r\n" + mCEF + "\x00\n", 1024, []string{m3164, mCEF}, io.EOF},
		{"octet counting", fmt.Sprintf("%d %s%d %s", len(m5424), m5424, len(mCEF), mCEF), 1024, []string{m5424, mCEF}, io.EOF},
		{"octet counted message holding newlines", "12 line1\nline2\n" + bare + "\n", 1024, []string{"line1\nline2", bare}, io.EOF},
		{"mixed", fmt.Sprintf("%d %s\n%s\n", len(m5424), m5424, m3164), 1024, []string{m5424, m3164}, io.EOF},
		{"leading digit line", "2024-03-01 10:00:00 host msg\n", 1024, []string{"2024-03-01 10:00:00 host msg"}, io.EOF},
		{"last line without newline", bare, 1024, []string{bare}, io.EOF},
		{"line too large then next", strings.Repeat("x", 50) + "\n" + bare + "\n", 40, nil, ErrTooLarge},
		{"count over max", "999 abc", 40, nil, ErrFrame},
		{"count cut short", "10 abc", 40, nil, ErrFrame},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := Framer{R: bufio.NewReaderSize(strings.NewReader(tt.in), 16), Max: tt.max}
			var got []string
			var err error
			for {
				var m []byte
				m, err = f.Next()
				if err != nil {
					break
				}
				got = append(got, string(m))
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") || !errors.Is(err, tt.err) {
				t.Errorf("got %q, %v; want %q, %v", got, err, tt.want, tt.err)
			}
		})
	}
	// After a too-large line the stream goes on.
	f := Framer{R: bufio.NewReader(strings.NewReader(strings.Repeat("x", 100) + "\n" + bare + "\n")), Max: 70}
	if _, err := f.Next(); !errors.Is(err, ErrTooLarge) {
		t.Fatal(err)
	}
	if m, err := f.Next(); err != nil || string(m) != bare {
		t.Errorf("after skip: %q %v", m, err)
	}
}

func FuzzFramer(f *testing.F) {
	f.Add([]byte(fmt.Sprintf("%d %s\n%s\n", len(m5424), m5424, m3164)), 100)
	f.Add([]byte("5 abcde12 x"), 10)
	f.Fuzz(func(t *testing.T, in []byte, max int) {
		if max <= 0 || max > 1<<16 {
			return
		}
		fr := Framer{R: bufio.NewReaderSize(strings.NewReader(string(in)), 16), Max: max}
		for i := 0; i < len(in)+1; i++ {
			m, err := fr.Next()
			if err != nil {
				if errors.Is(err, ErrTooLarge) {
					continue
				}
				return
			}
			if len(m) > max {
				t.Fatalf("message of %d bytes over max %d", len(m), max)
			}
		}
		t.Fatalf("Framer did not reach the end of %d bytes", len(in))
	})
}

func selfSigned(t *testing.T) (*tls.Config, *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "syslog.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, pool
}

// run starts a listener on loopback UDP and TCP (TLS if tc is set) and
// returns its addresses and a stop function.
func run(t *testing.T, prefix string, tc *tls.Config) (udp, tcp string, stop func()) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &Listener{PacketConn: pc, Listener: ln, TLS: tc, Prefix: prefix, FlushInterval: 10 * time.Millisecond,
		Logger: zerolog.Nop(), Metrics: connector.NewMetrics(nil)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx, kafkatest.Client(t)) }()
	return pc.LocalAddr().String(), ln.Addr().String(), func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return")
		}
	}
}

func sortedValues(t *testing.T, topic string, n int) []string {
	got := conntest.Consume(t, topic, n, 10*time.Second)
	for _, r := range got {
		if string(r.Key) != "127.0.0.1" || conntest.Header(r, connector.HeaderSource) != "syslog" {
			t.Errorf("record key %q headers %v", r.Key, r.Headers)
		}
	}
	vs := conntest.Values(got)
	sort.Strings(vs)
	return vs
}

func want(ms ...string) []string {
	out := append([]string(nil), ms...)
	sort.Strings(out)
	return out
}

// TestListenerUDPAndTCP sends RFC 5424, RFC 3164 and CEF over UDP and over
// TCP with both framings, and reads the raw topic back; the messages are
// whole and parse with go-syslog.
func TestListenerUDPAndTCP(t *testing.T) {
	prefix := kafkatest.TopicPrefix(t)
	topic := conntest.Topic(t, prefix+"raw.syslog", 1)
	udp, tcp, stop := run(t, prefix, nil)

	uc, err := net.Dial("udp", udp)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{m5424, m3164 + "\n", mCEF} {
		if _, err := uc.Write([]byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	uc.Close()
	tc, err := net.Dial("tcp", tcp)
	if err != nil {
		t.Fatal(err)
	}
	// Octet counting, then newline framing, on one connection.
	fmt.Fprintf(tc, "%d %s%d %s", len(m5424), m5424, len(mCEF), mCEF)
	fmt.Fprintf(tc, "%s\n%s\r\n", m3164, bare)
	tc.Close()

	wantAll := want(m5424, m3164, mCEF, m5424, mCEF, m3164, bare)
	got := sortedValues(t, topic, len(wantAll))
	if strings.Join(got, "\n") != strings.Join(wantAll, "\n") {
		t.Fatalf("topic holds\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantAll, "\n"))
	}
	if _, err := rfc5424.NewParser().Parse([]byte(m5424)); err != nil {
		t.Errorf("RFC 5424 record does not parse: %v", err)
	}
	for _, m := range []string{m3164, mCEF} {
		if _, err := rfc3164.NewParser().Parse([]byte(m)); err != nil {
			t.Errorf("RFC 3164 record %q does not parse: %v", m, err)
		}
	}
	stop()
}

// TestListenerTLS sends octet-counted messages over TLS.
func TestListenerTLS(t *testing.T) {
	prefix := kafkatest.TopicPrefix(t)
	topic := conntest.Topic(t, prefix+"raw.syslog", 1)
	srvTLS, pool := selfSigned(t)
	_, tcp, stop := run(t, prefix, srvTLS)
	defer stop()
	c, err := tls.Dial("tcp", tcp, &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "%d %s%d %s", len(m5424), m5424, len(m3164), m3164)
	c.Close()
	if got := sortedValues(t, topic, 2); strings.Join(got, "\n") != strings.Join(want(m5424, m3164), "\n") {
		t.Fatalf("got %q", got)
	}
}

// TestListenerShutdownProducesReceived: messages received just before
// cancellation are still produced.
func TestListenerShutdownProducesReceived(t *testing.T) {
	prefix := kafkatest.TopicPrefix(t)
	topic := conntest.Topic(t, prefix+"raw.syslog", 1)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &Listener{PacketConn: pc, Prefix: prefix, FlushInterval: time.Hour, Logger: zerolog.Nop()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx, kafkatest.Client(t)) }()
	uc, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	for i := range 20 {
		fmt.Fprintf(uc, "<13>1 2024-03-01T10:00:00Z h app - - - n=%d", i)
	}
	time.Sleep(200 * time.Millisecond) // let the datagrams be read
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := conntest.Consume(t, topic, 20, 5*time.Second); len(got) != 20 {
		t.Fatalf("%d of 20 produced after shutdown", len(got))
	}
}

func TestListenerConfigErrors(t *testing.T) {
	if err := (&Listener{}).Run(context.Background(), kafkatest.Client(t)); err == nil {
		t.Error("no address accepted")
	}
	if err := (&Listener{UDP: "127.0.0.1:0", Source: "a/b"}).Run(context.Background(), kafkatest.Client(t)); err == nil {
		t.Error("bad source accepted")
	}
	if (&Listener{}).Name() != DefaultName {
		t.Error("default name")
	}
}

// BenchmarkFramer frames an octet-counted TCP stream of RFC 5424 messages.
func BenchmarkFramer(b *testing.B) {
	frame := fmt.Sprintf("%d %s", len(m5424), m5424)
	stream := strings.Repeat(frame, 1000)
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		f := Framer{R: bufio.NewReader(strings.NewReader(stream)), Max: 1 << 16}
		n := 0
		for {
			if _, err := f.Next(); err != nil {
				break
			}
			n++
		}
		if n != 1000 {
			b.Fatal(n)
		}
	}
	b.ReportMetric(float64(b.N)*1000/b.Elapsed().Seconds(), "msgs/s")
}
