package sinks

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"wharf/message"
)

// Framer is implemented by a Sink that sends every message as bytes of
// its own, framed the same whatever batch it travels in: the syslog sink
// over TCP and TLS. A Runner over a sink whose Framed reports true (and
// that has neither a spool nor a linger) queues those bytes instead of
// the messages, and the run loop writes whole blocks. A listener frames
// each message for such a runner as it routes it, into its outbox's
// message.Frames, and hands a read's frames over with EnqueueFrames,
// which copies them into the queue's newest block: the message need not
// outlive the read, so it is the listener's scratch message over the
// read's buffer, not a pooled copy (#16: BenchmarkRelayPathTCPFramed
// under cachegrind, 6% fewer instructions and 30% fewer L1 data misses
// per message, producer and run loop together). Messages handed
// over as such (EnqueueBatch) are framed by the producer too and
// released on its goroutine. Either way a relayed message never reaches
// the run loop's core: no message pool or reference count shared
// between the cores, no ring of pointers.
//
// Concurrency: producers call AppendFrame (through the Runner's) from
// their own goroutines, several at once and while WriteFramed runs, so
// AppendFrame reads only what does not change after the sink is built,
// and keeps nothing of the message (it may be a listener's scratch
// message, whose Raw is the read's buffer).
// WriteFramed follows Write's rules; WriteFramedNow follows
// Immediate.WriteNow's.
type Framer interface {
	// Framed reports whether the sink, as configured, takes framed bytes
	// (the syslog sink: only when every server is plain TCP or TLS).
	// NewRunner asks once.
	Framed() bool
	// FrameKey names the bytes AppendFrame makes (encoding and framing):
	// a reload hands queued blocks only to a runner whose sink frames
	// the same.
	FrameKey() string
	// AppendFrame appends m as the sink sends it (encoded and framed) to
	// b and returns the result.
	AppendFrame(b []byte, m *message.Message) []byte
	// WriteFramed delivers b, whole frames, as Write delivers a batch.
	// On success it returns storage for the runner's next block: b
	// itself when the sink did not keep it, else another buffer (or
	// nil). On error the sink has not kept b.
	WriteFramed(ctx context.Context, b []byte) (reuse []byte, err error)
	// WriteFramedNow is Immediate.WriteNow for framed bytes. The sink
	// does not keep b.
	WriteFramedNow(b []byte) bool
}

// OctetPasser is implemented by a Framer that may frame a message as it
// arrived: when PassesOctetFrames reports true, AppendFrame(b, m) is, for
// every message, the decimal length of m.Raw, a space and m.Raw (RFC 6587
// octet counting of the bytes as received: the syslog sink with encoding
// raw and out_framing octet-counting). A producer that holds a message's
// octet-counted frame as it was read (framing.OctetFrame) may then queue
// those bytes instead of calling AppendFrame, and a read's frames that
// lie back to back in its buffer with one copy (#16). NewRunner asks
// once.
type OctetPasser interface {
	PassesOctetFrames() bool
}

// block is a run of framed messages in a Runner's byte queue.
type block struct {
	b []byte // the messages' frames, in order
	n int    // messages
	// raw is the messages' Raw bytes: the queue's bounds and the sent
	// bytes count Raw bytes, as for a queue of messages.
	raw int64
	// oldest is the Received time of the block's first message (0:
	// unknown), for the delivery delay histogram.
	oldest int64
	// held are the block's messages whose sender waits for them (an Ack:
	// a RELP input). They are confirmed and released once the block is
	// delivered, or released unconfirmed if it is dropped.
	held []*message.Message
}

// TakesFrames reports whether r queues framed bytes (route.FrameTarget):
// its sink is a Framer that frames, and r has neither a spool nor a
// linger.
func (r *Runner) TakesFrames() bool { return r.fr != nil }

// FrameID tells r apart from every other runner of the process
// (route.FrameTarget): a reload's new runner for a sink of the same name
// has another.
func (r *Runner) FrameID() uint64 { return r.id }

