// Package file is the sink that appends encoded messages, one per line, to
// a file, reopening it on demand for logrotate, and on its own when the
// file is deleted or renamed under it.
package file

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"wharf/conf"
	"wharf/internal/logfile"
	"wharf/message"
	"wharf/sinks"
)

// File appends each batch as encoded lines in one write(2) to Path.
//
// Concurrency: Write (one Runner goroutine) and Close follow the Sink
// contract. Reopen may be called from any goroutine at any time (the
// binary calls it on SIGHUP): mu guards the open file, Write holds it only
// around the write call, so a Reopen waits for at most one write and a
// batch is never split across the old and the new file.
type File struct {
	name string
	path string
	mode os.FileMode
	enc  sinks.Encoding
	buf  []byte // reused per batch; only touched by Write

	mu sync.Mutex
	f  *os.File // nil until the first Write, Check or Reopen
	// fd is f's descriptor (f.Fd(), taken when f is opened). checked is
	// when Write last made sure path still names f (Unix ns);
	// followEvery is how often it does (followInterval; tests change it).
	// A deleted f is noticed before every batch, whatever followEvery.
	fd          uintptr
	checked     int64
	followEvery time.Duration
	log         *slog.Logger
	// dyn is set when path holds placeholders (dynamic.go); f is then
	// unused.
	dyn *dynamic
}

// New builds a file sink from its config section, with defaults applied
// and validated (sinks.New does both). The file is opened on first use,
// so a missing directory or permission problem shows as a failing
// (retried) write and a not-ready sink rather than a config error.
func New(name string, cfg *conf.Sink) (sinks.Sink, error) {
	c, ok := cfg.Options.(*Config)
	if !ok {
		return nil, fmt.Errorf("sinks/file: sink %q: options are %T, want *file.Config", name, cfg.Options)
	}
	if c.Path == "" {
		return nil, fmt.Errorf("sinks/file: sink %q: path is required (path = \"/var/log/wharf/messages.jsonl\")", name)
	}
	enc, err := sinks.ParseEncoding(cfg.Encoding)
	if err != nil {
		return nil, fmt.Errorf("sinks/file: sink %q: encoding: %w", name, err)
	}
	mode, err := ParseFileMode(c.FileMode)
	if err != nil {
		return nil, fmt.Errorf("sinks/file: sink %q: %w", name, err)
	}
	s := &File{name: name, path: c.Path, mode: os.FileMode(mode), enc: enc, followEvery: followInterval, log: slog.Default().With("sink", name)}
	parts, err := ParsePathTemplate(c.Path)
	if err != nil {
		return nil, fmt.Errorf("sinks/file: sink %q: %w", name, err)
	}
	if IsPathTemplate(parts) {
		s.dyn = newDynamic(parts, c.MaxOpenFiles)
	} else {
		s.buf = make([]byte, 0, 64<<10)
	}
	return s, nil
}

// open opens path for appending, creating it and its directory. It
// refuses a symbolic link, a directory, a non-regular file and a file
// with other hard links (see internal/logfile). Called with mu held.
func (s *File) open() (*os.File, error) {
	f, err := logfile.OpenAppend(s.path, s.mode)
	if err != nil {
		return nil, fmt.Errorf("sinks/file: sink %q: %w", s.name, err)
	}
	return f, nil
}

// Write encodes the batch into a reused buffer and appends it with one
// write call. A write that fails halfway (a full disk) is cut off again
// (appendAll) and the error returned: the Runner retries the whole batch,
// which then appears once, without a torn line.
func (s *File) Write(_ context.Context, batch []*message.Message) error {
	if s.dyn != nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.writeDynamic(batch)
	}
	b := s.buf[:0]
	for _, m := range batch {
		b = s.enc.AppendLine(b, m)
	}
	s.buf = b
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		f, err := s.open()
		if err != nil {
			return err
		}
		s.f, s.fd, s.checked = f, f.Fd(), time.Now().UnixNano()
	} else if now := time.Now().UnixNano(); logfile.Unlinked(s.fd) || now-s.checked >= int64(s.followEvery) {
		s.checked = now
		if err := s.follow(); err != nil {
			return err
		}
	}
	if err := appendAll(s.f, b); err != nil {
		return fmt.Errorf("sinks/file: sink %q: write %s: %w", s.name, s.path, err)
	}
	return nil
}

