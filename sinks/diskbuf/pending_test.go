package diskbuf

import (
	"context"
	"os"
	"testing"
)

// TestPendingAcrossRestart guards against the pending count going
// negative after a restart on a non-empty buffer (#12): records replayed
// from the last run were acknowledged but never counted as appended.
// Pending must equal what Verify (wharf check) counts, at Open and after.
func TestPendingAcrossRestart(t *testing.T) {
	f := func(name string, segBytes int64, total, ackFirst int) {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			o := Options{MaxTotalBytes: 64 << 20, MaxSegmentBytes: segBytes, Fsync: FsyncNever}
			b := openT(t, dir, o)
			appendRange(t, b, 0, total)
			if ackFirst > 0 {
				_, last := readN(t, b, ackFirst, 100, 0)
				if err := b.Ack(last); err != nil {
					t.Fatal(err)
				}
			}
			if got, want := b.Stats().Pending, uint64(total-ackFirst); got != want {
				t.Fatalf("Pending before the restart = %d, want %d", got, want)
			}
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			rep, err := Verify(dir)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Pending != uint64(total-ackFirst) {
				t.Fatalf("Verify counts %d pending, want %d", rep.Pending, total-ackFirst)
			}
			b = openT(t, dir, o)
			defer b.Close()
			if got := b.Stats().Pending; got != rep.Pending {
				t.Fatalf("Pending after Open = %d, Verify (wharf check) = %d", got, rep.Pending)
			}
			appendRange(t, b, total, total+10)
			if got := b.Stats().Pending; got != rep.Pending+10 {
				t.Fatalf("Pending after 10 more = %d, want %d", got, rep.Pending+10)
			}
			got, last := readN(t, b, int(rep.Pending)+10, 100, 0)
			wantRange(t, got, ackFirst, total+10)
			if err := b.Ack(last); err != nil {
				t.Fatal(err)
			}
			if got := b.Stats().Pending; got != 0 {
				t.Fatalf("Pending after everything was confirmed = %d, want 0", got)
			}
		})
	}
	f("nothing confirmed, one segment", 16<<20, 1000, 0)
	f("confirmed mid-segment", 4<<10, 1000, 333)
	f("confirmed to a segment's end", 4<<10, 1000, 1000)
}

// TestPendingAfterCorruption: records lost in a corrupt region cannot be
// counted one by one; Pending may count them until the buffer is empty,
// then it is exactly 0, never negative.
func TestPendingAfterCorruption(t *testing.T) {
	dir := t.TempDir()
	o := Options{MaxTotalBytes: 64 << 20, MaxSegmentBytes: 4 << 10, Fsync: FsyncNever}
	b := openT(t, dir, o)
	appendRange(t, b, 0, 500)
	b.Close()
	corruptMiddle(t, dir)
	b = openT(t, dir, o)
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 0)
	defer cancel()
	for {
		recs, err := b.Next(ctx, 100, 0)
		if err != nil {
			break
		}
		if err := b.Ack(recs[len(recs)-1].Pos); err != nil {
			t.Fatal(err)
		}
	}
	if got := b.Stats().Pending; got != 0 {
		t.Fatalf("Pending of an emptied buffer after corruption = %d, want 0", got)
	}
}

// corruptMiddle flips a payload byte of the first record of the middle
// segment file in dir.
func corruptMiddle(t *testing.T, dir string) {
	t.Helper()
	segs := segFiles(t, dir)
	if len(segs) < 3 {
		t.Fatalf("want 3 or more segments, have %d", len(segs))
	}
	seg := segs[len(segs)/2]
	data, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	data[hdrSize+2] ^= 0x41
	if err := os.WriteFile(seg, data, 0o640); err != nil {
		t.Fatal(err)
	}
}
