package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"wharf/internal/testenv"
)

// TestSecondWharfOnUDPPort: a second wharf started on the UDP port a
// running one serves (by hand, to try a config, or an old one left
// running by a deploy). wharf binds UDP with SO_REUSEPORT, one socket per
// event loop, so before the second bound beside the first without an
// error and the kernel split the datagrams between the two, by sender:
// with the previous binary the first got 0 of 200 from one sender here,
// all went to the second's sink. Now the second refuses to start, says why and which
// port, and every datagram reaches the first.
func TestSecondWharfOnUDPPort(t *testing.T) {
	port := testenv.FreePort(t)
	dir := t.TempDir()
	cfg := func(file string) string {
		return fmt.Sprintf("[admin]\nlisten = \"{{ADMIN}}\"\n[frontend.edge]\nbind = [\"udp://127.0.0.1:%d\"]\nsinks = [\"f\"]\n[sink.f]\ntype = \"file\"\npath = %q\n", port, file)
	}
	firstLog, secondLog := filepath.Join(dir, "first.log"), filepath.Join(dir, "second.log")
	first := start(t, cfg(firstLog))

	secondCfg := filepath.Join(dir, "second.toml")
	if err := os.WriteFile(secondCfg, []byte(strings.ReplaceAll(cfg(secondLog), "{{ADMIN}}", "127.0.0.1:0")), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	second := exec.Command(wharfBin, "run", "-c", secondCfg)
	second.Stdout, second.Stderr = &out, &out
	if err := second.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- second.Wait() }()
	var err error
	select {
	case err = <-exited:
	case <-time.After(5 * time.Second):
		// Still running: show what sharing the port costs.
		sendDatagrams(t, port, 200)
		time.Sleep(time.Second)
		second.Process.Kill()
		<-exited
		t.Fatalf("a second wharf started on udp port %d beside the first; the first got %d of 200 datagrams", port, countLines(firstLog))
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("second wharf: %v, want exit status 1 (a runtime error)\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "already bound by another socket") || !strings.Contains(out.String(), fmt.Sprint(port)) {
		t.Fatalf("second wharf's error does not say the port is taken:\n%s", out.String())
	}
	sendDatagrams(t, port, 200)
	if !testenv.Poll(10*time.Second, func() bool { return countLines(firstLog) == 200 }) {
		t.Fatalf("the first wharf wrote %d of 200 datagrams", countLines(firstLog))
	}
	first.stop()
}

// sendDatagrams sends n RFC5424 messages to 127.0.0.1:port, paced so the
// receiver's socket buffer is never the limit.
func sendDatagrams(t *testing.T, port, n int) {
	t.Helper()
	c, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range n {
		fmt.Fprintf(c, "<13>1 2026-12-05T10:00:00Z h app - - - udp=%d", i)
		if i%20 == 19 {
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// countLines returns how many lines the file at path holds (0 when it
// does not exist).
func countLines(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return bytes.Count(b, []byte("\n"))
}

// TestUDPWildcardBothFamilies: a udp://[::]:PORT bind takes IPv4 and IPv6
// datagrams, as config validation assumes (it refuses udp://0.0.0.0 on
// the same port beside it) and as tcp://[::] does. gnet made the socket
// IPv6-only: an audit's datagrams to 127.0.0.1 vanished uncounted, and no
// config could take UDP on both families through wildcard binds. The
// datagrams are sent over loopback only.
func TestUDPWildcardBothFamilies(t *testing.T) {
	if c, err := net.ListenPacket("udp6", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		c.Close()
	}
	port := testenv.FreePort(t)
	dir := t.TempDir()
	log := filepath.Join(dir, "out.log")
	in := start(t, fmt.Sprintf("[admin]\nlisten = \"{{ADMIN}}\"\n[frontend.edge]\nbind = [\"udp://[::]:%d\"]\nsinks = [\"f\"]\n[sink.f]\ntype = \"file\"\npath = %q\nbatch_timeout = \"2ms\"\n", port, log))
	for _, to := range []string{fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("[::1]:%d", port)} {
		c, err := net.Dial("udp", to)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "<13>1 2026-12-06T04:00:00Z h app - - - to %s", to)
		c.Close()
	}
	if lines := readLines(t, log, 2, 10*time.Second); len(lines) != 2 {
		t.Fatalf("%d of 2 datagrams (one over IPv4, one over IPv6) reached the file: %q", len(lines), lines)
	}
	in.stop()
}
