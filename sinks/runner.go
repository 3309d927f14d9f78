package sinks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"wharf/conf"
	"wharf/message"
	"wharf/metrics"
)

// checkInterval is how often a not-ready sink's Check is called.
const checkInterval = 5 * time.Second

// errorLogInterval is the least time between two write-error log lines of
// one runner; failures in between are counted and reported with the next.
const errorLogInterval = 10 * time.Second

// RunnerConfig tunes a Runner. It is complete: the Runner has no defaults
// of its own (conf.Config.ApplyDefaults is the one place they live, and
// RunnerConfigFrom takes a sink section it has filled in). For runners
// built in code, Resolved fills unset fields the same way.
type RunnerConfig struct {
	// QueueSize bounds messages waiting for the sink (not counting the one
	// batch being written).
	QueueSize int
	// QueueBytes bounds the Raw bytes of queued messages, including the
	// batch being written.
	QueueBytes int64
	// PauseSize and PauseBytes are the lower bounds that apply to
	// blocking producers (TCP and TLS listeners) while the sink is ready:
	// they wait once this many messages or bytes are queued, while
	// non-blocking ones (UDP) may fill the queue to QueueSize/QueueBytes.
	// While the sink is not ready (its last write or check failed), the
	// queue's bounds apply to everyone. At most the queue's bounds. A low
	// mark keeps a saturated stream's latency and working set small.
	PauseSize  int
	PauseBytes int64
	// BatchSize is the most messages per Sink.Write.
	BatchSize int
	// BatchBytes is the most Raw bytes per Sink.Write (a single larger
	// message still goes out, alone).
	BatchBytes int64
	// BatchTimeout, when above zero, is how long a partial batch waits
	// after its first message for more before it is written (a linger).
	// Zero is natural batching: a batch is whatever queued while the
	// previous write was in flight, so an idle sink writes a message as
	// soon as it arrives and a busy one writes full batches.
	BatchTimeout time.Duration
	// RetryBackoff is the first retry delay; it doubles (with jitter) up
	// to RetryMaxBackoff.
	RetryBackoff, RetryMaxBackoff time.Duration
	// MaxRetries is how often a failed batch is retried before it is
	// dropped ("retries_exhausted"); 0 retries until Close.
	MaxRetries int
	// Spool, when set, replaces the memory queue (QueueSize and QueueBytes
	// then do not apply): see Spool. The caller opens it before NewRunner
	// and closes it after Runner.Close.
	Spool Spool
}

// Spool is a durable queue between Enqueue and the sink; sinks/diskbuf's
// Spool implements it. With one, Enqueue stores messages in it and
// releases them at once; the delivery loop Gets batches back and Commits
// each after the sink accepted it (or after it was dropped for good), so
// messages not yet confirmed survive a restart and are delivered again
// (at-least-once). Messages still stored at Close are not lost and are
// not counted as dropped.
type Spool interface {
	// Put stores ms without keeping them and returns how many it stored.
	// With block it may wait for space until ctx is done; without, a full
	// spool stores no more. Running out of space (or of ctx while waiting
	// for it) is not an error: n < len(ms), err nil. An error is a failure
	// to store.
	Put(ctx context.Context, ms []*message.Message, block bool) (int, error)
	// Get waits (until ctx is done) for stored messages and appends up to
	// max of them, about maxBytes, to dst as pooled messages with one
	// reference each. It returns what is already stored even when ctx is
	// done.
	Get(ctx context.Context, dst []*message.Message, max int, maxBytes int64) ([]*message.Message, error)
	// Commit confirms every message Get has returned.
	Commit() error
}

// RunnerConfigFrom takes the runner settings of a sink section whose
// defaults are applied (conf.Load, or conf.Config.ApplyDefaults for a
// config built in code). It adds none of its own.
func RunnerConfigFrom(c *conf.Sink) RunnerConfig {
	return RunnerConfig{
		QueueSize:       c.QueueSize,
		QueueBytes:      int64(c.QueueBytes),
		PauseSize:       c.BackpressureSize,
		PauseBytes:      int64(c.BackpressureBytes),
		BatchSize:       c.BatchSize,
		BatchBytes:      int64(c.BatchBytes),
		BatchTimeout:    c.BatchTimeout.Duration,
		RetryBackoff:    c.RetryBackoff.Duration,
		RetryMaxBackoff: c.RetryMaxBackoff.Duration,
		MaxRetries:      c.MaxRetries,
	}
}

// Resolved returns c with every zero field set as conf sets the unset
// key of a sink section, so a runner built in code (tests, benchmarks)
// gets the same values as one built from a config file.
func (c RunnerConfig) Resolved() RunnerConfig {
	s := &conf.Sink{
		QueueSize:         c.QueueSize,
		QueueBytes:        conf.Size(c.QueueBytes),
		BackpressureSize:  c.PauseSize,
		BackpressureBytes: conf.Size(c.PauseBytes),
		BatchSize:         c.BatchSize,
		BatchBytes:        conf.Size(c.BatchBytes),
		BatchTimeout:      conf.Duration{Duration: c.BatchTimeout},
		RetryBackoff:      conf.Duration{Duration: c.RetryBackoff},
		RetryMaxBackoff:   conf.Duration{Duration: c.RetryMaxBackoff},
		MaxRetries:        c.MaxRetries,
	}
	(&conf.Config{Sinks: map[string]*conf.Sink{"": s}}).ApplyDefaults()
	r := RunnerConfigFrom(s)
	r.Spool = c.Spool
	return r
}

// check reports the first setting a Runner cannot work with: conf's
// validation refuses these in a config file, so one here is a caller that
// skipped ApplyDefaults or Resolved.
func (c RunnerConfig) check() error {
	switch {
	case c.QueueSize < 1 || c.QueueBytes < 1:
		return fmt.Errorf("queue bounds %d messages / %d bytes", c.QueueSize, c.QueueBytes)
	case c.PauseSize < 1 || c.PauseSize > c.QueueSize || c.PauseBytes < 1 || c.PauseBytes > c.QueueBytes:
		return fmt.Errorf("pause mark %d messages / %d bytes for a queue of %d / %d", c.PauseSize, c.PauseBytes, c.QueueSize, c.QueueBytes)
	case c.BatchSize < 1 || c.BatchBytes < 1 || c.BatchTimeout < 0:
		return fmt.Errorf("batch %d messages / %d bytes / %s", c.BatchSize, c.BatchBytes, c.BatchTimeout)
	case c.RetryBackoff <= 0 || c.RetryMaxBackoff < c.RetryBackoff || c.MaxRetries < 0:
		return fmt.Errorf("retry backoff %s..%s, max_retries %d", c.RetryBackoff, c.RetryMaxBackoff, c.MaxRetries)
	}
	return nil
}

