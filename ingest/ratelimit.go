package ingest

// Rate limits (frontend keys rate_limit / rate_burst per bind and
// rate_limit_per_ip / rate_burst_per_ip per source address).
//
// Each limit is a token bucket kept as GCRA ("generic cell rate
// algorithm") state: one int64, the theoretical arrival time (tat) of the
// next message. A message arriving at now passes when tat - now <= tau,
// tau = (burst-1) × T, T the time one message costs; it then moves tat to
// max(tat, now) + T. That is a bucket of burst tokens refilled one per T,
// without a separate token count and refill time to keep consistent.
//
// The bind's bucket is shared by every event loop (gnet) and connection
// goroutine (tls) of the bind, so it is updated with compare-and-swap.
// Per-address buckets live in a table of ipShards shards, each a mutex and
// a map from address to tat, bounded by conf.RateLimitMaxIPs in all.
//
// Both bucket sets belong to the Listener and survive reloads that keep
// the limit; a reload that changes a limit starts it with full buckets
// (a tat is a time in units of the old rate, meaningless under the new).
//
// What over-limit means per transport:
//   - UDP: the datagram is dropped and counted, dropped{reason="rate_limit"}.
//   - tls:// (goroutine per connection): the goroutine stops reading and
//     sleeps until a token is due (in steps, so Stop and a reload are
//     noticed); the kernel's receive buffer fills and TCP flow control
//     slows the sender.
//   - tcp:// (gnet): gnet reads a readable socket into the connection's
//     inbound buffer whatever OnTraffic does, so not reading is only
//     possible by not returning to the loop. OnTraffic stops processing
//     when tokens run out and leaves the bytes in gnet's buffer; a timer
//     wakes the connection (c.Wake) when tokens are due. If the sender
//     keeps sending and the connection's buffered bytes pass holdBound
//     (4 × max_message_size), OnTraffic pauses the event loop in short
//     sleeps, processing as tokens arrive, until the buffer is back under
//     the bound: the kernel's window closes on the sender. The cost: every
//     other connection served by that event loop waits as well (other
//     binds have their own engines and do not). Memory per held-back
//     connection stays under holdBound plus one gnet read buffer.
//
// With no limit configured, settings.rate is nil and the hot path pays
// one nil check. With limits, a message costs one CAS (bind) and one
// shard lock and map lookup (per IP), and allocates nothing.

import (
	"math/bits"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"

	"wharf/conf"
	"wharf/metrics"
	"wharf/route"
)

const (
	// ipShards splits the per-address table so event loops rarely wait
	// on each other's lock; a power of two.
	ipShards = 64
	// ipShardCap bounds one shard; all of them together hold
	// conf.RateLimitMaxIPs addresses.
	ipShardCap = conf.RateLimitMaxIPs / ipShards
	// ipSweepEvery bounds how often a full shard is swept for refilled
	// buckets: a flood of new source addresses then costs one sweep per
	// shard per interval, not one per datagram.
	ipSweepEvery = int64(100 * time.Millisecond)

	// pauseStep is the longest single sleep of a paused gnet event loop
	// and tlsWaitStep of a held-back tls:// connection: Stop and reloads
	// are noticed within it.
	pauseStep   = 10 * time.Millisecond
	tlsWaitStep = 100 * time.Millisecond
	// wakeMin and wakeMax bound the delay of a held-back tcp://
	// connection's wake-up: not so early that each wake-up passes one
	// message (and a Peek of the buffer), not so late that a reload
	// raising the limit goes unnoticed.
	wakeMin = 2 * time.Millisecond
	wakeMax = 100 * time.Millisecond
)

// gcra is the parameters of one limit: T is the time one message costs
// (ns), tau how far ahead of now tat may run, (burst-1) × T.
type gcra struct {
	T, tau int64
}

func newGCRA(r conf.Rate, burst int) gcra {
	if burst <= 0 {
		burst = conf.DefaultRateBurst(r)
	}
	t := max(int64(r.Interval()), 1)
	return gcra{T: t, tau: int64(burst-1) * t}
}

// check decides for a bucket at tat: the new tat when the message passes,
// or how long until it would (wait > 0).
func (g gcra) check(tat, now int64) (next, wait int64) {
	t := max(tat, now)
	if d := t - now - g.tau; d > 0 {
		return tat, d
	}
	return t + g.T, 0
}

