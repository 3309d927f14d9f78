package file

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"wharf/conf"
	"wharf/message"
	"wharf/sinks"
)

// newFile calls the factory itself (after the defaults sinks.New would
// apply) so tests can reach what the sink does at run time with a path
// that validation would refuse at start.
func newFile(t *testing.T, cfg *conf.Sink) *File {
	t.Helper()
	cfg.Type = "file"
	cfg.ApplyDefaults()
	s, err := New("f", cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s.(*File)
}

func batch(prefix string, n int) []*message.Message {
	out := make([]*message.Message, n)
	for i := range out {
		out[i] = message.New(fmt.Appendf(nil, "<13>%s-%d \"quoted\" \xff", prefix, i))
		out[i].Priority = 13
		out[i].Format = message.FormatRaw
		out[i].Received = time.Now().UnixNano()
	}
	return out
}

// readJSONLines parses every line of path as JSON and returns the "raw" fields.
func readJSONLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var obj struct {
			Raw      string
			Priority int
		}
		if err := json.Unmarshal(sc.Bytes(), &obj); err != nil {
			t.Fatalf("%s: line %q: %v", path, sc.Text(), err)
		}
		if obj.Priority != 13 {
			t.Fatalf("priority %d in %q", obj.Priority, sc.Text())
		}
		out = append(out, obj.Raw)
	}
	return out
}

func TestFileReopenAfterRotate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "dir", "messages.jsonl")
	s := newFile(t, &conf.Sink{Options: &Config{Path: path}})
	s.followEvery = time.Hour // the rename is noticed by Reopen here, not by follow
	ctx := context.Background()
	if err := s.Write(ctx, batch("a", 3)); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o640&^0o022 && st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want %o", st.Mode().Perm(), 0o640)
	}
	rotated := path + ".1"
	if err := os.Rename(path, rotated); err != nil {
		t.Fatal(err)
	}
	// Before Reopen, writes still go to the renamed file (like any daemon).
	if err := s.Write(ctx, batch("b", 2)); err != nil {
		t.Fatal(err)
	}
	if err := s.Reopen(); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, batch("c", 4)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	want := func(got []string, prefixes ...string) {
		t.Helper()
		var exp []string
		for _, p := range prefixes {
			for _, m := range batch(p[:1], int(p[1]-'0')) {
				exp = append(exp, string(m.Raw))
			}
		}
		// Raw was JSON-escaped: \xff became U+FFFD.
		for i := range exp {
			b, _ := json.Marshal(exp[i])
			json.Unmarshal(b, &exp[i])
		}
		if fmt.Sprint(got) != fmt.Sprint(exp) {
			t.Errorf("got %q\nwant %q", got, exp)
		}
	}
	want(readJSONLines(t, rotated), "a3", "b2")
	want(readJSONLines(t, path), "c4")
}

