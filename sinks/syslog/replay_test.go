package syslog

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"wharf/conf"
	"wharf/internal/testenv"
)

// TestResetMidBatchReplays guards against losing the unread tail of a
// batch when the collector resets the connection after wharf's write
// returned: the batch (and the one before it) is written again on the
// next connection.
func TestResetMidBatchReplays(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fs := &frameServer{l: l}
	first := make(chan struct{})
	go func() {
		// The first connection reads 100 bytes of the batch, then resets:
		// the rest sits unread in its kernel and is discarded.
		c, err := l.Accept()
		if err != nil {
			return
		}
		io.ReadFull(c, make([]byte, 100))
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
		close(first)
		fs.done.Add(1)
		fs.accept()
	}()
	s, _ := newSink(t, conf.Sink{Options: &Config{Servers: []string{"tcp://" + l.Addr().String()}}})
	defer s.Close()
	var b1, b2 []string
	for i := range 50 {
		b1 = append(b1, fmt.Sprintf("<13>1 - h app - - - first %d", i))
		b2 = append(b2, fmt.Sprintf("<13>1 - h app - - - second %d", i))
	}
	if err := s.Write(context.Background(), msgs(b1...)); err != nil {
		t.Fatal(err)
	}
	<-first
	time.Sleep(50 * time.Millisecond) // the RST reaches wharf's socket
	if err := s.Write(context.Background(), msgs(b2...)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	got := map[string]bool{}
	testenv.Poll(testenv.EventuallyTimeout, func() bool {
		for _, f := range fs.got() {
			got[f] = true
		}
		return len(got) >= 100
	})
	for _, m := range append(b1, b2...) {
		if !got[m] {
			t.Errorf("lost %q", m)
		}
	}
	if s.Replays() != 1 {
		t.Errorf("Replays() = %d, want 1", s.Replays())
	}
	l.Close()
	fs.kill()
}

// TestReplayCoversOwnSendQueue: the batches kept for a replay cover
// replayBytes plus what the kernel still held unacknowledged at the last
// write (lost with a reset too), not replayBytes alone. On a loaded box
// TestFaultCollectorReset lost 7,082 messages beyond a 1 MiB replay
// while its collector's receive buffer held at most 512 KiB: the rest
// had been in wharf's own send queue.
func TestReplayCoversOwnSendQueue(t *testing.T) {
	s := &Syslog{}
	batch := make([]byte, 64<<10)
	for range 100 {
		s.keep(append([]byte(nil), batch...), 0)
	}
	if s.prevBytes < replayBytes || s.prevBytes >= replayBytes+len(batch) {
		t.Fatalf("kept %d bytes with nothing queued, want the fewest batches reaching %d", s.prevBytes, replayBytes)
	}
	const queued = 2 << 20
	for range 100 {
		s.keep(append([]byte(nil), batch...), queued)
	}
	if s.prevBytes < replayBytes+queued || s.prevBytes >= replayBytes+queued+len(batch) {
		t.Fatalf("kept %d bytes with %d queued in the kernel, want the fewest batches reaching %d", s.prevBytes, queued, replayBytes+queued)
	}
}

// TestProbeReplaysIdleReset: a collector that resets its connection with
// a batch unread while no more messages come. Before, the replay waited
// for the next batch, and a stop before it lost the batch (audit: 300
// "sent", 0 delivered after the restart). Probe (called by the runner
// while the sink is idle) finds the reset connection, reconnects and
// writes the replay at once.
func TestProbeReplaysIdleReset(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fs := &frameServer{l: l}
	first := make(chan struct{})
	go func() {
		c, err := l.Accept() // reads nothing, then resets
		if err != nil {
			return
		}
		time.Sleep(50 * time.Millisecond) // the batch reaches its kernel
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
		close(first)
		fs.done.Add(1)
		fs.accept()
	}()
	s, _ := newSink(t, conf.Sink{Options: &Config{Servers: []string{"tcp://" + l.Addr().String()}}})
	defer s.Close()
	var batch []string
	for i := range 50 {
		batch = append(batch, fmt.Sprintf("<13>1 - h app - - - idle %d", i))
	}
	if err := s.Write(context.Background(), msgs(batch...)); err != nil {
		t.Fatal(err)
	}
	<-first
	time.Sleep(50 * time.Millisecond) // the RST reaches wharf's socket
	if err := s.Probe(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	testenv.Poll(testenv.EventuallyTimeout, func() bool {
		for _, f := range fs.got() {
			got[f] = true
		}
		return len(got) >= len(batch)
	})
	for _, m := range batch {
		if !got[m] {
			t.Errorf("lost %q", m)
		}
	}
	if s.Replays() != 1 {
		t.Errorf("Replays() = %d, want 1", s.Replays())
	}
	// An open, healthy connection is left alone.
	if err := s.Probe(context.Background()); err != nil || s.Replays() != 1 {
		t.Errorf("second Probe: %v, Replays %d", err, s.Replays())
	}
	s.Close()
	l.Close()
	fs.kill()
}

// TestProbeReplaysOncePerWrite: a middlebox (a balancer's idle timeout
// with TCP reset, conntrack) resets an idle connection whose data the
// collector read long ago, again and again. Probe replays the last
// batches once, not at every reset: before, a message written once
// reached the collector once per reset (review: 4 times in 3 resets).
func TestProbeReplaysOncePerWrite(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var mu sync.Mutex
	var all strings.Builder
	conns := make(chan *net.TCPConn, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			tc := c.(*net.TCPConn)
			conns <- tc
			go func() {
				b := make([]byte, 1<<16)
				for {
					n, err := tc.Read(b)
					mu.Lock()
					all.Write(b[:n])
					mu.Unlock()
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	s, _ := newSink(t, conf.Sink{Options: &Config{Servers: []string{"tcp://" + l.Addr().String()}}})
	defer s.Close()
	if err := s.Write(context.Background(), msgs("<13>1 - h app - - - only once")); err != nil {
		t.Fatal(err)
	}
	for cycle := 0; cycle < 3; cycle++ {
		c := <-conns
		time.Sleep(100 * time.Millisecond) // everything read by the collector
		c.SetLinger(0)
		c.Close() // RST, nothing unread
		time.Sleep(50 * time.Millisecond)
		if err := s.Probe(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	n := strings.Count(all.String(), "only once")
	mu.Unlock()
	t.Logf("message written once, received %d times, Replays()=%d", n, s.Replays())
	if n != 2 || s.Replays() != 1 {
		t.Fatalf("one message written once reached the collector %d times (Replays %d), want 2 (once, and one replay after the first reset)", n, s.Replays())
	}
}
