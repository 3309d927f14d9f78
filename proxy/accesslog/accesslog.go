// Package accesslog turns what a proxy frontend did (one HTTP request, one
// TCP connection) into a syslog message and routes it to the sinks named
// by the frontend's access_log key, as HAProxy's "option httplog" and
// "option tcplog" lines go to its log servers. wharf is a log relay, so
// its own access log is a message like any other: every sink, encoding,
// disk buffer and tap works on it.
//
// A line is an RFC 5424 message, facility local0, severity info (err for
// a 5xx answer), APP-NAME "wharf", MSGID "http" or "tcp", with the fields
// as structured data (for JSON sinks and routes) and as text in MSG, in
// HAProxy's order:
//
//	<134>1 2026-12-05T19:10:00.123456Z gw wharf 4242 http [http@32473 client="10.0.0.7:51234" frontend="web" backend="be" server="b1" status="200" bytes="1234" tc="0" tr="2" ta="3"] 10.0.0.7:51234 [05/Dec/2026:19:10:00.123] web be/b1 0/2/3 200 1234 "GET /index.html HTTP/1.1"
//	<134>1 2026-12-05T19:10:00.123456Z gw wharf 4242 tcp [tcp@32473 client="10.0.0.7:51234" frontend="db" backend="pg" server="p1" bytes_in="512" bytes_out="20480" tc="1" ta="1503"] 10.0.0.7:51234 [05/Dec/2026:19:10:00.123] db pg/p1 1/1503 512 20480
//
// Times are milliseconds from the request's (connection's) start: tc to
// the server connection (0 for a pooled one), tr to the response head, ta
// to the end; -1 when the step was not reached. bytes counts the response
// body bytes sent to the client.
//
// Logging never holds the proxy back: a message is offered to each sink
// without waiting, and one a full sink queue refuses is counted as that
// sink's drop (queue_full), like UDP input. While someone taps the
// frontend (wharf tap --frontend NAME) the lines are built for the tap
// too, with or without access_log.
package accesslog

import (
	"net/netip"
	"os"
	"strconv"
	"sync"
	"time"

	"wharf/ingest/parse"
	"wharf/message"
	"wharf/route"
)

// Logger writes one frontend's access log. A nil *Logger logs nothing.
// Its methods are safe for concurrent use.
type Logger struct {
	frontend string
	routes   *route.Holder
	tap      Tap
	host     string
	pid      string
}

// Tap is the message tap of a frontend (tap.Point): Active is one atomic
// load; Publish copies what it keeps and never blocks.
type Tap interface {
	Active() bool
	Publish(m *message.Message)
}

// New returns the access logger of the named proxy frontend: it looks up
// the frontend's sinks in the routing table at each line, so a reload
// that changes access_log applies to the next line. tap may be nil.
func New(frontend string, routes *route.Holder, tap Tap) *Logger {
	if routes == nil && tap == nil {
		return nil
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "-"
	}
	return &Logger{frontend: frontend, routes: routes, tap: tap, host: host, pid: strconv.Itoa(os.Getpid())}
}

// On reports whether a line made now would go anywhere: the frontend has
// access_log sinks or is tapped. The proxies keep their records only then.
func (l *Logger) On() bool { return len(l.dests()) > 0 || l.tapped() }

func (l *Logger) tapped() bool { return l != nil && l.tap != nil && l.tap.Active() }

// Request is one HTTP request (or HTTP/2 stream) as the access log sees
// it. Method and Target are copied by Begin, so the record outlives the
// request head's buffer.
type Request struct {
	Start           time.Time
	Client          netip.AddrPort
	Method, Target  []byte
	Proto           string // "HTTP/1.1", "HTTP/1.0", "HTTP/2.0"
	Backend, Server string // "" when none was chosen
	Status          int    // 0: no answer (the client left)
	Bytes           int64  // response body bytes sent to the client
	// Connect and Response are the times to the server connection and to
	// the response head, -1 until reached.
	Connect, Response time.Duration
}

