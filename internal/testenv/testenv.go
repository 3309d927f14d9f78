// Package testenv tells tests which real peers (Kafka, syslog-ng, kcat...)
// the test scripts started, and how to reach them.
//
// `make test` starts the peers and exports WHARF_INTEGRATION=1 plus one
// variable per peer. Under WHARF_INTEGRATION a missing peer fails the test:
// it must never pass by skipping. A plain `go test ./...` without the
// scripts skips peer tests, so unit tests stay fast and self-contained.
package testenv

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"sync"
	"testing"
)

// Integration reports whether the real-peer suite is on.
func Integration() bool { return os.Getenv("WHARF_INTEGRATION") != "" }

// Env returns the value of the environment variable key, which the test
// scripts set for a running peer (for example WHARF_KAFKA_BROKERS). Without
// it the test is skipped, or failed under WHARF_INTEGRATION.
func Env(t testing.TB, key string) string {
	t.Helper()
	v := os.Getenv(key)
	if v == "" {
		missing(t, "environment variable "+key+" is not set (the peer was not started by make test)")
	}
	return v
}

// Tool returns the path of an executable, skipping (or, under
// WHARF_INTEGRATION, failing) the test when it is not installed.
func Tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		missing(t, name+" is not installed ("+err.Error()+"); .ci/run installs it")
	}
	return p
}

func missing(t testing.TB, why string) {
	t.Helper()
	if Integration() {
		t.Fatalf("real peer required under WHARF_INTEGRATION: %s", why)
	}
	t.Skipf("skipping: %s", why)
}

// FreePort returns a port on 127.0.0.1 that was free for both TCP and UDP
// a moment ago, and that no earlier FreePort call of this process
// returned: the kernel may hand a port just closed out again, and two
// FreePort calls for one config (a bind and the admin listener) once got
// the same one.
//
// The port is drawn at random from 10000-18999 and 20000-28999: below
// the kernel's ephemeral range (32768-60999), which every outgoing
// connection draws from, so none can take the port between this check
// and the test's bind (CI, 2026-12-06: rsyslogd "Address already in
// use" on a port FreePort had given, with load tests connecting
// meanwhile), and clear of the test Kafka brokers (19092-19094,
// 29092-29104).
func FreePort(t testing.TB) int {
	t.Helper()
	var last error
	for range 500 {
		port := 10000 + rand.IntN(18000)
		if port >= 19000 {
			port += 1000
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			last = err
			continue
		}
		pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		ln.Close()
		if err != nil {
			last = err
			continue
		}
		pc.Close()
		if portsGiven.take(port) {
			return port
		}
	}
	t.Fatalf("no port free for both TCP and UDP on 127.0.0.1 in 10000-28999 (last error: %v)", last)
	return 0
}

// portSet is the set of ports FreePort returned in this process.
type portSet struct {
	mu sync.Mutex
	m  map[int]bool
}

var portsGiven = portSet{m: map[int]bool{}}

// take records port as given and reports whether it was not before.
func (g *portSet) take(port int) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.m[port] {
		return false
	}
	g.m[port] = true
	return true
}

// ClosedAddr returns a 127.0.0.1 address nothing listens on (a moment ago).
func ClosedAddr(t testing.TB) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", FreePort(t))
}

// SyncBuffer is a bytes.Buffer safe for concurrent use: a child process's
// stderr, written by exec's copying goroutine, or a logger written from
// many goroutines, read by the test.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Len is the number of bytes written so far.
func (s *SyncBuffer) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Len()
}

// RemoveDirAtOnce deletes dir as "mv dir dir.removed && rm -rf
// dir.removed" does: its names are gone in one step. A plain
// os.RemoveAll of a directory a running component writes into races with
// it: once RemoveAll has unlinked a file the component watches (a disk
// buffer's active segment), the component may make new files there
// before RemoveAll's rmdir, which then fails with "directory not empty".
func RemoveDirAtOnce(t testing.TB, dir string) {
	t.Helper()
	gone := dir + ".removed"
	if err := os.Rename(dir, gone); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(gone); err != nil {
		t.Fatal(err)
	}
}

// ServeEach runs handle, each in its own goroutine, on every connection
// accepted on ln until ln is closed, which happens at the test's end at
// the latest. handle owns its connection.
func ServeEach(t testing.TB, ln net.Listener, handle func(net.Conn)) {
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
}
