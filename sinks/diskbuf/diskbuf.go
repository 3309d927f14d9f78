// Package diskbuf is a sink's optional disk buffer: an append-only log of
// records split into segment files, with a checkpoint of the first record
// the sink has not confirmed yet.
//
// # On disk
//
// A buffer owns one directory:
//
//	00000000000000000000.seg   segment files, named by the sequence number
//	00000000000000001234.seg   of their first record (%020d.seg)
//	ack                        checkpoint: first unconfirmed position
//	LOCK                       flock'ed while a process has the buffer open
//
// A segment is a sequence of records, each
//
//	[len uint32 LE][crc uint32 LE][payload: len bytes]
//
// where crc is CRC-32C (Castagnoli) over the 4 length bytes followed by the
// payload. Covering the length means an all-zero region (a file extended
// but never written, as after a power cut on ext4) is never a valid empty
// record. A payload is at most MaxRecordBytes; a larger length is
// corruption. A segment grows up to Options.MaxSegmentBytes, then a new one
// is started.
//
// The ack file is 28 bytes: "wharfck1", segment uint64 LE, offset uint64
// LE, CRC-32C of the preceding 24 bytes. It is replaced atomically (write
// ack.tmp, rename; with fsync of file and directory unless Fsync is
// "never"). A missing or corrupt ack file replays the whole buffer.
//
// # Guarantees
//
// Records leave the buffer only when Ack confirms them: a segment file is
// deleted once every record in it is confirmed. Delivery is at-least-once:
// records handed out by Next but not yet confirmed when the process stops
// (Close, crash, kill -9) are handed out again after Open, and so are
// records confirmed after the last checkpoint write that reached the disk
// (with Fsync "interval" the checkpoint is written on the interval).
// Durability of an appended record depends on Options.Fsync:
//
//   - "always": Append returns after the record is fsync'ed (concurrent
//     appenders share one fsync). It survives a power cut.
//   - "interval": every record is written to the file before Append
//     returns, so it survives a crash of the process (kill -9); a power cut
//     loses at most the last FsyncInterval.
//   - "never": like "interval" for process crashes; the kernel decides when
//     data reaches the disk.
//
// # Corruption
//
// Open scans the last segment and truncates a torn tail (a partial or
// invalid record after the last valid one, as left by a crash mid-write),
// counting it in Stats.TornTails. A record in the middle of the log with an
// impossible length or a CRC mismatch is counted in Stats.CorruptRecords
// and the reader resynchronises on the next byte offset that holds a valid
// record, trying at most resyncBudget bytes of work before it gives up on
// the rest of the segment and moves to the next one. Records lost inside a
// corrupt region cannot be counted individually: each corrupt region
// counts once. Nothing is ever read whole into memory: the reader streams
// through a bounded buffer (grown only to the largest record, at most
// MaxRecordBytes).
//
// # A disk that cannot be written
//
// A failed write, rotation or checkpoint (disk full before MaxTotalBytes,
// read-only filesystem, I/O error) is a state of the buffer, not an error
// of the record: Fault reports it, appenders that may wait wait as for a
// full buffer (OnFull "block"), the others get ErrUnwritable. The buffer
// retries every FaultRetryInterval and whenever Ack frees space; when
// every record in the active segment is confirmed it starts a new segment
// and deletes the old one (reclaimLocked), so a disk full of confirmed
// records recovers as soon as the reader has caught up. Reading and
// confirming go on meanwhile. It logs (Options.Log) at most one line per
// FaultLogInterval.
//
// # Concurrency
//
// Append, AppendBatch and AppendFunc may be called from many goroutines.
// Next and Rewind are for one reader goroutine (concurrent calls are
// serialised). Ack may be called from any goroutine. Close may be called
// once at any time; it wakes blocked Append and Next calls. An appender
// must not be the goroutine that Acks, or a full buffer (OnFull "block")
// waits forever.
//
// # Messages
//
// EncodeMessage and DecodeMessage turn a message.Message into a record and
// back; Spool wraps a Buffer to carry messages for a sinks.Runner (the
// runner's disk-buffer mode, sinks/runner.go).
package diskbuf

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Options configure a Buffer. Zero fields take the defaults noted.
type Options struct {
	// MaxSegmentBytes bounds one segment file. Default 64MiB, or
	// MaxTotalBytes/4 when that is smaller: space is only given back a
	// whole segment at a time, so several segments must fit.
	MaxSegmentBytes int64
	// MaxTotalBytes bounds the bytes of all segment files (confirmed
	// records still in a partly confirmed segment count). Required; at
	// least twice MaxSegmentBytes.
	MaxTotalBytes int64
	// Fsync is "always", "interval" or "never" (default "interval").
	Fsync string
	// FsyncInterval is the fsync and checkpoint period of Fsync "interval".
	// Default 1s.
	FsyncInterval time.Duration
	// OnFull is "block" (Append waits for Ack to free space; default) or
	// "drop_newest" (Append returns ErrFull and counts the drop). It also
	// says what Append does while the disk cannot be written (see Fault).
	OnFull string
	// Log receives the lines of the fault state: when writes start to
	// fail, at most every FaultLogInterval while they go on failing, and
	// when they work again. Nil: no log.
	Log *slog.Logger
}

// Defaults for zero Options fields.
const (
	// DefaultMaxSegmentBytes keeps files few (a 1GiB buffer is 16 files)
	// but small enough that confirmed space comes back soon.
	DefaultMaxSegmentBytes = 64 << 20
	// DefaultFsyncInterval bounds the loss on a power cut to about a second.
	DefaultFsyncInterval = time.Second
	// FaultRetryInterval is how often a buffer that cannot be written
	// tries again on its own (it also tries whenever Ack frees space): a
	// failed write on a full disk costs one system call.
	FaultRetryInterval = time.Second
	// FaultLogInterval is the least time between two log lines about one
	// buffer's writes failing: one line, not one per message.
	FaultLogInterval = 30 * time.Second
)

// Fsync policies and full-buffer behaviours, as spelled in Options.
const (
	FsyncAlways      = "always"
	FsyncInterval    = "interval"
	FsyncNever       = "never"
	OnFullBlock      = "block"
	OnFullDropNewest = "drop_newest"
)

// MaxRecordBytes is the largest payload of a record. A larger length read
// from disk is corruption; Append refuses a larger payload with
// ErrTooLarge. It bounds the reader's memory.
const MaxRecordBytes = 16 << 20

