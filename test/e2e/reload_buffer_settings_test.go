package e2e

import (
	"fmt"
	"net"
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

// The README: in [sink.NAME.buffer], "max_bytes, segment_bytes and
// on_full change by reload too, applied to the open buffer ..., and so
// do fsync and fsync_interval". TestReloadBufferLimits covers max_bytes
// and on_full; these two the rest, on the running binary.

// segmentSizes returns the segment files of the buffer in dir by first
// sequence number (their name), with their sizes.
func segmentSizes(t *testing.T, dir string) (bases []uint64, size map[uint64]int64) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	size = map[uint64]int64{}
	for _, e := range ents {
		base, err := strconv.ParseUint(strings.TrimSuffix(e.Name(), ".seg"), 10, 64)
		if !strings.HasSuffix(e.Name(), ".seg") || err != nil {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		bases = append(bases, base) // ReadDir sorts by name: by base
		size[base] = fi.Size()
	}
	return bases, size
}

// TestReloadBufferSegmentBytes: segment_bytes changed by reload applies
// to the open buffer, the segment being written included: with the
// collector down (every record stays on disk), 16 KiB segments, then
// after a reload to 64 KiB the segment written at the reload and every
// later one filled to 64 KiB, then after a reload to 8 KiB the new ones
// to 8 KiB (the one being written at the reload, already past 8 KiB,
// closed as it was). Once the collector is up every message arrives
// once. A segment counts as filled when within a record (1 KiB here)
// of the bound.
func TestReloadBufferSegmentBytes(t *testing.T) {
	port := testenv.FreePort(t)
	col := &switchedCollector{addr: testenv.ClosedAddr(t)}
	dir := t.TempDir()
	bufDir := filepath.Join(dir, "buf")
	admin := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cfg := func(seg string) string {
		return bufferedSinkConfig(admin, port, col.addr, bufDir, "4MiB") + fmt.Sprintf("segment_bytes = %q\nfsync = \"never\"\n", seg)
	}
	in := startIn(t, dir, admin, cfg("16KiB"))
	sent := 0
	send := func(n int) {
		t.Helper()
		msgs := make([]string, n)
		for i := range msgs {
			msgs[i] = fmt.Sprintf("<13>1 2026-11-25T10:00:00Z h app - - - %s seq=%d", strings.Repeat("x", 100), sent+i)
		}
		sendTCP(t, fmt.Sprintf("127.0.0.1:%d", port), msgs)
		sent += n
		if got := in.waitMetric(float64(sent), 20*time.Second, "wharf_buffer_pending_records"); got != float64(sent) {
			t.Fatalf("%v of %d messages in the buffer", got, sent)
		}
	}
	reload := func(seg string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "wharf.toml"), []byte(cfg(seg)), 0o644); err != nil {
			t.Fatal(err)
		}
		if code, body := postReload(t, admin); code != 200 {
			t.Fatalf("reload to segment_bytes = %s: %d %s", seg, code, body)
		}
	}
	const slack = 1 << 10
	// check checks the segments from base from on against limit: none
	// over it, each but the last (being written) filled; it returns the
	// last one's base and how many were filled.
	check := func(phase string, from uint64, limit int64) (last uint64, filled int) {
		t.Helper()
		bases, size := segmentSizes(t, bufDir)
		var sizes []string
		for i, b := range bases {
			if b < from {
				continue
			}
			sizes = append(sizes, strconv.FormatInt(size[b], 10))
			if size[b] > limit {
				t.Errorf("%s: segment %d is %d bytes, over segment_bytes %d", phase, b, size[b], limit)
			}
			if i < len(bases)-1 {
				if size[b] <= limit-slack {
					t.Errorf("%s: segment %d closed at %d bytes, want %d less at most a record", phase, b, size[b], limit)
				}
				filled++
			}
			last = b
		}
		t.Logf("%s: segments from %d: %s bytes", phase, from, strings.Join(sizes, ", "))
		return last, filled
	}

	send(1000)
	active, filled := check("16 KiB", 0, 16<<10)
	if filled < 2 {
		t.Fatalf("16 KiB: %d segments filled, want 2 or more to tell the size", filled)
	}
	reload("64KiB")
	send(2000)
	next, filled := check("after the reload to 64 KiB", active, 64<<10)
	if filled < 2 {
		t.Fatalf("64 KiB: %d segments filled, want 2 or more", filled)
	}
	_, size := segmentSizes(t, bufDir)
	atReload := size[next]
	reload("8KiB")
	send(1000)
	_, filled = check("after the reload to 8 KiB", next+1, 8<<10)
	if filled < 2 {
		t.Fatalf("8 KiB: %d segments filled, want 2 or more", filled)
	}
	if _, size := segmentSizes(t, bufDir); size[next] != atReload {
		t.Errorf("the segment being written at the reload to 8 KiB went from %d to %d bytes, want it closed as it was", atReload, size[next])
	}
	col.up(t)
	defer col.down()
	waitLedger(t, &col.sink, "seq=", sent, 30*time.Second)
	if d := in.metric("wharf_sink_dropped_total"); d != 0 {
		t.Errorf("dropped %v messages across the changes", d)
	}
	in.stop()
}

