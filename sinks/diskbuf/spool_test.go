package diskbuf

import (
	"context"
	"errors"
	"testing"
	"time"

	"wharf/sinks"
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
	defer b.Close()
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
	big := &sinks.Message{Raw: make([]byte, 400), Priority: -1}
	start := time.Now()
	var full error
	for range 10 {
		if _, full = sp.Put(context.Background(), []*sinks.Message{big}, false); full != nil {
			break
		}
	}
	if !errors.Is(full, ErrFull) || time.Since(start) > time.Second {
		t.Fatalf("Put on a full spool without block: %v after %v", full, time.Since(start))
	}
	if b.Stats().DroppedFull != 1 {
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
