package syslog

import (
	"context"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"wharf/conf"
	"wharf/internal/testenv"
)

// WriteNow over a real loopback connection: it declines until Write has
// connected, then writes on the caller's goroutine, in order with what
// Write sent; against a collector that stops reading it declines once the
// connection's send queue passes nowBytes instead of waiting, and what it
// accepted arrives once the collector reads again.
func TestWriteNowOverLoopback(t *testing.T) {
	// A collector with a small receive buffer, so its window closes soon.
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fs := &frameServer{l: l}
	s, _ := newSink(t, conf.Sink{Options: &Config{Servers: []string{fs.url()}}})
	defer s.Close()

	if s.WriteNow(msgs("early")) {
		t.Fatal("WriteNow wrote before any connection: it must leave dialing to Write")
	}
	// Accept but do not read yet.
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	if err := s.Write(context.Background(), msgs("m0")); err != nil {
		t.Fatal(err)
	}
	c := <-accepted

	// Fill: 1 KiB messages until WriteNow declines, each call bounded.
	sent := []string{"m0"}
	body := strings.Repeat("x", 1000)
	declined := false
	for i := 1; i <= 20000 && !declined; i++ {
		raw := fmt.Sprintf("m%d %s", i, body)
		done := make(chan bool, 1)
		go func() { done <- s.WriteNow(msgs(raw)) }()
		select {
		case ok := <-done:
			if ok {
				sent = append(sent, raw)
			} else {
				declined = true
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("WriteNow blocked for 5 s against a collector that does not read (message %d)", i)
		}
	}
	if !declined {
		t.Fatal("WriteNow never declined against a collector that does not read")
	}
	if len(sent) < 2 {
		t.Fatalf("WriteNow wrote %d messages on an open connection, want some", len(sent)-1)
	}
	t.Logf("WriteNow accepted %d messages of 1 KiB before declining", len(sent)-1)
	if queued, _ := s.unsent(); queued == 0 {
		t.Error("declined with an empty send queue")
	}

	// The collector reads again: everything accepted arrives, in order.
	fs.done.Add(1)
	go fs.read(c)
	testenv.Eventually(t, "the collector to read what WriteNow accepted", func() bool { return len(fs.got()) >= len(sent) })
	got := fs.got()
	for i := range sent {
		if got[i] != sent[i] {
			t.Fatalf("frame %d: %.20q, want %.20q", i, got[i], sent[i])
		}
	}
	testenv.Eventually(t, "the send queue to empty", func() bool { q, _ := s.unsent(); return q == 0 })
	if !s.WriteNow(msgs("after")) {
		t.Error("WriteNow declined on a drained, open connection")
	}

	// The collector closes the connection: WriteNow declines (Write
	// reconnects and replays), and writes nothing into the dead one.
	c.Close()
	testenv.Eventually(t, "WriteNow to decline on a closed connection", func() bool { return !s.WriteNow(msgs("late")) })
	fs.l.Close()
	fs.done.Wait()
}

// A collector that resets the connection: WriteNow's probe sees the
// reset, declines, and the next Write replays what the dead connection
// may have lost on a new one, as when Write's own probe sees it.
func TestWriteNowResetReplays(t *testing.T) {
	fs := newFrameServer(t, false)
	s, _ := newSink(t, conf.Sink{Options: &Config{Servers: []string{fs.url()}}})
	defer s.Close()
	if err := s.Write(context.Background(), msgs("m0")); err != nil {
		t.Fatal(err)
	}
	if !s.WriteNow(msgs("m1")) {
		t.Fatal("WriteNow declined on an open connection")
	}
	testenv.Eventually(t, "the collector to read m0 and m1", func() bool { return len(fs.got()) == 2 })
	fs.mu.Lock()
	c := fs.conns[0].(*net.TCPConn)
	fs.mu.Unlock()
	c.SetLinger(0)
	c.Close() // RST
	testenv.Eventually(t, "WriteNow to decline on the reset connection", func() bool { return !s.WriteNow(msgs("x")) })
	if err := s.Write(context.Background(), msgs("after")); err != nil {
		t.Fatal(err)
	}
	if s.Replays() != 1 {
		t.Fatalf("replays %d, want 1: the reset WriteNow saw must lead to a replay", s.Replays())
	}
	testenv.Eventually(t, "the replay and the new batch", func() bool {
		got := fs.got()
		return len(got) > 0 && got[len(got)-1] == "after"
	})
	n := 0
	for _, f := range fs.got() {
		if f == "m1" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("m1 arrived %d times, want 2 (once, then replayed): %q", n, fs.got())
	}
}
