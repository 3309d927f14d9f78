// Package acceptretry is what every accept loop of wharf does when accept
// fails for a reason other than a closed socket (EMFILE, ENFILE, ENOBUFS
// under a connection flood or a low `ulimit -n`): wait, doubling from 5
// ms to a second as net/http does, keep the socket, and say so at most
// once a second. Connections wait in the kernel's accept queue meanwhile.
package acceptretry

import (
	"log/slog"
	"time"

	"wharf/internal/logthrottle"
)

// Backoff is one accept loop's state. Not safe for concurrent use: each
// loop has its own.
type Backoff struct {
	delay time.Duration
	warn  logthrottle.Throttle
}

// Failed records a failed accept, logs it on log (throttled) and returns
// how long to wait before the next.
func (b *Backoff) Failed(log *slog.Logger, err error) time.Duration {
	b.delay = min(max(2*b.delay, 5*time.Millisecond), time.Second)
	if ok, n := b.warn.Allow(time.Now(), time.Second); ok {
		log.Warn("accept failed; retrying (out of file descriptors? raise LimitNOFILE / ulimit -n, or lower maxconn)", "err", err, "times", n, "wait", b.delay)
	}
	return b.delay
}

// OK records a successful accept: the next failure waits 5 ms again.
func (b *Backoff) OK() { b.delay = 0 }