const (
	hdrSize  = 8
	segExt   = ".seg"
	ackName  = "ack"
	lockName = "LOCK"
	// writeChunk is how many encoded bytes AppendBatch gathers per write(2).
	writeChunk = 1 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Errors returned by a Buffer. Compare with errors.Is.
var (
	// ErrFull is returned by Append under OnFull "drop_newest" when the
	// record does not fit in MaxTotalBytes.
	ErrFull = errors.New("diskbuf: buffer full (max_total_bytes reached); record dropped")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("diskbuf: buffer closed")
	// ErrTooLarge is returned by Append for a payload over MaxRecordBytes
	// or over half of MaxTotalBytes (a record larger than MaxSegmentBytes
	// is written in a segment of its own).
	ErrTooLarge = errors.New("diskbuf: record larger than MaxRecordBytes or half of max_bytes")
	// ErrUnwritable is returned (wrapped, with the cause) by an Append that
	// does not wait while the disk cannot be written: OnFull "drop_newest",
	// or a ctx already done. A waiting Append waits instead. See Fault.
	ErrUnwritable = errors.New("diskbuf: buffer cannot be written")
)

// Position is a point in the log: just past a record. Positions come from
// Record.Pos; pass one to Ack.
type Position struct {
	// Seg is the segment's first sequence number (its file name).
	Seg uint64
	// Off is the byte offset in that segment.
	Off int64
	// n is the reader's ordinal of the record ending here, for counting.
	n uint64
}

// after reports whether p is later in the log than q.
func (p Position) after(q Position) bool {
	return p.Seg > q.Seg || (p.Seg == q.Seg && p.Off > q.Off)
}

// Record is one record handed out by Next.
type Record struct {
	// Data is the payload. It aliases the reader's buffer: valid until the
	// next call to Next, Rewind or Close.
	Data []byte
	// Pos is the position just past the record; Ack(Pos) confirms this
	// record and every one before it.
	Pos Position
}

// Stats are a buffer's counters since Open, plus its current size.
type Stats struct {
	// Appended and Acked count records written and confirmed.
	Appended, Acked uint64
	// DroppedFull counts records refused with ErrFull (drop_newest).
	DroppedFull uint64
	// CorruptRecords counts corrupt regions the reader skipped.
	CorruptRecords uint64
	// TornTails counts torn tails truncated by Open (0 or 1 per Open).
	TornTails uint64
	// TornBytes is how many bytes those truncations removed.
	TornBytes uint64
	// Bytes and Segments are the segment files on disk now.
	Bytes    int64
	Segments int
	// SyncErrors counts failed fsyncs (background ones with Fsync
	// "interval", the append's own with "always": that Append returns the
	// error) and background checkpoint writes; the data stays written,
	// only its durability against a power cut is in doubt.
	SyncErrors uint64
	// CheckpointReset is true when Open found the ack file corrupt, and
	// so replays everything on disk.
	CheckpointReset bool
	// Pending counts records stored and not confirmed, those from before
	// Open included: what Verify counts as pending for an intact buffer.
	// Records lost in a corrupt region cannot be told apart, so they may
	// count until the buffer is next empty; then it is exactly 0.
	Pending uint64
	// Unwritable is true while the buffer cannot be written (see Fault).
	Unwritable bool
	// Faults counts how often the buffer became unwritable since Open.
	Faults uint64
	// LostRecords counts records in segment files removed from disk (the
	// directory deleted while in use) before the reader got to them;
	// LostSegments counts those files (a segment partly read before
	// counts there, not in LostRecords). Removals counts how often the
	// directory or active segment was found removed and made again.
	LostRecords, LostSegments, Removals uint64
}

type segment struct {
	base uint64 // first sequence number (file name)
	size int64  // bytes; for the active segment, equal to Buffer.written
}

// Buffer is an open disk buffer. See the package doc for the concurrency
// rules and guarantees.
type Buffer struct {
	dir  string
	opts Options
	lock *os.File

	mu   sync.Mutex
	segs []segment // oldest first; the last is the active one
	wf   *os.File  // active segment, written at its end
	// wfRO is set when the buffer was opened on a read-only filesystem:
	// wf is the active segment opened for reading only, or nil when it
	// could not be created. The next write opens (or creates) it for
	// writing (reopenLocked); until that works the buffer is in the fault
	// state, and what it holds is still delivered.
	wfRO     bool
	written  int64    // bytes in the active segment
	logical  uint64   // bytes ever written since Open: fsync bookkeeping
	nextSeq  uint64   // sequence number of the next record
	disk     int64    // sum of segment sizes
	ack      Position // first unconfirmed position
	deliv    Position // position after the last record handed out
	closed   bool
	spaceCh  chan struct{} // closed and replaced when Ack frees space
	wbuf     []byte        // encoding scratch, guarded by mu
	appended uint64
	acked    uint64
	pending  uint64 // records stored and not confirmed (Stats.Pending)
	dropped  uint64
	ckDirty  bool
	// The fault state (see Fault), guarded by mu: the last write error
	// while writes fail, when they began, when the last line was logged,
	// when to try again, and the checkpoint's last write error.
	fault       error
	faultSince  time.Time
	faultLogged time.Time
	retryAt     time.Time
	retries     uint64
	faults      uint64
	unlogged    uint64 // faults begun since the last line about one
	faultLog    bool   // the current fault's beginning was logged
	ckErr       error

	synced atomic.Uint64 // logical bytes known to be on disk
	syncMu sync.Mutex    // one fsync of the active segment at a time
	// syncFail is set while fsyncs of the active segment fail (nil once
	// one works again); an atomic so Fault does not wait for an fsync.
	syncFail   atomic.Pointer[syncFailure]
	syncLogged time.Time  // the last line about a failing fsync; syncMu
	ckMu       sync.Mutex // one checkpoint write at a time
	ckSaved    Position   // last checkpoint written, guarded by ckMu

	corrupt   atomic.Uint64
	syncErrs  atomic.Uint64
	torn      uint64
	tornBytes uint64
	ckReset   bool

	dataCh   chan struct{} // cap 1: new records were written
	closedCh chan struct{}
	bgDone   chan struct{}

	// pol is the fsync policy in force (opts.Fsync and FsyncInterval as
	// opened, then as SetFsync sets them); polCh (cap 1) tells the
	// background goroutine to take a new interval.
	pol   atomic.Pointer[fsyncPolicy]
	polCh chan struct{}

	// A directory removed while in use (removed.go), guarded by mu:
	// removed until rebuildLocked made it again; held are descriptors of
	// sealed segments (at most maxHeld) kept until they are confirmed, so
	// the reader can read them even without their names; the records
	// below sequence removedBelow were written before the last removal
	// (the segments from segs[0] up to it lost their names); segGen counts
	// active segments created again under the same name; ckLost makes the
	// next checkpoint be written even if the position did not move.
	removed      bool
	removals     uint64
	held         map[uint64]*os.File
	removedBelow uint64
	segGen       uint64
	ckLost       bool
	lost         atomic.Uint64 // records in segments removed before they were read
	lostSegs     atomic.Uint64
	// restoreAt is when the background loop tries a failed write-back of
	// removed segments again (restore; guarded by mu). restoreWant asks
	// it for a write-back now (rebuildLocked); restoreWait is closed when
	// that write-back has been tried (nil when none is due), so Fault
	// answers after it; restoreCh (cap 1) wakes the loop.
	restoreAt   time.Time
	restoreWant bool
	restoreWait chan struct{}
	restoreCh   chan struct{}
	// lostLog rate-limits segmentLost's log line (one per second, with
	// the segments and records skipped since the last one); reader only.
	lostLog struct {
		at         time.Time
		segs, recs uint64
	}

	rmu  sync.Mutex // serialises Next and Rewind
	rd   reader
	rdN  uint64 // ordinal of the last record handed out
	recs []Record
}

// Open opens or creates the buffer in dir, truncating a torn tail of the
// last segment, and positions the reader at the first unconfirmed record.
// Only one Buffer (in any process) may have dir open.
func Open(dir string, opts Options) (*Buffer, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("diskbuf: create buffer dir: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o640)
	if errors.Is(err, syscall.EROFS) {
		// A read-only filesystem (a disk error remounted it, or an
		// operator did): open what is there to deliver it, and wait in
		// the fault state for the disk to be writable again. flock works
		// on a descriptor opened for reading. Without a lock file (a
		// buffer never used) there is nothing to protect: no process can
		// write there either.
		lock, err = os.Open(filepath.Join(dir, lockName))
		if errors.Is(err, os.ErrNotExist) {
			lock, err = nil, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("diskbuf: open lock file: %w", err)
	}
	if lock != nil {
		if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			lock.Close()
			return nil, fmt.Errorf("diskbuf: %s is in use by another buffer (flock: %v); give each sink its own buffer dir", dir, err)
		}
	}
	b := &Buffer{
		dir:      dir,
		opts:     opts,
		lock:     lock,
		spaceCh:  make(chan struct{}),
		dataCh:   make(chan struct{}, 1),
		closedCh: make(chan struct{}),
		bgDone:   make(chan struct{}),
		polCh:    make(chan struct{}, 1),

		restoreCh: make(chan struct{}, 1),
	}
	b.pol.Store(&fsyncPolicy{mode: opts.Fsync, every: opts.FsyncInterval})
	if err := b.load(); err != nil {
		b.closeFiles()
		return nil, err
	}
	if free := freeBytes(dir); free >= 0 && opts.Log != nil && opts.MaxTotalBytes > free+b.disk {
		opts.Log.Warn("disk buffer: max_bytes is more than its filesystem has free; if the disk fills up first, input is held back as for a full buffer (on_full) until space returns",
			"dir", dir, "max_bytes", opts.MaxTotalBytes, "free_bytes", free, "buffer_bytes", b.disk)
	}
	go b.background()
	return b, nil
}

func (o Options) withDefaults() (Options, error) {
	if o.MaxTotalBytes <= 0 {
		return o, errors.New("diskbuf: max_total_bytes is required: set the most disk the buffer may use")
	}
	if o.MaxSegmentBytes <= 0 {
		o.MaxSegmentBytes = min(DefaultMaxSegmentBytes, o.MaxTotalBytes/4)
	}
	if o.MaxSegmentBytes < hdrSize+1 {
		return o, fmt.Errorf("diskbuf: max_segment_bytes %d too small: at least %d", o.MaxSegmentBytes, hdrSize+1)
	}
	if o.MaxTotalBytes < 2*o.MaxSegmentBytes {
		return o, fmt.Errorf("diskbuf: max_total_bytes %d must be at least twice max_segment_bytes %d (space comes back a segment at a time)", o.MaxTotalBytes, o.MaxSegmentBytes)
	}
	switch o.Fsync {
	case "":
		o.Fsync = FsyncInterval
	case FsyncAlways, FsyncInterval, FsyncNever:
	default:
		return o, fmt.Errorf("diskbuf: fsync %q: want always, interval or never", o.Fsync)
	}
	if o.FsyncInterval <= 0 {
		o.FsyncInterval = DefaultFsyncInterval
	}
	switch o.OnFull {
	case "":
		o.OnFull = OnFullBlock
	case OnFullBlock, OnFullDropNewest:
	default:
		return o, fmt.Errorf("diskbuf: on_full %q: want block or drop_newest", o.OnFull)
	}
	return o, nil
}

// SetLimits gives an open buffer new MaxTotalBytes, MaxSegmentBytes and
// OnFull (a config reload; the other options need a new Open). Appends
// waiting for room look again at once. A bound below what is stored
// deletes nothing: appends wait (or, with drop_newest, are dropped) until
// confirmed records bring the buffer under it; a new segment size applies
// from the next segment.
func (b *Buffer) SetLimits(maxTotal, maxSegment int64, onFull string) error {
	o := b.opts // the fields not changed here are only written by Open
	o.MaxTotalBytes, o.MaxSegmentBytes, o.OnFull = maxTotal, maxSegment, onFull
	o, err := o.withDefaults()
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.opts.MaxTotalBytes, b.opts.MaxSegmentBytes, b.opts.OnFull = o.MaxTotalBytes, o.MaxSegmentBytes, o.OnFull
	close(b.spaceCh)
	b.spaceCh = make(chan struct{})
	return nil
}

// fsyncPolicy is Options.Fsync and FsyncInterval of an open buffer.
type fsyncPolicy struct {
	mode  string
	every time.Duration
}

// fsync returns the Fsync policy in force.
func (b *Buffer) fsync() string { return b.pol.Load().mode }

// SetFsync changes the Fsync policy and FsyncInterval of the open buffer
// (see Options), from the next append and checkpoint on. Switching to
// "always" also fsyncs what was written before at the next append (an
// fsync covers the whole file) and writes the checkpoint at the next Ack.
func (b *Buffer) SetFsync(mode string, every time.Duration) error {
	o := b.opts
	o.Fsync, o.FsyncInterval = mode, every
	o, err := o.withDefaults()
	if err != nil {
		return err
	}
	prev := b.pol.Swap(&fsyncPolicy{mode: o.Fsync, every: o.FsyncInterval})
	if prev.mode == FsyncInterval && o.Fsync != FsyncInterval {
		// The background goroutine syncs and checkpoints no more: do
		// what it would have done for what was written and confirmed.
		b.mu.Lock()
		end, dirty := b.logical, b.ckDirty
		b.mu.Unlock()
		if o.Fsync == FsyncAlways {
			b.syncTo(end) // a failure is counted and reported by Fault
		}
		if dirty {
			b.retryCheckpoint()
		}
	}
	select {
	case b.polCh <- struct{}{}:
	default:
	}
	return nil
}

// listSegments returns the segment files in dir, oldest first, with sizes.
func listSegments(dir string) ([]segment, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("diskbuf: read buffer dir: %w", err)
	}
	var segs []segment
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, segExt+restoreExt) {
			os.Remove(filepath.Join(dir, name)) // a restore cut short (removed.go); its source is gone
			continue
		}
		if !strings.HasSuffix(name, segExt) || !e.Type().IsRegular() {
			continue
		}
		base, err := strconv.ParseUint(strings.TrimSuffix(name, segExt), 10, 64)
		if err != nil || len(name) != 20+len(segExt) {
			continue // not ours
		}
		fi, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("diskbuf: stat %s: %w", name, err)
		}
		segs = append(segs, segment{base: base, size: fi.Size()})
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].base < segs[j].base })
	return segs, nil
}

