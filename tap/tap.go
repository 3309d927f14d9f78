// Package tap lets an operator watch the messages passing through wharf's
// syslog binds while it runs (`wharf tap`, `GET /api/tap` on the admin
// listener).
//
// A Hub hands each listener a Point (Hub.For). The listener calls
// Point.Active for every message: one atomic load of a pointer that is nil
// while nobody taps that frontend, so an untapped gateway pays about a
// nanosecond per message and allocates nothing. Only when it reports true
// does the listener call Publish, which encodes the message for each
// matching subscriber into a pooled line and offers it to that
// subscriber's bounded channel without blocking: a subscriber that reads
// too slowly loses lines, and Subscriber.Lost says how many.
//
// Memory is bounded (Limits): at most Limits.Taps subscribers at once,
// each holding at most Limits.Bytes of lines (and Limits.MaxBuffer
// lines) that its reader has not yet written; a line that would exceed
// either is lost like any other. With the defaults, taps hold at most
// 8 x (4 MiB + 512 KiB of channel) whatever the traffic and the clients.
// Time is bounded too: Handler ends a stream whose client has taken
// nothing for Limits.Stall (a write made no progress), so a client that
// stopped reading, or a dead peer, does not keep its place for good.
//
// Concurrency: Hub, Point and Subscriber methods are safe for concurrent
// use. Publish may run on many event loops at once.
package tap

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"wharf/ingest"
	"wharf/internal/ascii"
	"wharf/message"
	"wharf/sinks"
)

// DefaultBuffer is a subscriber's channel capacity in lines: about a
// tenth of a second of a busy relay, enough to absorb a terminal's jitter
// without holding megabytes per tapper.
const DefaultBuffer = 4096

// Limits bound the memory of a hub's subscribers, and how long a stalled
// one keeps its place. Zero fields take the defaults (DefaultLimits).
type Limits struct {
	// Taps is how many subscribers may be open at once; Subscribe
	// refuses more (ErrTooMany).
	Taps int
	// Bytes bounds the lines one subscriber holds, queued or being
	// written: the sum of their capacities plus a 24-byte slice header
	// each. A line that would exceed it is lost (Subscriber.Lost).
	Bytes int64
	// MaxBuffer is the largest channel, in lines, a subscriber may ask
	// for (8 bytes each, allocated when it subscribes).
	MaxBuffer int
	// Stall is how long Handler waits for a write to its client to make
	// progress (the client reads nothing: stopped, or a dead peer that
	// sent no FIN) before it ends the stream, freeing its place among
	// Limits.Taps (Hub.Stalled counts these).
	Stall time.Duration
}

// DefaultLimits are NewHub's limits (constants, not config settings):
// 8 taps are more operators than watch one gateway at a time; 4 MiB holds
// 7800 typical JSON lines of 300 bytes (each in a 512-byte buffer), more
// than the 4096-line DefaultBuffer, or 60 lines of 64 KiB messages;
// 65536 lines is half a second of 130k msg/s. Worst case 8 x (4 MiB +
// 512 KiB of channel) = 36 MiB. A minute of Stall outlasts a terminal
// paused by hand (Ctrl-S, a pager) for a while and any network hiccup,
// yet frees the place of a client that stopped reading or died soon
// after the kernel's socket buffers fill. Do not modify.
var DefaultLimits = Limits{Taps: 8, Bytes: 4 << 20, MaxBuffer: 1 << 16, Stall: time.Minute}

// lineOverhead is what a line costs besides its bytes: the *[]byte
// header the pool hands around.
const lineOverhead = 24

// lineCost is what a held line counts against Limits.Bytes.
func lineCost(l *[]byte) int64 { return int64(cap(*l)) + lineOverhead }

// ErrClosed is returned by Subscribe after Close.
var ErrClosed = errors.New("tap: hub closed (wharf is shutting down)")

// ErrTooMany is returned (wrapped, naming the limit) by Subscribe while
// Limits.Taps subscribers are open.
var ErrTooMany = errors.New("tap: too many taps open")

// Hub is the set of tap points, one per syslog frontend (and per proxy
// frontend, whose access log it sees), and their
// subscribers. The zero value is not usable; use NewHub.
type Hub struct {
	limits Limits
	mu     sync.Mutex
	points map[string]*Point
	subs   map[*Subscriber]struct{}
	closed bool
	// stalled counts the streams Handler ended for Limits.Stall.
	stalled atomic.Uint64
}

// NewHub returns an empty hub with DefaultLimits.
func NewHub() *Hub { return NewHubLimits(Limits{}) }

// NewHubLimits returns an empty hub whose subscribers are bounded by l;
// zero fields take DefaultLimits' values.
func NewHubLimits(l Limits) *Hub {
	if l.Taps <= 0 {
		l.Taps = DefaultLimits.Taps
	}
	if l.Bytes <= 0 {
		l.Bytes = DefaultLimits.Bytes
	}
	if l.MaxBuffer <= 0 {
		l.MaxBuffer = DefaultLimits.MaxBuffer
	}
	if l.Stall <= 0 {
		l.Stall = DefaultLimits.Stall
	}
	return &Hub{limits: l, points: map[string]*Point{}, subs: map[*Subscriber]struct{}{}}
}

