// Package syslog is the syslog / CEF listener: it receives messages over
// UDP and TCP (optionally TLS), frames them, and produces each message as
// one raw record. It does not parse the content: RFC 5424, RFC 3164 and
// CEF are told apart and parsed by normalize.
//
// # Framing
//
// UDP: one datagram is one message (RFC 5426). TCP: each frame is detected
// on its own (RFC 6587): a frame that starts with a digit is octet
// counted ("LEN SP MSG"); any other is non-transparent, ended by LF (a CR
// before it and NUL bytes around it are dropped). An octet count that is
// not a number or over MaxMessageBytes cannot be resynchronised: the
// connection is closed (reason frame). A newline-framed message over the
// limit is skipped up to its newline (reason too_large).
//
// # Records and delivery
//
// A record's value is the message without its framing; its key is the
// sender's IP address, so one sender's messages stay in order on one
// partition. Messages are batched (BatchSize, FlushInterval) and produced
// with ProduceSync; a failed produce is retried with backoff while the
// batch is held, so TCP senders are slowed by TCP back-pressure rather
// than losing messages. UDP has no back-pressure: when the queue is full,
// datagrams are dropped and counted (reason dropped). On cancellation the
// listener stops accepting, then produces what it already received.
package syslog

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-sec/vigil/pipeline/connector"
)

// Defaults.
const (
	DefaultSource          = "syslog"
	DefaultName            = "syslog"
	DefaultMaxMessageBytes = 64 << 10
	DefaultBatchSize       = 500
	DefaultFlushInterval   = 100 * time.Millisecond
	DefaultQueue           = 8192
)

// ReasonDropped counts UDP datagrams dropped because the queue was full.
const ReasonDropped = "dropped"

// Listener is the syslog connector.
type Listener struct {
	// UDP and TCP are the addresses to listen on; empty for none.
	UDP, TCP string
	// PacketConn and Listener, when set, are used instead of listening on
	// UDP and TCP (tests, socket activation).
	PacketConn net.PacketConn
	Listener   net.Listener
	// TLS, when set, makes the TCP listener TLS.
	TLS *tls.Config
	// Source of the records; default DefaultSource.
	Source string
	// Prefix of topic names (config.Topics.Prefix).
	Prefix string
	// ConnectorName; default DefaultName.
	ConnectorName   string
	MaxMessageBytes int
	BatchSize       int
	FlushInterval   time.Duration
	// Queue is how many received messages may wait for Kafka.
	Queue int
	// IdleTimeout closes a TCP connection that sent nothing for this
	// long; 0 for never.
	IdleTimeout time.Duration
	Metrics     *connector.Metrics
	Logger      zerolog.Logger
	Now         func() time.Time
}

// Name implements connector.Connector.
func (l *Listener) Name() string {
	if l.ConnectorName == "" {
		return DefaultName
	}
	return l.ConnectorName
}

type message struct {
	key, value []byte
	at         time.Time
}

// Run listens until ctx is cancelled; then it stops reading, produces
// what it received (for up to 10 s) and returns nil.
func (l *Listener) Run(ctx context.Context, out connector.Producer) error {
	cfg := *l
	if cfg.Source == "" {
		cfg.Source = DefaultSource
	}
	if err := connector.ValidateSource(cfg.Source); err != nil {
		return fmt.Errorf("syslog: %w", err)
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = DefaultFlushInterval
	}
	if cfg.Queue <= 0 {
		cfg.Queue = DefaultQueue
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	pc, ln := cfg.PacketConn, cfg.Listener
	var err error
	if pc == nil && cfg.UDP != "" {
		if pc, err = net.ListenPacket("udp", cfg.UDP); err != nil {
			return fmt.Errorf("syslog: listen udp %s: %w", cfg.UDP, err)
		}
	}
	if ln == nil && cfg.TCP != "" {
		if ln, err = net.Listen("tcp", cfg.TCP); err != nil {
			if pc != nil {
				pc.Close()
			}
			return fmt.Errorf("syslog: listen tcp %s: %w", cfg.TCP, err)
		}
	}
	if pc == nil && ln == nil {
		return errors.New("syslog: neither UDP nor TCP configured")
	}
	if ln != nil && cfg.TLS != nil {
		ln = tls.NewListener(ln, cfg.TLS)
	}

	s := &server{cfg: &cfg, msgs: make(chan message, cfg.Queue), conns: map[net.Conn]struct{}{}}
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	stop := context.AfterFunc(readCtx, func() {
		if pc != nil {
			pc.Close()
		}
		if ln != nil {
			ln.Close()
		}
		s.closeConns()
	})
	defer stop()
	if pc != nil {
		s.wg.Add(1)
		go s.udp(readCtx, pc)
	}
	if ln != nil {
		s.wg.Add(1)
		go s.accept(readCtx, ln)
	}
	readersDone := make(chan struct{})
	go func() { s.wg.Wait(); close(readersDone) }()

	err = s.produce(ctx, out, readersDone)
	stopReading()
	<-readersDone
	return err
}

type server struct {
	cfg   *Listener
	msgs  chan message
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func (s *server) closeConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

func (s *server) track(c net.Conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		s.conns[c] = struct{}{}
	} else {
		delete(s.conns, c)
	}
	return true
}

func hostKey(a net.Addr) []byte {
	switch a := a.(type) {
	case *net.UDPAddr:
		return []byte(a.IP.String())
	case *net.TCPAddr:
		return []byte(a.IP.String())
	}
	if a == nil {
		return nil
	}
	h, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return []byte(a.String())
	}
	return []byte(h)
}

