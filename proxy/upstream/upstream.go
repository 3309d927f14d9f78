// Package upstream is a backend's pool of servers: server selection
// (weighted round robin, least connections, source-IP hash), connection
// limits with a queue for when every server is full, active health
// checks (TCP connect or HTTP GET) and passive ones (failed connects),
// with per-server metrics.
//
// A Backend is built once from its config and shared by every frontend
// that forwards to it. Pick, Connect and Release are safe for concurrent
// use; the short per-backend lock is taken once per connection (tcp) or
// request (http), never per byte, and once more by a Release while
// connections wait in the queue.
package upstream

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"wharf/conf"
	"wharf/metrics"
	"wharf/proxy/proxyproto"
)

// ErrNoServer means no server of the backend is up and below its maxconn
// (for Connect: none is up, so waiting in the queue would not help).
var ErrNoServer = errors.New("no server available")

// ErrQueueTimeout means a connection waited in the backend's queue for
// queue_timeout while every usable server stayed at its maxconn.
var ErrQueueTimeout = errors.New("queue timeout: every server stayed at maxconn")

// ErrQueueFull means every usable server is at its maxconn and the queue
// already holds as many connections as the caller allows.
var ErrQueueFull = errors.New("queue full: every server at maxconn")

// Server is one server of a backend. Its counters are updated by the
// backend; callers read Up and Active.
type Server struct {
	// Name labels the server in metrics and logs.
	Name string
	// Addr is host:port.
	Addr string
	// Weight is the configured relative share (1-256). The share picks use
	// is EffectiveWeight, which SetWeight changes at runtime.
	Weight int
	// MaxConn bounds concurrent connections or requests; 0 is unlimited.
	MaxConn int
	// SendProxy is the PROXY protocol version to send first (1 or 2), 0
	// for none.
	SendProxy int
	// Backup: taken only while no other server is usable (conf.Server).
	Backup bool

	b      *Backend
	up     atomic.Bool
	active atomic.Int64
	// admin is the AdminState, weight the effective weight (0-256):
	// both set by the operator (SetState, SetWeight) and read without
	// the lock by eligible, so a pick costs two atomic loads more.
	admin  atomic.Uint32
	weight atomic.Int32

	// Guarded by b.mu.
	current        int // smooth weighted round robin state
	okRun, failRun int

	checkNanos atomic.Int64

	// BytesToServer and BytesFromServer count forwarded payload bytes.
	BytesToServer, BytesFromServer *metrics.Counter
	conns, connErrs                *metrics.Counter
	upGauge, activeGauge           *metrics.Gauge
	checksOK, checksFail           *metrics.Counter
	wentUp, wentDown               *metrics.Counter
}

// ServerStats is a snapshot of a server's counters (what its
// wharf_proxy_server_* series hold), for the status page.
type ServerStats struct {
	Backend, Server string
	// Up is whether the server passes its health checks; Active what is
	// in flight to it.
	Up     bool
	Active int64
	// AdminState is "ready", "drain" or "maint" (SetState); Weight the
	// effective weight (SetWeight; the configured one until changed).
	AdminState string
	Weight     int
	// Backup is the server's backup setting (conf.Server).
	Backup bool
	// Connections counts connections (tcp) or requests (http) sent;
	// ConnectErrors failed connects; BytesSent and BytesReceived payload.
	Connections, ConnectErrors, BytesSent, BytesReceived uint64
	// ChecksOK and ChecksFailed count active health checks; WentUp and
	// WentDown state changes; CheckSeconds is the last check's duration.
	ChecksOK, ChecksFailed, WentUp, WentDown uint64
	CheckSeconds                             float64
}

// Stats returns a snapshot of the server's counters.
func (s *Server) Stats() ServerStats {
	return ServerStats{
		Backend: s.b.Name, Server: s.Name, Up: s.Up(), Active: s.Active(),
		AdminState: s.State().String(), Weight: s.EffectiveWeight(), Backup: s.Backup,
		Connections: s.conns.Load(), ConnectErrors: s.connErrs.Load(),
		BytesSent: s.BytesToServer.Load(), BytesReceived: s.BytesFromServer.Load(),
		ChecksOK: s.checksOK.Load(), ChecksFailed: s.checksFail.Load(),
		WentUp: s.wentUp.Load(), WentDown: s.wentDown.Load(),
		CheckSeconds: float64(s.checkNanos.Load()) / 1e9,
	}
}