// bucket is one shared token bucket (the bind's).
type bucket struct{ tat atomic.Int64 }

// take passes one message or returns how long until one would pass.
func (b *bucket) take(g gcra, now int64) (wait int64) {
	for {
		old := b.tat.Load()
		next, wait := g.check(old, now)
		if wait > 0 {
			return wait
		}
		if b.tat.CompareAndSwap(old, next) {
			return 0
		}
	}
}

// refund gives back a token taken for a message that did not come.
func (b *bucket) refund(g gcra) { b.tat.Add(-g.T) }

// ipTable holds the per-address buckets of one bind.
type ipTable struct {
	shards [ipShards]ipShard
}

type ipShard struct {
	mu  sync.Mutex
	tat map[netip.Addr]int64
	// overflow is the bucket shared by addresses that found the shard
	// full of active senders.
	overflow  int64
	lastSweep int64
	_         [64]byte // keep shards off each other's cache lines
}

func newIPTable() *ipTable {
	t := &ipTable{}
	for i := range t.shards {
		t.shards[i].tat = make(map[netip.Addr]int64)
	}
	return t
}

func (t *ipTable) shard(a netip.Addr) *ipShard {
	b := a.As16()
	var h uint64
	for i := range 2 {
		var w uint64
		for _, c := range b[i*8 : i*8+8] {
			w = w<<8 | uint64(c)
		}
		h ^= w
	}
	h *= 0x9E3779B97F4A7C15 // Fibonacci hashing: the top bits mix all input bits
	return &t.shards[h>>(64-bits.TrailingZeros(ipShards))]
}

// take passes one message from a or returns how long until one would.
func (t *ipTable) take(a netip.Addr, g gcra, now int64) (wait int64) {
	s := t.shard(a)
	s.mu.Lock()
	defer s.mu.Unlock()
	tat, ok := s.tat[a]
	if !ok && len(s.tat) >= ipShardCap && !s.sweep(now) {
		next, wait := g.check(s.overflow, now)
		if wait == 0 {
			s.overflow = next
		}
		return wait
	}
	next, wait := g.check(tat, now)
	if wait == 0 {
		s.tat[a] = next
	}
	return wait
}

// sweep forgets the buckets that have refilled (tat <= now: they hold
// nothing a new bucket would not) and reports whether there is room now.
// A shard is swept at most every ipSweepEvery.
func (s *ipShard) sweep(now int64) bool {
	if now-s.lastSweep < ipSweepEvery {
		return false
	}
	s.lastSweep = now
	for a, tat := range s.tat {
		if tat <= now {
			delete(s.tat, a)
		}
	}
	return len(s.tat) < ipShardCap
}

// refund gives back a token taken for a message from a that did not come
// or was stopped by the bind's limit.
func (t *ipTable) refund(a netip.Addr, g gcra) {
	s := t.shard(a)
	s.mu.Lock()
	if tat, ok := s.tat[a]; ok {
		s.tat[a] = tat - g.T
	} else {
		s.overflow -= g.T
	}
	s.mu.Unlock()
}

// size is how many addresses are tracked (tests).
func (t *ipTable) size() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += len(s.tat)
		s.mu.Unlock()
	}
	return n
}

// rateSettings are the limits of one settings generation; nil settings.rate
// means no limit. The buckets and counters are the Listener's.
type rateSettings struct {
	bind, ip       gcra
	hasBind, hasIP bool
	bucket         *bucket
	ips            *ipTable
	// limited counts messages held back or dropped, by scope; dropped is
	// dropped{reason="rate_limit"} (UDP).
	limitedBind, limitedIP, dropped *metrics.Counter
	// closing: the connection is going away with messages held back; they
	// are delivered and charged as debt (see charge) instead of waiting.
	closing bool
}

const rateLimitedHelp = "Messages over a rate limit, by scope (bind: rate_limit, ip: rate_limit_per_ip): UDP datagrams dropped, TCP/TLS messages held back until tokens were due."

// rateLimiter is the Listener's persistent rate limit state.
type rateLimiter struct {
	mu     sync.Mutex // guards creation of ips and the counters
	bucket *bucket    // replaced, not reset, when the bind limit changes
	ips    *ipTable
	stalls *metrics.Counter
	rs     rateSettings // counters, filled on first use
	// bind and ip are the parameters in force, to notice a change.
	bind, ip gcra
}

