package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"wharf/internal/testenv"
)

// TestReloadSinkServerMetrics: a reload that changes a syslog sink (here
// only its batch_size) and adds another. Before, the per-server series
// (wharf_sink_server_up, _active, _failures_total, and the failovers,
// RELP and templated-file series) were registered at start only: after
// the reload they went on reading the retired sink (server_up stayed 1
// and failures frozen while the collector was down and the status page
// said "down"), and the added sink had none (audit). Now they follow the
// new sinks.
func TestReloadSinkServerMetrics(t *testing.T) {
	dir := t.TempDir()
	admin := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	port := testenv.FreePort(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	collector := ln.Addr().String()
	conns := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- c
			go func() { c.Read(make([]byte, 1<<20)) }() // read a little, then nothing: the test only needs it up
		}
	}()
	dead := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	conf := func(batch int, extra string) string {
		return fmt.Sprintf(`[admin]
listen = %q
[frontend.edge]
bind = ["tcp://127.0.0.1:%d"]
sinks = ["coll"]
[sink.coll]
type = "syslog"
servers = ["tcp://%s"]
batch_size = %d
dial_timeout = "200ms"
retry_backoff = "50ms"
retry_max_backoff = "200ms"
%s`, admin, port, collector, batch, extra)
	}
	in := startIn(t, dir, admin, conf(100, ""))
	server := `server="tcp://` + collector + `"`
	if v := in.metric("wharf_sink_server_up", `sink="coll"`, server); v != 1 {
		t.Fatalf("before the reload: server_up = %v, want 1", v)
	}

	next := conf(7, fmt.Sprintf("[sink.extra]\ntype = \"syslog\"\nservers = [\"tcp://%s\"]\n", dead))
	if err := os.WriteFile(filepath.Join(dir, "wharf.toml"), []byte(next), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, body := post(t, "http://"+admin+"/reload"); code != 200 {
		t.Fatalf("reload: %d %s", code, body)
	}
	if !testenv.Poll(5*time.Second, func() bool {
		return in.metric("wharf_sink_server_up", `sink="extra"`, `server="tcp://`+dead+`"`) == 0 &&
			in.metric("wharf_sink_server_failures_total", `sink="extra"`) > 0
	}) {
		t.Errorf("the sink added by the reload: server_up %v, failures %v; want series showing its dead server",
			in.metric("wharf_sink_server_up", `sink="extra"`), in.metric("wharf_sink_server_failures_total", `sink="extra"`))
	}

	// The collector goes away (listener and connections closed);
	// messages make the changed sink fail.
	ln.Close()
	for len(conns) > 0 {
		(<-conns).Close()
	}
	failures := in.metric("wharf_sink_server_failures_total", `sink="coll"`)
	msgs := make([]string, 10)
	for i := range msgs {
		msgs[i] = fmt.Sprintf("<13>1 2026-12-06T00:00:00Z h app - - - seq=%d", i)
	}
	sendTCP(t, fmt.Sprintf("127.0.0.1:%d", port), msgs)
	if !testenv.Poll(10*time.Second, func() bool {
		return in.metric("wharf_sink_server_up", `sink="coll"`, server) == 0 &&
			in.metric("wharf_sink_server_failures_total", `sink="coll"`) > failures
	}) {
		t.Errorf("changed sink with its collector gone: server_up %v, failures %v (were %v); want 0 and rising",
			in.metric("wharf_sink_server_up", `sink="coll"`, server), in.metric("wharf_sink_server_failures_total", `sink="coll"`), failures)
	}
	// No clean stop to check: the 10 messages cannot be delivered (exit 3).
}