func segName(base uint64) string { return fmt.Sprintf("%020d%s", base, segExt) }

func (b *Buffer) segPath(base uint64) string { return filepath.Join(b.dir, segName(base)) }

// load reads the directory state: checkpoint, segments, torn tail.
func (b *Buffer) load() error {
	os.Remove(filepath.Join(b.dir, ackName+".tmp"))
	segs, err := listSegments(b.dir)
	if err != nil {
		return err
	}
	ack, ackOK, present, err := readCheckpoint(b.dir)
	if err != nil {
		return err
	}
	b.ckReset = present && !ackOK
	// Segments wholly before the checkpoint's segment are confirmed.
	if ackOK {
		for len(segs) > 1 && segs[0].base < ack.Seg {
			if err := os.Remove(b.segPath(segs[0].base)); err != nil {
				if errors.Is(err, syscall.EROFS) {
					break // read-only: left for a later start (the reader starts at ack)
				}
				return fmt.Errorf("diskbuf: remove confirmed segment: %w", err)
			}
			segs = segs[1:]
		}
	}
	if len(segs) == 0 {
		base := uint64(0)
		if ackOK {
			base = ack.Seg + 1
		}
		f, err := os.OpenFile(b.segPath(base), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
		switch {
		case errors.Is(err, syscall.EROFS):
			b.readOnlyLocked(nil, err)
		case err != nil:
			return fmt.Errorf("diskbuf: create segment: %w", err)
		default:
			b.wf = f
		}
		segs = []segment{{base: base}}
		b.nextSeq = base
		if !b.wfRO {
			if err := b.syncDir(); err != nil {
				return err
			}
		}
	} else {
		last := &segs[len(segs)-1]
		f, err := os.OpenFile(b.segPath(last.base), os.O_RDWR, 0)
		if errors.Is(err, syscall.EROFS) {
			rerr := err
			if f, err = os.Open(b.segPath(last.base)); err == nil {
				b.readOnlyLocked(f, rerr)
			}
		}
		if err != nil {
			return fmt.Errorf("diskbuf: open last segment: %w", err)
		}
		b.wf = f
		good, n, err := scanTail(f, last.size)
		if err != nil {
			return fmt.Errorf("diskbuf: scan %s: %w", segName(last.base), err)
		}
		if good < last.size {
			// Read-only: cut when the segment is opened for writing
			// (reopenLocked); the reader stops at good meanwhile.
			if !b.wfRO {
				if err := f.Truncate(good); err != nil {
					return fmt.Errorf("diskbuf: truncate torn tail of %s: %w", segName(last.base), err)
				}
				if b.fsync() != FsyncNever {
					if err := f.Sync(); err != nil {
						return fmt.Errorf("diskbuf: sync %s: %w", segName(last.base), err)
					}
				}
			}
			b.torn++
			b.tornBytes += uint64(last.size - good)
			last.size = good
		}
		if _, err := f.Seek(good, 0); err != nil {
			return fmt.Errorf("diskbuf: seek: %w", err)
		}
		b.nextSeq = last.base + n
		if n == 0 && good > 0 {
			b.nextSeq = last.base + 1 // only corrupt regions: keep names increasing
		}
	}
	b.segs = segs
	b.written = segs[len(segs)-1].size
	for _, s := range segs {
		b.disk += s.size
	}
	for _, s := range segs[:len(segs)-1] {
		if f, err := os.Open(b.segPath(s.base)); err == nil {
			b.holdLocked(s.base, f) // see removed.go
		}
	}
	// Start reading at the checkpoint, or at the oldest segment.
	start := Position{Seg: segs[0].base}
	if ackOK && ack.Seg >= segs[0].base {
		start = ack
		found := false
		for _, s := range segs {
			if s.base == ack.Seg {
				found = true
				start.Off = min(ack.Off, s.size)
			}
		}
		if !found {
			start = Position{Seg: segs[0].base}
			for _, s := range segs {
				if s.base > ack.Seg {
					start = Position{Seg: s.base}
					break
				}
			}
		}
	}
	b.ack, b.deliv, b.ckSaved = start, start, ack
	b.rd.reset(start)
	return b.countPending(start)
}

// countPending sets b.pending at Open: records from start to the end.
// Segments are named by the sequence number of their first record, so
// that is nextSeq minus start's sequence number, which takes a scan of
// start's segment up to start.Off (at most one segment's bytes).
func (b *Buffer) countPending(start Position) error {
	seq := start.Seg
	if start.Off > 0 {
		f, err := os.Open(b.segPath(start.Seg))
		if err != nil {
			return fmt.Errorf("diskbuf: count pending records: %w", err)
		}
		_, before, err := scanTail(f, start.Off)
		f.Close()
		if err != nil {
			return fmt.Errorf("diskbuf: count pending records in %s: %w", segName(start.Seg), err)
		}
		seq += before
	}
	if b.nextSeq > seq {
		b.pending = b.nextSeq - seq
	}
	if start.Seg == b.segs[len(b.segs)-1].base && start.Off >= b.written {
		b.pending = 0
	}
	return nil
}

// scanTail reads a segment of size bytes and returns the end of its last
// valid record and how many valid records it holds.
func scanTail(f *os.File, size int64) (good int64, n uint64, err error) {
	var s scanner
	s.init(f, 0)
	s.limit = size
	for {
		_, end, st, err := s.next(true)
		if err != nil {
			return 0, 0, err
		}
		switch st {
		case scanRecord:
			good = end
			n++
			s.consume()
		case scanEnd:
			return good, n, nil
		case scanCorrupt:
			s.resync()
		}
	}
}

// Append writes one record. See AppendBatch.
func (b *Buffer) Append(ctx context.Context, payload []byte) error {
	_, err := b.AppendFunc(ctx, 1, func(dst []byte, _ int) []byte { return append(dst, payload...) })
	return err
}

// AppendBatch writes payloads as consecutive records, gathering them into
// few write calls, and returns how many were written. When the buffer is
// full it waits for Ack to free space (OnFull "block") until ctx is done
// or Close begins, or it drops the rest and returns ErrFull (OnFull
// "drop_newest"); records not written for lack of space count in
// Stats.DroppedFull. The payloads are not retained.
func (b *Buffer) AppendBatch(ctx context.Context, payloads [][]byte) (int, error) {
	return b.AppendFunc(ctx, len(payloads), func(dst []byte, i int) []byte { return append(dst, payloads[i]...) })
}

// AppendFunc is AppendBatch for n records that enc encodes straight into
// the write buffer: enc(dst, i) appends record i to dst and returns it.
// enc runs with the buffer locked (it must not call the Buffer) and may
// be called more than once for a record (when a segment or space runs
// out, or a write fails); it must append the same bytes each time.
//
// A failed write (disk full, read-only filesystem, I/O error) puts the
// buffer in its fault state (see Fault) and is treated like a full
// buffer: under OnFull "block" Append waits (until the write works, ctx
// is done or Close begins), retrying every FaultRetryInterval and
// whenever Ack frees space; under "drop_newest", or with ctx already
// done, it returns how many it wrote and an error wrapping ErrUnwritable.
func (b *Buffer) AppendFunc(ctx context.Context, n int, enc func(dst []byte, i int) []byte) (int, error) {
	return b.appendFunc(ctx, n, enc, true)
}

// appendFunc is AppendFunc; countDrops says whether records it does not
// write count as dropped (DroppedFull). MoveTo's do not: they stay in the
// buffer they are moved from.
func (b *Buffer) appendFunc(ctx context.Context, n int, enc func(dst []byte, i int) []byte, countDrops bool) (int, error) {
	if n <= 0 {
		return 0, nil
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return 0, ErrClosed
	}
	var err error
	done, chunkRecs, limit := 0, 0, n
	flush := func() error {
		ferr := b.flushLocked(chunkRecs)
		if ferr == nil {
			done += chunkRecs
		}
		chunkRecs = 0
		return ferr
	}
	// stuck handles a failed write or rotation: it frees what it can,
	// waits when Append may, and reports whether to try again (the
	// records not written are encoded again); when not, err says why.
	stuck := func(ferr error) bool {
		if b.reclaimLocked() {
			return true // the disk was full of confirmed records
		}
		if ferr != errNotYet { // a write was tried and failed
			b.setFaultLocked(ferr)
		}
		if b.opts.OnFull == OnFullDropNewest || ctx.Err() != nil {
			err = fmt.Errorf("%w: %w", ErrUnwritable, b.fault)
			return false
		}
		if werr := b.waitLocked(ctx, b.retryAt); werr != nil {
			err = werr
			return false
		}
		return true
	}
	b.wbuf = b.wbuf[:0]
	for {
		if done+chunkRecs == limit {
			if chunkRecs == 0 {
				break
			}
			if ferr := flush(); ferr != nil && !stuck(ferr) {
				break
			}
			continue
		}
		at := len(b.wbuf)
		b.wbuf = append(b.wbuf, 0, 0, 0, 0, 0, 0, 0, 0)
		b.wbuf = enc(b.wbuf, done+chunkRecs)
		plen := len(b.wbuf) - at - hdrSize
		rec, pend := int64(hdrSize+plen), int64(at)
		// A record over MaxSegmentBytes gets a segment of its own (the
		// rotation below starts one when the active one holds anything);
		// one over half of MaxTotalBytes could wait for space for ever.
		if plen > MaxRecordBytes || rec > b.opts.MaxTotalBytes/2 {
			b.wbuf = b.wbuf[:at]
			err = ErrTooLarge
			limit = done + chunkRecs // write the records before it, then stop
			continue
		}
		if b.disk+pend+rec > b.opts.MaxTotalBytes {
			b.wbuf = b.wbuf[:at]
			if ferr := flush(); ferr != nil {
				if stuck(ferr) {
					continue
				}
				break
			}
			if b.opts.OnFull == OnFullDropNewest {
				if countDrops {
					b.dropped += uint64(n - done)
				}
				err = ErrFull
				break
			}
			if werr := b.waitLocked(ctx, time.Time{}); werr != nil {
				if countDrops && !errors.Is(werr, ErrClosed) {
					b.dropped += uint64(n - done)
				}
				err = werr
				break
			}
			continue
		}
		if b.written+pend+rec > b.opts.MaxSegmentBytes && b.written+pend > 0 {
			b.wbuf = b.wbuf[:at]
			ferr := flush()
			if ferr == nil && b.fault != nil && time.Now().Before(b.retryAt) {
				ferr = errNotYet
			} else if ferr == nil {
				ferr = b.rotateLocked()
			}
			if ferr != nil && !stuck(ferr) {
				break
			}
			continue
		}
		sealRecord(b.wbuf[at:])
		chunkRecs++
		if len(b.wbuf) >= writeChunk {
			if ferr := flush(); ferr != nil && !stuck(ferr) {
				break
			}
		}
	}
	end := b.logical
	b.mu.Unlock()
	if done > 0 && b.fsync() == FsyncAlways {
		if serr := b.syncTo(end); serr != nil { // written, not known to be on disk
			if err == nil {
				err = serr
			}
		}
	}
	return done, err
}

// waitLocked waits, with mu released, until Ack frees space, until
// (when not zero), ctx is done or Close begins. It returns ctx's error,
// ErrClosed, or nil to try again. Called with mu held.
func (b *Buffer) waitLocked(ctx context.Context, until time.Time) error {
	ch := b.spaceCh
	var timer <-chan time.Time
	if !until.IsZero() {
		t := time.NewTimer(max(time.Until(until), time.Millisecond))
		defer t.Stop()
		timer = t.C
	}
	b.mu.Unlock()
	var err error
	select {
	case <-ch:
	case <-timer:
	case <-ctx.Done():
		err = ctx.Err()
	case <-b.closedCh:
		err = ErrClosed
	}
	b.mu.Lock()
	if err == nil && b.closed {
		err = ErrClosed
	}
	return err
}

// setFaultLocked enters (or stays in) the fault state after a failed
// write, rotation or segment creation. It logs at most one line per
// FaultLogInterval: a fault that begins sooner after the last line (a
// disk that keeps filling up) is counted in the next one. Called with mu
// held.
func (b *Buffer) setFaultLocked(err error) {
	now := time.Now()
	b.retryAt = now.Add(FaultRetryInterval)
	if b.fault == nil {
		b.fault, b.faultSince, b.retries = err, now, 0
		b.faults++
		b.faultLog = now.Sub(b.faultLogged) >= FaultLogInterval
		if !b.faultLog {
			b.unlogged++
			return
		}
		b.faultLogged = now
		b.log(slog.LevelError, "disk buffer cannot be written: "+b.faultEffect(), err, now)
		b.unlogged = 0
		return
	}
	b.fault = err
	b.retries++
	if now.Sub(b.faultLogged) >= FaultLogInterval {
		b.faultLogged, b.faultLog = now, true
		b.log(slog.LevelWarn, "disk buffer still cannot be written: "+b.faultEffect(), err, now)
		b.unlogged = 0
	}
}

// faultEffect says what the fault state does to input under OnFull.
func (b *Buffer) faultEffect() string {
	if b.opts.OnFull == OnFullDropNewest {
		return "new records are dropped and counted (on_full = drop_newest) until it can"
	}
	return "appends that can wait (TCP input) wait, the others (UDP input) are dropped and counted, until it can (on_full = block)"
}

// clearFaultLocked leaves the fault state after a write worked, logging
// it when the fault's beginning was logged.
func (b *Buffer) clearFaultLocked() {
	if b.opts.Log != nil && b.faultLog {
		b.opts.Log.Info("disk buffer can be written again", "dir", b.dir,
			"unwritable_for", time.Since(b.faultSince).Round(time.Millisecond).String(), "retries", b.retries)
	}
	b.fault = nil
	b.retryAt = time.Time{}
}

func (b *Buffer) log(level slog.Level, msg string, err error, now time.Time) {
	if b.opts.Log == nil {
		return
	}
	b.opts.Log.Log(context.Background(), level, msg, "dir", b.dir, "error", err,
		"free_bytes", freeBytes(b.dir), "unwritable_for", now.Sub(b.faultSince).Round(time.Millisecond).String(),
		"retries", b.retries, "retry_every", FaultRetryInterval.String(), "faults_not_logged", b.unlogged)
}

// freeBytes is the space left to an unprivileged user on dir's
// filesystem, or -1 when it cannot be told.
func freeBytes(dir string) int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return -1
	}
	return int64(st.Bavail) * st.Bsize
}

