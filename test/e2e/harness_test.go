// Package e2e runs the real wharf binary against real peers over loopback:
// util-linux logger, Apache Kafka with kcat, a syslog-ng collector. The
// test scripts (test/run.sh) start the peers; see internal/testenv.
package e2e

import (
	"bufio"
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
	"syscall"
	"testing"
	"time"

	"wharf/internal/testenv"
)

var wharfBin string

func TestMain(m *testing.M) {
	wharfBin = os.Getenv("WHARF_BIN")
	if wharfBin == "" {
		dir, err := os.MkdirTemp("", "wharf-e2e")
		if err != nil {
			panic(err)
		}
		wharfBin = filepath.Join(dir, "wharf")
		out, err := exec.Command("go", "build", "-o", wharfBin, "wharf/cmd/wharf").CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build wharf: %v\n%s", err, out)
			os.Exit(1)
		}
		code := m.Run()
		os.RemoveAll(dir)
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// instance is one running wharf process.
type instance struct {
	t      *testing.T
	cmd    *exec.Cmd
	dir    string
	admin  string
	stderr *testenv.SyncBuffer
	stdout *testenv.SyncBuffer
	exited chan error
}

// start writes config (with {{DIR}} replaced by a temp dir and {{ADMIN}} by
// a free admin address) and runs wharf on it until /healthz answers.
func start(t *testing.T, config string) *instance {
	t.Helper()
	return startIn(t, t.TempDir(), "127.0.0.1:0", config)
}

// tcpEdge is the head most test configs share: the admin listener and
// frontend "edge" on tcp://127.0.0.1:port sending everything to sink.
func tcpEdge(port int, sink string) string {
	return fmt.Sprintf("[admin]\nlisten = \"{{ADMIN}}\"\n[frontend.edge]\nbind = [\"tcp://127.0.0.1:%d\"]\nsinks = [%q]", port, sink)
}

// startIn is start with a given work dir and admin address.
func startIn(t *testing.T, dir, admin, config string) *instance {
	t.Helper()
	config = strings.ReplaceAll(config, "{{DIR}}", dir)
	config = strings.ReplaceAll(config, "{{ADMIN}}", admin)
	path := filepath.Join(dir, "wharf.toml")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	in := &instance{t: t, dir: dir, admin: admin, stderr: &testenv.SyncBuffer{}, stdout: &testenv.SyncBuffer{}, exited: make(chan error, 1)}
	in.cmd = exec.Command(wharfBin, "run", "-c", path)
	in.cmd.Stderr = in.stderr
	in.cmd.Stdout = in.stdout
	if err := in.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { in.exited <- in.cmd.Wait() }()
	t.Cleanup(func() {
		if in.cmd.ProcessState == nil {
			in.cmd.Process.Kill()
			<-in.exited
		}
		if t.Failed() {
			t.Logf("wharf stderr:\n%s", in.stderr.String())
		}
	})
	healthy := testenv.Poll(15*time.Second, func() bool {
		if strings.HasSuffix(in.admin, ":0") { // bound on port 0: read it back
			a, ok := testenv.LogAttr(in.stderr.String(), "admin listening", "addr")
			if !ok {
				return false
			}
			in.admin = a
		}
		resp, err := http.Get("http://" + in.admin + "/healthz")
		if err == nil {
			resp.Body.Close()
			return true
		}
		select {
		case err := <-in.exited:
			t.Fatalf("wharf exited before it was healthy: %v\n%s", err, in.stderr.String())
		default:
		}
		return false
	})
	if !healthy {
		t.Fatalf("wharf not healthy after 15s:\n%s", in.stderr.String())
	}
	return in
}

// bind returns the address a bind of frontend with scheme ("tcp", "udp",
// ...) listens on, as wharf logged it: a config may bind port 0 and the
// test read the port back, so no other process can take it between the
// test choosing it and wharf binding it.
func (in *instance) bind(frontend, scheme string) string {
	in.t.Helper()
	for _, line := range strings.Split(in.stderr.String(), "\n") {
		if f, ok := testenv.LogAttr(line, "listening", "frontend"); !ok || f != frontend {
			continue
		}
		if b, ok := testenv.LogAttr(line, "listening", "bind"); ok && strings.HasPrefix(b, scheme+"://") {
			return strings.TrimPrefix(b, scheme+"://")
		}
	}
	in.t.Fatalf("no %s:// bind of frontend %q in wharf's log:\n%s", scheme, frontend, in.stderr.String())
	return ""
}

// waitLog reports whether wharf's stderr contains s within timeout. wharf
// writes a log line before it answers the request that caused it, but the
// line reaches the test through a pipe copied by a goroutine, so a check
// right after the answer must wait for it.
func (in *instance) waitLog(s string, timeout time.Duration) bool {
	return testenv.Poll(timeout, func() bool { return strings.Contains(in.stderr.String(), s) })
}

// stop sends SIGTERM and waits for a clean exit; it returns stderr.
func (in *instance) stop() string {
	in.t.Helper()
	in.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-in.exited:
		if err != nil {
			in.t.Fatalf("wharf exited with %v after SIGTERM:\n%s", err, in.stderr.String())
		}
	case <-time.After(30 * time.Second):
		in.t.Fatalf("wharf did not exit within 30s of SIGTERM:\n%s", in.stderr.String())
	}
	return in.stderr.String()
}

