package sinks

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"wharf/conf"
	"wharf/internal/testenv"
	"wharf/message"
	"wharf/metrics"
)

// fakeSink records delivered batches. It is the in-process stand-in the
// Runner unit tests need; real sinks are tested against real peers.
type fakeSink struct {
	mu      sync.Mutex
	batches [][]string // Raw of every successful Write
	calls   int
	closed  bool
	fail    func(call int) error           // nil: succeed
	block   chan struct{}                  // non-nil: Write waits for it (or ctx)
	check   func() error                   // for checkerSink
	onWrite func(batch []*message.Message) // called at the start of Write
	now     bool                           // WriteFramedNow takes what it is given
	key     string                         // FrameKey, if not "fake"
}

func (s *fakeSink) Write(ctx context.Context, batch []*message.Message) error {
	raws := make([]string, len(batch))
	for i, m := range batch {
		raws[i] = string(m.Raw)
	}
	return s.record(ctx, raws, batch)
}

// record is Write and WriteFramed: the batch's Raws, and its messages
// for onWrite (made up from the frames for WriteFramed).
func (s *fakeSink) record(ctx context.Context, raws []string, batch []*message.Message) error {
	if s.onWrite != nil {
		s.onWrite(batch)
	}
	if s.block != nil {
		select {
		case <-s.block:
		case <-ctx.Done():
			s.mu.Lock()
			s.calls++
			s.mu.Unlock()
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.closed {
		panic("Write after Close")
	}
	if s.fail != nil {
		if err := s.fail(s.calls); err != nil {
			return err
		}
	}
	s.batches = append(s.batches, raws)
	return nil
}

// fakeFramed makes every fakeSink a Framer whose Framed reports true:
// TestRunnerFramed runs the Runner's tests again over the byte queue.
var fakeFramed bool

// The fakeSink's frames are each message's Raw and a NUL.
func (s *fakeSink) Framed() bool     { return fakeFramed }
func (s *fakeSink) FrameKey() string { return cmp.Or(s.key, "fake") }
func (s *fakeSink) AppendFrame(b []byte, m *message.Message) []byte {
	return append(append(b, m.Raw...), 0)
}

func (s *fakeSink) WriteFramed(ctx context.Context, b []byte) ([]byte, error) {
	raws := strings.Split(string(b[:len(b)-1]), "\x00")
	batch := make([]*message.Message, len(raws))
	for i, raw := range raws {
		batch[i] = message.New([]byte(raw))
	}
	return b, s.record(ctx, raws, batch)
}

// WriteFramedNow declines unless now is set (and the sink neither
// blocks nor fails): the run loop then writes the block.
func (s *fakeSink) WriteFramedNow(b []byte) bool {
	if !s.now || s.block != nil || s.fail != nil {
		return false
	}
	_, err := s.WriteFramed(context.Background(), b)
	return err == nil
}

func (s *fakeSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		panic("Close twice")
	}
	s.closed = true
	return nil
}

func (s *fakeSink) sizes() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []int
	for _, b := range s.batches {
		out = append(out, len(b))
	}
	return out
}

func (s *fakeSink) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, b := range s.batches {
		out = append(out, b...)
	}
	return out
}

type checkerSink struct{ *fakeSink }

func (c checkerSink) Check(context.Context) error { return c.check() }

// tracker hands out messages holding one extra reference, so a test can
// check after Close that the Runner released each exactly once.
type tracker struct {
	mu   sync.Mutex
	msgs []*message.Message
}

func newTracker(t *testing.T) *tracker {
	tr := &tracker{}
	t.Cleanup(func() {
		for i, m := range tr.msgs {
			if got := m.Refs(); got != 1 {
				t.Errorf("message %d (%q): %d references left, want 1 (released %d times)", i, m.Raw, got, 1-got)
			}
		}
	})
	return tr
}

func (tr *tracker) msg(raw string) *message.Message {
	m := message.New([]byte(raw))
	m.Retain(1)
	tr.mu.Lock()
	tr.msgs = append(tr.msgs, m)
	tr.mu.Unlock()
	return m
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func closeRunner(t *testing.T, r *Runner, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// produce runs producers goroutines, each calling send(p, i) for i from
// 0 to each-1 in order, and returns when all are done.
func produce(producers, each int, send func(p, i int)) {
	var wg sync.WaitGroup
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				send(p, i)
			}
		}()
	}
	wg.Wait()
}

func equalInts(a, b []int) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

func TestRunnerBatching(t *testing.T) {
	f := func(name string, cfg RunnerConfig, raws []string, want []int) {
		t.Helper()
		tr := newTracker(t)
		s := &fakeSink{}
		r := NewRunner(name, s, cfg, nil, quietLog())
		for _, raw := range raws {
			if !r.Enqueue(tr.msg(raw), false) {
				t.Fatalf("%s: enqueue failed", name)
			}
		}
		r.Start()
		closeRunner(t, r, 5*time.Second)
		if got := s.sizes(); !equalInts(got, want) {
			t.Errorf("%s: batch sizes %v, want %v", name, got, want)
		}
		if got := strings.Join(s.all(), ","); got != strings.Join(raws, ",") {
			t.Errorf("%s: delivered %q", name, got)
		}
	}
	n := func(k int, size int) []string {
		out := make([]string, k)
		for i := range out {
			out[i] = fmt.Sprintf("%0*d", size, i)
		}
		return out
	}
	f("by-size", RunnerConfig{BatchSize: 10, BatchTimeout: time.Hour}.Resolved(), n(25, 3), []int{10, 10, 5})
	f("by-bytes", RunnerConfig{BatchSize: 100, BatchBytes: 100, BatchTimeout: time.Hour}.Resolved(), n(10, 30), []int{3, 3, 3, 1})
	f("exact-bytes", RunnerConfig{BatchSize: 100, BatchBytes: 90, BatchTimeout: time.Hour}.Resolved(), n(6, 30), []int{3, 3})
	// A message larger than BatchBytes goes out alone.
	f("oversized", RunnerConfig{BatchSize: 100, BatchBytes: 10, BatchTimeout: time.Hour}.Resolved(), []string{"a", "0123456789abcdef", "b"}, []int{1, 1, 1})
}

