package file

import (
	"cmp"
	"container/list"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"wharf/internal/logfile"
	"wharf/message"
	"wharf/sinks"
)

// dynamic is the state of a file sink whose path holds placeholders
// (rsyslog's dynaFile): one file per expanded path, at most max open at
// once in LRU order. All of it is guarded by File.mu.
type dynamic struct {
	parts []PathPart
	base  string // StaticDir(parts): below it, links are not followed out
	max   int
	idle  time.Duration

	open map[string]*list.Element // path -> element holding *dynFile
	lru  list.List                // front: most recently written
	// touched are the files a Write has encoded lines for, in order.
	touched []*dynFile
	pathBuf []byte
	// lastSweep is when idle files were last looked for.
	lastSweep time.Time

	// Counters for wharf_sink_file_closes_total and _opens_total; the
	// gauge wharf_sink_open_files reads openCount.
	opens, lruCloses, idleCloses atomic.Uint64
	openCount                    atomic.Int64
}

// dynFile is one open file of a templated sink.
type dynFile struct {
	path    string
	f       *os.File
	fd      uintptr // f.Fd(), taken once (Fd is not free)
	pending []byte  // lines encoded by the current Write
	used    time.Time
}

// maxKeptBuf bounds the buffer a file keeps between batches, so hundreds
// of open files do not each pin a batch's worth of memory.
const maxKeptBuf = 64 << 10

func newDynamic(parts []PathPart, max int) *dynamic {
	if max <= 0 {
		max = DefaultMaxOpenFiles
	}
	return &dynamic{parts: parts, base: StaticDir(parts), max: max, idle: DefaultFileIdleClose, open: map[string]*list.Element{}}
}

// appendPath expands the template for m into dst.
func (d *dynamic) appendPath(dst []byte, m *message.Message, name string) []byte {
	var t time.Time
	timed := false
	for _, p := range d.parts {
		if p.Field == "" {
			dst = append(dst, p.Literal...)
			continue
		}
		switch p.Field {
		case "hostname":
			if h := m.Field(m.Hostname); len(h) > 0 && m.Format != message.FormatRaw {
				dst = appendSafe(dst, h)
			} else {
				dst = appendIP(dst, m)
			}
		case "source_ip":
			dst = appendIP(dst, m)
		case "app_name":
			dst = appendSafe(dst, m.Field(m.AppName))
		case "facility":
			dst = appendSafe(dst, []byte(sinks.FacilityName(m.Facility())))
		case "severity":
			dst = appendSafe(dst, []byte(sinks.SeverityName(m.Severity())))
		case "frontend":
			dst = appendSafe(dst, []byte(m.Frontend))
		default: // date parts, from the receive time in the local zone
			if !timed {
				t, timed = time.Unix(0, m.Received).In(time.Local), true
			}
			switch p.Field {
			case "date":
				dst = t.AppendFormat(dst, "2006-01-02")
			case "year":
				dst = t.AppendFormat(dst, "2006")
			case "month":
				dst = t.AppendFormat(dst, "01")
			case "day":
				dst = t.AppendFormat(dst, "02")
			case "hour":
				dst = t.AppendFormat(dst, "15")
			default:
				panic("sinks/file: sink " + name + ": placeholder not handled: " + p.Field) // ParsePathTemplate lets only known ones through
			}
		}
	}
	return dst
}

func appendIP(dst []byte, m *message.Message) []byte {
	if !m.Peer.IsValid() {
		return append(dst, '-')
	}
	return m.Peer.Addr().Unmap().AppendTo(dst)
}

// maxSafe bounds one expanded placeholder.
const maxSafe = 64

// appendSafe appends v as one path component: letters, digits and
// ".-_:@" kept, any other byte '_', a leading '.' '_' (so neither "." nor
// ".." can appear), at most maxSafe bytes, "-" when empty. A sender
// controls hostname and app_name: this is what keeps it inside the
// directory the operator chose.
func appendSafe(dst, v []byte) []byte {
	if len(v) == 0 {
		return append(dst, '-')
	}
	if len(v) > maxSafe {
		v = v[:maxSafe]
	}
	for i, c := range v {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '_' || c == ':' || c == '@' || (c == '.' && i > 0)
		if !ok {
			c = '_'
		}
		dst = append(dst, c)
	}
	return dst
}

// writeDynamic encodes each message into the pending buffer of its file,
// then appends each file's lines with one write call. Called with s.mu
// held.
//
// A file that cannot be opened for a reason retrying will not fix (its
// directory is a file, the path is a link, permission denied) does not
// hold up the other files: its messages are rejected (the Runner counts
// them, reason "rejected") and the rest are written. An error that may
// pass (disk full, too many open files) or a failed write returns a plain
// error and the Runner retries the whole batch, so lines already written
// to other files may appear twice (at-least-once, as for one file).
func (s *File) writeDynamic(batch []*message.Message) error {
	d := s.dyn
	now := time.Now()
	d.touched = d.touched[:0]
	var retryErr, rejectErr error
	var rejected []int
	for i, m := range batch {
		d.pathBuf = d.appendPath(d.pathBuf[:0], m, s.name)
		df, err := s.dynFile(d.pathBuf, now)
		if err != nil {
			if transient(err) {
				retryErr = cmp.Or(retryErr, err)
			} else {
				rejectErr = cmp.Or(rejectErr, err)
				rejected = append(rejected, i)
			}
			continue
		}
		if len(df.pending) == 0 {
			d.touched = append(d.touched, df)
		}
		df.pending = s.enc.AppendLine(df.pending, m)
	}
	for _, df := range d.touched {
		if err := s.flushDyn(df); err != nil {
			retryErr = cmp.Or(retryErr, err)
		}
	}
	d.touched = d.touched[:0]
	if now.Sub(d.lastSweep) >= d.idle/4 {
		d.lastSweep = now
		s.closeIdle(now)
	}
	switch {
	case retryErr != nil:
		return retryErr
	case rejected != nil:
		return &sinks.RejectedError{Indexes: rejected, Err: rejectErr}
	}
	return nil
}

