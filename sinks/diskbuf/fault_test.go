package diskbuf

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"wharf/internal/testenv"
)

// numbered is record i of a fault test: 1000 bytes, its number first.
func numbered(i int) []byte {
	return []byte(fmt.Sprintf("%08d %s", i, strings.Repeat("n", 991)))
}

// appendAll appends records from..to-1 in batches of 100 with blocking
// Appends and reports the first error (nil when all were written).
func appendAll(b *Buffer, from, to int) <-chan error {
	done := make(chan error, 1)
	go func() {
		for i := from; i < to; i += 100 {
			batch := make([][]byte, 0, 100)
			for j := i; j < min(i+100, to); j++ {
				batch = append(batch, numbered(j))
			}
			n, err := b.AppendBatch(context.Background(), batch)
			if err != nil || n != len(batch) {
				done <- fmt.Errorf("AppendBatch of records %d..: wrote %d of %d: %w", i, n, len(batch), err)
				return
			}
		}
		done <- nil
	}()
	return done
}

// drain reads and acknowledges records until it has seen n, checking
// that they come in order from 0, each once.
func drain(t *testing.T, b *Buffer, n int) { drainFrom(t, b, 0, n) }

// drainFrom is drain for records from..to-1.
func drainFrom(t *testing.T, b *Buffer, from, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for got := from; got < n; {
		recs, err := b.Next(ctx, 100, 0)
		if err != nil {
			t.Fatalf("Next after %d of %d records: %v", got, n, err)
		}
		for _, r := range recs {
			if want := fmt.Sprintf("%08d ", got); string(r.Data[:9]) != want {
				t.Fatalf("record %d is %q: lost, duplicated or reordered", got, r.Data[:9])
			}
			got++
		}
		if err := b.Ack(recs[len(recs)-1].Pos); err != nil {
			t.Fatalf("Ack after %d records: %v (a full disk is a state of the buffer, not an error of Ack)", got, err)
		}
	}
}

// waitFault polls until the buffer reports that it cannot be written.
func waitFault(t *testing.T, b *Buffer, want string) {
	t.Helper()
	testenv.Eventually(t, fmt.Sprintf("Fault() to report %q", want), func() bool {
		err := b.Fault()
		return err != nil && strings.Contains(err.Error(), want)
	})
}

// waitNoFault polls until the buffer is writable and its checkpoint
// written (retried every FaultRetryInterval).
func waitNoFault(t *testing.T, b *Buffer) {
	t.Helper()
	if !testenv.Poll(3*FaultRetryInterval, func() bool { return b.Fault() == nil }) {
		t.Fatalf("Fault() after recovery = %v", b.Fault())
	}
}

// TestDiskFullHoldsBackAndRecovers guards against ENOSPC losing input:
// on a 1 MiB tmpfs (far below max_bytes) a blocking Append waits instead
// of failing, a non-blocking one fails with ErrUnwritable, and once the
// reader confirms what is stored the space comes back (a fully confirmed
// active segment is replaced by a new one), every record arrives once, in
// order, and the checkpoint that could not be written is written, so a
// reopen replays nothing.
func TestDiskFullHoldsBackAndRecovers(t *testing.T) {
	f := func(name string, segBytes int64, fsync string) {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(testenv.Tmpfs(t, "1m"), "buf")
			o := Options{MaxTotalBytes: 64 << 20, MaxSegmentBytes: segBytes, Fsync: fsync, FsyncInterval: 50 * time.Millisecond}
			b := openT(t, dir, o)
			const n = 3000 // ~3 MB through a 1 MiB filesystem
			done := appendAll(b, 0, n)
			waitFault(t, b, "no space left on device")
			select {
			case err := <-done:
				t.Fatalf("Append returned on a full disk instead of waiting: %v", err)
			default:
			}
			if _, err := b.AppendBatch(doneCtx, [][]byte{numbered(-1)}); !errors.Is(err, ErrUnwritable) {
				t.Errorf("non-blocking Append on a full disk: %v, want ErrUnwritable", err)
			}
			drain(t, b, n)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			waitNoFault(t, b)
			if err := b.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			b = openT(t, dir, o)
			defer b.Close()
			expectEmpty(t, b) // the checkpoint reached the disk: nothing replayed
		})
	}
	f("one segment, fsync always", 16<<20, FsyncAlways)
	f("one segment, fsync interval", 16<<20, FsyncInterval)
	f("small segments, fsync never", 64<<10, FsyncNever)
}