func TestRunnerBatchTimeout(t *testing.T) {
	tr := newTracker(t)
	s := &fakeSink{}
	r := NewRunner("t", s, RunnerConfig{BatchSize: 1000, BatchTimeout: 20 * time.Millisecond}.Resolved(), nil, quietLog())
	r.Start()
	start := time.Now()
	for i := range 5 {
		r.Enqueue(tr.msg(fmt.Sprint(i)), true)
	}
	testenv.Eventually(t, "timed batch", func() bool { return len(s.sizes()) == 1 })
	if d := time.Since(start); d < 15*time.Millisecond {
		t.Errorf("partial batch written after %v, before BatchTimeout", d)
	}
	if got := s.sizes(); !equalInts(got, []int{5}) {
		t.Errorf("batch sizes %v, want [5]", got)
	}
	closeRunner(t, r, time.Second)
}

// TestRunnerNaturalBatching guards against a linger on an idle sink (the
// 10ms batch_timeout that made every message on a quiet link wait): with
// BatchTimeout 0 the first message is written alone at once, and what
// queues while that write is in flight leaves as the next batch, whole.
func TestRunnerNaturalBatching(t *testing.T) {
	tr := newTracker(t)
	writing := make(chan int, 10)
	s := &fakeSink{block: make(chan struct{}), onWrite: func(b []*message.Message) { writing <- len(b) }}
	r := NewRunner("t", s, RunnerConfig{BatchSize: 1000}.Resolved(), nil, quietLog())
	r.Start()
	r.Enqueue(tr.msg("first"), true)
	// No timer involved: the write starts without anything else arriving.
	if n := <-writing; n != 1 {
		t.Fatalf("first write carried %d messages, want 1", n)
	}
	for i := range 49 {
		r.Enqueue(tr.msg(fmt.Sprint(i)), true)
	}
	s.block <- struct{}{} // the first write completes
	if n := <-writing; n != 49 {
		t.Fatalf("second write carried %d messages, want the 49 queued during the first", n)
	}
	s.block <- struct{}{}
	close(s.block)
	closeRunner(t, r, 5*time.Second)
	if got := s.sizes(); !equalInts(got, []int{1, 49}) {
		t.Errorf("batch sizes %v, want [1 49]", got)
	}
}

func TestRunnerRetryThenSuccess(t *testing.T) {
	tr := newTracker(t)
	s := &fakeSink{fail: func(call int) error {
		if call <= 3 {
			return errors.New("downstream unavailable")
		}
		return nil
	}}
	reg := metrics.NewRegistry()
	r := NewRunner("retry", s, RunnerConfig{BatchSize: 50, RetryBackoff: time.Millisecond, RetryMaxBackoff: 4 * time.Millisecond}.Resolved(), reg, quietLog())
	r.Start()
	var want []string
	for i := range 100 {
		raw := fmt.Sprint("m", i)
		want = append(want, raw)
		r.Enqueue(tr.msg(raw), true)
	}
	closeRunner(t, r, 5*time.Second)
	if got := s.all(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("delivered %d messages %v, want 100 in order without duplicates", len(got), got)
	}
	st := r.Stats()
	if st.Sent != 100 || st.WriteErrors != 3 || !st.Ready {
		t.Errorf("stats %+v, want 100 sent, 3 write errors, ready", st)
	}
	var buf bytes.Buffer
	reg.WritePrometheus(&buf)
	for _, line := range []string{
		`wharf_sink_sent_total{sink="retry"} 100`,
		`wharf_sink_write_errors_total{sink="retry"} 3`,
		`wharf_sink_ready{sink="retry"} 1`,
		`wharf_sink_queue_bytes{sink="retry"} 0`,
		`wharf_sink_dropped_total{reason="shutdown",sink="retry"} 0`,
	} {
		if !strings.Contains(buf.String(), line+"\n") {
			t.Errorf("metrics lack %q:\n%s", line, buf.String())
		}
	}
}

