package browser

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"wharf/internal/testenv"
)

// row is one rendered table row as the page shows it: the data-value of
// each cell (the exact number behind the formatted text) and its text.
type row struct {
	Kind   string            `json:"kind"`
	Key    string            `json:"key"`
	Values map[string]string `json:"values"`
	Text   map[string]string `json:"text"`
}

// readRows collects every rendered row of the status tables.
const readRows = `Array.from(document.querySelectorAll("tr[data-row]")).map(tr => ({
  kind: tr.dataset.row,
  key: tr.dataset.row === "bind" ? tr.dataset.frontend + " " + tr.dataset.bind : (tr.dataset.sink || ""),
  values: Object.fromEntries(Array.from(tr.querySelectorAll("td[data-field]")).map(td => [td.dataset.field, td.dataset.value ?? ""])),
  text: Object.fromEntries(Array.from(tr.querySelectorAll("td[data-field]")).map(td => [td.dataset.field, td.innerText])),
}))`

func num(t *testing.T, r row, field string) float64 {
	t.Helper()
	v, ok := r.Values[field]
	if !ok {
		t.Fatalf("row %s %q has no cell %q (cells %v)", r.Kind, r.Key, field, r.Values)
	}
	var f float64
	if _, err := fmt.Sscan(v, &f); err != nil {
		t.Fatalf("row %s %q cell %q: data-value %q is not a number", r.Kind, r.Key, field, v)
	}
	return f
}

func find(t *testing.T, rows []row, kind, key string) row {
	t.Helper()
	for _, r := range rows {
		if r.Kind == kind && r.Key == key {
			return r
		}
	}
	t.Fatalf("page has no %s row %q; rows: %+v", kind, key, rows)
	return row{}
}

// browser starts headless Chromium (Debian's package) and returns a
// chromedp context on one tab; extra adds command-line options.
func browser(t *testing.T, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	chromium := testenv.Tool(t, "chromium")
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox, // tests run as root in CI containers
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1360, 640),
	}
	opts = append(opts, extra...)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); acancel() })
	// The first Run starts the browser; it must not carry a timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium %s: %v", chromium, err)
	}
	return ctx
}

