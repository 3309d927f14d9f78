package ingest

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"wharf/conf"
	"wharf/internal/testenv"
	"wharf/metrics"
	"wharf/route"
)

// listenReusePort binds a UDP socket with SO_REUSEPORT, as another wharf
// would.
func listenReusePort(t *testing.T, addr string) net.PacketConn {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, 0x0F /* SO_REUSEPORT */, 1)
		}); err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	return pc
}

// TestUDPPortTaken: a UDP port held by another socket, with SO_REUSEPORT
// (which wharf's own binds would share) or without, is reported; a free
// one is not, and stays free after the probe.
func TestUDPPortTaken(t *testing.T) {
	shared := listenReusePort(t, "127.0.0.1:0")
	defer shared.Close()
	if err := udpPortTaken(shared.LocalAddr().String()); err == nil || !strings.Contains(err.Error(), "SO_REUSEPORT") {
		t.Fatalf("port held with SO_REUSEPORT: %v", err)
	}
	plain, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if err := udpPortTaken(plain.LocalAddr().String()); err == nil {
		t.Fatal("port held without SO_REUSEPORT: no error")
	}

	free := listenReusePort(t, "127.0.0.1:0")
	addr := free.LocalAddr().String()
	free.Close()
	if err := udpPortTaken(addr); err != nil {
		t.Fatalf("free port: %v", err)
	}
	again := listenReusePort(t, addr) // the probe let go of it
	again.Close()
	if err := udpPortTaken("127.0.0.1:0"); err != nil {
		t.Fatalf("port 0: %v", err)
	}
}

// TestUDPBindRefusesSharedPort: a UDP bind on a port another process
// shares by SO_REUSEPORT fails to start, saying why, instead of taking
// part of its datagrams.
func TestUDPBindRefusesSharedPort(t *testing.T) {
	other := listenReusePort(t, "127.0.0.1:0")
	defer other.Close()
	addr := other.LocalAddr().String()
	fe := &conf.Frontend{Name: "edge", Sinks: []string{"out"}, MaxMessageSize: 1000}
	tab, _ := route.Compile(&conf.Config{Frontends: map[string]*conf.Frontend{"edge": fe}}, map[string]route.Target{"out": &collector{}})
	h := &route.Holder{}
	h.Store(tab)
	l, err := New(fe, conf.Bind{Scheme: "udp", Host: "127.0.0.1", Addr: addr}, h, metrics.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	err = l.Start()
	if err == nil {
		l.Stop(context.Background())
		t.Fatal("Start shared the port with another socket")
	}
	if !strings.Contains(err.Error(), "already bound by another socket") {
		t.Fatalf("Start: %v", err)
	}
}

// TestUDPBufferEverySocket: every socket of a UDP bind (one per event
// loop) gets the 8 MiB receive buffer, not only the first: gnet hands out
// the first (Engine.Dup) and opens the others after OnBoot, so they kept
// a buffer capped at net.core.rmem_max (an audit: 8 MiB on one socket,
// 4 MiB on the other, with rmem_max 4 MiB). Needs SO_RCVBUFFORCE (root or
// CAP_NET_ADMIN) and an rmem_max below 8 MiB to tell the two apart.
func TestUDPBufferEverySocket(t *testing.T) {
	b, _ := os.ReadFile("/proc/sys/net/core/rmem_max")
	if max, err := strconv.Atoi(strings.TrimSpace(string(b))); err != nil || max >= udpRecvBuffer {
		t.Skipf("rmem_max %q: every socket gets 8 MiB anyway", strings.TrimSpace(string(b)))
	}
	fe := &conf.Frontend{Name: "edge", Sinks: []string{"out"}, MaxMessageSize: 1000}
	tab, _ := route.Compile(&conf.Config{Frontends: map[string]*conf.Frontend{"edge": fe}}, map[string]route.Target{"out": &collector{}})
	h := &route.Holder{}
	h.Store(tab)
	port := testenv.FreePort(t) // not 0: each event loop's socket would get a port of its own
	l, err := New(fe, conf.Bind{Scheme: "udp", Host: "127.0.0.1", Port: port, Addr: "127.0.0.1:" + strconv.Itoa(port)}, h, metrics.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	defer l.Stop(context.Background())
	if fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0); err == nil {
		forced := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, udpRecvBuffer)
		unix.Close(fd)
		if forced != nil {
			t.Skipf("SO_RCVBUFFORCE refused (not root, no CAP_NET_ADMIN): %v", forced)
		}
	}
	want := runtime.NumCPU()
	var small []int
	ok := testenv.Poll(5*time.Second, func() bool {
		fds := udpSocketsAt(l.udpLocal)
		small = small[:0]
		for _, fd := range fds {
			// The kernel reports twice what was set (its bookkeeping).
			if n, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF); err != nil || n < 2*udpRecvBuffer {
				small = append(small, n)
			}
		}
		return len(fds) == want && len(small) == 0
	})
	if !ok {
		t.Errorf("%d sockets bound (want %d), %d of them with a receive buffer under %d bytes: %v", len(udpSocketsAt(l.udpLocal)), want, len(small), 2*udpRecvBuffer, small)
	}
}
