package diskbuf

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"

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
// like the sealed ones, so the reader delivers everything, and Fault
// reports, until those records are confirmed, that they would not
// survive a restart. A segment beyond maxHeld, or one whose descriptor
// could not be kept, is gone with its name: the reader skips it, counting
// its records in Stats.LostRecords (and logging it), instead of stopping
// there.

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
	return nil
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
	if b.opts.Log != nil {
		b.opts.Log.Error("disk buffer: a segment file not yet delivered was removed from disk; its records are lost, delivery goes on with the next one",
			"dir", b.dir, "segment", segName(base), "records_lost", n, "offset", off)
	}
	b.rd.reset(Position{Seg: next})
	return true
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
