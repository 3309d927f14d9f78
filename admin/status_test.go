package admin

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"wharf/metrics"
)

func startStatus(t *testing.T, reg *metrics.Registry, opts StatusOptions) string {
	t.Helper()
	ready := func() (bool, []string) { return false, []string{`sink "k" is not ready`} }
	srv := New(reg, ready, slog.New(slog.NewTextHandler(io.Discard, nil)))
	opts.Ready = ready
	NewStatus(reg, opts).Register(srv)
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop(context.Background()) })
	return "http://" + srv.Addr()
}

func get(t *testing.T, url string) (string, http.Header) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s %s", url, resp.Status, b)
	}
	return string(b), resp.Header
}

func TestStatusReport(t *testing.T) {
	reg := metrics.NewRegistry()
	bl := []string{"frontend", "edge", "bind", "udp://127.0.0.1:0"}
	recv := reg.Counter("wharf_frontend_received_total", "", bl...)
	recvB := reg.Counter("wharf_frontend_received_bytes_total", "", bl...)
	reg.Counter("wharf_frontend_dropped_total", "", append(bl, "reason", "no_route")...).Add(3)
	reg.Counter("wharf_frontend_malformed_total", "", append(bl, "reason", "bad_pri")...).Add(2)
	// A bind a reload removed: its series stay, its row must not.
	reg.Counter("wharf_frontend_received_total", "", "frontend", "old", "bind", "tcp://127.0.0.1:1").Add(9)
	sent := reg.Counter("wharf_sink_sent_total", "", "sink", "kafka")
	reg.Counter("wharf_sink_sent_bytes_total", "", "sink", "kafka").Add(1000)
	reg.Gauge("wharf_sink_ready", "", "sink", "kafka").Set(1)
	reg.GaugeFunc("wharf_sink_queue_messages", "", func() float64 { return 17 }, "sink", "kafka")
	reg.Counter("wharf_sink_dropped_total", "", "sink", "kafka", "reason", "queue_full").Add(5)
	reg.Counter("wharf_sink_dropped_total", "", "sink", "kafka", "reason", "shutdown")
	reg.Gauge("wharf_sink_ready", "", "sink", "siem").Set(0)
	reg.Counter("wharf_proxy_server_connections_total", "", "backend", "web", "server", "10.0.0.1:80").Add(4)
	reg.Gauge("wharf_proxy_server_up", "", "backend", "web", "server", "10.0.0.1:80").Set(1)
	reg.Counter("wharf_proxy_server_checks_total", "", "backend", "web", "server", "10.0.0.1:80", "result", "fail").Add(2)
	reg.Gauge("wharf_proxy_server_up", "", "backend", "web", "server", "10.0.0.2:80").Set(0)
	reg.Counter("wharf_proxy_frontend_connections_total", "", "frontend", "www").Add(8)
	reg.Counter("wharf_proxy_frontend_rejected_total", "", "frontend", "www", "reason", "acl").Add(1)
	reg.Counter("wharf_proxy_http_errors_total", "", "frontend", "www", "kind", "no_server").Add(6)
	reg.Counter("wharf_proxy_backend_no_server_total", "", "backend", "web").Add(6) // a backend row is not a server row

	errs := NewErrorLog()
	log := slog.New(errs.Handler(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError})))
	log.With("sink", "siem").Warn("sink not ready", "error", "dial tcp 10.0.1.5:514: connection refused")
	log.With("frontend", "edge", "bind", "udp://127.0.0.1:0").Error("read failed", "err", "boom")
	log.With("sink", "kafka").Info("fine") // below Warn: not remembered

	base := startStatus(t, reg, StatusOptions{
		Version: "v-test",
		Live: func() Live {
			return Live{Binds: []LiveBind{{Frontend: "edge", Bind: "udp://127.0.0.1:0", Addr: "127.0.0.1:40000"}}, Sinks: []string{"kafka", "siem"}}
		},
		Errors: errs,
	})
	report := func() StatusReport {
		t.Helper()
		body, h := get(t, base+"/api/status")
		if ct := h.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("Content-Type %q", ct)
		}
		var r StatusReport
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatalf("decode %s: %v", body, err)
		}
		return r
	}
	recv.Add(100)
	recvB.Add(10000)
	report() // first sample
	recv.Add(500)
	recvB.Add(50000)
	sent.Add(400)
	time.Sleep(1100 * time.Millisecond)
	r := report()

	if r.Version != "v-test" || r.Ready || len(r.Problems) != 1 {
		t.Fatalf("header: version %q ready %v problems %v", r.Version, r.Ready, r.Problems)
	}
	if len(r.Binds) != 1 {
		t.Fatalf("binds = %+v, want only the live one", r.Binds)
	}
	b := r.Binds[0]
	if b.Frontend != "edge" || b.Addr != "127.0.0.1:40000" || b.State != "listening" || b.Received != 600 || b.ReceivedBytes != 60000 {
		t.Fatalf("bind row %+v", b)
	}
	if b.Dropped["no_route"] != 3 || b.DroppedTotal != 3 || b.Malformed["bad_pri"] != 2 {
		t.Fatalf("bind drops %+v malformed %+v", b.Dropped, b.Malformed)
	}
	// 500 messages over a window of a bit more than a second.
	if r.RateWindowSeconds < 1 || b.Rate.Msgs < 500/r.RateWindowSeconds-1 || b.Rate.Msgs > 500 || b.Rate.Bytes < 40000 {
		t.Fatalf("bind rate %+v over %.2fs", b.Rate, r.RateWindowSeconds)
	}
	if b.LastError == nil || b.LastError.Message != "read failed: boom" {
		t.Fatalf("bind last error %+v", b.LastError)
	}
	if len(r.Sinks) != 2 {
		t.Fatalf("sinks %+v", r.Sinks)
	}
	k, s := r.Sinks[0], r.Sinks[1]
	if k.Sink != "kafka" || k.State != "up" || k.Sent != 400 || k.SentBytes != 1000 || k.QueueMessages != 17 || k.Dropped["queue_full"] != 5 || k.DroppedTotal != 5 || k.Rate.Msgs <= 0 {
		t.Fatalf("kafka row %+v", k)
	}
	if _, ok := k.Dropped["shutdown"]; !ok {
		t.Fatal("zero drop reasons must be listed too")
	}
	if k.LastError != nil {
		t.Fatalf("kafka last error %+v from an Info line", k.LastError)
	}
	if s.State != "down" || s.LastError == nil || !strings.Contains(s.LastError.Message, "connection refused") || s.LastError.Level != "WARN" {
		t.Fatalf("siem row %+v last error %+v", s, s.LastError)
	}
	if r.Totals.Received != 600 || r.Totals.Sent != 400 || r.Totals.FrontendDrops != 3 || r.Totals.SinkDrops != 5 || r.Totals.Queued != 17 {
		t.Fatalf("totals %+v", r.Totals)
	}
	if len(r.Servers) != 2 || r.Servers[0].State != "up" || r.Servers[0].Metrics["connections_total"] != 4 ||
		r.Servers[0].Metrics["checks_total{result=fail}"] != 2 || r.Servers[1].State != "down" {
		t.Fatalf("servers %+v", r.Servers)
	}
	if len(r.Proxies) != 1 || r.Proxies[0].Frontend != "www" || r.Proxies[0].Metrics["connections_total"] != 8 ||
		r.Proxies[0].Metrics["rejected_total{reason=acl}"] != 1 || r.Proxies[0].Metrics["http_errors_total{kind=no_server}"] != 6 {
		t.Fatalf("proxies %+v", r.Proxies)
	}
}