// A file deleted or renamed under a running sink, with no SIGHUP: the
// sink notices (a deletion before the next batch, a rename within
// followInterval) and writes to a new file at its path, instead of into
// an unlinked inode where lines vanish.
func TestFileFollowsDeletedAndRenamed(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.log")
	s := newFile(t, &conf.Sink{Encoding: "raw", Options: &Config{Path: path}})
	s.followEvery = time.Hour // a deletion is noticed at once anyway
	ctx := context.Background()
	write := func(prefix string) {
		t.Helper()
		if err := s.Write(ctx, batch(prefix, 2)); err != nil {
			t.Fatal(err)
		}
	}
	lines := func(p string) string {
		t.Helper()
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return strconv.Itoa(strings.Count(string(b), "\n")) + ":" + string(b[:min(len(b), 6)])
	}
	write("a")
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	write("b") // noticed before this batch: it goes to the new file
	if got := lines(path); got != "2:<13>b-" {
		t.Errorf("after the file was deleted: %s, want the 2 lines of b in a new file", got)
	}
	s.followEvery = 0 // a rename within followInterval: check at every batch
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	write("c")
	if got, rot := lines(path), lines(path+".1"); got != "2:<13>c-" || rot != "2:<13>b-" {
		t.Errorf("after a rename without SIGHUP: %s at the path and %s in the renamed file, want c's 2 and b's 2", got, rot)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestFileReopenConcurrentWithWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.log")
	s := newFile(t, &conf.Sink{Encoding: "raw", Options: &Config{Path: path, FileMode: "0600"}})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 50 {
			if err := s.Reopen(); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := range 50 {
		if err := s.Write(context.Background(), batch(fmt.Sprint("w", i), 10)); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	if n := len(splitLines(b)); n != 500 {
		t.Errorf("%d lines, want 500", n)
	}
}

func splitLines(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		i := 0
		for i < len(b) && b[i] != '\n' {
			i++
		}
		out = append(out, b[:i])
		if i < len(b) {
			i++
		}
		b = b[i:]
	}
	return out
}

func TestFileConfigErrorsAndCheck(t *testing.T) {
	f := func(cfg conf.Sink, wantErr bool) {
		t.Helper()
		cfg.Type = "file"
		_, err := sinks.New("f", &cfg)
		if (err != nil) != wantErr {
			t.Errorf("%+v: err %v", cfg, err)
		}
	}
	f(conf.Sink{}, true)
	f(conf.Sink{Encoding: "yaml", Options: &Config{Path: "x"}}, true)
	f(conf.Sink{Options: &Config{Path: "x", FileMode: "rw-r"}}, true)
	f(conf.Sink{Encoding: "rfc5424", Options: &Config{Path: "x", FileMode: "0644"}}, false)

	// A path below a regular file cannot be created: Check reports it.
	blocker := filepath.Join(t.TempDir(), "file")
	os.WriteFile(blocker, nil, 0o600)
	s := newFile(t, &conf.Sink{Options: &Config{Path: filepath.Join(blocker, "m.log")}})
	if err := s.Check(context.Background()); err == nil {
		t.Error("Check succeeded for a path below a regular file")
	}
	if err := s.Write(context.Background(), batch("x", 1)); err == nil {
		t.Error("Write succeeded for a path below a regular file")
	}
}

// BenchmarkWriteJSON measures one 256-message batch encoded as JSON lines
// and appended to a file.
func BenchmarkWriteJSON(b *testing.B) {
	s, err := newFromConf("bench", &conf.Sink{Type: "file", Options: &Config{Path: filepath.Join(b.TempDir(), "m.jsonl")}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	in := batch("bench", 256)
	var size int64
	for _, m := range in {
		size += int64(len(m.Raw))
	}
	b.ReportAllocs()
	b.SetBytes(size)
	for b.Loop() {
		if err := s.Write(context.Background(), in); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(in))/b.Elapsed().Seconds(), "msgs/s")
}

// Regression: a symbolic link planted at the sink's path (first open or
// after logrotate moved the file away) made wharf append to its target.
func TestFileRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "shadow")
	os.WriteFile(victim, []byte("root:x:0:\n"), 0o600)
	path := filepath.Join(dir, "messages.jsonl")
	if err := os.Symlink(victim, path); err != nil {
		t.Fatal(err)
	}
	s := newFile(t, &conf.Sink{Options: &Config{Path: path}})
	ctx := context.Background()
	if err := s.Check(ctx); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("Check = %v, want a symbolic link error", err)
	}
	if err := s.Write(ctx, batch("a", 1)); err == nil {
		t.Error("Write through a symbolic link succeeded")
	}
	// Rotation: the real file is moved away and a link takes its place;
	// Reopen refuses and the sink keeps writing to the file it has.
	os.Remove(path)
	if err := s.Write(ctx, batch("a", 1)); err != nil {
		t.Fatal(err)
	}
	os.Rename(path, path+".1")
	os.Symlink(victim, path)
	if err := s.Reopen(); err == nil {
		t.Error("Reopen through a symbolic link succeeded")
	}
	if err := s.Write(ctx, batch("b", 1)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if b, _ := os.ReadFile(victim); string(b) != "root:x:0:\n" {
		t.Errorf("link target written: %q", b)
	}
	if got := readJSONLines(t, path+".1"); len(got) != 2 {
		t.Errorf("rotated file holds %d lines, want 2", len(got))
	}
}

// TestFileDirectoryRemoved: the log directory removed with the file in
// it (rm -rf /var/log/wharf) is made again with the next file. While it
// cannot be (here its name is taken by a plain file), Write fails, so
// the runner retries the batch, and the batch lands once the path works
// again. Before, such batches went on into the deleted file: lost, with
// only an error line per batch.
func TestFileDirectoryRemoved(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "logs")
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "m.log")
	s := newFile(t, &conf.Sink{Encoding: "raw", Options: &Config{Path: path}})
	ctx := context.Background()
	if err := s.Write(ctx, batch("a", 2)); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, batch("b", 2)); err != nil {
		t.Fatalf("Write after the directory was removed: %v", err)
	}
	if b, err := os.ReadFile(path); err != nil || strings.Count(string(b), "\n") != 2 || !strings.HasPrefix(string(b), "<13>b-") {
		t.Fatalf("after the directory was removed: %q, %v; want b's 2 lines in a new file", b, err)
	}

	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, []byte("in the way"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, batch("c", 2)); err == nil {
		t.Fatal("Write into a deleted file whose directory cannot be made: no error, the batch is lost")
	}
	os.Remove(dir)
	if err := s.Write(ctx, batch("c", 2)); err != nil { // the runner's retry
		t.Fatalf("retry once the path works: %v", err)
	}
	if b, err := os.ReadFile(path); err != nil || strings.Count(string(b), "\n") != 2 || !strings.HasPrefix(string(b), "<13>c-") {
		t.Fatalf("after the retry: %q, %v; want c's 2 lines", b, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
