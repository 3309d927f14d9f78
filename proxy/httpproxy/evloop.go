package httpproxy

// The event-loop engine (engine = "event-loop"): plain HTTP/1.1 exchanges
// served on gnet event loops instead of a goroutine per connection.
//
// Why: the goroutine code makes the same four socket system calls per
// request as HAProxy, yet spends most of the difference in CPU per
// request in Go's scheduler, parking and waking the connection's
// goroutine twice per request (docs/architecture.md, "HTTP proxy: the
// measured next step"). Here a client connection and its server
// connection live on one event loop: a request is parsed in gnet's
// buffer, rewritten by the same buildHead as the goroutine code, written
// to a server connection from the loop's pool, and the response is
// relayed when its last byte is in, all on the loop's goroutine.
//
// What the loop serves itself: a request without body whose method is
// idempotent, in origin form without escapes in its path, to a server
// without send_proxy, answered with no body or a Content-Length body of
// at most evMaxBody bytes, while the frontend has no access log and no
// tap. Everything else is handed to the goroutine code with the bytes
// already read (handoff before anything went to a server, resume after),
// which then serves the connection to its end: one code decides every
// answer that is not a plain relay, so both engines behave the same.
//
// Concurrency: an evClient, its evServer and an evLoop are touched only
// on their event loop's goroutine, except evClient.gc (Close is safe
// anywhere). The sweep (timeouts, closes waiting for a flush) runs on
// each loop through Execute, from the engine's ticker.

import (
	"context"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/panjf2000/gnet/v2"

	"wharf/internal/gnetlog"
	"wharf/metrics"
	"wharf/proxy/upstream"
)

// evMaxBody is the largest response body the loop relays itself: it
// waits until the whole response is read (gnet cannot stop reading a
// connection, so a body is never streamed by the loop).
const evMaxBody = 256 << 10

// evMaxPipelined bounds what a client may send ahead while its request
// is in flight.
const evMaxPipelined = 1 << 20

// evSweep is how often the loops look for timeouts.
const evSweep = 50 * time.Millisecond

// evEngine is a frontend's event loops.
type evEngine struct {
	gnet.BuiltinEventEngine
	f   *Frontend
	cli *gnet.Client

	mu    sync.Mutex
	loops map[gnet.EventLoop]*evLoop

	stopOnce sync.Once

	// served counts exchanges the loops relayed; handoff connections
	// given to the goroutine code before a request went out, resumed
	// ones given to it with a response under way.
	served, handoffs, resumed *metrics.Counter
}

// evLoop is one event loop's state.
type evLoop struct {
	el      gnet.EventLoop
	clients map[*evClient]struct{}
	// idle are kept-alive server connections by server, newest last.
	idle map[*upstream.Server][]gnet.Conn
}

// Client states.
const (
	evIdle    = iota // waiting for a request
	evDialing        // a server connection is being made for the request
	evWaiting        // the request went out; waiting for the response
	evGone           // handed to the goroutine code, or closed
)

// evClient is one client connection on a loop.
type evClient struct {
	raw  *conn
	gc   gnet.Conn
	loop *evLoop
	cc   *clientConn
	ownB []byte // cc.in.b of the pooled clientConn, put back at the end

	state   int
	first   bool  // no request yet
	since   int64 // when the current state began (monoNow)
	partial int64 // when an incomplete head began waiting, 0 if none

	// The request in flight.
	head         int // its bytes at the front of gc's buffer
	bp           *backendProxy
	s            *upstream.Server
	srv          gnet.Conn
	reused       bool
	keep, isHead bool
	minor        int

	closeOnFlush bool  // close once gnet has written what it buffers
	outSince     int64 // since when output has waited (0: none)
}

// evServer is one server connection on a loop: a request's, or idle in
// the loop's pool (cl nil).
type evServer struct {
	cl       *evClient
	s        *upstream.Server
	since    int64 // idle since (monoNow)
	got      bool  // a byte of the response arrived
	timedOut bool  // the sweep closed it: server_timeout
	gone     bool  // handed to the goroutine code
}

