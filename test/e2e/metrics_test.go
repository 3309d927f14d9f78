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

	"wharf/internal/promcheck"
	"wharf/internal/testenv"
)

// metricsConfig has one of everything that exports series: tcp, udp and
// relp binds with a dead-letter file, a file sink, a disk-buffered syslog sink
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
	tcpPort, udpPort, relpPort, ptPort, webPort := testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)
	dead1, dead2 := testenv.ClosedAddr(t), testenv.ClosedAddr(t)
	in := start(t, fmt.Sprintf(metricsConfig, tcpPort, udpPort, relpPort, dead1, dead2, ptPort, webPort, dead1))
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
		"wharf_sink_failovers_total", "wharf_frontend_udp_kernel_drops_total", "wharf_buffer_corrupt_records_total",
		"wharf_buffer_torn_tails_total", "wharf_buffer_dropped_full_total", "wharf_config_reloads_total",
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
	} {
		if line := fmt.Sprintf(frag, tcpPort); !strings.Contains(string(body), line+"\n") {
			t.Errorf("/metrics lacks %s", line)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", body)
	}

	// Every metric the dashboard queries is served.
	for _, name := range dashboardMetrics(t, "../../deploy/grafana-wharf.json") {
		if mfs[name] == nil {
			t.Errorf("deploy/grafana-wharf.json queries %s, which /metrics does not have", name)
		}
	}
}

// dashboardMetrics returns the metric names in the dashboard's queries
// (panel targets and template variables), histogram suffixes removed.
func dashboardMetrics(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var exprs []string
	var walk func(v any, key string)
	walk = func(v any, key string) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				walk(e, k)
			}
		case []any:
			for _, e := range v {
				walk(e, key)
			}
		case string:
			if key == "expr" || key == "definition" {
				exprs = append(exprs, v)
			}
		}
	}
	walk(doc, "")
	if len(exprs) < 20 {
		t.Fatalf("%s: only %d queries found", path, len(exprs))
	}
	metric := regexp.MustCompile(`\b(?:wharf|go|process)_[a-z0-9_]+\b`)
	set := map[string]bool{}
	for _, e := range exprs {
		for _, m := range metric.FindAllString(e, -1) {
			m = strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_sum"), "_count")
			set[m] = true
		}
	}
	out := make([]string, 0, len(set))
	for m := range set {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}