// Up reports whether the server passes its health checks (it takes new
// connections when also in state ready with a weight above 0).
func (s *Server) Up() bool { return s.up.Load() }

// State returns the server's administrative state.
func (s *Server) State() AdminState { return AdminState(s.admin.Load()) }

// EffectiveWeight returns the weight picks use (0-256): the configured
// one until SetWeight changes it.
func (s *Server) EffectiveWeight() int { return int(s.weight.Load()) }

// Active is the number of connections or requests in flight.
func (s *Server) Active() int64 { return s.active.Load() }

// Backend is a named pool of servers.
type Backend struct {
	// Name is the backend's config name.
	Name string
	cfg  conf.Backend
	log  *slog.Logger

	mu      sync.Mutex
	adminMu sync.Mutex // serializes SetState and SetWeight (ring rebuilds)
	servers []*Server  // all, in config order
	// pool are the servers the balance policy picks from (all but the
	// backups); backups, in config order, are used only while no server
	// of pool is usable (see choose).
	pool, backups []*Server
	next          int    // leastconn tie-break rotation
	policy        policy // the balance policy, resolved once by New
	// ring, hashOn and hashHeader: balance "hash" (see hash.go).
	ring       ring
	hashOn     HashOn
	hashHeader string

	// queue holds *waiter: Acquires waiting, first come first served,
	// for a server below maxconn (guarded by mu). waiting is its length,
	// read without mu by Release, which takes mu only when it is above 0.
	queue        list.List
	waiting      atomic.Int64
	queueTimeout time.Duration
	queued       *metrics.Gauge

	noServer *metrics.Counter
	reg      *metrics.Registry

	stop    chan struct{}
	stopped sync.WaitGroup
	closeMu sync.Once
}

// New builds a backend from its (defaulted, validated) config. Servers
// start up; health checks begin with Start.
func New(cfg *conf.Backend, reg *metrics.Registry, log *slog.Logger) (*Backend, error) {
	c := *cfg // a copy with unset values defaulted (configs built in code)
	c.Servers = append([]conf.Server(nil), cfg.Servers...)
	(&conf.Config{Backends: map[string]*conf.Backend{c.Name: &c}}).ApplyDefaults()
	cfg = &c
	b := &Backend{Name: cfg.Name, cfg: *cfg, log: log.With("backend", cfg.Name), stop: make(chan struct{})}
	var ok bool
	if b.policy, ok = policies[cfg.Balance]; !ok {
		return nil, fmt.Errorf("proxy/upstream: backend %s: balance %q is not one of roundrobin, leastconn, source, hash", cfg.Name, cfg.Balance)
	}
	if len(cfg.Servers) == 0 {
		return nil, fmt.Errorf("proxy/upstream: backend %s has no servers; add [[backend.%s.server]]", cfg.Name, cfg.Name)
	}
	b.reg = reg
	b.noServer = reg.Counter("wharf_proxy_backend_no_server_total", "Connections or requests refused because no server of the backend was up and below maxconn (none up, the queue full, or queue_timeout passed in it).", "backend", cfg.Name)
	b.queued = reg.Gauge("wharf_proxy_backend_queued", "Connections (tcp) or requests (http) waiting for a server below maxconn (HAProxy's qcur).", "backend", cfg.Name)
	b.queueTimeout = cfg.QueueTimeout.Duration
	if b.queueTimeout <= 0 {
		b.queueTimeout = cfg.ConnectTimeout.Duration // HAProxy: timeout queue defaults to timeout connect
	}
	for _, sc := range cfg.Servers {
		s := &Server{Name: sc.Name, Addr: sc.Address, Weight: max(sc.Weight, 1), MaxConn: sc.MaxConn, Backup: sc.Backup, b: b}
		switch sc.SendProxy {
		case "v1":
			s.SendProxy = 1
		case "v2":
			s.SendProxy = 2
		}
		l := []string{"backend", cfg.Name, "server", s.Name}
		s.BytesToServer = reg.Counter("wharf_proxy_server_bytes_sent_total", "Payload bytes forwarded to the server.", l...)
		s.BytesFromServer = reg.Counter("wharf_proxy_server_bytes_received_total", "Payload bytes received from the server.", l...)
		s.conns = reg.Counter("wharf_proxy_server_connections_total", "Connections (tcp) or requests (http) sent to the server.", l...)
		s.connErrs = reg.Counter("wharf_proxy_server_connect_errors_total", "Failed connects to the server (each counts toward fall).", l...)
		s.upGauge = reg.Gauge("wharf_proxy_server_up", "1 while the server passes its health checks, 0 while it is down (drain and maint, set on the admin API, are wharf_proxy_server_admin_state).", l...)
		s.activeGauge = reg.Gauge("wharf_proxy_server_active", "Connections or requests in flight to the server.", l...)
		s.checksOK = reg.Counter("wharf_proxy_server_checks_total", "Active health checks by result.", append(l, "result", "ok")...)
		s.checksFail = reg.Counter("wharf_proxy_server_checks_total", "Active health checks by result.", append(l, "result", "fail")...)
		s.wentUp = reg.Counter("wharf_proxy_server_transitions_total", "Health state changes of the server.", append(l, "to", "up")...)
		s.wentDown = reg.Counter("wharf_proxy_server_transitions_total", "Health state changes of the server.", append(l, "to", "down")...)
		s.weight.Store(int32(s.Weight))
		s.up.Store(true)
		s.upGauge.Set(1)
		b.servers = append(b.servers, s)
		if s.Backup {
			b.backups = append(b.backups, s)
		} else {
			b.pool = append(b.pool, s)
		}
	}
	if cfg.Balance == "hash" {
		b.ring = newRing(b.pool, (*Server).EffectiveWeight)
		switch key := cfg.HashKey; {
		case key == "uri":
			b.hashOn = HashURI
		case strings.HasPrefix(key, "header:"):
			b.hashOn, b.hashHeader = HashHeader, strings.ToLower(strings.TrimPrefix(key, "header:"))
		}
	}
	return b, nil
}