// Dir is the buffer's directory.
func (b *Buffer) Dir() string { return b.dir }

// Fault returns nil while the buffer can be written, else why not: the
// last write or checkpoint error, since when, and the free space on the
// buffer's filesystem. A disk that is full (ENOSPC, EDQUOT), read-only
// (EROFS) or failing (EIO) is a state of the buffer, not an error of
// each record: see AppendFunc. It ends by itself once a write works
// again: freeing the fully confirmed active segment (Ack), other
// programs freeing space, or a remount. A buffer that can be written
// but whose fsyncs fail is reported too (records go on being written
// and delivered; their durability is in doubt) until an fsync works.
// So is a directory removed while in use until its segments are written
// back; while that write-back is due or running, Fault waits for it.
func (b *Buffer) Fault() error {
	b.mu.Lock()
	w := b.restoreWait
	b.mu.Unlock()
	if w != nil { // a write-back of removed segments is due or running
		select {
		case <-w:
		case <-b.closedCh:
		}
	}
	b.mu.Lock()
	err, since, ck := b.fault, b.faultSince, b.ckErr
	gone := b.removedFault()
	b.mu.Unlock()
	if err == nil && ck == nil && gone != nil {
		return gone
	}
	if err == nil && ck == nil {
		if sf := b.syncFail.Load(); sf != nil {
			return fmt.Errorf("disk buffer %s: fsync fails for %s (%v): records are delivered, but those written meanwhile may not survive a power cut", b.dir, time.Since(sf.since).Round(time.Second), sf.err)
		}
		return nil
	}
	free := freeBytes(b.dir)
	if err == nil {
		return fmt.Errorf("disk buffer %s: the checkpoint cannot be written (%v; %d bytes free on its filesystem): what is delivered meanwhile would be delivered again after a restart", b.dir, ck, free)
	}
	return fmt.Errorf("disk buffer %s cannot be written for %s (%v; %d bytes free on its filesystem)", b.dir, time.Since(since).Round(time.Second), err, free)
}

