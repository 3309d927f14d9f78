package sinks

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"wharf/internal/testenv"
	"wharf/message"
)

// nowSink is a fakeSink with an Immediate side. It records which path
// delivered each message, and fails the test if WriteNow and Write ever
// overlap (the Sink contract: never two writes at once).
type nowSink struct {
	fakeSink
	t        *testing.T
	inWrite  atomic.Int32
	decline  atomic.Bool
	nowCalls atomic.Int64
	nowMsgs  atomic.Int64
	onNow    func()
}

func (s *nowSink) enter() {
	if s.inWrite.Add(1) != 1 {
		s.t.Error("WriteNow and Write overlap")
	}
}

func (s *nowSink) Write(ctx context.Context, batch []*message.Message) error {
	s.enter()
	defer s.inWrite.Add(-1)
	return s.fakeSink.Write(ctx, batch)
}

func (s *nowSink) WriteNow(batch []*message.Message) bool {
	b := make([]string, len(batch))
	for i, m := range batch {
		b[i] = string(m.Raw)
	}
	return s.now(b)
}

// now is WriteNow and WriteFramedNow: it takes raws unless declining.
func (s *nowSink) now(raws []string) bool {
	s.enter()
	defer s.inWrite.Add(-1)
	s.nowCalls.Add(1)
	if s.onNow != nil {
		s.onNow()
	}
	if s.decline.Load() {
		return false
	}
	s.nowMsgs.Add(int64(len(raws)))
	s.mu.Lock()
	s.batches = append(s.batches, raws)
	s.mu.Unlock()
	return true
}

func (s *nowSink) WriteFramed(ctx context.Context, b []byte) ([]byte, error) {
	s.enter()
	defer s.inWrite.Add(-1)
	return s.fakeSink.WriteFramed(ctx, b)
}

func (s *nowSink) WriteFramedNow(b []byte) bool {
	return s.now(strings.Split(string(b[:len(b)-1]), "\x00"))
}

// An idle runner hands a message to WriteNow on the producer's
// goroutine: it is delivered, counted and released before Enqueue
// returns, with no wake-up of the delivery goroutine.
func TestRunnerImmediateOnIdleSink(t *testing.T) {
	tr := newTracker(t)
	s := &nowSink{t: t}
	r := NewRunner("t", s, RunnerConfig{BatchSize: 100}.Resolved(), nil, quietLog())
	r.Start()
	// The run loop parks once it finds the queue empty.
	waitParked(t, r)
	for i := range 5 {
		r.Enqueue(tr.msg(fmt.Sprint(i)), true)
		if got := s.nowMsgs.Load(); got != int64(i+1) {
			t.Fatalf("after Enqueue %d: WriteNow delivered %d messages, want %d (on the producer's goroutine)", i, got, i+1)
		}
		if st := r.Stats(); st.Sent != uint64(i+1) || st.Queued != 0 {
			t.Fatalf("after Enqueue %d: sent %d queued %d, want %d and 0", i, st.Sent, st.Queued, i+1)
		}
	}
	closeRunner(t, r, 5*time.Second)
	if s.calls != 0 {
		t.Errorf("Write called %d times, want 0: every message went out at once", s.calls)
	}
}

// A declined WriteNow leaves the batch to Write, in order, once.
func TestRunnerImmediateDeclined(t *testing.T) {
	tr := newTracker(t)
	s := &nowSink{t: t}
	s.decline.Store(true)
	r := NewRunner("t", s, RunnerConfig{BatchSize: 100}.Resolved(), nil, quietLog())
	r.Start()
	waitParked(t, r)
	for i := range 20 {
		r.Enqueue(tr.msg(fmt.Sprint(i)), true)
	}
	closeRunner(t, r, 5*time.Second)
	if s.nowCalls.Load() == 0 {
		t.Fatal("WriteNow never offered a batch")
	}
	want := make([]string, 20)
	for i := range want {
		want[i] = fmt.Sprint(i)
	}
	if got := s.all(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("delivered %v, want %v", got, want)
	}
}

// Under load from several producers, with WriteNow sometimes declining
// and Write slow enough that batches pile up, every message is delivered
// exactly once, each producer's in order, and the two paths never write
// at the same time (nowSink checks). Run with -race.
func TestRunnerImmediateConcurrent(t *testing.T) {
	tr := newTracker(t)
	s := &nowSink{t: t}
	var n atomic.Int64
	s.onNow = func() { s.decline.Store(n.Add(1)%3 == 0) }
	s.onWrite = func([]*message.Message) { time.Sleep(50 * time.Microsecond) }
	r := NewRunner("t", s, RunnerConfig{BatchSize: 8, QueueSize: 64}.Resolved(), nil, quietLog())
	r.Start()
	const producers, each = 4, 2000
	produce(producers, each, func(p, i int) {
		r.Enqueue(tr.msg(fmt.Sprintf("%d-%d", p, i)), true)
		if i%4 == 0 {
			// Now and then, wait for the sink to go idle, so both paths
			// get work whatever the machine's speed.
			testenv.Poll(5*time.Second, func() bool { return parked(r) })
		}
	})
	closeRunner(t, r, 10*time.Second)
	next := make([]int, producers)
	got := s.all()
	for _, raw := range got {
		var p, i int
		fmt.Sscanf(raw, "%d-%d", &p, &i)
		if i != next[p] {
			t.Fatalf("producer %d: got message %d, want %d (lost, repeated or out of order)", p, i, next[p])
		}
		next[p]++
	}
	if len(got) != producers*each {
		t.Fatalf("delivered %d, want %d", len(got), producers*each)
	}
	if s.nowMsgs.Load() == 0 {
		t.Errorf("WriteNow delivered nothing (Write was called %d times): the test should exercise it", s.calls)
	}
	t.Logf("WriteNow delivered %d of %d, in %d calls; Write %d calls", s.nowMsgs.Load(), len(got), s.nowCalls.Load(), s.calls)
}

// A runner with a linger keeps batching: WriteNow is not offered.
func TestRunnerImmediateNotWithLinger(t *testing.T) {
	tr := newTracker(t)
	s := &nowSink{t: t}
	r := NewRunner("t", s, RunnerConfig{BatchSize: 100, BatchTimeout: time.Millisecond}.Resolved(), nil, quietLog())
	r.Start()
	r.Enqueue(tr.msg("a"), true)
	closeRunner(t, r, 5*time.Second)
	if s.nowCalls.Load() != 0 {
		t.Errorf("WriteNow called %d times with batch_timeout set", s.nowCalls.Load())
	}
}

func waitParked(t *testing.T, r *Runner) {
	t.Helper()
	testenv.Eventually(t, "the run loop to park on an empty queue", func() bool { return parked(r) })
}

// parked reports whether r's run loop waits with an empty batch.
func parked(r *Runner) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.parked
}
