package diskbuf

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestMoveTo: what a buffer holds unconfirmed (1,000 records over many
// small segments, the first 300 confirmed) goes into another buffer that
// already holds records of its own, in order and once, survives the
// destination's restart, and leaves the source empty with no segment
// file on disk.
func TestMoveTo(t *testing.T) {
	o := Options{MaxSegmentBytes: 4 << 10, MaxTotalBytes: 1 << 20}
	srcDir, dstDir := t.TempDir(), t.TempDir()
	src, dst := openT(t, srcDir, o), openT(t, dstDir, o)
	appendRange(t, src, 0, 1000)
	_, pos := readN(t, src, 300, 100, 0)
	if err := src.Ack(pos); err != nil {
		t.Fatal(err)
	}
	if err := dst.Append(context.Background(), []byte("already-there")); err != nil {
		t.Fatal(err)
	}
	// Handed out but not confirmed: moved too (MoveTo rewinds).
	readN(t, src, 50, 50, 0)

	moved, err := src.MoveTo(context.Background(), dst)
	if err != nil || moved != 700 {
		t.Fatalf("MoveTo: moved %d, %v; want 700, nil", moved, err)
	}
	if st := src.Stats(); st.Pending != 0 || st.Acked != 1000 {
		t.Fatalf("source after the move: %+v", st)
	}
	if n := len(segFiles(t, srcDir)); n != 1 {
		t.Fatalf("source keeps %d segment files, want only the empty active one", n)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}

	dst = openT(t, dstDir, o)
	defer dst.Close()
	got, _ := readN(t, dst, 701, 256, 0)
	want := []string{"already-there"}
	for i := 300; i < 1000; i++ {
		want = append(want, string(payload(i)))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("destination holds %d records, first %q; want %d in order", len(got), got[:min(3, len(got))], len(want))
	}
	expectEmpty(t, dst)

	src = openT(t, srcDir, o)
	defer src.Close()
	if st := src.Stats(); st.Pending != 0 {
		t.Fatalf("source reopened still holds %d records", st.Pending)
	}
}

// TestMoveToFullDestination: a destination that drops when full takes
// what fits; the rest stays in the source, in order, for a later move,
// and is not counted as dropped (wharf_buffer_dropped_full_total) by
// either buffer.
func TestMoveToFullDestination(t *testing.T) {
	src := openT(t, t.TempDir(), Options{MaxSegmentBytes: 4 << 10, MaxTotalBytes: 1 << 20})
	defer src.Close()
	dst := openT(t, t.TempDir(), Options{MaxSegmentBytes: 4 << 10, MaxTotalBytes: 8 << 10, OnFull: OnFullDropNewest})
	defer dst.Close()
	appendRange(t, src, 0, 1000)
	moved, err := src.MoveTo(context.Background(), dst)
	if !errors.Is(err, ErrFull) || moved == 0 || moved >= 1000 {
		t.Fatalf("MoveTo into a small drop_newest buffer: moved %d, %v", moved, err)
	}
	if st := src.Stats(); st.Pending != 1000-moved {
		t.Fatalf("source holds %d, want %d", st.Pending, 1000-moved)
	}
	if d, s := dst.Stats().DroppedFull, src.Stats().DroppedFull; d != 0 || s != 0 {
		t.Errorf("DroppedFull: destination %d, source %d; want 0: the records not moved stayed in the source", d, s)
	}
	rest, _ := readN(t, src, int(1000-moved), 256, 0)
	if rest[0] != string(payload(int(moved))) {
		t.Fatalf("first record left in the source is %q, want record %d", rest[0], moved)
	}
	if _, err := src.MoveTo(context.Background(), src); err == nil || !strings.Contains(err.Error(), "itself") {
		t.Fatalf("move into itself: %v", err)
	}
}

// TestMoveToClosedDestination: a destination closed before or during the
// move stops it; nothing leaves the source that the destination did not
// store.
func TestMoveToClosedDestination(t *testing.T) {
	dir := t.TempDir()
	src := openT(t, dir, Options{MaxTotalBytes: 1 << 20})
	appendRange(t, src, 0, 100)
	dst := openT(t, t.TempDir(), Options{MaxTotalBytes: 1 << 20})
	dst.Close()
	moved, err := src.MoveTo(context.Background(), dst)
	if !errors.Is(err, ErrClosed) || moved != 0 {
		t.Fatalf("MoveTo into a closed buffer: moved %d, %v", moved, err)
	}
	src.Close()
	src = openT(t, dir, Options{MaxTotalBytes: 1 << 20})
	defer src.Close()
	got, _ := readN(t, src, 100, 100, 0)
	if got[0] != string(payload(0)) || got[99] != string(payload(99)) {
		t.Fatalf("records changed: %q ... %q", got[0], got[99])
	}
}