// attachRates compiles fe's rate limits into s (New and Update; the
// mutex makes concurrent reloads safe without relying on the caller).
func (l *Listener) attachRates(s *settings, fe *conf.Frontend) {
	if fe.RateLimit.IsZero() && fe.RateLimitPerIP.IsZero() {
		return
	}
	r := &l.rate
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rs.dropped == nil {
		r.rs.limitedBind = l.reg.Counter("wharf_frontend_rate_limited_total", rateLimitedHelp, append(l.labels, "scope", "bind")...)
		r.rs.limitedIP = l.reg.Counter("wharf_frontend_rate_limited_total", rateLimitedHelp, append(l.labels, "scope", "ip")...)
		r.rs.dropped = l.reason("dropped", "rate_limit")
		r.stalls = l.reg.Counter("wharf_frontend_rate_limit_pauses_total", "Times a tcp:// event loop paused (stopped reading every connection it serves) because a rate-limited connection had more than 4 x max_message_size buffered.", l.labels...)
	}
	rs := r.rs // copy: counters
	if !fe.RateLimit.IsZero() {
		rs.hasBind, rs.bind = true, newGCRA(fe.RateLimit, fe.RateBurst)
		if r.bucket == nil || rs.bind != r.bind {
			// A fresh bucket, not a reset of the old one: an event loop
			// still on the old settings may take from the old bucket at
			// the old rate, and must not push the new limit's bucket far
			// into the future (regression: TestTCPRateLimitReload).
			r.bind = rs.bind
			r.bucket = new(bucket)
		}
	}
	rs.bucket = r.bucket
	if !fe.RateLimitPerIP.IsZero() {
		rs.hasIP, rs.ip = true, newGCRA(fe.RateLimitPerIP, fe.RateBurstPerIP)
		if r.ips == nil || rs.ip != r.ip {
			r.ip = rs.ip
			r.ips = newIPTable() // settings still in use keep the old one
		}
		rs.ips = r.ips
	}
	s.rate = &rs
}

// take passes one message from peer (both limits) or returns how long
// until it would pass, counting the held-back or dropped message by
// scope when count is set. Per IP is checked first, so a sender over its
// own limit uses none of the bind's tokens.
func (rs *rateSettings) take(peer netip.Addr, now int64, count bool) (wait int64) {
	if rs.closing {
		if rs.charge(peer, now) {
			return 0
		}
		rs.dropped.Inc()
		return 1
	}
	if rs.hasIP {
		if wait = rs.ips.take(peer, rs.ip, now); wait > 0 {
			if count {
				rs.limitedIP.Inc()
			}
			return wait
		}
	}
	if rs.hasBind {
		if wait = rs.bucket.take(rs.bind, now); wait > 0 {
			if rs.hasIP {
				rs.ips.refund(peer, rs.ip)
			}
			if count {
				rs.limitedBind.Inc()
			}
			return wait
		}
	}
	return 0
}

// maxDebt bounds how far messages delivered at close may run a bucket
// into debt (tat beyond now + tau): a minute, or one more burst when that
// is longer. Past it they are dropped and counted.
const maxDebt = int64(time.Minute)

func (g gcra) debt() int64 { return max(maxDebt, g.tau+g.T) }

// charge takes a token for a message held back when its connection
// closes (the sender finished and hung up, or Stop): the bytes were read,
// so they are delivered rather than lost, and the buckets go into debt
// that later messages pay off, so the rate holds on average. A connection
// cannot push more than holdBound plus one read this way, and the debt is
// bounded (debt); false means over it: the message is dropped.
func (rs *rateSettings) charge(peer netip.Addr, now int64) bool {
	if rs.hasIP {
		s := rs.ips.shard(peer)
		s.mu.Lock()
		tat, ok := s.tat[peer]
		p := &s.overflow
		if ok || len(s.tat) < ipShardCap {
			p = &tat
		}
		t := max(*p, now)
		over := t-now > rs.ip.tau+rs.ip.debt()
		if !over {
			*p = t + rs.ip.T
			if p == &tat {
				s.tat[peer] = tat
			}
		}
		s.mu.Unlock()
		if over {
			return false
		}
	}
	if rs.hasBind {
		for {
			old := rs.bucket.tat.Load()
			t := max(old, now)
			if t-now > rs.bind.tau+rs.bind.debt() {
				if rs.hasIP {
					rs.ips.refund(peer, rs.ip)
				}
				return false
			}
			if rs.bucket.tat.CompareAndSwap(old, t+rs.bind.T) {
				break
			}
		}
	}
	return true
}