// reclaimLocked replaces the active segment with a new, empty one when
// every record in it is confirmed, and deletes it: on a full disk the
// space comes back at once instead of when the segment fills. It reports
// whether it did. Called with mu held.
func (b *Buffer) reclaimLocked() bool {
	act := b.segs[len(b.segs)-1]
	if b.removed || b.written == 0 || b.ack.Seg != act.base || b.ack.Off < b.written {
		return false
	}
	f, err := b.newSegment(b.nextSeq)
	if err != nil {
		return false
	}
	storeMax(&b.synced, b.logical) // what the old segment held is confirmed
	if b.wf != nil {
		b.wf.Close()
	}
	b.wf, b.wfRO = f, false
	b.segs = append(b.segs, segment{base: b.nextSeq})
	b.written = 0
	for _, base := range b.confirmedLocked() {
		b.removeSegment(base)
	}
	b.retryAt = time.Time{}
	select { // the reader lets go of the old segment's file
	case b.dataCh <- struct{}{}:
	default:
	}
	return true
}

// confirmedLocked takes the segments holding only confirmed records (never
// the active one) off the list and returns their names. Called with mu
// held; delete the files with removeSegment.
func (b *Buffer) confirmedLocked() []uint64 {
	var dead []uint64
	for len(b.segs) > 1 {
		s := b.segs[0]
		if s.base < b.ack.Seg || (s.base == b.ack.Seg && b.ack.Off >= s.size) {
			dead = append(dead, s.base)
			b.releaseLocked(s.base)
			b.disk -= s.size
			b.segs = b.segs[1:]
			continue
		}
		break
	}
	if len(dead) > 0 {
		close(b.spaceCh)
		b.spaceCh = make(chan struct{})
	}
	return dead
}

