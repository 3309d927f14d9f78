// Package browser tests wharf's status page in a real browser: Debian's
// Chromium, headless, driven with chromedp, against the real wharf binary
// under load over loopback.
package browser

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"wharf/admin"

	"wharf/internal/testenv"
)

// wharfBin builds wharf once per test binary, unless WHARF_BIN names one.
var wharfBin = sync.OnceValues(func() (string, error) {
	if b := os.Getenv("WHARF_BIN"); b != "" {
		return b, nil
	}
	dir, err := os.MkdirTemp("", "wharf-browser")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "wharf")
	out, err := exec.Command("go", "build", "-o", bin, "wharf/cmd/wharf").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build wharf: %v\n%s", err, out)
	}
	return bin, nil
})

// deadPort returns a loopback TCP port where connections are refused, and
// stays so for the test: a socket is bound to it but never listens, so
// neither another listener nor an ephemeral (self-)connect can take it.
func deadPort(t *testing.T) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return sa.(*unix.SockaddrInet4).Port
}

// instance is a running wharf.
type instance struct {
	admin string // http://host:port
	cmd   *exec.Cmd
	log   *testenv.SyncBuffer
}

// startWharf runs wharf on config text (written to a temp dir, which is
// also its working directory) and waits for its admin listener.
func startWharf(t *testing.T, adminAddr, config string) *instance {
	t.Helper()
	bin, err := wharfBin()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "wharf.toml")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	in := &instance{admin: "http://" + adminAddr, log: &testenv.SyncBuffer{}}
	in.cmd = exec.Command(bin, "run", "-c", path)
	in.cmd.Dir = dir
	in.cmd.Stderr = in.log
	if err := in.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if in.cmd.ProcessState == nil {
			in.cmd.Process.Kill()
			in.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("wharf log:\n%s", in.log.String())
		}
	})
	var herr error
	up := testenv.Poll(10*time.Second, func() bool {
		if strings.HasSuffix(in.admin, ":0") { // bound on port 0: read it back
			a, ok := testenv.LogAttr(in.log.String(), "admin listening", "addr")
			if !ok {
				return false
			}
			in.admin = "http://" + a
		}
		var resp *http.Response
		if resp, herr = http.Get(in.admin + "/healthz"); herr == nil {
			resp.Body.Close()
			return true
		}
		return false
	})
	if !up {
		t.Fatalf("wharf admin %s not up after 10s: %v\n%s", in.admin, herr, in.log.String())
	}
	return in
}

// stop sends SIGTERM and waits for a clean exit.
// stop sends SIGTERM and checks wharf exits with status want (0, or 3
// when a sink held messages it could not deliver within shutdown_timeout).
func (in *instance) stop(t *testing.T, want int) {
	t.Helper()
	in.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- in.cmd.Wait() }()
	select {
	case err := <-done:
		if code := in.cmd.ProcessState.ExitCode(); code != want {
			t.Errorf("wharf exit: %v (status %d, want %d)", err, code, want)
		}
	case <-time.After(15 * time.Second):
		in.cmd.Process.Kill()
		t.Errorf("wharf did not exit within 15s of SIGTERM")
	}
}

func (in *instance) status(t *testing.T) admin.StatusReport {
	t.Helper()
	resp, err := http.Get(in.admin + "/api/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r admin.StatusReport
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("/api/status: %v", err)
	}
	return r
}

// metric returns the value of the /metrics series whose name and labels
// (rendered exactly as Prometheus text, e.g. `{sink="archive"}`) match.
func (in *instance) metric(t *testing.T, name, labels string) float64 {
	t.Helper()
	resp, err := http.Get(in.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	want := name + labels + " "
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, want) {
			v, err := strconv.ParseFloat(strings.TrimPrefix(line, want), 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return v
		}
	}
	t.Fatalf("/metrics has no %s%s", name, labels)
	return 0
}

// load sends RFC5424 messages to a UDP and a TCP bind from two goroutines
// until ctx ends or max messages went out per transport, paced in bursts
// so the box (2 cores shared with Chromium) stays responsive. Every 25th
// message is facility auth (routed to the down "siem" sink too).
type load struct {
	udpSent, tcpSent atomic.Int64
	wg               sync.WaitGroup
}

const (
	loadBurst    = 40
	loadInterval = 10 * time.Millisecond // ~4000 msg/s per transport
	loadMax      = 60000
)

func startLoad(t *testing.T, ctx context.Context, udpAddr, tcpAddr string) *load {
	t.Helper()
	l := &load{}
	line := func(i int) []byte {
		pri := 14 // user.info
		switch {
		case i%25 == 0:
			pri = 4*8 + 5 // auth.notice
		case i%7 == 0:
			pri = 11 // user.err
		}
		return fmt.Appendf(nil, "<%d>1 2026-11-25T10:00:00Z web%d.dc1 app%d %d - - request %d served in %d ms", pri, i%5, i%3, 1000+i%50, i, i%97)
	}
	uc, err := net.Dial("udp", udpAddr)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := net.Dial("tcp", tcpAddr)
	if err != nil {
		t.Fatal(err)
	}
	run := func(send func(i int) error, sent *atomic.Int64, c net.Conn) {
		defer l.wg.Done()
		defer c.Close()
		tick := time.NewTicker(loadInterval)
		defer tick.Stop()
		for i := 0; i < loadMax; {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			for j := 0; j < loadBurst && i < loadMax; j++ {
				if err := send(i); err != nil {
					t.Errorf("load: %v", err)
					return
				}
				sent.Add(1)
				i++
			}
		}
	}
	l.wg.Add(2)
	go run(func(i int) error { _, err := uc.Write(line(i)); return err }, &l.udpSent, uc)
	go run(func(i int) error { _, err := tc.Write(append(line(i), '\n')); return err }, &l.tcpSent, tc)
	return l
}

func (l *load) wait() { l.wg.Wait() }

var _ io.Writer = (*testenv.SyncBuffer)(nil)
