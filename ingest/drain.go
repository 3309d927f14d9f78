package ingest

// Graceful stop, first step: refuse new connections and read what the
// senders already wrote. Plain TCP syslog has no acknowledgements: bytes
// a sender wrote are "sent" as far as it knows, and closing a connection
// with them still in the kernel's receive queue discards them silently.

import (
	"context"
	"net"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"wharf/internal/mono"
)

const (
	// drainQuiet is how long a connection must have had nothing to read
	// to count as drained.
	drainQuiet = 20 * time.Millisecond
	// drainPoll is how often Drain looks; a bind is drained when all its
	// connections were quiet at two looks in a row.
	drainPoll = 10 * time.Millisecond
)

// Drain refuses new connections on a tcp:// or tls:// bind (it closes
// the listening socket; a tcp:// connection accepted before that is
// still enrolled and read) and waits until every open connection is quiet:
// no read in progress (an event loop held back by a full queue is
// busy), nothing in its kernel receive queue, no byte for drainQuiet. A
// sender that keeps writing keeps it waiting until ctx ends; busy is how
// many connections were still not quiet then. On a udp:// bind it waits
// until every socket was read empty once since Drain began (or is empty
// now): the datagrams queued when the stop began are read, new ones do
// not hold it up. relp:// binds return at once (a RELP sender resends
// what was not acknowledged). Call before Stop while the sinks still
// run, so what is read is delivered.
func (l *Listener) Drain(ctx context.Context) (busy int) {
	switch {
	case l.relp != nil:
		return 0
	case !l.tcp:
		return l.drainDatagrams(ctx)
	case l.tls != nil:
		if l.tls.ln == nil {
			return 0
		}
		l.tls.ln.Close() // new connections are refused by the kernel
	default:
		if l.stream == nil {
			return 0 // never started
		}
		// New connections are refused by the kernel; the accept loop
		// returns once the last one it accepted is open (enroll).
		l.stream.ln.Close()
	}
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	quietBefore := false
	for {
		busy = l.busyConns(monoNow()) + l.enrolling()
		if busy == 0 && quietBefore {
			return 0
		}
		quietBefore = busy == 0
		select {
		case <-tick.C:
		case <-ctx.Done():
			return busy
		}
	}
}

// busyConns counts the connections that may still have bytes to read.
func (l *Listener) busyConns(now int64) int {
	n := 0
	if l.tls != nil {
		l.tls.states.Range(func(k, v any) bool {
			c := v.(*tlsConn)
			if !c.waiting.Load() || now-c.lastRead.Load() < int64(drainQuiet) || unread(k.(net.Conn)) {
				n++
			}
			return true
		})
		return n
	}
	l.open.Range(func(k, v any) bool {
		c, st := k.(gnet.Conn), v.(*conn)
		if st.busy.Load() || now-st.lastRead.Load() < int64(drainQuiet) || inq(c.Fd()) > 0 {
			n++
		}
		return true
	})
	return n
}

// inq is how many bytes wait in fd's kernel receive queue (0 when it
// cannot tell: the connection is closing).
func inq(fd int) int {
	n, err := unix.IoctlGetInt(fd, unix.SIOCINQ)
	if err != nil {
		return 0
	}
	return n
}

// unread reports whether bytes wait in c's kernel receive queue.
func unread(c net.Conn) bool {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return false
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return false
	}
	n := 0
	rc.Control(func(fd uintptr) { n = inq(int(fd)) })
	return n > 0
}

// drainDatagrams is Drain for a udp:// bind: done when the kernel holds
// nothing for the port's sockets, or when every one of them (as many as
// /proc/net/udp lists on the port) was read empty since it began. busy
// counts the sockets still to read when ctx ended.
func (l *Listener) drainDatagrams(ctx context.Context) (busy int) {
	epoch := l.udpEpoch.Add(1)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		st, err := udpPortState("/proc", l.port)
		if err != nil || st.queued == 0 {
			return 0
		}
		emptied := 0
		l.batches.Range(func(_, v any) bool {
			if v.(*udpBatch).emptied.Load() >= epoch {
				emptied++
			}
			return true
		})
		if emptied >= st.sockets {
			return 0
		}
		busy = st.sockets - emptied
		select {
		case <-tick.C:
		case <-ctx.Done():
			return busy
		}
	}
}

// monoNow is nanoseconds on the monotonic clock (internal/mono): what
// timeouts, rate limits and the drain measure with. Message receive
// times stay on the wall clock.
func monoNow() int64 { return mono.Now() }

// enrolling is 1 while a tcp:// bind's accept loop may still be enrolling
// a connection it accepted before the drain closed the socket.
func (l *Listener) enrolling() int {
	if l.stream == nil {
		return 0
	}
	select {
	case <-l.stream.accepting:
		return 0
	default:
		return 1
	}
}