// PassesOctetFrames reports whether r's sink frames every message as its
// octet-counted frame as received (OctetPasser; route.FrameTarget).
func (r *Runner) PassesOctetFrames() bool { return r.passOctet }

// runnerIDs numbers runners from 1 (FrameID).
var runnerIDs atomic.Uint64

// AppendFrame appends m as r's sink sends it (route.FrameTarget). Only
// for a runner that TakesFrames; safe from several goroutines at once.
func (r *Runner) AppendFrame(b []byte, m *message.Message) []byte {
	return r.fr.AppendFrame(b, m)
}

// EnqueueFrames is EnqueueBatch for messages a producer framed itself
// with AppendFrame (route.FrameTarget): f's messages from index from on,
// in order, copied into the byte queue before it returns. The reference
// of each held message it takes moves to its block (confirmed once
// delivered) or is released (dropped). It returns next, the first
// message not taken: f.Len(), unless r is closing and hands over to a
// runner that frames differently or queues messages, which then wants
// f[next:] as messages (the caller's EnqueueBatch, see late); and how
// many of f[from:next] were queued, here or on the runner r hands over
// to. The others were dropped and counted. A runner that does not take
// frames takes none.
func (r *Runner) EnqueueFrames(f *message.Frames, from int, block bool) (next, queued int) {
	if r.fr == nil {
		return from, 0
	}
	r.gate.RLock()
	if r.closing.Load() {
		r.gate.RUnlock()
		return r.lateFrames(f, from, block)
	}
	queued, next = r.enqueueFrames(f, from, block)
	r.gate.RUnlock()
	if next < f.Len() { // Close began while it waited for room
		var q int
		next, q = r.lateFrames(f, next, block)
		queued += q
	}
	return next, queued
}

// lateFrames is late for frames: they go on to the runner r hands over
// to if it frames the same, are left to the caller (next = from) if it
// does not, and are dropped as "closed" when r hands over to none.
func (r *Runner) lateFrames(f *message.Frames, from int, block bool) (next, queued int) {
	to := r.forward.Load()
	switch {
	case to == nil:
		r.dropped[dropClosed].Add(uint64(f.Len() - from))
		for i := from; i < f.Len(); i++ {
			if m := f.Held(i); m != nil {
				m.Release()
			}
		}
		return f.Len(), 0
	case r.framedCompatible(to):
		// Counted as handed over: what to took. What it leaves (it
		// closed too, over a runner framing differently) the caller
		// hands to r as messages, and late counts them then.
		next, queued = to.EnqueueFrames(f, from, block)
		r.handedOver.Add(uint64(next - from))
		return next, queued
	}
	return from, 0
}

// framesPool holds the Frames enqueueFramed frames a batch into.
var framesPool = sync.Pool{New: func() any { return new(message.Frames) }}

// enqueueFramed is enqueue for a Framer, for messages handed over as
// such (Enqueue, EnqueueBatch: a late message, a listener without an
// outbox): it frames them and queues the frames with enqueueFrames. The
// messages it took (ms[:next]) are released, but those with an Ack,
// whose reference moves with the frame; ms[next:] are left to the caller
// untouched. Called with the gate read-locked.
func (r *Runner) enqueueFramed(ms []*message.Message, wait bool) (queued, next int) {
	f := framesPool.Get().(*message.Frames)
	defer framesPool.Put(f)
	// In chunks: a whole queue handed over on reload (handOff) would
	// otherwise be framed twice over in memory before any of it queued.
	for next < len(ms) {
		chunk := ms[next:min(len(ms), next+framedChunk)]
		for _, m := range chunk {
			f.B = r.fr.AppendFrame(f.B, m)
			var held *message.Message
			if m.Ack != nil {
				held = m
			}
			f.Add(len(m.Raw), m.Received, held)
			f.SetReceived(m.Received)
		}
		q, n := r.enqueueFrames(f, 0, wait)
		queued += q
		// A held message may be delivered and freed already: which ones
		// were held is asked of f, not of the message.
		for i, m := range chunk[:n] {
			if f.Held(i) == nil {
				m.Release()
			}
		}
		f.Reset()
		next += n
		if n < len(chunk) { // Close began while it waited for room
			break
		}
	}
	return queued, next
}

