// Package logfile opens the files wharf appends to (file sinks, dead-letter
// files) without following a symbolic link or writing through a hard link.
//
// wharf often runs as root to bind port 514, and log directories are often
// writable by a log group: without these checks anyone who can create a
// file there could point a sink at /etc/shadow with a link. What this does
// not cover: a symbolic link among the directories above the file (they
// are trusted; keep them owned by root or wharf's user and not writable by
// others), except below the fixed part of a templated path, where
// OpenAppendBeneath follows nothing out of it.
package logfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// OpenAppend opens path for appending, creating it with perm (and its
// directory, mode 0750) if needed. It refuses, with an error saying why:
// a path whose last component is a symbolic link (O_NOFOLLOW), a
// directory, anything but a regular file (a FIFO is opened non-blocking,
// so one without a reader fails instead of hanging), and a regular file
// with more than one hard link.
func OpenAppend(path string, perm os.FileMode) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("create directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, perm)
	if err != nil {
		switch {
		case errors.Is(err, syscall.ELOOP):
			return nil, fmt.Errorf("%s is a symbolic link; wharf does not follow links for files it writes (point the path at the real file)", path)
		case errors.Is(err, syscall.EISDIR):
			return nil, fmt.Errorf("%s is a directory; give the path of a file", path)
		case errors.Is(err, syscall.ENXIO):
			return nil, fmt.Errorf("%s is not a regular file (a FIFO or socket); give the path of a file", path)
		}
		return nil, fmt.Errorf("open: %w", err)
	}
	if err := check(f); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// check refuses an open file that is not a regular file with one link.
func check(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", f.Name(), err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file (%s); give the path of a file", f.Name(), fi.Mode().Type())
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
		return fmt.Errorf("%s has %d hard links; wharf does not write to a file linked from elsewhere (remove the other links or use a new file)", f.Name(), st.Nlink)
	}
	return nil
}

// OpenAppendBeneath is OpenAppend for a path whose directories below
// base come from what senders wrote (a file sink path with placeholders:
// base "/var/log/remote", path "/var/log/remote/{hostname}/x.log"
// expanded). Below base nothing is followed out of it: a directory or
// file that is a symbolic link leading outside base (or given as an
// absolute link) is refused, so someone who can write in the log tree
// cannot make a host's directory a link to /etc. base itself and the
// directories above it are trusted, as with OpenAppend.
func OpenAppendBeneath(base, path string, perm os.FileMode) (*os.File, error) {
	rel, err := filepath.Rel(base, path)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return nil, fmt.Errorf("%s is not below %s", path, base)
	}
	if err := os.MkdirAll(base, 0o750); err != nil {
		return nil, fmt.Errorf("create directory: %w", err)
	}
	root, err := os.OpenRoot(base)
	if err != nil {
		return nil, fmt.Errorf("open directory %s: %w", base, err)
	}
	defer root.Close()
	// Errors name base and that links out of it are refused: os.Root says
	// "path escapes from parent" for such a link.
	below := func(err error) error {
		return fmt.Errorf("%s below %s (symbolic links leading out of it are not followed): %w", rel, base, err)
	}
	if err := root.MkdirAll(filepath.Dir(rel), 0o750); err != nil {
		return nil, below(err)
	}
	f, err := root.OpenFile(rel, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, perm)
	if err != nil {
		switch {
		case errors.Is(err, syscall.ELOOP):
			return nil, fmt.Errorf("%s is a symbolic link; wharf does not follow links for files it writes", path)
		case errors.Is(err, syscall.EISDIR):
			return nil, fmt.Errorf("%s is a directory; give the path of a file", path)
		case errors.Is(err, syscall.ENXIO):
			return nil, fmt.Errorf("%s is not a regular file (a FIFO or socket); give the path of a file", path)
		}
		return nil, below(err)
	}
	if err := check(f); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// CheckPath reports, without creating anything, why OpenAppend would
// refuse path: a symbolic link, a directory or not a regular file. A path
// that does not exist yet is fine (it is created on first use).
func CheckPath(path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil
	}
	switch {
	case fi.Mode()&os.ModeSymlink != 0:
		return fmt.Errorf("%s is a symbolic link; wharf does not follow links for files it writes (point the path at the real file)", path)
	case fi.IsDir():
		return fmt.Errorf("%s is a directory; give the path of a file", path)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s is not a regular file (%s); give the path of a file", path, fi.Mode().Type())
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
		return fmt.Errorf("%s has %d hard links; wharf does not write to a file linked from elsewhere (remove the other links or use a new file)", path, st.Nlink)
	}
	return nil
}

// Moved reports whether path no longer names the open file f: it was
// deleted (why "deleted"), or renamed or replaced (logrotate without a
// reopen). Writers check it now and then and reopen path when it is set,
// so lines do not go on into an unlinked or rotated file. An error
// reading f's own state reports false.
func Moved(f *os.File, path string) (why string, moved bool) {
	open, err := f.Stat()
	if err != nil {
		return "", false
	}
	cur, err := os.Lstat(path)
	switch {
	case err != nil:
		return "deleted", true
	case !os.SameFile(open, cur):
		return "renamed or replaced", true
	}
	return "", false
}

// Unlinked reports whether the open file with descriptor fd has been
// deleted (no name links to it any more): the cheap check, one fstat and
// no allocation, for writers that cannot afford Moved on every write.
func Unlinked(fd uintptr) bool {
	var st syscall.Stat_t
	if syscall.Fstat(int(fd), &st) != nil {
		return false
	}
	return st.Nlink == 0
}
