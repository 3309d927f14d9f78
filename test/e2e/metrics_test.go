package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"wharf/admin"
	"wharf/internal/promcheck"
	"wharf/internal/testenv"
	"wharf/internal/testpki"
)

// metricsConfig has one of everything that exports series: tcp, udp,
// relp and tls binds with a dead-letter file, a file sink, a disk-buffered syslog sink
// with two (dead) servers, and tcp and http proxy frontends.
const metricsConfig = `
[admin]
listen = "{{ADMIN}}"
[frontend.edge]
bind = ["tcp://127.0.0.1:%d", "udp://127.0.0.1:%d", "relp://127.0.0.1:%d"]
sinks = ["out", "fwd"]
dead_letter = "{{DIR}}/dead.jsonl"
[sink.out]
type = "file"
path = "{{DIR}}/out.log"
[sink.fwd]
type = "syslog"
servers = ["tcp://%s", "tcp://%s"]
dial_timeout = "200ms"
retry_backoff = "50ms"
retry_max_backoff = "200ms"
[sink.fwd.buffer]
dir = "{{DIR}}/buf"
[frontend.sec]
bind = ["tls://127.0.0.1:%d"]
tls_cert = %q
tls_key = %q
sinks = ["out"]
[frontend.pt]
mode = "tcp"
bind = ["tcp://127.0.0.1:%d"]
backend = "b"
[frontend.web]
mode = "http"
bind = ["tcp://127.0.0.1:%d"]
backend = "b"
[backend.b]
server = [{ address = "%s", name = "s1" }]
`

// TestMetricsExposition GETs /metrics from a running wharf, as Prometheus
// does, and checks it against the text format's rules and promlint (HELP
// and TYPE for every family, _total on counters and only on them, no
// duplicate series), that the runtime, build and histogram series are
// there, and that every metric the Grafana dashboard in deploy/ queries
// exists.
func TestMetricsExposition(t *testing.T) {
	tcpPort, udpPort, relpPort, tlsPort, ptPort, webPort := testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)
	dead1, dead2 := testenv.ClosedAddr(t), testenv.ClosedAddr(t)
	_, certFile, keyFile := testpki.NewCA(t, "metrics test CA").ServerCert(t, "localhost")
	in := start(t, fmt.Sprintf(metricsConfig, tcpPort, udpPort, relpPort, dead1, dead2, tlsPort, certFile, keyFile, ptPort, webPort, dead1))
	msgs := []string{"<13>1 2026-11-25T10:00:00Z h app - - - one", "<13>1 2026-11-25T10:00:00Z h app - - - two"}
	sendTCP(t, fmt.Sprintf("127.0.0.1:%d", tcpPort), msgs)
	u, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", udpPort))
	if err != nil {
		t.Fatal(err)
	}
	u.Write([]byte(msgs[0]))
	u.Close()
	if got := in.waitMetric(2, 20*time.Second, "wharf_sink_sent_total", `sink="out"`); got < 2 {
		t.Fatalf("file sink sent %v", got)
	}

	// Plain text, as a scraper that does not ask for gzip reads it.
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	resp, err := client.Get("http://" + in.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Fatalf("GET /metrics: %d %q", resp.StatusCode, ct)
	}
	mfs, problems := promcheck.Check(body)
	for _, p := range problems {
		t.Error(p)
	}
	for _, name := range []string{
		"go_goroutines", "go_memstats_heap_inuse_bytes", "process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds",
		"wharf_build_info", "wharf_sink_write_duration_seconds", "wharf_sink_delivery_delay_seconds",
		"wharf_sink_failovers_total", "wharf_sink_server_active", "wharf_sink_server_up", "wharf_sink_server_failures_total", "wharf_frontend_udp_kernel_drops_total", "wharf_buffer_corrupt_records_total",
		"wharf_buffer_torn_tails_total", "wharf_buffer_lost_records_total", "wharf_buffer_removals_total", "wharf_buffer_dropped_full_total", "wharf_buffer_sync_errors_total", "wharf_config_reloads_total",
		"wharf_relp_sessions", "wharf_relp_acks_sent_total",
	} {
		if mfs[name] == nil {
			t.Errorf("/metrics has no %s", name)
		}
	}
	// Reason series exist at 0 before anything was dropped.
	for _, frag := range []string{
		`wharf_frontend_dropped_total{bind="tcp://127.0.0.1:%d",frontend="edge",reason="no_route"} 0`,
		`wharf_frontend_rejected_total{bind="tcp://127.0.0.1:%d",frontend="edge",reason="maxconn"} 0`,
		`wharf_frontend_closed_total{bind="tcp://127.0.0.1:%d",frontend="edge",reason="idle_timeout"} 0`,
		`wharf_frontend_rejected_total{bind="tls://127.0.0.1:%d",frontend="sec",reason="tls_handshake"} 0`,
		`wharf_frontend_closed_total{bind="relp://127.0.0.1:%d",frontend="edge",reason="relp_frame"} 0`,
		`wharf_frontend_closed_total{bind="relp://127.0.0.1:%d",frontend="edge",reason="relp_not_delivered"} 0`,
	} {
		port := tcpPort
		if strings.Contains(frag, "tls://") {
			port = tlsPort
		}
		if strings.Contains(frag, "relp://") {
			port = relpPort
		}
		if line := fmt.Sprintf(frag, port); !strings.Contains(string(body), line+"\n") {
			t.Errorf("/metrics lacks %s", line)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", body)
	}

	// /api/status has a row for every bind, sink, proxy frontend and
	// server, from their typed stats, agreeing with /metrics.
	resp, err = http.Get("http://" + in.admin + "/api/status")
	if err != nil {
		t.Fatal(err)
	}
	var st admin.StatusReport
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Binds) != 4 || len(st.Sinks) != 2 || len(st.Proxies) != 2 || len(st.Servers) != 1 {
		t.Errorf("/api/status rows: %d binds, %d sinks, %d proxies, %d servers; want 4, 2, 2, 1", len(st.Binds), len(st.Sinks), len(st.Proxies), len(st.Servers))
	}
	for _, p := range st.Proxies {
		if _, ok := p.Metrics["connections_total"]; !ok || (p.Frontend != "pt" && p.Frontend != "web") {
			t.Errorf("proxy row %+v", p)
		}
	}
	for _, s := range st.Sinks {
		if s.Sink == "out" && float64(s.Sent) != in.metric("wharf_sink_sent_total", `sink="out"`) {
			t.Errorf("sink out: /api/status sent %d, /metrics %v", s.Sent, in.metric("wharf_sink_sent_total", `sink="out"`))
		}
	}

	// Every metric the dashboard queries is served, and every label it
	// groups by or shows in a legend is on one of the query's metrics.
	for _, q := range dashboardQueries(t, "../../deploy/grafana-wharf.json") {
		labels := map[string]bool{"instance": true, "job": true, "le": true}
		for _, name := range q.metrics {
			mf := mfs[name]
			if mf == nil {
				t.Errorf("deploy/grafana-wharf.json queries %s, which /metrics does not have", name)
				continue
			}
			for _, m := range mf.Metric {
				for _, lp := range m.Label {
					labels[lp.GetName()] = true
				}
			}
		}
		for _, l := range q.labels {
			if !labels[l] {
				t.Errorf("deploy/grafana-wharf.json: %q uses label %q, which none of %v has", q.expr, l, q.metrics)
			}
		}
	}
}