// TestReadOnlyHoldsBack guards against EROFS losing input: an ext4
// filesystem turned read-only by a disk error (errors=remount-ro, as in
// production) makes a blocking Append wait and a non-blocking one fail
// with ErrUnwritable; what was stored stays readable; after Close, a
// remount and Open, everything stored is there and writes work again.
func TestReadOnlyHoldsBack(t *testing.T) {
	mnt := testenv.Ext4(t, 16<<20)
	dir := filepath.Join(mnt, "buf")
	o := Options{MaxTotalBytes: 8 << 20, Fsync: FsyncAlways} // on disk before the error
	b := openT(t, dir, o)
	if err := <-appendAll(b, 0, 500); err != nil {
		t.Fatal(err)
	}
	testenv.Ext4Error(t, mnt)
	done := appendAll(b, 500, 1000)
	waitFault(t, b, "read-only file system")
	if _, err := b.AppendBatch(doneCtx, [][]byte{numbered(-1)}); !errors.Is(err, ErrUnwritable) {
		t.Errorf("non-blocking Append on a read-only disk: %v, want ErrUnwritable", err)
	}
	select {
	case err := <-done:
		t.Fatalf("Append returned on a read-only disk instead of waiting: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the reader goes on: what is stored is delivered
		defer wg.Done()
		drain(t, b, 500)
	}()
	wg.Wait()
	b.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("blocked Append after Close: %v, want ErrClosed", err)
	}
	testenv.Ext4Remount(t, mnt)
	b = openT(t, dir, o)
	defer b.Close()
	// The checkpoint could not be written on the read-only disk: what was
	// delivered comes again (at-least-once), nothing is missing.
	drain(t, b, 500)
	if err := <-appendAll(b, 500, 600); err != nil {
		t.Fatal(err)
	}
	drainFrom(t, b, 500, 600)
}

// TestDiskFullDropNewest: with on_full = "drop_newest" a full disk drops
// (Append returns ErrUnwritable at once, it never waits), and the buffer
// recovers by itself once what it holds is confirmed.
func TestDiskFullDropNewest(t *testing.T) {
	dir := filepath.Join(testenv.Tmpfs(t, "1m"), "buf")
	b := openT(t, dir, Options{MaxTotalBytes: 64 << 20, MaxSegmentBytes: 16 << 20, OnFull: OnFullDropNewest, Fsync: FsyncNever})
	defer b.Close()
	stored := 0
	for {
		start := time.Now()
		n, err := b.AppendBatch(context.Background(), [][]byte{numbered(stored)})
		stored += n
		if err != nil {
			if !errors.Is(err, ErrUnwritable) {
				t.Fatalf("Append on a full disk under drop_newest: %v, want ErrUnwritable", err)
			}
			if d := time.Since(start); d > 100*time.Millisecond {
				t.Errorf("Append took %v under drop_newest: it must not wait", d)
			}
			break
		}
		if stored > 2000 {
			t.Fatal("2000 records of 1000 bytes fit on a 1 MiB disk")
		}
	}
	waitFault(t, b, "no space left on device")
	drain(t, b, stored)
	if _, err := b.AppendBatch(context.Background(), [][]byte{numbered(stored)}); err != nil {
		t.Fatalf("Append after everything stored was confirmed: %v", err)
	}
	drainFrom(t, b, stored, stored+1)
	waitNoFault(t, b)
}

// TestDiskFullFreedElsewhere: space freed by someone else (not by Ack)
// is noticed by the retry timer, also while non-blocking appends (UDP)
// keep failing meanwhile: those must not put the retry off.
func TestDiskFullFreedElsewhere(t *testing.T) {
	mnt := testenv.Tmpfs(t, "1m")
	b := openT(t, filepath.Join(mnt, "buf"), Options{MaxTotalBytes: 64 << 20, Fsync: FsyncNever})
	defer b.Close()
	filler := filepath.Join(mnt, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := f.Write(make([]byte, 4096)); err != nil {
			break
		}
	}
	f.Close()
	done := appendAll(b, 0, 100)
	waitFault(t, b, "no space left on device")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // UDP-like appends that cannot wait, every 5ms
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			b.AppendBatch(doneCtx, [][]byte{numbered(-1)})
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	time.Sleep(1500 * time.Millisecond)
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(3 * FaultRetryInterval):
		t.Fatalf("blocked Append still waiting %v after space was freed elsewhere", 3*FaultRetryInterval)
	}
}