// Checker is implemented by sinks that can tell whether their destination
// is reachable without sending (Kafka: metadata request). The Runner calls
// Check at Start and then every few seconds while the sink is not ready.
// Check may run concurrently with Write, never after Close has begun; it
// must give up when ctx is done.
type Checker interface {
	Check(ctx context.Context) error
}

// Prober is implemented by Checker sinks that can notice, while ready and
// idle, that their destination went away (a collector closed its
// connection) and recover what it may have lost. The Runner calls Probe
// every checkInterval while the sink is ready; an error makes it not
// ready, and Check takes over. Probe may run concurrently with Write.
type Prober interface {
	Probe(ctx context.Context) error
}

// Drop reasons, the values of the "reason" label of wharf_sink_dropped_total.
const (
	DropQueueFull        = "queue_full"
	DropRetriesExhausted = "retries_exhausted"
	DropShutdown         = "shutdown"
	DropClosed           = "closed"
	DropSpoolError       = "spool_error"
	DropRejected         = "rejected"
)

var dropReasons = [...]string{DropQueueFull, DropRetriesExhausted, DropShutdown, DropClosed, DropSpoolError, DropRejected}

const (
	dropQueueFull = iota
	dropRetriesExhausted
	dropShutdown
	dropClosed
	dropSpoolError
	dropRejected
)

// RunnerStats is a snapshot of a Runner for the status page.
type RunnerStats struct {
	// Queued and QueuedBytes are waiting or in-flight messages.
	Queued      int
	QueuedBytes int64
	// Sent and SentBytes count delivered messages and their Raw bytes.
	Sent, SentBytes uint64
	// Batches counts successful Writes; WriteErrors failed ones.
	Batches, WriteErrors uint64
	// Dropped counts lost messages by reason (every reason present).
	Dropped map[string]uint64
	// Ready is Runner.Ready.
	Ready bool
	// QueueSize is the queue's capacity in messages (0 with a disk
	// buffer: the spool bounds it), PauseSize the depth at which
	// blocking producers (TCP input) are held back while the sink is
	// ready.
	QueueSize, PauseSize int
	// QueueBytesSize and PauseBytes are the same bounds in bytes: the
	// queue is held back or full at whichever is reached first.
	QueueBytesSize, PauseBytes int64
}

// Runner owns one sink's bounded queue, batching, retries and counters.
//
// Many goroutines (listener event loops, the router) call Enqueue and
// EnqueueBatch concurrently; one goroutine started by Start drains the
// queue and calls Sink.Write, so the sink never sees concurrent Writes.
// Every enqueued message is released exactly once by the Runner.
//
// The queue is a ring under one mutex, so handing over a whole read's
// worth of messages (EnqueueBatch) costs one lock and at most one wake-up
// of the delivery goroutine, which in turn takes up to a batch of
// messages per lock. The delivery goroutine is woken only when what is
// queued completes its batch (or a producer has to wait); a partial batch
// waits BatchTimeout, as before.
type Runner struct {
	name string
	sink Sink
	cfg  RunnerConfig
	log  *slog.Logger
	id   uint64 // FrameID

	// mu guards the ring and the wake-up state below it.
	mu    sync.Mutex
	ring  []*message.Message // QueueSize slots; head is the oldest, n are queued
	head  int
	n     int
	bytes atomic.Int64 // Raw bytes queued or in the batch being written; written under mu
	// ringBytes are the Raw bytes in the ring (not the batch being
	// written); it decides whether a wake-up completes a batch.
	ringBytes int64
	// spaceCh, when not nil, is closed (and cleared) when space frees:
	// producers waiting for room wait on it.
	spaceCh chan struct{}
	// idle is set while the run loop waits for wantN messages or
	// wantBytes bytes; a producer reaching either sends on notify.
	idle      bool
	wantN     int
	wantBytes int64
	notify    chan struct{} // cap 1
	// Immediate delivery (deliverNow): imm is the sink's Immediate side
	// when it has one and the runner neither lingers nor spools. parked
	// is set while the run loop waits with an empty batch; nowBusy while
	// a producer delivers the head of the ring (the run loop takes
	// nothing from the ring then, and producers do not wake it: the
	// producer does when it is done). nowBatch is that producer's batch.
	imm      Immediate
	parked   bool
	nowBusy  bool
	nowBatch []*message.Message
	// The byte queue (framed.go), when fr is set: ring is unused, n and
	// ringBytes count the messages and Raw bytes of blocks (oldest
	// first), free are empty blocks for reuse, and cur is the block the
	// run loop writes (its batch). blockHint is the largest block taken
	// yet, in bytes: the room new blocks start with. keepFree bounds
	// free (recycle).
	fr        Framer
	passOctet bool // fr is an OctetPasser whose PassesOctetFrames is true
	blocks    []*block
	free      []*block
	cur       *block
	blockHint int
	keepFree  int
	closing   atomic.Bool
	closingCh chan struct{} // closed by Close: wakes blocked Enqueues
	drainCh   chan struct{} // closed once no Enqueue can add any more
	// gate is read-held by every Enqueue from its closing check to its
	// return; Close takes it for writing once to wait for them all.
	gate          sync.RWMutex
	ctx           context.Context
	cancel        context.CancelFunc // aborts Writes and backoffs when Close's ctx ends
	done          chan struct{}      // closed when the run loop has exited
	checkDone     chan struct{}
	startOnce     sync.Once
	closeOnce     sync.Once
	closeErr      error
	ready         atomic.Bool
	batch         []*message.Message
	pending       *message.Message // dequeued but did not fit the previous batch
	timer         *time.Timer
	lastLog       time.Time
	suppressed    int
	lastRejectLog time.Time
	// next receives the queue on HandOver; set before draining begins.
	// forward is HandOver's runner for messages enqueued after Close
	// began (late); set before closing.
	next       *Runner
	forward    atomic.Pointer[Runner]
	handedOver *metrics.Counter
	failures   int // consecutive failed Writes
	// spoolGaveUp is set when a buffered runner's write failed after
	// Close began: it stops delivering, the rest stays in the spool.
	spoolGaveUp bool

	// With a Spool: closingCtx ends when Close begins (wakes blocked
	// Puts), drainCtx once no Enqueue can add any more (stops Get waiting).
	closingCtx, drainCtx       context.Context
	closingCancel, drainCancel context.CancelFunc
	// spoolLog (unix nanoseconds) and spoolSuppressed rate-limit the
	// spool_error line: Put runs on many goroutines, per read.
	spoolLog        atomic.Int64
	spoolSuppressed atomic.Uint64

	sent, sentBytes, batches, writeErrors *metrics.Counter
	dropped                               [len(dropReasons)]*metrics.Counter
	readyGauge                            *metrics.Gauge
	writeTime, delay                      *metrics.Histogram
}