var evMono = time.Now()

func monoNow() int64 { return int64(time.Since(evMono)) }

// newEvEngine starts the loops of frontend f.
func newEvEngine(f *Frontend) (*evEngine, error) {
	e := &evEngine{f: f, loops: map[gnet.EventLoop]*evLoop{}}
	const help = "engine = \"event-loop\": requests the event loops relayed (served), connections they handed to goroutines before a request went out (handoff) or with a response under way (resume)."
	l := []string{"frontend", f.name, "outcome"}
	e.served = f.reg.Counter("wharf_proxy_http_event_loop_total", help, append(l, "served")...)
	e.handoffs = f.reg.Counter("wharf_proxy_http_event_loop_total", help, append(l, "handoff")...)
	e.resumed = f.reg.Counter("wharf_proxy_http_event_loop_total", help, append(l, "resume")...)
	cli, err := gnet.NewClient(e,
		gnet.WithMulticore(true),
		gnet.WithTicker(true),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay),
		gnet.WithReadBufferCap(64<<10),
		gnet.WithLogger(gnetlog.Logger{Log: f.log.With("component", "gnet")}),
	)
	if err != nil {
		return nil, err
	}
	if err := cli.Start(); err != nil {
		return nil, err
	}
	e.cli = cli
	return e, nil
}

// enroll hands an accepted connection to a loop; false if it could not
// (the caller closes it as the goroutine code would not serve it).
func (e *evEngine) enroll(raw *conn) bool {
	ev := &evClient{raw: raw, first: true}
	raw.ev.Store(ev)
	e.f.wg.Add(1) // done when the loop closes it, or by the goroutine it is handed to
	if _, err := e.cli.EnrollContext(raw.Conn, ev); err != nil {
		raw.ev.Store(nil)
		e.f.wg.Done()
		e.f.log.Warn("could not hand a connection to an event loop; serving it on a goroutine", "err", err)
		return false
	}
	return true
}

func (e *evEngine) loop(el gnet.EventLoop) *evLoop {
	e.mu.Lock()
	defer e.mu.Unlock()
	l := e.loops[el]
	if l == nil {
		l = &evLoop{el: el, clients: map[*evClient]struct{}{}, idle: map[*upstream.Server][]gnet.Conn{}}
		e.loops[el] = l
	}
	return l
}

func (e *evEngine) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	switch x := c.Context().(type) {
	case *evClient:
		f := e.f
		x.gc, x.loop = c, e.loop(c.EventLoop())
		x.loop.clients[x] = struct{}{}
		cc := clientConns.Get().(*clientConn)
		x.cc, x.ownB = cc, cc.in.b
		cc.f, cc.c, cc.raw = f, x.raw, x.raw
		cc.out.w, cc.out.b = c, cc.out.b[:0]
		cc.tls, cc.linger, cc.isHead, cc.logging = false, false, false, false
		cc.setClient()
		x.since = monoNow()
		return nil, gnet.None
	case *evServer:
		ev := x.cl
		if ev == nil || ev.state != evDialing {
			// The client went away while this was dialed: keep it.
			x.cl, x.since = nil, monoNow()
			l := e.loop(c.EventLoop())
			l.idle[x.s] = append(l.idle[x.s], c)
			return nil, gnet.None
		}
		x.s.ConnectOK()
		ev.srv, ev.state, ev.since = c, evWaiting, monoNow()
		return ev.cc.bw, gnet.None
	}
	return nil, gnet.Close
}

