package ingest

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"wharf/conf"
	"wharf/message"
)

// slowCollector is a collector that takes a while per batch, so the
// event loop lags and datagrams wait in the kernel.
type slowCollector struct {
	collector
	delay time.Duration
}

func (c *slowCollector) EnqueueBatch(ms []*message.Message, block bool) int {
	time.Sleep(c.delay)
	return c.collector.EnqueueBatch(ms, block)
}

// Drain on a udp:// bind reads what the kernel had queued when it began:
// 3,000 datagrams sent in a burst at a listener whose target takes 2 ms
// per batch all arrive, though Stop follows Drain at once.
func TestDrainReadsQueuedDatagrams(t *testing.T) {
	tgt := &slowCollector{delay: 2 * time.Millisecond}
	l, reg := listenWith(t, "udp", &conf.Frontend{}, tgt)
	c, err := net.Dial("udp", l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 3000
	for i := range n {
		fmt.Fprintf(c, "<13>1 2026-11-25T10:00:00Z h app - - - %d", i)
	}
	queued := n - tgt.count()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if busy := l.Drain(ctx); busy != 0 {
		t.Fatalf("Drain: %d sockets not read empty within 10 s", busy)
	}
	if err := l.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	kernel := counter(reg, "wharf_frontend_udp_kernel_drops_total", "")
	t.Logf("sent %d, %d still queued when Drain began; received %d; kernel drops %v", n, queued, tgt.count(), kernel)
	if got := tgt.count(); float64(got)+kernel != n {
		t.Errorf("received %d + kernel drops %v of %d datagrams sent before the stop", got, kernel, n)
	}
	if kernel > 0 {
		t.Logf("the kernel dropped %v (receive buffer): the test checks what was queued", kernel)
	}
}
