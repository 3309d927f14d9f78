package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"wharf/internal/testenv"
	"wharf/sinks/diskbuf"
)

// switchedCollector is an octet-counting TCP syslog receiver that can be
// taken down (listener and connections closed) and brought back on the
// same address.
type switchedCollector struct {
	addr string
	sink lineSink
	mu   sync.Mutex
	ln   net.Listener
	cs   []net.Conn
}

func (c *switchedCollector) up(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	c.ln = ln
	c.mu.Unlock()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.mu.Lock()
			c.cs = append(c.cs, conn)
			c.mu.Unlock()
			go func() {
				r := bufio.NewReaderSize(conn, 64<<10)
				for {
					var n int
					if _, err := fmt.Fscanf(r, "%d ", &n); err != nil {
						return
					}
					b := make([]byte, n)
					if _, err := io.ReadFull(r, b); err != nil {
						return
					}
					c.sink.mu.Lock()
					c.sink.msgs = append(c.sink.msgs, string(b))
					c.sink.mu.Unlock()
				}
			}()
		}
	}()
}

func (c *switchedCollector) down() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ln != nil {
		c.ln.Close()
		c.ln = nil
	}
	for _, conn := range c.cs {
		conn.Close()
	}
	c.cs = nil
}

// postReload asks wharf to reload its config file and returns the status
// and answer.
func postReload(t *testing.T, admin string) (int, string) {
	t.Helper()
	resp, err := http.Post("http://"+admin+"/reload", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitLedger waits until the collector holds every number of key below n.
func waitLedger(t *testing.T, s *lineSink, key string, n int, timeout time.Duration) {
	t.Helper()
	var got int
	all := testenv.Poll(timeout, func() bool {
		var foreign int
		got, _, foreign = ledger(s.snapshot(), key, n)
		if foreign > 0 {
			t.Fatalf("%d %s messages that were never sent", foreign, key)
		}
		return got == n
	})
	if !all {
		t.Fatalf("%d of %d %s messages delivered", got, n, key)
	}
}

// TestReloadRemoveAndAddBufferedSink guards against a buffered sink that
// was removed by a reload not being addable again by a reload ("buffer
// directory is locked") until a restart (#12). The sink is removed while
// its collector is down and 300 messages wait in its buffer, added back
// by the next reload at once (the removed runner still draining), and
// once the collector returns they arrive, with everything sent later.
func TestReloadRemoveAndAddBufferedSink(t *testing.T) {
	port := testenv.FreePort(t)
	col := &switchedCollector{addr: testenv.ClosedAddr(t)}
	col.up(t)
	defer col.down()
	dir := t.TempDir()
	admin := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	buffered := fmt.Sprintf(`
[admin]
listen = %q
[global]
shutdown_timeout = "30s"
[frontend.edge]
bind = ["tcp://127.0.0.1:%d"]
sinks = ["c"]
[sink.c]
type = "syslog"
servers = ["tcp://%s"]
dial_timeout = "200ms"
retry_backoff = "50ms"
retry_max_backoff = "200ms"
[sink.c.buffer]
dir = %q
[sink.f]
type = "file"
path = %q
`, admin, port, col.addr, filepath.Join(dir, "buf"), filepath.Join(dir, "f.log"))
	removed := strings.Replace(strings.Split(buffered, "[sink.c]")[0], `sinks = ["c"]`, `sinks = ["f"]`, 1) +
		fmt.Sprintf("[sink.f]\ntype = \"file\"\npath = %q\n", filepath.Join(dir, "f.log"))
	write := func(cfg string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "wharf.toml"), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	in := startIn(t, dir, admin, buffered)
	send := func(key string, n int) {
		t.Helper()
		msgs := make([]string, n)
		for i := range msgs {
			msgs[i] = fmt.Sprintf("<13>1 2026-11-25T10:00:00Z h app - - - %s%d", key, i)
		}
		sendTCP(t, fmt.Sprintf("127.0.0.1:%d", port), msgs)
	}
	send("one=", 100)
	waitLedger(t, &col.sink, "one=", 100, 20*time.Second)

	col.down()
	send("two=", 300)
	if got := in.waitMetric(300, 20*time.Second, "wharf_buffer_pending_records"); got != 300 {
		t.Fatalf("%v messages pending in the buffer, want 300", got)
	}
	write(removed)
	if code, body := postReload(t, admin); code != 200 {
		t.Fatalf("reload removing the buffered sink: %d %s", code, body)
	}
	write(buffered)
	if code, body := postReload(t, admin); code != 200 {
		t.Fatalf("reload adding the buffered sink back: %d %s", code, body)
	}
	col.up(t)
	waitLedger(t, &col.sink, "two=", 300, 30*time.Second)
	send("three=", 100)
	waitLedger(t, &col.sink, "three=", 100, 20*time.Second)
	if d := in.metric("wharf_sink_dropped_total"); d != 0 {
		t.Errorf("dropped %v messages across remove and re-add", d)
	}
	received := in.metric("wharf_frontend_received_total")
	if received != 500 {
		t.Errorf("wharf read %v messages, sent 500", received)
	}
	in.stop()
}

// TestReloadChangeBufferedSink: a buffered sink's settings (here its
// server) change by reload while its buffer table stays: the new runner
// takes the open buffer over, and the 200 messages waiting in it for the
// old, unreachable server reach the new one, with everything sent after.
// Its fsync policy changes by reload on the open buffer, as its limits
// do (TestReloadBufferLimits).
func TestReloadChangeBufferedSink(t *testing.T) {
	port := testenv.FreePort(t)
	oldCol := &switchedCollector{addr: testenv.ClosedAddr(t)} // never up
	newCol := &switchedCollector{addr: testenv.ClosedAddr(t)}
	newCol.up(t)
	defer newCol.down()
	dir := t.TempDir()
	admin := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cfg := func(server, maxBytes string) string {
		return bufferedSinkConfig(admin, port, server, filepath.Join(dir, "buf"), maxBytes)
	}
	write := func(c string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "wharf.toml"), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	in := startIn(t, dir, admin, cfg(oldCol.addr, "64MiB"))
	send := func(key string, n int) {
		t.Helper()
		msgs := make([]string, n)
		for i := range msgs {
			msgs[i] = fmt.Sprintf("<13>1 2026-11-25T10:00:00Z h app - - - %s%d", key, i)
		}
		sendTCP(t, fmt.Sprintf("127.0.0.1:%d", port), msgs)
	}
	send("one=", 200)
	if got := in.waitMetric(200, 20*time.Second, "wharf_buffer_pending_records"); got != 200 {
		t.Fatalf("%v messages pending in the buffer, want 200", got)
	}
	// fsync changes on the open buffer: the runner stays, nothing is
	// delivered twice.
	write(cfg(oldCol.addr, "64MiB") + "fsync = \"always\"\n")
	if code, body := postReload(t, admin); code != 200 {
		t.Fatalf("reload changing the buffer's fsync: %d %s", code, body)
	}
	if !in.waitLog(`fsync=always`, 5*time.Second) {
		t.Fatalf("no log line about the new fsync policy:\n%s", in.stderr.String())
	}
	write(cfg(newCol.addr, "64MiB") + "fsync = \"always\"\n")
	if code, body := postReload(t, admin); code != 200 {
		t.Fatalf("reload changing the buffered sink's server: %d %s", code, body)
	}
	waitLedger(t, &newCol.sink, "one=", 200, 20*time.Second)
	send("two=", 100)
	waitLedger(t, &newCol.sink, "two=", 100, 20*time.Second)
	if d := in.metric("wharf_sink_dropped_total"); d != 0 {
		t.Errorf("dropped %v messages across the change", d)
	}
	if !testenv.Poll(5*time.Second, func() bool { return in.metric("wharf_buffer_pending_records") == 0 }) {
		t.Fatalf("wharf_buffer_pending_records = %v after delivery", in.metric("wharf_buffer_pending_records"))
	}
	in.stop()
}

// TestReloadNewBufferDir: a reload gives a buffered sink a new dir while
// 300 messages wait in the old one for a collector that is down (longer
// than shutdown_timeout), and a sender goes on writing through the
// reload. Before, the old runner gave up at shutdown_timeout and the 300
// stayed in the old directory for good (the sink never read it again).
// Now the old buffer's records move into the new one and every message
// arrives once the collector is up: none dropped, the old directory
// without a record, the move logged.
func TestReloadNewBufferDir(t *testing.T) {
	port := testenv.FreePort(t)
	col := &switchedCollector{addr: testenv.ClosedAddr(t)}
	defer col.down()
	dir := t.TempDir()
	admin := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	oldDir, newDir := filepath.Join(dir, "buf-old"), filepath.Join(dir, "buf-new")
	write := func(c string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "wharf.toml"), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A removed sink's runner drains for shutdown_timeout: the collector
	// stays down longer than that.
	cfg := func(bufDir string) string {
		return bufferedSinkConfig(admin, port, col.addr, bufDir, "64MiB") + "[global]\nshutdown_timeout = \"1s\"\n"
	}
	in := startIn(t, dir, admin, cfg(oldDir))
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	msgs := func(key string, n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("<13>1 2026-11-25T10:00:00Z h app - - - %s%d", key, i)
		}
		return out
	}
	sendTCP(t, addr, msgs("one=", 300))
	if got := in.waitMetric(300, 20*time.Second, "wharf_buffer_pending_records"); got != 300 {
		t.Fatalf("%v messages pending in the buffer, want 300", got)
	}

	// A sender writing across the reload: 2,000 messages over about a
	// second, in small writes.
	during := msgs("two=", 2000)
	sent := make(chan error, 1)
	go func() {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			sent <- err
			return
		}
		defer c.Close()
		for i, m := range during {
			if _, err := fmt.Fprintf(c, "%d %s", len(m), m); err != nil {
				sent <- err
				return
			}
			if i%20 == 0 {
				time.Sleep(10 * time.Millisecond)
			}
		}
		sent <- nil
	}()
	time.Sleep(300 * time.Millisecond)
	write(cfg(newDir))
	if code, body := postReload(t, admin); code != 200 {
		t.Fatalf("reload giving the buffered sink a new dir: %d %s", code, body)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // past shutdown_timeout
	col.up(t)
	waitLedger(t, &col.sink, "one=", 300, 30*time.Second)
	waitLedger(t, &col.sink, "two=", 2000, 30*time.Second)
	if d := in.metric("wharf_sink_dropped_total"); d != 0 {
		t.Errorf("dropped %v messages across the new dir", d)
	}
	if !testenv.Poll(5*time.Second, func() bool { return in.metric("wharf_buffer_pending_records") == 0 }) {
		t.Errorf("wharf_buffer_pending_records = %v after delivery", in.metric("wharf_buffer_pending_records"))
	}
	if !in.waitLog("moved the records of its old buffer dir", 5*time.Second) {
		t.Errorf("no log line about the move:\n%s", in.stderr.String())
	}
	in.stop()
	// What a restart on the old dir would hand out again: nothing.
	rep, err := diskbuf.Verify(oldDir)
	if err != nil || rep.Pending != 0 || rep.Records == 0 {
		t.Fatalf("old buffer dir after the move: %+v, %v; want its records all confirmed", rep, err)
	}
}

// TestReloadBufferLimits: the [sink.NAME.buffer] table of a running
// buffered sink changed by reload. The collector is down and the buffer
// (64 KiB) full, so wharf holds the TCP sender back; the reload applies
// the change to the open buffer (same runner, nothing replayed) and wharf
// reads the rest:
//   - max_bytes raised to 64 MiB: once the collector is up every message
//     arrives once. Before, any change of the table needed a restart.
//   - on_full = "drop_newest": what does not fit is dropped and counted
//     (queue_full), and every message is either delivered or counted.
func TestReloadBufferLimits(t *testing.T) {
	for _, tc := range []struct {
		name, maxBytes, extra string
		drops                 bool
	}{
		{"max_bytes", "64MiB", "", false},
		{"on_full", "64KiB", "on_full = \"drop_newest\"\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := testenv.FreePort(t)
			col := &switchedCollector{addr: testenv.ClosedAddr(t)}
			dir := t.TempDir()
			admin := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
			cfg := func(maxBytes, extra string) string {
				return bufferedSinkConfig(admin, port, col.addr, filepath.Join(dir, "buf"), maxBytes) + "segment_bytes = \"16KiB\"\n" + extra
			}
			if err := os.WriteFile(filepath.Join(dir, "wharf.toml"), []byte(cfg("64KiB", "")), 0o644); err != nil {
				t.Fatal(err)
			}
			in := startIn(t, dir, admin, cfg("64KiB", ""))
			const n = 50000
			sent := make(chan struct{})
			go func() {
				defer close(sent)
				msgs := make([]string, n)
				for i := range msgs {
					msgs[i] = fmt.Sprintf("<13>1 2026-11-25T10:00:00Z h app - - - %s seq=%d", strings.Repeat("x", 100), i)
				}
				sendTCP(t, fmt.Sprintf("127.0.0.1:%d", port), msgs)
			}()
			// Held back: what wharf read stops growing well short of n.
			var held float64
			if !testenv.Poll(10*time.Second, func() bool {
				r := in.metric("wharf_frontend_received_total")
				stable := r > 0 && r == held
				held = r
				time.Sleep(300 * time.Millisecond)
				return stable
			}) || held >= n {
				t.Fatalf("wharf read %v of %d with a full 64 KiB buffer: not held back", held, n)
			}
			if err := os.WriteFile(filepath.Join(dir, "wharf.toml"), []byte(cfg(tc.maxBytes, tc.extra)), 0o644); err != nil {
				t.Fatal(err)
			}
			if code, body := postReload(t, admin); code != 200 {
				t.Fatalf("reload changing %s: %d %s", tc.name, code, body)
			}
			if got := in.waitMetric(n, 20*time.Second, "wharf_frontend_received_total"); got != n {
				t.Fatalf("after the reload wharf read %v of %d (held at %v before)", got, n, held)
			}
			<-sent
			col.up(t)
			defer col.down()
			if !tc.drops {
				waitLedger(t, &col.sink, "seq=", n, 30*time.Second)
				if d := in.metric("wharf_sink_dropped_total"); d != 0 {
					t.Errorf("dropped %v messages across the change", d)
				}
				t.Logf("held back at %v of %d messages with 64 KiB; all %d read and delivered after the reload to 64 MiB", held, n, n)
				in.stop()
				return
			}
			dropped := in.metric("wharf_sink_dropped_total", `reason="queue_full"`)
			if dropped == 0 || dropped >= n {
				t.Fatalf("queue_full drops after on_full = drop_newest: %v of %d", dropped, n)
			}
			var got, dups int
			testenv.Poll(30*time.Second, func() bool {
				got, dups, _ = ledger(col.sink.snapshot(), "seq=", n)
				return got+int(dropped) >= n
			})
			if got+int(dropped) != n || dups != 0 {
				t.Fatalf("delivered %d (%d duplicates) + dropped %v != %d sent", got, dups, dropped, n)
			}
			t.Logf("held back at %v of %d; after on_full = drop_newest: %d delivered, %v dropped (queue_full)", held, n, got, dropped)
			in.stop()
		})
	}
}

