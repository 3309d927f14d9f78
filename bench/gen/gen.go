// Package gen is the bench's load generator: it sends stamped syslog
// messages (see bench/stamp) over TCP or UDP, as fast as possible or at a
// fixed offered rate, for a duration or a count.
//
// Speed comes from doing almost nothing per message: each connection owns
// a pre-rendered template whose seq digits are incremented in place and
// whose time digits are patched once per write; TCP sends large buffers
// (default 256 KiB per write), UDP sends batches with sendmmsg(2). Pacing
// hands out tokens in coarse ticks (1 ms), never a timer per message.
//
// Sequence numbers: every connection is its own sender stream (stamp field
// c = connection index) with its own sequence space starting at 0, so a
// receiver accounts loss and duplicates per stream exactly without any
// cross-connection ordering. Result.Sent[i] is how many messages stream i
// sent, i.e. the receiver must have seen seq 0..Sent[i]-1 of stream i.
package gen

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"wharf/bench/stamp"
)

// Config is one generator run.
type Config struct {
	// Target is tcp://host:port, tls://host:port (TCP over TLS, any
	// server certificate accepted), udp://host:port or relp://host:port.
	Target string
	// Format is stamp.RFC5424 (default) or stamp.RFC3164.
	Format string
	// Framing is stamp.OctetCounting (TCP default) or stamp.LF; UDP
	// always sends one bare message per datagram.
	Framing string
	// Size is the message size in bytes without framing. Default 300.
	Size int
	// Conns is the number of connections (UDP: sockets). Default 1.
	Conns int
	// Rate is the total offered rate in messages/s; 0 sends as fast as
	// possible.
	Rate float64
	// Duration stops the run after this long (0: no limit).
	Duration time.Duration
	// Count stops after this many messages in total, spread evenly over
	// the connections (0: no limit). Duration or Count must be set.
	Count uint64
	// Run is the run id stamped into every message; random when empty.
	Run string
	// WriteSize is the TCP bytes per write. Default 256 KiB.
	WriteSize int
	// Batch is the UDP datagrams per sendmmsg. Default 1024.
	Batch int
	// NoGSO turns off UDP segmentation offload (UDP_SEGMENT): then every
	// datagram is its own sendmmsg entry. Receivers see the same datagrams
	// either way; GSO only makes the sender cheaper.
	NoGSO bool
	// Await, when set, makes a TCP run one message at a time: each write
	// carries one message, and Await is called with the stream's count of
	// messages sent so far before the next; it returns when that many have
	// arrived (true) or to stop the run (false). For latency at the
	// lightest load: send, wait until it is through, repeat. Needs Conns 1.
	Await func(sent uint64) bool
}

// Result is what a run sent.
type Result struct {
	// Run is the run id.
	Run string `json:"run"`
	// Sent is messages sent per stream (connection index).
	Sent []uint64 `json:"sent"`
	// Total is the sum of Sent.
	Total uint64 `json:"total"`
	// Bytes is the payload bytes sent, framing included.
	Bytes uint64 `json:"bytes"`
	// Elapsed is the wall time from the first send to the last.
	Elapsed time.Duration `json:"elapsed_ns"`
	// Rate is Total / Elapsed in messages/s.
	Rate float64 `json:"rate"`
	// SendErrors counts failed send calls that were retried (UDP
	// ECONNREFUSED from a closed port and the like).
	SendErrors uint64 `json:"send_errors"`
}

// Generator runs one Config. Sent may be read from other goroutines while
// Run is going; Run must be called once.
type Generator struct {
	cfg    Config
	scheme string
	addr   string
	sent   []atomic.Uint64
	errs   atomic.Uint64
}