func (e *evEngine) OnTraffic(c gnet.Conn) gnet.Action {
	switch x := c.Context().(type) {
	case *evClient:
		if x.state == evIdle {
			e.next(x)
			return gnet.None
		}
		// A pipelined request waits in the buffer, which gnet cannot
		// stop filling: a client that sends more than this while an
		// answer is under way is cut off.
		if c.InboundBuffered() > evMaxPipelined {
			return gnet.Close
		}
		return gnet.None
	case *evServer:
		return e.response(c, x)
	}
	return gnet.Close
}

// next serves the request at the front of ev's buffer, if whole.
func (e *evEngine) next(ev *evClient) {
	f, gc, cc := e.f, ev.gc, ev.cc
	buf, _ := gc.Peek(-1)
	if n := skipEmptyLines(buf); n > 0 {
		gc.Discard(n)
		buf = buf[n:]
	}
	if len(buf) == 0 {
		return
	}
	end := findHeadEnd(buf, 0)
	if end < 0 {
		if len(buf) >= int(f.cfg.MaxHeaderBytes) || bareLF(buf, 0) {
			e.handoff(ev) // answered 431 or 400 there
			return
		}
		if ev.partial == 0 {
			ev.partial = monoNow()
		}
		return
	}
	ev.partial = 0
	ev.raw.idle.Store(false)
	if end > int(f.cfg.MaxHeaderBytes) || f.alog.On() || f.cfg.RedirectHTTPS {
		e.handoff(ev)
		return
	}
	req := &cc.req
	if parseRequest(buf[:end], req) != nil {
		e.handoff(ev)
		return
	}
	cc.in.b, cc.base = buf, 0 // the spans of req index buf: until it is discarded
	target, method := req.target.of(buf), req.method.of(buf)
	match := target
	if i := indexByte(match, '?'); i >= 0 {
		match = match[:i]
	}
	if req.hasBody() || req.connUpgrade || req.expect100 ||
		len(target) == 0 || target[0] != '/' || indexByte(match, '%') >= 0 || !idempotent(method) {
		e.handoff(ev)
		return
	}
	keep := !req.connClose && (req.minor >= 1 || req.connKeepAlive)
	host := req.host.of(buf)
	bp := f.pick(host, match)
	if bp == nil || !keep {
		e.handoff(ev) // the 503 (or the close) is the goroutine code's
		return
	}
	s := cc.pickServer(bp.b, match, nil)
	if s == nil {
		e.handoff(ev)
		return
	}
	if s.SendProxy != 0 {
		s.Release()
		e.handoff(ev)
		return
	}
	cc.isHead = string(method) == "HEAD"
	cc.buildHead(bp, s, host, target, true)
	ev.head, ev.bp, ev.s, ev.keep, ev.isHead, ev.minor = end, bp, s, keep, cc.isHead, req.minor
	ev.first = false
	ev.since = monoNow()
	// The head stays in the buffer until the response: a connect that
	// fails hands the whole request to the goroutine code.
	if srv := ev.loop.takeIdle(s); srv != nil {
		st := srv.Context().(*evServer)
		st.cl, st.got = ev, false
		ev.srv, ev.reused, ev.state = srv, true, evWaiting
		s.ConnectOK()
		srv.Write(cc.bw)
		return
	}
	e.dial(ev, s)
}

// dial connects to s for ev's request, off the loop (connect_timeout),
// and enrolls the connection into ev's loop (OnOpen sends the request).
func (e *evEngine) dial(ev *evClient, s *upstream.Server) {
	ev.state, ev.reused = evDialing, false
	el, timeout := ev.loop.el, ev.bp.b.Config().ConnectTimeout.Duration
	go func() {
		c, err := net.DialTimeout("tcp", s.Addr, timeout)
		if err == nil {
			_, err = el.Enroll(gnet.NewContext(context.Background(), &evServer{cl: ev, s: s}), c)
			if err != nil {
				c.Close()
			}
		}
		if err != nil {
			el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
				e.connectFailed(ev, s, err)
				return nil
			}))
		}
	}()
}

