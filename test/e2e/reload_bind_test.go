package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"wharf/internal/testenv"
)

// TestReloadBindTaken: a reload that adds a syslog bind on an address
// another socket holds (a UDP port, a TCP port) and also moves the file
// sink is refused as a whole: 400 naming the address, a log line,
// wharf_config_reloads_total{result="failed"}, and the running config
// stays (messages still go to the old file). Before, the new config was
// applied without the bind and the answer still said "the previous config
// keeps running".
//
// The third case is an address not on this host (192.0.2.1, TEST-NET-1:
// the bind fails, nothing is sent): it was left to the bind, so the
// reload was applied without it. In the fourth the UDP holder has
// SO_REUSEPORT set, as another wharf's sockets do: the kernel would let
// wharf bind beside it and split the datagrams between the two, so wharf
// must find the holder itself (README: refused at start and at reload).
func TestReloadBindTaken(t *testing.T) {
	for _, c := range []struct {
		name, scheme, host string
		reusePort          bool
	}{
		{"udp", "udp", "127.0.0.1", false},
		{"tcp", "tcp", "127.0.0.1", false},
		{"udp-not-on-this-host", "udp", "192.0.2.1", false},
		{"udp-reuseport", "udp", "127.0.0.1", true},
	} {
		scheme := c.scheme
		t.Run(c.name, func(t *testing.T) {
			port := testenv.FreePort(t)
			addr := fmt.Sprintf("%s:%d", c.host, testenv.FreePort(t))
			if c.host == "127.0.0.1" {
				var holder interface{ Close() error }
				var err error
				switch {
				case c.reusePort:
					lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
						var serr error
						if err := rc.Control(func(fd uintptr) {
							serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
						}); err != nil {
							return err
						}
						return serr
					}}
					holder, err = lc.ListenPacket(context.Background(), "udp4", addr)
				case scheme == "udp":
					holder, err = net.ListenPacket("udp4", addr)
				default:
					holder, err = net.Listen("tcp4", addr)
				}
				if err != nil {
					t.Fatal(err)
				}
				defer holder.Close()
			}
			dir := t.TempDir()
			admin := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
			cfg := func(binds, file string) string {
				return fmt.Sprintf("[admin]\nlisten = %q\n[frontend.edge]\nbind = [%s]\nsinks = [\"f\"]\n[sink.f]\ntype = \"file\"\npath = %q\nbatch_timeout = \"2ms\"\n", admin, binds, filepath.Join(dir, file))
			}
			own := fmt.Sprintf("%q", fmt.Sprintf("tcp://127.0.0.1:%d", port))
			in := startIn(t, dir, admin, cfg(own, "old.log"))
			if err := os.WriteFile(filepath.Join(dir, "wharf.toml"), []byte(cfg(own+fmt.Sprintf(", %q", scheme+"://"+addr), "new.log")), 0o644); err != nil {
				t.Fatal(err)
			}
			code, body := postReload(t, admin)
			if code != 400 || !strings.Contains(body, "previous config keeps running") || !strings.Contains(body, addr) {
				t.Fatalf("POST /reload = %d %q, want 400 naming %s and saying the previous config runs", code, body, addr)
			}
			if got := in.metric("wharf_config_reloads_total", `result="failed"`); got != 1 {
				t.Errorf(`wharf_config_reloads_total{result="failed"} = %v, want 1`, got)
			}
			if !in.waitLog("reload failed; the previous config keeps running", 5*time.Second) {
				t.Errorf("no log line for the refused reload")
			}
			sendTCP(t, fmt.Sprintf("127.0.0.1:%d", port), []string{"<13>1 2026-12-06T03:00:00Z h app - - - after the refused reload"})
			if lines := readLines(t, filepath.Join(dir, "old.log"), 1, 10*time.Second); len(lines) != 1 {
				t.Fatalf("old.log has %d lines, want the message sent after the refused reload", len(lines))
			}
			if _, err := os.Stat(filepath.Join(dir, "new.log")); err == nil {
				t.Errorf("new.log exists: the refused config's sink was applied")
			}
			in.stop()
		})
	}
}
