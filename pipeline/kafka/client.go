package kafka

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/vigil-sec/vigil/pipeline/config"
)

// ClientOpts turns the kafka section of the configuration into franz-go
// options shared by every client of the process: seed brokers, client id,
// SASL, TLS and producer compression. Callers add their role's options
// (consumer group, transactional id, logger, metrics) after these.
//
// k is expected to have passed config.Validate; ClientOpts still reports
// what it cannot build, naming the key or file, because TLS files are read
// here and may have changed since.
func ClientOpts(k config.Kafka) ([]kgo.Opt, error) {
	if err := k.ApplyEventHubs(); err != nil { // no-op when Load already did it
		return nil, err
	}
	if len(k.Brokers) == 0 {
		return nil, errors.New("kafka.brokers: no seed brokers configured")
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(k.Brokers...),
		kgo.ClientID(k.ClientID),
	}
	if k.SASL.Mechanism != "" {
		m, err := saslMechanism(k.SASL)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.SASL(m))
	}
	if k.TLS.Enabled {
		tc, err := TLSConfig(k.TLS)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	codecs, err := compression(k)
	if err != nil {
		return nil, err
	}
	if codecs != nil {
		opts = append(opts, kgo.ProducerBatchCompression(codecs...))
	}
	return opts, nil
}

func saslMechanism(s config.SASL) (sasl.Mechanism, error) {
	user, pass := s.Username, s.Password.Reveal()
	switch s.Mechanism {
	case config.SASLPlain:
		return plain.Auth{User: user, Pass: pass}.AsMechanism(), nil
	case config.SASLScramSHA256:
		return scram.Auth{User: user, Pass: pass}.AsSha256Mechanism(), nil
	case config.SASLScramSHA512:
		return scram.Auth{User: user, Pass: pass}.AsSha512Mechanism(), nil
	}
	return nil, fmt.Errorf("kafka.sasl.mechanism: %q is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512", s.Mechanism)
}

// compression picks the producer codecs. Left empty, Event Hubs gets none
// (its Standard tier rejects compressed batches) and other brokers get
// franz-go's default (snappy, falling back to none).
func compression(k config.Kafka) ([]kgo.CompressionCodec, error) {
	switch k.Compression {
	case "":
		if k.IsEventHubs() {
			return []kgo.CompressionCodec{kgo.NoCompression()}, nil
		}
		return nil, nil
	case "none":
		return []kgo.CompressionCodec{kgo.NoCompression()}, nil
	case "gzip":
		return []kgo.CompressionCodec{kgo.GzipCompression(), kgo.NoCompression()}, nil
	case "snappy":
		return []kgo.CompressionCodec{kgo.SnappyCompression(), kgo.NoCompression()}, nil
	case "lz4":
		return []kgo.CompressionCodec{kgo.Lz4Compression(), kgo.NoCompression()}, nil
	case "zstd":
		return []kgo.CompressionCodec{kgo.ZstdCompression(), kgo.NoCompression()}, nil
	}
	return nil, fmt.Errorf("kafka.compression: %q is not one of none, gzip, snappy, lz4, zstd", k.Compression)
}

// TLSConfig builds the TLS configuration for dialing brokers. Each file
// problem is reported with the key and path, so "x509: malformed
// certificate" never reaches an operator without saying which file.
// ServerName may stay empty: franz-go sets it per broker from the host it
// dials.
func TLSConfig(t config.TLS) (*tls.Config, error) {
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify, //nolint:gosec // opt-in for tests, warned about at start-up
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kafka.tls.ca_file: read %s: %w", t.CAFile, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kafka.tls.ca_file: %s holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)", t.CAFile)
		}
		tc.RootCAs = pool
	}
	switch {
	case t.CertFile != "" && t.KeyFile != "":
		if _, err := os.Stat(t.CertFile); err != nil {
			return nil, fmt.Errorf("kafka.tls.cert_file: %w", err)
		}
		if _, err := os.Stat(t.KeyFile); err != nil {
			return nil, fmt.Errorf("kafka.tls.key_file: %w", err)
		}
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("kafka.tls.cert_file %s / kafka.tls.key_file %s: %w", t.CertFile, t.KeyFile, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	case t.CertFile != "":
		return nil, fmt.Errorf("kafka.tls.key_file: empty but kafka.tls.cert_file is %s; client certificates need both", t.CertFile)
	case t.KeyFile != "":
		return nil, fmt.Errorf("kafka.tls.cert_file: empty but kafka.tls.key_file is %s; client certificates need both", t.KeyFile)
	}
	return tc, nil
}
