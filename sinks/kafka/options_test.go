package kafka

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"wharf/conf"
	"wharf/internal/testenv"
	"wharf/message"
	"wharf/sinks"
)

func TestNewMapsOptions(t *testing.T) {
	// want is what the config controls.
	type want struct {
		balancer     string // %T of the balancer
		compression  kafkago.Compression
		acks         kafkago.RequiredAcks
		batchSize    int
		batchBytes   int64
		writeTimeout time.Duration
		encoding     sinks.Encoding
		key          keyField
	}
	f := func(cfg conf.Sink, w want) {
		t.Helper()
		s, err := newFromConf("out", &cfg)
		if err != nil {
			t.Fatalf("newFromConf(%+v): %v", cfg, err)
		}
		k := s.(*Sink)
		got := want{
			balancer:     fmt.Sprintf("%T", k.bal),
			compression:  k.opt.compression,
			acks:         k.opt.acks,
			batchSize:    k.opt.batchSize,
			batchBytes:   k.opt.batchBytes,
			writeTimeout: k.opt.writeTimeout,
			encoding:     k.opt.encoding,
			key:          k.opt.key,
		}
		if got != w {
			t.Errorf("newFromConf(%+v):\n got %+v\nwant %+v", cfg, got, w)
		}
		// The client waits write_timeout, not kafka-go's default, and
		// talks to the configured brokers about the configured topic.
		if k.client.Timeout != w.writeTimeout || k.client.Transport != k.tr {
			t.Errorf("client timeout %v, transport %p want %p", k.client.Timeout, k.client.Transport, k.tr)
		}
		if k.opt.topic != kc(&cfg).Topic || k.client.Addr.String() != strings.Join(kc(&cfg).Brokers, ",") ||
			len(k.tr.MetadataTopics) != 1 || k.tr.MetadataTopics[0] != kc(&cfg).Topic {
			t.Errorf("topic %q addr %q metadata topics %q", k.opt.topic, k.client.Addr, k.tr.MetadataTopics)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	base := func(mod func(*conf.Sink)) conf.Sink {
		c := conf.Sink{Type: "kafka", Options: &Config{Brokers: []string{"127.0.0.1:9092"}, Topic: "logs"}}
		if mod != nil {
			mod(&c)
		}
		return c
	}
	defaults := want{
		balancer:     "*kafka.RoundRobin",
		acks:         kafkago.RequireOne,
		batchSize:    DefaultBatchSize,
		batchBytes:   DefaultBatchBytes,
		writeTimeout: DefaultWriteTimeout,
		encoding:     sinks.EncodingRaw,
		key:          keyNone,
	}
	with := func(mod func(*want)) want { w := defaults; mod(&w); return w }

	// A hand-built conf.Sink with zero values gets the documented defaults.
	f(base(nil), defaults)
	f(base(func(c *conf.Sink) { kc(c).Key = "hostname" }), with(func(w *want) { w.key, w.balancer = keyHostname, "kafka.Murmur2Balancer" }))
	f(base(func(c *conf.Sink) { kc(c).Key = "app_name"; kc(c).Balancer = "least_bytes" }), with(func(w *want) { w.key, w.balancer = keyAppName, "*kafka.LeastBytes" }))
	f(base(func(c *conf.Sink) { kc(c).Balancer = "hash" }), with(func(w *want) { w.balancer = "kafka.Murmur2Balancer" }))
	f(base(func(c *conf.Sink) { kc(c).Compression = "gzip" }), with(func(w *want) { w.compression = kafkago.Gzip }))
	f(base(func(c *conf.Sink) { kc(c).Compression = "snappy" }), with(func(w *want) { w.compression = kafkago.Snappy }))
	f(base(func(c *conf.Sink) { kc(c).Compression = "lz4" }), with(func(w *want) { w.compression = kafkago.Lz4 }))
	f(base(func(c *conf.Sink) { kc(c).Compression = "zstd" }), with(func(w *want) { w.compression = kafkago.Zstd }))
	f(base(func(c *conf.Sink) { kc(c).RequiredAcks = "none" }), with(func(w *want) { w.acks = kafkago.RequireNone }))
	f(base(func(c *conf.Sink) { kc(c).RequiredAcks = "all" }), with(func(w *want) { w.acks = kafkago.RequireAll }))
	f(base(func(c *conf.Sink) {
		c.BatchSize, c.BatchBytes, kc(c).WriteTimeout = 50, 4096, conf.Duration{Duration: 2 * time.Second}
	}), with(func(w *want) { w.batchSize, w.batchBytes, w.writeTimeout = 50, 4096, 2*time.Second }))
	f(base(func(c *conf.Sink) { c.Encoding = "json" }), with(func(w *want) { w.encoding = sinks.EncodingJSON }))
	f(base(func(c *conf.Sink) { c.Encoding = "rfc5424"; kc(c).Brokers = []string{"a:1", "[::1]:9092"} }),
		with(func(w *want) { w.encoding = sinks.EncodingRFC5424 }))
}

func TestNewRejectsBadOptions(t *testing.T) {
	// f checks that New fails and that the error names every wanted part.
	f := func(cfg conf.Sink, wants ...string) {
		t.Helper()
		s, err := newFromConf("out", &cfg)
		if err == nil {
			s.Close()
			t.Fatalf("newFromConf(%+v) succeeded, want error containing %q", cfg, wants)
		}
		for _, w := range append(wants, "sink.out") {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("newFromConf(%+v) error %q does not contain %q", cfg, err, w)
			}
		}
	}
	ok := []string{"127.0.0.1:9092"}
	f(conf.Sink{Options: &Config{Topic: "t"}}, `kafka sink needs brokers`)
	f(conf.Sink{Options: &Config{Brokers: []string{"localhost"}, Topic: "t"}}, "brokers[0]", "missing port")
	f(conf.Sink{Options: &Config{Brokers: []string{"a:1", "b:0"}, Topic: "t"}}, "brokers[1]", "out of range")
	f(conf.Sink{Options: &Config{Brokers: []string{":9092"}, Topic: "t"}}, "brokers[0]", "empty host")
	f(conf.Sink{Options: &Config{Brokers: ok}}, `kafka sink needs topic`)
	f(conf.Sink{Options: &Config{Brokers: ok, Topic: "a b"}}, "topic:", "not allowed")
	f(conf.Sink{Options: &Config{Brokers: ok, Topic: ".."}}, "topic:")
	f(conf.Sink{Options: &Config{Brokers: ok, Topic: strings.Repeat("x", 250)}}, "topic:", "249")
	f(conf.Sink{Options: &Config{Brokers: ok, Topic: "t", Key: "host"}}, "key", `"host"`)
	f(conf.Sink{Options: &Config{Brokers: ok, Topic: "t", Balancer: "random"}}, "balancer", `"random"`)
	f(conf.Sink{Options: &Config{Brokers: ok, Topic: "t", Compression: "brotli"}}, "compression", `"brotli"`)
	f(conf.Sink{Options: &Config{Brokers: ok, Topic: "t", RequiredAcks: "2"}}, "required_acks")
	f(conf.Sink{Encoding: "xml", Options: &Config{Brokers: ok, Topic: "t"}}, "encoding", `"xml"`)
	f(conf.Sink{BatchSize: -1, Options: &Config{Brokers: ok, Topic: "t"}}, "batch_size")
	f(conf.Sink{BatchBytes: -1, Options: &Config{Brokers: ok, Topic: "t"}}, "batch_bytes")
	f(conf.Sink{Options: &Config{Brokers: ok, Topic: "t", WriteTimeout: conf.Duration{Duration: -time.Second}}}, "write_timeout")
	// Every problem at once, not just the first.
	f(conf.Sink{Options: &Config{Key: "x", Compression: "y"}}, "needs brokers", "needs topic", "key", "compression")
}

// testMessage builds an RFC5424 message with Hostname and AppName spans.
func testMessage(i int, host, app string) *message.Message {
	raw := fmt.Sprintf("<13>1 2026-11-25T19:00:00Z %s %s - - - message %d", host, app, i)
	m := message.New([]byte(raw))
	m.Format = message.FormatRFC5424
	m.Priority = 13
	m.Version = 1
	off := uint32(len("<13>1 2026-11-25T19:00:00Z "))
	m.Hostname = message.Span{Off: off, Len: uint32(len(host))}
	off += uint32(len(host)) + 1
	m.AppName = message.Span{Off: off, Len: uint32(len(app))}
	m.Msg = message.Span{Off: uint32(strings.Index(raw, "message")), Len: uint32(len(raw) - strings.Index(raw, "message"))}
	return m
}

func TestEncodeKeysValuesAndReuse(t *testing.T) {
	f := func(key, enc string, wantKey func(i int) []byte) {
		t.Helper()
		s, err := newFromConf("out", &conf.Sink{Encoding: enc, Options: &Config{Brokers: []string{"127.0.0.1:9"}, Topic: "t", Key: key}})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		k := s.(*Sink)
		batch := make([]*message.Message, 50)
		for i := range batch {
			batch[i] = testMessage(i, fmt.Sprintf("h%d", i%3), fmt.Sprintf("app%d", i%5))
		}
		defer func() {
			for _, m := range batch {
				m.Release()
			}
		}()
		st := k.encode(batch)
		if len(st.spans) != len(batch) {
			t.Fatalf("%d records for %d messages", len(st.spans), len(batch))
		}
		for i := range st.spans {
			gotKey, gotValue := st.record(i)
			if want := wantKey(i); !bytes.Equal(gotKey, want) || (want == nil) != (gotKey == nil) {
				t.Errorf("key=%s: record %d key %q, want %q", key, i, gotKey, want)
			}
			if want := k.opt.encoding.Append(nil, batch[i]); !bytes.Equal(gotValue, want) {
				t.Errorf("encoding=%s: record %d value %q, want %q", enc, i, gotValue, want)
			}
			// Values are copies in the arena, never aliases of Raw.
			if &gotValue[0] == &batch[i].Raw[0] {
				t.Errorf("record %d value aliases the message", i)
			}
		}
		// Once the arena has grown, encoding allocates nothing.
		if n := testing.AllocsPerRun(20, func() { k.encode(batch) }); n != 0 {
			t.Errorf("encode allocates %.1f times per batch once warm, want 0", n)
		}
	}
	f("none", "raw", func(int) []byte { return nil })
	f("hostname", "raw", func(i int) []byte { return []byte(fmt.Sprintf("h%d", i%3)) })
	f("app_name", "json", func(i int) []byte { return []byte(fmt.Sprintf("app%d", i%5)) })
	f("hostname", "rfc5424", func(i int) []byte { return []byte(fmt.Sprintf("h%d", i%3)) })
}

// Regression: a broker that is down must fail Write fast with an error
// that says so, not block the runner or report success.
func TestUnreachableBroker(t *testing.T) {
	addr := testenv.ClosedAddr(t)
	const timeout = 2 * time.Second
	start := time.Now()
	s, err := newFromConf("out", &conf.Sink{Options: &Config{Brokers: []string{addr}, Topic: "t", WriteTimeout: conf.Duration{Duration: timeout}}})
	if err != nil {
		t.Fatalf("New must not fail when the broker is down: %v", err)
	}
	defer s.Close()
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("New took %v; it must not touch the network", d)
	}

	m := testMessage(1, "h", "a")
	defer m.Release()
	for i := 0; i < 2; i++ { // the second Write reuses the failed transport
		start = time.Now()
		err = s.Write(context.Background(), []*message.Message{m})
		d := time.Since(start)
		if err == nil {
			t.Fatalf("Write to %s succeeded", addr)
		}
		if d > timeout+500*time.Millisecond {
			t.Errorf("Write took %v, want within write_timeout %v", d, timeout)
		}
		for _, w := range []string{`sinks/kafka: sink "out"`, "unreachable", addr, "check brokers", "Kafka is running"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Write error %q does not contain %q", err, w)
			}
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("Write error does not wrap ECONNREFUSED: %v", err)
		}
	}

	start = time.Now()
	err = s.(*Sink).Check(context.Background())
	if err == nil {
		t.Fatal("Check succeeded against a closed port")
	}
	if d := time.Since(start); d > checkTimeout+500*time.Millisecond {
		t.Errorf("Check took %v", d)
	}
	for _, w := range []string{`sinks/kafka: sink "out"`, addr, "connection refused", "check brokers"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Check error %q does not contain %q", err, w)
		}
	}
	t.Logf("Write error: %v", s.Write(context.Background(), []*message.Message{m}))
	t.Logf("Check error: %v", err)
}

// Write must give up when ctx is done, even while the broker is silent.
func TestWriteHonoursContext(t *testing.T) {
	// A listener that accepts and never answers: a hung broker.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	s, err := newFromConf("out", &conf.Sink{Options: &Config{Brokers: []string{ln.Addr().String()}, Topic: "t"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := testMessage(1, "h", "a")
	defer m.Release()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = s.Write(ctx, []*message.Message{m})
	if err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Errorf("Write error %v, want an interruption", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Write took %v after a 300ms context", d)
	}
}
