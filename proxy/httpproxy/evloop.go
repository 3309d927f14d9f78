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
// without send_proxy that is below its maxconn with no request queued
// ahead (a request that must wait in the backend's queue waits on a
// goroutine), answered with no body or a Content-Length body of at most
// evMaxBody bytes, while the frontend has no access log and no tap.
// Everything else is handed to the goroutine code with the bytes
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
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"wharf/internal/gnetlog"
	"wharf/internal/mono"
	"wharf/metrics"
	"wharf/proxy/upstream"
)

// evMaxBody is the largest response body the loop relays itself: it
// waits until the whole response is read (gnet cannot stop reading a
// connection, so a body is never streamed by the loop). Larger bodies
// are streamed by the goroutine code, which is faster from 64 KiB up
// (wrk -c10 on 2 cores: 64 KiB 12.6k req/s resumed vs 9.8k relayed
// whole; 256 KiB 4.05k vs 1.8k; 16 KiB relayed whole 22.5k vs 21.1k on
// goroutines).
const evMaxBody = 32 << 10

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
	// dials are the server connections being made; stop waits for them
	// (a dial enrolled into stopped loops would wait forever).
	dialMu   sync.Mutex
	dials    sync.WaitGroup
	stopping bool

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

	opened  atomic.Bool // OnOpen ran (enroll checks it)
	state   int
	first   bool  // no request yet
	since   int64 // when the current state began (monoNow)
	partial int64 // when an incomplete head began waiting, 0 if none

	// closed is set by OnClose. The loop's code never runs inside it:
	// writes to the client go to its socket directly (evWriter), never
	// through gnet's Write, which closes a connection whose write fails
	// at once, calling OnClose inside the write.
	closed bool
	w      evWriter // cc.out's writer

	// The request in flight.
	head         int // its bytes at the front of gc's buffer
	bp           *backendProxy
	s            *upstream.Server
	srv          gnet.Conn
	reused       bool
	replay       bool // the request is being sent again (stale connection)
	keep, isHead bool
	minor        int

	// unsent is what the client's socket did not take of the answers
	// (see evWriter); werr the write error that ended it.
	unsent []byte
	werr   error
}

// evWriter writes to the client's socket itself, not through gnet's
// outbound buffer: what the socket does not take at once is kept in
// ev.unsent, and once the answer is complete the connection goes to
// the goroutine code with it (done), which writes it first. So nothing
// written is ever lost in a buffer gnet drops on close, answers never
// overtake each other, and a client that does not read is the goroutine
// code's, with its client_timeout on writes. Nothing is written after
// gnet closed the connection: its descriptor number may be reused.
type evWriter struct{ ev *evClient }

func (w evWriter) Write(p []byte) (int, error) {
	ev := w.ev
	if ev.closed || ev.werr != nil {
		return 0, net.ErrClosed
	}
	n := len(p)
	if len(ev.unsent) > 0 {
		ev.unsent = append(ev.unsent, p...)
		return n, nil
	}
	fd := ev.gc.Fd()
	for len(p) > 0 {
		k, err := unix.Write(fd, p)
		if k > 0 {
			p = p[k:]
		}
		switch {
		case err == nil, err == unix.EINTR:
		case err == unix.EAGAIN:
			ev.unsent = append(ev.unsent, p...)
			return n, nil
		default:
			ev.werr = err
			return n - len(p), err
		}
	}
	return n, nil
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
	headIn   bool  // the response head is in, its body not yet whole
	opened   atomic.Bool
}

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

// enroll hands an accepted connection to a loop. gnet duplicates the
// socket and closes raw.Conn either way, so a connection it could not
// take is closed and released here.
func (e *evEngine) enroll(raw *conn) {
	ev := &evClient{raw: raw, first: true}
	e.f.wg.Add(1) // done when the loop closes it, or by the goroutine it is handed to
	_, err := e.cli.EnrollContext(raw.Conn, ev)
	if err == nil && !ev.opened.Load() {
		err = errors.New("gnet did not open it") // registration with epoll failed
	}
	if err != nil {
		raw.release()
		e.f.wg.Done()
		e.f.log.Warn("could not hand a connection to an event loop; closed it", "err", err)
	}
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
		x.w = evWriter{x}
		cc.out.w, cc.out.b = x.w, cc.out.b[:0]
		cc.tls, cc.linger, cc.isHead, cc.logging = false, false, false, false
		cc.setClient()
		x.since = mono.Now()
		x.raw.ev.Store(x) // from now on Close and Shutdown go through gc
		x.opened.Store(true)
		return nil, gnet.None
	case *evServer:
		x.opened.Store(true)
		ev := x.cl
		if ev == nil || ev.state != evDialing {
			// The client went away while this was dialed: keep it.
			x.cl = nil
			e.loop(c.EventLoop()).putIdle(x.s, c)
			return nil, gnet.None
		}
		if !ev.replay {
			x.s.ConnectOK()
		}
		ev.srv, ev.state, ev.since = c, evWaiting, mono.Now()
		return ev.cc.bw, gnet.None
	}
	return nil, gnet.Close
}

