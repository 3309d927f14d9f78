package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"wharf/admin"
	"wharf/conf"
	"wharf/ingest"
	"wharf/proxy"
	"wharf/sinks"
	"wharf/sinks/diskbuf"
	"wharf/sinks/syslog"
	"wharf/tap"
)

// This file wires the operator endpoints of the admin listener (the status
// page and the message tap) into the gateway, and implements `wharf tap`.

// operator is the gateway's state for the status page and the tap. The
// zero value is ready to use.
type operator struct {
	once sync.Once
	hub  *tap.Hub
	// errs remembers each component's last warning; serve installs it in
	// the log pipeline. Nil in `wharf check`.
	errs *admin.ErrorLog

	// live and adminConf are what the running config binds, listens on and
	// requires: published by the gateway (publishLive) whenever they
	// change, under its lock, so the admin handlers read them without
	// waiting behind a reload.
	live      atomic.Pointer[admin.Live]
	adminConf atomic.Pointer[conf.Admin]
}

func (o *operator) tapHub() *tap.Hub {
	o.once.Do(func() { o.hub = tap.NewHub() })
	return o.hub
}

// point returns the tap of a frontend, for Listener.SetTap.
func (o *operator) point(frontend string) *tap.Point { return o.tapHub().For(frontend) }

// close ends every tap stream (before the admin listener shuts down, which
// would otherwise wait for them).
func (o *operator) close() { o.tapHub().Close() }

// publishLive records the running binds, sinks and admin section for
// the operator endpoints. g.mu must be held, or the admin listener not yet
// started.
func (g *gateway) publishLive() {
	var l admin.Live
	for _, ln := range g.listeners {
		b := ln.Bind()
		l.Binds = append(l.Binds, admin.LiveBind{Frontend: ln.Frontend(), Bind: b.Scheme + "://" + b.Addr, Addr: ln.Addr(), Stats: bindStats(ln)})
	}
	for name, r := range g.runners {
		l.Sinks = append(l.Sinks, admin.LiveSink{Name: name, Stats: sinkStats(r, g.buffers[name])})
	}
	if g.proxySet != nil {
		l.Proxies = proxyStats(g.proxySet)
	}
	g.ops.live.Store(&l)
	adm := g.cfg.Admin
	g.ops.adminConf.Store(&adm)
}

// bindStats hands a listener's typed stats to the status page.
func bindStats(ln *ingest.Listener) func() admin.BindStats {
	return func() admin.BindStats {
		st := ln.Stats()
		return admin.BindStats{
			Received: st.Received, ReceivedBytes: st.ReceivedBytes, Truncated: st.Truncated,
			Connections: st.Connections, ConnectionsTotal: st.ConnectionsTotal,
			Malformed: st.Malformed, Dropped: st.Dropped,
			RELP: relpStatus(st.RELP),
		}
	}
}

// sinkStats hands a sink runner's typed stats to the status page. A sink
// whose disk buffer (b, may be nil) cannot be written is not ready.
func sinkStats(r *sinks.Runner, b *diskbuf.Buffer) func() admin.SinkStats {
	out, _ := r.Sink().(*syslog.Syslog)
	fwd := out
	if fwd != nil && !fwd.HasRELP() {
		fwd = nil
	}
	return func() admin.SinkStats {
		st := r.Stats()
		if b != nil && b.Stats().Unwritable {
			st.Ready = false
		}
		s := admin.SinkStats{
			Sent: st.Sent, SentBytes: st.SentBytes, Batches: st.Batches, WriteErrors: st.WriteErrors,
			Queued: int64(st.Queued), QueuedBytes: st.QueuedBytes, QueueSize: st.QueueSize, PauseSize: st.PauseSize,
			QueueBytesSize: st.QueueBytesSize, PauseBytes: st.PauseBytes,
			Dropped: st.Dropped, Ready: st.Ready,
		}
		if b != nil {
			bs := b.Stats()
			s.Buffer = &admin.BufferStatus{
				Dir: b.Dir(), Writable: !bs.Unwritable, PendingRecords: bs.Pending,
				Bytes: bs.Bytes, Segments: bs.Segments, Faults: bs.Faults,
			}
			if err := b.Fault(); err != nil {
				s.Buffer.Problem = err.Error()
			}
		}
		if out != nil {
			for _, st := range out.Servers() {
				s.Servers = append(s.Servers, admin.SinkServerStatus{URL: st.URL, Active: st.Active, Down: st.Down, Failures: st.Failures})
			}
		}
		if fwd != nil { // RELP servers: acknowledgements, resends
			rs := fwd.RELPStats()
			s.RELP = &admin.RELPSinkStatus{AcksReceived: rs.AcksReceived, Resent: rs.Resent, InFlight: rs.InFlight}
		}
		return s
	}
}