// framedChunk is how many messages enqueueFramed frames at a time.
const framedChunk = 256

// enqueueFrames copies f's frames from index from on into the byte queue,
// in order, and returns how many it queued and the index it stopped at:
// f.Len(), or earlier if Close began while it waited for room. Called
// with the gate read-locked.
func (r *Runner) enqueueFrames(f *message.Frames, from int, wait bool) (queued, next int) {
	i := from
	var dropped []*message.Message // held messages dropped, released once mu is unlocked
	for {
		r.mu.Lock()
		limN, limB := r.limits(wait)
		cur := r.bytes.Load()
		var size int64
		var t *block
		if i == 0 && !f.AnyHeld() {
			// Most often a read's frames all fit the queue and its newest
			// block: then they are taken at once, as the loop below would
			// take them one by one (#16: it cost ~55 instructions a
			// message).
			k, raw := f.Len(), f.RawTotal()
			if k > 0 && r.n+k <= limN && cur+raw <= limB {
				t = r.tailBlock(int64(f.RawLen(0)))
				if t.n+k <= r.cfg.BatchSize && t.raw+raw <= r.cfg.BatchBytes {
					if t.n == 0 {
						t.oldest = f.ReceivedAt(0)
					}
					t.n += k
					t.raw += raw
					r.n += k
					size, queued, i = raw, k, k
					t.appendFrames(f, 0, k)
				}
			}
		}
		// The frames of consecutive messages that go to the same block
		// are copied into it at once: run is the first of them.
		run := i
		for ; i < f.Len(); i++ {
			sz := int64(f.RawLen(i))
			if r.n >= limN || (cur+size != 0 && cur+size+sz > limB) {
				t.appendFrames(f, run, i)
				run = i + 1
				if wait {
					break
				}
				r.dropped[dropQueueFull].Inc()
				if m := f.Held(i); m != nil {
					dropped = append(dropped, m)
				}
				continue
			}
			if t == nil || t.n >= r.cfg.BatchSize || (t.n > 0 && t.raw+sz > r.cfg.BatchBytes) {
				t.appendFrames(f, run, i)
				run = i
				t = r.tailBlock(sz)
			}
			if t.n == 0 {
				t.oldest = f.ReceivedAt(i)
			}
			t.n++
			t.raw += sz
			r.n++
			size += sz
			queued++
			if m := f.Held(i); m != nil {
				t.held = append(t.held, m)
			}
		}
		t.appendFrames(f, run, i)
		r.ringBytes += size
		r.bytes.Store(cur + size)
		if i == f.Len() {
			if r.parked && !r.nowBusy && len(r.blocks) == 1 && r.n <= immediateMax && r.ringBytes <= immediateBytes && r.ready.Load() {
				r.deliverNowFramed() // unlocks mu
			} else {
				wake := r.idle && !r.nowBusy && r.n > 0
				if wake {
					r.idle = false
				}
				r.mu.Unlock()
				if wake {
					r.wakeRunLoop()
				}
			}
			message.ReleaseAll(dropped)
			return queued, i
		}
		// Full: wait for space.
		space, wake := r.leaveFull()
		message.ReleaseAll(dropped)
		dropped = dropped[:0]
		if !r.awaitRoom(space, wake) {
			return queued, i
		}
	}
}

// appendFrames appends the frames of f's messages [from, to) to b's
// bytes; b may be nil when there are none.
func (b *block) appendFrames(f *message.Frames, from, to int) {
	if from < to {
		b.b = append(b.b, f.Span(from, to)...)
	}
}