// connectFailed runs on the loop when a dial for ev's request failed:
// the goroutine code takes the request over and connects again (counting
// the failure if it fails again, trying other servers, 503 when none
// answers), so what a failed connect costs and reports is the same with
// both engines. The loop's failure is not counted: it would be counted
// twice.
func (e *evEngine) connectFailed(ev *evClient, s *upstream.Server, _ error) {
	if ev.state != evDialing || ev.s != s {
		return // the client went away meanwhile (OnClose released s)
	}
	s.Release()
	ev.s, ev.bp = nil, nil
	e.handoff(ev)
}

// response reads a response on server connection c for its client.
func (e *evEngine) response(c gnet.Conn, st *evServer) gnet.Action {
	ev := st.cl
	if ev == nil {
		return gnet.Close // an idle connection does not speak first
	}
	st.got = true
	f, cc := e.f, ev.cc
	buf, _ := c.Peek(-1)
	end := findHeadEnd(buf, 0)
	if end < 0 {
		if len(buf) > maxRespHead || bareLF(buf, 0) {
			return e.serverFailed(ev, st, errBadResponse)
		}
		return gnet.None
	}
	resp := &cc.resp
	if err := parseResponse(buf[:end], resp); err != nil {
		return e.serverFailed(ev, st, err)
	}
	mode := bodyFraming(resp, ev.isHead)
	total := end
	switch {
	case resp.status < 200:
		return e.resume(ev, c, st)
	case mode == bodyLength && resp.contentLength <= evMaxBody:
		total += int(resp.contentLength)
	case mode != bodyNone:
		return e.resume(ev, c, st)
	}
	if len(buf) < total {
		return gnet.None
	}
	keep := ev.keep && !f.shutting.Load() && !f.retiring.Load()
	srvKeep := resp.minor >= 1 && !resp.connClose || resp.minor == 0 && resp.connKeepAlive
	cc.count(ev.bp, resp.status)
	e.served.Inc() // before the answer leaves, as the counts
	cc.writeRespHead(buf, resp, false, keep, false)
	cc.out.write(buf[end:total])
	cc.out.flush()
	if n := total - end; n > 0 {
		ev.s.BytesFromServer.Add(uint64(n))
	}
	c.Discard(total)
	action := gnet.Close
	if srvKeep && c.InboundBuffered() == 0 {
		st.cl, st.since = nil, monoNow()
		ev.loop.idle[ev.s] = append(ev.loop.idle[ev.s], c)
		action = gnet.None
	} else {
		st.cl = nil // closing: OnClose has no client to tell
	}
	e.done(ev, keep)
	return action
}

// serverFailed answers 502 (504 after server_timeout) for a response
// that will not come, and closes the server connection.
func (e *evEngine) serverFailed(ev *evClient, st *evServer, err error) gnet.Action {
	st.cl = nil
	e.answerError(ev, err)
	return gnet.Close
}

// answerError answers ev's request with the goroutine code's error
// answer for err and ends the exchange.
func (e *evEngine) answerError(ev *evClient, err error) {
	keep := ev.cc.answerError(ev.bp, err, ev.keep)
	ev.cc.out.flush()
	e.done(ev, keep && !ev.cc.linger)
}

// done ends ev's exchange: the request's bytes are dropped from the
// buffer, the server released; the connection closes unless keep, or
// the next request (pipelined) is served.
func (e *evEngine) done(ev *evClient, keep bool) {
	if ev.state == evGone {
		return
	}
	ev.gc.Discard(ev.head)
	ev.head = 0
	if ev.s != nil {
		ev.s.Release()
	}
	ev.s, ev.bp, ev.srv, ev.state, ev.since = nil, nil, nil, evIdle, monoNow()
	if !keep || e.f.shutting.Load() {
		e.closeSoon(ev)
		return
	}
	ev.raw.idle.Store(true)
	if ev.gc.InboundBuffered() > 0 {
		e.next(ev)
	}
}

