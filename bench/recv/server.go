package recv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Server is a running TCP or UDP syslog receiver feeding a Tracker.
// Close stops it and waits for its goroutines.
type Server struct {
	// Tracker receives every stamped message.
	Tracker *Tracker
	addr    net.Addr
	ln      net.Listener
	pc      *net.UDPConn
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	closed  atomic.Bool
	errs    atomic.Uint64
	relp    bool // relp:// (relp.go)
}

// Listen starts a receiver on tcp://host:port or udp://host:port (port 0
// picks a free one; see Addr). run, when set, makes messages of any other
// run count as foreign instead of being accounted.
func Listen(target, run string) (*Server, error) {
	scheme, addr, ok := cutScheme(target)
	if !ok {
		return nil, fmt.Errorf("bench/recv: listen %q: want tcp://host:port, udp://host:port or relp://host:port", target)
	}
	s := &Server{Tracker: NewTracker(), conns: map[net.Conn]struct{}{}}
	switch scheme {
	case "tcp", "relp":
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("bench/recv: listen %s: %w", target, err)
		}
		s.ln, s.addr, s.relp = ln, ln.Addr(), scheme == "relp"
		s.wg.Add(1)
		go s.acceptLoop(run)
	case "udp":
		ua, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			return nil, fmt.Errorf("bench/recv: listen %s: %w", target, err)
		}
		pc, err := net.ListenUDP("udp", ua)
		if err != nil {
			return nil, fmt.Errorf("bench/recv: listen %s: %w", target, err)
		}
		s.pc, s.addr = pc, pc.LocalAddr()
		setRcvBuf(pc, 64<<20)
		s.wg.Add(1)
		go s.udpLoop(run)
	default:
		return nil, fmt.Errorf("bench/recv: listen %q: scheme %q is neither tcp nor udp", target, scheme)
	}
	return s, nil
}

func cutScheme(t string) (scheme, addr string, ok bool) {
	scheme, addr, ok = strings.Cut(t, "://")
	return scheme, addr, ok && scheme != "" && addr != ""
}

// Addr is the bound address (useful with port 0).
func (s *Server) Addr() net.Addr { return s.addr }

// ReadErrors counts connections that ended with an error other than EOF
// (broken framing, resets).
func (s *Server) ReadErrors() uint64 { return s.errs.Load() }

// Close stops listening, closes open connections and waits for the
// receiving goroutines; the Tracker holds everything received before.
func (s *Server) Close() error {
	s.closed.Store(true)
	var err error
	if s.ln != nil {
		err = s.ln.Close()
	}
	if s.pc != nil {
		err = s.pc.Close()
	}
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

func (s *Server) acceptLoop(run string) {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // EMFILE and friends
			continue
		}
		s.mu.Lock()
		if s.closed.Load() {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			serve := serveStream
			if s.relp {
				serve = serveRELP
			}
			if err := serve(c, newCollector(s.Tracker, run)); err != nil && !s.closed.Load() {
				s.errs.Add(1)
			}
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			c.Close()
		}()
	}
}

// serveStream reads one TCP connection until EOF or an error.
func serveStream(c net.Conn, col *collector) error {
	buf := make([]byte, 256<<10)
	var sp splitter
	have := 0
	for {
		n, err := c.Read(buf[have:])
		if n > 0 {
			have += n
			used, ferr := sp.split(buf[:have], col.msg)
			col.flush(n)
			if ferr != nil {
				return ferr
			}
			have = copy(buf, buf[used:have])
			if have == len(buf) { // one message larger than the buffer
				buf = append(buf, make([]byte, len(buf))...)
			}
		}
		if err != nil {
			if errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

func setRcvBuf(c *net.UDPConn, n int) {
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		// SO_RCVBUFFORCE passes rmem_max when we are root; else best effort.
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n) != nil {
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, n)
		}
	})
}

// mmsghdr is struct mmsghdr from <sys/socket.h> (linux/amd64, arm64).
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

// udpLoop reads datagrams in recvmmsg batches; each datagram is one message.
func (s *Server) udpLoop(run string) {
	defer s.wg.Done()
	const batch, slot = 256, 64 << 10
	rc, err := s.pc.SyscallConn()
	if err != nil {
		return
	}
	bufs := make([]byte, batch*slot)
	iov := make([]unix.Iovec, batch)
	hdrs := make([]mmsghdr, batch)
	for i := range hdrs {
		iov[i].Base = &bufs[i*slot]
		iov[i].SetLen(slot)
		hdrs[i].hdr.Iov = &iov[i]
		hdrs[i].hdr.SetIovlen(1)
	}
	col := newCollector(s.Tracker, run)
	for {
		var n int
		var errno syscall.Errno
		err := rc.Read(func(fd uintptr) bool {
			r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&hdrs[0])), batch, unix.MSG_DONTWAIT, 0, 0)
			if e == unix.EAGAIN {
				return false
			}
			n, errno = int(r), e
			return true
		})
		if err != nil {
			return // closed
		}
		if errno != 0 {
			continue
		}
		total := 0
		for i := 0; i < n; i++ {
			l := int(hdrs[i].len)
			total += l
			col.msg(bufs[i*slot : i*slot+l])
		}
		col.flush(total)
	}
}

// WaitOptions say when a receive run is over.
type WaitOptions struct {
	// Count ends the wait once this many distinct messages arrived (0: none).
	Count uint64
	// Idle ends the wait when nothing new arrived for this long, counted
	// from the first message (or from the start when StartIdle is set).
	Idle time.Duration
	// StartIdle makes Idle count before the first message too.
	StartIdle bool
	// Tick is the polling interval. Default 20 ms.
	Tick time.Duration
	// Progress, when set, is called every Tick with the distinct count.
	Progress func(unique uint64)
}

// Wait blocks until the tracker saw o.Count distinct messages, was idle
// for o.Idle, or ctx ended. It reports whether the count was reached.
func Wait(ctx context.Context, t *Tracker, o WaitOptions) bool {
	if o.Tick <= 0 {
		o.Tick = 20 * time.Millisecond
	}
	tk := time.NewTicker(o.Tick)
	defer tk.Stop()
	var last uint64
	lastChange := time.Now()
	for {
		n := t.Unique()
		if o.Progress != nil {
			o.Progress(n)
		}
		if o.Count > 0 && n >= o.Count {
			return true
		}
		if n != last {
			last, lastChange = n, time.Now()
		}
		if o.Idle > 0 && (n > 0 || o.StartIdle) && time.Since(lastChange) >= o.Idle {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-tk.C:
		}
	}
}

// Serve reads one TCP syslog stream (octet counting or LF, detected from
// its first byte) from c into t until EOF or an error, like a Listen
// connection. It is for test collectors that wrap the connection to
// stall or reset it. run is as for Listen.
func Serve(c net.Conn, t *Tracker, run string) error {
	return serveStream(c, newCollector(t, run))
}
