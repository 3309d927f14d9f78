package ingest

import (
	"crypto/tls"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"wharf/conf"
	"wharf/internal/testenv"
	"wharf/internal/testpki"
)

// Regression: a failed TLS handshake was counted but logged at debug
// level only, so an operator debugging a sender that could not connect
// found nothing in the log at the default level. Now a warning names the
// bind, the peer and crypto/tls's reason, on tls:// and relp+tls://.
func TestTLSHandshakeFailureLogged(t *testing.T) {
	for _, scheme := range []string{"tls", "relp+tls"} {
		t.Run(scheme, func(t *testing.T) {
			ca := testpki.NewCA(t, "test CA")
			fe := tlsFrontend(t, ca)
			fe.TLSMinVersion = "1.3"
			var logs syncBuf
			l, reg := listenLogged(t, scheme, fe, &logs)
			if _, err := dialTLS(t, l.Addr(), &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", MaxVersion: tls.VersionTLS12}); err == nil {
				t.Fatal("a TLS 1.2 client was accepted with tls_min_version 1.3")
			}
			testenv.Eventually(t, "the rejection counted", func() bool { return counter(reg, "wharf_frontend_rejected_total", "tls_handshake") == 1 })
			line := findLine(t, &logs, "TLS handshake failed")
			t.Log(line)
			for _, want := range []string{"level=WARN", "bind=" + scheme + "://127.0.0.1:0", "peer=127.0.0.1:", "client offered only unsupported versions", "suppressed=0"} {
				if !strings.Contains(line, want) {
					t.Errorf("the log line does not say %q:\n%s", want, line)
				}
			}
		})
	}
}

// A silent client is named by the setting that ended it; one that
// closes before sending a byte (a TCP health check, a port scan) is
// counted but not logged at the default level.
func TestTLSHandshakeTimeoutLogged(t *testing.T) {
	ca := testpki.NewCA(t, "test CA")
	fe := tlsFrontend(t, ca)
	fe.HeaderTimeout = conf.Duration{Duration: 200 * time.Millisecond}
	var logs syncBuf
	l, reg := listenLogged(t, "tls", fe, &logs)
	probe, err := net.Dial("tcp", l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	probe.Close()
	testenv.Eventually(t, "the probe counted", func() bool { return counter(reg, "wharf_frontend_rejected_total", "tls_handshake") == 1 })
	silent, err := net.Dial("tcp", l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	testenv.Eventually(t, "the silent client counted", func() bool { return counter(reg, "wharf_frontend_rejected_total", "tls_handshake") == 2 })
	line := findLine(t, &logs, "TLS handshake failed")
	if !strings.Contains(line, "no complete handshake within header_timeout 200ms") {
		t.Errorf("the log line does not name header_timeout:\n%s", line)
	}
	if n := strings.Count(logs.String(), "TLS handshake failed"); n != 1 {
		t.Errorf("%d lines for a probe and a silent client, want 1 (the probe sent nothing):\n%s", n, logs.String())
	}
}

// 1,000 failed handshakes within a second or two make one line a second,
// and the lines account for every failure: each stands for itself and
// the ones suppressed since the last.
func TestTLSHandshakeFailuresLogThrottled(t *testing.T) {
	const n = 1000
	ca := testpki.NewCA(t, "test CA")
	var logs syncBuf
	l, reg := listenLogged(t, "tls", tlsFrontend(t, ca), &logs)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				c, err := net.Dial("tcp", l.Addr())
				if err != nil {
					t.Error(err)
					return
				}
				c.Write([]byte(octet(valid))) // plaintext syslog to a tls:// bind
				c.SetReadDeadline(time.Now().Add(3 * time.Second))
				io.Copy(io.Discard, c)
				c.Close()
			}
		}()
	}
	wg.Wait()
	testenv.Eventually(t, "every failure counted", func() bool { return counter(reg, "wharf_frontend_rejected_total", "tls_handshake") == n })
	secs := time.Since(start).Seconds()
	lines := regexp.MustCompile(`msg="TLS handshake failed[^\n]*suppressed=(\d+)`).FindAllStringSubmatch(logs.String(), -1)
	t.Logf("%d failed handshakes in %.2fs: %d log lines", n, secs, len(lines))
	if len(lines) == 0 || len(lines) > 2+int(secs) {
		t.Fatalf("%d log lines for %d failed handshakes in %.2fs, want 1 to %d", len(lines), n, secs, 2+int(secs))
	}
	if !strings.Contains(lines[0][0], "first record does not look like a TLS handshake") {
		t.Errorf("the line does not give crypto/tls's reason:\n%s", lines[0][0])
	}
	// One more a second later is logged, standing for those held back.
	time.Sleep(time.Second + 50*time.Millisecond)
	c, err := net.Dial("tcp", l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte(octet(valid)))
	io.Copy(io.Discard, c)
	c.Close()
	testenv.Eventually(t, "the last line", func() bool {
		return len(regexp.MustCompile(`msg="TLS handshake failed`).FindAllString(logs.String(), -1)) == len(lines)+1
	})
	sum := 0
	for _, m := range regexp.MustCompile(`msg="TLS handshake failed[^\n]*suppressed=(\d+)`).FindAllStringSubmatch(logs.String(), -1) {
		k, _ := strconv.Atoi(m[1])
		sum += k + 1
	}
	if sum != n+1 {
		t.Errorf("the lines stand for %d failures, want %d", sum, n+1)
	}
}

// Regression: a connection closed at frame_timeout (a sender that starts
// a message and never finishes it) was counted but not logged. Now a
// warning names the bind, the peer and the setting, on every stream bind.
func TestFrameTimeoutLogged(t *testing.T) {
	ca := testpki.NewCA(t, "test CA")
	for _, scheme := range []string{"tcp", "tls", "relp"} {
		t.Run(scheme, func(t *testing.T) {
			fe := &conf.Frontend{FrameTimeout: conf.Duration{Duration: 200 * time.Millisecond}}
			var c net.Conn
			var logs syncBuf
			if scheme == "tls" {
				fe = tlsFrontend(t, ca)
				fe.FrameTimeout = conf.Duration{Duration: 200 * time.Millisecond}
			}
			l, reg := listenLogged(t, scheme, fe, &logs)
			var err error
			if scheme == "tls" {
				c, err = dialTLS(t, l.Addr(), &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
			} else {
				c, err = net.Dial("tcp", l.Addr())
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if scheme == "relp" {
				p := &relpPeer{t: t, c: c}
				p.open()
				c.Write([]byte("2 syslog 500 <13>1 2026-12-06T10:00:00Z h app - - - never finished"))
			} else {
				c.Write([]byte("500 <13>1 2026-12-06T10:00:00Z h app - - - never finished"))
			}
			testenv.Eventually(t, "closed at frame_timeout", func() bool { return counter(reg, "wharf_frontend_closed_total", "frame_timeout") == 1 })
			line := findLine(t, &logs, "frame_timeout")
			t.Log(line)
			for _, want := range []string{"level=WARN", "bind=" + scheme + "://127.0.0.1:0", "peer=127.0.0.1:", "no complete frame within frame_timeout 200ms", "suppressed=0"} {
				if !strings.Contains(line, want) {
					t.Errorf("the log line does not say %q:\n%s", want, line)
				}
			}
		})
	}
}

// findLine waits up to 2 s for a log line containing sub and returns it.
func findLine(t *testing.T, logs *syncBuf, sub string) string {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, sub) {
				return l
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line with %q at the default level:\n%s", sub, logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
