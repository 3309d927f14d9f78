package main

import (
	"bytes"
	"flag"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"wharf/conf"
	"wharf/internal/testenv"
	"wharf/metrics"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/golden/*/expected from the output")

// TestGolden runs each case in testdata/golden/<case>/ end to end through
// a real gateway in this process:
//
//   - wharf.toml is the config; {{DIR}} is a temporary directory for the
//     sinks' files. Binds use port 0: the test reads the bound address
//     back, so nothing can take the port between choosing and binding.
//   - input is sent to the first bind of the config's first frontend
//     (sorted by name): over tcp:// as it is (one message per line, LF
//     framing), over udp:// one datagram per line.
//   - expected holds every file the sinks wrote, each after a line
//     "== NAME" (sorted by name), once the gateway has stopped (so
//     everything was flushed). Receive times (json "received",
//     dead-letter "time"), the bind's port and peer ports, which change
//     from run to run, are replaced by "RECEIVED" and "PORT".
//
// go test ./cmd/wharf -run TestGolden -update rewrites the expected files.
func TestGolden(t *testing.T) {
	cases, err := filepath.Glob("testdata/golden/*/wharf.toml")
	if err != nil || len(cases) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	for _, c := range cases {
		dir := filepath.Dir(c)
		t.Run(filepath.Base(dir), func(t *testing.T) { runGolden(t, dir) })
	}
}

func runGolden(t *testing.T, dir string) {
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	out := t.TempDir()
	text := strings.ReplaceAll(string(read("wharf.toml")), "{{DIR}}", out)
	cfg, err := conf.Parse([]byte(text), filepath.Join(dir, "wharf.toml"))
	if err != nil {
		t.Fatal(err)
	}
	g, err := build(cfg, metrics.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.start(); err != nil {
		g.stop(5 * time.Second)
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			g.stop(5 * time.Second)
		}
	}
	defer stop()

	// The first bind of the first frontend, as bound.
	first := sortedKeys(cfg.Frontends)[0]
	var bind, addr string
	for _, b := range g.live().Binds {
		if b.Frontend == first && (bind == "" || b.Bind < bind) {
			bind, addr = b.Bind, b.Addr
		}
	}
	if addr == "" {
		t.Fatalf("frontend %q has no running bind", first)
	}
	input := read("input")
	lines := strings.SplitAfter(strings.TrimSuffix(string(input), "\n"), "\n")
	if strings.HasPrefix(bind, "udp://") {
		c, err := net.Dial("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range lines {
			if _, err := c.Write([]byte(strings.TrimSuffix(l, "\n"))); err != nil {
				t.Fatal(err)
			}
		}
		c.Close()
	} else {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(input); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}

	// Wait until the gateway has handled all of the input (delivered,
	// dropped or refused), then stop it so every sink has flushed. Over
	// tcp that is when it has closed the connection: it reads and frames
	// everything before it sees the end. Over udp, when it has counted a
	// message per datagram.
	testenv.Eventually(t, "all of the input handled", func() bool {
		var received, conns, closed uint64
		for _, l := range g.listeners {
			st := l.Stats()
			received += st.Received
			conns += st.ConnectionsTotal
			if st.Connections == 0 {
				closed++
			}
		}
		if strings.HasPrefix(bind, "udp://") {
			return received >= uint64(len(lines))
		}
		return conns >= 1 && closed == uint64(len(g.listeners))
	})
	stop()

	got := collectOutput(t, out)
	if *updateGolden {
		if err := os.WriteFile(filepath.Join(dir, "expected"), got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if want := read("expected"); !bytes.Equal(got, want) {
		t.Errorf("output differs from %s/expected\n--- got\n%s--- want\n%s", dir, got, want)
	}
}

var (
	receivedField = regexp.MustCompile(`"(received|time)":"[^"]*"`)
	portField     = regexp.MustCompile(`"port":[0-9]+`)
	peerPort      = regexp.MustCompile(`("peer":"(?:\[[^\]]*\]|[0-9.]+)):[0-9]+"`)
)

// collectOutput renders every file under dir as "== NAME" and its
// contents, with receive times and peer ports masked.
func collectOutput(t *testing.T, dir string) []byte {
	var names []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			names = append(names, p)
		}
		return nil
	})
	sort.Strings(names)
	var b bytes.Buffer
	for _, p := range names {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		data = receivedField.ReplaceAll(data, []byte(`"$1":"RECEIVED"`))
		data = peerPort.ReplaceAll(data, []byte(`$1:PORT"`))
		data = portField.ReplaceAll(data, []byte(`"port":PORT`))
		rel, _ := filepath.Rel(dir, p)
		b.WriteString("== " + rel + "\n")
		b.Write(data)
		if len(data) > 0 && data[len(data)-1] != '\n' {
			b.WriteString("\n")
		}
	}
	return b.Bytes()
}
