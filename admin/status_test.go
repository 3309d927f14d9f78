package admin

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"wharf/internal/testenv"
	"wharf/metrics"
)

func startStatus(t *testing.T, reg *metrics.Registry, opts StatusOptions) string {
	t.Helper()
	ready := func() (bool, []string) { return false, []string{`sink "k" is not ready`} }
	srv := New(reg, ready, slog.New(slog.NewTextHandler(io.Discard, nil)))
	opts.Ready = ready
	st := NewStatus(opts)
	t.Cleanup(st.Close)
	st.Register(srv)
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
	var mu sync.Mutex
	bind := BindStats{Dropped: map[string]uint64{"no_route": 3}, Malformed: map[string]uint64{"bad_pri": 2}}
	kafka := SinkStats{SentBytes: 1000, Queued: 17, QueueSize: 100000, PauseSize: 4096, Ready: true, Dropped: map[string]uint64{"queue_full": 5, "shutdown": 0}}
	add := func(recv, recvBytes, sent uint64) {
		mu.Lock()
		defer mu.Unlock()
		bind.Received += recv
		bind.ReceivedBytes += recvBytes
		kafka.Sent += sent
	}
	proxies := func() ([]ProxyStats, []ServerStats) {
		return []ProxyStats{{Frontend: "www", Mode: "http", Connections: 8, Rejected: map[string]uint64{"acl": 1},
				HTTPErrors: map[string]uint64{"no_server": 6}, HTTPRequests: map[[2]string]uint64{{"web", "2xx"}: 7}}},
			[]ServerStats{{Backend: "web", Server: "10.0.0.2:80"}, {Backend: "web", Server: "10.0.0.1:80", Up: true, Connections: 4, ChecksFailed: 2}}
	}
	// Series in the registry do not make rows: rows come from Live.
	reg.Counter("wharf_frontend_received_total", "", "frontend", "old", "bind", "tcp://127.0.0.1:1").Add(9)
	reg.Gauge("wharf_proxy_server_up", "", "backend", "gone", "server", "x").Set(1)

	errs := NewErrorLog()
	log := slog.New(errs.Handler(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError})))
	log.With("sink", "siem").Warn("sink not ready", "error", "dial tcp 10.0.1.5:514: connection refused")
	log.With("frontend", "edge", "bind", "udp://127.0.0.1:0").Error("read failed", "err", "boom")
	log.With("sink", "kafka").Info("fine") // below Warn: not remembered

	base := startStatus(t, reg, StatusOptions{
		Version: "v-test",
		Live: func() Live {
			return Live{
				Binds: []LiveBind{{Frontend: "edge", Bind: "udp://127.0.0.1:0", Addr: "127.0.0.1:40000", Stats: func() BindStats {
					mu.Lock()
					defer mu.Unlock()
					return bind
				}}},
				Sinks: []LiveSink{{Name: "siem"}, {Name: "kafka", Stats: func() SinkStats {
					mu.Lock()
					defer mu.Unlock()
					return kafka
				}}},
				Proxies: proxies,
			}
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
	add(100, 10000, 0)
	report() // first sample
	add(500, 50000, 400)
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
	if k.Sink != "kafka" || k.State != "up" || k.Sent != 400 || k.SentBytes != 1000 || k.QueueMessages != 17 || k.Dropped["queue_full"] != 5 || k.DroppedTotal != 5 || k.Rate.Msgs <= 0 ||
		k.QueueCapacity != 100000 || k.QueuePauseAt != 4096 {
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
		r.Proxies[0].Metrics["rejected_total{reason=acl}"] != 1 || r.Proxies[0].Metrics["http_errors_total{kind=no_server}"] != 6 ||
		r.Proxies[0].Metrics["http_requests_total{backend=web,code=2xx}"] != 7 {
		t.Fatalf("proxies %+v", r.Proxies)
	}
}

// TestStatusSparklines: each step adds a point per row (rates since the
// previous point, queue depth now), at most SparkPoints are kept, and a
// row that leaves Live loses its ring.
func TestStatusSparklines(t *testing.T) {
	var mu sync.Mutex
	var sent, dropped uint64
	queue := int64(0)
	withSink := true
	st := NewStatus(StatusOptions{
		SparkStep:   20 * time.Millisecond,
		SparkPoints: 5,
		Live: func() Live {
			mu.Lock()
			defer mu.Unlock()
			l := Live{Binds: []LiveBind{{Frontend: "f", Bind: "udp://x"}}}
			if withSink {
				l.Sinks = []LiveSink{{Name: "s", Stats: func() SinkStats {
					mu.Lock()
					defer mu.Unlock()
					sent += 10
					dropped++
					queue++
					return SinkStats{Sent: sent, Queued: queue, Dropped: map[string]uint64{"queue_full": dropped}}
				}}}
			}
			return l
		},
	})
	t.Cleanup(st.Close)
	var sp Spark
	testenv.Eventually(t, "a sink sparkline of 5 points", func() bool {
		sp = st.spark(sinkKey("s"), true)
		return len(sp.Msgs) == 5
	})
	if len(sp.Dropped) != 5 || len(sp.Queue) != 5 || sp.StepSeconds != 0.02 {
		t.Fatalf("spark %+v", sp)
	}
	for i, v := range sp.Msgs {
		// 10 messages and 1 drop per step of about 20ms (more under load).
		if v <= 0 || sp.Dropped[i] <= 0 || v < 5*sp.Dropped[i] {
			t.Fatalf("point %d: msgs %v dropped %v (spark %+v)", i, v, sp.Dropped[i], sp)
		}
	}
	if sp.Queue[4] <= sp.Queue[0] {
		t.Fatalf("queue points %v: want rising", sp.Queue)
	}
	if b := st.spark(bindKey("f", "udp://x"), false); len(b.Msgs) == 0 || b.Queue != nil {
		t.Fatalf("bind spark %+v", b)
	}
	mu.Lock()
	withSink = false
	mu.Unlock()
	testenv.Eventually(t, "a removed sink's ring to be dropped", func() bool {
		st.mu.Lock()
		defer st.mu.Unlock()
		return st.sparks[sinkKey("s")] == nil
	})
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

// TestStatusRequestsInFlightBounded: with statusMaxInFlight /api/status
// requests being answered, one more gets 503 at once instead of another
// full sample (200 concurrent requests took wharf to 146 MiB; audit),
// and the endpoint answers again once they are done.
func TestStatusRequestsInFlightBounded(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	url := startStatus(t, metrics.NewRegistry(), StatusOptions{Live: func() Live { <-release; return Live{} }}) + "/api/status"
	var wg sync.WaitGroup
	defer wg.Wait()
	defer free() // before the Wait, also when the test fails
	for range statusMaxInFlight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if resp, err := http.Get(url); err == nil {
				resp.Body.Close()
			}
		}()
	}
	c := http.Client{Timeout: 500 * time.Millisecond}
	if !testenv.Poll(5*time.Second, func() bool {
		resp, err := c.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	}) {
		t.Fatalf("request %d with %d in flight did not get 503 at once", statusMaxInFlight+1, statusMaxInFlight)
	}
	free()
	wg.Wait()
	get(t, url)
}