// removeSegment deletes a confirmed segment file. It is truncated first:
// its space comes back even while the reader still has it open.
func (b *Buffer) removeSegment(base uint64) error {
	p := b.segPath(base)
	os.Truncate(p, 0)
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("diskbuf: remove confirmed segment: %w", err)
	}
	return nil
}

// newSegment creates the (empty) segment file base and makes its name
// durable. A file of that name can only be left over from a failed
// attempt, and is emptied.
func (b *Buffer) newSegment(base uint64) (*os.File, error) {
	f, err := os.OpenFile(b.segPath(base), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return nil, fmt.Errorf("diskbuf: create segment: %w", err)
	}
	if err := b.syncDir(); err != nil {
		f.Close()
		os.Remove(b.segPath(base))
		return nil, err
	}
	return f, nil
}

// errNotYet is flushLocked's answer while the buffer is unwritable and
// its next retry is not due: no write was tried.
var errNotYet = errors.New("diskbuf: unwritable, next retry not due")

// sealRecord fills in the header of rec: 8 header bytes, then the payload.
func sealRecord(rec []byte) {
	putU32(rec[0:4], uint32(len(rec)-hdrSize))
	crc := crc32.Update(0, castagnoli, rec[0:4])
	crc = crc32.Update(crc, castagnoli, rec[hdrSize:])
	putU32(rec[4:8], crc)
}

// appendRecord appends the framed record for p to dst.
func appendRecord(dst, p []byte) []byte {
	at := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0)
	dst = append(dst, p...)
	sealRecord(dst[at:])
	return dst
}

func putU32(b []byte, v uint32) {
	_ = b[3]
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}

