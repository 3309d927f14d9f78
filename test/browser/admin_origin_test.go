package browser

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Regression: with no admin token (the default) a web page in a browser
// on the same host could POST /reload (a simple text/plain request that
// needs no CORS preflight) and, by rebinding its own name to 127.0.0.1,
// read the admin API. In real Chromium: a page from another origin posts
// to /reload, and a page whose name resolves to 127.0.0.1 (the resolver
// rule stands in for a rebinding DNS server) loads /api/status.
func TestAdminRefusesWebPages(t *testing.T) {
	in := startWharf(t, "127.0.0.1:0", `
[admin]
listen = "127.0.0.1:0"
[frontend.edge]
bind = ["udp://127.0.0.1:0"]
sinks = ["out"]
[sink.out]
type = "stdout"
`)

	// The attacker's page, served from another origin.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, `<!doctype html><title>evil</title><script>
window.done = fetch("%s/reload", {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body: "x"})
  .then(() => "sent", e => "error: " + e);
</script>`, in.admin)
	}))
	t.Cleanup(evil.Close)

	ctx := browser(t, chromedp.Flag("host-resolver-rules", "MAP rebind.example 127.0.0.1"))
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(evil.URL)); err != nil {
		t.Fatal(err)
	}
	sent, err := chromedp.Run(ctx, chromedp.Evaluate[string](`window.done`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if sent != "sent" {
		t.Fatalf("the page's fetch: %s", sent)
	}
	reloads := func() string {
		resp, err := http.Get(in.admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, `wharf_config_reloads_total{result="ok"} `); ok {
				return v
			}
		}
		return "0"
	}
	if n := reloads(); n != "0" {
		t.Errorf("a web page of another origin reloaded wharf (%s reloads)", n)
	}
	if !strings.Contains(in.log.String(), "refused a cross-origin browser request") {
		t.Errorf("wharf did not log the refused request:\n%s", in.log.String())
	}

	// DNS rebinding: the page's own name now points at the admin port.
	_, port, _ := strings.Cut(strings.TrimPrefix(in.admin, "http://"), ":")
	if err := chromedp.Do(ctx, chromedp.Navigate("http://rebind.example:"+port+"/api/status")); err != nil {
		t.Fatal(err)
	}
	body, err := chromedp.Run(ctx, chromedp.Text("body"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(body, "421") || strings.Contains(body, "frontends") {
		t.Errorf("a rebound name read /api/status: %.200s", body)
	}

	// A script on the host (no Origin) still reloads without a token.
	resp, err := http.Post(in.admin+"/reload", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || reloads() != "1" {
		t.Errorf("POST /reload without Origin: %d, reloads %s; want 200 and 1", resp.StatusCode, reloads())
	}
}