func TestStatusWithoutLiveShowsEveryBind(t *testing.T) {
	reg := metrics.NewRegistry()
	reg.Counter("wharf_frontend_received_total", "", "frontend", "a", "bind", "udp://127.0.0.1:1").Inc()
	reg.Counter("wharf_frontend_received_total", "", "frontend", "b", "bind", "tcp://127.0.0.1:2").Inc()
	st := NewStatus(reg, StatusOptions{})
	r := st.Report()
	if len(r.Binds) != 2 || r.Binds[0].Frontend != "a" || r.Binds[1].State != "unknown" {
		t.Fatalf("binds %+v", r.Binds)
	}
	if r.RateWindowSeconds <= 0 {
		t.Fatalf("first report has no rate window (%v): it should wait for a second sample", r.RateWindowSeconds)
	}
}

func TestStatusPageAndAssets(t *testing.T) {
	base := startStatus(t, metrics.NewRegistry(), StatusOptions{})
	f := func(path, wantType, wantBody string) {
		t.Helper()
		body, h := get(t, base+path)
		if !strings.HasPrefix(h.Get("Content-Type"), wantType) || !strings.Contains(body, wantBody) {
			t.Fatalf("GET %s: %q, body without %q", path, h.Get("Content-Type"), wantBody)
		}
	}
	f("/", "text/html", `<table id="binds">`)
	f("/ui/status.js", "text/javascript", "/api/status")
	f("/ui/status.css", "text/css", "prefers-color-scheme")
	f("/metrics", "text/plain", "") // the existing endpoints still answer
	resp, err := http.Get(base + "/nope")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("GET /nope: %d, want 404 (only / itself is the page)", resp.StatusCode)
	}
}
