package browser

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"wharf/admin"
	"wharf/metrics"
)

// The proxy tables render from the proxies' typed stats (as
// cmd/wharf hands them over from proxy.Set.Stats) behind the real admin
// server, read by the real browser.
func TestStatusPageRendersProxyRows(t *testing.T) {
	ctx := browser(t)
	reg := metrics.NewRegistry()
	proxies := func() ([]admin.ProxyStats, []admin.ServerStats) {
		return []admin.ProxyStats{{Frontend: "web", Mode: "tcp", Connections: 125, Active: 3,
				Rejected: map[string]uint64{"acl": 2}, HTTPErrors: map[string]uint64{"no_server": 5}}},
			[]admin.ServerStats{
				{Backend: "app", Server: "app1", Up: true, Active: 3, Connections: 120, AdminState: "drain", Weight: 3},
				{Backend: "app", Server: "app2", ConnectErrors: 7, ChecksFailed: 4, AdminState: "ready", Weight: 1},
			}
	}

	srv := admin.New(reg, func() (bool, []string) { return true, nil }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	st := admin.NewStatus(admin.StatusOptions{Version: "test", Live: func() admin.Live { return admin.Live{Proxies: proxies} }})
	defer st.Close()
	st.Register(srv)
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer srv.Stop(context.Background())

	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx,
		chromedp.Navigate("http://"+srv.Addr()+"/"),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-row="server"]`)),
	); err != nil {
		t.Fatal(err)
	}
	type cells = map[string]string
	got, err := chromedp.Run(sctx, chromedp.Evaluate[map[string]cells](`Object.fromEntries(
		Array.from(document.querySelectorAll("tr[data-row=server], tr[data-row=proxy]")).map(tr => [
			tr.dataset.row + " " + (tr.dataset.server || tr.dataset.frontend),
			Object.fromEntries(Array.from(tr.querySelectorAll("td[data-field]")).map(td => [td.dataset.field, td.dataset.value ?? td.innerText])),
		]))`))
	if err != nil {
		t.Fatal(err)
	}
	f := func(row, field, want string) {
		t.Helper()
		if got[row][field] != want {
			t.Errorf("%s %s = %q, want %q (rows %v)", row, field, got[row][field], want, got)
		}
	}
	f("server app1", "state", "up")
	f("server app1", "active", "3")
	f("server app1", "connections", "120")
	f("server app1", "admin", "drain") // the admin state and weight set on the admin API
	f("server app1", "weight", "3")
	f("server app2", "admin", "ready")
	f("server app2", "state", "down")
	f("server app2", "connect_errors", "7")
	f("server app2", "checks_failed", "4")
	f("proxy web", "connections", "125")
	f("proxy web", "rejected", "2")
	f("proxy web", "errors", "5")
	hidden, err := chromedp.Run(sctx, chromedp.Evaluate[bool](`document.getElementById("servers-section").hidden || document.getElementById("proxies-section").hidden`))
	if err != nil || hidden {
		t.Errorf("proxy sections hidden (%v)", err)
	}
	png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll("artifacts", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("artifacts", "proxy.png"), png, 0o644); err != nil {
		t.Fatal(err)
	}

	// The dark theme follows prefers-color-scheme.
	light, err := chromedp.Run(sctx, chromedp.Evaluate[string](`getComputedStyle(document.body).backgroundColor`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(sctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}},
	}); err != nil {
		t.Fatal(err)
	}
	dark, err := chromedp.Run(sctx, chromedp.Evaluate[string](`getComputedStyle(document.body).backgroundColor`))
	if err != nil {
		t.Fatal(err)
	}
	if light != "rgb(247, 247, 245)" || dark != "rgb(22, 24, 27)" {
		t.Errorf("body background light %q dark %q; want the two themes of status.css", light, dark)
	}
	if png, err = chromedp.Run(sctx, chromedp.FullScreenshot(100)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("artifacts", "proxy-dark.png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}