// TestOpenReadOnly: a buffer whose filesystem is read-only when it is
// opened (a disk error remounted it, or an operator did, before a
// restart) opens in the fault state instead of failing: what it holds
// is delivered, Appends wait (or fail with ErrUnwritable when they
// cannot wait), and once the filesystem is writable again the next
// Append works, with no restart. Also for a buffer directory that was
// never used (no lock file, no segment), and with a torn tail, which is
// skipped while read-only and cut once the segment is written again.
func TestOpenReadOnly(t *testing.T) {
	mnt := testenv.Ext4(t, 16<<20)
	dir := filepath.Join(mnt, "buf")
	empty := filepath.Join(mnt, "empty")
	if err := os.Mkdir(empty, 0o750); err != nil {
		t.Fatal(err)
	}
	o := Options{MaxTotalBytes: 8 << 20, Fsync: FsyncAlways}
	b := openT(t, dir, o)
	if err := <-appendAll(b, 0, 300); err != nil {
		t.Fatal(err)
	}
	b.Close()
	// A torn tail longer than what is written after the recovery (256
	// KiB of garbage where a record should be), so that only cutting it
	// keeps it from showing again behind the new records.
	segs := segFiles(t, dir)
	f, err := os.OpenFile(segs[len(segs)-1], os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(bytes.Repeat([]byte{0xff}, 256<<10))
	f.Close()
	testenv.RemountMode(t, mnt, "ro")

	b, err = Open(dir, o)
	if err != nil {
		t.Fatalf("Open on a read-only filesystem: %v, want it to open in the fault state", err)
	}
	defer func() { b.Close() }()
	if st := b.Stats(); st.TornTails != 1 {
		t.Errorf("torn tails %d on a read-only open, want 1 (skipped, not cut)", st.TornTails)
	}
	waitFault(t, b, "read-only file system")
	if _, err := b.AppendBatch(doneCtx, [][]byte{numbered(-1)}); !errors.Is(err, ErrUnwritable) {
		t.Errorf("non-blocking Append on a read-only filesystem: %v, want ErrUnwritable", err)
	}
	done := appendAll(b, 300, 400) // waits
	drain(t, b, 300)               // what it held is delivered meanwhile
	select {
	case err := <-done:
		t.Fatalf("Append returned on a read-only filesystem instead of waiting: %v", err)
	default:
	}
	e, err := Open(empty, o)
	if err != nil {
		t.Fatalf("Open of an unused buffer dir on a read-only filesystem: %v", err)
	}
	defer e.Close()
	waitFault(t, e, "read-only file system")

	testenv.RemountMode(t, mnt, "rw")
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Append still waiting 10 s after the filesystem became writable")
	}
	// The checkpoint Acks could not write is retried in the background.
	testenv.Eventually(t, "the fault state to end", func() bool { return b.Fault() == nil })
	drainFrom(t, b, 300, 400)
	// The tail was cut when the segment was opened for writing: a new
	// Open finds none, and nothing pending.
	b.Close()
	b = openT(t, dir, o)
	if st := b.Stats(); st.TornTails != 0 || st.Pending != 0 {
		t.Errorf("reopened after recovery: torn tails %d, pending %d; want 0 and 0", st.TornTails, st.Pending)
	}
	if err := <-appendAll(e, 0, 50); err != nil {
		t.Fatalf("unused buffer dir after the filesystem became writable: %v", err)
	}
	drain(t, e, 50)
}

// TestFsyncFailureIsReported guards against a failing fsync going
// unnoticed: before, a failed background fsync (fsync = "interval") only
// raised a counter no metric exported, so records whose durability was
// in doubt looked safe. Now, while fsyncs fail, Fault reports it (so
// /readyz says 503), the error is logged with what it means, the count
// is in Stats, and records go on being written and delivered, each once
// and in order; once an fsync works, Fault is nil again and that is
// logged. With fsync = "always" the Append itself returns the error.
func TestFsyncFailureIsReported(t *testing.T) {
	var failing atomic.Bool
	orig := syncFile
	syncFile = func(f *os.File) error {
		if failing.Load() {
			return &os.PathError{Op: "sync", Path: f.Name(), Err: syscall.EIO}
		}
		return orig(f)
	}
	defer func() { syncFile = orig }()

	var logs testenv.SyncBuffer
	o := Options{MaxTotalBytes: 64 << 20, Fsync: FsyncInterval, FsyncInterval: 20 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(&logs, nil))}
	b := openT(t, t.TempDir(), o)
	defer b.Close()
	if err := <-appendAll(b, 0, 100); err != nil {
		t.Fatal(err)
	}
	failing.Store(true)
	if err := <-appendAll(b, 100, 200); err != nil {
		t.Fatalf("Append while fsync fails (interval): %v, want the record written", err)
	}
	waitFault(t, b, "fsync fails")
	if !strings.Contains(b.Fault().Error(), "input/output error") {
		t.Errorf("Fault() = %v, want the fsync's error named", b.Fault())
	}
	if st := b.Stats(); st.SyncErrors == 0 || st.Unwritable {
		t.Errorf("Stats while fsync fails: SyncErrors %d Unwritable %v, want >0 and false (writes work)", st.SyncErrors, st.Unwritable)
	}
	if l := logs.String(); !strings.Contains(l, "disk buffer fsync failed") || !strings.Contains(l, "input/output error") {
		t.Errorf("no error line about the failed fsync in the log:\n%s", l)
	}
	drain(t, b, 200)
	failing.Store(false)
	waitNoFault(t, b)
	if l := logs.String(); !strings.Contains(l, "disk buffer fsync works again") {
		t.Errorf("no line saying fsync works again:\n%s", l)
	}

	// fsync = "always": the Append that could not be made durable says so.
	a := openT(t, t.TempDir(), Options{MaxTotalBytes: 64 << 20, Fsync: FsyncAlways})
	defer a.Close()
	failing.Store(true)
	n, err := a.AppendBatch(context.Background(), [][]byte{numbered(0)})
	failing.Store(false)
	if n != 1 || err == nil || !strings.Contains(err.Error(), "fsync") {
		t.Errorf("AppendBatch with fsync always while fsync fails = %d, %v; want 1 written and the fsync error", n, err)
	}
}
