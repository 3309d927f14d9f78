package diskbuf

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"wharf/internal/testenv"
)

func openT(t testing.TB, dir string, o Options) *Buffer {
	t.Helper()
	b, err := Open(dir, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return b
}

// payload is record i of a test: recognisable, of varying length.
func payload(i int) []byte {
	return []byte(fmt.Sprintf("rec-%06d-%s", i, strings.Repeat("x", i%37)))
}

func appendRange(t testing.TB, b *Buffer, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := b.Append(context.Background(), payload(i)); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
	}
}

// readN reads exactly n records (batches of up to max) and returns their
// payloads and the position after the last one.
func readN(t testing.TB, b *Buffer, n, max, maxBytes int) ([]string, Position) {
	t.Helper()
	var got []string
	var last Position
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for len(got) < n {
		recs, err := b.Next(ctx, min(max, n-len(got)), maxBytes)
		if err != nil {
			t.Fatalf("Next after %d of %d records: %v", len(got), n, err)
		}
		for _, r := range recs {
			got = append(got, string(r.Data))
			last = r.Pos
		}
	}
	return got, last
}

// expectEmpty checks that Next has nothing more to hand out.
func expectEmpty(t testing.TB, b *Buffer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	recs, err := b.Next(ctx, 10, 0)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next on a drained buffer: %d records, err %v", len(recs), err)
	}
}

func wantRange(t testing.TB, got []string, from, to int) {
	t.Helper()
	if len(got) != to-from {
		t.Fatalf("got %d records, want %d (%d..%d)", len(got), to-from, from, to-1)
	}
	for i, g := range got {
		if want := string(payload(from + i)); g != want {
			t.Fatalf("record %d: got %q, want %q", i, g, want)
		}
	}
}

func segFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestOptions(t *testing.T) {
	f := func(o Options, wantErr string) {
		t.Helper()
		b, err := Open(t.TempDir(), o)
		if wantErr == "" {
			if err != nil {
				t.Fatalf("%+v: %v", o, err)
			}
			b.Close()
			return
		}
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			b.Close()
			t.Fatalf("%+v: err %v, want %q", o, err, wantErr)
		}
	}
	f(Options{MaxTotalBytes: 1 << 20}, "")
	f(Options{MaxTotalBytes: 1 << 20, Fsync: FsyncAlways, OnFull: OnFullDropNewest}, "")
	f(Options{MaxTotalBytes: 1 << 20, Fsync: FsyncNever, MaxSegmentBytes: 4096}, "")
	f(Options{}, "max_total_bytes is required")
	f(Options{MaxTotalBytes: 1000, MaxSegmentBytes: 600}, "at least twice max_segment_bytes")
	f(Options{MaxTotalBytes: 1000, MaxSegmentBytes: 3}, "too small")
	f(Options{MaxTotalBytes: 1 << 20, Fsync: "sometimes"}, `fsync "sometimes"`)
	f(Options{MaxTotalBytes: 1 << 20, OnFull: "drop_oldest"}, `on_full "drop_oldest"`)
}

func TestLockedDir(t *testing.T) {
	dir := t.TempDir()
	b := openT(t, dir, Options{MaxTotalBytes: 1 << 20})
	if _, err := Open(dir, Options{MaxTotalBytes: 1 << 20}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second Open: %v, want in-use error", err)
	}
	b.Close()
	openT(t, dir, Options{MaxTotalBytes: 1 << 20}).Close()
}

