package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"wharf/internal/testpki"
)

// exampleEnv writes, in a temp dir, what the examples refer to under
// /etc/wharf/tls (certificates and keys from a test CA) and
// /etc/wharf/secrets (a Kafka password file), and returns a function that
// rewrites an example's paths there: /etc/wharf/tls/ and
// /etc/wharf/secrets/ to those, /var/lib/wharf/ and /var/log/ to scratch directories.
func exampleEnv(t *testing.T) func(string) string {
	t.Helper()
	dir := t.TempDir()
	tlsDir := filepath.Join(dir, "tls")
	if err := os.MkdirAll(tlsDir, 0o700); err != nil {
		t.Fatal(err)
	}
	ca := testpki.NewCA(t, "examples CA")
	caPEM, err := os.ReadFile(ca.File)
	if err != nil {
		t.Fatal(err)
	}
	copyTo := func(src, name string) {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		testpki.WriteFile(t, filepath.Join(tlsDir, name), b)
	}
	for _, name := range []string{"clients-ca.pem", "collector-ca.pem", "kafka-ca.pem", "siem-ca.pem"} {
		testpki.WriteFile(t, filepath.Join(tlsDir, name), caPEM)
	}
	cert, key := ca.Issue(t, "relay.example.net", true)
	copyTo(cert, "server.pem")
	copyTo(key, "server.key")
	cert, key = ca.Issue(t, "relay-client", false)
	copyTo(cert, "client.pem")
	copyTo(key, "client.key")
	secrets := filepath.Join(dir, "secrets")
	if err := os.MkdirAll(secrets, 0o700); err != nil {
		t.Fatal(err)
	}
	testpki.WriteFile(t, filepath.Join(secrets, "kafka-password"), []byte("s3cret\n"))
	return strings.NewReplacer(
		"/etc/wharf/tls/", tlsDir+"/",
		"/etc/wharf/secrets/", secrets+"/",
		"/var/lib/wharf/", filepath.Join(dir, "lib")+"/",
		"/var/log/", filepath.Join(dir, "log")+"/",
	).Replace
}

// Every example config is valid as `wharf check` sees it: it loads, its
// sinks build and its routes compile, with no warning.
func TestExamplesAreValid(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "examples", "*.toml"))
	if err != nil {
		t.Fatal(err)
	}
	// The examples the README and docs/migrating.md point to, by what
	// they show (issue #18.7): a deleted one fails here.
	have := map[string]bool{}
	for _, f := range files {
		have[filepath.Base(f)] = true
	}
	for _, want := range []string{"wharf.toml", "edge-to-kafka.toml", "firewall-to-siem.toml",
		"tls-in-out.toml", "kafka-sasl-ssl.toml", "disk-buffer.toml", "per-host-files.toml"} {
		if !have[want] {
			t.Errorf("examples/%s is missing", want)
		}
	}
	rewrite := exampleEnv(t)
	dir := t.TempDir()
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(data), "later release") {
			t.Errorf("%s promises a later release", f)
		}
		path := filepath.Join(dir, filepath.Base(f))
		if err := os.WriteFile(path, []byte(rewrite(string(data))), 0o644); err != nil {
			t.Fatal(err)
		}
		var out, errOut bytes.Buffer
		if code := run([]string{"check", "-c", path}, &out, &errOut); code != 0 {
			t.Errorf("wharf check -c %s: exit %d\n%s", f, code, errOut.String())
			continue
		}
		if !strings.Contains(out.String(), "is valid") {
			t.Errorf("wharf check -c %s: output %q", f, out.String())
		}
		if strings.Contains(errOut.String(), "warning") {
			t.Errorf("wharf check -c %s warns: %s", f, errOut.String())
		}
	}
}

// TestExamplesShowWhatTheySay: each new example's resolved config (wharf
// check's description) has the feature it is named for.
func TestExamplesShowWhatTheySay(t *testing.T) {
	rewrite := exampleEnv(t)
	dir := t.TempDir()
	f := func(name string, wants ...string) {
		t.Helper()
		data, err := os.ReadFile(filepath.Join("..", "..", "examples", name))
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(rewrite(string(data))), 0o644); err != nil {
			t.Fatal(err)
		}
		var out, errOut bytes.Buffer
		if code := run([]string{"check", "-c", path}, &out, &errOut); code != 0 {
			t.Fatalf("wharf check %s: exit %d\n%s", name, code, errOut.String())
		}
		for _, w := range wants {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%s: wharf check output lacks %q:\n%s", name, w, out.String())
			}
		}
	}
	f("tls-in-out.toml", "tls 0.0.0.0:6514 -> frontend branches", "client certificates required", "servers tls://10.40.0.5:6514", "client cert ")
	f("kafka-sasl-ssl.toml", "SCRAM-SHA-512", "tls")
	f("disk-buffer.toml", "buffer of sink central")
	f("per-host-files.toml", "{hostname}/{app_name}-{date}.log", "-> drop", "encoding traditional")
	f("firewall-to-siem.toml", "servers tls://10.30.0.5:6514", "tls 0.0.0.0:6514 -> frontend firewalls")
}