func (e *evEngine) OnTraffic(c gnet.Conn) gnet.Action {
	switch x := c.Context().(type) {
	case *evClient:
		if x.state == evIdle {
			return e.next(x, true)
		}
		// A pipelined request waits in the buffer, which gnet cannot
		// stop filling: a client that sends more than this while an
		// answer is under way goes to the goroutine code, which reads
		// no further than the request it serves.
		if c.InboundBuffered() > evMaxPipelined {
			if action, ok := e.giveAway(x, true); ok {
				return action
			}
			return gnet.Close
		}
		return gnet.None
	case *evServer:
		return e.response(c, x)
	}
	return gnet.Close
}

// next serves the request at the front of ev's buffer, if whole. self:
// called from ev's own OnTraffic, whose return value then closes gnet's
// side of a connection handed off (see handoff).
func (e *evEngine) next(ev *evClient, self bool) gnet.Action {
	f, gc, cc := e.f, ev.gc, ev.cc
	buf := peek(gc)
	if n := skipEmptyLines(buf); n > 0 {
		gc.Discard(n)
		buf = peek(gc) // again: Discard may have freed what Peek returned
	}
	if len(buf) == 0 {
		return gnet.None
	}
	end := findHeadEnd(buf, 0)
	if end < 0 {
		if len(buf) >= int(f.cfg.MaxHeaderBytes) || bareLF(buf, 0) {
			return e.handoff(ev, self) // answered 431 or 400 there
		}
		if ev.partial == 0 {
			ev.partial = mono.Now()
		}
		return gnet.None
	}
	ev.partial = 0
	ev.raw.idle.Store(false)
	if end > int(f.cfg.MaxHeaderBytes) || f.alog.On() || f.cfg.RedirectHTTPS {
		return e.handoff(ev, self)
	}
	req := &cc.req
	if parseRequest(buf[:end], req) != nil {
		return e.handoff(ev, self)
	}
	cc.in.b, cc.base = buf, 0 // the spans of req index buf: until it is discarded
	target, method := req.target.of(buf), req.method.of(buf)
	match := target
	if i := indexByte(match, '?'); i >= 0 {
		match = match[:i]
	}
	if req.hasBody() || req.connUpgrade || req.expect100 ||
		len(target) == 0 || target[0] != '/' || indexByte(match, '%') >= 0 || !idempotent(method) {
		return e.handoff(ev, self)
	}
	keep := !req.connClose && (req.minor >= 1 || req.connKeepAlive)
	host := req.host.of(buf)
	bp := f.pick(host, match)
	if bp == nil || !keep {
		return e.handoff(ev, self) // the 503 (or the close) is the goroutine code's
	}
	// No server below maxconn, or requests queued ahead: the goroutine
	// code waits in the backend's queue, which a loop must not.
	s := bp.b.TryAcquire(cc.pickKey(bp.b, match))
	if s == nil {
		return e.handoff(ev, self)
	}
	if s.SendProxy != 0 {
		s.Release()
		return e.handoff(ev, self)
	}
	cc.isHead = string(method) == "HEAD"
	cc.buildHead(bp, s, host, target, true)
	ev.head, ev.bp, ev.s, ev.keep, ev.isHead, ev.minor = end, bp, s, keep, cc.isHead, req.minor
	ev.first, ev.replay = false, false
	ev.since = mono.Now()
	// The head stays in the buffer until the response: a connect that
	// fails hands the whole request to the goroutine code.
	if srv := ev.loop.takeIdle(s); srv != nil {
		st := srv.Context().(*evServer)
		st.cl, st.got = ev, false
		ev.srv, ev.reused, ev.state = srv, true, evWaiting
		s.ConnectOK()
		srv.Write(cc.bw)
		return gnet.None
	}
	e.dial(ev, s)
	return gnet.None
}