// closing returns s with its rate limits in closing mode (see charge);
// s itself when there are none.
func (s *settings) closing() *settings {
	if s.rate == nil {
		return s
	}
	cs, rs := *s, *s.rate
	rs.closing = true
	cs.rate = &rs
	return &cs
}

// flushHeld delivers the whole messages a rate limit held back in a
// closing tcp:// connection's buffer (OnClose), charging them as debt.
func (l *Listener) flushHeld(c gnet.Conn, st *conn) {
	s := l.settings.Load().closing()
	var fe *route.Frontend
	if tab := l.routes.Load(); tab != nil {
		fe = tab.Frontend(l.frontend)
	}
	now := time.Now().UnixNano()
	st.framer.Max, st.framer.Truncate = s.max, s.truncate
	for {
		total := c.InboundBuffered()
		buf, _ := c.Peek(min(total, peekWindow(s, false)))
		off, _, _ := l.frames(s, fe, &st.framer, buf, now, st.peer, &st.held)
		if off == 0 {
			return
		}
		_, _ = c.Discard(off)
		if len(buf) == total {
			return
		}
	}
}

// allowDatagram is the UDP check: false means drop (already counted).
func (rs *rateSettings) allowDatagram(peer netip.Addr, now int64) bool {
	if rs.take(peer, now, true) == 0 {
		return true
	}
	rs.dropped.Inc()
	return false
}

// holdBound is how many bytes a held-back tcp:// connection may leave in
// gnet's buffer before its event loop pauses.
func holdBound(s *settings) int { return 4 * s.max }

// peekWindow bounds one Peek on a tcp:// connection: large enough for
// any whole frame (the framer decides within Max+10 bytes), small enough
// that a held-back connection's buffer is not copied whole on every wake.
// While the loop is paused, a few tokens come per step: a smaller window
// keeps each step's copy (gnet's Peek copies when its ring wraps) small.
func peekWindow(s *settings, paused bool) int {
	if paused {
		return max(4<<10, s.max+16)
	}
	return max(64<<10, s.max+16)
}

// holdTCP handles a tcp:// connection whose next message must wait
// wait ns for tokens. Below holdBound it arms the wake-up timer and
// returns false (return to the loop). Above it, it sleeps up to
// pauseStep on the event loop and returns true: the caller processes
// what tokens allow and calls again. Stop ends the pause.
func (l *Listener) holdTCP(c gnet.Conn, st *conn, s *settings, wait int64) bool {
	if c.InboundBuffered() <= holdBound(s) || l.stopping.Load() {
		st.wakeIn(c, time.Duration(wait))
		return false
	}
	if !st.paused {
		st.paused = true
		l.rate.stalls.Inc()
	}
	time.Sleep(min(time.Duration(wait), pauseStep))
	return true
}

// wakeIn arms the connection's wake-up timer (one per connection, made on
// first use), unless one is pending. It runs on the event loop; the timer
// callback only touches the atomic flag and c.Wake, which are safe from
// any goroutine. A wake-up after the connection closed is ignored by gnet.
func (st *conn) wakeIn(c gnet.Conn, d time.Duration) {
	st.paused = false
	if st.wakePending.Swap(true) {
		return
	}
	d = min(max(d, wakeMin), wakeMax)
	if st.wake == nil {
		st.wake = time.AfterFunc(d, func() {
			st.wakePending.Store(false)
			_ = c.Wake(nil)
		})
		return
	}
	st.wake.Reset(d)
}

// waitTLS sleeps a held-back tls:// connection for up to wait ns, in
// steps of tlsWaitStep so a reload is noticed; false when Stop began.
func (l *Listener) waitTLS(timer *time.Timer, wait int64) bool {
	timer.Reset(min(time.Duration(wait), tlsWaitStep))
	select {
	case <-timer.C:
		return true
	case <-l.tls.stop:
		timer.Stop()
		return false
	}
}
