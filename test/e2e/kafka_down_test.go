package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"wharf/internal/testenv"
)

// TestKafkaDownAtStart starts wharf while its only bootstrap address is
// closed: wharf must start, report not ready, keep the messages queued,
// and deliver them all once the broker becomes reachable.
func TestKafkaDownAtStart(t *testing.T) {
	brokers := testenv.Env(t, "WHARF_KAFKA_BROKERS")
	// A bootstrap address that refuses connections until we open it.
	bootPort := testenv.FreePort(t)
	boot := fmt.Sprintf("127.0.0.1:%d", bootPort)
	topic := fmt.Sprintf("wharf-down-%d", time.Now().UnixNano())
	port := testenv.FreePort(t)
	in := start(t, tcpEdge(port, "kafka")+fmt.Sprintf(`
[sink.kafka]
type = "kafka"
brokers = ["%s"]
topic = "%s"
retry_backoff = "50ms"
retry_max_backoff = "500ms"
write_timeout = "2s"
`, boot, topic))

	const n = 2000
	msgs := make([]string, n)
	for i := range msgs {
		msgs[i] = fmt.Sprintf("<13>1 2026-11-25T10:00:00Z h app - - - early %d", i)
	}
	sendTCP(t, fmt.Sprintf("127.0.0.1:%d", port), msgs)
	in.waitMetric(n, 5*time.Second, "wharf_frontend_received_total")
	if code := httpStatus(t, "http://"+in.admin+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d with the broker unreachable, want 503", code)
	}
	// queue_bytes counts the batch being retried too (with Kafka's
	// default batch_size all 2000 are in it, and queue_messages is 0).
	if q := in.metric("wharf_sink_queue_bytes", `sink="kafka"`); q == 0 {
		t.Errorf("queue is empty while the broker is down; the messages went somewhere")
	}
	if sent := in.metric("wharf_sink_sent_total", `sink="kafka"`); sent != 0 {
		t.Fatalf("sent %v with the broker down", sent)
	}

	// Open the bootstrap address: a plain TCP forwarder to the real broker.
	ln, err := net.Listen("tcp", boot)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go forward(ln, brokers)

	if got := in.waitMetric(n, 30*time.Second, "wharf_sink_sent_total", `sink="kafka"`); got != n {
		t.Fatalf("sent %v after the broker came back, want %d", got, n)
	}
	testenv.EventuallyWithin(t, 15*time.Second, "/readyz to be 200 after the broker came back", func() bool {
		return httpStatus(t, "http://"+in.admin+"/readyz") == http.StatusOK
	})
	if d := in.metric("wharf_sink_dropped_total", `sink="kafka"`); d != 0 {
		t.Errorf("dropped %v messages", d)
	}
	in.stop()
}

func httpStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// forward accepts on ln and pipes each connection to target until ln closes.
func forward(ln net.Listener, target string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			u, err := net.Dial("tcp", target)
			if err != nil {
				return
			}
			defer u.Close()
			go io.Copy(u, c)
			io.Copy(c, u)
		}()
	}
}