// TestRunnerHistograms: every write attempt is timed, and each delivered
// batch records the delay of its oldest message since receipt.
func TestRunnerHistograms(t *testing.T) {
	tr := newTracker(t)
	s := &fakeSink{fail: func(call int) error {
		if call == 1 {
			return errors.New("downstream unavailable")
		}
		return nil
	}}
	reg := metrics.NewRegistry()
	r := NewRunner("h", s, RunnerConfig{BatchSize: 10, RetryBackoff: time.Millisecond, RetryMaxBackoff: time.Millisecond}.Resolved(), reg, quietLog())
	r.Start()
	var ms []*message.Message
	for i := range 10 {
		m := tr.msg(fmt.Sprint("m", i))
		m.Received = time.Now().Add(-2 * time.Second).UnixNano()
		ms = append(ms, m)
	}
	if n := r.EnqueueBatch(ms, true); n != 10 { // one lock: one batch
		t.Fatalf("queued %d", n)
	}
	closeRunner(t, r, 5*time.Second)
	var buf bytes.Buffer
	if err := reg.WritePrometheus(&buf); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		`wharf_sink_write_duration_seconds_count{sink="h"} 2`, // the failed attempt and the retry
		`wharf_sink_delivery_delay_seconds_count{sink="h"} 1`, // one batch delivered
		`wharf_sink_delivery_delay_seconds_bucket{sink="h",le="1"} 0`,
		`wharf_sink_delivery_delay_seconds_bucket{sink="h",le="2.5"} 1`,
	} {
		if !strings.Contains(buf.String(), line+"\n") {
			t.Errorf("metrics lack %q:\n%s", line, buf.String())
		}
	}
}

func TestRunnerMaxRetries(t *testing.T) {
	tr := newTracker(t)
	s := &fakeSink{fail: func(int) error { return errors.New("nope") }}
	r := NewRunner("max", s, RunnerConfig{BatchSize: 10, MaxRetries: 2, RetryBackoff: time.Millisecond}.Resolved(), nil, quietLog())
	for i := range 10 {
		r.Enqueue(tr.msg(fmt.Sprint(i)), false)
	}
	r.Start()
	testenv.Eventually(t, "retries exhausted", func() bool { return r.Stats().Dropped[DropRetriesExhausted] == 10 })
	if r.Ready() {
		t.Error("ready after failing writes")
	}
	closeRunner(t, r, time.Second)
	if s.calls != 3 {
		t.Errorf("%d write attempts, want 3 (1 + MaxRetries 2)", s.calls)
	}
	if st := r.Stats(); st.WriteErrors != 3 || st.Sent != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestRunnerQueueFull(t *testing.T) {
	f := func(cfg RunnerConfig, size, n, wantQueued int) {
		t.Helper()
		tr := newTracker(t)
		s := &fakeSink{}
		r := NewRunner("full", s, cfg, nil, quietLog())
		queued := 0
		for range n {
			if r.Enqueue(tr.msg(strings.Repeat("x", size)), false) {
				queued++
			}
		}
		if queued != wantQueued || r.Stats().Dropped[DropQueueFull] != uint64(n-wantQueued) {
			t.Errorf("cfg %+v: queued %d (want %d), dropped %v", cfg, queued, wantQueued, r.Stats().Dropped)
		}
		if st := r.Stats(); st.Queued != wantQueued || st.QueuedBytes != int64(wantQueued*size) {
			t.Errorf("queue gauges %d msgs %d bytes", st.Queued, st.QueuedBytes)
		}
		r.Start()
		closeRunner(t, r, time.Second)
		if len(s.all()) != wantQueued {
			t.Errorf("delivered %d, want %d", len(s.all()), wantQueued)
		}
	}
	f(RunnerConfig{QueueSize: 5}.Resolved(), 10, 10, 5)
	f(RunnerConfig{QueueSize: 100, QueueBytes: 100}.Resolved(), 30, 10, 3)
	// One message larger than QueueBytes passes an empty queue.
	f(RunnerConfig{QueueSize: 100, QueueBytes: 10}.Resolved(), 30, 3, 1)

	// EnqueueBatch: same semantics.
	tr := newTracker(t)
	r := NewRunner("batch", &fakeSink{}, RunnerConfig{QueueSize: 4}.Resolved(), nil, quietLog())
	ms := []*message.Message{tr.msg("a"), tr.msg("b"), tr.msg("c"), tr.msg("d"), tr.msg("e"), tr.msg("f")}
	if q := r.EnqueueBatch(ms, false); q != 4 || r.Stats().Dropped[DropQueueFull] != 2 {
		t.Errorf("EnqueueBatch queued %d, dropped %v", q, r.Stats().Dropped)
	}
	closeRunner(t, r, time.Second)
}

func TestRunnerBlockingEnqueue(t *testing.T) {
	for _, bytesBound := range []bool{false, true} {
		t.Run(fmt.Sprint("bytes=", bytesBound), func(t *testing.T) {
			tr := newTracker(t)
			gate := make(chan struct{})
			s := &fakeSink{block: gate}
			cfg := RunnerConfig{QueueSize: 2, BatchSize: 1}.Resolved()
			if bytesBound {
				cfg = RunnerConfig{QueueSize: 100, QueueBytes: 20, BatchSize: 1}.Resolved()
			}
			r := NewRunner("block", s, cfg, nil, quietLog())
			r.Start()
			// One in the blocked Write, then fill the queue: 2 more messages,
			// or 1 more for 20 bytes (the batch in flight counts).
			prefill := 3
			if bytesBound {
				prefill = 2
			}
			r.Enqueue(tr.msg("0123456789"), true)
			testenv.Eventually(t, "write in flight", func() bool { return r.queued() == 0 })
			for range prefill - 1 {
				r.Enqueue(tr.msg("0123456789"), true)
			}
			if bytesBound {
				// The batch in flight counts towards QueueBytes: 20 bytes are taken.
				if st := r.Stats(); st.QueuedBytes != 20 {
					t.Fatalf("queued bytes %d", st.QueuedBytes)
				}
			}
			done := make(chan bool)
			go func() { done <- r.Enqueue(tr.msg("0123456789"), true) }()
			select {
			case <-done:
				t.Fatal("blocking Enqueue returned while the queue is full")
			case <-time.After(50 * time.Millisecond):
			}
			close(gate) // the sink drains
			select {
			case ok := <-done:
				if !ok {
					t.Fatal("blocking Enqueue returned false after space freed")
				}
			case <-time.After(5 * time.Second):
				t.Fatal("blocking Enqueue did not return after space freed")
			}
			closeRunner(t, r, 5*time.Second)
			if n := len(s.all()); n != prefill+1 {
				t.Errorf("delivered %d, want %d", n, prefill+1)
			}
		})
	}
}

func TestRunnerCloseUnblocksProducers(t *testing.T) {
	tr := newTracker(t)
	s := &fakeSink{block: make(chan struct{})} // dead: never returns before ctx
	r := NewRunner("dead", s, RunnerConfig{QueueSize: 1, BatchSize: 1}.Resolved(), nil, quietLog())
	r.Start()
	r.Enqueue(tr.msg("in-flight"), true)
	testenv.Eventually(t, "write in flight", func() bool { return r.queued() == 0 })
	r.Enqueue(tr.msg("queued"), true)
	done := make(chan bool)
	go func() { done <- r.Enqueue(tr.msg("blocked"), true) }()
	time.Sleep(20 * time.Millisecond)
	start := time.Now()
	closeRunner(t, r, 100*time.Millisecond)
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v with a 100ms deadline", d)
	}
	if ok := <-done; ok {
		t.Error("blocked Enqueue reported queued after Close")
	}
	if r.Enqueue(tr.msg("late"), true) {
		t.Error("Enqueue after Close reported queued")
	}
	d := r.Stats().Dropped
	if d[DropShutdown] != 2 || d[DropClosed] != 2 {
		t.Errorf("dropped %v, want shutdown 2 (in-flight, queued) and closed 2 (blocked, late)", d)
	}
}

