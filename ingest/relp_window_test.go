package ingest

import (
	"fmt"
	"testing"
	"time"

	"wharf/conf"
	"wharf/internal/testenv"
	"wharf/relp"
)

// relpRings returns the length of each open session's table of
// unanswered transactions.
func relpRings(l *Listener) []int {
	l.relp.mu.Lock()
	defer l.relp.mu.Unlock()
	var ns []int
	for s := range l.relp.sessions {
		s.mu.Lock()
		ns = append(ns, len(s.ring))
		s.mu.Unlock()
	}
	return ns
}

// Regression: a session's table of unanswered transactions was made at
// relp_window+1 slots when it connected: 512 KiB of pointers per session
// at relp_window 65536, so 1,000 sessions cost 500 MiB before sending a
// message. The table now grows with use.
func TestRELPBigWindowIdleSessionIsSmall(t *testing.T) {
	const n = 100
	const maxPerSession = 24 << 10 // TestRELPIdleSessionsHoldNoFrameBuffer's bound at the default window
	l, reg, _ := listen(t, "relp", &conf.Frontend{RELPWindow: 65536})
	before := liveHeap()
	for range n {
		p := dialRELP(t, l.Addr(), nil)
		p.open()
	}
	testenv.Eventually(t, "sessions open", func() bool { return counter(reg, "wharf_relp_sessions", "") == n })
	time.Sleep(50 * time.Millisecond) // every reader back in Read
	per := (liveHeap() - before) / n
	t.Logf("live heap per idle RELP session with relp_window 65536: %.1f KiB", float64(per)/1024)
	if per > maxPerSession {
		t.Errorf("an idle RELP session with relp_window 65536 holds %.1f KiB of heap, want < %d KiB", float64(per)/1024, maxPerSession>>10)
	}
	for _, r := range relpRings(l) {
		if r > 64 {
			t.Fatalf("an idle session's transaction table has %d slots, want at most 64", r)
		}
	}
}

// A session that uses the whole of a big window gets it: the table grows
// to relp_window, holds that many unanswered messages, takes a close in
// the one slot past the window, and answers all in order.
func TestRELPFullWindowGrows(t *testing.T) {
	const window = 65536
	l, h, _ := listenHolding(t, &conf.Frontend{RELPAck: "delivered", RELPWindow: window})
	p := dialRELP(t, l.Addr(), nil)
	p.open()
	var b []byte
	for i := range window {
		b = relp.AppendFrame(b, uint32(i+2), "syslog", fmt.Appendf(nil, "<13>1 2026-12-06T10:00:00Z h app - - - m%d", i))
	}
	b = relp.AppendFrame(b, window+2, "close", nil)
	go p.c.Write(b)
	testenv.Eventually(t, "a full window held", func() bool { return h.count() == window })
	testenv.Eventually(t, "the close taken past the window", func() bool {
		r := relpRings(l)
		return len(r) == 1 && r[0] == window+1
	})
	if r := relpRings(l); len(r) != 1 || r[0] != window+1 {
		t.Fatalf("transaction table %v slots with the window full and a close, want [%d]", r, window+1)
	}
	h.finish(window, true)
	for i := range window {
		p.rsp(uint32(i+2), 200)
	}
	p.rsp(window+2, 200)
	p.closed()
}
