package ingest

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"

	"wharf/conf"
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
