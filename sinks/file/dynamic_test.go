package file

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"wharf/conf"
	"wharf/ingest/parse"
	"wharf/message"
	"wharf/sinks"
)

// parsedMsg is a parsed message received at 2026-11-25 19:10 UTC from
// 192.0.2.7.
func parsedMsg(t testing.TB, raw string) *message.Message {
	t.Helper()
	m := message.New([]byte(raw))
	_ = parse.Parse(m, parse.Auto) // malformed: raw, as forwarded
	m.Received = time.Date(2026, 11, 25, 19, 10, 0, 0, time.UTC).UnixNano()
	m.Peer = netip.MustParseAddrPort("192.0.2.7:40000")
	m.Frontend = "edge"
	return m
}

// tree lists every file under dir with its lines, "path: line".
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		for _, l := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
			out = append(out, rel+": "+l)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// TestFileTemplatedPaths: one file per host, app and date, with values a
// sender controls kept inside the directory.
func TestFileTemplatedPaths(t *testing.T) {
	saved := time.Local
	time.Local = time.UTC
	defer func() { time.Local = saved }()
	dir := t.TempDir()
	s := newFile(t, &conf.Sink{Encoding: "raw", Options: &Config{Path: dir + "/{hostname}/{app_name}-{date}.log"}})
	if err := s.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	var ms []*message.Message
	for _, raw := range []string{
		"<13>1 2026-11-25T19:10:00Z web-1 nginx - - - a",
		"<13>Nov 25 19:10:00 web-2 sshd[7]: b",
		"<13>1 2026-11-25T19:10:00Z web-1 nginx - - - c",
		"<13>1 2026-11-25T19:10:00Z ../../etc passwd - - - d",
		"<13>1 2026-11-25T19:10:00Z .. x/y - - - e",
		"no PRI at all: f",
	} {
		ms = append(ms, parsedMsg(t, raw))
	}
	if err := s.Write(context.Background(), ms); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		m.Release()
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	got := tree(t, dir)
	want := []string{
		"192.0.2.7/--2026-11-25.log: no PRI at all: f",
		"_./x_y-2026-11-25.log: <13>1 2026-11-25T19:10:00Z .. x/y - - - e",
		"_._.._etc/passwd-2026-11-25.log: <13>1 2026-11-25T19:10:00Z ../../etc passwd - - - d",
		"web-1/nginx-2026-11-25.log: <13>1 2026-11-25T19:10:00Z web-1 nginx - - - a",
		"web-1/nginx-2026-11-25.log: <13>1 2026-11-25T19:10:00Z web-1 nginx - - - c",
		"web-2/sshd-2026-11-25.log: <13>Nov 25 19:10:00 web-2 sshd[7]: b",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("files:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	opens, lru, idle, open := s.FileStats()
	if opens != 5 || lru != 0 || idle != 0 || open != 0 {
		t.Errorf("stats: opens %d, lru closes %d, idle closes %d, open %d; want 5, 0, 0, 0 after Close", opens, lru, idle, open)
	}
}

// TestFileTemplatedLRU: with max_open_files = 2, three hosts in one batch
// and across batches all get every line, never more than two files are
// open, and each close to make room is counted.
func TestFileTemplatedLRU(t *testing.T) {
	dir := t.TempDir()
	s := newFile(t, &conf.Sink{Encoding: "raw", Options: &Config{Path: dir + "/{hostname}.log", MaxOpenFiles: 2}})
	write := func(hosts ...string) {
		t.Helper()
		var ms []*message.Message
		for i, h := range hosts {
			ms = append(ms, parsedMsg(t, fmt.Sprintf("<13>1 - %s app - - - line %d", h, i)))
		}
		if err := s.Write(context.Background(), ms); err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			m.Release()
		}
		if _, _, _, open := s.FileStats(); open > 2 {
			t.Fatalf("%d files open, max_open_files is 2", open)
		}
	}
	write("a", "b", "c", "a") // c closes a (writing its pending line first), a closes b: open a, c
	write("b", "c")           // b closes c (least recent), c closes a: open b, c
	write("a")                // a closes b
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	got := tree(t, dir)
	want := []string{
		"a.log: <13>1 - a app - - - line 0",
		"a.log: <13>1 - a app - - - line 0",
		"a.log: <13>1 - a app - - - line 3",
		"b.log: <13>1 - b app - - - line 0",
		"b.log: <13>1 - b app - - - line 1",
		"c.log: <13>1 - c app - - - line 1",
		"c.log: <13>1 - c app - - - line 2",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("files:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	opens, lru, _, _ := s.FileStats()
	// Opens: a b c a | b c | a = 7; each open beyond two closed one.
	if opens != 7 || lru != 5 {
		t.Errorf("opens %d, lru closes %d; want 7 and 5", opens, lru)
	}
}

// TestFileTemplatedReopenAndIdle: Reopen (SIGHUP) closes every file so
// the next write creates it anew after logrotate moved it; files idle
// longer than the idle timeout are closed and counted.
func TestFileTemplatedReopenAndIdle(t *testing.T) {
	dir := t.TempDir()
	s := newFile(t, &conf.Sink{Encoding: "raw", Options: &Config{Path: dir + "/{hostname}.log"}})
	one := func(host string) {
		t.Helper()
		m := parsedMsg(t, "<13>1 - "+host+" app - - - x")
		defer m.Release()
		if err := s.Write(context.Background(), []*message.Message{m}); err != nil {
			t.Fatal(err)
		}
	}
	one("a")
	if err := os.Rename(filepath.Join(dir, "a.log"), filepath.Join(dir, "a.log.1")); err != nil {
		t.Fatal(err)
	}
	if err := s.Reopen(); err != nil {
		t.Fatal(err)
	}
	one("a")
	if data, err := os.ReadFile(filepath.Join(dir, "a.log")); err != nil || string(data) != "<13>1 - a app - - - x\n" {
		t.Fatalf("after reopen a.log = %q, %v", data, err)
	}
	s.mu.Lock()
	s.dyn.idle = time.Millisecond
	s.mu.Unlock()
	time.Sleep(5 * time.Millisecond)
	one("b") // sweeps: a idle, b just written
	_, _, idle, open := s.FileStats()
	if idle != 1 || open != 1 {
		t.Errorf("idle closes %d, open %d; want 1 and 1", idle, open)
	}
	s.Close()
}

// A templated file deleted under the sink (no SIGHUP): its next lines go
// to a new file at its path.
func TestFileTemplatedFollowsDeleted(t *testing.T) {
	dir := t.TempDir()
	s := newFile(t, &conf.Sink{Encoding: "raw", Options: &Config{Path: dir + "/{hostname}.log"}})
	write := func(host, text string) {
		t.Helper()
		m := parsedMsg(t, "<13>1 - "+host+" app - - - "+text)
		defer m.Release()
		if err := s.Write(context.Background(), []*message.Message{m}); err != nil {
			t.Fatal(err)
		}
	}
	write("a", "first")
	if err := os.Remove(filepath.Join(dir, "a.log")); err != nil {
		t.Fatal(err)
	}
	write("a", "second")
	if data, err := os.ReadFile(filepath.Join(dir, "a.log")); err != nil || string(data) != "<13>1 - a app - - - second\n" {
		t.Fatalf("after a.log was deleted: %q, %v; want a new a.log with the second line", data, err)
	}
	// Deleted again, and a new file cannot be made (a directory took its
	// name): the write fails, to be retried, instead of going into the
	// deleted file; the retry lands once the path works.
	if err := os.Remove(filepath.Join(dir, "a.log")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "a.log"), 0o750); err != nil {
		t.Fatal(err)
	}
	m := parsedMsg(t, "<13>1 - a app - - - third")
	if err := s.Write(context.Background(), []*message.Message{m}); err == nil {
		t.Fatal("a write into a deleted file that cannot be made again returned no error: the line is lost")
	}
	m.Release()
	os.Remove(filepath.Join(dir, "a.log"))
	write("a", "third")
	if data, err := os.ReadFile(filepath.Join(dir, "a.log")); err != nil || string(data) != "<13>1 - a app - - - third\n" {
		t.Fatalf("after the retry: %q, %v; want the third line once", data, err)
	}
	s.Close()
}

// TestFileTemplatedWriteAllocs: writing to files already open allocates
// nothing per batch.
func TestFileTemplatedWriteAllocs(t *testing.T) {
	dir := t.TempDir()
	s := newFile(t, &conf.Sink{Encoding: "raw", Options: &Config{Path: dir + "/{hostname}/{date}.log"}})
	defer s.Close()
	var ms []*message.Message
	for i := range 100 {
		ms = append(ms, parsedMsg(t, fmt.Sprintf("<13>1 - host-%d app - - - line", i%10)))
	}
	ctx := context.Background()
	if err := s.Write(ctx, ms); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(20, func() { _ = s.Write(ctx, ms) }); n != 0 {
		t.Errorf("%v allocations per batch, want 0", n)
	}
}

// BenchmarkFileTemplated writes 1000-message batches spread over 50
// hosts' files (all open), against the same batches to one fixed path.
func BenchmarkFileTemplated(b *testing.B) {
	for _, c := range []struct{ name, path string }{{"fixed", "/all.log"}, {"per-host", "/{hostname}/{date}.log"}} {
		b.Run(c.name, func(b *testing.B) {
			dir := b.TempDir()
			s := newFile(&testing.T{}, &conf.Sink{Encoding: "raw", Type: "file", Options: &Config{Path: dir + c.path}})
			defer s.Close()
			var ms []*message.Message
			size := 0
			for i := range 1000 {
				m := parsedMsg(b, fmt.Sprintf("<13>1 2026-11-25T19:10:00Z host-%02d app - - - a typical message of some length, like this one here %d", i%50, i))
				ms = append(ms, m)
				size += len(m.Raw) + 1
			}
			ctx := context.Background()
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if err := s.Write(ctx, ms); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// FuzzAppendSafe: whatever a sender puts in a hostname or app name, the
// path component made of it stays one component inside the directory:
// no '/', no NUL, not "." or "..", not starting with '.', 1-64 bytes.
func FuzzAppendSafe(f *testing.F) {
	f.Add([]byte("../../etc"))
	f.Add([]byte(".."))
	f.Add([]byte("web-1.example.com"))
	f.Add([]byte("\x00/\xff"))
	f.Fuzz(func(t *testing.T, v []byte) {
		got := appendSafe(nil, v)
		if len(got) == 0 || len(got) > maxSafe || got[0] == '.' ||
			strings.ContainsAny(string(got), "/\x00\\") || string(got) == "." || string(got) == ".." {
			t.Fatalf("appendSafe(%q) = %q", v, got)
		}
	})
}

// TestFileTemplatedBadPathRejected guards against one host's unwritable
// path stalling every host: a file where the host's directory should be
// rejects that host's messages (counted by the Runner as "rejected"),
// the others are written once, and the batch is not retried.
func TestFileTemplatedBadPathRejected(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bad"), []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := newFile(t, &conf.Sink{Encoding: "raw", Options: &Config{Path: dir + "/{hostname}/x.log"}})
	defer s.Close()
	var ms []*message.Message
	for _, h := range []string{"good", "bad", "good", "bad"} {
		ms = append(ms, parsedMsg(t, "<13>1 - "+h+" app - - - from "+h))
	}
	err := s.Write(context.Background(), ms)
	var rej *sinks.RejectedError
	if !errors.As(err, &rej) || fmt.Sprint(rej.Indexes) != "[1 3]" {
		t.Fatalf("Write = %v, want a RejectedError for indexes [1 3]", err)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "good", "x.log")); string(data) != "<13>1 - good app - - - from good\n<13>1 - good app - - - from good\n" {
		t.Errorf("good/x.log = %q", data)
	}
}

// Regression: with a templated path the directories below the fixed part
// are named by senders, and a host directory someone made a symbolic
// link to another directory (/etc) was followed: O_NOFOLLOW guards only
// the last component. Now nothing below the fixed part leads out of it.
func TestFileTemplatedRefusesLinksOut(t *testing.T) {
	root := t.TempDir()
	logs, victim := filepath.Join(root, "logs"), filepath.Join(root, "etc")
	os.MkdirAll(logs, 0o750)
	os.MkdirAll(victim, 0o750)
	os.WriteFile(filepath.Join(victim, "passwd-2026-11-25.log"), []byte("root:x:0:0\n"), 0o600)
	if err := os.Symlink(victim, filepath.Join(logs, "evil-abs")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../etc", filepath.Join(logs, "evil-rel")); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(logs, "web-1"), 0o750)
	if err := os.Symlink(filepath.Join(victim, "passwd-2026-11-25.log"), filepath.Join(logs, "web-1", "nginx-2026-11-25.log")); err != nil {
		t.Fatal(err)
	}
	saved := time.Local
	time.Local = time.UTC
	defer func() { time.Local = saved }()
	s := newFile(t, &conf.Sink{Encoding: "raw", Options: &Config{Path: logs + "/{hostname}/{app_name}-{date}.log"}})
	defer s.Close()
	for _, raw := range []string{
		"<13>1 2026-11-25T19:10:00Z evil-abs passwd - - - injected",
		"<13>1 2026-11-25T19:10:00Z evil-rel passwd - - - injected",
		"<13>1 2026-11-25T19:10:00Z web-1 nginx - - - injected",
	} {
		m := parsedMsg(t, raw)
		err := s.Write(context.Background(), []*message.Message{m})
		m.Release()
		var rej *sinks.RejectedError // refused for good, not retried
		if !errors.As(err, &rej) || !strings.Contains(err.Error(), "symbolic link") {
			t.Errorf("%q: Write = %v, want the message rejected for a link", raw, err)
		}
	}
	if got := tree(t, victim); len(got) != 1 || got[0] != "passwd-2026-11-25.log: root:x:0:0" {
		t.Errorf("outside the log tree:\n%s", strings.Join(got, "\n"))
	}
	// A plain host still gets its file.
	m := parsedMsg(t, "<13>1 2026-11-25T19:10:00Z web-2 sshd - - - fine")
	defer m.Release()
	if err := s.Write(context.Background(), []*message.Message{m}); err != nil {
		t.Fatal(err)
	}
}