// proxyStats hands the proxy frontends' and servers' typed stats to the
// status page.
func proxyStats(set *proxy.Set) func() ([]admin.ProxyStats, []admin.ServerStats) {
	return func() ([]admin.ProxyStats, []admin.ServerStats) {
		fes, srvs := set.Stats()
		ps := make([]admin.ProxyStats, 0, len(fes))
		for _, f := range fes {
			ps = append(ps, admin.ProxyStats{
				Frontend: f.Frontend, Mode: f.Mode, Connections: f.Connections, Active: f.Active,
				BytesIn: f.BytesIn, BytesOut: f.BytesOut, IdleClosed: f.IdleClosed,
				Rejected: f.Rejected, HTTPErrors: f.HTTPErrors, HTTPRequests: f.HTTPRequests, HTTP2Errors: f.HTTP2Errors,
				EventLoop: f.EventLoop,
			})
		}
		ss := make([]admin.ServerStats, 0, len(srvs))
		for _, s := range srvs {
			ss = append(ss, admin.ServerStats(s))
		}
		return ps, ss
	}
}

// live lists the running binds and sinks for the status page, as last
// published: a reload in progress shows once it is applied.
func (g *gateway) live() admin.Live {
	if l := g.ops.live.Load(); l != nil {
		return *l
	}
	return admin.Live{}
}

// hasPort reports whether a running syslog bind listens on port.
func (g *gateway) hasPort(port uint16) bool {
	for _, b := range g.live().Binds {
		if _, p, err := net.SplitHostPort(b.Addr); err == nil && p == strconv.Itoa(int(port)) {
			return true
		}
	}
	return false
}

// registerOperatorEndpoints adds the status page, /api/status and
// /api/tap to the admin server (before it starts).
func (g *gateway) registerOperatorEndpoints() {
	g.status = admin.NewStatus(admin.StatusOptions{
		Version: version,
		Ready:   g.ready,
		Live:    g.live,
		Errors:  g.ops.errs,
	})
	g.status.Register(g.admin)
	g.admin.Handle("GET /api/tap", tap.Handler(g.ops.tapHub(), g.hasPort, g.log))
	g.reg.CounterFunc("wharf_tap_stalled_total", "Tap streams (wharf tap, GET /api/tap) ended because their client took nothing for a minute (stopped reading, or gone without closing), freeing their place among the 8.",
		func() float64 { return float64(g.ops.tapHub().Stalled()) })
	g.admin.RequireToken(g.adminToken)
}

// adminToken returns the bearer token of the running config ("" for
// none), for the admin listener's check on write endpoints. Like live, it
// does not wait behind a reload holding the gateway: it uses the admin
// section published last. token_file is read per request, so rewriting
// the file rotates the token without a reload.
func (g *gateway) adminToken() (string, error) {
	a := g.ops.adminConf.Load()
	if a == nil { // start publishes before the admin listener opens
		return "", errors.New("admin: the gateway has not started")
	}
	return a.ResolveToken()
}

const tapUsage = `Usage: wharf tap -c FILE (--frontend NAME | --port N) [--severity SEL] [--host GLOB] [--app GLOB] [--raw]

Streams the messages passing through a running wharf's frontend or port to
stdout, one JSON object per line (or the bytes as received with --raw),
until interrupted. It asks the admin listener of FILE ([admin] listen);
tapping costs the gateway nothing while nobody taps. A reader slower than
the traffic loses lines; wharf says how many on stderr.

With --raw, each message is one line: control characters (LF, CR, NUL,
TAB, ESC, DEL...) are written as '#' and three octal digits (LF as #012,
as rsyslog does), and a leading '#' as #043, so a sender cannot break a
message into lines or forge wharf's notices (which alone start with "# ").

Memory is bounded: wharf serves at most 8 taps at once (a further one is
refused with 503) and holds at most 4 MiB (and 65536 lines) per tap that
its reader has not yet taken; a line that does not fit is lost and
counted like any other. A tap that takes nothing for a minute (its
reader stopped, e.g. stdout paused, or its connection died) is ended, so
it does not keep its place.

  --severity err         err and everything more severe (syslog.conf style)
  --severity err..emerg  an inclusive range; names or numbers 0..7
  --host 'fw*'           HOSTNAME glob (* and ?)
  --app sshd             APP-NAME (RFC3164 TAG) glob

Flags:
`

// tapCmd implements `wharf tap`: it streams until SIGINT or SIGTERM.
func tapCmd(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return tapRun(ctx, args, stdout, stderr)
}