// bufferedSinkConfig is a TCP bind into syslog sink "c" (server, quick
// retries) with a disk buffer in dir; the buffer table is last, so keys
// can be appended to it.
func bufferedSinkConfig(admin string, port int, server, dir, maxBytes string) string {
	return fmt.Sprintf(`
[admin]
listen = %q
[frontend.edge]
bind = ["tcp://127.0.0.1:%d"]
sinks = ["c"]
[sink.c]
type = "syslog"
servers = ["tcp://%s"]
dial_timeout = "200ms"
retry_backoff = "50ms"
retry_max_backoff = "200ms"
[sink.c.buffer]
dir = %q
max_bytes = %q
`, admin, port, server, dir, maxBytes)
}

// TestReloadChangedSinkOldCollectorDown: a sink with a memory queue whose
// collector is down is pointed at a new one by reload. Everything
// waiting reaches the new collector, including the batch the old runner
// was retrying when the reload came; before, that batch was retried on
// the dead collector until shutdown_timeout and dropped as "shutdown"
// (an audit: 1,000 of 3,000 lost while wharf kept running).
func TestReloadChangedSinkOldCollectorDown(t *testing.T) {
	port := testenv.FreePort(t)
	oldCol := &switchedCollector{addr: testenv.ClosedAddr(t)} // never up
	newCol := &switchedCollector{addr: testenv.ClosedAddr(t)}
	newCol.up(t)
	defer newCol.down()
	dir := t.TempDir()
	admin := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cfg := func(server string) string {
		return fmt.Sprintf("[global]\nshutdown_timeout = \"2s\"\n[admin]\nlisten = %q\n[frontend.edge]\nbind = [\"tcp://127.0.0.1:%d\"]\nsinks = [\"c\"]\n[sink.c]\ntype = \"syslog\"\nservers = [\"tcp://%s\"]\nencoding = \"raw\"\n", admin, port, server)
	}
	in := startIn(t, dir, admin, cfg(oldCol.addr))
	const n = 3000
	msgs := make([]string, n)
	for i := range msgs {
		msgs[i] = fmt.Sprintf("<13>1 2026-12-06T03:00:00Z h app - - - one=%d", i)
	}
	sendTCP(t, fmt.Sprintf("127.0.0.1:%d", port), msgs)
	if got := in.waitMetric(n, 20*time.Second, "wharf_frontend_received_total"); got != n {
		t.Fatalf("wharf read %v of %d", got, n)
	}
	if !testenv.Poll(10*time.Second, func() bool { return in.metric("wharf_sink_write_errors_total") > 0 }) {
		t.Fatal("no failed write to the dead collector")
	}
	if err := os.WriteFile(filepath.Join(dir, "wharf.toml"), []byte(cfg(newCol.addr)), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, body := postReload(t, admin); code != 200 {
		t.Fatalf("reload: %d %s", code, body)
	}
	waitLedger(t, &newCol.sink, "one=", n, 20*time.Second)
	if d := in.metric("wharf_sink_dropped_total"); d != 0 {
		t.Errorf("dropped %v messages across the reload", d)
	}
	in.stop()
}