func getU32(b []byte) uint32 {
	_ = b[3]
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

// flushLocked writes b.wbuf (n records) at the end of the active segment.
// A failed write leaves b.written where it was, so the reader never sees
// a partial record and the next write goes over it; the file is cut back
// when possible. While the buffer is unwritable it does not try before
// retryAt.
func (b *Buffer) flushLocked(n int) error {
	if len(b.wbuf) == 0 {
		return nil
	}
	if b.fault != nil && time.Now().Before(b.retryAt) {
		b.wbuf = b.wbuf[:0]
		return errNotYet
	}
	if b.fsync() == FsyncAlways {
		b.detectRemovedLocked() // an fstat per write: cheap beside the fsync
	}
	if b.removed {
		if err := b.rebuildLocked(); err != nil {
			b.wbuf = b.wbuf[:0]
			return err
		}
	}
	if b.wfRO {
		if err := b.reopenLocked(); err != nil {
			b.wbuf = b.wbuf[:0]
			return err
		}
	}
	w, err := b.wf.WriteAt(b.wbuf, b.written)
	if err != nil {
		if w > 0 {
			b.wf.Truncate(b.written)
		}
		b.wbuf = b.wbuf[:0]
		return fmt.Errorf("diskbuf: write %s: %w", segName(b.segs[len(b.segs)-1].base), err)
	}
	if b.fault != nil {
		b.clearFaultLocked()
	}
	b.written += int64(w)
	b.disk += int64(w)
	b.logical += uint64(w)
	b.segs[len(b.segs)-1].size = b.written
	b.nextSeq += uint64(n)
	b.appended += uint64(n)
	b.pending += uint64(n)
	b.wbuf = b.wbuf[:0]
	if cap(b.wbuf) > 4*writeChunk {
		b.wbuf = nil // after a huge record: do not pin it
	}
	select {
	case b.dataCh <- struct{}{}:
	default:
	}
	return nil
}

// readOnlyLocked records at Open that the filesystem is read-only: f is
// the active segment opened for reading (nil if it could not be created),
// and the buffer starts in the fault state with err. Called with mu held
// or before the Buffer is shared.
func (b *Buffer) readOnlyLocked(f *os.File, err error) {
	b.wf, b.wfRO = f, true
	b.setFaultLocked(fmt.Errorf("diskbuf: opened on a read-only filesystem (what it holds is delivered; new records wait until it is writable): %w", err))
}

// reopenLocked opens the active segment for writing after an Open on a
// read-only filesystem (creating it if it was never made), and cuts a
// torn tail left from before. Called with mu held.
func (b *Buffer) reopenLocked() error {
	act := b.segs[len(b.segs)-1]
	f, err := os.OpenFile(b.segPath(act.base), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("diskbuf: open %s for writing: %w", segName(act.base), err)
	}
	if err := f.Truncate(b.written); err != nil {
		f.Close()
		return fmt.Errorf("diskbuf: cut torn tail of %s: %w", segName(act.base), err)
	}
	if err := b.syncDir(); err != nil {
		f.Close()
		return err
	}
	if b.wf != nil {
		b.wf.Close()
	}
	b.wf, b.wfRO = f, false
	return nil
}

// rotateLocked seals the active segment (fsync'ed unless Fsync is "never")
// and starts a new one named by the next sequence number.
func (b *Buffer) rotateLocked() error {
	if b.removed {
		return b.rebuildLocked() // a new active segment in the new directory
	}
	if b.fsync() != FsyncNever {
		if err := b.wf.Sync(); err != nil {
			return fmt.Errorf("diskbuf: sync segment: %w", err)
		}
		storeMax(&b.synced, b.logical)
	}
	f, err := b.newSegment(b.nextSeq)
	if err != nil {
		return err
	}
	b.holdLocked(b.segs[len(b.segs)-1].base, b.wf)
	b.wf = f
	b.segs = append(b.segs, segment{base: b.nextSeq})
	b.written = 0
	return nil
}

func storeMax(a *atomic.Uint64, v uint64) {
	for {
		cur := a.Load()
		if cur >= v || a.CompareAndSwap(cur, v) {
			return
		}
	}
}

// syncTo returns once the first end logical bytes are fsync'ed. One caller
// fsyncs for everyone waiting (group commit).
func (b *Buffer) syncTo(end uint64) error {
	b.syncMu.Lock()
	defer b.syncMu.Unlock()
	if b.synced.Load() >= end {
		return nil
	}
	b.mu.Lock()
	f, target, ro := b.wf, b.logical, b.wfRO
	b.mu.Unlock()
	if ro || f == nil {
		// Nothing was written since Open (the segment is as it was), or
		// the active segment was removed (Fault says so) and not made
		// again yet.
		return nil
	}
	if err := syncFile(f); err != nil {
		// A rotation closed f after syncing it itself.
		if errors.Is(err, os.ErrClosed) && b.synced.Load() >= end {
			return nil
		}
		err = fmt.Errorf("diskbuf: fsync: %w", err)
		b.syncFailedLocked(err)
		return err
	}
	storeMax(&b.synced, target)
	if sf := b.syncFail.Swap(nil); sf != nil && b.opts.Log != nil {
		b.opts.Log.Info("disk buffer fsync works again", "dir", b.dir, "failing_for", time.Since(sf.since).Round(time.Millisecond).String())
	}
	return nil
}

// syncFailure is the state of a buffer whose fsyncs fail.
type syncFailure struct {
	err   error
	since time.Time
}

// syncFile is fsync(2) of a segment. Tests replace it to make fsync fail:
// no filesystem this runs on fails one on demand (device-mapper's
// error targets need a kernel module).
var syncFile = (*os.File).Sync

// syncFailedLocked records a failed fsync of the active segment: counted
// (Stats.SyncErrors), reported by Fault (so /readyz says so) until an
// fsync works again, and logged at most once per FaultLogInterval. The
// records stay written and are delivered; what is in doubt is whether
// they survive a power cut or a crash of the host, which is what fsync
// promised (Linux may not report the same lost write twice, so a later
// fsync that works does not prove the earlier records reached the disk).
// Called with syncMu held.
func (b *Buffer) syncFailedLocked(err error) {
	b.syncErrs.Add(1)
	now := time.Now()
	since := now
	if sf := b.syncFail.Load(); sf != nil {
		since = sf.since
	}
	b.syncFail.Store(&syncFailure{err: err, since: since})
	if b.opts.Log != nil && now.Sub(b.syncLogged) >= FaultLogInterval {
		b.syncLogged = now
		b.opts.Log.Error("disk buffer fsync failed: its records are still delivered, but those written since the last good fsync may not survive a power cut or host crash; check the disk (dmesg, SMART)",
			"dir", b.dir, "error", err, "fsync_errors", b.syncErrs.Load(),
			"failing_for", now.Sub(since).Round(time.Millisecond).String())
	}
}

func (b *Buffer) syncDir() error {
	if b.fsync() == FsyncNever {
		return nil
	}
	d, err := os.Open(b.dir)
	if err != nil {
		return fmt.Errorf("diskbuf: open dir for fsync: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("diskbuf: fsync dir: %w", err)
	}
	return nil
}

// Ack confirms every record up to upTo (a Record.Pos from Next): they will
// not be handed out again, even after a restart, once the checkpoint is
// written (at once, or on the interval with Fsync "interval"). Segments
// holding only confirmed records are deleted. Acking an older position
// does nothing; acking past what Next handed out is an error.
func (b *Buffer) Ack(upTo Position) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	if !upTo.after(b.ack) {
		b.mu.Unlock()
		return nil
	}
	if upTo.after(b.deliv) {
		b.mu.Unlock()
		return fmt.Errorf("diskbuf: ack of %d/%d past the last record handed out (%d/%d)", upTo.Seg, upTo.Off, b.deliv.Seg, b.deliv.Off)
	}
	if upTo.n > b.ack.n {
		b.acked += upTo.n - b.ack.n
		b.pending -= min(b.pending, upTo.n-b.ack.n)
	}
	b.ack = upTo
	if upTo.Seg == b.segs[len(b.segs)-1].base && upTo.Off >= b.written {
		b.pending = 0 // empty: exact, whatever corruption hid
	}
	dead := b.confirmedLocked()
	if b.fault != nil && len(dead) == 0 && upTo.Seg == b.segs[len(b.segs)-1].base && upTo.Off >= b.written {
		// Unwritable, and the active segment is all confirmed: wake the
		// waiting appenders, which free it (reclaimLocked) and retry.
		close(b.spaceCh)
		b.spaceCh = make(chan struct{})
	}
	if len(dead) > 0 || b.fault != nil {
		b.retryAt = time.Time{}
	}
	b.ckDirty = true
	ckNow := b.fsync() != FsyncInterval && b.ckErr == nil
	b.mu.Unlock()
	if ckNow {
		b.retryCheckpoint() // a failure is a state (Fault), retried in the background
	}
	var err error
	for _, base := range dead {
		if rerr := b.removeSegment(base); rerr != nil && err == nil {
			err = rerr
		}
	}
	return err
}

// writeCheckpoint persists the current ack position if it changed.
func (b *Buffer) writeCheckpoint() error {
	b.ckMu.Lock()
	defer b.ckMu.Unlock()
	b.mu.Lock()
	pos, lost := b.ack, b.ckLost
	b.ckDirty = false
	b.mu.Unlock()
	if !lost && pos.Seg == b.ckSaved.Seg && pos.Off == b.ckSaved.Off {
		return nil
	}
	err := saveCheckpoint(b.dir, pos, b.fsync() != FsyncNever)
	b.mu.Lock()
	if err != nil {
		b.ckDirty = true
	} else if lost {
		b.ckLost = false
	}
	b.ckErr = err
	b.mu.Unlock()
	if err != nil {
		return err
	}
	b.ckSaved = pos
	return nil
}

// background fsyncs and checkpoints every FsyncInterval (Fsync
// "interval"); with the other policies it retries a checkpoint that
// could not be written, every FaultRetryInterval.
func (b *Buffer) background() {
	defer close(b.bgDone)
	period := func() time.Duration {
		if p := b.pol.Load(); p.mode == FsyncInterval {
			return p.every
		}
		return FaultRetryInterval
	}
	t := time.NewTicker(period())
	defer t.Stop()
	for {
		select {
		case <-b.closedCh:
			return
		case <-b.polCh:
			t.Reset(period())
			continue
		case <-b.restoreCh:
		case <-t.C:
		}
		b.mu.Lock()
		if b.detectRemovedLocked() && (b.fault == nil || !time.Now().Before(b.retryAt)) {
			if err := b.rebuildLocked(); err != nil {
				b.setFaultLocked(err)
			} else if b.fault != nil {
				b.clearFaultLocked()
			}
		}
		// A write-back after a rebuild, or one that failed (a full disk)
		// tried again every restoreRetry until it succeeds or the records
		// are delivered. It copies without holding mu.
		restore := b.restoreWant || !b.removed && b.removedBelow > b.segs[0].base && !time.Now().Before(b.restoreAt)
		end, dirty, ckFailed := b.logical, b.ckDirty, b.ckErr != nil
		b.mu.Unlock()
		if restore {
			b.restore()
		}
		if b.fsync() != FsyncInterval {
			if dirty && ckFailed {
				b.retryCheckpoint()
			}
			continue
		}
		b.syncTo(end) // a failure is counted, logged and reported by Fault
		if dirty {
			if err := b.retryCheckpoint(); err != nil {
				b.syncErrs.Add(1)
			}
		}
	}
}

// retryCheckpoint writes the checkpoint; when that fails, it frees a
// fully confirmed active segment (the disk may be full of it) and tries
// once more.
func (b *Buffer) retryCheckpoint() error {
	err := b.writeCheckpoint()
	if err == nil {
		return nil
	}
	b.mu.Lock()
	freed := !b.closed && b.reclaimLocked()
	b.mu.Unlock()
	if freed {
		err = b.writeCheckpoint()
	}
	return err
}

// Stats returns the counters.
func (b *Buffer) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return Stats{
		Appended:        b.appended,
		Acked:           b.acked,
		DroppedFull:     b.dropped,
		CorruptRecords:  b.corrupt.Load(),
		TornTails:       b.torn,
		TornBytes:       b.tornBytes,
		Bytes:           b.disk,
		Segments:        len(b.segs),
		SyncErrors:      b.syncErrs.Load(),
		CheckpointReset: b.ckReset,
		Pending:         b.pending,
		Unwritable:      b.fault != nil,
		Faults:          b.faults,
		LostRecords:     b.lost.Load(),
		LostSegments:    b.lostSegs.Load(),
		Removals:        b.removals,
	}
}