// Servers returns the servers in config order. The slice must not be
// modified.
func (b *Backend) Servers() []*Server { return b.servers }

// Config returns the backend's config.
func (b *Backend) Config() *conf.Backend { return &b.cfg }

// usable: up, ready and weighted above 0; a backup server is taken only
// while no other server is usable.
func (s *Server) usable() bool {
	return s.up.Load() && s.admin.Load() == uint32(StateReady) && s.weight.Load() > 0
}

// eligible: usable, below maxconn, and not in tried.
func (s *Server) eligible(tried []*Server) bool {
	if !s.usable() || (s.MaxConn > 0 && s.active.Load() >= int64(s.MaxConn)) {
		return false
	}
	for _, t := range tried {
		if t == s {
			return false
		}
	}
	return true
}

// Pick chooses a server by the backend's balance algorithm among those up,
// below maxconn and not in tried, and counts the connection as active on
// it: the caller must call Release exactly once. It returns nil when no
// server qualifies.
func (b *Backend) Pick(client netip.Addr, tried []*Server) *Server {
	b.mu.Lock()
	s := b.choose(client, tried)
	if s != nil {
		s.take()
	}
	b.mu.Unlock()
	return s
}

// policy is a balance policy, resolved from its config name once (New).
// choose dispatches on it with a switch rather than through a func
// value: a call through a func value makes tried escape, which cost the
// HTTP path an allocation per request (TestZeroAllocGET).
type policy uint8

const (
	roundRobin policy = iota
	leastConn
	source
	hashRing
)

// policies are the balance policies by config name.
var policies = map[string]policy{"roundrobin": roundRobin, "leastconn": leastConn, "source": source, "hash": hashRing}

// choose picks among b's eligible servers (up, below maxconn, not in
// tried) by b's policy, with b.mu held, or returns nil.
func (b *Backend) choose(client netip.Addr, tried []*Server) *Server {
	if s, ok := b.backup(tried); ok {
		return s
	}
	switch b.policy {
	case leastConn:
		return b.pickLeastConn(tried)
	case source:
		return b.pickSource(client, tried)
	case hashRing:
		return b.pickHash(client, tried)
	}
	return b.pickRoundRobin(tried)
}