// New checks cfg, fills defaults and returns a Generator.
func New(cfg Config) (*Generator, error) {
	scheme, addr, ok := strings.Cut(cfg.Target, "://")
	if !ok || (scheme != "tcp" && scheme != "tls" && scheme != "udp" && scheme != "relp") || addr == "" {
		return nil, fmt.Errorf("bench/gen: target %q: want tcp://host:port, tls://host:port, udp://host:port or relp://host:port", cfg.Target)
	}
	if cfg.Size == 0 {
		cfg.Size = 300
	}
	if cfg.Conns <= 0 {
		cfg.Conns = 1
	}
	if cfg.Framing == "" {
		cfg.Framing = stamp.OctetCounting
	}
	if scheme == "udp" || scheme == "relp" {
		cfg.Framing = stamp.None // RELP frames carry the length
	}
	if cfg.WriteSize <= 0 {
		cfg.WriteSize = 256 << 10
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 1024
	}
	if cfg.Duration <= 0 && cfg.Count == 0 {
		return nil, errors.New("bench/gen: set a duration or a count, or the run never ends")
	}
	if cfg.Rate < 0 {
		return nil, errors.New("bench/gen: rate must be >= 0 (0 means as fast as possible)")
	}
	if cfg.Await != nil && (scheme == "udp" || scheme == "relp" || cfg.Conns != 1) {
		return nil, errors.New("bench/gen: one message at a time (Await) needs TCP and one connection")
	}
	if cfg.Run == "" {
		cfg.Run = NewRunID()
	}
	// Check the options once so every connection's template renders.
	if _, err := stamp.NewTemplate(stamp.Options{Format: cfg.Format, Framing: cfg.Framing, Size: cfg.Size, Run: cfg.Run}); err != nil {
		return nil, err
	}
	return &Generator{cfg: cfg, scheme: scheme, addr: addr, sent: make([]atomic.Uint64, cfg.Conns)}, nil
}

// NewRunID returns a random 8-character run id.
func NewRunID() string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Config returns the effective config (defaults filled in).
func (g *Generator) Config() Config { return g.cfg }

// Sent is the number of messages sent so far, all streams together.
func (g *Generator) Sent() uint64 {
	var n uint64
	for i := range g.sent {
		n += g.sent[i].Load()
	}
	return n
}

// Run connects every connection, sends until the count or duration is
// reached or ctx ends, and reports what was sent. Connection errors end
// the run with an error; the Result still counts what was sent before.
func (g *Generator) Run(ctx context.Context) (Result, error) {
	cfg := g.cfg
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	conns := make([]net.Conn, cfg.Conns)
	for i := range conns {
		network := g.scheme
		if network == "relp" {
			network = "tcp"
		}
		var c net.Conn
		var err error
		if network == "tls" {
			// Syslog over TLS (RFC 5425): the bench trusts any
			// certificate; the handshake is done before the clock starts.
			d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: &tls.Config{InsecureSkipVerify: true}}
			c, err = d.DialContext(ctx, "tcp", g.addr)
		} else {
			c, err = net.DialTimeout(network, g.addr, 5*time.Second)
		}
		if err != nil {
			for _, c := range conns[:i] {
				c.Close()
			}
			return Result{Run: cfg.Run, Sent: make([]uint64, cfg.Conns)}, fmt.Errorf("bench/gen: connect %s://%s: %w (is the relay/receiver listening?)", g.scheme, g.addr, err)
		}
		conns[i] = c
	}
	start := time.Now()
	errs := make([]error, cfg.Conns)
	var wg sync.WaitGroup
	for i, c := range conns {
		w := &worker{g: g, idx: i, conn: c, start: start}
		w.count = cfg.Count / uint64(cfg.Conns)
		if uint64(i) < cfg.Count%uint64(cfg.Conns) {
			w.count++
		}
		if cfg.Count == 0 {
			w.count = ^uint64(0)
		}
		w.rate = cfg.Rate / float64(cfg.Conns)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			switch g.scheme {
			case "tcp", "tls":
				errs[i] = w.runTCP(ctx)
			case "relp":
				errs[i] = w.runRELP(ctx)
			default:
				errs[i] = w.runUDP(ctx)
			}
		}()
	}
	// Unblock writers stuck on a full socket when the run is over.
	stop := context.AfterFunc(ctx, func() {
		for _, c := range conns {
			c.SetWriteDeadline(time.Now())
		}
	})
	wg.Wait()
	stop()
	elapsed := time.Since(start)
	r := Result{Run: cfg.Run, Sent: make([]uint64, cfg.Conns), Elapsed: elapsed, SendErrors: g.errs.Load()}
	for i := range g.sent {
		r.Sent[i] = g.sent[i].Load()
		r.Total += r.Sent[i]
	}
	tp, _ := stamp.NewTemplate(stamp.Options{Format: cfg.Format, Framing: cfg.Framing, Size: cfg.Size, Run: cfg.Run})
	r.Bytes = r.Total * uint64(len(tp.Frame))
	if elapsed > 0 {
		r.Rate = float64(r.Total) / elapsed.Seconds()
	}
	return r, errors.Join(errs...)
}