// metric returns the sum of the series of name whose labels contain every
// given `k="v"` fragment, read from /metrics.
func (in *instance) metric(name string, labels ...string) float64 {
	in.t.Helper()
	_, sum := series(in.scrape(), name, labels...)
	return sum
}

// scrape returns /metrics as text.
func (in *instance) scrape() string {
	in.t.Helper()
	resp, err := http.Get("http://" + in.admin + "/metrics")
	if err != nil {
		in.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		in.t.Fatal(err)
	}
	return string(b)
}

// series reports whether the metrics text body has a series of name
// whose labels contain every `k="v"` fragment, and the sum of their
// values.
func series(body, name string, labels ...string) (found bool, sum float64) {
	for line := range strings.Lines(body) {
		line = strings.TrimSuffix(line, "\n")
		if strings.HasPrefix(line, "#") || !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(rest, l)
		}
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			continue
		}
		found = true
		sum += v
	}
	return found, sum
}

// waitMetric polls until metric name reaches want or timeout passes.
func (in *instance) waitMetric(want float64, timeout time.Duration, name string, labels ...string) float64 {
	in.t.Helper()
	var v float64
	testenv.Poll(timeout, func() bool {
		v = in.metric(name, labels...)
		return v >= want
	})
	return v
}

// readLines waits until path has at least n lines (or timeout) and returns
// the lines.
func readLines(t *testing.T, path string, n int, timeout time.Duration) []string {
	t.Helper()
	var lines []string
	testenv.Poll(timeout, func() bool {
		data, _ := os.ReadFile(path)
		lines = splitLines(data)
		return len(lines) >= n
	})
	return lines
}

// waitLinesWith waits until path has at least n lines containing sub (or
// timeout) and returns those lines: a collector's file that other runs may
// share.
func waitLinesWith(path, sub string, n int, timeout time.Duration) []string {
	var got []string
	testenv.Poll(timeout, func() bool {
		data, _ := os.ReadFile(path)
		got = got[:0]
		for _, l := range splitLines(data) {
			if strings.Contains(l, sub) {
				got = append(got, l)
			}
		}
		return len(got) >= n
	})
	return got
}

func splitLines(data []byte) []string {
	s := strings.TrimRight(string(data), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// jsonRecord decodes one line of a json-encoded file sink.
func jsonRecord(t *testing.T, line string) map[string]any {
	t.Helper()
	var rec map[string]any
	if err := json.Unmarshal([]byte(line), &rec); err != nil {
		t.Fatalf("file sink line is not JSON: %v\n%s", err, line)
	}
	return rec
}

// sendTCP writes msgs to addr, octet-counted, in large writes.
func sendTCP(t *testing.T, addr string, msgs []string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w := bufio.NewWriterSize(c, 64<<10)
	for _, m := range msgs {
		fmt.Fprintf(w, "%d %s", len(m), m)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
}

var _ = io.Discard

// sendRaw writes s to a new TCP connection to addr and closes it.
func sendRaw(t *testing.T, addr, s string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatal(err)
	}
}