func TestRunnerCloseDrainsEverything(t *testing.T) {
	tr := newTracker(t)
	var bytesSeen atomic.Int64
	s := &fakeSink{onWrite: func(b []*message.Message) {
		for _, m := range b {
			bytesSeen.Add(int64(len(m.Raw)))
		}
	}}
	r := NewRunner("drain", s, RunnerConfig{QueueSize: 64, BatchSize: 32, BatchTimeout: time.Hour}.Resolved(), nil, quietLog())
	r.Start()
	const producers, each = 4, 2500
	produce(producers, each, func(p, i int) {
		m := tr.msg(fmt.Sprintf("p%d-%d", p, i))
		if p%2 == 0 {
			r.Enqueue(m, true)
		} else {
			r.EnqueueBatch([]*message.Message{m}, true)
		}
	})
	closeRunner(t, r, 10*time.Second)
	got := s.all()
	if len(got) != producers*each {
		t.Fatalf("delivered %d, want %d", len(got), producers*each)
	}
	seen := map[string]bool{}
	for _, g := range got {
		if seen[g] {
			t.Fatalf("duplicate %q", g)
		}
		seen[g] = true
	}
	if st := r.Stats(); st.Sent != producers*each || st.SentBytes != uint64(bytesSeen.Load()) || st.QueuedBytes != 0 {
		t.Errorf("stats %+v", st)
	}
}