// TestReloadBufferFsync: fsync and fsync_interval changed by reload apply
// to the open buffer, from the next append. wharf runs under strace,
// which counts the fsyncs of segment files while one message arrives
// every 50 ms for 2 s: none with fsync = "never"; one per append (about
// 40) after a reload to "always"; one per interval with data (about 4)
// after a reload to "interval" every 500ms; about 20 after a reload to
// 100ms. Skipped where strace cannot trace (not installed, or ptrace
// not allowed).
func TestReloadBufferFsync(t *testing.T) {
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Skip("strace not installed: the fsyncs cannot be counted")
	}
	if out, err := exec.Command(strace, "--seccomp-bpf", "-f", "-e", "trace=fsync", "-o", os.DevNull, "true").CombinedOutput(); err != nil {
		t.Skipf("strace cannot trace here: %v %s", err, out)
	}
	port := testenv.FreePort(t)
	col := &switchedCollector{addr: testenv.ClosedAddr(t)}
	dir := t.TempDir()
	bufDir := filepath.Join(dir, "buf")
	admin := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cfg := func(fsync, every string) string {
		return bufferedSinkConfig(admin, port, col.addr, bufDir, "64MiB") + fmt.Sprintf("segment_bytes = \"16MiB\"\nfsync = %q\nfsync_interval = %q\n", fsync, every)
	}
	// wharf under strace: the binary is a script that execs strace, which
	// starts wharf as its child.
	trace := filepath.Join(dir, "strace.out")
	script := filepath.Join(dir, "wharf-traced")
	if err := os.WriteFile(script, []byte(fmt.Sprintf("#!/bin/sh\nexec %s --seccomp-bpf -f -y -e trace=fsync,fdatasync -o %s %s \"$@\"\n", strace, trace, wharfBin)), 0o755); err != nil {
		t.Fatal(err)
	}
	bin := wharfBin
	wharfBin = script
	in := func() *instance {
		defer func() { wharfBin = bin }()
		return startIn(t, dir, admin, cfg("never", "1s"))
	}()
	// wharf is strace's child: stopped by its own pid.
	kids, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", in.cmd.Process.Pid, in.cmd.Process.Pid))
	pid, perr := strconv.Atoi(strings.TrimSpace(string(kids)))
	if err != nil || perr != nil {
		t.Fatalf("wharf's pid under strace: %q %v %v", kids, err, perr)
	}
	t.Cleanup(func() {
		if in.cmd.ProcessState == nil {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	// segFsyncs counts the fsyncs of segment files so far.
	segFsyncs := func() int {
		b, err := os.ReadFile(trace)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, l := range strings.Split(string(b), "\n") {
			if (strings.Contains(l, "fsync(") || strings.Contains(l, "fdatasync(")) && strings.Contains(l, ".seg>") {
				n++
			}
		}
		return n
	}
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sent := 0
	// phase sends a message every 50 ms for 2 s and returns the segment
	// fsyncs meanwhile (and in the 300 ms after, for the last interval).
	phase := func(name string, lo, hi int) {
		t.Helper()
		before := segFsyncs()
		for range 40 {
			m := fmt.Sprintf("<13>1 2026-11-25T10:00:00Z h app - - - fsync seq=%d", sent)
			if _, err := fmt.Fprintf(c, "%d %s", len(m), m); err != nil {
				t.Fatal(err)
			}
			sent++
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond)
		n := segFsyncs() - before
		if n < lo || n > hi {
			t.Errorf("%s: %d fsyncs of segments while 40 messages came in 2 s, want %d to %d", name, n, lo, hi)
		}
		t.Logf("%s: %d fsyncs of segments for 40 messages in 2 s", name, n)
	}
	reload := func(fsync, every string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "wharf.toml"), []byte(cfg(fsync, every)), 0o644); err != nil {
			t.Fatal(err)
		}
		if code, body := postReload(t, admin); code != 200 {
			t.Fatalf("reload to fsync = %s, fsync_interval = %s: %d %s", fsync, every, code, body)
		}
	}
	phase(`fsync = "never"`, 0, 0)
	reload("always", "1s")
	phase(`after the reload to "always"`, 30, 45)
	reload("interval", "500ms")
	phase(`after the reload to "interval", 500ms`, 3, 7)
	reload("interval", "100ms")
	phase(`after the reload to fsync_interval = 100ms`, 12, 26)
	if got := in.waitMetric(float64(sent), 10*time.Second, "wharf_buffer_pending_records"); got != float64(sent) {
		t.Errorf("%v of %d messages in the buffer", got, sent)
	}
	col.up(t)
	defer col.down()
	waitLedger(t, &col.sink, "seq=", sent, 30*time.Second)

	// A clean stop: SIGTERM to wharf, and strace exits with its status.
	syscall.Kill(pid, syscall.SIGTERM)
	select {
	case err := <-in.exited:
		if err != nil {
			t.Fatalf("wharf exited with %v after SIGTERM:\n%s", err, in.stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("wharf did not exit within 30s of SIGTERM:\n%s", in.stderr.String())
	}
}