// Begin starts the record of a new request.
func (r *Request) Begin(now time.Time, client netip.AddrPort, method, target []byte, proto string) {
	*r = Request{Start: now, Client: client, Method: append(r.Method[:0], method...),
		Target: append(r.Target[:0], target...), Proto: proto, Connect: -1, Response: -1}
}

// Conn is one TCP proxy connection.
type Conn struct {
	Start             time.Time
	Client            netip.AddrPort
	Backend, Server   string
	BytesIn, BytesOut int64 // from the client, to the client
	Connect           time.Duration
}

// line is an access log line being built, pooled with its buffer.
type line struct {
	b     []byte
	now   time.Time
	dests []route.Dest
}

var lines = sync.Pool{New: func() any { return &line{b: make([]byte, 0, 512)} }}

// num is one integer field of a line's structured data.
type num struct {
	name string
	v    int64
}

// begin starts a line made now, or returns nil when it would go nowhere
// (no access_log sinks, nobody tapping).
func (l *Logger) begin() *line {
	dests := l.dests()
	if len(dests) == 0 && !l.tapped() {
		return nil
	}
	ln := lines.Get().(*line)
	ln.now, ln.dests = time.Now(), dests
	return ln
}

// head writes what every line has: the syslog header, the structured
// data (client, frontend, backend, server, then nums) and MSG's first
// fields (client [date] frontend backend/server).
func (l *Logger) head(ln *line, msgid string, bad bool, client netip.AddrPort, start time.Time, backend, server string, nums ...num) []byte {
	b := l.header(ln.b[:0], ln.now, bad, msgid)
	b = append(b, '[')
	b = append(b, msgid...)
	b = append(b, "@32473"...)
	b = sdAddr(b, "client", client)
	b = sdParam(b, "frontend", l.frontend)
	b = sdParam(b, "backend", backend)
	b = sdParam(b, "server", server)
	for _, n := range nums {
		b = sdInt(b, n.name, n.v)
	}
	b = append(b, "] "...)
	return l.msgStart(b, client, start, backend, server)
}

// end sends the finished line b and puts ln back.
func (l *Logger) end(ln *line, b []byte, client netip.AddrPort) {
	l.send(b, client, ln.now, ln.dests)
	ln.b, ln.dests = b, nil
	lines.Put(ln)
}

// HTTP logs r as ended now.
func (l *Logger) HTTP(r *Request) {
	ln := l.begin()
	if ln == nil {
		return
	}
	ta := ms(ln.now.Sub(r.Start))
	b := l.head(ln, "http", r.Status >= 500 || r.Status == 0, r.Client, r.Start, r.Backend, r.Server,
		num{"status", int64(r.Status)}, num{"bytes", r.Bytes}, num{"tc", ms(r.Connect)}, num{"tr", ms(r.Response)}, num{"ta", ta})
	b = strconv.AppendInt(b, ms(r.Connect), 10)
	b = append(b, '/')
	b = strconv.AppendInt(b, ms(r.Response), 10)
	b = append(b, '/')
	b = strconv.AppendInt(b, ta, 10)
	b = append(b, ' ')
	if r.Status == 0 {
		b = append(b, "-1"...)
	} else {
		b = strconv.AppendInt(b, int64(r.Status), 10)
	}
	b = append(b, ' ')
	b = strconv.AppendInt(b, r.Bytes, 10)
	b = append(b, " \""...)
	b = appendQuoted(b, r.Method)
	b = append(b, ' ')
	b = appendQuoted(b, r.Target)
	b = append(b, ' ')
	b = append(b, r.Proto...)
	b = append(b, '"')
	l.end(ln, b, r.Client)
}

// TCP logs c as ended now.
func (l *Logger) TCP(c *Conn) {
	ln := l.begin()
	if ln == nil {
		return
	}
	ta := ms(ln.now.Sub(c.Start))
	b := l.head(ln, "tcp", c.Server == "", c.Client, c.Start, c.Backend, c.Server,
		num{"bytes_in", c.BytesIn}, num{"bytes_out", c.BytesOut}, num{"tc", ms(c.Connect)}, num{"ta", ta})
	b = strconv.AppendInt(b, ms(c.Connect), 10)
	b = append(b, '/')
	b = strconv.AppendInt(b, ta, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, c.BytesIn, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, c.BytesOut, 10)
	l.end(ln, b, c.Client)
}

