package diskbuf

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// # A directory removed while in use
//
// An operator or a cleanup job (tmpfiles, a script emptying /var/lib) may
// delete the buffer's directory while wharf runs. The open files live on
// without names: writing into them would acknowledge records (RELP
// "durable", TCP backpressure released) that a restart loses, and the
// reader, which opens older segments by name, could not go on past them.
//
// So the buffer keeps a descriptor of every sealed segment not yet
// confirmed (up to maxHeld of them: 16 GiB of default 64 MiB segments),
// which the reader uses instead of the name, and checks that its active
// segment still has a name: every FaultRetryInterval in the background,
// and before each write with Fsync "always". Once it is gone
// (detectRemovedLocked), the buffer rebuilds (rebuildLocked): the
// directory and its lock are created again and new records go to a new
// segment there, durable as before. The old active segment is kept open
// like the sealed ones, so the reader delivers everything, and every held
// segment is written back under its name (restore, which copies without
// holding the buffer's lock, so input goes on meanwhile), so a restart
// finds them too; while that has not succeeded Fault reports that they
// would not survive a restart, and a Close counts them lost. A segment
// beyond maxHeld, or one whose descriptor could not be kept, is gone with
// its name: the reader skips it, counting its records in
// Stats.LostRecords (and logging it), instead of stopping there.

// detectRemovedLocked reports whether the active segment's file has lost
// its name (nlink 0), and if so marks the buffer for a rebuild, keeping
// the old file open for the reader. Called with mu held.
func (b *Buffer) detectRemovedLocked() bool {
	if b.removed {
		return true
	}
	if b.closed || b.wf == nil || b.wfRO {
		return false
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(b.wf.Fd()), &st); err != nil || st.Nlink > 0 {
		return false
	}
	b.removed = true
	b.removals++
	act := b.segs[len(b.segs)-1].base
	if b.written > 0 {
		if b.held == nil {
			b.held = make(map[uint64]*os.File)
		}
		b.held[act] = b.wf // beyond maxHeld too: it is the newest data
	} else {
		b.wf.Close() // empty: nothing to read from it
	}
	b.wf = nil
	b.removedBelow = b.nextSeq
	unheld := 0
	for _, sg := range b.segs {
		if b.held[sg.base] == nil && sg.base != act {
			unheld++
		}
	}
	if b.opts.Log != nil {
		b.opts.Log.Error("disk buffer: its directory or active segment file was removed while in use (deleted by hand or a cleanup job?); creating it again. Records not yet delivered are delivered from the files wharf still has open, but until then a restart would lose them",
			"dir", b.dir, "segments", len(b.segs), "records_not_confirmed", b.nextSeq-b.segs[0].base, "segments_not_open", unheld)
	}
	return true
}

