package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"wharf/conf"
	"wharf/metrics"
	"wharf/sinks/diskbuf"
)

// Found in review: a reload that gives a buffered sink a new dir opens a
// new buffer and registers its counters again, which replaced the old
// buffer's: what the old one had counted since start (dropped when full,
// lost with removed files, which feeds the exit status) vanished from
// the series. They now sum every buffer the sink has had.
func TestBufferCountersSurviveNewDir(t *testing.T) {
	reg := metrics.NewRegistry()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	open := func(dir string) *diskbuf.Buffer {
		t.Helper()
		sc := &conf.Sink{Buffer: &conf.Buffer{Dir: dir, MaxBytes: 16 << 10, SegmentBytes: 4 << 10, Fsync: "never", OnFull: diskbuf.OnFullDropNewest}}
		b, _, err := openBuffer("out", sc, reg, log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	}
	dropped := func() float64 {
		var n float64
		reg.Each(func(s metrics.Sample) {
			if s.Name == "wharf_buffer_dropped_full_total" && s.Label("sink") == "out" {
				n += s.Value
			}
		})
		return n
	}
	old := open(filepath.Join(t.TempDir(), "a"))
	payload := make([]byte, 1000)
	for range 100 {
		if err := old.Append(context.Background(), payload); err != nil && !errors.Is(err, diskbuf.ErrFull) {
			t.Fatal(err)
		}
	}
	before := dropped()
	if before == 0 {
		t.Fatal("the full buffer dropped nothing: the test did not fill it")
	}
	open(filepath.Join(t.TempDir(), "b")) // the reload's new dir
	if got := dropped(); got != before {
		t.Fatalf("wharf_buffer_dropped_full_total = %v after the sink got a new buffer, want the %v counted before", got, before)
	}
}