func (s *server) udp(ctx context.Context, pc net.PacketConn) {
	defer s.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() == nil {
				s.cfg.Metrics.Error(s.cfg.Name(), connector.ReasonRead)
				s.cfg.Logger.Error().Err(err).Msg("syslog: udp read failed; stopping udp")
			}
			return
		}
		v := trimMessage(buf[:n])
		if len(v) == 0 {
			continue
		}
		if len(v) > s.cfg.MaxMessageBytes {
			s.cfg.Metrics.Error(s.cfg.Name(), connector.ReasonTooLarge)
			continue
		}
		m := message{key: hostKey(addr), value: bytes.Clone(v), at: s.cfg.Now()}
		select {
		case s.msgs <- m:
		default:
			s.cfg.Metrics.Error(s.cfg.Name(), ReasonDropped)
		}
	}
}

func (s *server) accept(ctx context.Context, ln net.Listener) {
	defer s.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			s.cfg.Metrics.Error(s.cfg.Name(), connector.ReasonRead)
			s.cfg.Logger.Error().Err(err).Msg("syslog: accept failed; stopping tcp")
			return
		}
		s.track(c, true)
		if ctx.Err() != nil { // closed between Accept and track
			c.Close()
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.track(c, false)
			defer c.Close()
			s.conn(ctx, c)
		}()
	}
}

// conn reads frames from one TCP connection until it ends.
func (s *server) conn(ctx context.Context, c net.Conn) {
	key := hostKey(c.RemoteAddr())
	br := bufio.NewReaderSize(c, 64<<10)
	fr := Framer{R: br, Max: s.cfg.MaxMessageBytes}
	for {
		if s.cfg.IdleTimeout > 0 {
			_ = c.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
		}
		msg, err := fr.Next()
		if err != nil {
			switch {
			case errors.Is(err, ErrTooLarge):
				s.cfg.Metrics.Error(s.cfg.Name(), connector.ReasonTooLarge)
				continue
			case errors.Is(err, ErrFrame):
				s.cfg.Metrics.Error(s.cfg.Name(), connector.ReasonFrame)
				s.cfg.Logger.Warn().Err(err).Str("peer", string(key)).Msg("syslog: framing lost; closing connection")
			case errors.Is(err, io.EOF), ctx.Err() != nil:
			default:
				s.cfg.Metrics.Error(s.cfg.Name(), connector.ReasonRead)
				s.cfg.Logger.Debug().Err(err).Str("peer", string(key)).Msg("syslog: connection ended")
			}
			return
		}
		if len(msg) == 0 {
			continue
		}
		select {
		case s.msgs <- message{key: key, value: bytes.Clone(msg), at: s.cfg.Now()}:
		case <-ctx.Done():
			return
		}
	}
}

