package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"wharf/internal/testenv"
)

const tlsConfig = `
[admin]
listen = "{{ADMIN}}"
[frontend.secure]
bind = ["tls://127.0.0.1:%d"]
tls_cert = "{{DIR}}/server.pem"
tls_key = "{{DIR}}/server.key"
tls_client_ca = "{{DIR}}/ca.pem"
sinks = ["out"]
[sink.out]
type = "file"
path = "{{DIR}}/messages.jsonl"
encoding = "json"
batch_timeout = "5ms"
`

// opensslRun runs openssl with args in dir, failing the test on error.
func opensslRun(t *testing.T, openssl, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command(openssl, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// opensslIssue makes name.key and name.pem in dir, signed by ca (ca.pem,
// ca.key), with the given extensions.
func opensslIssue(t *testing.T, openssl, dir, name, ext string) {
	t.Helper()
	os.WriteFile(filepath.Join(dir, name+".ext"), []byte(ext+"\n"), 0o600)
	opensslRun(t, openssl, dir, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-subj", "/CN="+name, "-keyout", name+".key", "-out", name+".csr")
	opensslRun(t, openssl, dir, "x509", "-req", "-in", name+".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
		"-CAcreateserial", "-days", "1", "-extfile", name+".ext", "-out", name+".pem")
}

// TestTLSBindWithRealClient runs wharf with a mutual-TLS tls:// bind and
// certificates made by the openssl CLI; openssl s_client sends
// octet-counted messages, a client without a certificate is refused and
// counted, and after the certificate files are replaced, SIGHUP makes new
// handshakes see the new certificate without closing the port.
func TestTLSBindWithRealClient(t *testing.T) {
	openssl := testenv.Tool(t, "openssl")
	dir := t.TempDir()
	opensslRun(t, openssl, dir, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-subj", "/CN=wharf e2e CA", "-days", "1", "-keyout", "ca.key", "-out", "ca.pem")
	opensslIssue(t, openssl, dir, "server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth")
	opensslIssue(t, openssl, dir, "client", "extendedKeyUsage=clientAuth")

	port := testenv.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	in := startIn(t, dir, fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), fmt.Sprintf(tlsConfig, port))

	const n = 200
	var msgs strings.Builder
	for i := range n {
		m := fmt.Sprintf("<134>1 2026-11-25T10:00:00Z e2e-host tlsapp - - - over tls %d", i)
		fmt.Fprintf(&msgs, "%d %s", len(m), m)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sclient := func(extra ...string) ([]byte, error) {
		args := append([]string{"s_client", "-connect", addr, "-CAfile", filepath.Join(dir, "ca.pem"), "-verify_return_error", "-quiet", "-no_ign_eof"}, extra...)
		cmd := exec.CommandContext(ctx, openssl, args...)
		cmd.Stdin = strings.NewReader(msgs.String())
		return cmd.CombinedOutput()
	}
	if out, err := sclient("-cert", filepath.Join(dir, "client.pem"), "-key", filepath.Join(dir, "client.key")); err != nil {
		t.Fatalf("openssl s_client: %v\n%s", err, out)
	}
	lines := readLines(t, filepath.Join(dir, "messages.jsonl"), n, 10*time.Second)
	if len(lines) != n {
		t.Fatalf("file sink has %d lines, want %d", len(lines), n)
	}
	rec := jsonRecord(t, lines[n-1])
	if rec["transport"] != "tls" || rec["message"] != fmt.Sprintf("over tls %d", n-1) || rec["app_name"] != "tlsapp" {
		t.Fatalf("last record %v", rec)
	}

	// No client certificate: refused during the handshake, counted, nothing written.
	sclient()
	if v := in.waitMetric(1, 5*time.Second, "wharf_frontend_rejected_total", `reason="tls_handshake"`); v != 1 {
		t.Fatalf("tls_handshake rejections = %v, want 1", v)
	}
	if got := in.metric("wharf_frontend_received_total"); got != n {
		t.Fatalf("received %v, want %d", got, n)
	}

	// Rotation: a new server certificate from the same CA, then SIGHUP.
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	pool.AppendCertsFromPEM(caPEM)
	clientPair, err := tls.LoadX509KeyPair(filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key"))
	if err != nil {
		t.Fatal(err)
	}
	servedCN := func() string {
		t.Helper()
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{clientPair}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if cn := servedCN(); cn != "server" {
		t.Fatalf("serving CN %q, want server", cn)
	}
	opensslIssue(t, openssl, dir, "server2", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth")
	for _, ext := range []string{".pem", ".key"} {
		if err := os.Rename(filepath.Join(dir, "server2"+ext), filepath.Join(dir, "server"+ext)); err != nil {
			t.Fatal(err)
		}
	}
	in.cmd.Process.Signal(syscall.SIGHUP)
	testenv.Eventually(t, "the new certificate after SIGHUP", func() bool { return servedCN() == "server2" })
	if out, err := sclient("-cert", filepath.Join(dir, "client.pem"), "-key", filepath.Join(dir, "client.key")); err != nil {
		t.Fatalf("openssl s_client after rotation: %v\n%s", err, out)
	}
	if lines := readLines(t, filepath.Join(dir, "messages.jsonl"), 2*n, 10*time.Second); len(lines) != 2*n {
		t.Fatalf("file sink has %d lines after rotation, want %d", len(lines), 2*n)
	}
	in.stop()
}

// TestTLSEndToEndToSyslogNG relays over TLS both ways: a Go client sends
// octet-counted messages into a tls:// bind, wharf forwards them over
// mutual TLS to a real syslog-ng (client certificate required), and every
// message arrives byte for byte.
func TestTLSEndToEndToSyslogNG(t *testing.T) {
	openssl := testenv.Tool(t, "openssl")
	collector := testenv.Env(t, "WHARF_COLLECTOR_MTLS")
	collectorCA := testenv.Env(t, "WHARF_COLLECTOR_CA")
	clientCert := testenv.Env(t, "WHARF_COLLECTOR_CLIENT_CERT")
	clientKey := testenv.Env(t, "WHARF_COLLECTOR_CLIENT_KEY")
	outDir := testenv.Env(t, "WHARF_COLLECTOR_OUT")
	dir := t.TempDir()
	opensslRun(t, openssl, dir, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-subj", "/CN=wharf e2e CA", "-days", "1", "-keyout", "ca.key", "-out", "ca.pem")
	opensslIssue(t, openssl, dir, "server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth")
	port := testenv.FreePort(t)
	in := startIn(t, dir, fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), fmt.Sprintf(`
[admin]
listen = "{{ADMIN}}"
[frontend.secure]
bind = ["tls://127.0.0.1:%d"]
tls_cert = "{{DIR}}/server.pem"
tls_key = "{{DIR}}/server.key"
sinks = ["collector"]
[sink.collector]
type = "syslog"
servers = ["tls://%s"]
tls_ca = "%s"
tls_cert = "%s"
tls_key = "%s"
tls_server_name = "localhost"
`, port, collector, collectorCA, clientCert, clientKey))

	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	pool.AppendCertsFromPEM(caPEM)
	c, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	run := fmt.Sprintf("tlsrun%d", time.Now().UnixNano())
	const n = 3000
	want := map[string]bool{}
	var b strings.Builder
	for i := range n {
		m := fmt.Sprintf(`<165>1 2026-11-25T10:00:00.000001Z relay-%d app 42 ID7 [ex@32473 run="%s"] grüße über tls %d`, i%3, run, i)
		want[m] = true
		fmt.Fprintf(&b, "%d %s", len(m), m)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if got := in.waitMetric(n, 30*time.Second, "wharf_sink_sent_total", `sink="collector"`); got != n {
		t.Fatalf("sent %v, want %d", got, n)
	}
	got := waitLinesWith(filepath.Join(outDir, "mtls.log"), run, n, 20*time.Second)
	if len(got) != n {
		t.Fatalf("collector wrote %d of our %d messages", len(got), n)
	}
	for _, l := range got {
		if !want[l] {
			t.Fatalf("collector line not sent by us: %q", l)
		}
		delete(want, l)
	}
	in.stop()
}

// TestMTLSCollectorWithoutClientCert: a sink without tls_cert pointed at
// a real syslog-ng that requires client certificates. With TLS 1.3 the
// refusal comes after wharf's side of the handshake: before, every batch
// was written into the doomed connection and counted sent (an audit:
// 500 of 500 "sent", server_up 1, /readyz ready, none in the collector's
// file). Now the dial fails naming the missing certificate: nothing is
// counted sent, the server shows down and /readyz is 503.
func TestMTLSCollectorWithoutClientCert(t *testing.T) {
	collector := testenv.Env(t, "WHARF_COLLECTOR_MTLS")
	collectorCA := testenv.Env(t, "WHARF_COLLECTOR_CA")
	outDir := testenv.Env(t, "WHARF_COLLECTOR_OUT")
	port := testenv.FreePort(t)
	admin := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	in := startIn(t, t.TempDir(), admin, fmt.Sprintf(`
[admin]
listen = "{{ADMIN}}"
[frontend.edge]
bind = ["tcp://127.0.0.1:%d"]
sinks = ["collector"]
[sink.collector]
type = "syslog"
servers = ["tls://%s"]
tls_ca = "%s"
tls_server_name = "localhost"
`, port, collector, collectorCA))
	run := fmt.Sprintf("nocert%d", time.Now().UnixNano())
	msgs := make([]string, 50)
	for i := range msgs {
		msgs[i] = fmt.Sprintf("<13>1 2026-12-06T03:00:00Z h app - - [x@32473 run=\"%s\"] %d", run, i)
	}
	sendTCP(t, fmt.Sprintf("127.0.0.1:%d", port), msgs)
	if !testenv.Poll(10*time.Second, func() bool { return in.metric("wharf_sink_write_errors_total", `sink="collector"`) > 0 }) {
		t.Fatalf("no failed write to a collector that refuses us; sent_total = %v", in.metric("wharf_sink_sent_total", `sink="collector"`))
	}
	if code := httpStatus(t, "http://"+admin+"/readyz"); code != 503 {
		t.Errorf("/readyz = %d, want 503 while the collector refuses every connection", code)
	}
	if !in.waitLog("asked for a client certificate", 5*time.Second) {
		t.Errorf("no log line naming the missing client certificate")
	}
	time.Sleep(500 * time.Millisecond)
	if sent := in.metric("wharf_sink_sent_total", `sink="collector"`); sent != 0 {
		t.Errorf("wharf_sink_sent_total = %v, want 0: the collector took none", sent)
	}
	if got := waitLinesWith(filepath.Join(outDir, "mtls.log"), run, 1, time.Second); len(got) != 0 {
		t.Errorf("the collector wrote %d of them without a client certificate", len(got))
	}
}