// backup decides, with b.mu held, whether the backups serve: ok when b
// has backups and no server of the pool is usable (a pool server that is
// only full or already tried does not let a backup in, as in HAProxy).
// Then s is the first eligible backup in config order, or nil.
func (b *Backend) backup(tried []*Server) (s *Server, ok bool) {
	if len(b.backups) == 0 {
		return nil, false
	}
	for _, p := range b.pool {
		if p.usable() {
			return nil, false
		}
	}
	for _, s := range b.backups {
		if s.eligible(tried) {
			return s, true
		}
	}
	return nil, true
}

// Release ends a connection or request Pick counted. The slot goes to
// the first connection in the backend's queue, if one waits.
func (s *Server) Release() {
	s.active.Add(-1)
	s.activeGauge.Add(-1)
	// After the decrement: a waiter counts itself in waiting before its
	// last look at the servers (enqueue), so either it sees this slot or
	// this sees it.
	s.b.wake()
}

// pickRoundRobin is smooth weighted round robin (as in nginx): each pick
// raises every candidate by its weight and lowers the winner by the total,
// which interleaves servers in proportion to their weights.
func (b *Backend) pickRoundRobin(tried []*Server) *Server {
	var best *Server
	total := 0
	for _, s := range b.pool {
		if !s.eligible(tried) {
			continue
		}
		w := int(s.weight.Load())
		s.current += w
		total += w
		if best == nil || s.current > best.current {
			best = s
		}
	}
	if best != nil {
		best.current -= total
	}
	return best
}

// pickLeastConn takes the fewest active connections per weight; ties go
// round the servers so equal ones share.
func (b *Backend) pickLeastConn(tried []*Server) *Server {
	var best *Server
	n := len(b.pool)
	for i := range n {
		s := b.pool[(b.next+i)%n]
		if !s.eligible(tried) {
			continue
		}
		// s.active/weight < best.active/best's weight, without division.
		if best == nil || s.active.Load()*int64(best.weight.Load()) < best.active.Load()*int64(s.weight.Load()) {
			best = s
		}
	}
	b.next++
	return best
}

// pickSource hashes the client address onto the eligible servers by
// weight: one client keeps its server while the eligible set is stable.
func (b *Backend) pickSource(client netip.Addr, tried []*Server) *Server {
	total := 0
	for _, s := range b.pool {
		if s.eligible(tried) {
			total += int(s.weight.Load())
		}
	}
	if total == 0 {
		return nil
	}
	// FNV-1a over the 16-byte form, inline so a pick does not allocate.
	h := uint32(2166136261)
	for _, c := range client.Unmap().As16() {
		h = (h ^ uint32(c)) * 16777619
	}
	k := int(h % uint32(total))
	for _, s := range b.pool {
		if !s.eligible(tried) {
			continue
		}
		w := int(s.weight.Load())
		if k < w {
			return s
		}
		k -= w
	}
	return nil
}

// ConnectFailed records a failed connect: fall failures in a row take
// the server down.
func (s *Server) ConnectFailed(err error) {
	s.connErrs.Inc()
	s.observe(false, "connect failed", err)
}

// ConnectOK records a successful connect.
func (s *Server) ConnectOK() {
	s.conns.Inc()
	s.b.mu.Lock()
	if s.up.Load() {
		s.failRun = 0
	}
	s.b.mu.Unlock()
}

// observe applies one check or connect result to the rise/fall state.
// Passive results only ever take a server down; only active checks (or,
// with check "none", the retry timer) bring it back.
func (s *Server) observe(ok bool, what string, err error) {
	b := s.b
	b.mu.Lock()
	var changed bool
	if ok {
		s.failRun = 0
		s.okRun++
		if !s.up.Load() && s.okRun >= b.cfg.Rise {
			s.up.Store(true)
			changed = true
		}
	} else {
		s.okRun = 0
		s.failRun++
		if s.up.Load() && s.failRun >= b.cfg.Fall {
			s.up.Store(false)
			changed = true
		}
	}
	up := s.up.Load()
	if changed && up {
		b.dispatch()
	}
	b.mu.Unlock()
	if !changed {
		return
	}
	if up {
		s.upGauge.Set(1)
		s.wentUp.Inc()
		b.log.Info("server up", "server", s.Name, "addr", s.Addr, "after", fmt.Sprintf("%d checks passed", b.cfg.Rise))
	} else {
		s.upGauge.Set(0)
		s.wentDown.Inc()
		b.log.Warn("server down", "server", s.Name, "addr", s.Addr, "after", fmt.Sprintf("%d failures (%s)", b.cfg.Fall, what), "err", err)
	}
}

