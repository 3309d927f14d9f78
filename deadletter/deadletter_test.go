package deadletter

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"wharf/internal/testenv"
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

// newUnstarted is Open without the writer goroutine: tests start run
// themselves, on the file they choose.
func newUnstarted(reg *metrics.Registry) *File {
	return &File{
		ch:      make(chan record, queueLen),
		done:    make(chan struct{}),
		written: reg.Counter("wharf_deadletter_written_total", "", "path", "t"),
		lost:    reg.Counter("wharf_deadletter_lost_total", "", "path", "t"),
	}
}

// Regression: the queue held up to 4096 x 64 KiB = 256 MiB; it is bounded
// by bytes too.
func TestQueueByteCap(t *testing.T) {
	d := newUnstarted(metrics.NewRegistry())
	big := make([]byte, 100<<10) // kept: maxRaw
	for range 200 {
		d.Put("edge", "tcp://127.0.0.1:1", "oversize", netip.AddrPort{}, big)
	}
	want := maxQueuedBytes / maxRaw
	if n := len(d.ch); n != want {
		t.Errorf("%d records queued, want %d (8 MiB of 64 KiB)", n, want)
	}
	if n := d.lost.Load(); n != uint64(200-want) {
		t.Errorf("lost %d, want %d", n, 200-want)
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "dead.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	go d.run(f)
	d.Close()
	if n := d.written.Load(); n != uint64(want) {
		t.Errorf("written %d, want %d", n, want)
	}
	if q := d.queued.Load(); q != 0 {
		t.Errorf("%d bytes still accounted as queued", q)
	}
}

// Regression: records whose write failed were counted as written.
func TestFailedWriteCountsLost(t *testing.T) {
	d := newUnstarted(metrics.NewRegistry())
	f, err := os.Create(filepath.Join(t.TempDir(), "dead.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	f.Close() // every write fails
	for range 3 {
		d.Put("edge", "tcp://127.0.0.1:1", "parse_error", netip.AddrPort{}, []byte("x"))
	}
	go d.run(f)
	d.Close()
	if w, l := d.written.Load(), d.lost.Load(); w != 0 || l != 3 {
		t.Errorf("written %d, lost %d; want 0 and 3", w, l)
	}
}

// Control characters, quotes and line separators come back exactly.
func TestRawEscapesReadBack(t *testing.T) {
	raw := "a\"b\\c\nd\re\tf\x01g\u2028h\u2029é"
	b := []byte(raw)
	line := appendRecord(nil, record{frontend: "edge", bind: "udp://:514", reason: "parse_error", raw: &b})
	var rec struct{ Frontend, Bind, Reason, Raw string }
	if err := json.Unmarshal(line, &rec); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	if rec.Raw != raw || rec.Frontend != "edge" || rec.Bind != "udp://:514" || rec.Reason != "parse_error" {
		t.Errorf("read back %+v from %s", rec, line)
	}
}

// Put runs on an event loop: it copies into a pooled buffer.
func BenchmarkPut(b *testing.B) {
	d, err := Open(filepath.Join(b.TempDir(), "dead.jsonl"), metrics.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	raw := []byte("<13>1 not-a-time host app - - - a malformed message of a typical size, about one hundred bytes")
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		d.Put("edge", "tcp://127.0.0.1:5514", "parse_error", netip.AddrPort{}, raw)
	}
}

// A dead-letter file deleted under the writer: the next records go to a
// new file at the path, not into the unlinked one.
func TestDeadLetterFollowsDeleted(t *testing.T) {
	old := followInterval
	followInterval = 0
	defer func() { followInterval = old }()
	path := filepath.Join(t.TempDir(), "dead.jsonl")
	reg := metrics.NewRegistry()
	d, err := Open(path, reg)
	if err != nil {
		t.Fatal(err)
	}
	peer := netip.MustParseAddrPort("192.0.2.7:5140")
	d.Put("edge", "udp://127.0.0.1:5514", "parse_error", peer, []byte("first"))
	testenv.Eventually(t, "the first record written", func() bool {
		b, _ := os.ReadFile(path)
		return strings.Contains(string(b), "first")
	})
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	d.Put("edge", "udp://127.0.0.1:5514", "parse_error", peer, []byte("second"))
	d.Close()
	b, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(b), "second") || strings.Contains(string(b), "first") {
		t.Fatalf("after the file was deleted: %q %v, want a new file with the second record", b, err)
	}
}