// Many tiny segments: order kept across files, batches bounded by max and
// maxBytes, confirmed segments deleted.
func TestManySegments(t *testing.T) {
	for _, fsync := range []string{FsyncNever, FsyncInterval, FsyncAlways} {
		t.Run(fsync, func(t *testing.T) {
			dir := t.TempDir()
			b := openT(t, dir, Options{MaxSegmentBytes: 200, MaxTotalBytes: 1 << 20, Fsync: fsync, FsyncInterval: 5 * time.Millisecond})
			defer b.Close()
			const n = 600
			appendRange(t, b, 0, n/2)
			ps := make([][]byte, 0, n/2)
			for i := n / 2; i < n; i++ {
				ps = append(ps, payload(i))
			}
			if k, err := b.AppendBatch(context.Background(), ps); k != len(ps) || err != nil {
				t.Fatalf("AppendBatch: %d, %v", k, err)
			}
			if s := b.Stats(); s.Segments < 50 || s.Appended != n {
				t.Fatalf("stats after append: %+v", s)
			}
			var got []string
			ctx := context.Background()
			for batch := 0; len(got) < n; batch++ {
				max, maxBytes := 1+batch%7, 40+batch%100
				recs, err := b.Next(ctx, max, maxBytes)
				if err != nil {
					t.Fatal(err)
				}
				size := 0
				for _, r := range recs {
					size += len(r.Data)
					got = append(got, string(r.Data))
				}
				if len(recs) > max || (len(recs) > 1 && size > maxBytes) {
					t.Fatalf("batch of %d records, %d bytes: limits %d, %d", len(recs), size, max, maxBytes)
				}
				if err := b.Ack(recs[len(recs)-1].Pos); err != nil {
					t.Fatal(err)
				}
			}
			wantRange(t, got, 0, n)
			expectEmpty(t, b)
			s := b.Stats()
			if s.Acked != n || s.Segments != 1 || len(segFiles(t, dir)) != 1 || s.CorruptRecords != 0 {
				t.Fatalf("after acking all: %+v, files %v", s, segFiles(t, dir))
			}
		})
	}
}