// Close wakes blocked Append and Next calls (they return ErrClosed),
// fsyncs the active segment (unless Fsync is "never"), writes the
// checkpoint and releases the directory. Records handed out but not
// confirmed are handed out again after the next Open.
func (b *Buffer) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	// A removal the background check has not seen yet (rm -rf, then a
	// stop within the second): make the directory again; the held
	// segments are written back below, once the background loop has
	// stopped, or counted lost if they cannot be (loseRemovedLocked).
	if b.detectRemovedLocked() {
		if err := b.rebuildLocked(); err != nil && b.opts.Log != nil {
			b.opts.Log.Error("disk buffer: its directory was removed and could not be made again at close", "dir", b.dir, "error", err)
		}
	}
	b.closed = true
	close(b.closedCh)
	b.mu.Unlock()
	<-b.bgDone
	b.rmu.Lock() // wait for a Next in progress
	defer b.rmu.Unlock()
	defer func() {
		b.mu.Lock()
		b.closeFiles()
		b.mu.Unlock()
	}()
	b.mu.Lock()
	restore := b.restoreWant
	b.mu.Unlock()
	if restore { // a rebuild the background loop did not get to (Close's own)
		b.restore()
	}
	b.mu.Lock()
	b.loseRemovedLocked()
	b.mu.Unlock()
	var err error
	if b.fsync() != FsyncNever {
		b.mu.Lock()
		end := b.logical
		b.mu.Unlock()
		err = b.syncTo(end)
	}
	if cerr := b.writeCheckpoint(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}

func (b *Buffer) closeFiles() {
	if b.wf != nil {
		b.wf.Close()
	}
	for base := range b.held {
		b.releaseLocked(base)
	}
	b.rd.close()
	if b.lock != nil {
		b.lock.Close() // releases the flock
	}
}
