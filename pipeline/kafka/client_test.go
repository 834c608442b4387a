package kafka

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-sec/vigil/pipeline/config"
	"github.com/vigil-sec/vigil/pipeline/kafkatest"
)

func TestMain(m *testing.M) { kafkatest.Main(m) }

// pki is a throw-away CA with a server certificate for 127.0.0.1 and a
// client certificate, written as PEM files.
type pki struct {
	caFile, certFile, keyFile string // client side
	otherCAFile               string // a CA that did not sign the server
	server                    tls.Certificate
	pool                      *x509.CertPool
}

func newPKI(t *testing.T) pki {
	t.Helper()
	dir := t.TempDir()
	write := func(name string, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	serial := int64(1)
	mk := func(tmpl *x509.Certificate, parent *x509.Certificate, pub, signer any) (*x509.Certificate, []byte) {
		serial++
		tmpl.SerialNumber = big.NewInt(serial)
		tmpl.NotBefore = time.Now().Add(-time.Hour)
		tmpl.NotAfter = time.Now().Add(time.Hour)
		if parent == nil {
			parent = tmpl
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c, der
	}
	caKey := newKey()
	ca, caDER := mk(&x509.Certificate{Subject: pkix.Name{CommonName: "vigil test CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}, nil, &caKey.PublicKey, caKey)
	otherKey := newKey()
	_, otherDER := mk(&x509.Certificate{Subject: pkix.Name{CommonName: "other CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}, nil, &otherKey.PublicKey, otherKey)

	srvKey := newKey()
	_, srvDER := mk(&x509.Certificate{Subject: pkix.Name{CommonName: "broker"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames: []string{"localhost"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature},
		ca, &srvKey.PublicKey, caKey)
	srvKeyDER, _ := x509.MarshalECPrivateKey(srvKey)
	server, err := tls.X509KeyPair(
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: srvKeyDER}))
	if err != nil {
		t.Fatal(err)
	}

	cliKey := newKey()
	_, cliDER := mk(&x509.Certificate{Subject: pkix.Name{CommonName: "vigil"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}, ca, &cliKey.PublicKey, caKey)
	cliKeyDER, _ := x509.MarshalECPrivateKey(cliKey)

	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pki{
		caFile:      write("ca.pem", "CERTIFICATE", caDER),
		otherCAFile: write("other-ca.pem", "CERTIFICATE", otherDER),
		certFile:    write("client.pem", "CERTIFICATE", cliDER),
		keyFile:     write("client-key.pem", "EC PRIVATE KEY", cliKeyDER),
		server:      server,
		pool:        pool,
	}
}

func startKfake(t *testing.T, opts ...kfake.Opt) string {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0]
}

// ping builds a client from k and asks the broker for metadata, which
// needs the TLS handshake and SASL authentication to succeed.
func ping(t *testing.T, k config.Kafka) error {
	t.Helper()
	opts, err := ClientOpts(k)
	if err != nil {
		t.Fatalf("ClientOpts: %v", err)
	}
	cl, err := kgo.NewClient(append(opts, kgo.RequestRetries(0), kgo.RetryTimeout(2*time.Second))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return cl.Ping(ctx)
}

// TestClientOptsAgainstBroker connects with each security set-up to an
// in-process broker configured the same way; the wrong credentials or CA
// must fail.
func TestClientOptsAgainstBroker(t *testing.T) {
	p := newPKI(t)
	const ehConn = "Endpoint=sb://contoso-test.servicebus.windows.net/;SharedAccessKeyName=vigil;SharedAccessKey=aW52ZW50ZWQta2V5"
	serverTLS := &tls.Config{Certificates: []tls.Certificate{p.server}, MinVersion: tls.VersionTLS12}
	mtls := &tls.Config{Certificates: []tls.Certificate{p.server}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: p.pool, MinVersion: tls.VersionTLS12}

	tests := []struct {
		name    string
		broker  []kfake.Opt
		kafka   func(addr string) config.Kafka
		wantErr bool
	}{
		{"plaintext", nil, func(a string) config.Kafka {
			return config.Kafka{Brokers: []string{a}, ClientID: "t"}
		}, false},
		{"sasl plain", []kfake.Opt{kfake.EnableSASL(), kfake.Superuser("PLAIN", "alice", "pw-1")}, func(a string) config.Kafka {
			return config.Kafka{Brokers: []string{a}, ClientID: "t", SASL: config.SASL{Mechanism: "PLAIN", Username: "alice", Password: "pw-1"}}
		}, false},
		{"sasl plain wrong password", []kfake.Opt{kfake.EnableSASL(), kfake.Superuser("PLAIN", "alice", "pw-1")}, func(a string) config.Kafka {
			return config.Kafka{Brokers: []string{a}, ClientID: "t", SASL: config.SASL{Mechanism: "PLAIN", Username: "alice", Password: "nope"}}
		}, true},
		{"scram-sha-256", []kfake.Opt{kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "bob", "pw-2")}, func(a string) config.Kafka {
			return config.Kafka{Brokers: []string{a}, ClientID: "t", SASL: config.SASL{Mechanism: "SCRAM-SHA-256", Username: "bob", Password: "pw-2"}}
		}, false},
		{"scram-sha-512 over tls with ca_file", []kfake.Opt{kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "carol", "pw-3"), kfake.TLS(serverTLS)},
			func(a string) config.Kafka {
				return config.Kafka{Brokers: []string{a}, ClientID: "t", TLS: config.TLS{Enabled: true, CAFile: p.caFile},
					SASL: config.SASL{Mechanism: "SCRAM-SHA-512", Username: "carol", Password: "pw-3"}}
			}, false},
		{"scram-sha-512 wrong mechanism", []kfake.Opt{kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "carol", "pw-3")},
			func(a string) config.Kafka {
				return config.Kafka{Brokers: []string{a}, ClientID: "t", SASL: config.SASL{Mechanism: "SCRAM-SHA-256", Username: "carol", Password: "pw-3"}}
			}, true},
		{"tls untrusted CA", []kfake.Opt{kfake.TLS(serverTLS)}, func(a string) config.Kafka {
			return config.Kafka{Brokers: []string{a}, ClientID: "t", TLS: config.TLS{Enabled: true, CAFile: p.otherCAFile}}
		}, true},
		{"tls insecure_skip_verify", []kfake.Opt{kfake.TLS(serverTLS)}, func(a string) config.Kafka {
			return config.Kafka{Brokers: []string{a}, ClientID: "t", TLS: config.TLS{Enabled: true, InsecureSkipVerify: true}}
		}, false},
		{"mutual tls", []kfake.Opt{kfake.TLS(mtls)}, func(a string) config.Kafka {
			return config.Kafka{Brokers: []string{a}, ClientID: "t", TLS: config.TLS{Enabled: true, CAFile: p.caFile, CertFile: p.certFile, KeyFile: p.keyFile}}
		}, false},
		{"mutual tls without client cert", []kfake.Opt{kfake.TLS(mtls)}, func(a string) config.Kafka {
			return config.Kafka{Brokers: []string{a}, ClientID: "t", TLS: config.TLS{Enabled: true, CAFile: p.caFile}}
		}, true},
		{"event hubs connection string", []kfake.Opt{kfake.EnableSASL(), kfake.Superuser("PLAIN", "$ConnectionString", ehConn), kfake.TLS(serverTLS)},
			func(a string) config.Kafka {
				// As an operator would write it, with only the broker
				// pointed at the test listener and the test CA trusted.
				return config.Kafka{Brokers: []string{a}, ClientID: "t", EventHubsConnectionString: ehConn, TLS: config.TLS{CAFile: p.caFile}}
			}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := startKfake(t, tt.broker...)
			err := ping(t, tt.kafka(addr))
			if tt.wantErr && err == nil {
				t.Fatal("connected, want failure")
			}
			if !tt.wantErr && err != nil {
				t.Fatalf("ping: %v", err)
			}
		})
	}
}

func TestClientOptsValues(t *testing.T) {
	const conn = "Endpoint=sb://ns9.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=c2VjcmV0"
	opts, err := ClientOpts(config.Kafka{ClientID: "vigil-x", EventHubsConnectionString: conn})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	seeds := cl.OptValue(kgo.SeedBrokers).([]string)
	if len(seeds) != 1 || seeds[0] != "ns9.servicebus.windows.net:9093" {
		t.Errorf("seeds = %v", seeds)
	}
	if cl.OptValue(kgo.ClientID).(string) != "vigil-x" {
		t.Errorf("client id = %v", cl.OptValue(kgo.ClientID))
	}
	if tc, _ := cl.OptValue(kgo.DialTLSConfig).(*tls.Config); tc == nil || tc.MinVersion != tls.VersionTLS12 {
		t.Errorf("TLS not enabled for Event Hubs: %v", tc)
	}
	codecs := cl.OptValue(kgo.ProducerBatchCompression).([]kgo.CompressionCodec)
	if len(codecs) != 1 || codecs[0] != kgo.NoCompression() {
		t.Errorf("Event Hubs compression = %v, want none", codecs)
	}
}

func TestClientOptsErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.txt")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := newPKI(t)
	missing := filepath.Join(dir, "missing.pem")
	tests := []struct {
		name string
		k    config.Kafka
		want []string
	}{
		{"missing CA", config.Kafka{Brokers: []string{"b:1"}, TLS: config.TLS{Enabled: true, CAFile: missing}},
			[]string{"kafka.tls.ca_file", missing}},
		{"CA not PEM", config.Kafka{Brokers: []string{"b:1"}, TLS: config.TLS{Enabled: true, CAFile: notPEM}},
			[]string{"kafka.tls.ca_file", notPEM, "no PEM certificate"}},
		{"cert without key", config.Kafka{Brokers: []string{"b:1"}, TLS: config.TLS{Enabled: true, CertFile: p.certFile}},
			[]string{"kafka.tls.key_file", "need both"}},
		{"key does not match cert", config.Kafka{Brokers: []string{"b:1"}, TLS: config.TLS{Enabled: true, CertFile: p.caFile, KeyFile: p.keyFile}},
			[]string{"kafka.tls.cert_file " + p.caFile, "kafka.tls.key_file " + p.keyFile}},
		{"missing key file", config.Kafka{Brokers: []string{"b:1"}, TLS: config.TLS{Enabled: true, CertFile: p.certFile, KeyFile: missing}},
			[]string{"kafka.tls.key_file", missing}},
		{"bad mechanism", config.Kafka{Brokers: []string{"b:1"}, SASL: config.SASL{Mechanism: "GSSAPI"}},
			[]string{"kafka.sasl.mechanism", "GSSAPI"}},
		{"bad compression", config.Kafka{Brokers: []string{"b:1"}, Compression: "brotli"},
			[]string{"kafka.compression"}},
		{"no brokers", config.Kafka{}, []string{"kafka.brokers"}},
		{"bad event hubs string", config.Kafka{EventHubsConnectionString: "Endpoint=nope"},
			[]string{"kafka.event_hubs_connection_string"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ClientOpts(tt.k)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}