// rebuildLocked creates the directory, its lock and a new active segment
// again after detectRemovedLocked. Called with mu held; on failure the
// buffer stays marked removed and the caller enters the fault state.
func (b *Buffer) rebuildLocked() error {
	if err := os.MkdirAll(b.dir, 0o750); err != nil {
		return fmt.Errorf("diskbuf: create the removed buffer dir again: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(b.dir, lockName), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("diskbuf: create the removed lock file again: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return fmt.Errorf("diskbuf: %s was removed and is now in use by another buffer (flock: %v)", b.dir, err)
	}
	act := b.segs[len(b.segs)-1]
	f, err := b.newSegment(b.nextSeq)
	if err != nil {
		lock.Close()
		return err
	}
	if b.lock != nil {
		b.lock.Close()
	}
	b.lock = lock
	if act.size > 0 {
		b.segs = append(b.segs, segment{base: b.nextSeq})
	} else {
		b.segGen++ // same name, new file: a reader holding the old one reopens
	}
	b.wf, b.written, b.removed = f, 0, false
	b.ckLost, b.ckDirty = true, true // the checkpoint file went with the directory
	if b.opts.Log != nil {
		b.opts.Log.Info("disk buffer directory created again; new records are stored there", "dir", b.dir, "segment", segName(b.nextSeq))
	}
	// The background loop writes the held segments back (restore),
	// without holding mu; Fault waits for that.
	b.restoreWant = true
	if b.restoreWait == nil {
		b.restoreWait = make(chan struct{})
	}
	select {
	case b.restoreCh <- struct{}{}:
	default:
	}
	return nil
}

// restore writes each held segment that lost its name back under it, so
// that a restart finds the records not yet confirmed instead of losing
// them with the removed files. It copies from a duplicate of the held
// descriptor (ReadAt: the reader's duplicates share its offset) to a
// temporary name, fsynced, without holding mu, so input goes on
// meanwhile (up to maxHeld segments of 64 MiB may take minutes); it then
// takes mu to rename each copy made into place (those made before a
// failed one too), dropping the copies of the segments confirmed
// meanwhile. Once every held segment is back, the
// removal no longer puts records at risk and Fault clears; a failed copy
// (a full disk) leaves Fault reporting them and is tried again by the
// background loop every restoreRetry. A segment beyond maxHeld has no
// descriptor and stays lost. Called by the background loop, or by Close
// once that has stopped: never two at once, and never with mu held.
func (b *Buffer) restore() {
	type copied struct {
		base uint64
		src  *os.File
		n    int64
		done bool // copied to its temporary name
	}
	b.mu.Lock()
	b.restoreWant = false
	var (
		todo   []copied
		failed error
	)
	gen, below := b.removals, b.removedBelow
	if !b.removed && below > b.segs[0].base {
		for _, sg := range b.segs {
			g := b.held[sg.base]
			if g == nil || sg.base >= below {
				continue
			}
			if _, err := os.Lstat(b.segPath(sg.base)); err == nil {
				continue // still named: only the active segment was removed
			}
			fd, err := unix.FcntlInt(g.Fd(), unix.F_DUPFD_CLOEXEC, 0) // releaseLocked may close g meanwhile
			if err != nil {
				failed = fmt.Errorf("diskbuf: restore %s: dup: %w", segName(sg.base), err)
				break
			}
			todo = append(todo, copied{base: sg.base, src: os.NewFile(uintptr(fd), b.segPath(sg.base))})
		}
	}
	b.mu.Unlock()

	for i := range todo {
		c := &todo[i]
		if failed == nil {
			c.n, failed = copySegmentHook(c.src, b.segPath(c.base)+restoreExt)
			c.done = failed == nil
		}
		c.src.Close()
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	var n, bytes int64
	for _, c := range todo {
		tmp := b.segPath(c.base) + restoreExt
		if !c.done {
			continue // not copied (a failed copy removed its temporary file)
		}
		if !b.hasSegmentLocked(c.base) {
			os.Remove(tmp) // confirmed meanwhile: nothing to keep
			continue
		}
		if err := os.Rename(tmp, b.segPath(c.base)); err != nil {
			os.Remove(tmp)
			failed = fmt.Errorf("diskbuf: restore %s: %w", segName(c.base), err)
			continue
		}
		n++
		bytes += c.n
	}
	if failed == nil && n > 0 {
		failed = b.syncDir()
	}
	switch {
	case failed != nil:
		b.restoreAt = time.Now().Add(restoreRetry)
		if b.opts.Log != nil {
			b.opts.Log.Error("disk buffer: could not write the records of its removed files into the directory made again; they are delivered from the open files, but a restart before that loses them", "dir", b.dir, "error", failed)
		}
	case b.removed || b.removals != gen:
		// Removed again meanwhile: its rebuild asks for another write-back.
	default:
		b.removedBelow = 0
		if b.opts.Log != nil && n > 0 {
			b.opts.Log.Info("disk buffer: records not yet delivered written back from the removed files; a restart keeps them", "dir", b.dir, "segments", n, "bytes", bytes)
		}
	}
	if !b.restoreWant && b.restoreWait != nil {
		close(b.restoreWait)
		b.restoreWait = nil
	}
}

// hasSegmentLocked reports whether segment base is still on the list
// (not yet confirmed and deleted). Called with mu held.
func (b *Buffer) hasSegmentLocked(base uint64) bool {
	for _, sg := range b.segs {
		if sg.base == base {
			return true
		}
	}
	return false
}

// restoreRetry is how often a failed write-back is tried again (each try
// logs its failure); a variable for the tests, as is copySegmentHook.
var (
	restoreRetry    = 10 * time.Second
	copySegmentHook = copySegment
)

// restoreExt names a segment being restored until it is complete.
const restoreExt = ".restore"

// copySegment writes src's whole content to a new file at tmp (a
// segment's name + restoreExt), fsynced, and returns the bytes copied;
// restore renames it. On failure it removes tmp.
func copySegment(src *os.File, tmp string) (int64, error) {
	st, err := src.Stat()
	if err != nil {
		return 0, fmt.Errorf("diskbuf: restore %s: %w", filepath.Base(tmp), err)
	}
	dst, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return 0, fmt.Errorf("diskbuf: restore %s: %w", filepath.Base(tmp), err)
	}
	n, err := io.Copy(dst, io.NewSectionReader(src, 0, st.Size()))
	if err == nil {
		err = dst.Sync()
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return 0, fmt.Errorf("diskbuf: restore %s: %w", filepath.Base(tmp), err)
	}
	return n, nil
}

// holdLocked keeps f, the descriptor of the sealed segment base, until
// the segment is confirmed (releaseLocked); beyond maxHeld it is closed.
// Called with mu held.
func (b *Buffer) holdLocked(base uint64, f *os.File) {
	if len(b.held) >= maxHeld {
		f.Close()
		return
	}
	if b.held == nil {
		b.held = make(map[uint64]*os.File)
	}
	b.held[base] = f
}

// releaseLocked lets go of segment base once it is confirmed.
func (b *Buffer) releaseLocked(base uint64) {
	if f := b.held[base]; f != nil {
		f.Close()
		delete(b.held, base)
	}
}

// maxHeld bounds the descriptors kept of sealed segments (a variable for
// the tests).
var maxHeld = 256

// openSegment opens segment base for reading: a descriptor of its own
// (which the reader closes) of the held file, else by name.
func (b *Buffer) openSegment(base uint64) (*os.File, error) {
	b.mu.Lock()
	g := b.held[base]
	b.mu.Unlock()
	if g == nil {
		return os.Open(b.segPath(base))
	}
	fd, err := unix.FcntlInt(g.Fd(), unix.F_DUPFD_CLOEXEC, 0) // not inherited by children
	if err != nil {
		return nil, fmt.Errorf("diskbuf: dup segment %s: %w", segName(base), err)
	}
	return os.NewFile(uintptr(fd), b.segPath(base)), nil
}

// segmentLost is the reader's answer to segment base missing from disk
// while still on the list: removed from under the buffer before it was
// read. Its records are counted lost and the reader goes on with the next
// segment. It reports false when the segment is the active one, which has
// a held descriptor or is being rebuilt: the reader tries again.
func (b *Buffer) segmentLost(base uint64, off int64) bool {
	b.mu.Lock()
	b.detectRemovedLocked()
	if b.held[base] != nil {
		b.mu.Unlock()
		return false
	}
	i := 0
	for i < len(b.segs) && b.segs[i].base != base {
		i++
	}
	if i >= len(b.segs)-1 {
		b.mu.Unlock()
		return false // gone from the list meanwhile, or the active one
	}
	next := b.segs[i+1].base
	n := next - base
	if off > 0 {
		n = 0 // part of it was read before: how many are left is unknown
	}
	b.pending -= min(b.pending, n) // never handed out, so no Ack takes them off
	b.mu.Unlock()
	b.lost.Add(n)
	b.lostSegs.Add(1)
	ll := &b.lostLog
	ll.segs, ll.recs = ll.segs+1, ll.recs+n
	if now := time.Now(); b.opts.Log != nil && now.Sub(ll.at) >= time.Second {
		// Hundreds of segments may go at once: one line a second.
		b.opts.Log.Error("disk buffer: a segment file not yet delivered was removed from disk; its records are lost, delivery goes on with the next one",
			"dir", b.dir, "segment", segName(base), "offset", off, "segments_lost", ll.segs, "records_lost", ll.recs)
		ll.at, ll.segs, ll.recs = now, 0, 0
	}
	b.rd.reset(Position{Seg: next})
	return true
}

// loseRemovedLocked counts, when the buffer closes, the records in
// segments that lost their names and were not written back (beyond
// maxHeld, or their restore failed): the files go with the descriptors,
// so they are lost, and said so (LostRecords, an error line) rather than
// left for a restart that will not find them. For the oldest segment, part
// of which may be confirmed, the count is an upper bound. Called with mu
// held.
func (b *Buffer) loseRemovedLocked() {
	if b.removals == 0 {
		return
	}
	var n, segs uint64
	for i, sg := range b.segs[:len(b.segs)-1] {
		if _, err := os.Lstat(b.segPath(sg.base)); !errors.Is(err, fs.ErrNotExist) {
			continue
		}
		n += b.segs[i+1].base - sg.base
		segs++
	}
	if last := b.segs[len(b.segs)-1]; b.removed && b.nextSeq > last.base {
		n += b.nextSeq - last.base // the directory could not be made again
		segs++
	}
	if n == 0 {
		return
	}
	b.lost.Add(n)
	b.lostSegs.Add(segs)
	if b.opts.Log != nil {
		b.opts.Log.Error("disk buffer: closing with records only in files removed from disk (not delivered, not written back); they are lost", "dir", b.dir, "segments", segs, "records_lost_at_most", n)
	}
}

// removedFault is Fault's text while records are only in removed files.
func (b *Buffer) removedFault() error {
	first := b.segs[0].base // the oldest segment not wholly confirmed
	if b.removedBelow <= first {
		return nil
	}
	n := b.removedBelow - first
	return fmt.Errorf("disk buffer %s: its directory or active segment was removed while in use and has been created again; up to %d records written before are only in removed files still open: they are being delivered, but a restart now would lose them", b.dir, n)
}