// tapRun is `wharf tap` streaming until ctx ends.
func tapRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("wharf tap", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, tapUsage); fs.PrintDefaults() }
	af := addAdminFlags(fs, "settings")
	frontend := fs.String("frontend", "", "frontend name to tap")
	port := fs.Int("port", 0, "local port to tap (its UDP and TCP binds)")
	severity := fs.String("severity", "", "severity selector: LEVEL (that and more severe) or A..B")
	host := fs.String("host", "", "HOSTNAME glob")
	app := fs.String("app", "", "APP-NAME glob")
	raw := fs.Bool("raw", false, "print the bytes as received instead of JSON")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "wharf tap: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if (*frontend == "") == (*port == 0) {
		fmt.Fprintln(stderr, "wharf tap: give exactly one of --frontend NAME or --port N")
		return 2
	}
	if *port < 0 || *port > 65535 {
		fmt.Fprintf(stderr, "wharf tap: --port %d out of range (1-65535)\n", *port)
		return 2
	}
	if _, err := tap.ParseSeverity(*severity); err != nil {
		fmt.Fprintf(stderr, "wharf %v\n", err)
		return 2
	}
	ac, err := af.client(0) // a stream: no timeout
	if err != nil {
		fmt.Fprintf(stderr, "wharf tap: %v\n", err)
		return 2
	}
	q := url.Values{}
	if *frontend != "" {
		q.Set("frontend", *frontend)
	}
	if *port != 0 {
		q.Set("port", strconv.Itoa(*port))
	}
	for k, v := range map[string]string{"severity": *severity, "host": *host, "app": *app} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if *raw {
		q.Set("raw", "1")
	}
	return streamTap(ctx, ac, "/api/tap?"+q.Encode(), stdout, stderr)
}

// dialable turns a listen address into one to connect to: a wildcard host
// becomes loopback.
func dialable(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}

// streamTap copies the tap stream at u to stdout (notices to stderr) until
// ctx ends or the stream does.
// A non-empty token is sent as "Authorization: Bearer TOKEN".
func streamTap(ctx context.Context, ac *adminClient, path string, stdout, stderr io.Writer) int {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ac.base+path, nil)
	if err != nil {
		fmt.Fprintf(stderr, "wharf tap: %v\n", err)
		return 2
	}
	if ac.token != "" {
		req.Header.Set("Authorization", "Bearer "+ac.token)
	}
	resp, err := ac.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0
		}
		fmt.Fprintf(stderr, "wharf tap: cannot reach the admin listener (%v); is wharf running with this config?\n", err)
		return 1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		fmt.Fprintf(stderr, "wharf tap: %s: %s", resp.Status, b)
		if resp.StatusCode == http.StatusUnauthorized {
			fmt.Fprintln(stderr, "wharf tap: the admin listener wants a bearer token: run with -c naming the config that sets [admin] token or token_file")
		}
		if resp.StatusCode == http.StatusNotFound && strings.Contains(string(b), "404 page not found") {
			fmt.Fprintln(stderr, "wharf tap: this wharf has no /api/tap (older version?)")
		}
		return 1
	}
	in := bufio.NewReaderSize(resp.Body, 64<<10)
	out := bufio.NewWriterSize(stdout, 64<<10)
	defer out.Flush()
	// Only a whole line can be a notice: the server escapes a message's
	// line feeds and leading '#' (tap.AppendRaw; JSON lines start with
	// '{'), and the rest of a line longer than the buffer is not checked.
	atStart := true
	for {
		line, err := in.ReadSlice('\n')
		if len(line) > 0 {
			if atStart && strings.HasPrefix(string(line), tap.NoticePrefix) {
				out.Flush()
				fmt.Fprint(stderr, "wharf tap: "+string(line[len(tap.NoticePrefix):]))
			} else if _, werr := out.Write(line); werr != nil {
				return 1 // stdout closed (e.g. piped into head)
			}
			atStart = line[len(line)-1] == '\n'
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue // a line longer than the buffer: written in pieces
		}
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, io.EOF) {
				return 0
			}
			out.Flush()
			fmt.Fprintf(stderr, "wharf tap: stream ended: %v\n", err)
			return 1
		}
		if in.Buffered() == 0 {
			if out.Flush() != nil {
				return 1
			}
		}
	}
}

// relpStatus is a RELP bind's session counters for the status page.
func relpStatus(r *ingest.RELPStats) *admin.RELPStatus {
	if r == nil {
		return nil
	}
	return &admin.RELPStatus{Sessions: r.Sessions, InFlight: r.InFlight, AcksSent: r.AcksSent}
}