// Connect picks a server and connects to it, retrying on the next server
// (up to the backend's retries) when a connect fails. first (may be nil)
// returns the bytes to write before anything else, e.g. a PROXY header
// and what the client already sent; they are written within the connect
// timeout. On success the server counts the connection as active until
// Release.
//
// When servers are up but every one is at its maxconn, the first pick
// waits in the backend's queue (first come, first served) for a slot,
// up to the backend's queue_timeout, as HAProxy queues; maxQueue bounds
// how many connections may wait there (the caller's share of memory and
// goroutines, e.g. its frontend's maxconn; 0 does not queue). Retries
// after a failed connect do not queue. ErrNoServer means no server was
// up (or maxQueue is 0), ErrQueueFull the queue was full and
// ErrQueueTimeout the wait timed out; each is counted as no_server.
func (b *Backend) Connect(ctx context.Context, client netip.Addr, maxQueue int, first func(*Server) []byte) (*net.TCPConn, *Server, error) {
	var tried []*Server
	var lastErr error
	d := net.Dialer{Timeout: b.cfg.ConnectTimeout.Duration}
	for attempt := 0; attempt <= b.cfg.Retries; attempt++ {
		var s *Server
		if attempt == 0 {
			var err error
			if s, err = b.Acquire(ctx, ClientKey(client), maxQueue); err != nil {
				return nil, nil, err
			}
		} else if s = b.Pick(client, tried); s == nil {
			break
		}
		tried = append(tried, s)
		c, err := d.DialContext(ctx, "tcp", s.Addr)
		if err == nil && first != nil {
			if p := first(s); len(p) > 0 {
				c.SetWriteDeadline(time.Now().Add(b.cfg.ConnectTimeout.Duration))
				if _, err = c.Write(p); err != nil {
					c.Close()
				} else {
					c.SetWriteDeadline(time.Time{})
				}
			}
		}
		if err != nil {
			s.Release()
			if ctx.Err() != nil {
				return nil, nil, ctx.Err()
			}
			s.ConnectFailed(err)
			lastErr = fmt.Errorf("server %s (%s): %w", s.Name, s.Addr, err)
			continue
		}
		s.ConnectOK()
		return c.(*net.TCPConn), s, nil
	}
	if lastErr == nil {
		b.noServer.Inc()
		return nil, nil, ErrNoServer
	}
	return nil, nil, lastErr
}

// Start runs the active health checks (one goroutine per server) until
// Close. With check "none", a down server is put back after
// check_interval so traffic retries it. It also points the servers'
// computed series (check seconds, weight, admin state) at b's servers:
// not New, so a backend a reload builds and then drops (the reload
// failed) does not take them over from the one that runs.
func (b *Backend) Start() {
	for _, s := range b.servers {
		l := []string{"backend", b.Name, "server", s.Name}
		b.reg.GaugeFunc("wharf_proxy_server_check_seconds", "Duration of the server's last active health check.",
			func() float64 { return float64(s.checkNanos.Load()) / 1e9 }, l...)
		b.reg.GaugeFunc("wharf_proxy_server_weight", "Effective weight of the server (0-256): the configured one until changed on the admin API.",
			func() float64 { return float64(s.weight.Load()) }, l...)
		for st := StateReady; st <= StateMaint; st++ {
			b.reg.GaugeFunc("wharf_proxy_server_admin_state", "1 for the server's administrative state (ready, drain, maint; set on the admin API), 0 for the others.",
				func() float64 {
					if s.State() == st {
						return 1
					}
					return 0
				}, append(l, "state", st.String())...)
		}
	}
	for i, s := range b.servers {
		b.stopped.Add(1)
		// Spread the first checks over the interval so servers sharing a
		// host are not probed in bursts.
		offset := b.cfg.CheckInterval.Duration * time.Duration(i) / time.Duration(len(b.servers))
		go b.checkLoop(s, offset)
	}
}