// Regression: concurrent producers on a tight byte bound must neither
// deadlock nor count queue_full when the queue had room.
func TestRunnerTightBytesBoundConcurrent(t *testing.T) {
	tr := newTracker(t)
	s := &fakeSink{}
	r := NewRunner("tight", s, RunnerConfig{QueueSize: 1000, QueueBytes: 30, BatchSize: 2, BatchTimeout: time.Millisecond}.Resolved(), nil, quietLog())
	r.Start()
	const blocking, nonBlocking, each = 4, 2, 500
	var wg sync.WaitGroup
	var queuedNB atomic.Int64
	for p := range blocking + nonBlocking {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				m := tr.msg(fmt.Sprintf("%02d-%06d", p, i)) // 10 bytes
				if p < blocking {
					if !r.Enqueue(m, true) {
						t.Error("blocking Enqueue refused before Close")
					}
				} else if r.Enqueue(m, false) {
					queuedNB.Add(1)
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("producers stuck on the byte bound")
	}
	closeRunner(t, r, 10*time.Second)
	st := r.Stats()
	if st.Sent != uint64(blocking*each)+uint64(queuedNB.Load()) || st.Sent+st.Dropped[DropQueueFull] != (blocking+nonBlocking)*each {
		t.Errorf("sent %d + queue_full %d, want %d blocking + %d non-blocking queued", st.Sent, st.Dropped[DropQueueFull], blocking*each, queuedNB.Load())
	}
	if st.QueuedBytes != 0 {
		t.Errorf("queued bytes %d after Close", st.QueuedBytes)
	}
}

func TestRunnerCloseDuringRetry(t *testing.T) {
	tr := newTracker(t)
	s := &fakeSink{fail: func(int) error { return errors.New("down") }}
	r := NewRunner("retrying", s, RunnerConfig{BatchSize: 5, RetryBackoff: time.Hour, RetryMaxBackoff: time.Hour}.Resolved(), nil, quietLog())
	for i := range 12 {
		r.Enqueue(tr.msg(fmt.Sprint(i)), false)
	}
	r.Start()
	testenv.Eventually(t, "first failure", func() bool { return r.Stats().WriteErrors > 0 })
	closeRunner(t, r, 50*time.Millisecond)
	if d := r.Stats().Dropped[DropShutdown]; d != 12 {
		t.Errorf("dropped shutdown %d, want 12", d)
	}
	if s.calls != 1 {
		t.Errorf("%d writes, want 1 (later batches are not tried after the deadline)", s.calls)
	}
}

func TestRunnerReadyWithChecker(t *testing.T) {
	var healthy atomic.Bool
	s := checkerSink{&fakeSink{check: func() error {
		if !healthy.Load() {
			return errors.New("broker down")
		}
		return nil
	}}}
	r := NewRunner("chk", s, RunnerConfig{}.Resolved(), nil, quietLog())
	r.Start()
	if r.Ready() {
		t.Fatal("ready although Check fails")
	}
	healthy.Store(true)
	tr := newTracker(t)
	r.Enqueue(tr.msg("x"), true)
	testenv.Eventually(t, "ready after a successful write", r.Ready)
	closeRunner(t, r, time.Second)
}

// TestRunnerPauseMark: a blocking (TCP) producer waits once PauseSize
// messages are queued, while a non-blocking (UDP) one still fills the
// queue up to QueueSize; the paused producer continues once the queue
// drains below the mark.
func TestRunnerPauseMark(t *testing.T) {
	tr := newTracker(t)
	gate := make(chan struct{})
	s := &fakeSink{block: gate}
	r := NewRunner("pause", s, RunnerConfig{QueueSize: 10, PauseSize: 3, BatchSize: 1}.Resolved(), nil, quietLog())
	r.Start()
	r.Enqueue(tr.msg("in flight"), true)
	testenv.Eventually(t, "write in flight", func() bool { return r.queued() == 0 })
	for i := range 3 {
		if !r.Enqueue(tr.msg(fmt.Sprint("stream ", i)), true) {
			t.Fatalf("blocking Enqueue %d refused below the mark", i)
		}
	}
	done := make(chan bool)
	go func() { done <- r.Enqueue(tr.msg("stream paused"), true) }()
	select {
	case <-done:
		t.Fatal("blocking Enqueue returned at the pause mark")
	case <-time.After(50 * time.Millisecond):
	}
	// UDP is not paused: it fills the rest of the queue (10 - 3), then drops.
	udp := 0
	for i := range 9 {
		if r.Enqueue(tr.msg(fmt.Sprint("datagram ", i)), false) {
			udp++
		}
	}
	if st := r.Stats(); udp != 7 || st.Dropped[DropQueueFull] != 2 {
		t.Fatalf("non-blocking queued %d (want 7), dropped %v (want 2 queue_full)", udp, st.Dropped)
	}
	close(gate)
	select {
	case ok := <-done:
		if !ok {
			t.Fatal("paused Enqueue returned false after the queue drained")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("paused Enqueue did not continue after the queue drained")
	}
	closeRunner(t, r, 5*time.Second)
	if n := len(s.all()); n != 1+3+7+1 {
		t.Errorf("delivered %d, want 12", n)
	}
}

// TestRunnerPauseMarkOutage: while the sink fails, the pause mark does
// not apply: stream senders may fill the whole queue to ride the outage
// out, and everything is delivered once the sink recovers.
func TestRunnerPauseMarkOutage(t *testing.T) {
	tr := newTracker(t)
	var down atomic.Bool
	down.Store(true)
	s := &fakeSink{fail: func(int) error {
		if down.Load() {
			return errors.New("collector down")
		}
		return nil
	}}
	r := NewRunner("outage", s, RunnerConfig{QueueSize: 20, PauseSize: 3, BatchSize: 1, RetryBackoff: 5 * time.Millisecond}.Resolved(), nil, quietLog())
	r.Start()
	r.Enqueue(tr.msg("first"), true)
	testenv.Eventually(t, "a failed write", func() bool { return !r.Ready() })
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 15 {
			r.Enqueue(tr.msg(fmt.Sprint("m", i)), true)
		}
	}()
	select {
	case <-done: // 15 queued beyond the mark of 3
	case <-time.After(5 * time.Second):
		t.Fatalf("blocking producer held at the pause mark during an outage (queued %d)", r.queued())
	}
	down.Store(false)
	closeRunner(t, r, 5*time.Second)
	if n := len(s.all()); n != 16 {
		t.Errorf("delivered %d after recovery, want 16", n)
	}
}

// A runner built in code gets conf's defaults, not a second set of its
// own (it had BatchTimeout 50ms, RetryMaxBackoff 10s and a pause mark at
// the queue's size against conf's 10ms, 5s and 4096).
func TestRunnerConfigResolved(t *testing.T) {
	c := RunnerConfig{}.Resolved()
	want := RunnerConfig{
		QueueSize: conf.DefaultQueueSize, QueueBytes: int64(conf.DefaultQueueBytes),
		PauseSize: conf.DefaultBackpressureSize, PauseBytes: int64(conf.DefaultBackpressureBytes),
		BatchSize: conf.DefaultBatchSize, BatchBytes: int64(conf.DefaultBatchBytes),
		BatchTimeout: conf.DefaultBatchTimeout, RetryBackoff: conf.DefaultRetryBackoff,
		RetryMaxBackoff: conf.DefaultRetryMaxBackoff, MaxRetries: conf.DefaultMaxRetries,
	}
	if c != want {
		t.Errorf("Resolved() = %+v\nwant conf's defaults %+v", c, want)
	}
	if c = (RunnerConfig{QueueSize: 10}).Resolved(); c.PauseSize != 10 || c.BatchSize != 10 {
		t.Errorf("pause mark and batch not capped by a small queue: %+v", c)
	}
	defer func() {
		if recover() == nil {
			t.Error("NewRunner accepted an incomplete RunnerConfig")
		}
	}()
	NewRunner("zero", discardSink{}, RunnerConfig{BatchSize: 10}, nil, quietLog())
}

type discardSink struct{}

func (discardSink) Write(context.Context, []*message.Message) error { return nil }
func (discardSink) Close() error                                    { return nil }

func BenchmarkRunnerEnqueue(b *testing.B) {
	r := NewRunner("bench", discardSink{}, RunnerConfig{QueueSize: 1 << 16}.Resolved(), nil, quietLog())
	r.Start()
	raw := []byte(raw5424)
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.Enqueue(message.New(raw), true)
		}
	})
	b.StopTimer()
	r.Close(context.Background())
}

