package httpproxy

import (
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"

	"wharf/internal/testenv"
	"wharf/internal/testpki"
)

// Regression: TLS termination offered Go's default TLS 1.2 suites, CBC
// with SHA-1 among them. curl limited to TLS 1.2 and ECDHE-ECDSA-AES128-SHA
// is refused by default and served once tls_ciphers lists that suite.
func TestTLSCiphersWithCurl(t *testing.T) {
	curl := testenv.Tool(t, "curl")
	s := reporter(t, "s")
	ca := testpki.NewCA(t, "test CA")
	_, certFile, keyFile := ca.ServerCert(t, "site.example.com")
	f := func(ciphers, curlCiphers string, wantOK bool) {
		t.Helper()
		r := start(t, fmt.Sprintf(`
[frontend.f]
mode = "http"
bind = ["tcp://127.0.0.1:0"]
backend = "b"
tls_cert = %q
tls_key = %q
%s
[backend.b]
check = "none"
[[backend.b.server]]
address = %q
`, certFile, keyFile, ciphers, hostPort(s)))
		port := r.f.Addrs()[0].(*net.TCPAddr).Port
		out, err := exec.Command(curl, "-sS", "--max-time", "5", "--cacert", ca.File, "--tls-max", "1.2", "--ciphers", curlCiphers,
			"--resolve", fmt.Sprintf("site.example.com:%d:127.0.0.1", port),
			fmt.Sprintf("https://site.example.com:%d/hello", port)).CombinedOutput()
		if ok := err == nil && strings.HasPrefix(string(out), "s /hello"); ok != wantOK {
			t.Errorf("tls_ciphers %q, curl --ciphers %s: served %v, want %v (%v: %s)", ciphers, curlCiphers, ok, wantOK, err, out)
		}
	}
	f("", "ECDHE-ECDSA-AES128-SHA", false)
	f("", "ECDHE-ECDSA-AES128-GCM-SHA256", true)
	f("", "ECDHE-ECDSA-CHACHA20-POLY1305", true)
	f(`tls_ciphers = ["TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"]`, "ECDHE-ECDSA-AES128-SHA", true)
}
