package browser

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestStatusQueueColourByBytes: a sink's queue that is full in bytes
// (large messages, collector down) is red on the status page, as the
// README says of a queue at 90% of its bound. Before, the colour followed
// the message counts only: 35 messages of 30 KB filled queue_bytes
// (1 MiB), TCP senders were held back, and the cell stayed plain (audit:
// 1,116 messages of 60 KB filling 64 MiB, no colour).
func TestStatusQueueColourByBytes(t *testing.T) {
	ctx := browser(t)
	dead := deadPort(t)
	in := startWharf(t, "127.0.0.1:0", fmt.Sprintf(`
[admin]
listen = "127.0.0.1:0"

[global]
shutdown_timeout = "1s"

[frontend.edge]
bind = ["tcp://127.0.0.1:0"]
sinks = ["siem"]

[sink.siem]
type = "syslog"
servers = ["tcp://127.0.0.1:%d"]
dial_timeout = "200ms"
queue_bytes = "1MiB"
backpressure_bytes = "256KiB"
`, dead))
	var tcpAddr string
	for _, b := range in.status(t).Binds {
		tcpAddr = b.Addr
	}
	c, err := net.Dial("tcp", tcpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() { // until held back: the queue is full in bytes long before 100 messages
		body := strings.Repeat("z", 30<<10)
		for i := range 100 {
			m := fmt.Sprintf("<13>1 2026-12-06T00:00:00Z h app - - - %d %s", i, body)
			c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := fmt.Fprintf(c, "%d %s", len(m), m); err != nil {
				return
			}
		}
	}()
	var st struct{ msgs, bytes, capBytes int64 }
	full := false
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end) && !full; time.Sleep(100 * time.Millisecond) {
		for _, s := range in.status(t).Sinks {
			if s.Sink == "siem" {
				st.msgs, st.bytes, st.capBytes = s.QueueMessages, s.QueueBytes, s.QueueBytesCapacity
				full = s.QueueBytes >= 9*(1<<20)/10
			}
		}
	}
	if !full || st.capBytes != 1<<20 {
		t.Fatalf("siem queue %d messages, %d bytes of queue_bytes_capacity %d: want it at 90%% of 1 MiB", st.msgs, st.bytes, st.capBytes)
	}

	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, chromedp.Navigate(in.admin+"/"), chromedp.WaitVisible(chromedp.CSS(`tr[data-row="sink"][data-sink="siem"]`))); err != nil {
		t.Fatal(err)
	}
	_, err = chromedp.Run(sctx, chromedp.Poll[bool](`document.querySelector('tr[data-row="sink"][data-sink="siem"] td[data-field="queue_messages"]')?.className.includes("bad")`,
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(5*time.Second)))
	class, _ := chromedp.Run(sctx, chromedp.Evaluate[string](`document.querySelector('tr[data-row="sink"][data-sink="siem"] td[data-field="queue_messages"]')?.className`))
	if err != nil || !strings.Contains(class, "bad") {
		t.Errorf("siem queue cell with %d messages, %d of %d bytes queued: class %q (%v), want bad (red)", st.msgs, st.bytes, st.capBytes, class, err)
	}
	t.Logf("siem queue: %d messages, %d bytes of %d: %s", st.msgs, st.bytes, st.capBytes, class)
}