// worker is one connection's sender; it owns its template and buffers.
type worker struct {
	g     *Generator
	idx   int
	conn  net.Conn
	start time.Time
	count uint64  // messages this stream sends (max uint64: unlimited)
	rate  float64 // messages/s for this stream; 0 = unpaced
	sent  uint64
	// forgiven is paced sends skipped after falling behind (see allowance).
	forgiven uint64
}

// tick is the pacing granularity.
const tick = time.Millisecond

// maxBurst is how many ticks' worth of messages a paced sender may send
// at once after falling behind.
const maxBurst = 4

// allowance returns how many messages may go now, at most max, sleeping
// in ticks until at least one may. It returns 0 when ctx is done.
func (w *worker) allowance(ctx context.Context, max uint64) uint64 {
	if left := w.count - w.sent; left < max {
		max = left
	}
	if w.rate == 0 {
		if ctx.Err() != nil {
			return 0
		}
		return max
	}
	// A starved sender (slow tick, busy CPU) does not catch up in one
	// burst, which would overflow receive buffers that the steady rate
	// never fills: the deficit beyond maxBurst ticks' worth is forgiven,
	// so the offered rate (Result.Rate) comes out lower instead.
	burst := uint64(w.rate*(maxBurst*tick).Seconds()) + 1
	for {
		if ctx.Err() != nil {
			return 0
		}
		due := uint64(w.rate*time.Since(w.start).Seconds()) - w.forgiven
		if due > w.sent+burst {
			w.forgiven += due - w.sent - burst
			due = w.sent + burst
		}
		if due > w.sent {
			n := due - w.sent
			if n > max {
				n = max
			}
			return n
		}
		time.Sleep(tick)
	}
}

func (w *worker) template() *stamp.Template {
	cfg := w.g.cfg
	tp, _ := stamp.NewTemplate(stamp.Options{Format: cfg.Format, Framing: cfg.Framing, Size: cfg.Size, Run: cfg.Run, Conn: w.idx})
	return tp
}

func (w *worker) runTCP(ctx context.Context) error {
	tp := w.template()
	msgLen := len(tp.Frame)
	per := w.g.cfg.WriteSize / msgLen
	if per < 1 || w.g.cfg.Await != nil {
		per = 1
	}
	buf := make([]byte, per*msgLen)
	first := true
	for w.sent < w.count {
		n := w.allowance(ctx, uint64(per))
		if n == 0 {
			return nil
		}
		tp.SetTime(time.Now().UnixNano())
		b := buf[:0]
		for i := uint64(0); i < n; i++ {
			if !first {
				tp.IncSeq()
			}
			first = false
			b = append(b, tp.Frame...)
		}
		if k, err := w.conn.Write(b); err != nil {
			// Only whole frames count as sent; a torn last frame is
			// never counted by a receiver either.
			w.sent += uint64(k / msgLen)
			w.g.sent[w.idx].Store(w.sent)
			if ctx.Err() != nil {
				return nil // cut off by the end of the run
			}
			return fmt.Errorf("bench/gen: stream %d: write %s: %w", w.idx, w.g.addr, err)
		}
		w.sent += n
		w.g.sent[w.idx].Store(w.sent)
		if w.g.cfg.Await != nil && !w.g.cfg.Await(w.sent) {
			return nil
		}
	}
	return nil
}
