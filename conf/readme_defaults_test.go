package conf_test

import (
	"fmt"
	"testing"
	"time"

	"wharf/conf"
	"wharf/internal/testpki"
	"wharf/sinks/kafka"
)

// TestREADMEDefaults holds the defaults README.md states as
// numbers (sections Reload, limits and loss accounting, and Guarantees),
// read back from a parsed config as wharf run sees it, so a changed
// default fails here until the README says the new value: maxconn 20000,
// frame_timeout 1m, client_timeout off, header_timeout 10 s (TLS, and
// RELP's wait for open), relp_window 128, relp_ack queued,
// max_message_size 64 KiB, queue_size 100000, queue_bytes 64MiB,
// backpressure_size 4096 (Kafka 20000: two batches), Kafka batch_bytes
// 1 MB.
func TestREADMEDefaults(t *testing.T) {
	_, certFile, keyFile := testpki.NewCA(t, "test CA").ServerCert(t, "localhost")
	c, err := conf.Parse([]byte(fmt.Sprintf(`
[frontend.t]
bind = ["tcp://127.0.0.1:5514"]
sinks = ["s"]
[frontend.s]
bind = ["tls://127.0.0.1:6514"]
tls_cert = %q
tls_key = %q
sinks = ["s"]
[frontend.r]
bind = ["relp://127.0.0.1:2514"]
sinks = ["s", "k"]
[sink.s]
type = "stdout"
[sink.k]
type = "kafka"
brokers = ["127.0.0.1:9092"]
topic = "logs"
`, certFile, keyFile)), "wharf.toml")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	f := func(what string, got, want any) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v, README says %v", what, got, want)
		}
	}
	tcp, tls, relp := c.Frontends["t"], c.Frontends["s"], c.Frontends["r"]
	f("frontend.t.maxconn", tcp.MaxConn, 20000)
	f("frontend.t.frame_timeout", tcp.FrameTimeout.Duration, time.Minute)
	f("frontend.t.client_timeout", tcp.ClientTimeout.Duration, time.Duration(0))
	f("frontend.t.max_message_size", int64(tcp.MaxMessageSize), int64(64<<10))
	f("frontend.s.header_timeout", tls.HeaderTimeout.Duration, 10*time.Second)
	f("frontend.r.header_timeout", relp.HeaderTimeout.Duration, 10*time.Second)
	f("frontend.r.relp_window", relp.RELPWindow, 128)
	f("frontend.r.relp_ack", relp.RELPAck, "queued")

	s, k := c.Sinks["s"], c.Sinks["k"]
	f("sink.s.queue_size", s.QueueSize, 100000)
	f("sink.s.queue_bytes", int64(s.QueueBytes), int64(64<<20))
	f("sink.s.backpressure_size", s.BackpressureSize, 4096)
	f("sink.k.queue_size", k.QueueSize, 100000)
	f("sink.k.backpressure_size", k.BackpressureSize, 20000)
	f("sink.k.batch_size", k.BatchSize, 10000)
	f("sink.k.batch_bytes", int64(k.BatchBytes), int64(1000000))
	if _, ok := k.Options.(*kafka.Config); !ok {
		t.Errorf("sink.k options are %T, want *kafka.Config", k.Options)
	}
}
