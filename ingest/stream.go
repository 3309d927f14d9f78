package ingest

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/panjf2000/gnet/v2"

	"wharf/ingest/framing"
	"wharf/internal/logthrottle"
)

// A tcp:// bind accepts in Go and reads on gnet event loops. gnet's own
// acceptor (gnet.Run) shuts the whole engine down when accept fails with
// anything but EAGAIN/EINTR/ECONNRESET/ECONNABORTED (gnet 2.9.7,
// acceptor_unix.go): one EMFILE, from a connection flood or a low
// `ulimit -n`, closed every open connection of the bind and left its port
// refusing connections until wharf restarted. So the listening socket is
// Go's (acceptLoop waits and retries on EMFILE, as for tls:// and
// relp://), and each admitted connection is enrolled into a gnet client
// engine, whose event loops read it exactly as before.

// streamBind is the accept side of a tcp:// bind.
type streamBind struct {
	ln  net.Listener
	cli *gnet.Client
	// accepting is closed when the accept loop has returned: after that
	// no connection is enrolled any more.
	accepting chan struct{}
	// warn throttles the "out of file descriptors" warning, frameWarn
	// the frame_timeout one.
	warn, frameWarn logthrottle.Throttle
}

// startStream opens the socket and the event loops of a tcp:// bind.
func (l *Listener) startStream(opts []gnet.Option) error {
	ln, err := l.listenStream()
	if err != nil {
		return err
	}
	cli, err := gnet.NewClient(l, opts...)
	if err == nil {
		err = cli.Start() // OnBoot runs here
	}
	if err != nil {
		ln.Close()
		return err
	}
	l.stream = &streamBind{ln: ln, cli: cli, accepting: make(chan struct{})}
	go func() {
		defer close(l.stream.accepting)
		l.acceptLoop(ln, l.enroll)
	}()
	return nil
}

// enroll hands an admitted connection to an event loop, which opens it
// (OnOpen) with its state already made. It runs on the accept loop and
// waits until the loop has opened the connection: while every loop is
// held back by a full sink queue, new connections wait in the kernel's
// accept queue, and a drain that closed the socket knows when the last
// accepted connection is open (acceptLoop returned). gnet dups the
// socket; c itself is closed by EnrollContext.
func (l *Listener) enroll(c net.Conn, peer netip.AddrPort, s *settings) bool {
	if l.stopping.Load() {
		return false
	}
	st := &conn{framer: framing.Framer{Mode: s.mode, Max: s.max, Truncate: s.truncate}, peer: peer}
	st.lastRead.Store(monoNow())
	_, err := l.stream.cli.EnrollContext(c, st)
	if err == nil {
		return true
	}
	// Out of descriptors for gnet's dup of the socket (EMFILE), or the
	// engine is stopping.
	l.conns.Add(-1)
	l.perIP.Release(peer.Addr())
	if l.stopping.Load() {
		return false
	}
	l.reason("rejected", "fd_limit").Inc()
	if ok, n := l.stream.warn.Allow(time.Now(), time.Second); ok {
		l.log.Warn("out of file descriptors: closed new connections (raise LimitNOFILE / ulimit -n, or lower maxconn)", "closed", n, "err", err)
	}
	return true
}

// stopStream closes the socket, waits for the accept loop (so nothing is
// enrolled into a stopping engine) and stops the event loops, closing
// every connection. Until ctx ends.
func (l *Listener) stopStream(ctx context.Context) error {
	sb := l.stream
	sb.ln.Close()
	go func() {
		<-sb.accepting
		err := sb.cli.Stop()
		close(l.exited)
		l.done <- err
	}()
	select {
	case err := <-l.done:
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