// closeSoon closes ev once gnet has written what it holds for it (a
// close drops what the socket does not take at once).
func (e *evEngine) closeSoon(ev *evClient) {
	ev.state = evGone
	if ev.gc.OutboundBuffered() == 0 {
		ev.gc.Close()
		return
	}
	ev.closeOnFlush = true
}

// handoff gives ev, before anything of its current request went to a
// server, to the goroutine code with every byte it has read.
func (e *evEngine) handoff(ev *evClient) {
	pending, _ := ev.gc.Peek(-1)
	nc, err := dupConn(ev.gc)
	if err != nil {
		e.f.log.Warn("could not hand a connection to a goroutine; closed it", "err", err)
		ev.gc.Close()
		return
	}
	raw := ev.raw
	raw.pending = append([]byte(nil), pending...)
	e.handoffs.Inc()
	e.detach(ev)
	raw.Conn = nc
	raw.ev.Store(nil)
	go e.f.serve(raw, raw) // serve's f.wg.Done is the one enroll added
}

// resume gives ev to the goroutine code in the middle of its exchange:
// server connection c (st) carries the response, which the loop does not
// relay itself (1xx, chunked, until close, large).
func (e *evEngine) resume(ev *evClient, c gnet.Conn, st *evServer) gnet.Action {
	srvBuf, _ := c.Peek(-1)
	srv, err := dupConn(c)
	if err != nil {
		return e.serverFailed(ev, st, err)
	}
	buffered, _ := ev.gc.Peek(-1)
	nc, err := dupConn(ev.gc)
	if err != nil {
		srv.Close()
		return e.serverFailed(ev, st, err)
	}
	st.cl, st.gone = nil, true
	e.resumed.Inc()
	raw := ev.raw
	raw.pending = append([]byte(nil), buffered[ev.head:]...)
	srvBytes := append([]byte(nil), srvBuf...)
	bp, s, keep, isHead, minor := ev.bp, ev.s, ev.keep, ev.isHead, ev.minor
	ev.s = nil // resume releases it
	e.detach(ev)
	raw.Conn = nc
	raw.ev.Store(nil)
	go e.f.resume(raw, srv, srvBytes, bp, s, keep, isHead, minor)
	return gnet.Close
}

// detach ends the loop's hold on ev, whose socket a goroutine takes
// over: gnet closes its descriptor, OnClose releases nothing.
func (e *evEngine) detach(ev *evClient) {
	ev.state = evGone
	delete(ev.loop.clients, ev)
	e.putCC(ev)
	ev.gc.SetContext(nil)
	ev.gc.Close()
}

func (e *evEngine) putCC(ev *evClient) {
	if cc := ev.cc; cc != nil {
		cc.in.b = ev.ownB
		cc.f, cc.c, cc.raw, cc.out.w = nil, nil, nil, nil
		clientConns.Put(cc)
		ev.cc = nil
	}
}

// dupConn duplicates a gnet connection's socket as a net.Conn for the
// goroutine code.
func dupConn(c gnet.Conn) (net.Conn, error) {
	fd, err := c.Dup()
	if err != nil {
		return nil, err
	}
	file := os.NewFile(uintptr(fd), "dup-"+strconv.Itoa(fd))
	defer file.Close()
	return net.FileConn(file)
}

func (e *evEngine) OnClose(c gnet.Conn, _ error) gnet.Action {
	switch x := c.Context().(type) {
	case *evClient:
		delete(x.loop.clients, x)
		if x.srv != nil {
			if st, ok := x.srv.Context().(*evServer); ok {
				st.cl = nil
			}
			x.srv.Close() // a response half read cannot be reused
			if x.bp != nil {
				x.bp.count(499) // nobody waits for the answer
			}
		}
		if x.s != nil {
			x.s.Release()
			x.s = nil
		}
		x.state = evGone
		e.putCC(x)
		x.raw.ev.Store(nil)
		x.raw.release()
		e.f.wg.Done()
	case *evServer:
		if x.gone {
			return gnet.None
		}
		ev := x.cl
		if ev == nil {
			l := e.loop(c.EventLoop())
			l.dropIdle(x.s, c)
			return gnet.None
		}
		x.cl = nil
		switch {
		case x.timedOut:
			e.answerError(ev, errTimeout)
		case !x.got && ev.reused:
			// A kept-alive connection the server had closed: the
			// request (idempotent, bodiless) goes out again.
			e.dial(ev, ev.s)
		default:
			e.answerError(ev, errBadResponse)
		}
	}
	return gnet.None
}