// tailBlock returns the queue's newest block if a message of sz Raw
// bytes still fits it (BatchSize, BatchBytes: a block is one write),
// else appends an empty one. Called with mu held.
func (r *Runner) tailBlock(sz int64) *block {
	if k := len(r.blocks); k > 0 {
		t := r.blocks[k-1]
		if t.n == 0 || (t.n < r.cfg.BatchSize && t.raw+sz <= r.cfg.BatchBytes) {
			return t
		}
	}
	var t *block
	if k := len(r.free); k > 0 {
		t, r.free = r.free[k-1], r.free[:k-1]
	} else {
		t = &block{}
	}
	// Room for the largest block written so far, up front: growing
	// blocks by append copied their bytes again and made garbage (the
	// collector ran all the time at full rate).
	if want := min(max(r.blockHint, minBlockCap), maxBlockCap); cap(t.b) < want {
		t.b = make([]byte, 0, want)
	}
	r.blocks = append(r.blocks, t)
	return t
}

// A block starts with room for the largest block taken so far
// (blockHint), at least minBlockCap and at most maxBlockCap; one that
// needs more (a large batch_bytes, a huge message) grows.
const (
	minBlockCap = 16 << 10
	maxBlockCap = 1 << 20
)

// recycle empties b and keeps it for reuse, up to r.keepFree blocks: a
// queue that grew deep in an outage gives the rest of its memory back
// once drained. Called with mu held.
func (r *Runner) recycle(b *block) {
	clear(b.held)
	b.b, b.n, b.raw, b.oldest, b.held = b.b[:0], 0, 0, 0, b.held[:0]
	if len(r.free) < r.keepFree {
		r.free = append(r.free, b)
	}
}