// Limits returns the hub's limits, defaults filled in.
func (h *Hub) Limits() Limits { return h.limits }

// Stalled returns how many streams Handler ended because their client
// took nothing for Limits.Stall.
func (h *Hub) Stalled() uint64 { return h.stalled.Load() }

// For returns the tap point of a frontend, creating it on first use; every
// bind of the frontend shares it. Subscribers already tapping by port see
// the new point's messages too.
func (h *Hub) For(frontend string) *Point {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.points[frontend]
	if p == nil {
		p = &Point{frontend: frontend}
		h.points[frontend] = p
		for s := range h.subs {
			if s.filter.Frontend == "" {
				p.add(s)
			}
		}
	}
	return p
}

// Frontends returns the names of the frontends with a point, sorted.
func (h *Hub) Frontends() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, 0, len(h.points))
	for n := range h.points {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Subscribe starts delivering the messages that match f to a new
// subscriber with a channel of buffer lines (DefaultBuffer when <= 0,
// at most Limits.MaxBuffer) holding at most Limits.Bytes.
// A filter naming a frontend taps only that frontend's point (unknown
// names are an error); a filter by port taps every point and keeps the
// messages that arrived on that port. While Limits.Taps subscribers are
// open it fails with an error wrapping ErrTooMany. The caller must Close
// the subscriber when done.
func (h *Hub) Subscribe(f Filter, buffer int) (*Subscriber, error) {
	if buffer <= 0 {
		buffer = DefaultBuffer
	}
	buffer = min(buffer, h.limits.MaxBuffer)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	if len(h.subs) >= h.limits.Taps {
		return nil, fmt.Errorf("%w: the limit of %d taps at once is reached; close one (another wharf tap or /api/tap client) and retry", ErrTooMany, h.limits.Taps)
	}
	s := &Subscriber{hub: h, filter: f, ch: make(chan *[]byte, buffer), maxHeld: h.limits.Bytes, done: make(chan struct{})}
	if f.Frontend != "" {
		p := h.points[f.Frontend]
		if p == nil {
			names := make([]string, 0, len(h.points))
			for n := range h.points {
				names = append(names, n)
			}
			sort.Strings(names)
			return nil, fmt.Errorf("tap: no frontend %q (running: %s)", f.Frontend, strings.Join(names, ", "))
		}
		p.add(s)
	} else {
		for _, p := range h.points {
			p.add(s)
		}
	}
	h.subs[s] = struct{}{}
	return s, nil
}

// Close ends every subscription (their Done channels close) and refuses
// new ones. Listeners may keep calling their points; they see no
// subscribers.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.closed = true
	for s := range h.subs {
		h.remove(s)
	}
}

// remove detaches s from every point; h.mu must be held.
func (h *Hub) remove(s *Subscriber) {
	if _, ok := h.subs[s]; !ok {
		return
	}
	delete(h.subs, s)
	for _, p := range h.points {
		p.del(s)
	}
	close(s.done)
}

// Point is the tap of one frontend; it implements ingest.Tap.
type Point struct {
	frontend string
	// subs is nil while nobody taps; otherwise a copy-on-write slice
	// replaced under Hub.mu.
	subs atomic.Pointer[[]*Subscriber]
}

// Active reports whether anyone taps this point: one atomic load.
func (p *Point) Active() bool { return p.subs.Load() != nil }

// Publish offers m to every subscriber whose filter it matches. It copies
// what it keeps (the encoded line) out of m and never blocks: a line that
// would overfill a subscriber's channel or exceed its Limits.Bytes is
// counted as lost. It runs on the listener's event loop and reads m only
// during the call.
func (p *Point) Publish(m *message.Message) {
	subs := p.subs.Load()
	if subs == nil {
		return
	}
	for _, s := range *subs {
		if !s.filter.Match(m) {
			continue
		}
		hint := len(m.Raw) + 1
		if !s.filter.Raw {
			hint += jsonOverhead
		}
		if len(s.ch) == cap(s.ch) || s.held.Load()+minCost(hint) > s.maxHeld {
			s.lost.Add(1) // cannot fit: spare the encoding
			continue
		}
		line := getLine(hint)
		if s.filter.Raw {
			*line = AppendRaw(*line, m.Raw)
		} else {
			*line = sinks.EncodingJSON.Append(*line, m)
		}
		*line = append(*line, '\n')
		cost := lineCost(line)
		if s.held.Add(cost) > s.maxHeld {
			s.held.Add(-cost)
			s.lost.Add(1)
			putLine(line)
			continue
		}
		select {
		case s.ch <- line:
		default:
			s.held.Add(-cost)
			s.lost.Add(1)
			putLine(line)
		}
	}
}

// jsonOverhead is about what the JSON encoding adds to a message's bytes
// (field names, facility and severity names, received): a size hint,
// not a bound (the JSON line may be longer; the raw line is at least
// len(m.Raw)+1).
const jsonOverhead = 320