// BenchmarkRunnerEnqueueBatch hands messages over 64 at a time, as a
// listener does at the end of a read.
func BenchmarkRunnerEnqueueBatch(b *testing.B) {
	r := NewRunner("bench", discardSink{}, RunnerConfig{QueueSize: 1 << 16}.Resolved(), nil, quietLog())
	r.Start()
	raw := []byte(raw5424)
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	b.RunParallel(func(pb *testing.PB) {
		ms := make([]*message.Message, 0, 64)
		for pb.Next() {
			ms = append(ms, message.New(raw))
			if len(ms) == cap(ms) {
				r.EnqueueBatch(ms, true)
				ms = ms[:0]
			}
		}
		r.EnqueueBatch(ms, true)
	})
	b.StopTimer()
	r.Close(context.Background())
}

// TestRunnerHandOver: a reload replaces a runner whose sink is stuck; the
// batch being written finishes on the old sink, everything still queued
// moves to the new runner, in order, each message exactly once.
// TestRunnerFramed runs it again on the byte queue.
func TestRunnerHandOver(t *testing.T) {
	tr := newTracker(t)
	release := make(chan struct{})
	oldSink := &fakeSink{block: release}
	newSink := &fakeSink{}
	reg := metrics.NewRegistry()
	old := NewRunner("out", oldSink, RunnerConfig{QueueSize: 1000, BatchSize: 10}.Resolved(), reg, quietLog())
	old.Start()
	const n = 500
	for i := range n {
		old.Enqueue(tr.msg(fmt.Sprintf("m%03d", i)), true)
	}
	next := NewRunner("out", newSink, RunnerConfig{QueueSize: 1000, BatchSize: 100}.Resolved(), reg, quietLog())
	next.Start()
	done := make(chan error, 1)
	go func() { done <- old.HandOver(context.Background(), next) }()
	time.Sleep(20 * time.Millisecond)
	close(release) // the stuck batch completes on the old sink
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	closeRunner(t, next, 5*time.Second)
	got := append(oldSink.all(), newSink.all()...)
	if len(got) != n {
		t.Fatalf("delivered %d, want %d (old %d, new %d)", len(got), n, len(oldSink.all()), len(newSink.all()))
	}
	for i, g := range got {
		if want := fmt.Sprintf("m%03d", i); g != want {
			t.Fatalf("message %d = %s, want %s (order lost in the hand-over)", i, g, want)
		}
	}
	// At most the batch in the old sink's Write (10) stays behind.
	if moved := reg.Counter("wharf_sink_handed_over_total", "", "sink", "out").Load(); moved != uint64(len(newSink.all())) || moved < n-10 {
		t.Errorf("handed_over = %d, new sink got %d", moved, len(newSink.all()))
	}
	if st := old.Stats(); st.QueuedBytes != 0 || st.Queued != 0 {
		t.Errorf("old runner still counts %d messages, %d bytes", st.Queued, st.QueuedBytes)
	}
	// Both runners count into the sink's series (one registry, one name).
	if st := next.Stats(); st.QueuedBytes != 0 || st.Sent != n {
		t.Errorf("new runner: %d bytes queued, sink's sent %d, want 0 and %d", st.QueuedBytes, st.Sent, n)
	}
}

