package compare

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"wharf/internal/testenv"
)

// TestMain lets the test binary stand in for "wharf-bench splice", so the
// smoke test runs the byte-copy relay as a real separate process.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "splice" {
		fs := flag.NewFlagSet("splice", flag.ExitOnError)
		listen := fs.String("listen", "", "")
		to := fs.String("to", "", "")
		fs.Parse(os.Args[2:])
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := Splice(ctx, *listen, *to); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestSmoke runs the whole harness for a second against the byte-copy
// relay (and socat, where installed) and checks the measurements, the
// order of the runs (in rounds) and the files written.
func TestSmoke(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	relays := []string{"byte-copy", "wharf"}
	_, socatErr := exec.LookPath("socat")
	if socatErr == nil {
		relays = append(relays, "socat")
	}
	var log strings.Builder
	res, err := Compare(context.Background(), Options{Root: t.TempDir(), Exe: exe, Runs: 2, TCPDuration: time.Second,
		Scenarios: []string{"tcp"}, Relays: relays, Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Scenarios) != 1 || len(res.Scenarios[0].Rows) != len(relays) {
		t.Fatalf("results %+v", res)
	}
	// Runs go in rounds: every relay's first run before any second one.
	var order []string
	for _, line := range strings.Split(log.String(), "\n") {
		if f := strings.Fields(line); len(f) >= 4 && f[2] == "run" {
			order = append(order, f[1]+" "+strings.TrimSuffix(f[3], ":"))
		}
	}
	want := []string{"byte-copy 1", "byte-copy 2"}
	if socatErr == nil {
		want = []string{"byte-copy 1", "socat 1", "byte-copy 2", "socat 2"}
	}
	if fmt.Sprint(order) != fmt.Sprint(want) {
		t.Fatalf("runs in the order %v, want %v\nlog:\n%s", order, want, log.String())
	}
	w, bc := res.Scenarios[0].Rows[0], res.Scenarios[0].Rows[1]
	if w.Relay != "wharf" || !strings.Contains(w.Skipped, "bin/wharf") {
		t.Fatalf("wharf row without bin/wharf under an empty root: %+v", w)
	}
	m := bc.Median
	if bc.Relay != "byte-copy" || len(bc.Runs) != 2 || m.Err != "" {
		t.Fatalf("byte-copy row %+v\nlog:\n%s", bc, log.String())
	}
	if m.Sent == 0 || m.Unique != m.Sent || m.Lost != 0 || m.Dups != 0 || m.Delivered <= 0 || m.CPU <= 0 || m.PeakRSS <= 0 || m.Latency.Count != m.Unique {
		t.Fatalf("byte-copy median %+v", m)
	}
	t.Logf("byte-copy: %.0f msg/s, %.2f CPU s per M msgs, RSS %d MiB", m.Delivered, m.CPUPerM, m.PeakRSS>>20)

	dir := t.TempDir()
	paths, err := WriteFiles(res, dir)
	if err != nil || len(paths) != 5 {
		t.Fatal(paths, err)
	}
	f := func(name, want string) {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !strings.Contains(string(b), want) {
			t.Fatalf("%s: %v; want it to contain %q, got:\n%s", name, err, want, b)
		}
	}
	f("latest.svg", "<svg")
	f("latest.svg", ">byte-copy<")
	f("latest.md", "| byte-copy | ")
	f("latest.md", "| wharf | not run: bin/wharf not built")
	f("latest.json", `"relay": "byte-copy"`)
}

func TestMedian(t *testing.T) {
	m := median([]Run{{Delivered: 3, PeakRSS: 10}, {Err: "x", Delivered: 100}, {Delivered: 1, PeakRSS: 30}, {Delivered: 2, PeakRSS: 20}})
	if m.Delivered != 2 || m.PeakRSS != 20 {
		t.Fatalf("median %+v", m)
	}
	if m := median([]Run{{Err: "boom"}}); m.Err != "boom" {
		t.Fatalf("all-failed median %+v", m)
	}
}

func TestPlan(t *testing.T) {
	p := Options{UDPRates: []float64{25000, 0}}.Plan()
	var ids []string
	for _, s := range p {
		ids = append(ids, s.ID)
	}
	if got := strings.Join(ids, ","); got != "tcp,udp-ceiling,tls,udp-25k,udp-max,lat-1x1,lat-1k,lat-25k,conns-2000,relp,http,h2,tcpproxy" {
		t.Fatalf("plan without brokers: %s", got)
	}
	p = Options{Scenarios: []string{"kafka"}, Brokers: []string{"127.0.0.1:9092"}}.Plan()
	if len(p) != 3 || p[0].Compression != "none" || p[1].ID != "kafka-lz4" || p[2].Compression != "zstd" {
		t.Fatalf("kafka plan %+v, want kafka (none), kafka-lz4, kafka-zstd", p)
	}
	p = Options{Scenarios: []string{"kafka-zstd"}, Brokers: []string{"127.0.0.1:9092"}}.Plan()
	if len(p) != 1 || p[0].Kind != "kafka" || p[0].Compression != "zstd" {
		t.Fatalf("kafka-zstd plan %+v", p)
	}
}

func TestUDPLossless(t *testing.T) {
	row := func(relay string, offered float64, lost uint64) Row {
		return Row{Relay: relay, Median: Run{Offered: offered, Lost: lost}}
	}
	sc := func(rate float64, rows ...Row) ScenarioResult {
		return ScenarioResult{Scenario: Scenario{Kind: "udp", Rate: rate}, Rows: rows}
	}
	r := &Results{Scenarios: []ScenarioResult{
		sc(25000, row("a", 25000, 0), row("b", 25000, 3), row("c", 25000, 0)),
		sc(50000, row("a", 50000, 0), row("b", 50000, 9), row("c", 30000, 0)), // c starved: does not count
		sc(0, row("a", 900000, 0)), // max rate: not a fixed rate
	}}
	r.udpLossless()
	if r.UDPLossless["a"] != 50000 || r.UDPLossless["b"] != 0 || r.UDPLossless["c"] != 25000 {
		t.Fatalf("lossless rates %v", r.UDPLossless)
	}
}

// smokeProxy runs one short proxy scenario for relays and returns its rows
// by name, with the files written from it.
func smokeProxy(t *testing.T, scenario string, relays ...string) (map[string]Row, string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	res, err := Compare(context.Background(), Options{Root: t.TempDir(), Exe: exe, Runs: 1, ProxyDuration: time.Second,
		HTTPConns: 8, Scenarios: []string{scenario}, Relays: relays, Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Scenarios) != 1 || res.Scenarios[0].Scenario.Kind != scenario {
		t.Fatalf("results %+v", res)
	}
	rows := map[string]Row{}
	for _, row := range res.Scenarios[0].Rows {
		rows[row.Relay] = row
		if row.Skipped == "" && row.Median.Err != "" {
			t.Errorf("%s failed: %s", row.Relay, row.Median.Err)
		}
	}
	t.Log(log.String())
	dir := t.TempDir()
	if _, err := WriteFiles(res, dir); err != nil {
		t.Fatal(err)
	}
	return rows, dir
}

func contains(t *testing.T, dir, name string, want ...string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	for _, w := range want {
		if err != nil || !strings.Contains(string(b), w) {
			t.Fatalf("%s: %v; want it to contain %q, got:\n%s", name, err, w, b)
		}
	}
}

// TestSmokeTCPProxy pulls a stream through the byte-copy relay for a
// second: bytes counted, the relay's CPU measured, the table written.
func TestSmokeTCPProxy(t *testing.T) {
	rows, dir := smokeProxy(t, "tcpproxy", "byte-copy", "wharf")
	if w := rows["wharf"]; !strings.Contains(w.Skipped, "bin/wharf") {
		t.Fatalf("wharf row without bin/wharf under an empty root: %+v", w)
	}
	m := rows["byte-copy"].Median
	if m.Err != "" || m.Bytes < 1<<20 || m.Delivered <= 0 || m.CPU <= 0 || m.CPUPerGB <= 0 || m.MsgPerCPU <= 0 || m.PeakRSS <= 0 {
		t.Fatalf("byte-copy median %+v", m)
	}
	t.Logf("byte-copy: %.0f MB/s, %.3f CPU s per GB", m.Delivered/1e6, m.CPUPerGB)
	contains(t, dir, "latest.md", "| relay | MB/s | CPU s / GB |", "| byte-copy | ")
	contains(t, dir, "latest.svg", "MB per relay CPU second", ">byte-copy<")
	contains(t, dir, "latest.json", `"cpu_seconds_per_gb"`, `"unit": "bytes"`)
}

// TestSmokeHTTP drives wrk for a second through the byte-copy relay (an
// L4 copy) and through HAProxy in mode http to the harness's backend.
func TestSmokeHTTP(t *testing.T) {
	testenv.Tool(t, "wrk")
	testenv.Tool(t, "haproxy")
	rows, dir := smokeProxy(t, "http", "byte-copy", "haproxy")
	for _, name := range []string{"byte-copy", "haproxy"} {
		m := rows[name].Median
		if m.Err != "" || m.Requests == 0 || m.Non2xx != 0 || m.SocketErrors != 0 || m.Delivered <= 0 ||
			m.Latency.P50 <= 0 || m.Latency.P99 < m.Latency.P50 || m.CPU <= 0 || m.CPUPerM <= 0 || m.PeakRSS <= 0 {
			t.Fatalf("%s median %+v", name, m)
		}
		t.Logf("%s: %.0f requests/s, p50 %v, %.1f CPU s per M requests", name, m.Delivered, m.Latency.P50, m.CPUPerM)
	}
	contains(t, dir, "latest.md", "| relay | requests/s | p50 |", "| haproxy | ", "| byte-copy | ")
	contains(t, dir, "latest.svg", "requests per relay CPU second", ">haproxy<")
}

func TestParseWrk(t *testing.T) {
	f := func(out string, want wrkResult, wantErr bool) {
		t.Helper()
		got, err := parseWrk(out)
		if (err != nil) != wantErr || got != want {
			t.Fatalf("parseWrk(%q) = %+v, %v; want %+v (error %v)", out, got, err, want, wantErr)
		}
	}
	us := time.Microsecond
	f("Running 1s test @ http://127.0.0.1:1/\n  123 requests in 1.00s\nWHARF-BENCH 123 1000500 4567 1 2 3 4 5 250 900 1500 2100 300\nRequests/sec: 123\n",
		wrkResult{requests: 123, duration: 1000500 * us, bytes: 4567, sockErrs: 10, non2xx: 5, p50: 250 * us, p99: 900 * us, p999: 1500 * us, max: 2100 * us, mean: 300 * us}, false)
	f("unable to connect to 127.0.0.1:1 Connection refused\n", wrkResult{}, true)
	f("WHARF-BENCH 1 2 3\n", wrkResult{}, true)
	f("WHARF-BENCH 1 2 3 4 5 6 7 8 9 10 11 12 -1\n", wrkResult{}, true)
}

// TestSmokeH2 drives h2load for a second through HAProxy's h2 frontend
// to the harness's backend.
func TestSmokeH2(t *testing.T) {
	testenv.Tool(t, "h2load")
	testenv.Tool(t, "haproxy")
	rows, dir := smokeProxy(t, "h2", "haproxy")
	m := rows["haproxy"].Median
	if m.Err != "" || m.Requests == 0 || m.Non2xx != 0 || m.SocketErrors != 0 || m.Delivered <= 0 ||
		m.Latency.Mean <= 0 || m.Latency.Max < m.Latency.Mean || m.CPU <= 0 || m.CPUPerM <= 0 || m.PeakRSS <= 0 {
		t.Fatalf("haproxy median %+v", m)
	}
	t.Logf("haproxy: %.0f requests/s, mean %v, %.1f CPU s per M requests", m.Delivered, m.Latency.Mean, m.CPUPerM)
	contains(t, dir, "latest.md", "| relay | requests/s | mean | max |", "| haproxy | ")
}

func TestParseH2load(t *testing.T) {
	out := `finished in 5.00s, 31234.56 req/s, 36.50MB/s
requests: 156172 total, 156172 started, 156172 done, 156170 succeeded, 2 failed, 0 errored, 0 timeout
status codes: 156170 2xx, 0 3xx, 1 4xx, 0 5xx
traffic: 36.50MB (38273280) total, 1.19MB (1249376) headers (space savings 93.12%), 19.06MB (19990016) data
                     min         max         mean         sd        +/- sd
time for request:      245us     12.30ms      1.20ms       433us    87.50%
`
	got, err := parseH2load(out)
	if err != nil || got.duration != 5*time.Second || got.succeeded != 156170 || got.failed != 2 || got.non2xx != 1 ||
		got.max != 12300*time.Microsecond || got.mean != 1200*time.Microsecond {
		t.Fatalf("parseH2load: %+v, %v", got, err)
	}
	if _, err := parseH2load("h2load: connection refused\n"); err == nil {
		t.Fatal("parseH2load accepted output without a summary")
	}
}

// Light-load scenarios chart p50 and p99, with the bars in proportion;
// the others chart rate and CPU.
func TestSVGLatencyPanels(t *testing.T) {
	row := func(relay string, p50, p99 time.Duration) Row {
		m := Run{Delivered: 4000, MsgPerCPU: 25000}
		m.Latency.P50, m.Latency.P99 = p50, p99
		return Row{Relay: relay, Median: m}
	}
	r := &Results{Scenarios: []ScenarioResult{
		{Scenario: Scenario{ID: "lat-1x1", Kind: "tcp", Unit: "messages", Title: "one at a time"},
			Rows: []Row{row("wharf", 50*time.Microsecond, 200*time.Microsecond), row("haproxy", 100*time.Microsecond, 400*time.Microsecond)}},
		{Scenario: Scenario{ID: "tcp", Kind: "tcp", Unit: "messages", Title: "relay"},
			Rows: []Row{row("wharf", time.Millisecond, time.Millisecond)}},
	}}
	var b strings.Builder
	SVG(&b, r)
	svg := b.String()
	for _, want := range []string{"p50 latency", "p99 latency", ">50µs<", ">100µs<", ">200µs<", ">400µs<", "delivered msg/s"} {
		if !strings.Contains(svg, want) {
			t.Errorf("chart lacks %q", want)
		}
	}
	// wharf's p50 bar is half of haproxy's.
	re := regexp.MustCompile(`<rect x="110" y="\d+" width="(\d+)"`)
	ws := re.FindAllStringSubmatch(svg, -1)
	if len(ws) < 2 {
		t.Fatalf("found %d p50 bars", len(ws))
	}
	a, _ := strconv.Atoi(ws[0][1])
	h, _ := strconv.Atoi(ws[1][1])
	if a*2 < h-1 || a*2 > h+1 {
		t.Errorf("p50 bars %d (wharf, 50µs) and %d (haproxy, 100µs): want 1:2", a, h)
	}
}

// Every kind in Kinds plans something when named alone.
func TestKindsPlanned(t *testing.T) {
	for _, k := range Kinds {
		if p := (Options{Scenarios: []string{k}, Brokers: []string{"127.0.0.1:9092"}}).Plan(); len(p) == 0 {
			t.Errorf("kind %q plans nothing", k)
		}
	}
}