// AppendRaw appends raw to dst as one line of text that cannot pass for
// a stream notice (rsyslog's convention for control characters): each
// control character (0x00-0x1F, 0x7F: LF, CR, NUL, TAB, ESC...) becomes
// '#' and three octal digits ("#012" for LF), and a leading '#' becomes
// "#043", so no line of a raw stream starts with '#' unless wharf wrote
// it (NoticePrefix). Other bytes, UTF-8 included, are kept as they are;
// a literal "#012" inside a message is not escaped, so the mapping is not
// reversible. It does not allocate beyond growing dst.
func AppendRaw(dst, raw []byte) []byte {
	if len(raw) > 0 && raw[0] == '#' {
		dst = append(dst, "#043"...)
		raw = raw[1:]
	}
	start := len(dst)
	dst = append(dst, raw...)
	if ascii.HasControl(raw) {
		dst = ascii.EscapeControl(dst, start, false)
	}
	return dst
}

// add and del replace the subscriber slice; Hub.mu must be held.
func (p *Point) add(s *Subscriber) {
	var next []*Subscriber
	if cur := p.subs.Load(); cur != nil {
		next = append(next, *cur...)
	}
	next = append(next, s)
	p.subs.Store(&next)
}

func (p *Point) del(s *Subscriber) {
	cur := p.subs.Load()
	if cur == nil {
		return
	}
	var next []*Subscriber
	for _, x := range *cur {
		if x != s {
			next = append(next, x)
		}
	}
	if len(next) == 0 {
		p.subs.Store(nil)
		return
	}
	p.subs.Store(&next)
}

// Subscriber receives the tapped lines of one filter.
type Subscriber struct {
	hub    *Hub
	filter Filter
	ch     chan *[]byte
	lost   atomic.Uint64
	// held is the cost (lineCost) of the lines in ch or being written,
	// at most maxHeld.
	held    atomic.Int64
	maxHeld int64
	done    chan struct{}
}

// Lines delivers encoded lines, each ending in '\n': the message as JSON
// (sinks.EncodingJSON) or, with Filter.Raw, its Raw bytes as AppendRaw
// writes them. The reader owns each line until it hands it back with
// Release once written; until then it counts against Limits.Bytes. The
// channel is never closed; watch Done.
func (s *Subscriber) Lines() <-chan *[]byte { return s.ch }

// Release hands back a line received from Lines: it stops counting
// against the subscriber's bound and goes back to the pool, so it must
// not be used afterwards.
func (s *Subscriber) Release(l *[]byte) {
	s.held.Add(-lineCost(l))
	putLine(l)
}

// Held returns the bytes the subscriber's lines occupy (queued or not yet
// released): at most Limits.Bytes.
func (s *Subscriber) Held() int64 { return s.held.Load() }

// Done is closed when the subscription ends (Close, or Hub.Close at
// shutdown).
func (s *Subscriber) Done() <-chan struct{} { return s.done }

// Lost returns how many matching lines were dropped because the channel
// was full.
func (s *Subscriber) Lost() uint64 { return s.lost.Load() }

// Filter returns the subscriber's filter.
func (s *Subscriber) Filter() Filter { return s.filter }

// Close ends the subscription. Lines still in the channel are dropped,
// not pooled: a stalled tap's backlog goes back to the garbage collector
// instead of sitting in the pool.
func (s *Subscriber) Close() {
	s.hub.mu.Lock()
	s.hub.remove(s)
	s.hub.mu.Unlock()
	for {
		select {
		case l := <-s.ch:
			s.held.Add(-lineCost(l))
		default:
			return
		}
	}
}

// Lines are pooled by size class, so a short message does not take (and
// count against Limits.Bytes) a buffer a long one grew: pool i holds
// lines of capacity at least lineClasses[i]. Lines over the last class
// are not pooled, so a rare huge message does not pin memory.
var lineClasses = [...]int{512, 2 << 10, 8 << 10, maxPooledLine}

var linePools [len(lineClasses)]sync.Pool

// getLine returns an empty line from the smallest class that fits hint
// bytes.
func getLine(hint int) *[]byte {
	for i, c := range lineClasses {
		if hint <= c {
			if l, _ := linePools[i].Get().(*[]byte); l != nil {
				*l = (*l)[:0]
				return l
			}
			b := make([]byte, 0, c)
			return &b
		}
	}
	b := make([]byte, 0, hint)
	return &b
}

// minCost is the least a line from getLine(hint) costs (lineCost).
func minCost(hint int) int64 {
	for _, c := range lineClasses {
		if hint <= c {
			return int64(c) + lineOverhead
		}
	}
	return int64(hint) + lineOverhead
}

// putLine pools l in the largest class its capacity reaches.
func putLine(l *[]byte) {
	c := cap(*l)
	if c > maxPooledLine {
		return
	}
	for i := len(lineClasses) - 1; i >= 0; i-- {
		if c >= lineClasses[i] {
			linePools[i].Put(l)
			return
		}
	}
}

// maxPooledLine is the largest line kept for reuse (the last class).
const maxPooledLine = 64 << 10

var _ ingest.Tap = (*Point)(nil)