// peek is everything gnet holds of c's input (valid until the next
// Discard or read).
func peek(c gnet.Conn) []byte {
	b, _ := c.Peek(-1)
	return b
}

// dial connects to s for ev's request, off the loop (connect_timeout),
// and enrolls the connection into ev's loop (OnOpen sends the request).
// A kept-alive connection of the goroutine code's pool (a response the
// loop handed over left it there) is taken first, so connections do not
// pile up in that pool while the loop dials new ones.
func (e *evEngine) dial(ev *evClient, s *upstream.Server) {
	ev.state, ev.reused = evDialing, false
	el, timeout := ev.loop.el, ev.bp.b.Config().ConnectTimeout.Duration
	e.dialMu.Lock()
	stopping := e.stopping
	if !stopping {
		e.dials.Add(1)
	}
	e.dialMu.Unlock()
	if stopping {
		e.connectFailed(ev, s, nil)
		return
	}
	var pooled net.Conn
	if p := ev.bp.pools[s]; p != nil {
		if pc := p.get(); pc != nil {
			pooled, ev.reused = pc.c, true // stale? OnClose sends the request again
		}
	}
	go func() {
		defer e.dials.Done()
		c, err := pooled, error(nil)
		if c == nil {
			c, err = net.DialTimeout("tcp", s.Addr, timeout)
		}
		if err == nil {
			// Enroll closes c (it keeps a duplicate) and reports on ch
			// once the loop ran its registration, which may have failed
			// without saying so (gnet 2.9.7): OnOpen marks st opened.
			st := &evServer{cl: ev, s: s}
			var ch <-chan gnet.RegisteredResult
			if ch, err = el.Enroll(gnet.NewContext(context.Background(), st), c); err == nil {
				if err = (<-ch).Err; err == nil && !st.opened.Load() {
					err = errors.New("gnet did not open it")
				}
			} else {
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

// connectFailed runs on the loop when a dial for ev's request failed
// with err (nil: not tried, the engine is stopping): the failure counts
// against s, and the goroutine code takes the request over as its own
// connect loop would after that failure (conn.failed): the next server,
// up to retries, 503 when none answers. So what a failed connect costs
// (one connect_timeout per server tried) and reports is the same with
// both engines.
func (e *evEngine) connectFailed(ev *evClient, s *upstream.Server, err error) {
	if ev.state != evDialing || ev.s != s {
		return // the client went away meanwhile (finish released s)
	}
	s.Release()
	if err != nil {
		s.ConnectFailed(err)
		ev.raw.failed, ev.raw.failedErr = s, err
	}
	ev.s, ev.bp = nil, nil
	e.handoff(ev, false)
}

// response reads a response on server connection c for its client.
func (e *evEngine) response(c gnet.Conn, st *evServer) gnet.Action {
	ev := st.cl
	if ev == nil {
		return gnet.Close // an idle connection does not speak first
	}
	st.got = true
	cc := ev.cc
	buf := peek(c)
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
		st.headIn = true // the sweep gives a slow body to the goroutine code
		return gnet.None
	}
	keep := ev.keep && cc.mayKeep()
	// The server's side first: the response is read whole.
	action := gnet.Close
	st.cl, ev.srv = nil, nil
	if srvKeep := resp.minor >= 1 && !resp.connClose || resp.minor == 0 && resp.connKeepAlive; srvKeep && len(buf) == total {
		ev.loop.putIdle(ev.s, c)
		action = gnet.None
	}
	if n := total - end; n > 0 {
		ev.s.BytesFromServer.Add(uint64(n))
	}
	cc.count(ev.bp, resp.status)
	e.served.Inc() // before the answer leaves, as the counts
	cc.writeRespHead(buf, resp, false, keep, false)
	cc.out.write(buf[end:total])
	cc.out.flush()
	c.Discard(total) // buf is not used past here
	e.done(ev, keep)
	return action
}

// serverFailed answers 502 for a response that will not come, and
// closes the server connection.
func (e *evEngine) serverFailed(ev *evClient, st *evServer, err error) gnet.Action {
	st.cl = nil
	e.answerError(ev, err)
	return gnet.Close
}

// answerError answers ev's request with the goroutine code's error
// answer for err and ends the exchange; its server connection is
// closed or closing.
func (e *evEngine) answerError(ev *evClient, err error) {
	ev.srv = nil
	keep := ev.cc.answerError(ev.bp, err, ev.keep)
	e.done(ev, keep && !ev.cc.linger)
}

// done ends ev's exchange: the request's bytes are dropped from the
// buffer, the server released; the connection closes unless keep, or
// the next request (pipelined) is served once the answers before it are
// written.
func (e *evEngine) done(ev *evClient, keep bool) {
	ev.gc.Discard(ev.head)
	ev.head = 0
	if ev.s != nil {
		ev.s.Release()
	}
	ev.s, ev.bp, ev.srv, ev.state, ev.since = nil, nil, nil, evIdle, mono.Now()
	keep = keep && !e.f.shutting.Load()
	switch {
	case ev.werr != nil: // the client is gone
		ev.state = evGone
		ev.gc.Close()
	case len(ev.unsent) > 0: // the goroutine code writes the rest
		e.handoffUnsent(ev, keep)
	case !keep:
		ev.state = evGone
		ev.gc.Close()
	default:
		ev.raw.idle.Store(true)
		if ev.gc.InboundBuffered() > 0 {
			e.next(ev, false) // pipelined
		}
	}
}

// handoff gives ev, before anything of its current request went to a
// server, to the goroutine code with every byte it has read. gnet's side
// must close before the loop reads the socket again: by the returned
// Close when self (ev's own OnTraffic), at once otherwise.
func (e *evEngine) handoff(ev *evClient, self bool) gnet.Action {
	return e.handoffWith(ev, self, peek(ev.gc), nil, false)
}

// handoffUnsent gives ev, whose last answer its socket did not take
// whole, to the goroutine code, which writes the rest first; then it
// serves the requests pipelined behind (keep), or closes.
func (e *evEngine) handoffUnsent(ev *evClient, keep bool) {
	var pending []byte
	if keep {
		pending = peek(ev.gc)
	}
	unsent := ev.unsent
	ev.unsent = nil
	e.handoffWith(ev, false, pending, unsent, !keep)
}

// handoffWith is handoff with the bytes the goroutine code reads first
// (pending), writes first (unsent), and whether it closes after that.
func (e *evEngine) handoffWith(ev *evClient, self bool, pending, unsent []byte, closeAfter bool) gnet.Action {
	nc, err := dupConn(ev.gc)
	if err != nil {
		e.f.log.Warn("could not hand a connection to a goroutine; closed it", "err", err)
		ev.gc.Close()
		return gnet.None
	}
	raw := ev.raw
	buffered := append([]byte(nil), pending...)
	e.handoffs.Inc()
	action := e.detach(ev, self)
	e.f.mu.Lock() // Shutdown reads raw.Conn under it
	raw.Conn, raw.pending, raw.unsent, raw.closeAfter = nc, buffered, unsent, closeAfter
	raw.served = !ev.first
	raw.idle.Store(false)
	raw.ev.Store(nil)
	e.f.mu.Unlock()
	go e.f.serve(raw, raw) // serve's f.wg.Done is the one enroll added
	return action
}

// resume gives ev to the goroutine code in the middle of its exchange:
// server connection c (st) carries the response, which the loop does not
// relay itself (1xx, chunked, until close, large). Runs in c's
// OnTraffic, whose returned Close ends gnet's side of it.
func (e *evEngine) resume(ev *evClient, c gnet.Conn, st *evServer) gnet.Action {
	srv, err := dupConn(c)
	if err != nil {
		return e.serverFailed(ev, st, err)
	}
	nc, err := dupConn(ev.gc)
	if err != nil {
		srv.Close()
		return e.serverFailed(ev, st, err)
	}
	st.cl, st.gone = nil, true
	e.resumed.Inc()
	raw := ev.raw
	in := peek(ev.gc)
	pending := append([]byte(nil), in[ev.head:]...)
	var request []byte
	if ev.reused && !st.got {
		// No byte of the response yet on a kept-alive connection,
		// which the server may have closed: the goroutine code serves
		// the request again if so, as its own exchange would.
		request = append([]byte(nil), in[:ev.head]...)
	}
	srvBytes := append([]byte(nil), peek(c)...)
	bp, s, keep, isHead, minor := ev.bp, ev.s, ev.keep, ev.isHead, ev.minor
	ev.s, ev.srv = nil, nil // resume releases s
	e.detach(ev, false)
	e.f.mu.Lock()
	raw.Conn, raw.pending = nc, pending
	raw.ev.Store(nil)
	e.f.mu.Unlock()
	go e.f.resume(raw, srv, srvBytes, request, bp, s, keep, isHead, minor)
	return gnet.Close
}

// detach ends the loop's hold on ev, whose socket a goroutine takes
// over: gnet's descriptor is closed (by the returned Close when self,
// else now, so the loop reads nothing more of the socket) and OnClose
// releases nothing.
func (e *evEngine) detach(ev *evClient, self bool) gnet.Action {
	ev.state = evGone
	delete(ev.loop.clients, ev)
	e.putCC(ev)
	ev.gc.SetContext(nil)
	if self {
		return gnet.Close
	}
	ev.loop.el.Close(ev.gc)
	return gnet.None
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

func (e *evEngine) OnClose(c gnet.Conn, err error) gnet.Action {
	switch x := c.Context().(type) {
	case *evClient:
		// EOF with a request pending: gnet closes a connection on EOF,
		// but a client may shut its write side and still read the
		// answer, which the goroutine code gives it. So the connection
		// (still open during OnClose) is handed over: with its request,
		// or with the response under way.
		if errors.Is(err, io.EOF) {
			if _, ok := e.giveAway(x, false); ok {
				return gnet.None
			}
		}
		x.closed = true
		e.finish(x)
	case *evServer:
		if x.gone {
			return gnet.None
		}
		ev := x.cl
		if ev == nil {
			e.loop(c.EventLoop()).dropIdle(x.s, c)
			return gnet.None
		}
		x.cl = nil
		switch {
		case x.headIn && !x.timedOut:
			e.truncated(ev, c)
		case x.timedOut:
			e.answerError(ev, errTimeout)
		case !x.got && ev.reused:
			// A kept-alive connection the server had closed: the
			// request (idempotent, bodiless) goes out again.
			ev.replay = true
			e.dial(ev, ev.s)
		default:
			e.answerError(ev, errBadResponse)
		}
	}
	return gnet.None
}

// giveAway hands ev to the goroutine code wherever its exchange is: a
// request waiting (handoff), a server being dialed for it (handoff: the
// dial, when done, goes to the pool), or a response under way (resume).
// It reports whether it took the connection; the action is for ev's own
// OnTraffic when self.
func (e *evEngine) giveAway(ev *evClient, self bool) (gnet.Action, bool) {
	switch {
	case ev.state == evIdle && ev.gc.InboundBuffered() > 0:
		return e.handoff(ev, self), true
	case ev.state == evDialing:
		ev.s.Release()
		ev.s, ev.bp = nil, nil
		return e.handoff(ev, self), true
	case ev.state == evWaiting && ev.srv != nil:
		srv := ev.srv
		st, ok := srv.Context().(*evServer)
		if !ok {
			return gnet.None, false
		}
		if e.resume(ev, srv, st) == gnet.Close {
			ev.loop.el.Close(srv)
		}
		return gnet.None, true // resume closed gnet's side of ev
	}
	return gnet.None, false
}

// truncated relays a response whose server closed the connection before
// the body was whole (server connection c, still readable in OnClose):
// the head and what came of the body go to the client, whose connection
// then closes, as the goroutine code does.
func (e *evEngine) truncated(ev *evClient, c gnet.Conn) {
	cc, buf := ev.cc, peek(c)
	end := findHeadEnd(buf, 0)
	if end < 0 || parseResponse(buf[:end], &cc.resp) != nil {
		e.answerError(ev, errBadResponse) // cannot be: the head was parsed
		return
	}
	ev.srv = nil
	ev.s.BytesFromServer.Add(uint64(len(buf) - end))
	cc.count(ev.bp, cc.resp.status)
	e.served.Inc()
	cc.writeRespHead(buf, &cc.resp, false, false, false)
	cc.out.write(buf[end:])
	cc.out.flush()
	e.done(ev, false)
}

// finish releases a closed client connection: its server connection
// (a response half read cannot be reused), its server, its slots.
func (e *evEngine) finish(x *evClient) {
	delete(x.loop.clients, x)
	if x.srv != nil {
		if st, ok := x.srv.Context().(*evServer); ok {
			st.cl = nil
		}
		x.srv.Close()
		x.srv = nil
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
}

// evMaxIdle bounds the kept-alive connections a loop keeps per server
// (as the goroutine code's pools do), evIdleTimeout how long one stays.
const (
	evMaxIdle     = 64
	evIdleTimeout = 90 * time.Second
)

// putIdle keeps server connection c for s's next request.
func (l *evLoop) putIdle(s *upstream.Server, c gnet.Conn) {
	if len(l.idle[s]) >= evMaxIdle {
		c.Close()
		return
	}
	st := c.Context().(*evServer)
	st.since = mono.Now()
	st.got, st.headIn = false, false // the next exchange's
	l.idle[s] = append(l.idle[s], c)
}

// takeIdle returns a kept-alive connection to s (newest first), closing
// ones idle past evIdleTimeout.
func (l *evLoop) takeIdle(s *upstream.Server) gnet.Conn {
	list := l.idle[s]
	for len(list) > 0 {
		c := list[len(list)-1]
		list = list[:len(list)-1]
		l.idle[s] = list
		if mono.Now()-c.Context().(*evServer).since > int64(evIdleTimeout) {
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

// OnTick queues a sweep on every loop.
func (e *evEngine) OnTick() (time.Duration, gnet.Action) {
	e.mu.Lock()
	loops := make([]*evLoop, 0, len(e.loops))
	for _, l := range e.loops {
		loops = append(loops, l)
	}
	e.mu.Unlock()
	for _, l := range loops {
		l.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			e.sweep(l)
			return nil
		}))
	}
	return evSweep, gnet.None
}

// sweep applies the timeouts on one loop: header_timeout for a head (and
// a new connection's first), client_timeout for an idle connection,
// server_timeout for a response (a client that does not read is the
// goroutine code's, see evWriter); and closes idle server connections
// past evIdleTimeout or to servers no longer routed to.
func (e *evEngine) sweep(l *evLoop) {
	cfg, now := e.f.cfg, mono.Now()
	for ev := range l.clients {
		gc := ev.gc
		switch ev.state {
		case evIdle:
			wait := cfg.ClientTimeout.Duration
			if ev.first {
				wait = cfg.HeaderTimeout.Duration
			}
			// A new connection's first request is awaited even during
			// a shutdown, as the goroutine code does.
			began := ev.partial // a head, or a new connection, began
			if ev.first {
				began = ev.since
			}
			if ev.partial != 0 && now-began > int64(cfg.HeaderTimeout.Duration) {
				e.f.m.rejHeaderTimeout.Inc()
				gc.Close()
			} else if gc.InboundBuffered() == 0 && now-ev.since > int64(wait) ||
				gc.InboundBuffered() == 0 && !ev.first && e.f.shutting.Load() {
				gc.Close()
			}
		case evDialing:
			// A dial is bounded by connect_timeout; one that never
			// reports (the engine stopping) hands the request over.
			if now-ev.since > int64(ev.bp.b.Config().ConnectTimeout.Duration+time.Second) {
				ev.s.Release()
				ev.s, ev.bp = nil, nil
				e.handoff(ev, false)
			}
		case evWaiting:
			st, ok := ev.srv.Context().(*evServer)
			switch {
			case !ok:
			case st.headIn && now-ev.since > int64(2*evSweep):
				// The head came in time, the body is slow: the
				// goroutine code streams it (server_timeout bounds the
				// head, as there).
				if srv := ev.srv; e.resume(ev, srv, st) == gnet.Close {
					l.el.Close(srv)
				}
			case !st.headIn:
				if t := ev.bp.b.Config().ServerTimeout.Duration; t > 0 && now-ev.since > int64(t) {
					st.timedOut = true
					ev.srv.Close()
				}
			}
		}
	}
	routed := e.f.routedServers()
	for s, list := range l.idle {
		keep := list[:0]
		for _, c := range list {
			if !routed[s] || now-c.Context().(*evServer).since > int64(evIdleTimeout) {
				c.Close()
				continue
			}
			keep = append(keep, c)
		}
		if len(keep) == 0 {
			delete(l.idle, s)
		} else {
			l.idle[s] = keep
		}
	}
}

// stop closes the loops (after the frontend's connections ended).
func (e *evEngine) stop() {
	e.stopOnce.Do(func() {
		e.dialMu.Lock()
		e.stopping = true
		e.dialMu.Unlock()
		e.dials.Wait()
		e.cli.Stop()
	})
}