// Close stops the health checks and waits for them.
func (b *Backend) Close() {
	b.closeMu.Do(func() { close(b.stop) })
	b.stopped.Wait()
}

func (b *Backend) checkLoop(s *Server, offset time.Duration) {
	defer b.stopped.Done()
	t := time.NewTimer(offset)
	defer t.Stop()
	var client *http.Client
	if b.cfg.Check == "http" {
		client = &http.Client{
			Transport: &http.Transport{DialContext: s.dialForCheck, DisableKeepAlives: s.SendProxy != 0, MaxIdleConnsPerHost: 1},
			Timeout:   b.cfg.CheckTimeout.Duration,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
		defer client.CloseIdleConnections()
	}
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
		}
		t.Reset(b.cfg.CheckInterval.Duration)
		switch b.cfg.Check {
		case "none":
			if !s.up.Load() {
				b.mu.Lock()
				s.up.Store(true)
				s.failRun, s.okRun = 0, 0
				b.dispatch()
				b.mu.Unlock()
				s.upGauge.Set(1)
				s.wentUp.Inc()
				b.log.Info("server retried after check_interval (check none)", "server", s.Name, "addr", s.Addr)
			}
			continue
		}
		start := time.Now()
		err := b.check(s, client)
		s.checkNanos.Store(int64(time.Since(start)))
		if err != nil {
			s.checksFail.Inc()
			s.observe(false, "health check", err)
		} else {
			s.checksOK.Inc()
			s.observe(true, "health check", nil)
		}
	}
}