// spareBlocks is how many empty blocks a byte queue keeps for reuse: as
// many as a queue at the pause mark holds, and two more. A sink at full
// rate keeps about that many in use; keeping fewer made a new block per
// write.
func spareBlocks(cfg RunnerConfig) int {
	return 2 + int(max(ceilDiv(int64(cfg.PauseSize), int64(cfg.BatchSize)), ceilDiv(cfg.PauseBytes, cfg.BatchBytes)))
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

// deliverNowFramed is deliverNow for the byte queue: the producer writes
// the queue's only block itself while the run loop waits with nothing to
// do. The block leaves the queue meanwhile (producers start a new one)
// and, if the sink declines, goes back to its head: the run loop takes
// nothing while nowBusy is set, so the order holds. Its messages stay
// counted in the queue until written. Called with mu held; returns with
// it released.
func (r *Runner) deliverNowFramed() {
	r.nowBusy = true
	b := r.blocks[0]
	r.blocks = r.blocks[:0]
	r.mu.Unlock()

	t0 := time.Now()
	ok := r.fr.WriteFramedNow(b.b)
	t1 := time.Now()
	if ok {
		r.writeTime.Observe(t1.Sub(t0).Seconds())
		r.deliveredBlock(b, t1)
		message.ReleaseAll(b.held)
	}

	r.mu.Lock()
	if ok {
		r.n -= b.n
		r.ringBytes -= b.raw
		r.bytes.Store(r.bytes.Load() - b.raw)
		r.recycle(b)
		r.spaceFreed()
	} else {
		r.blocks = append(r.blocks, nil)
		copy(r.blocks[1:], r.blocks)
		r.blocks[0] = b
	}
	r.nowBusy = false
	wake := r.n > 0 && r.idle // declined, or more came meanwhile
	if wake {
		r.idle = false
	}
	r.mu.Unlock()
	if wake {
		r.wakeRunLoop()
	}
}

// deliveredBlock accounts for a block the sink took at t (delivered's
// counters) and confirms the messages it holds; the caller releases them.
func (r *Runner) deliveredBlock(b *block, t time.Time) {
	if b.oldest != 0 {
		r.delay.Observe(max(float64(t.UnixNano()-b.oldest)/1e9, 0))
	}
	r.sent.Add(uint64(b.n))
	r.sentBytes.Add(uint64(b.raw))
	r.batches.Inc()
	for _, m := range b.held {
		m.Confirm()
	}
}

// runFramed is run for the byte queue: take the oldest block, write it
// (flush, with retries), repeat; once draining begins, hand the queue
// over or deliver what is left.
func (r *Runner) runFramed() {
	defer close(r.done)
	for r.takeBlock(true) {
		r.flush()
	}
	if r.next != nil {
		r.handOffBlocks()
		return
	}
	for r.takeBlock(false) {
		r.flush()
	}
}

// takeBlock makes the queue's oldest block the one being written
// (r.cur). With wait it waits for one and returns false, taking
// nothing, once draining begins; without, it returns false when the
// queue is empty.
func (r *Runner) takeBlock(wait bool) bool {
	if wait {
		select {
		case <-r.drainCh:
			return false
		default:
		}
	}
	for {
		r.mu.Lock()
		r.idle, r.parked = false, false
		if !r.nowBusy && len(r.blocks) > 0 {
			b := r.blocks[0]
			copy(r.blocks, r.blocks[1:])
			r.blocks[len(r.blocks)-1] = nil
			r.blocks = r.blocks[:len(r.blocks)-1]
			r.n -= b.n
			r.ringBytes -= b.raw
			r.blockHint = max(r.blockHint, len(b.b))
			r.cur = b
			r.spaceFreed()
			r.mu.Unlock()
			return true
		}
		if !wait {
			r.mu.Unlock()
			return false
		}
		r.idle, r.parked = true, true
		r.wantN, r.wantBytes = 1, 1
		r.mu.Unlock()
		select {
		case <-r.notify:
		case <-r.drainCh:
			r.mu.Lock()
			r.idle, r.parked = false, false
			r.mu.Unlock()
			return false
		}
	}
}

// handOffBlocks is handOff for the byte queue: the blocks (and the
// messages they hold) move to r.next, whose sink frames the same (see
// close), after what it has queued. They are not held back by its
// bounds: the queue may pass them by what r had queued, once.
func (r *Runner) handOffBlocks() {
	r.mu.Lock()
	move := r.blocks
	r.blocks = nil
	var n int
	var raw int64
	for _, b := range move {
		n += b.n
		raw += b.raw
	}
	r.n, r.ringBytes = 0, 0
	r.bytes.Store(r.bytes.Load() - raw)
	r.mu.Unlock()
	if len(move) > 0 {
		r.next.takeBlocks(move, n, raw)
		r.handedOver.Add(uint64(n))
	}
}

// takeBlocks appends blocks of n messages and raw bytes handed over by
// another runner (handOffBlocks, handBatch) and wakes the run loop. If r
// is closing already (a stop, or a second reload, closed it while the
// old runner finished its write), r's run loop may have drained: the
// blocks go on to the runner r hands over to when it frames the same,
// else they are dropped as "closed", as EnqueueBatch's late messages
// are (appended, they were neither delivered nor counted, and their
// held messages never released).
func (r *Runner) takeBlocks(bs []*block, n int, raw int64) {
	r.gate.RLock()
	if r.closing.Load() {
		r.gate.RUnlock()
		if to := r.forward.Load(); to != nil && r.framedCompatible(to) {
			r.handedOver.Add(uint64(n))
			to.takeBlocks(bs, n, raw)
			return
		}
		r.dropped[dropClosed].Add(uint64(n))
		for _, b := range bs {
			message.ReleaseAll(b.held)
			clear(b.held)
		}
		return
	}
	r.mu.Lock()
	r.blocks = append(r.blocks, bs...)
	r.n += n
	r.ringBytes += raw
	r.bytes.Store(r.bytes.Load() + raw)
	wake := r.idle && !r.nowBusy
	if wake {
		r.idle = false
	}
	r.mu.Unlock()
	r.gate.RUnlock()
	if wake {
		r.wakeRunLoop()
	}
}

// framedCompatible reports whether next can take r's queue as it is: both
// queue messages, or both queue bytes framed the same. A queue of
// messages can always go to a runner that frames them.
func (r *Runner) framedCompatible(next *Runner) bool {
	if r.fr == nil {
		return true
	}
	return next.fr != nil && next.fr.FrameKey() == r.fr.FrameKey()
}
