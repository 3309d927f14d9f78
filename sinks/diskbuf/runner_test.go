package diskbuf

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"wharf/internal/testenv"
	"wharf/message"
	"wharf/sinks"
)

// recSink is the in-process stand-in for a sink that these runner tests
// need: it records the Raw of every accepted message and refuses
// everything while down.
type recSink struct {
	mu   sync.Mutex
	got  []string
	down bool
}

func (s *recSink) Write(ctx context.Context, batch []*message.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return errors.New("recSink: down")
	}
	for _, m := range batch {
		s.got = append(s.got, string(m.Raw))
	}
	return nil
}

func (s *recSink) Close() error { return nil }

func (s *recSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

// A runner with a disk spool: what the sink did not accept before Close
// is neither lost nor counted as dropped, and a runner started on the
// same buffer later delivers exactly it, in order.
func TestRunnerSpoolRestart(t *testing.T) {
	dir := t.TempDir()
	o := Options{MaxSegmentBytes: 16 << 10, MaxTotalBytes: 1 << 20}
	const n = 2000
	cfg := sinks.RunnerConfig{BatchSize: 64, RetryBackoff: time.Millisecond, RetryMaxBackoff: 5 * time.Millisecond}.Resolved()

	// First life: the sink accepts the first 500 messages, then goes down.
	b := openT(t, dir, o)
	cfg.Spool = NewSpool(b)
	s1 := &recSink{}
	r := sinks.NewRunner("spooled", s1, cfg, nil, nil)
	r.Start()
	for i := range n {
		if i == 500 {
			for s1.count() < 500 {
				time.Sleep(time.Millisecond)
			}
			s1.mu.Lock()
			s1.down = true
			s1.mu.Unlock()
		}
		m := message.New(fmt.Appendf(nil, "msg %d", i))
		if !r.Enqueue(m, true) {
			t.Fatalf("Enqueue %d refused", i)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	r.Close(ctx)
	cancel()
	st := r.Stats()
	for reason, d := range st.Dropped {
		if d != 0 {
			t.Fatalf("dropped %d as %s: %+v", d, reason, st)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	delivered := s1.count()
	if delivered < 500 || delivered >= n {
		t.Fatalf("first life delivered %d", delivered)
	}

	// Second life: nothing new comes in; the backlog is delivered.
	b = openT(t, dir, o)
	defer b.Close()
	cfg.Spool = NewSpool(b)
	s2 := &recSink{}
	r = sinks.NewRunner("spooled", s2, cfg, nil, nil)
	r.Start()
	testenv.Poll(testenv.EventuallyTimeout, func() bool { return s2.count() >= n-delivered })
	r.Close(context.Background())
	if s2.count() != n-delivered {
		t.Fatalf("second life delivered %d, want %d", s2.count(), n-delivered)
	}
	for i, g := range s2.got {
		if want := fmt.Sprintf("msg %d", delivered+i); g != want {
			t.Fatalf("message %d: %q, want %q", i, g, want)
		}
	}
	if s := b.Stats(); s.Acked != uint64(n-delivered) {
		t.Fatalf("buffer stats %+v", s)
	}
}

// Without block (a UDP listener) a full spool drops at once, counted as
// queue_full.
func TestRunnerSpoolFull(t *testing.T) {
	b := openT(t, t.TempDir(), Options{MaxSegmentBytes: 1024, MaxTotalBytes: 2048})
	defer b.Close()
	s := &recSink{down: true}
	r := sinks.NewRunner("full", s, sinks.RunnerConfig{Spool: NewSpool(b), RetryBackoff: time.Millisecond}.Resolved(), nil, nil)
	r.Start()
	queued := 0
	for i := range 100 {
		if r.Enqueue(message.New(fmt.Appendf(nil, "%050d", i)), false) {
			queued++
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	r.Close(ctx)
	st := r.Stats()
	if queued == 100 || st.Dropped[sinks.DropQueueFull] != uint64(100-queued) || st.Dropped[sinks.DropShutdown] != 0 {
		t.Fatalf("queued %d, stats %+v", queued, st)
	}
}

var _ sinks.Spool = (*Spool)(nil)