// check runs one active check: a TCP connect (sending a PROXY LOCAL
// header when the server expects PROXY) or an HTTP GET.
func (b *Backend) check(s *Server, client *http.Client) error {
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.CheckTimeout.Duration)
	defer cancel()
	go func() {
		select {
		case <-b.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	if client == nil {
		c, err := s.dialForCheck(ctx, "tcp", s.Addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.Addr+b.cfg.CheckPath, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "wharf-check")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var buf [512]byte
	for range 8 { // drain a little so the connection can be reused
		if _, err := resp.Body.Read(buf[:]); err != nil {
			break
		}
	}
	if resp.StatusCode != b.cfg.CheckStatus {
		return fmt.Errorf("GET %s: status %d, want %d", b.cfg.CheckPath, resp.StatusCode, b.cfg.CheckStatus)
	}
	return nil
}

// dialForCheck connects for a health check; a server expecting PROXY gets
// a header saying the connection is the proxy's own (v2 LOCAL, v1
// UNKNOWN), as HAProxy's check-send-proxy does.
func (s *Server) dialForCheck(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil || s.SendProxy == 0 {
		return c, err
	}
	var hdr []byte
	if s.SendProxy == 1 {
		hdr = append(hdr, "PROXY UNKNOWN\r\n"...)
	} else {
		hdr = proxyproto.AppendV2Local(hdr)
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetWriteDeadline(dl)
	}
	if _, err := c.Write(hdr); err != nil {
		c.Close()
		return nil, err
	}
	c.SetWriteDeadline(time.Time{})
	return c, nil
}

// waiter is a connection or request in the backend's queue, to be given
// a server chosen by key. s is set, under b.mu, by the dispatch that
// gives it a server; then ready is closed.
type waiter struct {
	key   Key
	s     *Server
	ready chan struct{}
	el    *list.Element
}

// TryAcquire is the first pick of a connection or request that cannot
// wait (an event loop): a server chosen by k, counted as by Pick, if one
// is below maxconn and nothing waits in the queue ahead; nil otherwise
// (Acquire, on a goroutine, then waits in the queue).
func (b *Backend) TryAcquire(k Key) *Server {
	b.mu.Lock()
	var s *Server
	if b.queue.Len() == 0 {
		if s = b.chooseKey(k, nil); s != nil {
			s.take()
		}
	}
	b.mu.Unlock()
	return s
}

// Acquire is the first pick of a connection (Connect) or request (the
// HTTP proxy): a server chosen by k at once if one is below maxconn and
// nothing waits ahead, else a place in the backend's queue, first come
// first served, until a Release frees a slot or queue_timeout passes, as
// HAProxy queues. maxQueue bounds how many may wait (the caller's share
// of memory and goroutines, e.g. its frontend's maxconn; 0 does not
// queue). ErrNoServer means no server is up (or maxQueue is 0),
// ErrQueueFull the queue was full, ErrQueueTimeout the wait timed out;
// each is counted as no_server. A ctx that ends cuts the wait short with
// its error, not counted. On success the caller calls Release once.
func (b *Backend) Acquire(ctx context.Context, k Key, maxQueue int) (*Server, error) {
	s, err := b.acquire(ctx, k, maxQueue)
	if err != nil && (ctx.Err() == nil || !errors.Is(err, ctx.Err())) { // a refusal, not a shutdown
		b.noServer.Inc()
	}
	return s, err
}

// acquire is Acquire without the count.
func (b *Backend) acquire(ctx context.Context, k Key, maxQueue int) (*Server, error) {
	b.mu.Lock()
	if b.queue.Len() == 0 {
		if s := b.chooseKey(k, nil); s != nil {
			s.take()
			b.mu.Unlock()
			return s, nil
		}
	}
	switch {
	case maxQueue <= 0 || !b.anyUsable():
		b.mu.Unlock()
		return nil, ErrNoServer // waiting would not help
	case b.queue.Len() >= maxQueue:
		b.mu.Unlock()
		return nil, ErrQueueFull
	}
	w := &waiter{key: k, ready: make(chan struct{})}
	w.el = b.queue.PushBack(w)
	b.waiting.Add(1)
	b.queued.Add(1)
	// A Release between the look above and waiting.Add did not see this
	// waiter: look again, now that every later Release will.
	b.dispatch()
	b.mu.Unlock()

	t := time.NewTimer(b.queueTimeout)
	defer t.Stop()
	var err error
	select {
	case <-w.ready:
		return w.s, nil
	case <-t.C:
		err = ErrQueueTimeout
	case <-ctx.Done():
		err = ctx.Err()
	}
	b.mu.Lock()
	s := w.s
	if s == nil {
		b.unqueue(w)
	}
	b.mu.Unlock()
	switch {
	case s == nil:
		return nil, err
	case ctx.Err() != nil: // a slot came as the wait was cut short
		s.Release()
		return nil, ctx.Err()
	}
	return s, nil // a slot came just as the timer fired
}

// take counts a connection on s, with b.mu held.
func (s *Server) take() {
	s.active.Add(1)
	s.activeGauge.Add(1)
}

// unqueue removes w from the queue, with b.mu held.
func (b *Backend) unqueue(w *waiter) {
	b.queue.Remove(w.el)
	b.waiting.Add(-1)
	b.queued.Add(-1)
}

// anyUsable reports, with b.mu held, whether a server is up, ready and
// weighted above 0, whether or not it is at its maxconn: whether waiting
// for a slot can help.
func (b *Backend) anyUsable() bool {
	for _, s := range b.servers {
		if s.usable() {
			return true
		}
	}
	return false
}

// wake hands free slots to queued connections; it takes b.mu only when
// some wait.
func (b *Backend) wake() {
	if b.waiting.Load() == 0 {
		return
	}
	b.mu.Lock()
	b.dispatch()
	b.mu.Unlock()
}

// dispatch gives servers below maxconn to queued connections and
// requests, first come first served, with b.mu held. It stops at the
// first one that gets none: every waiter has tried nothing yet and every
// key chooses among all eligible servers, so a later one would get none
// either.
func (b *Backend) dispatch() {
	for e := b.queue.Front(); e != nil; e = b.queue.Front() {
		w := e.Value.(*waiter)
		s := b.chooseKey(w.key, nil)
		if s == nil {
			return
		}
		s.take()
		w.s = s
		b.unqueue(w)
		close(w.ready)
	}
}

// Queued returns how many connections and requests wait in the
// backend's queue.
func (b *Backend) Queued() int { return int(b.waiting.Load()) }

// CountNoServer counts a refusal for lack of a server (callers that
// Pick directly, like the HTTP proxy).
func (b *Backend) CountNoServer() { b.noServer.Inc() }