// TestRunnerLateMessages: a producer that loaded the route table before
// a reload swapped it hands messages to the old runner after its
// HandOver began. They go on to the new runner; after a plain Close they
// are dropped as "closed". Before, both were dropped: a buffered sink
// changed by reload lost what its TCP senders wrote in that window.
func TestRunnerLateMessages(t *testing.T) {
	tr := newTracker(t)
	reg := metrics.NewRegistry()
	oldSink, newSink := &fakeSink{}, &fakeSink{}
	old := NewRunner("out", oldSink, RunnerConfig{QueueSize: 100, BatchSize: 10, BatchTimeout: time.Millisecond}.Resolved(), reg, quietLog())
	old.Start()
	next := NewRunner("out", newSink, RunnerConfig{QueueSize: 100, BatchSize: 10, BatchTimeout: time.Millisecond}.Resolved(), reg, quietLog())
	next.Start()
	if err := old.HandOver(context.Background(), next); err != nil {
		t.Fatal(err)
	}
	if !old.Enqueue(tr.msg("late-1"), true) {
		t.Fatal("Enqueue after HandOver refused the message")
	}
	if n := old.EnqueueBatch([]*message.Message{tr.msg("late-2"), tr.msg("late-3")}, true); n != 2 {
		t.Fatalf("EnqueueBatch after HandOver queued %d of 2", n)
	}
	closeRunner(t, next, 5*time.Second)
	if got := newSink.all(); !slices.Equal(got, []string{"late-1", "late-2", "late-3"}) {
		t.Fatalf("new runner delivered %q", got)
	}
	if d := old.Stats().Dropped["closed"]; d != 0 {
		t.Fatalf("%d late messages dropped as closed", d)
	}

	closed := NewRunner("gone", &fakeSink{}, RunnerConfig{QueueSize: 100}.Resolved(), reg, quietLog())
	closed.Start()
	closeRunner(t, closed, 5*time.Second)
	if closed.Enqueue(tr.msg("after-close"), true) {
		t.Fatal("Enqueue after Close queued the message")
	}
	if d := closed.Stats().Dropped["closed"]; d != 1 {
		t.Fatalf("dropped as closed after Close: %d, want 1", d)
	}
}

// rejectingSink refuses messages whose Raw starts with "big" for good.
type rejectingSink struct{ fakeSink }

func (s *rejectingSink) Write(ctx context.Context, batch []*message.Message) error {
	var keep []*message.Message
	var rej []int
	for i, m := range batch {
		if strings.HasPrefix(string(m.Raw), "big") {
			rej = append(rej, i)
		} else {
			keep = append(keep, m)
		}
	}
	if err := s.fakeSink.Write(ctx, keep); err != nil {
		return err
	}
	if len(rej) > 0 {
		return &RejectedError{Indexes: rej, Err: errors.New("too large")}
	}
	return nil
}

// TestRunnerRejectedNotRetried guards against a message the destination
// never accepts stalling the queue in endless retries.
func TestRunnerRejectedNotRetried(t *testing.T) {
	tr := newTracker(t)
	s := &rejectingSink{}
	r := NewRunner("rej", s, RunnerConfig{QueueSize: 100, BatchSize: 10, BatchTimeout: time.Millisecond}.Resolved(), nil, quietLog())
	r.Start()
	for i := range 30 {
		raw := fmt.Sprintf("ok%d", i)
		if i%10 == 3 {
			raw = fmt.Sprintf("big%d", i)
		}
		r.Enqueue(tr.msg(raw), true)
	}
	closeRunner(t, r, 5*time.Second)
	if got := len(s.all()); got != 27 {
		t.Fatalf("delivered %d, want 27", got)
	}
	st := r.Stats()
	if st.Sent != 27 || st.Dropped[DropRejected] != 3 || s.calls > 4 {
		t.Fatalf("stats %+v after %d writes; want 27 sent, 3 rejected, no retries", st, s.calls)
	}
}

// TestRunnerHandOverFailingBatch: the old sink's destination is down (every
// write fails) when a reload hands its queue over: the batch being
// retried goes to the new runner too, ahead of the queue, instead of being
// retried until Close's deadline and dropped as "shutdown". Before, a
// reload that pointed a sink at a new collector while the old one was
// down lost a whole batch (1,000 of 3,000 in an audit).
func TestRunnerHandOverFailingBatch(t *testing.T) {
	tr := newTracker(t)
	oldSink := &fakeSink{fail: func(int) error { return errors.New("connection refused") }}
	newSink := &fakeSink{}
	reg := metrics.NewRegistry()
	cfg := RunnerConfig{QueueSize: 1000, BatchSize: 100, RetryBackoff: 10 * time.Millisecond}.Resolved()
	old := NewRunner("out", oldSink, cfg, reg, quietLog())
	old.Start()
	const n = 300
	for i := range n {
		old.Enqueue(tr.msg(fmt.Sprintf("m%03d", i)), true)
	}
	testenv.Eventually(t, "a failed write", func() bool { return old.Stats().WriteErrors > 0 })
	next := NewRunner("out", newSink, cfg, reg, quietLog())
	next.Start()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := old.HandOver(ctx, next); err != nil {
		t.Fatal(err)
	}
	closeRunner(t, next, 5*time.Second)
	got := newSink.all()
	if len(got) != n {
		t.Fatalf("the new sink got %d of %d; old runner dropped %v", len(got), n, old.Stats().Dropped)
	}
	for i, g := range got {
		if want := fmt.Sprintf("m%03d", i); g != want {
			t.Fatalf("message %d = %s, want %s (the failed batch must go first)", i, g, want)
		}
	}
	if d := old.Stats().Dropped[DropShutdown]; d != 0 {
		t.Errorf("old runner dropped %d as shutdown", d)
	}
	// Every message was handed over, the failed batch too. Its count
	// was read off the block after the new runner could have written and
	// recycled it (a data race, found by -race in CI; it counted 0).
	if h := old.handedOver.Load(); h != n {
		t.Errorf("wharf_sink_handed_over_total = %d, want %d", h, n)
	}
}