// transient reports an open error that may go away by itself, worth
// retrying the batch for.
func transient(err error) bool {
	for _, e := range []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT, syscall.EMFILE, syscall.ENFILE, syscall.EIO, syscall.EINTR, syscall.EAGAIN, syscall.EROFS} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// dynFile returns the open file for path, opening it (and closing the
// least recently written one when max are open) if needed.
func (s *File) dynFile(path []byte, now time.Time) (*dynFile, error) {
	d := s.dyn
	if e, ok := d.open[string(path)]; ok { // no allocation for the lookup
		d.lru.MoveToFront(e)
		df := e.Value.(*dynFile)
		df.used = now
		return df, nil
	}
	for d.lru.Len() >= d.max {
		s.closeDyn(d.lru.Back(), &d.lruCloses)
	}
	p := string(path)
	// The directories below base are named by senders: nothing there may
	// lead out of base (a host directory made a link to /etc).
	f, err := logfile.OpenAppendBeneath(d.base, p, s.mode)
	if err != nil {
		return nil, fmt.Errorf("sinks/file: sink %q: %w", s.name, err)
	}
	df := &dynFile{path: p, f: f, fd: f.Fd(), used: now}
	d.open[p] = d.lru.PushFront(df)
	d.opens.Add(1)
	d.openCount.Add(1)
	return df, nil
}

// flushDyn writes df's pending lines.
func (s *File) flushDyn(df *dynFile) error {
	if len(df.pending) == 0 {
		return nil
	}
	if logfile.Unlinked(df.fd) {
		// Deleted without SIGHUP: a new file at its path, or these lines
		// would vanish into the old one. (One fstat a file a batch, no
		// allocation; a rename is not followed here: the file closes
		// when idle, or on SIGHUP.)
		f, err := logfile.OpenAppendBeneath(s.dyn.base, df.path, s.mode)
		if err != nil {
			// Not into the deleted file: fail, so the batch is retried.
			df.pending = df.pending[:0]
			return fmt.Errorf("sinks/file: sink %q: %s was deleted and a new one cannot be created: %w", s.name, df.path, err)
		}
		df.f.Close()
		df.f, df.fd = f, f.Fd()
		s.log.Warn("a file of the file sink was deleted without a reopen (SIGHUP); writing to a new file at its path", "path", df.path)
	}
	err := appendAll(df.f, df.pending)
	if cap(df.pending) > maxKeptBuf {
		df.pending = nil
	} else {
		df.pending = df.pending[:0]
	}
	if err != nil {
		return fmt.Errorf("sinks/file: sink %q: write %s: %w", s.name, df.path, err)
	}
	return nil
}

// closeDyn writes what e's file has pending (it may be one the current
// batch wrote to, when a batch spans more than max files), closes it and
// counts it in why.
func (s *File) closeDyn(e *list.Element, why *atomic.Uint64) error {
	d := s.dyn
	df := e.Value.(*dynFile)
	err := s.flushDyn(df)
	if cerr := df.f.Close(); err == nil && cerr != nil && !errors.Is(cerr, os.ErrClosed) {
		err = fmt.Errorf("sinks/file: sink %q: close %s: %w", s.name, df.path, cerr)
	}
	d.lru.Remove(e)
	delete(d.open, df.path)
	d.openCount.Add(-1)
	if why != nil {
		why.Add(1)
	}
	return err
}

// closeIdle closes the files not written for d.idle, oldest first.
func (s *File) closeIdle(now time.Time) {
	d := s.dyn
	for e := d.lru.Back(); e != nil; e = d.lru.Back() {
		if now.Sub(e.Value.(*dynFile).used) < d.idle {
			return
		}
		_ = s.closeDyn(e, &d.idleCloses)
	}
}

// closeAllDyn syncs and closes every open file (Close, Reopen).
func (s *File) closeAllDyn(sync bool) error {
	d := s.dyn
	var firstErr error
	for e := d.lru.Back(); e != nil; e = d.lru.Back() {
		if sync {
			if err := e.Value.(*dynFile).f.Sync(); err != nil && firstErr == nil {
				firstErr = fmt.Errorf("sinks/file: sink %q: sync %s: %w", s.name, e.Value.(*dynFile).path, err)
			}
		}
		if err := s.closeDyn(e, nil); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// checkDynamic creates the directory before the first placeholder, so a
// path that cannot work shows as a not-ready sink at start.
func (s *File) checkDynamic() error {
	dir := StaticDir(s.dyn.parts)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("sinks/file: sink %q: create directory %s: %w", s.name, dir, err)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("sinks/file: sink %q: %s is not a directory", s.name, filepath.Clean(dir))
	}
	return nil
}

// FileStats reports a templated sink's counters: files opened, closed to
// make room (LRU) and closed idle, and how many are open now. All zero for
// a sink with a fixed path.
func (s *File) FileStats() (opens, lruCloses, idleCloses uint64, open int64) {
	if s.dyn == nil {
		return 0, 0, 0, 0
	}
	d := s.dyn
	return d.opens.Load(), d.lruCloses.Load(), d.idleCloses.Load(), d.openCount.Load()
}

// Templated reports whether the sink's path holds placeholders.
func (s *File) Templated() bool { return s.dyn != nil }
