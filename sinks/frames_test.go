package sinks

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"wharf/internal/testenv"
	"wharf/message"
	"wharf/metrics"
)

// framesOf frames raws for r as a listener's outbox does: the messages
// are scratch ones, gone once framed, but for those named in acks, which
// carry ack and move with their frame.
func framesOf(r *Runner, ack message.Acker, acks map[string]bool, raws ...string) *message.Frames {
	f := &message.Frames{}
	for _, raw := range raws {
		m := &message.Message{Raw: []byte(raw), Received: 42}
		var held *message.Message
		if acks[raw] {
			held = message.New([]byte(raw))
			held.Ack = ack
			m = held
		}
		f.B = r.AppendFrame(f.B, m)
		f.Add(len(raw), m.Received, held)
	}
	return f
}

func seq(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%03d", prefix, i)
	}
	return out
}

// EnqueueFrames takes a read's frames in order into the byte queue,
// whole blocks of BatchSize, and counts their Raw bytes, not the framing.
func TestEnqueueFrames(t *testing.T) {
	s := &fakeSink{block: make(chan struct{})}
	r := framedRunner(t, "out", s, RunnerConfig{QueueSize: 1000, BatchSize: 4}, nil)
	raws := seq("m", 10)
	next, queued := r.EnqueueFrames(framesOf(r, nil, nil, raws...), 0, true)
	if next != 10 || queued != 10 {
		t.Fatalf("EnqueueFrames: next %d, queued %d; want 10, 10", next, queued)
	}
	if st := r.Stats(); st.QueuedBytes != 40 {
		t.Errorf("queued bytes %d, want 40 (Raw bytes, no framing)", st.QueuedBytes)
	}
	// From an index on: the first three were taken before.
	if next, queued := r.EnqueueFrames(framesOf(r, nil, nil, seq("n", 5)...), 3, true); next != 5 || queued != 2 {
		t.Fatalf("EnqueueFrames from 3: next %d, queued %d; want 5, 2", next, queued)
	}
	close(s.block)
	closeRunner(t, r, 5*time.Second)
	want := append(raws, "n003", "n004")
	if got := s.all(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
	for _, n := range s.sizes() {
		if n > 4 {
			t.Fatalf("batches %v, want at most BatchSize 4 each", s.sizes())
		}
	}
}

// Without waiting (UDP), messages over the queue's bounds are dropped
// one by one and counted as queue_full, a held one's sender told it
// failed; the ones that fit are queued, in order.
func TestEnqueueFramesFull(t *testing.T) {
	s := &fakeSink{block: make(chan struct{})}
	r := framedRunner(t, "out", s, RunnerConfig{QueueSize: 6, QueueBytes: 1 << 20, BatchSize: 100}, nil)
	var ack ackRecorder
	raws := seq("m", 10)
	next, queued := r.EnqueueFrames(framesOf(r, &ack, map[string]bool{"m002": true, "m008": true}, raws...), 0, false)
	if next != 10 || queued != 6 {
		t.Fatalf("next %d, queued %d; want 10, 6", next, queued)
	}
	if d := r.Stats().Dropped[DropQueueFull]; d != 4 {
		t.Errorf("queue_full %d, want 4", d)
	}
	if ack.failed.Load() != 1 || ack.ok.Load() != 0 {
		t.Errorf("acks: %d failed, %d ok before delivery; want m008's failed", ack.failed.Load(), ack.ok.Load())
	}
	close(s.block)
	closeRunner(t, r, 5*time.Second)
	if got := s.all(); fmt.Sprint(got) != fmt.Sprint(raws[:6]) {
		t.Fatalf("delivered %v, want %v", got, raws[:6])
	}
	if ack.ok.Load() != 1 {
		t.Errorf("m002's sender: %d ok, want 1", ack.ok.Load())
	}
}

// Frames reaching a runner that is closing: dropped as "closed" when it
// hands over to none (held senders told), taken by the runner it hands
// over to when that frames the same, and left to the caller (next =
// from) when it does not: the caller hands them over as messages.
func TestEnqueueFramesLate(t *testing.T) {
	t.Run("closed", func(t *testing.T) {
		r := framedRunner(t, "out", &fakeSink{}, RunnerConfig{}, nil)
		closeRunner(t, r, time.Second)
		var ack ackRecorder
		next, queued := r.EnqueueFrames(framesOf(r, &ack, map[string]bool{"b": true}, "a", "b", "c"), 1, true)
		if next != 3 || queued != 0 {
			t.Fatalf("next %d, queued %d; want 3, 0", next, queued)
		}
		if d := r.Stats().Dropped[DropClosed]; d != 2 {
			t.Errorf("closed %d, want 2", d)
		}
		if ack.failed.Load() != 1 {
			t.Errorf("held sender: %d failed, want 1", ack.failed.Load())
		}
	})
	for _, tc := range []struct {
		key  string
		want string // what the new sink gets
		next int
	}{
		{key: "", want: "[b c]", next: 3},
		{key: "other", want: "[]", next: 1},
	} {
		t.Run("hand-over to key "+tc.key, func(t *testing.T) {
			reg := metrics.NewRegistry()
			oldSink, newSink := &fakeSink{block: make(chan struct{})}, &fakeSink{key: tc.key}
			old := framedRunner(t, "out", oldSink, RunnerConfig{}, reg)
			old.Enqueue(message.New([]byte("busy")), true) // holds the run loop in Write
			testenv.Eventually(t, "the run loop in Write", func() bool { return old.Stats().Queued == 0 })
			next := framedRunner(t, "out", newSink, RunnerConfig{}, reg)
			done := make(chan error, 1)
			go func() { done <- old.HandOver(context.Background(), next) }()
			testenv.Eventually(t, "the hand-over to begin", func() bool { return old.closing.Load() })
			n, queued := old.EnqueueFrames(framesOf(old, nil, nil, "a", "b", "c"), 1, true)
			if n != tc.next || queued != tc.next-1 {
				t.Fatalf("next %d, queued %d; want %d, %d", n, queued, tc.next, tc.next-1)
			}
			close(oldSink.block)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			closeRunner(t, next, 5*time.Second)
			if got := fmt.Sprint(newSink.all()); got != tc.want {
				t.Errorf("the new sink got %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("message queue", func(t *testing.T) {
		r := NewRunner("out", &fakeSink{}, RunnerConfig{}.Resolved(), nil, quietLog())
		if r.TakesFrames() {
			t.Fatal("a runner without a Framer takes frames")
		}
		if next, queued := r.EnqueueFrames(&message.Frames{}, 0, true); next != 0 || queued != 0 {
			t.Errorf("next %d, queued %d; want 0, 0", next, queued)
		}
	})
}

// Two reloads in flight: r hands over to `to` (same framing), `to` to x
// (other framing). Frames reaching r go to `to`, which leaves them; the
// caller makes them messages and hands them to r again (outbox.flush).
// Each runner counts them handed over once. Found in review: r counted
// them twice, once for the frames `to` left.
func TestEnqueueFramesChainedHandOver(t *testing.T) {
	rSink, toSink, xSink := &fakeSink{}, &fakeSink{}, &fakeSink{key: "other"}
	r := framedRunner(t, "out", rSink, RunnerConfig{}, metrics.NewRegistry())
	to := framedRunner(t, "out", toSink, RunnerConfig{}, metrics.NewRegistry())
	x := framedRunner(t, "out", xSink, RunnerConfig{}, metrics.NewRegistry())
	if err := r.HandOver(context.Background(), to); err != nil {
		t.Fatal(err)
	}
	if err := to.HandOver(context.Background(), x); err != nil {
		t.Fatal(err)
	}
	raws := []string{"a", "b", "c"}
	f := framesOf(r, nil, nil, raws...)
	next, queued := r.EnqueueFrames(f, 0, true)
	if next != 0 || queued != 0 {
		t.Fatalf("next %d, queued %d; want 0, 0 (left to the caller)", next, queued)
	}
	ms := make([]*message.Message, 0, 3)
	for _, raw := range raws {
		ms = append(ms, message.New([]byte(raw)))
	}
	if q := r.EnqueueBatch(ms, true); q != 3 {
		t.Fatalf("EnqueueBatch queued %d, want 3", q)
	}
	closeRunner(t, x, 5*time.Second)
	if got := fmt.Sprint(xSink.all()); got != "[a b c]" {
		t.Errorf("x got %v, want [a b c]", got)
	}
	if h, h2 := r.handedOver.Load(), to.handedOver.Load(); h != 3 || h2 != 3 {
		t.Errorf("handed over: r %d, to %d; want 3 each", h, h2)
	}
}

// Messages received at different times (a queue handed over on reload,
// late messages) keep each block's own oldest time for the delivery
// delay. Found in review: every block took the batch's first time.
func TestEnqueueFramedOldest(t *testing.T) {
	s := &fakeSink{block: make(chan struct{})}
	r := framedRunner(t, "out", s, RunnerConfig{QueueSize: 100, BatchSize: 2}, nil)
	r.Enqueue(message.New([]byte("busy")), true) // holds the run loop in Write
	testenv.Eventually(t, "the run loop in Write", func() bool { return r.Stats().Queued == 0 })
	ms := make([]*message.Message, 4)
	for i := range ms {
		ms[i] = message.New([]byte{'m', byte('0' + i)})
		ms[i].Received = int64(1000 * (i + 1))
	}
	r.EnqueueBatch(ms, true)
	r.mu.Lock()
	var got []int64
	for _, b := range r.blocks {
		got = append(got, b.oldest)
	}
	r.mu.Unlock()
	close(s.block)
	closeRunner(t, r, 5*time.Second)
	if fmt.Sprint(got) != "[1000 3000]" {
		t.Errorf("blocks' oldest %v, want [1000 3000]", got)
	}
}

// A batch longer than framedChunk (a whole queue handed over) is framed
// and queued a chunk at a time, in order, every message once.
func TestEnqueueFramedChunks(t *testing.T) {
	s := &fakeSink{}
	r := framedRunner(t, "out", s, RunnerConfig{QueueSize: 10000, BatchSize: 100}, nil)
	raws := seq("m", 3*framedChunk+7)
	ms := make([]*message.Message, len(raws))
	for i, raw := range raws {
		ms[i] = message.New([]byte(raw))
	}
	if q := r.EnqueueBatch(ms, true); q != len(raws) {
		t.Fatalf("queued %d of %d", q, len(raws))
	}
	closeRunner(t, r, 5*time.Second)
	if got := s.all(); fmt.Sprint(got) != fmt.Sprint(raws) {
		t.Fatalf("delivered %d messages, want the %d in order", len(got), len(raws))
	}
}

// A read's frames that all fit the queue and its newest block are taken
// at once (enqueueFrames' fast path); they must end up exactly as the
// loop taking them one by one leaves them: the same blocks with the same
// bytes, counts and oldest times, the same drops. The reference runner
// is given each read behind one message it skips (from 1), which the
// fast path does not take. Both run loops start only after the reads,
// so that neither takes a block meanwhile.
func TestEnqueueFramesWholeReadAsOneByOne(t *testing.T) {
	cfg := RunnerConfig{QueueSize: 40, QueueBytes: 1 << 20, BatchSize: 8, BatchBytes: 60}.Resolved()
	fakeFramed = true
	defer func() { fakeFramed = false }()
	fastSink, refSink := &fakeSink{}, &fakeSink{}
	fast, ref := NewRunner("fast", fastSink, cfg, nil, quietLog()), NewRunner("ref", refSink, cfg, nil, quietLog())
	read := func(r *Runner, skip bool, raws []string, at int64) *message.Frames {
		f := &message.Frames{}
		if skip {
			f.B = r.AppendFrame(f.B, &message.Message{Raw: []byte("skipped")})
			f.Add(7, at, nil)
		}
		for _, raw := range raws {
			f.B = r.AppendFrame(f.B, &message.Message{Raw: []byte(raw)})
			f.Add(len(raw), at, nil)
		}
		return f
	}
	// Reads that fill the newest block exactly, overflow it by count and
	// by bytes, start on an empty queue, and (without waiting) run into
	// QueueSize.
	var all []string
	for i, k := range []int{3, 3, 2, 5, 1, 7, 10, 4, 1, 6, 9} {
		var raws []string
		for j := range k {
			raws = append(raws, fmt.Sprintf("r%d-%d%s", i, j, strings.Repeat("x", (i*j*5)%17)))
		}
		at := int64(100 * (i + 1))
		fn, fq := fast.EnqueueFrames(read(fast, false, raws, at), 0, false)
		rn, rq := ref.EnqueueFrames(read(ref, true, raws, at), 1, false)
		if fn != rn-1 || fq != rq {
			t.Fatalf("read %d: fast path next %d queued %d, one by one next %d queued %d (from 1)", i, fn, fq, rn, rq)
		}
		all = append(all, raws[:fq]...)
	}
	blocks := func(r *Runner) string {
		r.mu.Lock()
		defer r.mu.Unlock()
		var b strings.Builder
		for _, k := range r.blocks {
			fmt.Fprintf(&b, "n=%d raw=%d oldest=%d %q\n", k.n, k.raw, k.oldest, k.b)
		}
		fmt.Fprintf(&b, "queued %d, %d bytes (%d)", r.n, r.bytes.Load(), r.ringBytes)
		return b.String()
	}
	if f, r := blocks(fast), blocks(ref); f != r {
		t.Fatalf("whole reads at once:\n%s\none by one:\n%s", f, r)
	}
	if f, r := fast.Stats().Dropped[DropQueueFull], ref.Stats().Dropped[DropQueueFull]; f != r || f == 0 {
		t.Errorf("queue_full drops: %d at once, %d one by one; want equal and some", f, r)
	}
	fast.Start()
	ref.Start()
	closeRunner(t, fast, 5*time.Second)
	closeRunner(t, ref, 5*time.Second)
	if got := fastSink.all(); fmt.Sprint(got) != fmt.Sprint(all) {
		t.Errorf("delivered %q\nwant %q", got, all)
	}
}
