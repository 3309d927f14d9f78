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

	"wharf/ingest"
	"wharf/message"
	"wharf/sinks"
)

// DefaultBuffer is a subscriber's channel capacity in lines: about a
// tenth of a second of a busy relay, enough to absorb a terminal's jitter
// without holding megabytes per tapper.
const DefaultBuffer = 4096

// maxPooledLine keeps a rare huge message from pinning memory in the pool.
const maxPooledLine = 64 << 10

// ErrClosed is returned by Subscribe after Close.
var ErrClosed = errors.New("tap: hub closed (wharf is shutting down)")

// Hub is the set of tap points, one per syslog frontend (and per proxy
// frontend, whose access log it sees), and their
// subscribers. The zero value is not usable; use NewHub.
type Hub struct {
	mu     sync.Mutex
	points map[string]*Point
	subs   map[*Subscriber]struct{}
	closed bool
}

// NewHub returns an empty hub.
func NewHub() *Hub {
	return &Hub{points: map[string]*Point{}, subs: map[*Subscriber]struct{}{}}
}

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
// subscriber with a channel of buffer lines (DefaultBuffer when <= 0).
// A filter naming a frontend taps only that frontend's point (unknown
// names are an error); a filter by port taps every point and keeps the
// messages that arrived on that port. The caller must Close the
// subscriber when done.
func (h *Hub) Subscribe(f Filter, buffer int) (*Subscriber, error) {
	if buffer <= 0 {
		buffer = DefaultBuffer
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	s := &Subscriber{hub: h, filter: f, ch: make(chan *[]byte, buffer), done: make(chan struct{})}
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
// what it keeps (the encoded line) out of m and never blocks: a full
// subscriber channel counts the line as lost. It runs on the listener's
// event loop and reads m only during the call.
func (p *Point) Publish(m *message.Message) {
	subs := p.subs.Load()
	if subs == nil {
		return
	}
	for _, s := range *subs {
		if !s.filter.Match(m) {
			continue
		}
		line := getLine()
		if s.filter.Raw {
			*line = append(*line, m.Raw...)
		} else {
			*line = sinks.EncodingJSON.Append(*line, m)
		}
		*line = append(*line, '\n')
		select {
		case s.ch <- line:
		default:
			s.lost.Add(1)
			PutLine(line)
		}
	}
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
	done   chan struct{}
}

// Lines delivers encoded lines, each ending in '\n': the message as JSON
// (sinks.EncodingJSON) or, with Filter.Raw, its Raw bytes. The reader owns
// each line and should hand it back with PutLine once written. The channel
// is never closed; watch Done.
func (s *Subscriber) Lines() <-chan *[]byte { return s.ch }

// Done is closed when the subscription ends (Close, or Hub.Close at
// shutdown).
func (s *Subscriber) Done() <-chan struct{} { return s.done }

// Lost returns how many matching lines were dropped because the channel
// was full.
func (s *Subscriber) Lost() uint64 { return s.lost.Load() }

// Filter returns the subscriber's filter.
func (s *Subscriber) Filter() Filter { return s.filter }

// Close ends the subscription; lines still in the channel are released.
func (s *Subscriber) Close() {
	s.hub.mu.Lock()
	s.hub.remove(s)
	s.hub.mu.Unlock()
	for {
		select {
		case l := <-s.ch:
			PutLine(l)
		default:
			return
		}
	}
}

var linePool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func getLine() *[]byte {
	l := linePool.Get().(*[]byte)
	*l = (*l)[:0]
	return l
}

// PutLine returns a line received from Lines to the pool; it must not be
// used afterwards.
func PutLine(l *[]byte) {
	if cap(*l) <= maxPooledLine {
		linePool.Put(l)
	}
}

var _ ingest.Tap = (*Point)(nil)