// dests are the sinks the frontend's lines go to now.
func (l *Logger) dests() []route.Dest {
	if l == nil || l.routes == nil {
		return nil
	}
	t := l.routes.Load()
	if t == nil {
		return nil
	}
	f := t.Frontend(l.frontend)
	if f == nil {
		return nil
	}
	return f.Default
}

// header appends PRI, VERSION, TIMESTAMP, HOSTNAME, APP-NAME, PROCID and
// MSGID.
func (l *Logger) header(b []byte, now time.Time, bad bool, msgid string) []byte {
	pri := "<134>1 " // local0.info
	if bad {
		pri = "<131>1 " // local0.err
	}
	b = append(b, pri...)
	b = now.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000Z")
	b = append(b, ' ')
	b = append(b, l.host...)
	b = append(b, " wharf "...)
	b = append(b, l.pid...)
	b = append(b, ' ')
	b = append(b, msgid...)
	return append(b, ' ')
}

// msgStart appends MSG's first fields: client [date] frontend
// backend/server.
func (l *Logger) msgStart(b []byte, client netip.AddrPort, start time.Time, backend, server string) []byte {
	b = client.AppendTo(b)
	b = append(b, " ["...)
	b = start.AppendFormat(b, "02/Jan/2006:15:04:05.000")
	b = append(b, "] "...)
	b = append(b, l.frontend...)
	b = append(b, ' ')
	b = appendOr(b, backend)
	b = append(b, '/')
	b = appendOr(b, server)
	return append(b, ' ')
}

// send parses the line as a received message would be and offers it to
// every destination without waiting.
func (l *Logger) send(line []byte, client netip.AddrPort, now time.Time, dests []route.Dest) {
	m := message.New(line)
	m.Received = now.UnixNano()
	m.Frontend = l.frontend
	m.Transport = message.TransportTCP
	m.Peer = client
	parse.Parse(m, parse.RFC5424) // the line is well-formed by construction
	if l.tapped() {
		l.tap.Publish(m)
	}
	if len(dests) == 0 {
		m.Release()
		return
	}
	if len(dests) > 1 {
		m.Retain(int32(len(dests) - 1))
	}
	for _, d := range dests {
		d.Target.Enqueue(m, false)
	}
}

func ms(d time.Duration) int64 {
	if d < 0 {
		return -1
	}
	return int64(d / time.Millisecond)
}

func appendOr(b []byte, s string) []byte {
	if s == "" {
		return append(b, '-')
	}
	return append(b, s...)
}

// sdParam appends ` name="value"` with value escaped as RFC 5424 6.3.3
// asks.
func sdParam[S string | []byte](b []byte, name string, value S) []byte {
	b = append(b, ' ')
	b = append(b, name...)
	b = append(b, "=\""...)
	for i := 0; i < len(value); i++ {
		switch c := value[i]; c {
		case '"', '\\', ']':
			b = append(b, '\\', c)
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// sdAddr is sdParam for an address ("[::1]:80" has a ']' to escape).
func sdAddr(b []byte, name string, a netip.AddrPort) []byte {
	var tmp [64]byte
	return sdParam(b, name, a.AppendTo(tmp[:0]))
}

func sdInt(b []byte, name string, v int64) []byte {
	b = append(b, ' ')
	b = append(b, name...)
	b = append(b, "=\""...)
	b = strconv.AppendInt(b, v, 10)
	return append(b, '"')
}

// appendQuoted appends a request-line token, with '"' and bytes outside
// printable ASCII written as %XX, so the quoted request stays one field.
func appendQuoted(b, s []byte) []byte {
	const hex = "0123456789ABCDEF"
	for _, c := range s {
		if c == '"' || c < 0x21 || c > 0x7e {
			b = append(b, '%', hex[c>>4], hex[c&15])
			continue
		}
		b = append(b, c)
	}
	return b
}