// Reopening hands out exactly the records not confirmed, whatever was
// handed out before.
func TestReopenReplaysUnacked(t *testing.T) {
	f := func(fsync string, n, read, acked int) {
		t.Helper()
		dir := t.TempDir()
		o := Options{MaxSegmentBytes: 300, MaxTotalBytes: 1 << 20, Fsync: fsync}
		b := openT(t, dir, o)
		appendRange(t, b, 0, n)
		if read > 0 {
			recs, _ := readN(t, b, read, 3, 0)
			_ = recs
			b.Rewind()
			if acked > 0 {
				_, pos := readN(t, b, acked, 5, 0)
				if err := b.Ack(pos); err != nil {
					t.Fatal(err)
				}
			}
			readN(t, b, read-acked, 4, 0)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		b = openT(t, dir, o)
		defer b.Close()
		got, _ := readN(t, b, n-acked, 7, 0)
		wantRange(t, got, acked, n)
		expectEmpty(t, b)
		// Appending after reopen continues the log.
		appendRange(t, b, n, n+5)
		got, _ = readN(t, b, 5, 10, 0)
		wantRange(t, got, n, n+5)
	}
	for _, fsync := range []string{FsyncNever, FsyncInterval, FsyncAlways} {
		f(fsync, 100, 0, 0)
		f(fsync, 100, 60, 40)
		f(fsync, 100, 100, 100)
		f(fsync, 100, 100, 1)
		f(fsync, 1, 1, 0)
	}
}

func TestAckErrors(t *testing.T) {
	b := openT(t, t.TempDir(), Options{MaxTotalBytes: 1 << 20})
	defer b.Close()
	appendRange(t, b, 0, 10)
	_, p5 := readN(t, b, 5, 5, 0)
	if err := b.Ack(Position{Seg: p5.Seg, Off: p5.Off + 1}); err == nil {
		t.Fatal("ack past the records handed out succeeded")
	}
	if err := b.Ack(p5); err != nil {
		t.Fatal(err)
	}
	if err := b.Ack(Position{}); err != nil {
		t.Fatalf("ack of an old position: %v", err)
	}
	if s := b.Stats(); s.Acked != 5 {
		t.Fatalf("Acked %d, want 5", s.Acked)
	}
}

// copyDir copies the buffer files (not the lock) of src into a new dir.
func copyDir(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() == lockName {
			continue
		}
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), data, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// A crash mid-write leaves the last record torn at any byte: Open keeps
// every record before it, counts and truncates the tail, and appends go on.
func TestTornTailEveryOffset(t *testing.T) {
	src := t.TempDir()
	o := Options{MaxTotalBytes: 1 << 20, Fsync: FsyncNever}
	b := openT(t, src, o)
	const n = 5
	appendRange(t, b, 0, n)
	b.Close()
	seg := segFiles(t, src)[0]
	full, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	lastStart := len(full) - hdrSize - len(payload(n-1))
	for cut := lastStart; cut < len(full); cut++ {
		dir := copyDir(t, src)
		segPath := filepath.Join(dir, filepath.Base(seg))
		if err := os.Truncate(segPath, int64(cut)); err != nil {
			t.Fatal(err)
		}
		rep, err := Verify(dir)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Records != n-1 || rep.TornTailBytes != int64(cut-lastStart) || rep.CorruptRecords != 0 {
			t.Fatalf("cut %d: Verify %+v", cut, rep)
		}
		b := openT(t, dir, o)
		s := b.Stats()
		wantTorn := uint64(0)
		if cut > lastStart {
			wantTorn = 1
		}
		if s.TornTails != wantTorn || s.TornBytes != uint64(cut-lastStart) || s.Bytes != int64(lastStart) {
			t.Fatalf("cut %d: stats %+v", cut, s)
		}
		got, _ := readN(t, b, n-1, 100, 0)
		wantRange(t, got, 0, n-1)
		expectEmpty(t, b)
		appendRange(t, b, n-1, n+1)
		got, _ = readN(t, b, 2, 100, 0)
		wantRange(t, got, n-1, n+1)
		b.Close()
	}
}

// A power cut can leave a file extended with zeros: that is a torn tail
// too, never an empty record.
func TestZeroTail(t *testing.T) {
	dir := t.TempDir()
	o := Options{MaxTotalBytes: 1 << 20}
	b := openT(t, dir, o)
	appendRange(t, b, 0, 3)
	b.Close()
	seg := segFiles(t, dir)[0]
	fi, _ := os.Stat(seg)
	if err := os.Truncate(seg, fi.Size()+4096); err != nil {
		t.Fatal(err)
	}
	b = openT(t, dir, o)
	defer b.Close()
	if s := b.Stats(); s.TornTails != 1 || s.TornBytes != 4096 {
		t.Fatalf("stats %+v", s)
	}
	got, _ := readN(t, b, 3, 10, 0)
	wantRange(t, got, 0, 3)
	expectEmpty(t, b)
}

// A byte flipped inside the log costs the record it hits, counted once;
// every other record is delivered, in order.
func TestCorruptMiddle(t *testing.T) {
	const n = 60
	f := func(victim, field int, lastSegment bool) {
		t.Helper()
		dir := t.TempDir()
		o := Options{MaxSegmentBytes: 400, MaxTotalBytes: 1 << 20}
		if lastSegment {
			o.MaxSegmentBytes = 1 << 16
		}
		b := openT(t, dir, o)
		appendRange(t, b, 0, n)
		b.Close()
		// Find the victim record: walk the segments.
		idx := 0
		done := false
		for _, seg := range segFiles(t, dir) {
			data, _ := os.ReadFile(seg)
			for off := 0; off < len(data) && !done; idx++ {
				l := int(getU32(data[off:]))
				if idx == victim {
					// field 0: length byte, 1: crc byte, 2: payload byte.
					at := []int{off + 1, off + 5, off + hdrSize + l/2}[field]
					data[at] ^= 0x41
					if err := os.WriteFile(seg, data, 0o640); err != nil {
						t.Fatal(err)
					}
					done = true
				}
				off += hdrSize + l
			}
		}
		if !done {
			t.Fatalf("victim %d not found", victim)
		}
		rep, err := Verify(dir)
		if err != nil || rep.CorruptRecords != 1 || rep.Records != n-1 || rep.TornTailBytes != 0 {
			t.Fatalf("victim %d field %d: Verify %+v, %v", victim, field, rep, err)
		}
		b = openT(t, dir, o)
		defer b.Close()
		got, _ := readN(t, b, n-1, 9, 0)
		expectEmpty(t, b)
		want := 0
		for _, g := range got {
			if want == victim {
				want++
			}
			if g != string(payload(want)) {
				t.Fatalf("victim %d field %d: got %q, want %q", victim, field, g, payload(want))
			}
			want++
		}
		if s := b.Stats(); s.CorruptRecords != 1 || s.TornTails != 0 {
			t.Fatalf("victim %d field %d: stats %+v", victim, field, s)
		}
	}
	for field := range 3 {
		f(25, field, false)
		f(0, field, false)
		f(25, field, true)
	}
}

func TestFullDropNewest(t *testing.T) {
	dir := t.TempDir()
	b := openT(t, dir, Options{MaxSegmentBytes: 256, MaxTotalBytes: 1024, OnFull: OnFullDropNewest})
	defer b.Close()
	p := make([]byte, 92) // 100-byte records
	ok, full := 0, 0
	for range 15 {
		switch err := b.Append(context.Background(), p); {
		case err == nil:
			ok++
		case errors.Is(err, ErrFull):
			full++
		default:
			t.Fatal(err)
		}
	}
	if ok != 10 || full != 5 {
		t.Fatalf("appended %d, full %d; want 10, 5", ok, full)
	}
	k, err := b.AppendBatch(context.Background(), [][]byte{p, p, p})
	if k != 0 || !errors.Is(err, ErrFull) {
		t.Fatalf("AppendBatch when full: %d, %v", k, err)
	}
	if s := b.Stats(); s.DroppedFull != 8 || s.Bytes > 1024 {
		t.Fatalf("stats %+v", s)
	}
	// Confirming the first segment makes room again.
	_, pos := readN(t, b, 2, 2, 0)
	if err := b.Ack(pos); err != nil {
		t.Fatal(err)
	}
	if err := b.Append(context.Background(), p); err != nil {
		t.Fatalf("Append after Ack: %v", err)
	}
	if err := b.Append(context.Background(), make([]byte, 600)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Append over half of max_bytes: %v", err)
	}
}

// TestRecordOverSegment: a record larger than MaxSegmentBytes (but not
// than half of MaxTotalBytes) is stored in a segment of its own, between
// the records before and after it, and read back whole. Before, it was
// refused (ErrTooLarge): the spool dropped such a message, and a move of
// an old buffer into a new one with smaller segments stopped at it.
func TestRecordOverSegment(t *testing.T) {
	dir := t.TempDir()
	o := Options{MaxSegmentBytes: 256, MaxTotalBytes: 4096}
	b := openT(t, dir, o)
	big := strings.Repeat("B", 700)
	for _, p := range []string{"before", big, "after"} {
		if err := b.Append(context.Background(), []byte(p)); err != nil {
			t.Fatalf("Append %d bytes: %v", len(p), err)
		}
	}
	if n := len(segFiles(t, dir)); n != 3 {
		t.Fatalf("%d segment files, want 3 (the big record alone in the middle one)", n)
	}
	b.Close()
	b = openT(t, dir, o)
	defer b.Close()
	got, _ := readN(t, b, 3, 10, 0)
	if got[0] != "before" || got[1] != big || got[2] != "after" {
		t.Fatalf("read back %q", got)
	}
}

func TestFullBlock(t *testing.T) {
	o := Options{MaxSegmentBytes: 256, MaxTotalBytes: 1024}
	p := make([]byte, 92)
	fill := func(b *Buffer) {
		for range 10 {
			if err := b.Append(context.Background(), p); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		if err := b.Append(ctx, p); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Append on a full buffer: %v, want it to block until ctx ends", err)
		}
	}
	// blocked starts an Append on the full b and checks it waits; done
	// checks it then returns, without error, once why happened.
	blocked := func(b *Buffer) (done func(why string)) {
		res := make(chan error, 1)
		go func() { res <- b.Append(context.Background(), p) }()
		select {
		case err := <-res:
			t.Fatalf("Append returned %v on a full buffer", err)
		case <-time.After(20 * time.Millisecond):
		}
		return func(why string) {
			select {
			case err := <-res:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("Append still blocked after %s", why)
			}
		}
	}
	t.Run("ack", func(t *testing.T) {
		b := openT(t, t.TempDir(), o)
		defer b.Close()
		fill(b)
		done := blocked(b)
		_, pos := readN(t, b, 2, 2, 0)
		if err := b.Ack(pos); err != nil {
			t.Fatal(err)
		}
		done("Ack freed a segment")
	})
	t.Run("limits raised", func(t *testing.T) {
		// A reload raising max_bytes (SetLimits) lets a blocked Append
		// in at once; switching to drop_newest refuses instead of waiting.
		b := openT(t, t.TempDir(), o)
		defer b.Close()
		fill(b)
		done := blocked(b)
		if err := b.SetLimits(4096, 256, OnFullBlock); err != nil {
			t.Fatal(err)
		}
		done("max_total_bytes was raised")
		if err := b.SetLimits(1024, 256, OnFullDropNewest); err != nil {
			t.Fatal(err)
		}
		if err := b.Append(context.Background(), p); !errors.Is(err, ErrFull) {
			t.Fatalf("Append over the lowered bound with drop_newest: %v, want ErrFull", err)
		}
		if err := b.SetLimits(1024, 1000, OnFullBlock); err == nil {
			t.Fatal("SetLimits with max_total_bytes under twice the segment size: no error")
		}
	})
	t.Run("close", func(t *testing.T) {
		b := openT(t, t.TempDir(), o)
		fill(b)
		res := make(chan error, 1)
		go func() { res <- b.Append(context.Background(), p) }()
		time.Sleep(10 * time.Millisecond)
		b.Close()
		select {
		case err := <-res:
			if !errors.Is(err, ErrClosed) {
				t.Fatalf("blocked Append after Close: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Append still blocked after Close")
		}
	})
}

func TestNextUnblocks(t *testing.T) {
	b := openT(t, t.TempDir(), Options{MaxTotalBytes: 1 << 20})
	res := make(chan error, 1)
	go func() {
		recs, err := b.Next(context.Background(), 10, 0)
		if err == nil && (len(recs) != 1 || string(recs[0].Data) != "late") {
			err = fmt.Errorf("got %d records", len(recs))
		}
		res <- err
	}()
	time.Sleep(10 * time.Millisecond)
	if err := b.Append(context.Background(), []byte("late")); err != nil {
		t.Fatal(err)
	}
	if err := <-res; err != nil {
		t.Fatal(err)
	}
	go func() { _, err := b.Next(context.Background(), 10, 0); res <- err }()
	time.Sleep(10 * time.Millisecond)
	b.Close()
	if err := <-res; !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after Close: %v", err)
	}
	if err := b.Append(context.Background(), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
}

// Concurrent appenders (sharing fsyncs) and one reader acking as it goes:
// every record arrives once, each producer's records in order.
func TestConcurrent(t *testing.T) {
	for _, fsync := range []string{FsyncAlways, FsyncNever} {
		t.Run(fsync, func(t *testing.T) {
			dir := t.TempDir()
			b := openT(t, dir, Options{MaxSegmentBytes: 4096, MaxTotalBytes: 16384, Fsync: fsync})
			defer b.Close()
			const producers, per = 4, 300
			var wg sync.WaitGroup
			for p := range producers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range per {
						if err := b.Append(context.Background(), fmt.Appendf(nil, "%d %d", p, i)); err != nil {
							t.Error(err)
							return
						}
					}
				}()
			}
			next := make([]int, producers)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for got := 0; got < producers*per; {
				recs, err := b.Next(ctx, 50, 0)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range recs {
					var p, i int
					fmt.Sscanf(string(r.Data), "%d %d", &p, &i)
					if i != next[p] {
						t.Fatalf("producer %d: got %d, want %d", p, i, next[p])
					}
					next[p]++
				}
				got += len(recs)
				if err := b.Ack(recs[len(recs)-1].Pos); err != nil {
					t.Fatal(err)
				}
			}
			wg.Wait()
		})
	}
}