// Histogram buckets, in seconds. A batch write takes from tens of
// microseconds (a file) to seconds (Kafka with acks=all under load, a
// timeout); delivery delay also spans queueing and retries, up to minutes
// in an outage.
var (
	writeBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
	delayBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300}
)

// NewRunner wraps s. It registers the runner's series in reg (a nil reg
// gets a private registry) and does not start anything; call Start. log
// should already carry the sink name (log.With("sink", name)); nil means
// slog.Default().
//
// cfg must be complete (see RunnerConfig); NewRunner panics on settings
// no config file can produce, such as a zero queue.
func NewRunner(name string, s Sink, cfg RunnerConfig, reg *metrics.Registry, log *slog.Logger) *Runner {
	if err := cfg.check(); err != nil {
		panic(fmt.Sprintf("sinks: NewRunner(%q): incomplete RunnerConfig: %v (use RunnerConfigFrom on a sink with defaults applied, or RunnerConfig.Resolved)", name, err))
	}
	if reg == nil {
		reg = metrics.NewRegistry()
	}
	if log == nil {
		log = slog.Default()
	}
	r := &Runner{
		name:      name,
		sink:      s,
		cfg:       cfg,
		log:       log,
		id:        runnerIDs.Add(1),
		ring:      make([]*message.Message, cfg.QueueSize),
		notify:    make(chan struct{}, 1),
		closingCh: make(chan struct{}),
		drainCh:   make(chan struct{}),
		done:      make(chan struct{}),
		checkDone: make(chan struct{}),
		batch:     make([]*message.Message, 0, cfg.BatchSize),
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.closingCtx, r.closingCancel = context.WithCancel(context.Background())
	r.drainCtx, r.drainCancel = context.WithCancel(context.Background())
	if cfg.Spool != nil {
		r.ring = nil // unused: the spool is the queue
	}
	if fr, ok := s.(Framer); ok && cfg.Spool == nil && cfg.BatchTimeout == 0 && fr.Framed() {
		r.fr = fr
		r.ring = nil
		r.keepFree = spareBlocks(r.cfg)
		if p, ok := fr.(OctetPasser); ok {
			r.passOctet = p.PassesOctetFrames()
		}
	}
	if imm, ok := s.(Immediate); ok && cfg.Spool == nil && cfg.BatchTimeout == 0 {
		r.imm = imm
		r.nowBatch = make([]*message.Message, 0, immediateMax)
	}
	l := []string{"sink", name}
	r.sent = reg.Counter("wharf_sink_sent_total", "Messages delivered by the sink.", l...)
	r.handedOver = reg.Counter("wharf_sink_handed_over_total", "Queued messages moved to the sink's new runner when a reload changed its settings.", l...)
	r.sentBytes = reg.Counter("wharf_sink_sent_bytes_total", "Raw bytes of messages delivered by the sink.", l...)
	r.batches = reg.Counter("wharf_sink_batches_total", "Batches written successfully.", l...)
	r.writeErrors = reg.Counter("wharf_sink_write_errors_total", "Failed batch writes (each retry counts).", l...)
	for i, reason := range dropReasons {
		r.dropped[i] = reg.Counter("wharf_sink_dropped_total", "Messages lost by the sink, by reason.", "sink", name, "reason", reason)
	}
	reg.GaugeFunc("wharf_sink_queue_messages", "Messages waiting in the sink queue.",
		func() float64 { return float64(r.queued()) }, l...)
	reg.GaugeFunc("wharf_sink_queue_bytes", "Raw bytes queued or being written by the sink.",
		func() float64 { return float64(r.bytes.Load()) }, l...)
	r.readyGauge = reg.Gauge("wharf_sink_ready", "1 when the sink's last write (or check) succeeded.", l...)
	r.writeTime = reg.Histogram("wharf_sink_write_duration_seconds", "Time of each batch write to the sink (every attempt, failed ones included).", writeBuckets, l...)
	r.delay = reg.Histogram("wharf_sink_delivery_delay_seconds", "From receipt at a frontend to the sink confirming the write, of the oldest message of each delivered batch (the batch's worst: one observation per batch, not per message, so the relay path pays one clock read per batch).", delayBuckets, l...)
	r.setReady(true)
	return r
}

// Name returns the sink name the runner was created with.
func (r *Runner) Name() string { return r.name }

// Sink returns the wrapped sink (for sink-specific control such as the
// file sink's Reopen).
func (r *Runner) Sink() Sink { return r.sink }

// Start launches the delivery goroutine and, for a Checker sink, the
// readiness checks. Calling it again does nothing.
func (r *Runner) Start() {
	r.startOnce.Do(func() {
		if c, ok := r.sink.(Checker); ok {
			r.setReady(r.check(c) == nil)
			go r.checkLoop(c)
		} else {
			close(r.checkDone)
		}
		switch {
		case r.cfg.Spool != nil:
			go r.runSpool()
		case r.fr != nil:
			go r.runFramed()
		default:
			go r.run()
		}
	})
}

// Enqueue hands m to the runner, which takes over one reference and
// releases it exactly once (after delivery, drop or failure). With block
// it waits for queue space (backpressure for TCP listeners) until Close
// begins; without, a full queue (messages or bytes) drops m, counted as
// "queue_full". After Close has begun m is dropped as "closed". It
// reports whether m was queued. Safe for concurrent use; it allocates
// nothing and takes one lock. Prefer EnqueueBatch for several messages.
func (r *Runner) Enqueue(m *message.Message, block bool) bool {
	r.gate.RLock()
	if r.closing.Load() {
		r.gate.RUnlock()
		ms := [1]*message.Message{m}
		return r.late(ms[:], block) == 1
	}
	var queued, next int
	if r.cfg.Spool != nil {
		ms := [1]*message.Message{m}
		queued, next = r.put(ms[:], block)
	} else if r.fr != nil {
		ms := [1]*message.Message{m}
		queued, next = r.enqueueFramed(ms[:], block)
	} else {
		ms := [1]*message.Message{m} // does not escape: enqueue keeps no slice
		queued, next = r.enqueue(ms[:], block)
	}
	r.gate.RUnlock()
	if next == 0 { // Close began while it waited for room
		ms := [1]*message.Message{m}
		return r.late(ms[:], block) == 1
	}
	return queued == 1
}

// EnqueueBatch is Enqueue for several messages, in order: it takes the
// queue's lock once for all that fit and wakes the delivery goroutine at
// most once. It returns how many were queued; the rest were dropped and
// released (with block, only Close makes it drop). ms is not retained:
// the caller may reuse it once EnqueueBatch returns, but not read its
// elements (a byte queue reuses them; they are the runner's references).
// Safe for concurrent use; it allocates nothing unless it has to wait
// for space.
func (r *Runner) EnqueueBatch(ms []*message.Message, block bool) (queued int) {
	r.gate.RLock()
	if r.closing.Load() {
		r.gate.RUnlock()
		return r.late(ms, block)
	}
	var next int
	switch {
	case r.cfg.Spool != nil:
		queued, next = r.put(ms, block)
	case r.fr != nil:
		queued, next = r.enqueueFramed(ms, block)
	default:
		queued, next = r.enqueue(ms, block)
	}
	r.gate.RUnlock()
	if next < len(ms) { // Close began while it waited for room
		queued += r.late(ms[next:], block)
	}
	return queued
}

// late takes messages that reach r after Close began: a producer that
// loaded the route table before a reload swapped it may still hold r, or
// was waiting for room in r when Close began. On
// HandOver they go on to the new runner (counted as handed over), else
// they are dropped as "closed". It runs outside the gate, so Close does
// not wait for the new runner to have room.
func (r *Runner) late(ms []*message.Message, block bool) int {
	if to := r.forward.Load(); to != nil {
		r.handedOver.Add(uint64(len(ms)))
		return to.EnqueueBatch(ms, block)
	}
	r.dropAll(ms, dropClosed)
	return 0
}

// put stores ms in the spool and releases them, confirmed unless Put
// reported an error (stored but not made durable); what it could not store
// is dropped: "closed" once Close has begun, "queue_full" when the spool
// is full, "spool_error" when it could not be written and the message
// cannot wait (UDP, or on_full = "drop_newest"; logged at most once per
// errorLogInterval: the spool logs its own state). When Close began while
// it waited for room, it returns next < len(ms): ms[next:] are left to the
// caller (for late), neither stored nor released.
func (r *Runner) put(ms []*message.Message, block bool) (n, next int) {
	n, err := r.cfg.Spool.Put(r.closingCtx, ms, block)
	next = len(ms)
	reason := dropQueueFull
	switch {
	case n == len(ms):
		if err != nil { // stored, not durable (a failed fsync): not confirmed below
			r.logSpoolError(err, 0)
		}
	case r.closing.Load():
		next = n
	case err != nil:
		reason = dropSpoolError
		r.logSpoolError(err, len(ms)-n)
	}
	for i, m := range ms[:next] {
		if i < n {
			if err == nil {
				m.Confirm() // stored on disk: durable, as far as the sender is concerned
			}
			m.Release()
		} else {
			r.drop(m, reason)
		}
	}
	return n, next
}

// logSpoolError logs a failed Put at most once per errorLogInterval, with
// the messages dropped since the last line.
func (r *Runner) logSpoolError(err error, dropped int) {
	now := time.Now().UnixNano()
	last := r.spoolLog.Load()
	if now-last < int64(errorLogInterval) || !r.spoolLog.CompareAndSwap(last, now) {
		r.spoolSuppressed.Add(uint64(dropped))
		return
	}
	dropped += int(r.spoolSuppressed.Swap(0))
	r.log.Error("spool write failed; messages that cannot wait are dropped (wharf_sink_dropped_total{reason=\"spool_error\"}), stored ones whose fsync failed are not confirmed to their sender", "error", err, "dropped", dropped, "log_every", errorLogInterval.String())
}

// enqueue appends ms to the ring in order. Without block a message that
// does not fit is dropped ("queue_full") and the next one tried; with
// block it waits for space. When Close begins meanwhile it returns
// next < len(ms): ms[next:] are left to the caller (for late).
func (r *Runner) enqueue(ms []*message.Message, block bool) (queued, next int) {
	i := 0
	for {
		r.mu.Lock()
		n := r.pushFitting(ms[i:], block)
		i, queued = i+n, queued+n
		for ; i < len(ms); i++ {
			m := ms[i]
			if !r.fits(int64(len(m.Raw)), block) {
				if block {
					break
				}
				r.dropped[dropQueueFull].Inc()
				m.Release()
				continue
			}
			r.push(m)
			queued++
		}
		if i == len(ms) {
			if r.imm != nil && r.parked && !r.nowBusy && r.n <= immediateMax && r.ringBytes <= immediateBytes && r.ready.Load() {
				r.deliverNow() // unlocks mu
				return queued, i
			}
			wake := r.idle && !r.nowBusy && (r.n >= r.wantN || r.ringBytes >= r.wantBytes || r.n == len(r.ring))
			if wake {
				r.idle = false
			}
			r.mu.Unlock()
			if wake {
				r.wakeRunLoop()
			}
			return queued, i
		}
		if !r.awaitRoom(r.leaveFull()) {
			return queued, i
		}
	}
}

// leaveFull is for a producer the queue has no room for, with mu held:
// it unlocks mu and returns what to wait on for space, and whether the
// run loop waits for a batch to complete (it is woken, to take what is
// queued). The producer may do its own work before awaitRoom.
func (r *Runner) leaveFull() (space chan struct{}, wake bool) {
	if r.spaceCh == nil {
		r.spaceCh = make(chan struct{})
	}
	space, wake = r.spaceCh, r.idle
	r.idle = false
	r.mu.Unlock()
	return space, wake
}

// awaitRoom wakes the run loop if leaveFull said so and waits for space:
// true, or false once Close began.
func (r *Runner) awaitRoom(space chan struct{}, wake bool) bool {
	if wake {
		r.wakeRunLoop()
	}
	select {
	case <-space:
		return true
	case <-r.closingCh:
		return false
	}
}

// fits reports whether a message of size bytes fits the queue: for a
// blocking (stream) producer below the pause mark while the sink is
// ready, else below the queue's bounds. The pause mark only keeps a busy
// but healthy sink's queue short; while the sink fails (an outage), the
// whole queue is there to ride it out before senders are held back. A
// message larger than the bound still passes an empty queue, or it could
// never be sent. Called with mu held.
func (r *Runner) fits(size int64, block bool) bool {
	limN, limB := r.limits(block)
	if r.n >= limN {
		return false
	}
	cur := r.bytes.Load()
	return cur == 0 || cur+size <= limB
}

// push appends m to the ring; the caller checked fits. Called with mu held.
func (r *Runner) push(m *message.Message) {
	i := r.head + r.n
	if i >= len(r.ring) {
		i -= len(r.ring)
	}
	r.ring[i] = m
	r.n++
	size := int64(len(m.Raw))
	r.ringBytes += size
	r.bytes.Store(r.bytes.Load() + size)
}

// limits returns the queue's bounds for a producer (see fits): the pause
// mark for a blocking one while the sink is ready, else the queue's size.
func (r *Runner) limits(block bool) (msgs int, bytes int64) {
	if block && r.ready.Load() {
		return r.cfg.PauseSize, r.cfg.PauseBytes
	}
	return r.cfg.QueueSize, r.cfg.QueueBytes
}

// pushFitting pushes the longest prefix of ms that fits the queue (see
// fits) at once and returns its length: one bounds check and one store
// of r.bytes per read instead of one per message (an atomic store is a
// locked XCHG on amd64). Called with mu held.
func (r *Runner) pushFitting(ms []*message.Message, block bool) int {
	limN, limB := r.limits(block)
	n := min(len(ms), limN-r.n)
	cur := r.bytes.Load()
	var size int64
	k := 0
	for ; k < n; k++ {
		sz := int64(len(ms[k].Raw))
		if cur+size != 0 && cur+size+sz > limB {
			break
		}
		size += sz
	}
	if k == 0 {
		return 0
	}
	tail := r.head + r.n
	if tail >= len(r.ring) {
		tail -= len(r.ring)
	}
	c := copy(r.ring[tail:], ms[:k])
	copy(r.ring, ms[c:k])
	r.n += k
	r.ringBytes += size
	r.bytes.Store(cur + size)
	return k
}

// pop removes the oldest message from the ring (n > 0). Its bytes stay
// counted in r.bytes until the batch is finished. Called with mu held.
func (r *Runner) pop() *message.Message {
	m := r.ring[r.head]
	r.ring[r.head] = nil
	r.head++
	if r.head == len(r.ring) {
		r.head = 0
	}
	r.n--
	r.ringBytes -= int64(len(m.Raw))
	return m
}

// spaceFreed wakes the producers waiting for room. Called with mu held.
func (r *Runner) spaceFreed() {
	if r.spaceCh != nil {
		close(r.spaceCh)
		r.spaceCh = nil
	}
}

// wakeRunLoop signals the delivery goroutine (the signal is kept if it is
// not waiting yet).
func (r *Runner) wakeRunLoop() {
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

// queued is how many messages wait in the ring.
func (r *Runner) queued() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

func (r *Runner) dropAll(ms []*message.Message, reason int) {
	if len(ms) == 0 {
		return
	}
	r.dropped[reason].Add(uint64(len(ms)))
	for _, m := range ms {
		m.Release()
	}
}

func (r *Runner) drop(m *message.Message, reason int) {
	r.dropped[reason].Inc()
	m.Release()
}

// Close stops accepting messages (later Enqueues drop them as "closed"),
// delivers what is queued until ctx is done, counts what is left as
// dropped ("shutdown"), then closes the sink and returns its error.
// Further calls return the first call's result.
func (r *Runner) Close(ctx context.Context) error {
	return r.close(ctx, nil)
}

// HandOver closes r like Close, but moves what is still queued to next
// instead of delivering it to r's sink: the reload path for a sink whose
// settings changed, so its queue follows it to the new runner. A batch
// already being written finishes on r's sink first; if that write fails,
// the batch goes to next ahead of the queue (handBatch). next must be started;
// the moved messages keep their order and wait for room in next (they
// are not dropped for lack of it while ctx lasts). Messages enqueued on r
// after HandOver began go to next too (see late). With a Spool, the
// queue is the spool and stays where it is: r stops delivering from it
// as Close does, and only the late messages go to next.
func (r *Runner) HandOver(ctx context.Context, next *Runner) error {
	return r.close(ctx, next)
}

// handOff moves the queue to r.next (see HandOver). Runs on the run loop
// once draining began: nothing is added to r any more.
func (r *Runner) handOff() {
	move := r.batch[:0]
	if m := r.pending; m != nil {
		r.pending = nil
		move = append(move, m)
	}
	r.mu.Lock()
	for r.n > 0 {
		move = append(move, r.pop())
	}
	r.mu.Unlock()
	var size int64
	for _, m := range move {
		size += int64(len(m.Raw))
	}
	r.mu.Lock()
	r.bytes.Store(r.bytes.Load() - size)
	r.mu.Unlock()
	r.next.EnqueueBatch(move, true)
	r.handedOver.Add(uint64(len(move)))
	clear(move)
	r.batch = move[:0]
}

func (r *Runner) close(ctx context.Context, next *Runner) error {
	r.closeOnce.Do(func() {
		if next != nil {
			if r.cfg.Spool == nil && r.framedCompatible(next) {
				r.next = next
			}
			r.forward.Store(next) // before closing: late() sees it
		}
		r.Start()
		r.closing.Store(true)
		close(r.closingCh)
		r.closingCancel()
		// Wait for Enqueues that passed the closing check: after this,
		// nothing can be added to the queue and the run loop may drain it.
		// They cannot block: every wait in enqueue also selects closingCh.
		r.gate.Lock()
		close(r.drainCh)
		r.drainCancel()
		r.gate.Unlock()
		select {
		case <-r.done:
		case <-ctx.Done():
			r.cancel()
			<-r.done
		}
		r.cancel()
		<-r.checkDone
		if err := r.sink.Close(); err != nil {
			r.closeErr = err
		}
	})
	return r.closeErr
}

// Ready reports whether the sink works as far as the runner knows: false
// after a failed Write (until one succeeds) or while a Checker sink's
// Check fails.
func (r *Runner) Ready() bool { return r.ready.Load() }

// Stats returns a snapshot of the counters.
func (r *Runner) Stats() RunnerStats {
	st := RunnerStats{
		Queued:      r.queued(),
		QueuedBytes: r.bytes.Load(),
		Sent:        r.sent.Load(),
		SentBytes:   r.sentBytes.Load(),
		Batches:     r.batches.Load(),
		WriteErrors: r.writeErrors.Load(),
		Dropped:     make(map[string]uint64, len(dropReasons)),
		Ready:       r.Ready(),
		PauseSize:   r.cfg.PauseSize,
		PauseBytes:  r.cfg.PauseBytes,
	}
	if r.cfg.Spool == nil {
		st.QueueSize, st.QueueBytesSize = r.cfg.QueueSize, r.cfg.QueueBytes
	}
	for i, reason := range dropReasons {
		st.Dropped[reason] = r.dropped[i].Load()
	}
	return st
}

func (r *Runner) setReady(ok bool) {
	was := r.ready.Swap(ok)
	if ok {
		r.readyGauge.Set(1)
	} else {
		r.readyGauge.Set(0)
	}
	if was && !ok {
		// Producers paused at the pause mark may now use the whole queue
		// (see fits): wake them.
		r.mu.Lock()
		r.spaceFreed()
		r.mu.Unlock()
	}
}

func (r *Runner) check(c Checker) error {
	ctx, cancel := context.WithTimeout(r.ctx, checkInterval)
	defer cancel()
	err := c.Check(ctx)
	if err != nil {
		r.log.Warn("sink not ready", "error", err)
	}
	return err
}

func (r *Runner) probe(p Prober) error {
	ctx, cancel := context.WithTimeout(r.ctx, checkInterval)
	defer cancel()
	err := p.Probe(ctx)
	if err != nil {
		r.log.Warn("sink not ready", "error", err)
	}
	return err
}

func (r *Runner) checkLoop(c Checker) {
	defer close(r.checkDone)
	t := time.NewTicker(checkInterval)
	defer t.Stop()
	for {
		select {
		case <-r.closingCh:
			return
		case <-t.C:
			if !r.Ready() {
				if r.check(c) == nil {
					r.setReady(true)
				}
			} else if p, ok := c.(Prober); ok {
				if err := r.probe(p); err != nil {
					r.setReady(false)
				}
			}
		}
	}
}

// run is the delivery loop: collect a batch, write it (with retries),
// release it; after drainCh, empty the queue the same way and exit.
func (r *Runner) run() {
	defer close(r.done)
	r.timer = time.NewTimer(time.Hour)
	r.timer.Stop()
	for {
		if !r.collect() {
			break
		}
		r.flush()
	}
	// Draining: nothing is added any more.
	if r.next != nil {
		r.handOff()
		return
	}
	for {
		r.collectNow()
		if len(r.batch) == 0 {
			return
		}
		r.flush()
	}
}

// runSpool is the delivery loop with a Spool: get a batch, write it (with
// retries), commit it. Once draining begins it delivers what is stored
// until the spool is empty, Close's deadline passes or a write fails;
// what is left stays in the spool for the next start.
func (r *Runner) runSpool() {
	defer close(r.done)
	backoff := r.cfg.RetryBackoff
	for r.ctx.Err() == nil {
		var err error
		r.batch, err = r.cfg.Spool.Get(r.drainCtx, r.batch[:0], r.cfg.BatchSize, r.cfg.BatchBytes)
		if len(r.batch) > 0 {
			backoff = r.cfg.RetryBackoff
			r.flush()
			if r.spoolGaveUp {
				return // the rest stays in the spool (see flush)
			}
			continue
		}
		if r.drainCtx.Err() != nil {
			return
		}
		// A read error: the spool is still there, try again later.
		r.log.Error("spool read failed; retrying", "error", err, "retry_in", backoff)
		select {
		case <-time.After(backoff):
		case <-r.drainCh:
		}
		backoff = min(backoff*2, r.cfg.RetryMaxBackoff)
	}
}

// add appends m to the batch unless it would exceed BatchBytes, in which
// case m is kept for the next batch. It reports whether the batch has room
// for more.
func (r *Runner) add(m *message.Message, size *int64) bool {
	n := int64(len(m.Raw))
	if len(r.batch) > 0 && *size+n > r.cfg.BatchBytes {
		r.pending = m
		return false
	}
	r.batch = append(r.batch, m)
	*size += n
	return len(r.batch) < r.cfg.BatchSize && *size < r.cfg.BatchBytes
}

// collect fills r.batch: it waits for a first message, then takes what is
// queued (natural batching) or, with a BatchTimeout, more until the batch
// is full or BatchTimeout has passed. It returns false,
// with an empty batch, when draining begins.
func (r *Runner) collect() bool {
	r.batch = r.batch[:0]
	select {
	case <-r.drainCh: // HandOver moves the rest; Close drains it below
		return false
	default:
	}
	var size int64
	if m := r.pending; m != nil {
		r.pending = nil
		if !r.add(m, &size) {
			return true
		}
	}
	armed := false
	defer func() {
		if armed {
			r.timer.Stop()
		}
	}()
	linger := r.cfg.BatchTimeout > 0
	for {
		r.mu.Lock()
		r.idle = false // a stale wake-up may have brought us here
		r.parked = false
		full := false
		if !r.nowBusy { // else a producer is writing the head of the ring
			full = r.take(&size)
		}
		// Without a linger a batch is what has accumulated by now: the
		// first message on an idle sink leaves at once, and what arrives
		// while that write is in flight forms the next batch.
		ready := full || (len(r.batch) > 0 && !linger)
		if !ready {
			// Sleep until producers can complete the batch (or one waits).
			r.idle = true
			r.wantN = r.cfg.BatchSize - len(r.batch)
			r.wantBytes = r.cfg.BatchBytes - size
			if len(r.batch) == 0 {
				r.wantN, r.wantBytes = 1, 1
				r.parked = true
			}
		}
		r.mu.Unlock()
		if ready {
			return true
		}
		if len(r.batch) == 0 {
			select {
			case <-r.notify:
				continue
			case <-r.drainCh:
				r.mu.Lock()
				r.idle, r.parked = false, false
				r.mu.Unlock()
				return false
			}
		}
		if !armed {
			r.timer.Reset(r.cfg.BatchTimeout)
			armed = true
		}
		select {
		case <-r.notify:
			continue
		case <-r.timer.C:
			armed = false
		case <-r.drainCh:
		}
		// Take what came since without waiting any longer.
		r.mu.Lock()
		r.idle = false
		r.take(&size)
		r.mu.Unlock()
		return true
	}
}

// take moves queued messages into r.batch until it is full or the ring
// is empty, and reports whether the batch is full. Called with mu held.
func (r *Runner) take(size *int64) (full bool) {
	if r.n == 0 {
		return false
	}
	defer r.spaceFreed()
	for r.n > 0 {
		// The ring's messages up to its end or the tail, taken with
		// one copy: the same choices as add per message.
		run := r.ring[r.head:min(r.head+r.n, len(r.ring))]
		var got int64
		k, pend, stop := 0, false, false
		for k < len(run) {
			n := int64(len(run[k].Raw))
			if len(r.batch)+k > 0 && *size+got+n > r.cfg.BatchBytes {
				pend = true // for the next batch
				break
			}
			got += n
			k++
			if len(r.batch)+k >= r.cfg.BatchSize || *size+got >= r.cfg.BatchBytes {
				stop = true
				break
			}
		}
		r.batch = append(r.batch, run[:k]...)
		*size += got
		if pend {
			r.pending = run[k]
			got += int64(len(run[k].Raw))
			k++
		}
		clear(run[:k])
		if r.head += k; r.head == len(r.ring) {
			r.head = 0
		}
		r.n -= k
		r.ringBytes -= got
		if pend || stop {
			return true
		}
	}
	return false
}

// Immediate delivery bounds: a producer writes the queue itself only
// while it is this short (light load); more goes to the run loop, whose
// batches are larger.
const (
	immediateMax   = 16
	immediateBytes = 16 << 10
)

// deliverNow hands the queued messages (a few; the run loop waits with an
// empty batch) to the sink's Immediate side on the calling producer's
// goroutine, saving the run loop's wake-up: a message reaching an idle
// sink leaves within the producer's own turn, as in a relay that reads
// and writes on one thread. The messages stay in the ring while the sink
// writes them, so if it declines they are the run loop's, in order, with
// nothing to undo. Called with mu held; returns with it released.
func (r *Runner) deliverNow() {
	r.nowBusy = true
	batch := r.nowBatch[:0]
	for k, i := 0, r.head; k < r.n; k++ {
		batch = append(batch, r.ring[i])
		if i++; i == len(r.ring) {
			i = 0
		}
	}
	size := r.ringBytes
	r.mu.Unlock()

	t0 := time.Now()
	ok := r.imm.WriteNow(batch)
	t1 := time.Now()

	r.mu.Lock()
	if ok {
		for range batch { // still the head: nothing else takes from the ring meanwhile
			r.pop()
		}
		r.bytes.Store(r.bytes.Load() - size)
		r.spaceFreed()
	}
	r.mu.Unlock()
	if ok {
		r.writeTime.Observe(t1.Sub(t0).Seconds())
		r.delivered(batch, nil, size, t1)
		message.ReleaseAll(batch)
	}
	clear(batch)

	r.mu.Lock()
	r.nowBusy = false         // nowBatch is free again
	wake := r.n > 0 && r.idle // declined, or more came meanwhile
	if wake {
		r.idle = false
	}
	r.mu.Unlock()
	if wake {
		r.wakeRunLoop()
	}
}

// collectNow fills r.batch from what is queued, without waiting.
func (r *Runner) collectNow() {
	r.batch = r.batch[:0]
	var size int64
	if m := r.pending; m != nil {
		r.pending = nil
		if !r.add(m, &size) {
			return
		}
	}
	r.mu.Lock()
	r.take(&size)
	r.mu.Unlock()
}

// flush writes r.batch until it succeeds, retries run out or the runner is
// cancelled, then releases every message in it.
func (r *Runner) flush() {
	size := r.batchBytes()
	if r.ctx.Err() != nil {
		// Close's deadline has passed: what is left is not even tried.
		r.finish(dropShutdown, size)
		return
	}
	backoff := r.cfg.RetryBackoff
	for attempt := 0; ; attempt++ {
		t0 := time.Now()
		err := r.write()
		t1 := time.Now()
		r.writeTime.Observe(t1.Sub(t0).Seconds())
		var rej *RejectedError
		if r.cur == nil && errors.As(err, &rej) && len(rej.Indexes) <= len(r.batch) {
			// Delivered but for a few the destination refuses for good.
			r.dropped[dropRejected].Add(uint64(len(rej.Indexes)))
			if now := time.Now(); now.Sub(r.lastRejectLog) >= errorLogInterval {
				r.lastRejectLog = now
				r.log.Error("destination refused messages for good; dropped (wharf_sink_dropped_total{reason=\"rejected\"})", "error", err, "rejected", len(rej.Indexes), "batch", len(r.batch))
			}
			r.delivered(r.batch, rej.Indexes, size, t1)
			r.setReady(true)
			r.finish(dropReasonNone, size)
			return
		}
		if err == nil {
			if r.cur != nil {
				r.deliveredBlock(r.cur, t1)
			} else {
				r.delivered(r.batch, nil, size, t1)
			}
			if r.failures > 0 {
				r.log.Info("sink recovered", "failed_writes", r.failures)
				r.failures = 0
				r.lastLog = time.Time{}
			}
			r.setReady(true)
			r.finish(dropReasonNone, size)
			return
		}
		r.writeErrors.Inc()
		r.failures++
		r.setReady(false)
		if r.handingOver() {
			// A reload gave the sink a new runner: the batch goes there,
			// first, rather than wait for this runner's destination.
			r.handBatch(size)
			return
		}
		if r.ctx.Err() != nil {
			r.finish(dropShutdown, size)
			return
		}
		if r.cfg.MaxRetries > 0 && attempt >= r.cfg.MaxRetries {
			r.logError(err, 0, true)
			r.finish(dropRetriesExhausted, size)
			return
		}
		wait := jitter(backoff)
		r.logError(err, wait, false)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-r.drainCh: // a Close or HandOver began (or had)
			if r.next != nil {
				t.Stop()
				r.handBatch(size)
				return
			}
			if r.cfg.Spool != nil {
				// What a buffered sink has not delivered stays on disk
				// for the next start: waiting out Close's deadline for a
				// destination that fails gains nothing, and held a stop
				// (a restart during an outage) for all of
				// shutdown_timeout with the listeners already closed.
				t.Stop()
				r.spoolGaveUp = true
				r.finish(dropShutdown, size)
				return
			}
			select { // a Close: its drain retries here as before
			case <-t.C:
			case <-r.ctx.Done():
				t.Stop()
				r.finish(dropShutdown, size)
				return
			}
		case <-r.ctx.Done():
			t.Stop()
			r.finish(dropShutdown, size)
			return
		}
		backoff = min(backoff*2, r.cfg.RetryMaxBackoff)
	}
}

const dropReasonNone = -1

// batchBytes is the Raw bytes of the batch flush writes: r.batch, or the
// byte queue's block.
func (r *Runner) batchBytes() int64 {
	if r.cur != nil {
		return r.cur.raw
	}
	var size int64
	for _, m := range r.batch {
		size += int64(len(m.Raw))
	}
	return size
}

// write is one attempt of flush: the batch to Write, or the block to
// WriteFramed (whose storage the sink may keep, giving other back).
func (r *Runner) write() error {
	if b := r.cur; b != nil {
		reuse, err := r.fr.WriteFramed(r.ctx, b.b)
		if err == nil {
			b.b = reuse[:0]
		}
		return err
	}
	return r.sink.Write(r.ctx, r.batch)
}

// handingOver reports whether a HandOver began (see handOff): the run
// loop may read r.next once drainCh is closed.
func (r *Runner) handingOver() bool {
	select {
	case <-r.drainCh:
		return r.next != nil
	default:
		return false
	}
}

// handBatch gives the batch whose write failed to the runner a HandOver
// moves r's queue to, ahead of the queue (handOff follows), instead of
// retrying it on r's sink or dropping it when Close's deadline passes:
// with the old destination down, a reload that changed the sink lost that
// batch.
func (r *Runner) handBatch(size int64) {
	if b := r.cur; b != nil {
		r.cur = nil
		r.mu.Lock()
		r.bytes.Store(r.bytes.Load() - size)
		r.mu.Unlock()
		// b is the next runner's once taken: it may write and recycle it
		// (n = 0) before takeBlocks returns, so n is read before.
		n := b.n
		r.next.takeBlocks([]*block{b}, n, b.raw)
		r.handedOver.Add(uint64(n))
		return
	}
	r.next.EnqueueBatch(r.batch, true)
	r.handedOver.Add(uint64(len(r.batch)))
	r.emptyBatch(size)
}

// emptyBatch empties r.batch, whose messages were released or passed on,
// and gives its size bytes back to the queue's room.
func (r *Runner) emptyBatch(size int64) {
	clear(r.batch)
	r.batch = r.batch[:0]
	r.mu.Lock()
	r.bytes.Store(r.bytes.Load() - size)
	r.spaceFreed()
	r.mu.Unlock()
}

// delivered accounts for a batch the sink took at t: its messages sent
// but those at the rejected indexes, its bytes, the batch, the delay of
// its oldest message, and each message confirmed (see confirm). The
// caller releases the messages.
func (r *Runner) delivered(batch []*message.Message, rejected []int, size int64, t time.Time) {
	r.observeDelay(batch, t)
	r.sent.Add(uint64(len(batch) - len(rejected)))
	r.sentBytes.Add(uint64(size))
	r.batches.Inc()
	confirm(batch, rejected)
}

// observeDelay records how long the batch's oldest message took from
// receipt to delivery at now. Messages without a receive time (made by
// tests or other code than a frontend) are not counted.
func (r *Runner) observeDelay(batch []*message.Message, now time.Time) {
	if len(batch) == 0 || batch[0].Received == 0 {
		return
	}
	r.delay.Observe(max(float64(now.UnixNano()-batch[0].Received)/1e9, 0))
}

// confirm tells the messages of a delivered batch, but those at the
// rejected indexes, that this sink is done with them (Message.Confirm:
// the RELP input acknowledges a message once every sink confirmed it).
func confirm(batch []*message.Message, rejected []int) {
	for i, m := range batch {
		if m.Ack != nil && !slices.Contains(rejected, i) {
			m.Confirm()
		}
	}
}

// finish releases the batch, counting it as dropped for reason unless
// reason is dropReasonNone, and frees its queue bytes.
func (r *Runner) finish(reason int, size int64) {
	if r.cfg.Spool != nil {
		r.finishSpool(reason)
		return
	}
	if b := r.cur; b != nil {
		r.cur = nil
		if reason != dropReasonNone {
			r.dropped[reason].Add(uint64(b.n))
		}
		message.ReleaseAll(b.held)
		r.mu.Lock()
		r.bytes.Store(r.bytes.Load() - size)
		r.recycle(b)
		r.spaceFreed()
		r.mu.Unlock()
		return
	}
	if reason != dropReasonNone {
		r.dropped[reason].Add(uint64(len(r.batch)))
	}
	message.ReleaseAll(r.batch)
	r.emptyBatch(size)
}

// finishSpool releases the batch and, unless it was cut short by
// shutdown (then it stays in the spool and is not lost), commits it.
func (r *Runner) finishSpool(reason int) {
	if reason != dropShutdown {
		if reason != dropReasonNone {
			r.dropped[reason].Add(uint64(len(r.batch)))
		}
		if err := r.cfg.Spool.Commit(); err != nil {
			r.log.Error("spool commit failed; these messages may be delivered again after a restart", "error", err)
		}
	}
	for i, m := range r.batch {
		m.Release()
		r.batch[i] = nil
	}
	r.batch = r.batch[:0]
}

// jitter spreads d over [d/2, d) so many runners do not retry in step.
func jitter(d time.Duration) time.Duration {
	if d < 2 {
		return d
	}
	return d/2 + time.Duration(rand.Int64N(int64(d/2)))
}

// logError logs a failed Write at most once per errorLogInterval, with the
// number of failures suppressed since the last line.
func (r *Runner) logError(err error, wait time.Duration, gaveUp bool) {
	now := time.Now()
	if !gaveUp && !r.lastLog.IsZero() && now.Sub(r.lastLog) < errorLogInterval {
		r.suppressed++
		return
	}
	r.lastLog = now
	args := []any{"error", err, "batch", len(r.batch), "failed_writes", r.failures, "suppressed", r.suppressed}
	r.suppressed = 0
	if gaveUp {
		r.log.Error("sink write failed; retries exhausted, dropping batch", append(args, "max_retries", r.cfg.MaxRetries)...)
		return
	}
	if errors.Is(err, context.Canceled) {
		return
	}
	r.log.Warn("sink write failed; retrying", append(args, "retry_in", wait)...)
}
