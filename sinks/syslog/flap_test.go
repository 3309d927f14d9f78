package syslog

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"wharf/conf"
	"wharf/internal/testenv"
)

// TestFlappingCollectorLosesNothing guards against a collector that
// accepts, reads 8 KiB and resets, again and again (a crash loop), losing
// small batches: the replay kept at most 64 batches, far less than
// replayBytes when batches are small, so what slid out unread was lost as
// sent (280-320 of 3,000 here; audit: 380 of 196,676 at 5k msg/s over a
// 20 s flap).
func TestFlappingCollectorLosesNothing(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fs := &frameServer{l: l}
	const flaps = 4
	go func() {
		for range flaps {
			c, err := l.Accept()
			if err != nil {
				return
			}
			io.ReadFull(c, make([]byte, 8<<10))
			time.Sleep(50 * time.Millisecond) // dying takes a moment
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
		fs.done.Add(1)
		fs.accept()
	}()
	s, _ := newSink(t, conf.Sink{Options: &Config{Servers: []string{"tcp://" + l.Addr().String()}}})
	defer s.Close()
	pad := strings.Repeat("x", 250)
	var want []string
	deadline := time.Now().Add(40 * time.Second)
	for b := range 300 {
		var batch []string
		for i := range 10 {
			batch = append(batch, fmt.Sprintf("<13>1 - h app - - - b=%d i=%d %s", b, i, pad))
		}
		want = append(want, batch...)
		for s.Write(context.Background(), msgs(batch...)) != nil { // the runner retries a failed batch
			if time.Now().After(deadline) {
				t.Fatal("the sink never recovered after the collector stopped flapping")
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(2 * time.Millisecond) // a steady trickle, as at a low rate
	}
	s.Close()
	got := map[string]bool{}
	testenv.Poll(testenv.EventuallyTimeout, func() bool {
		for _, f := range fs.got() {
			got[f] = true
		}
		return len(got) >= len(want)
	})
	lost := 0
	for _, m := range want {
		if !got[m] {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("lost %d of %d messages to a collector that reset %d connections after 8 KiB each", lost, len(want), flaps)
	}
	l.Close()
	fs.kill()
}
