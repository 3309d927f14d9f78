package logfile

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Regression: file sinks and dead_letter followed a symbolic link planted
// where the log file goes, and wrote into the file it pointed at.
func TestOpenAppendRefusesLinks(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := func(path, wantErr string) {
		t.Helper()
		if err := CheckPath(path); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("CheckPath(%s) = %v, want %q", filepath.Base(path), err, wantErr)
		}
		fh, err := OpenAppend(path, 0o640)
		if err == nil {
			fh.Write([]byte("injected\n"))
			fh.Close()
			t.Errorf("OpenAppend(%s) opened it", filepath.Base(path))
			return
		}
		if !strings.Contains(err.Error(), wantErr) {
			t.Errorf("OpenAppend(%s) = %v, want %q", filepath.Base(path), err, wantErr)
		}
	}
	sym := filepath.Join(dir, "sym.log")
	if err := os.Symlink(victim, sym); err != nil {
		t.Fatal(err)
	}
	f(sym, "symbolic link")
	dangling := filepath.Join(dir, "dangling.log")
	if err := os.Symlink(filepath.Join(dir, "created-through-link"), dangling); err != nil {
		t.Fatal(err)
	}
	f(dangling, "symbolic link")
	if _, err := os.Stat(filepath.Join(dir, "created-through-link")); err == nil {
		t.Error("a dangling link made wharf create its target")
	}
	hard := filepath.Join(dir, "hard.log")
	if err := os.Link(victim, hard); err != nil {
		t.Fatal(err)
	}
	f(hard, "hard links")
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o750)
	f(sub, "is a directory")
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	f(fifo, "not a regular file")

	if b, _ := os.ReadFile(victim); string(b) != "secret\n" {
		t.Errorf("victim file changed: %q", b)
	}

	// A plain file (new or existing) is fine.
	plain := filepath.Join(dir, "a", "b", "plain.log")
	for range 2 {
		if err := CheckPath(plain); err != nil {
			t.Fatal(err)
		}
		fh, err := OpenAppend(plain, 0o640)
		if err != nil {
			t.Fatal(err)
		}
		fh.Write([]byte("x\n"))
		fh.Close()
	}
	if b, _ := os.ReadFile(plain); string(b) != "x\nx\n" {
		t.Errorf("plain file holds %q", b)
	}
}
