package compare

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The "h2" scenario: h2load (Debian's nghttp2-client) opens a few TLS
// connections, h2 by ALPN, and keeps several streams in flight on each;
// the relay forwards them to the same Go backend as the "http" scenario,
// over HTTP/1.1.

// h2Shape splits the http scenario's connection count into h2load's
// connections and streams per connection, the same requests in flight.
func h2Shape(conns int) (c, m int) {
	if conns <= 0 {
		conns = 64
	}
	c = max(1, conns/8)
	return c, max(1, conns/c)
}

// writeBenchCert writes a self-signed P-256 certificate for 127.0.0.1
// into dir (once): cert and key files, and both in one file (HAProxy's
// crt).
func writeBenchCert(dir string) (cert, key, both string, err error) {
	cert, key, both = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "both.pem")
	if _, err := os.Stat(both); err == nil {
		return cert, key, both, nil
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", "", err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "wharf-bench"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		return "", "", "", err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return "", "", "", err
	}
	cp := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	kp := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
	for _, f := range []struct {
		name string
		b    []byte
	}{{cert, cp}, {key, kp}, {both, append(append([]byte{}, cp...), kp...)}} {
		if err := os.WriteFile(f.name, f.b, 0o600); err != nil {
			return "", "", "", err
		}
	}
	return cert, key, both, nil
}

// h2loadResult is what runH2 takes from h2load's summary.
type h2loadResult struct {
	duration                    time.Duration
	succeeded, failed, errored  uint64
	non2xx                      uint64
	mean, max                   time.Duration
	total, timeout, status2xxOK uint64
}

// parseH2load reads h2load's summary:
//
//	finished in 5.00s, 31234.56 req/s, 36.50MB/s
//	requests: 156172 total, 156172 started, 156172 done, 156172 succeeded, 0 failed, 0 errored, 0 timeout
//	status codes: 156172 2xx, 0 3xx, 0 4xx, 0 5xx
//	time for request:   245us   12.30ms    1.20ms   ...   (min max mean sd +/- sd)
func parseH2load(out string) (h2loadResult, error) {
	var r h2loadResult
	seen := 0
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "finished in "):
			f := strings.Fields(strings.TrimPrefix(line, "finished in "))
			if len(f) == 0 {
				continue
			}
			d, err := time.ParseDuration(strings.TrimSuffix(f[0], ","))
			if err != nil {
				return r, fmt.Errorf("bench/compare: h2load duration %q: %v", f[0], err)
			}
			r.duration = d
			seen++
		case strings.HasPrefix(line, "requests: "):
			var started, done uint64
			if _, err := fmt.Sscanf(line, "requests: %d total, %d started, %d done, %d succeeded, %d failed, %d errored, %d timeout",
				&r.total, &started, &done, &r.succeeded, &r.failed, &r.errored, &r.timeout); err != nil {
				return r, fmt.Errorf("bench/compare: h2load requests line %q: %v", line, err)
			}
			seen++
		case strings.HasPrefix(line, "status codes: "):
			var s3, s4, s5 uint64
			if _, err := fmt.Sscanf(line, "status codes: %d 2xx, %d 3xx, %d 4xx, %d 5xx", &r.status2xxOK, &s3, &s4, &s5); err != nil {
				return r, fmt.Errorf("bench/compare: h2load status line %q: %v", line, err)
			}
			r.non2xx = s4 + s5
			seen++
		case strings.HasPrefix(line, "time for request:"):
			f := strings.Fields(strings.TrimPrefix(line, "time for request:"))
			if len(f) >= 3 {
				r.max, _ = time.ParseDuration(f[1])
				r.mean, _ = time.ParseDuration(f[2])
			}
		}
	}
	if seen < 3 {
		return r, fmt.Errorf("bench/compare: no summary in h2load's output: %s", oneLine(out))
	}
	return r, nil
}

// runH2 is one HTTP/2 proxy run: backend, relay, one checked request,
// then h2load through the relay for the scenario's duration.
func runH2(ctx context.Context, o Options, sc Scenario, rl *Relay, dir, label string) Run {
	fail := func(err error) Run { return Run{Err: err.Error()} }
	h2load, err := exec.LookPath("h2load")
	if err != nil {
		return fail(errors.New("h2load not installed (nghttp2-client; bash bench/peers/install.sh)"))
	}
	backend, stopBackend, err := startHTTPBackend()
	if err != nil {
		return fail(err)
	}
	defer stopBackend()
	p, in, err := startRelay(ctx, o, sc, rl, dir, backend)
	if err != nil {
		return fail(err)
	}
	defer p.Stop(5 * time.Second)
	url := "https://" + in + "/"
	if err := checkH2(ctx, url); err != nil {
		return fail(err)
	}
	secs := max(1, int(sc.Duration.Round(time.Second)/time.Second))
	c, m := h2Shape(o.HTTPConns)
	cmd := exec.CommandContext(ctx, h2load, "-c", strconv.Itoa(c), "-m", strconv.Itoa(m), "-t", strconv.Itoa(max(1, o.HTTPThreads)),
		"-D", strconv.Itoa(secs), url)
	r, out, err := meteredRun(cmd, p, o.Progress, label, "h2load", secs)
	if err != nil {
		return fail(err)
	}
	h, err := parseH2load(out)
	if err != nil {
		return fail(err)
	}
	r.Requests, r.Non2xx, r.SocketErrors = h.succeeded, h.non2xx, h.failed+h.errored+h.timeout
	r.Latency.Count, r.Latency.Mean, r.Latency.Max = h.succeeded, h.mean, h.max
	if h.duration > 0 {
		r.Delivered = float64(h.succeeded) / h.duration.Seconds()
	}
	if h.succeeded > 0 {
		r.CPUPerM = r.CPU / float64(h.succeeded) * 1e6
	}
	if r.CPU > 0 {
		r.MsgPerCPU = float64(h.succeeded) / r.CPU
	}
	if h.succeeded == 0 {
		r.Err = "h2load completed no request: " + oneLine(out)
	}
	return r
}

// checkH2 sends one HTTP/2 request and expects the backend's body.
func checkH2(ctx context.Context, url string) error {
	var protos http.Protocols
	protos.SetHTTP2(true)
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, Protocols: &protos}
	defer tr.CloseIdleConnections()
	c := &http.Client{Timeout: 5 * time.Second, Transport: tr}
	var last error
	for i := 0; i < 20 && ctx.Err() == nil; i++ {
		resp, err := c.Get(url)
		if err == nil {
			b, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && resp.ProtoMajor == 2 && rerr == nil && bytes.Equal(b, httpBody) {
				return nil
			}
			err = fmt.Errorf("%s status %d, %d body bytes (%v)", resp.Proto, resp.StatusCode, len(b), rerr)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("bench/compare: first HTTP/2 request through the relay to %s failed: %v", url, last)
}