// followInterval is how often Write checks that the path still names the
// open file (an fstat and an lstat, which allocate): a rename without
// SIGHUP is followed within it. Deletion is checked before every batch
// (one fstat, no allocation), so no batch goes into a deleted file.
const followInterval = time.Second

// follow reopens path when it no longer names the open file: deleted
// (writes would go on into an unlinked inode, lost without a trace) or
// renamed by a logrotate that did not send SIGHUP (a directory removed
// with the file is made again). If the new file cannot be opened, a
// renamed old one stays in use and the error is logged; a deleted one is
// not written to: the error is returned and the batch retried. Called
// with mu held.
func (s *File) follow() error {
	why, moved := logfile.Moved(s.f, s.path)
	if !moved {
		return nil
	}
	f, oerr := s.open() // makes a removed directory again
	if oerr != nil {
		if logfile.Unlinked(s.fd) {
			// Writing on into a deleted file would lose the batch without
			// a trace: fail it instead, so it is retried (the sink is down
			// meanwhile, TCP input held back).
			return fmt.Errorf("sinks/file: sink %q: the file was deleted and a new one cannot be created: %w", s.name, oerr)
		}
		s.log.Error("the file sink's file was "+why+" and a new one cannot be opened; writing on into the old one", "path", s.path, "err", oerr)
		return nil
	}
	s.f.Close()
	s.f, s.fd = f, f.Fd()
	s.log.Warn("the file sink's file was "+why+" without a reopen (SIGHUP); writing to a new file at its path", "path", s.path)
	return nil
}

// Reopen closes the current file and opens Path again, so writes go to a
// new file after logrotate renamed the old one. If the new open fails the
// old file stays in use and the error is returned. Safe to call
// concurrently with Write.
func (s *File) Reopen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dyn != nil { // each file is opened again on its next write
		return s.closeAllDyn(false)
	}
	f, err := s.open()
	if err != nil {
		return err
	}
	old := s.f
	s.f, s.fd = f, f.Fd()
	if old != nil {
		if err := old.Close(); err != nil {
			return fmt.Errorf("sinks/file: sink %q: close rotated file: %w", s.name, err)
		}
	}
	return nil
}

// Check opens the file if it is not open yet, so a bad path shows as a
// not-ready sink at start.
func (s *File) Check(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dyn != nil {
		return s.checkDynamic()
	}
	if s.f != nil {
		return nil
	}
	f, err := s.open()
	if err != nil {
		return err
	}
	s.f, s.fd = f, f.Fd()
	return nil
}

// Close syncs the file to disk and closes it.
func (s *File) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dyn != nil {
		return s.closeAllDyn(true)
	}
	if s.f == nil {
		return nil
	}
	err := s.f.Sync()
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	s.f = nil
	if err != nil && !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("sinks/file: sink %q: close %s: %w", s.name, s.path, err)
	}
	return nil
}

var (
	_ sinks.Sink    = (*File)(nil)
	_ sinks.Checker = (*File)(nil)
)

// appendAll writes b to f (opened O_APPEND) as one unit: if the write
// fails after part of b reached the file (ENOSPC mid-write), the part is
// cut off again, so the retried batch neither repeats lines nor leaves a
// torn one. When even the truncation fails, a newline ends the torn line
// (it then stays, unparsable, once). The happy path is one write(2).
func appendAll(f *os.File, b []byte) error {
	n, err := f.Write(b)
	if err == nil || n == 0 {
		return err
	}
	if st, serr := f.Stat(); serr == nil && st.Size() >= int64(n) {
		if f.Truncate(st.Size()-int64(n)) == nil {
			return err
		}
	}
	f.Write([]byte{'\n'})
	return err
}
