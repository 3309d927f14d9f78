package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"wharf/conf"
	"wharf/internal/testpki"
	"wharf/metrics"
)

// startAdminTLSGateway runs a gateway whose admin listener serves HTTPS
// with certFile/keyFile (and requires client certificates from clientCA
// when not ""), beside the proxy frontend of startProxyGateway. It returns
// the gateway, the config path and the admin address.
func startAdminTLSGateway(t *testing.T, p *backendPair, certFile, keyFile, clientCA string) (*gateway, string, string) {
	t.Helper()
	ca := ""
	if clientCA != "" {
		ca = fmt.Sprintf("tls_client_ca = %q\n", clientCA)
	}
	path := filepath.Join(t.TempDir(), "wharf.toml")
	cfgText := fmt.Sprintf(`
[admin]
listen = "127.0.0.1:0"
token = "s3cret"
tls_cert = %q
tls_key = %q
%s
[frontend.edge]
mode = "http"
bind = ["tcp://127.0.0.1:0"]
backend = "web"
[backend.web]
check = "none"
[[backend.web.server]]
name = "a"
address = %q
`, certFile, keyFile, ca, p.a.Listener.Addr())
	g := runGateway(t, path, cfgText)
	return g, path, g.admin.Addr()
}

// The admin listener with tls_cert serves HTTPS only; `wharf server`
// given the config reaches it over HTTPS trusting exactly that
// certificate; a renewed certificate applies after a reload; with
// tls_client_ca a client without a certificate is refused in the
// handshake and one with a certificate from that CA gets through.
func TestAdminTLS(t *testing.T) {
	p := newBackendPair(t)
	ca := testpki.NewCA(t, "admin-ca")
	_, certFile, keyFile := ca.ServerCert(t, "wharf-admin")
	g, path, addr := startAdminTLSGateway(t, p, certFile, keyFile, "")

	// Plain HTTP to the HTTPS listener gets no answer from the API.
	if resp, err := http.Get("http://" + addr + "/readyz"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("plain HTTP to the admin listener with tls_cert answered 200 %q", b)
		}
	}
	// HTTPS verified against the CA works, read-only endpoints included.
	cli := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	resp, err := cli.Get("https://" + addr + "/readyz")
	if err != nil {
		t.Fatalf("HTTPS to the admin listener: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET https://%s/readyz = %d", addr, resp.StatusCode)
	}

	// TLS 1.2 offers ECDHE with AEAD only, as every other TLS endpoint: a
	// client offering only CBC suites with SHA-1 MACs is refused (Go's
	// default list, used before, negotiated them), one offering AES-GCM
	// gets through.
	cbc := &tls.Config{RootCAs: ca.Pool(), MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
	}}
	if c, err := tls.Dial("tcp", addr, cbc); err == nil {
		t.Errorf("admin listener negotiated %s with a client offering only CBC suites", tls.CipherSuiteName(c.ConnectionState().CipherSuite))
		c.Close()
	}
	gcm := &tls.Config{RootCAs: ca.Pool(), MaxVersion: tls.VersionTLS12}
	if c, err := tls.Dial("tcp", addr, gcm); err != nil {
		t.Errorf("TLS 1.2 with Go's client defaults to the admin listener: %v", err)
	} else {
		if cs := c.ConnectionState().CipherSuite; !strings.Contains(tls.CipherSuiteName(cs), "GCM") && !strings.Contains(tls.CipherSuiteName(cs), "CHACHA20") {
			t.Errorf("admin listener chose %s over TLS 1.2", tls.CipherSuiteName(cs))
		}
		c.Close()
	}

	// The CLI: pinned to the config's certificate, with the token.
	code, out, errOut := wharfServer("list", "-c", path, "--admin", addr)
	if code != 0 || !strings.Contains(out, "web/a") {
		t.Errorf("wharf server list over HTTPS = %d, stdout %q, stderr %q", code, out, errOut)
	}
	// Verified against a CA that did not sign it: refused.
	other := testpki.NewCA(t, "other-ca")
	otherCA := other.File
	if code, _, errOut := wharfServer("list", "-c", path, "--admin", addr, "-cacert", otherCA); code == 0 {
		t.Errorf("wharf server list with a -cacert that did not sign the listener's certificate succeeded: %q", errOut)
	}

	// Renew the certificate in place and reload: new handshakes get it.
	first := peerSerial(t, addr)
	_, newCert, newKey := ca.ServerCert(t, "wharf-admin")
	for _, f := range [][2]string{{newCert, certFile}, {newKey, keyFile}} {
		b, err := os.ReadFile(f[0])
		if err != nil {
			t.Fatal(err)
		}
		testpki.WriteFile(t, f[1], b)
	}
	cfg, err := conf.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.reload(cfg); err != nil {
		t.Fatal(err)
	}
	if second := peerSerial(t, addr); second == first {
		t.Errorf("after renewing tls_cert and reloading, the admin listener still serves serial %s", first)
	}
	if code, _, errOut := wharfServer("list", "-c", path, "--admin", addr); code != 0 {
		t.Errorf("wharf server list after the renewal = %d: %s", code, errOut)
	}

	// Mutual TLS.
	clients := testpki.NewCA(t, "clients-ca")
	clientCA := clients.File
	_, mpath, maddr := startAdminTLSGateway(t, p, certFile, keyFile, clientCA)
	if code, _, _ := wharfServer("list", "-c", mpath, "--admin", maddr); code == 0 {
		t.Error("wharf server list without a client certificate got through tls_client_ca")
	}
	if _, err := cli.Get("https://" + maddr + "/metrics"); err == nil {
		t.Error("GET /metrics without a client certificate got through tls_client_ca")
	}
	cc, ck := clients.Issue(t, "operator", false)
	if code, out, errOut := wharfServer("list", "-c", mpath, "--admin", maddr, "-cert", cc, "-key", ck); code != 0 || !strings.Contains(out, "web/a") {
		t.Errorf("wharf server list with a client certificate = %d, %q, %q", code, out, errOut)
	}
}

// peerSerial is the serial number of the certificate a new TLS handshake
// with addr presents.
func peerSerial(t *testing.T, addr string) string {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// runGateway writes cfgText to path and runs the whole gateway on it
// in-process until the test ends.
func runGateway(t *testing.T, path, cfgText string) *gateway {
	t.Helper()
	if err := os.WriteFile(path, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := conf.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	g, err := build(cfg, metrics.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.stop(5 * time.Second) })
	return g
}