// takeIdle returns a kept-alive connection to s (newest first), closing
// ones idle past the pool's limit.
func (l *evLoop) takeIdle(s *upstream.Server) gnet.Conn {
	list := l.idle[s]
	for len(list) > 0 {
		c := list[len(list)-1]
		list = list[:len(list)-1]
		l.idle[s] = list
		st := c.Context().(*evServer)
		if monoNow()-st.since > int64(evIdleTimeout) {
			c.Close()
			continue
		}
		return c
	}
	return nil
}

func (l *evLoop) dropIdle(s *upstream.Server, c gnet.Conn) {
	list := l.idle[s]
	for i, x := range list {
		if x == c {
			l.idle[s] = append(list[:i], list[i+1:]...)
			return
		}
	}
}

// evIdleTimeout is how long a server connection stays in a loop's pool
// unused (the goroutine code's pools keep theirs 90 s too).
const evIdleTimeout = 90 * time.Second

// OnTick queues a sweep on every loop.
func (e *evEngine) OnTick() (time.Duration, gnet.Action) {
	e.mu.Lock()
	loops := make([]*evLoop, 0, len(e.loops))
	for _, l := range e.loops {
		loops = append(loops, l)
	}
	e.mu.Unlock()
	for _, l := range loops {
		l := l
		l.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			e.sweep(l)
			return nil
		}))
	}
	return evSweep, gnet.None
}

// sweep applies the timeouts on one loop: header_timeout for a head (and
// a new connection's first), client_timeout for an idle connection and
// for a client that does not read what it is sent, server_timeout for a
// response; and closes connections whose last answer is written.
func (e *evEngine) sweep(l *evLoop) {
	cfg, now := e.f.cfg, monoNow()
	for ev := range l.clients {
		gc := ev.gc
		if gc.OutboundBuffered() > 0 {
			if ev.outSince == 0 {
				ev.outSince = now
			} else if now-ev.outSince > int64(cfg.ClientTimeout.Duration) {
				gc.Close()
				continue
			}
		} else {
			ev.outSince = 0
			if ev.closeOnFlush {
				gc.Close()
				continue
			}
		}
		switch ev.state {
		case evIdle:
			wait := cfg.ClientTimeout.Duration
			if ev.first {
				wait = cfg.HeaderTimeout.Duration
			}
			if ev.partial != 0 && now-ev.partial > int64(cfg.HeaderTimeout.Duration) ||
				gc.InboundBuffered() == 0 && now-ev.since > int64(wait) ||
				gc.InboundBuffered() == 0 && e.f.shutting.Load() {
				gc.Close()
			}
		case evWaiting:
			if t := ev.bp.b.Config().ServerTimeout.Duration; t > 0 && now-ev.since > int64(t) && ev.srv != nil {
				if st, ok := ev.srv.Context().(*evServer); ok {
					st.timedOut = true
				}
				ev.srv.Close()
			}
		}
	}
	for s, list := range l.idle {
		for len(list) > 0 && now-list[0].Context().(*evServer).since > int64(evIdleTimeout) {
			list[0].Close()
			list = list[1:]
		}
		l.idle[s] = list
	}
}

// stop closes the loops (after the frontend's connections ended).
func (e *evEngine) stop() {
	e.stopOnce.Do(func() { e.cli.Stop() })
}