// produce batches messages until ctx is cancelled and the readers are done,
// then flushes what is left.
func (s *server) produce(ctx context.Context, out connector.Producer, readersDone <-chan struct{}) error {
	stamp := connector.Stamp{Prefix: s.cfg.Prefix, Connector: s.cfg.Name()}
	var batch []*kgo.Record
	t := time.NewTicker(s.cfg.FlushInterval)
	defer t.Stop()
	flush := func(fctx context.Context) error {
		backoff := 100 * time.Millisecond
		for len(batch) > 0 {
			err := connector.Produce(fctx, out, s.cfg.Metrics, s.cfg.Name(), batch...)
			if err == nil {
				clear(batch)
				batch = batch[:0]
				return nil
			}
			s.cfg.Logger.Error().Err(err).Int("records", len(batch)).Msg("syslog: produce failed; retrying")
			select {
			case <-fctx.Done():
				return fmt.Errorf("syslog: %d received messages not produced: %w", len(batch), err)
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
		}
		return nil
	}
	add := func(m message) {
		batch = append(batch, stamp.Record(s.cfg.Source, m.key, m.value, m.at))
	}
	for {
		select {
		case m := <-s.msgs:
			add(m)
			if len(batch) >= s.cfg.BatchSize {
				if err := flush(ctx); err != nil && ctx.Err() == nil {
					return err
				}
			}
			continue
		case <-t.C:
			if err := flush(ctx); err != nil && ctx.Err() == nil {
				return err
			}
			continue
		case <-ctx.Done():
		}
		break
	}
	// Drain: readers stop on cancellation; produce what they delivered.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	for {
		select {
		case m := <-s.msgs:
			add(m)
			continue
		case <-readersDone:
		}
		break
	}
	for {
		select {
		case m := <-s.msgs:
			add(m)
			continue
		default:
		}
		break
	}
	return flush(dctx)
}

// Errors of Framer.Next.
var (
	// ErrFrame: the stream cannot be framed any more (bad octet count).
	ErrFrame = errors.New("syslog framing error")
	// ErrTooLarge: a newline-framed message over the limit was skipped;
	// the stream can go on.
	ErrTooLarge = errors.New("syslog message over the size limit")
)

// Framer cuts a TCP stream into syslog messages (RFC 6587), detecting the
// framing of each frame. The slice Next returns is valid until the next
// call.
type Framer struct {
	R   *bufio.Reader
	Max int
	buf []byte
}

// Next returns the next message (without framing; possibly empty for a
// blank line), io.EOF at the end of the stream, ErrTooLarge after skipping
// an over-long message, or ErrFrame when framing is lost.
func (f *Framer) Next() ([]byte, error) {
	for {
		b, err := f.R.ReadByte()
		if err != nil {
			return nil, err
		}
		if b == '\n' || b == '\r' || b == 0 || b == ' ' {
			continue // separators between frames
		}
		if err := f.R.UnreadByte(); err != nil {
			return nil, err
		}
		if b >= '1' && b <= '9' && f.counted() {
			return f.octets()
		}
		return f.line()
	}
}

// counted tells whether the next bytes are an octet count: up to 9
// digits and a space. A line that merely starts with a digit (a bare
// timestamp) is newline framed.
func (f *Framer) counted() bool {
	p, _ := f.R.Peek(10)
	for i, c := range p {
		if c == ' ' {
			return i > 0
		}
		if c < '0' || c > '9' {
			return false
		}
	}
	return false
}

func (f *Framer) octets() ([]byte, error) {
	n, digits := 0, 0
	for {
		b, err := f.R.ReadByte()
		if err != nil {
			return nil, fmt.Errorf("%w: octet count: %v", ErrFrame, err)
		}
		if b == ' ' {
			break
		}
		if b < '0' || b > '9' || digits >= 9 {
			return nil, fmt.Errorf("%w: octet count %s%c is not a number followed by a space", ErrFrame, strconv.Itoa(n), b)
		}
		n = n*10 + int(b-'0')
		digits++
	}
	if n > f.Max {
		return nil, fmt.Errorf("%w: octet count %d is over the limit of %d", ErrFrame, n, f.Max)
	}
	if cap(f.buf) < n {
		f.buf = make([]byte, n)
	}
	f.buf = f.buf[:n]
	if _, err := io.ReadFull(f.R, f.buf); err != nil {
		return nil, fmt.Errorf("%w: message of %d octets cut short: %v", ErrFrame, n, err)
	}
	return trimMessage(f.buf), nil
}

func (f *Framer) line() ([]byte, error) {
	f.buf = f.buf[:0]
	tooLong := false
	for {
		frag, err := f.R.ReadSlice('\n')
		if !tooLong {
			if len(f.buf)+len(frag) > f.Max+2 {
				tooLong = true
			} else {
				f.buf = append(f.buf, frag...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if tooLong {
			return nil, ErrTooLarge
		}
		if err != nil && !(errors.Is(err, io.EOF) && len(f.buf) > 0) {
			return nil, err
		}
		msg := trimMessage(f.buf)
		if len(msg) > f.Max {
			return nil, ErrTooLarge
		}
		return msg, nil
	}
}

// trimMessage drops the trailer and padding senders put around a message:
// LF, CR, NUL and blanks at the end, NUL and LF at the start.
func trimMessage(b []byte) []byte {
	b = bytes.TrimRight(b, "\n\r\x00 \t")
	return bytes.TrimLeft(b, "\n\r\x00")
}

// Listener is a connector.Connector.
var _ connector.Connector = (*Listener)(nil)
