package diskbuf

import (
	"context"
	"errors"
	"testing"
	"time"

	"wharf/message"
)

// A message put into a spool comes back field for field after a restart
// unless committed; a full spool refuses at once without block.
func TestSpool(t *testing.T) {
	dir := t.TempDir()
	o := Options{MaxSegmentBytes: 512, MaxTotalBytes: 2048}
	b := openT(t, dir, o)
	sp := NewSpool(b)
	ms := testMessages()
	n, err := sp.Put(context.Background(), ms, true)
	if n != len(ms) || err != nil {
		t.Fatalf("Put: %d, %v", n, err)
	}
	got, err := sp.Get(context.Background(), nil, 2, 1<<20)
	if err != nil || len(got) != 2 {
		t.Fatalf("Get: %d, %v", len(got), err)
	}
	for _, m := range got {
		m.Release()
	}
	if err := sp.Commit(); err != nil {
		t.Fatal(err)
	}
	b.Close()

	b = openT(t, dir, o)
	sp = NewSpool(b)
	got, err = sp.Get(context.Background(), nil, 100, 1<<20)
	if err != nil || len(got) != len(ms)-2 {
		t.Fatalf("Get after reopen: %d, %v", len(got), err)
	}
	for i, m := range got {
		if string(EncodeMessage(nil, m)) != string(EncodeMessage(nil, ms[i+2])) {
			t.Fatalf("message %d differs after the round trip", i+2)
		}
		m.Release()
	}
	// Fill it: without block Put refuses at once.
	big := &message.Message{Raw: make([]byte, 400), Priority: -1}
	start := time.Now()
	stored := 0
	for range 10 {
		n, err := sp.Put(context.Background(), []*message.Message{big}, false)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		stored++
	}
	if stored == 10 || time.Since(start) > time.Second {
		t.Fatalf("Put on a full spool without block: stored %d in %v", stored, time.Since(start))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if n, err := sp.Put(ctx, []*message.Message{big}, true); n != 0 || err != nil {
		t.Fatalf("blocking Put on a full spool until ctx ends: %d, %v", n, err)
	}
	b.Close()
	if n, err := sp.Put(context.Background(), ms[:1], true); n != 0 || !errors.Is(err, ErrClosed) {
		t.Fatalf("Put after Close: %d, %v", n, err)
	}
	if b.Stats().DroppedFull != 2 {
		t.Fatalf("stats %+v", b.Stats())
	}
}

func TestSpoolPutAllocs(t *testing.T) {
	b := openT(t, t.TempDir(), Options{MaxTotalBytes: 1 << 30, Fsync: FsyncNever})
	defer b.Close()
	sp := NewSpool(b)
	ms := testMessages()
	if n := testing.AllocsPerRun(100, func() { sp.Put(context.Background(), ms, true) }); n != 0 {
		t.Fatalf("Put: %v allocs", n)
	}
}