func TestStatusPageUnderLoad(t *testing.T) {
	ctx := browser(t)

	adminAddr := "127.0.0.1:0" // read back from wharf's log
	dead := deadPort(t)        // connections refused: the siem sink stays down
	in := startWharf(t, adminAddr, fmt.Sprintf(`
[admin]
listen = %q

[global]
shutdown_timeout = "2s"

[frontend.edge]
bind = ["udp://127.0.0.1:0", "tcp://127.0.0.1:0"]
sinks = ["archive"]

[[frontend.edge.route]]
facility = ["auth"]
sinks = ["archive", "siem"]

[sink.archive]
type = "file"
path = "archive.jsonl"
encoding = "json"

[sink.siem]
type = "syslog"
servers = ["tcp://127.0.0.1:%d"]
dial_timeout = "200ms"
`, adminAddr, dead))

	st := in.status(t)
	var udpAddr, tcpAddr, udpKey, tcpKey string
	for _, b := range st.Binds {
		switch b.Bind {
		case "udp://127.0.0.1:0":
			udpAddr, udpKey = b.Addr, b.Frontend+" "+b.Bind
		case "tcp://127.0.0.1:0":
			tcpAddr, tcpKey = b.Addr, b.Frontend+" "+b.Bind
		}
	}
	if udpAddr == "" || tcpAddr == "" {
		t.Fatalf("/api/status binds %+v: want the udp and tcp binds with their addresses", st.Binds)
	}

	loadCtx, stopLoad := context.WithTimeout(context.Background(), 8*time.Second)
	defer stopLoad()
	ld := startLoad(t, loadCtx, udpAddr, tcpAddr)

	// Load the page and wait for both bind rows to show a rate above zero.
	step := func(d time.Duration) (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, d) }
	sctx, cancel := step(20 * time.Second)
	err := chromedp.Do(sctx,
		chromedp.Navigate(in.admin+"/"),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-row="bind"]`)),
	)
	if err == nil {
		// Two bind rows with a rate, each past about a second of load, so
		// the rate window covers the load and not its start.
		_, err = chromedp.Run(sctx, chromedp.Poll[bool](`Array.from(document.querySelectorAll('tr[data-row="bind"]')).filter(tr =>
				Number(tr.querySelector('td[data-field="rate_msgs"]').dataset.value) > 0 &&
				Number(tr.querySelector('td[data-field="received"]').dataset.value) > 4000).length >= 2
			&& Number(document.querySelector('tr[data-row="sink"][data-sink="archive"] td[data-field="sent"]')?.dataset.value) > 0`,
			chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(15*time.Second)))
	}
	cancel()
	if err != nil {
		t.Fatalf("status page never showed both binds with a rate > 0 and archive sent > 0 under load: %v", err)
	}

	// Under load: the page's numbers trail /metrics by at most the live
	// delta (what arrives between the page's last fetch and our scrape).
	sctx, cancel = step(10 * time.Second)
	rows, err := chromedp.Run(sctx, chromedp.Evaluate[[]row](readRows))
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []struct{ key, bind string }{{udpKey, "udp://127.0.0.1:0"}, {tcpKey, "tcp://127.0.0.1:0"}} {
		r := find(t, rows, "bind", k.key)
		page, rate := num(t, r, "received"), num(t, r, "rate_msgs")
		live := in.metric(t, "wharf_frontend_received_total", fmt.Sprintf(`{bind=%q,frontend="edge"}`, k.bind))
		// Refresh period 1 s plus fetch, render and scrape time: allow 3 s
		// of the load's nominal rate.
		allow := 3 * float64(loadBurst) * float64(time.Second/loadInterval)
		if page > live || live-page > allow {
			t.Errorf("bind %s under load: page received %v, /metrics %v (allowed delta %v)", k.key, page, live, allow)
		}
		if rate <= 0 || rate > 4*float64(loadBurst)*float64(time.Second/loadInterval) {
			t.Errorf("bind %s under load: rate %v msg/s, want > 0 and near the load's %d msg/s", k.key, rate, loadBurst*int(time.Second/loadInterval))
		}
		if r.Values["state"] != "listening" || r.Text["rate_bytes"] == "" {
			t.Errorf("bind %s: state %q, bytes/s %q", k.key, r.Values["state"], r.Text["rate_bytes"])
		}
		t.Logf("under load: bind %s page received %v (%s), /metrics %v, rate %v msg/s (%s)", k.key, page, r.Text["received"], live, rate, r.Text["rate_bytes"])
	}

	// Sparklines: every bind and sink row has one; under load the binds'
	// show traffic and the down sink (siem) a queue. The page refreshes
	// every second and the sampler adds a point every 2 s.
	sctx, cancel = step(20 * time.Second)
	_, err = chromedp.Run(sctx, chromedp.Poll[bool](`Array.from(document.querySelectorAll('tr[data-row="bind"] svg[data-series="msgs"]')).filter(svg =>
			Number(svg.dataset.points) >= 2 && Number(svg.dataset.max) > 0).length >= 2
		&& Number(document.querySelector('tr[data-row="sink"][data-sink="archive"] svg[data-series="msgs"]')?.dataset.max) > 0
		&& Number(document.querySelector('tr[data-row="sink"][data-sink="siem"] svg[data-series="queue"]')?.dataset.max) > 0
		&& document.querySelectorAll('tr[data-row="bind"] svg polyline').length >= 2`,
		chromedp.WithPollingInterval(200*time.Millisecond), chromedp.WithPollingTimeout(15*time.Second)))
	cancel()
	if err != nil {
		t.Fatalf("sparklines never showed traffic on both binds, archive's sends and siem's queue: %v", err)
	}
	// One Bind column showing the bound address (the config said port 0);
	// "out" says it sums over sinks; a short queue is not amber.
	sctx, cancel = step(10 * time.Second)
	page, err := chromedp.Run(sctx, chromedp.Evaluate[map[string]string](`({
		headers: Array.from(document.querySelectorAll("#binds th")).map(th => th.innerText).join("|"),
		tcpBind: document.querySelector('tr[data-row="bind"][data-bind="tcp://127.0.0.1:0"] td[data-field="bind"]').innerText,
		out: document.getElementById("out-rate").parentElement.innerText,
		archiveQueue: document.querySelector('tr[data-row="sink"][data-sink="archive"] td[data-field="queue_messages"]').className,
	})`))
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(page["headers"], "Address") || !strings.Contains(page["headers"], "Bind") {
		t.Errorf("bind table headers %q: want one Bind column, no Address", page["headers"])
	}
	if !strings.Contains(page["tcpBind"], tcpAddr) || !strings.Contains(page["tcpBind"], "configured tcp://127.0.0.1:0") {
		t.Errorf("tcp bind cell %q: want the bound %s and the configured address", page["tcpBind"], tcpAddr)
	}
	if !strings.Contains(page["out"], "all sinks") {
		t.Errorf("header out rate %q does not say it sums over sinks", page["out"])
	}
	for _, s := range in.status(t).Sinks {
		if s.Sink == "archive" && s.QueueMessages < int64(s.QueuePauseAt) && strings.Contains(page["archiveQueue"], "warn") {
			t.Errorf("archive queue of %d (pause at %d) is amber", s.QueueMessages, s.QueuePauseAt)
		}
	}

	// The screenshot shows the page under load.
	sctx, cancel = step(10 * time.Second)
	png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	saveScreenshot(t, png)

	// After the load: once the page has refreshed, its totals equal /metrics.
	ld.wait()
	stopLoad()
	t.Logf("load sent udp %d tcp %d", ld.udpSent.Load(), ld.tcpSent.Load())
	time.Sleep(2500 * time.Millisecond) // sink batches flushed (50 ms), two page refreshes
	sctx, cancel = step(10 * time.Second)
	rows, err = chromedp.Run(sctx, chromedp.Evaluate[[]row](readRows))
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	var received float64
	for _, k := range []struct{ key, bind string }{{udpKey, "udp://127.0.0.1:0"}, {tcpKey, "tcp://127.0.0.1:0"}} {
		r := find(t, rows, "bind", k.key)
		live := in.metric(t, "wharf_frontend_received_total", fmt.Sprintf(`{bind=%q,frontend="edge"}`, k.bind))
		if got := num(t, r, "received"); got != live {
			t.Errorf("bind %s after load: page received %v, /metrics %v", k.key, got, live)
		}
		received += live
	}
	if tcp := float64(ld.tcpSent.Load()); num(t, find(t, rows, "bind", tcpKey), "received") != tcp {
		t.Errorf("tcp bind received %v, load sent %v over TCP (lossless)", num(t, find(t, rows, "bind", tcpKey), "received"), tcp)
	}
	archive := find(t, rows, "sink", "archive")
	if sent, live := num(t, archive, "sent"), in.metric(t, "wharf_sink_sent_total", `{sink="archive"}`); sent != live || sent != received {
		t.Errorf("archive: page sent %v, /metrics %v, received by the binds %v", sent, live, received)
	}
	if archive.Values["state"] != "up" {
		t.Errorf("archive state %q, want up", archive.Values["state"])
	}
	siem := find(t, rows, "sink", "siem")
	if siem.Values["state"] != "down" || num(t, siem, "queue_messages") == 0 || num(t, siem, "sent") != 0 || siem.Text["last_error"] == "" {
		t.Errorf("siem (collector down): state %q queue %v sent %v last error %q; want down, a queue, nothing sent and the error",
			siem.Values["state"], siem.Values["queue_messages"], siem.Values["sent"], siem.Text["last_error"])
	}
	// Its one downstream server: active (the only one), failing.
	if txt := siem.Text["rate_msgs"]; !strings.Contains(txt, fmt.Sprintf("tcp://127.0.0.1:%d (active)", dead)) || !strings.Contains(txt, "failed") {
		t.Errorf("siem row's server line %q: want its server marked active with a failure count", txt)
	}
	sctx, cancel = step(5 * time.Second)
	ready, err := chromedp.Run(sctx, chromedp.Text(chromedp.ID("ready")))
	cancel()
	if err != nil || ready != "not ready" {
		t.Errorf("header readiness %q (%v), want \"not ready\" while siem is down", ready, err)
	}
	// siem's collector never came up: what it queued is dropped at
	// shutdown, and wharf says so with exit status 3.
	in.stop(t, 3)
}

// saveScreenshot writes the PNG to test/browser/artifacts/status.png and,
// with WHARF_UPDATE_SCREENSHOT=1, to docs/status.png for the README.
func saveScreenshot(t *testing.T, png []byte) {
	t.Helper()
	if len(png) < 8 || string(png[1:4]) != "PNG" {
		t.Fatalf("screenshot is not a PNG (%d bytes)", len(png))
	}
	if err := os.MkdirAll("artifacts", 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("artifacts", "status.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: test/browser/%s (%d bytes)", path, len(png))
	if os.Getenv("WHARF_UPDATE_SCREENSHOT") == "1" {
		if err := os.WriteFile(filepath.Join("..", "..", "docs", "status.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Log("updated docs/status.png")
	}
}