// dashQuery is one query of the dashboard: its metrics (histogram
// suffixes removed) and the labels it groups by or names in its legend.
type dashQuery struct {
	expr            string
	metrics, labels []string
}

// dashboardQueries returns the dashboard's queries (panel targets and
// template variables).
func dashboardQueries(t *testing.T, path string) []dashQuery {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out []dashQuery
	metric := regexp.MustCompile(`\b(?:wharf|go|process)_[a-z0-9_]+\b`)
	by := regexp.MustCompile(`\b(?:by|on)\s*\(([^)]*)\)`)
	legend := regexp.MustCompile(`\{\{\s*([a-z_]+)\s*\}\}`)
	add := func(expr, legendFormat string) {
		q := dashQuery{expr: expr}
		seen := map[string]bool{}
		for _, m := range metric.FindAllString(expr, -1) {
			m = strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_sum"), "_count")
			if !seen[m] {
				seen[m] = true
				q.metrics = append(q.metrics, m)
			}
		}
		for _, g := range by.FindAllStringSubmatch(expr, -1) {
			for _, l := range strings.Split(g[1], ",") {
				if l = strings.TrimSpace(l); l != "" {
					q.labels = append(q.labels, l)
				}
			}
		}
		for _, g := range legend.FindAllStringSubmatch(legendFormat, -1) {
			q.labels = append(q.labels, g[1])
		}
		out = append(out, q)
	}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if e, ok := v["expr"].(string); ok {
				lf, _ := v["legendFormat"].(string)
				add(e, lf)
			}
			if e, ok := v["definition"].(string); ok {
				add(e, "")
			}
			for _, e := range v {
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(doc)
	if len(out) < 20 {
		t.Fatalf("%s: only %d queries found", path, len(out))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].expr < out[j].expr })
	return out
}