func TestVerifyClean(t *testing.T) {
	dir := t.TempDir()
	b := openT(t, dir, Options{MaxSegmentBytes: 300, MaxTotalBytes: 1 << 20})
	appendRange(t, b, 0, 50)
	_, pos := readN(t, b, 20, 20, 0)
	b.Ack(pos)
	b.Close()
	rep, err := Verify(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || !rep.AckValid || rep.Pending != 30 || rep.Records < 30 || rep.Segments < 2 {
		t.Fatalf("Verify: %+v", rep)
	}
	// A broken checkpoint replays everything still on disk.
	os.WriteFile(filepath.Join(dir, ackName), []byte("garbage"), 0o640)
	rep, _ = Verify(dir)
	if rep.AckValid || rep.Pending != rep.Records {
		t.Fatalf("Verify with a bad ack file: %+v", rep)
	}
	b = openT(t, dir, Options{MaxSegmentBytes: 300, MaxTotalBytes: 1 << 20})
	defer b.Close()
	if !b.Stats().CheckpointReset {
		t.Fatal("CheckpointReset not set")
	}
	got, _ := readN(t, b, int(rep.Records), 100, 0)
	wantRange(t, got, 50-int(rep.Records), 50)
	if _, err := Verify(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("Verify of a missing dir succeeded")
	}
}

// Appending a record (no fsync) allocates nothing: the scratch buffer is
// reused under the lock.
func TestAppendAllocs(t *testing.T) {
	b := openT(t, t.TempDir(), Options{MaxTotalBytes: 1 << 30, Fsync: FsyncNever})
	defer b.Close()
	p := make([]byte, 300)
	ps := [][]byte{p, p, p}
	ctx := context.Background()
	if n := testing.AllocsPerRun(200, func() {
		b.Append(ctx, p)
		b.AppendBatch(ctx, ps)
	}); n != 0 {
		t.Fatalf("Append: %v allocs", n)
	}
}

// TestSetFsync: the fsync policy of an open buffer changes (a reload of
// [sink.NAME.buffer] fsync): under "never" nothing is fsync'ed; after
// SetFsync "always" an Append returns with everything written on disk;
// after "interval" 20ms the background catches up within a few periods.
func TestSetFsync(t *testing.T) {
	b := openT(t, t.TempDir(), Options{MaxTotalBytes: 1 << 20, Fsync: FsyncNever})
	defer b.Close()
	synced := func() bool {
		b.mu.Lock()
		end := b.logical
		b.mu.Unlock()
		return b.synced.Load() >= end
	}
	appendRange(t, b, 0, 10)
	if synced() {
		t.Fatal(`under "never" the appends were fsync'ed`)
	}
	if err := b.SetFsync("sometimes", 0); err == nil {
		t.Fatal("SetFsync took an unknown policy")
	}
	if err := b.SetFsync(FsyncAlways, 0); err != nil {
		t.Fatal(err)
	}
	appendRange(t, b, 10, 11)
	if !synced() {
		t.Fatal(`an Append under "always" returned before its fsync`)
	}
	if err := b.SetFsync(FsyncInterval, 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	appendRange(t, b, 11, 20)
	if synced() {
		t.Fatal(`under "interval" the Append fsync'ed at once`)
	}
	if !testenv.Poll(2*time.Second, synced) {
		t.Fatal(`under "interval" 20ms nothing was fsync'ed within 2s`)
	}
}
