package deadletter

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"wharf/metrics"
)

func TestRecordsReadBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "dead.jsonl")
	reg := metrics.NewRegistry()
	d, err := Open(path, reg)
	if err != nil {
		t.Fatal(err)
	}
	peer := netip.MustParseAddrPort("192.0.2.7:5140")
	cases := []struct {
		reason string
		raw    []byte
	}{
		{"parse_error", []byte(`<13>1 not-a-time h a - - - "quoted" \ back`)},
		{"framing_error", []byte{0xff, 0x00, 'x', '\n'}}, // not UTF-8: hex
		{"oversize", nil},
	}
	for _, c := range cases {
		d.Put("edge", "tcp://127.0.0.1:5514", c.reason, peer, c.raw)
	}
	d.Close()

	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	i := 0
	for sc.Scan() {
		var rec struct{ Time, Frontend, Bind, Reason, Peer, Raw, Raw_hex string }
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("line %d is not JSON: %v: %s", i, err, sc.Text())
		}
		c := cases[i]
		got := []byte(rec.Raw)
		if rec.Raw_hex != "" {
			got, _ = hex.DecodeString(rec.Raw_hex)
		}
		if rec.Reason != c.reason || rec.Frontend != "edge" || rec.Peer != "192.0.2.7:5140" || string(got) != string(c.raw) {
			t.Errorf("line %d = %+v, want reason %s raw %q", i, rec, c.reason, c.raw)
		}
		i++
	}
	if i != len(cases) {
		t.Fatalf("%d lines, want %d", i, len(cases))
	}
	if n := reg.Counter("wharf_deadletter_written_total", "", "path", path).Load(); n != 3 {
		t.Errorf("written counter %d", n)
	}
}

func TestOpenErrorSaysWhere(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "file"), nil, 0o644)
	if _, err := Open(filepath.Join(dir, "file", "dead.jsonl"), metrics.NewRegistry()); err == nil {
		t.Fatal("opened a file under a regular file")
	}
}

// Regression: dead_letter followed a symbolic link at its path.
func TestOpenRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	os.WriteFile(victim, []byte("keep\n"), 0o600)
	path := filepath.Join(dir, "dead.jsonl")
	os.Symlink(victim, path)
	d, err := Open(path, metrics.NewRegistry())
	if err == nil {
		d.Put("edge", "tcp://127.0.0.1:1", "parse_error", netip.AddrPort{}, []byte("x"))
		d.Close()
		t.Fatal("opened a dead-letter file through a symbolic link")
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep\n" {
		t.Errorf("link target written: %q", b)
	}
}