// TestRunnerRingWrap hands batches through a ring smaller than them, so
// EnqueueBatch's bulk copy and the delivery loop's bulk take both wrap
// around its end many times: every message arrives once, in order, and
// every batch keeps BatchSize and BatchBytes.
func TestRunnerRingWrap(t *testing.T) {
	tr := newTracker(t)
	s := &fakeSink{}
	cfg := RunnerConfig{QueueSize: 7, BatchSize: 3, BatchBytes: 25, BatchTimeout: time.Millisecond}.Resolved()
	r := NewRunner("wrap", s, cfg, nil, quietLog())
	r.Start()
	var want []string
	batch := make([]*message.Message, 0, 5)
	for i := range 400 {
		raw := fmt.Sprintf("%0*d", 4+i%9, i) // 4..12 bytes
		want = append(want, raw)
		if batch = append(batch, tr.msg(raw)); len(batch) == cap(batch) {
			if n := r.EnqueueBatch(batch, true); n != len(batch) {
				t.Fatalf("EnqueueBatch queued %d of %d", n, len(batch))
			}
			batch = batch[:0]
		}
	}
	closeRunner(t, r, 10*time.Second)
	if got := s.all(); !slices.Equal(got, want) {
		t.Fatalf("delivered %d messages, want %d in order; first difference at %d", len(got), len(want), firstDiff(got, want))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, b := range s.batches {
		bytes := 0
		for _, raw := range b {
			bytes += len(raw)
		}
		if len(b) > cfg.BatchSize || (len(b) > 1 && int64(bytes) > cfg.BatchBytes) {
			t.Errorf("batch %d: %d messages, %d bytes; bounds %d, %d", i, len(b), bytes, cfg.BatchSize, cfg.BatchBytes)
		}
	}
	if st := r.Stats(); st.QueuedBytes != 0 || st.Sent != 400 || r.ringBytes != 0 || r.n != 0 {
		t.Errorf("after Close: sent %d, queued bytes %d, ring %d messages %d bytes; want 400, 0, 0, 0", st.Sent, st.QueuedBytes, r.n, r.ringBytes)
	}
}

// TestRunnerBatchPartlyFits: a non-blocking EnqueueBatch into a queue
// with room for part of it queues the messages that fit, in order, and
// drops the rest as queue_full, one by one as before the bulk copy: a
// later, smaller message that fits is still queued.
func TestRunnerBatchPartlyFits(t *testing.T) {
	tr := newTracker(t)
	s := &fakeSink{block: make(chan struct{})}
	r := NewRunner("part", s, RunnerConfig{QueueSize: 100, QueueBytes: 25, BatchSize: 100}.Resolved(), nil, quietLog())
	ms := []*message.Message{tr.msg("aaaaaaaaaa"), tr.msg("bbbbbbbbbb"), tr.msg("cccccccccc"), tr.msg("ddddd")}
	if n := r.EnqueueBatch(ms, false); n != 3 {
		t.Errorf("queued %d, want 3 (a, b and the 5-byte d; c is over the 25-byte bound)", n)
	}
	// A message larger than the bound passes an empty queue only.
	big := tr.msg(strings.Repeat("x", 40))
	if n := r.EnqueueBatch([]*message.Message{big}, false); n != 0 {
		t.Errorf("a 40-byte message was queued behind 25 bytes")
	}
	r.Start()
	close(s.block)
	closeRunner(t, r, 5*time.Second)
	if got := strings.Join(s.all(), ","); got != "aaaaaaaaaa,bbbbbbbbbb,ddddd" {
		t.Errorf("delivered %q", got)
	}
	if st := r.Stats(); st.Dropped[DropQueueFull] != 2 {
		t.Errorf("queue_full drops %d, want 2", st.Dropped[DropQueueFull])
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestRunnerFramed runs the Runner's tests again with every fakeSink a
// Framer, so the byte queue (framed.go) keeps the message queue's
// promises: order, batching bounds, backpressure, drops by reason,
// retries, Close and HandOver.
func TestRunnerFramed(t *testing.T) {
	fakeFramed = true
	defer func() { fakeFramed = false }()
	for _, tc := range []struct {
		name string
		f    func(*testing.T)
	}{
		{"NaturalBatching", TestRunnerNaturalBatching},
		{"RetryThenSuccess", TestRunnerRetryThenSuccess},
		{"Histograms", TestRunnerHistograms},
		{"MaxRetries", TestRunnerMaxRetries},
		{"QueueFull", TestRunnerQueueFull},
		{"BlockingEnqueue", TestRunnerBlockingEnqueue},
		{"CloseUnblocksProducers", TestRunnerCloseUnblocksProducers},
		{"CloseDrainsEverything", TestRunnerCloseDrainsEverything},
		{"TightBytesBoundConcurrent", TestRunnerTightBytesBoundConcurrent},
		{"CloseDuringRetry", TestRunnerCloseDuringRetry},
		{"ReadyWithChecker", TestRunnerReadyWithChecker},
		{"PauseMark", TestRunnerPauseMark},
		{"PauseMarkOutage", TestRunnerPauseMarkOutage},
		{"HandOver", TestRunnerHandOver},
		{"LateMessages", TestRunnerLateMessages},
		{"HandOverFailingBatch", TestRunnerHandOverFailingBatch},
		{"BatchPartlyFits", TestRunnerBatchPartlyFits},
		{"RingWrap", TestRunnerRingWrap},
		{"ImmediateOnIdleSink", TestRunnerImmediateOnIdleSink},
		{"ImmediateDeclined", TestRunnerImmediateDeclined},
		{"ImmediateConcurrent", TestRunnerImmediateConcurrent},
		{"AckAfterEverySinkConfirmed", TestAckAfterEverySinkConfirmed},
	} {
		t.Run(tc.name, tc.f)
	}
}
