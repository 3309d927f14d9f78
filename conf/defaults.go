package conf

import (
	"math"
	"time"
)

// Every default wharf applies, in one place. Each says why it is that
// value. ApplyDefaults fills them in; the config reference (Reference)
// prints them from these same constants, so docs cannot drift.
const (
	// DefaultAdminListen is loopback because the admin API can reload the
	// config and expose internals: exposing it is an explicit decision.
	// 9600 is clear of the syslog ports and of common exporter ports.
	DefaultAdminListen = "127.0.0.1:9600"

	// DefaultShutdownTimeout gives sink runners time to flush a full batch
	// through a slow peer, yet stays below the 30 s that systemd and
	// Kubernetes wait before SIGKILL, so the drop count still gets logged.
	DefaultShutdownTimeout = 10 * time.Second
	// DefaultLogFormat is human-readable; journald/docker add timestamps.
	DefaultLogFormat = "text"
	// DefaultLogLevel logs lifecycle events and problems, never per message.
	DefaultLogLevel = "info"

	// DefaultMode: a frontend is a syslog listener unless it says otherwise.
	DefaultMode = "syslog"
	// DefaultFormat detects RFC5424 vs RFC3164 per message, since real
	// networks mix both (network gear often speaks 3164).
	DefaultFormat = "auto"
	// DefaultParse checks every message's PRI and header (so garbage and
	// non-syslog input is counted as malformed and routing by header
	// fields works) but parses RFC5424 structured data and MSG only when
	// an output needs them: with raw output that is half of a parse saved
	// (ingest/parse BenchmarkParseHeader: 55 vs 118 ns).
	DefaultParse = "header"
	// DefaultFraming detects octet-counting vs LF per TCP connection:
	// RFC6587 senders use both and the first byte tells them apart.
	DefaultFraming = "auto"
	// DefaultMaxMessageSize is 64KiB: RFC5425 asks receivers to accept at
	// least 8 KiB (RFC5426 2 KiB over UDP) and most senders cap at 64 KiB
	// (rsyslog's maxMessageSize, the UDP datagram limit), so nothing a real
	// sender emits is cut while one connection cannot pin much memory.
	DefaultMaxMessageSize = 64 * KiB
	// DefaultOversize keeps the head of a too-long message: the header and
	// the start of the text are what people search for.
	DefaultOversize = "truncate"
	// DefaultOnError forwards malformed messages unparsed (counted by
	// reason): a relay keeps what it does not understand, as rsyslog and
	// syslog-ng do. Old devices send lines without <PRI>; dropping them by
	// default lost logs silently at every site that migrated. Encodings
	// that need a PRI give such a message 13 (user.notice, RFC3164 4.3.3).
	DefaultOnError = "forward_raw"
	// DefaultSyslogMaxConn bounds a syslog frontend's TCP connections per
	// bind: above the 10k idle senders a central relay should hold (a few
	// KiB each), below what exhausts file descriptors under LimitNOFILE=65536.
	DefaultSyslogMaxConn = 20000
	// DefaultSyslogMaxConnPerIP bounds the connections one source holds on
	// a syslog bind: a sender needs one, a few with worker threads, a NAT
	// gateway of devices some hundreds; 512 lets one address hold at most
	// 1/40 of DefaultSyslogMaxConn, so idle connections from one host can
	// no longer lock every other sender out.
	DefaultSyslogMaxConnPerIP = 512
	// DefaultTLSMinVersion is TLS 1.2: RFC 5425 senders (rsyslog, syslog-ng,
	// network gear) all speak it, while 1.0 and 1.1 are deprecated (RFC
	// 8996). "1.3" locks out older senders, so it is opt-in.
	DefaultTLSMinVersion = "1.2"
	// DefaultTLSHandshakeTimeout bounds a TLS handshake on a syslog tls://
	// bind (header_timeout): a handshake takes a few round trips, so 10s is
	// ample on a slow WAN, and a client that opens connections and never
	// says hello holds a goroutine and a descriptor for no longer.
	DefaultTLSHandshakeTimeout = 10 * time.Second
	// DefaultRELPWindow is librelp's RELP_DFLT_WINDOW_SIZE (128 unanswered
	// transactions per session): what rsyslog's omrelp sends by default,
	// so a session is never held back below what the sender offers.
	DefaultRELPWindow = 128
	// DefaultRELPAck is "queued": acknowledge once the message is in every
	// sink's queue, as imrelp does once rsyslog's queue took it. Stronger
	// levels cost latency per window and are chosen deliberately.
	DefaultRELPAck = "queued"
	// MaxRELPWindow bounds relp_window: the per-session memory is about a
	// window of max_message_size.
	MaxRELPWindow = 65536
	// DefaultFrameTimeout is 1m: a sender that starts a message and does not
	// finish it within a minute is broken or hostile (slowloris); real
	// senders write a whole message in one go.
	DefaultFrameTimeout = time.Minute

	// MaxRateBurst bounds rate_burst and rate_burst_per_ip: ten million
	// messages at once is no limit at all, and the bound keeps a bucket's
	// arithmetic (burst × time per message, in nanoseconds) far from
	// overflowing.
	MaxRateBurst = 10_000_000
	// RateLimitMaxIPs is how many source addresses a bind with
	// rate_limit_per_ip tracks at once. An address's bucket is forgotten
	// once it has refilled (it then holds nothing a fresh one would not),
	// so the table holds only senders active within their burst time;
	// 65536 of those at ~50 bytes each is ~3 MiB per bind. Beyond it (a
	// spoofed-source UDP flood), new addresses share one overflow bucket
	// with the per-IP rate, so they are limited together rather than not
	// at all, and memory stays bounded.
	RateLimitMaxIPs = 65536

	// DefaultQueueSize bounds queued messages per sink: about 1 s of a busy
	// relay, enough to ride out a broker leader election.
	DefaultQueueSize = 100000
	// DefaultQueueBytes caps the same queue by memory: 64MiB per sink
	// keeps a few sinks well inside a small container.
	DefaultQueueBytes = 64 * MiB
	// DefaultBackpressureSize pauses TCP and TLS senders while 4096
	// messages wait for a sink. At saturation a queue is always full to
	// the point where senders are paused, so this mark, not queue_size,
	// sets a stream's latency and working set: 100000 queued messages of
	// 300 B (the old behaviour) meant ~80 ms of queueing and ~40 MiB that
	// fell out of the CPU caches between enqueue and write; 4096 keeps
	// both small (make bench: 0.92 -> 0.68 CPU us per message through a
	// TCP relay). The mark applies while the sink works; during an
	// outage stream senders may fill the whole queue_size, which is there
	// to ride it out, and UDP senders, which cannot be paused, always may.
	DefaultBackpressureSize = 4096
	// DefaultBackpressureBytes is the same mark in bytes.
	DefaultBackpressureBytes = 4 * MiB
	// DefaultBatchSize is big enough to amortize a produce request or a
	// write system call, small enough to keep a retry cheap.
	DefaultBatchSize = 1000
	// DefaultBatchBytes is 1MiB, the Kafka broker's default
	// message.max.bytes for one record batch.
	DefaultBatchBytes = 1 * MiB
	// DefaultBatchTimeout 0 is natural batching: no linger. A message that
	// reaches an idle sink leaves at once; a batch is what queued while the
	// previous write was in flight, so a busy sink still writes full
	// batches. A linger of 10ms cost every message on a quiet link 10ms
	// (p50 10.5ms against HAProxy's 0.14ms one message at a time).
	DefaultBatchTimeout time.Duration = 0
	// DefaultRetryBackoff is the first retry delay: long enough not to spin
	// against a peer that just went away.
	DefaultRetryBackoff = 100 * time.Millisecond
	// DefaultRetryMaxBackoff caps backoff so recovery is noticed within
	// seconds once the peer is back.
	DefaultRetryMaxBackoff = 5 * time.Second
	// DefaultMaxRetries 0 retries until shutdown: the bounded queue, not a
	// retry count, decides when to drop (reason "queue_full").
	DefaultMaxRetries = 0

	// DefaultProxyMaxConn bounds a proxy frontend's client connections:
	// each costs two file descriptors and two goroutines, so 4096 stays far
	// below the descriptor limit Go raises to at start, and a flood waits
	// in the accept queue instead of exhausting memory.
	DefaultProxyMaxConn = 4096
	// DefaultProxyMaxConnPerIP bounds the connections one client holds on
	// a proxy frontend: a quarter of DefaultProxyMaxConn, ample for an
	// office NAT of browsers (about 6 connections each), yet one address
	// cannot take every slot. Trusted proxies are exempt.
	DefaultProxyMaxConnPerIP = 1024
	// DefaultHeaderTimeout is 10s, HAProxy's customary `timeout
	// http-request`: ample for a PROXY header, a ClientHello or a request
	// header on a slow link, short enough that slowloris clients get cut.
	DefaultHeaderTimeout = 10 * time.Second
	// DefaultClientTimeout is 1m: syslog-over-TCP senders and keep-alive
	// HTTP clients go quiet for tens of seconds; an idle minute is dead.
	DefaultClientTimeout = time.Minute
	// DefaultMaxHeaderBytes is 64KiB: four times HAProxy's 16KiB buffer,
	// enough for heavy cookie sets, small enough that one client cannot
	// pin much memory (net/http's own default is 1MB).
	DefaultMaxHeaderBytes = 64 * KiB
	// DefaultBalance is weighted round robin: even spread, no state per
	// client, HAProxy's default.
	DefaultBalance = "roundrobin"
	// DefaultConnectTimeout is 5s, HAProxy's recommended `timeout
	// connect`: a loaded LAN server answers a SYN far sooner, and the next
	// server is tried after it.
	DefaultConnectTimeout = 5 * time.Second
	// DefaultServerTimeout is 1m, matching the client side, so an idle
	// connection is closed by the same rule from either end.
	DefaultServerTimeout = time.Minute
	// DefaultRetries is 3, HAProxy's default: enough to step over a few
	// dead servers before the client is refused.
	DefaultRetries = 3
	// DefaultCheck is a TCP connect: it works for any server and needs no
	// knowledge of the protocol.
	DefaultCheck = "tcp"
	// DefaultCheckInterval is 2s, HAProxy's `inter`: a dead server is
	// noticed within fall×2s while checks stay negligible load.
	DefaultCheckInterval = 2 * time.Second
	// DefaultCheckTimeout is 1s: a check slower than that on a LAN means
	// the server is in trouble.
	DefaultCheckTimeout = time.Second
	// DefaultRise is 2, HAProxy's: one lucky check does not bring a
	// flapping server back.
	DefaultRise = 2
	// DefaultFall is 3, HAProxy's: one lost packet does not take a server
	// out.
	DefaultFall = 3
	// DefaultCheckPath is the site root, which every HTTP server answers.
	DefaultCheckPath = "/"
	// DefaultCheckStatus is 200: anything else (a redirect to a login
	// page, an error) is not a healthy answer.
	DefaultCheckStatus = 200
	// DefaultWeight is 1: servers share equally unless told otherwise.
	DefaultWeight = 1

	// MaxMaxMessageSize is the largest max_message_size accepted: a bigger
	// "message" is a bulk transfer, not a log line.
	MaxMaxMessageSize = 16 * MiB
)

// DefaultRateBurst is the default rate_burst (and rate_burst_per_ip) for
// rate r: one second of it, at least 1. A second absorbs the bursts real
// senders make (a daemon restarting, a log rotation) while a flood is cut
// to the rate within a second.
func DefaultRateBurst(r Rate) int {
	return max(1, int(math.Ceil(r.PerSecond())))
}

// ApplyDefaults fills every unset field with its default. Type-specific
// sink defaults are only filled for sinks of that type, so a filled-in
// config never carries a key that does not apply to its type. It is
// idempotent and does not validate.
func (c *Config) ApplyDefaults() {
	if c.Admin.Listen == "" {
		c.Admin.Listen = DefaultAdminListen
	}
	if c.Global.ShutdownTimeout.Duration == 0 {
		c.Global.ShutdownTimeout.Duration = DefaultShutdownTimeout
	}
	setStr(&c.Global.LogFormat, DefaultLogFormat)
	setStr(&c.Global.LogLevel, DefaultLogLevel)
	for _, f := range c.Frontends {
		if f != nil {
			f.applyDefaults()
		}
	}
	for _, s := range c.Sinks {
		if s != nil {
			s.ApplyDefaults()
		}
	}
	for _, b := range c.Backends {
		if b != nil {
			b.applyDefaults()
		}
	}
}

func (f *Frontend) applyDefaults() {
	setStr(&f.Mode, DefaultMode)
	if f.Mode == "tcp" || f.Mode == "http" {
		// Proxy frontends get only proxy defaults, so a syslog key set on
		// one stays visible to validation (and the other way round).
		if f.MaxConn == 0 {
			f.MaxConn = DefaultProxyMaxConn
		}
		if f.MaxConnPerIP == 0 {
			f.MaxConnPerIP = DefaultProxyMaxConnPerIP
		}
		setDur(&f.HeaderTimeout, DefaultHeaderTimeout)
		setDur(&f.ClientTimeout, DefaultClientTimeout)
		if f.Mode == "http" && f.MaxHeaderBytes == 0 {
			f.MaxHeaderBytes = DefaultMaxHeaderBytes
		}
		return
	}
	setStr(&f.Format, DefaultFormat)
	setStr(&f.Parse, DefaultParse)
	setStr(&f.Framing, DefaultFraming)
	if f.MaxMessageSize == 0 {
		f.MaxMessageSize = DefaultMaxMessageSize
	}
	setStr(&f.Oversize, DefaultOversize)
	setStr(&f.OnError, DefaultOnError)
	if f.MaxConn == 0 {
		f.MaxConn = DefaultSyslogMaxConn
	}
	if f.MaxConnPerIP == 0 {
		f.MaxConnPerIP = DefaultSyslogMaxConnPerIP
	}
	setDur(&f.FrameTimeout, DefaultFrameTimeout)
	if !f.RateLimit.IsZero() && f.RateBurst == 0 {
		f.RateBurst = DefaultRateBurst(f.RateLimit)
	}
	if !f.RateLimitPerIP.IsZero() && f.RateBurstPerIP == 0 {
		f.RateBurstPerIP = DefaultRateBurst(f.RateLimitPerIP)
	}
	if f.HasRELPBind() {
		if f.RELPWindow == 0 {
			f.RELPWindow = DefaultRELPWindow
		}
		setStr(&f.RELPAck, DefaultRELPAck)
		setDur(&f.HeaderTimeout, DefaultTLSHandshakeTimeout) // bounds the wait for "open"
	}
	if f.HasTLSBind() {
		setStr(&f.TLSMinVersion, DefaultTLSMinVersion)
		setDur(&f.HeaderTimeout, DefaultTLSHandshakeTimeout)
	}
	// client_timeout stays 0 (off) for syslog: senders such as rsyslog's
	// omfwd keep quiet connections open for hours and lose the first
	// message written after the relay silently closed one.
}

// ApplyDefaults fills every unset field of s with its default, and of its
// Options (made fresh when nil and the type is registered). Type-specific
// defaults come from the type's Options. It is idempotent.
func (s *Sink) ApplyDefaults() {
	s.Buffer.applyDefaults()
	if s.Options == nil {
		if t := sinkType(s.Type); t != nil {
			s.Options = t.New()
		}
	}
	if s.Options != nil {
		s.Options.ApplyDefaults()
	}
	if s.QueueSize == 0 {
		s.QueueSize = DefaultQueueSize
	}
	if s.QueueBytes == 0 {
		s.QueueBytes = DefaultQueueBytes
	}
	// A default batch never exceeds a queue the user made smaller.
	batchSize, batchBytes := DefaultBatch(s.Type)
	if s.BatchSize == 0 {
		s.BatchSize = batchSize
		if s.QueueSize > 0 {
			s.BatchSize = min(s.BatchSize, s.QueueSize)
		}
	}
	if s.BatchBytes == 0 {
		s.BatchBytes = batchBytes
		if s.QueueBytes > 0 {
			s.BatchBytes = min(s.BatchBytes, s.QueueBytes)
		}
	}
	// The pause mark leaves room for a batch in flight and the next one
	// filling, and never exceeds the queue.
	if s.BackpressureSize == 0 {
		s.BackpressureSize = max(DefaultBackpressureSize, 2*s.BatchSize)
		if s.QueueSize > 0 {
			s.BackpressureSize = min(s.BackpressureSize, s.QueueSize)
		}
	}
	if s.BackpressureBytes == 0 {
		s.BackpressureBytes = max(DefaultBackpressureBytes, 2*s.BatchBytes)
		if s.QueueBytes > 0 {
			s.BackpressureBytes = min(s.BackpressureBytes, s.QueueBytes)
		}
	}
	setDur(&s.BatchTimeout, DefaultBatchTimeout)
	setDur(&s.RetryBackoff, DefaultRetryBackoff)
	setDur(&s.RetryMaxBackoff, DefaultRetryMaxBackoff)
	setStr(&s.Encoding, DefaultEncoding(s.Type))
}

func setStr(p *string, def string) {
	if *p == "" {
		*p = def
	}
}

func setDur(p *Duration, def time.Duration) {
	if p.Duration == 0 {
		p.Duration = def
	}
}

func (b *Backend) applyDefaults() {
	setStr(&b.Balance, DefaultBalance)
	if b.Balance == "hash" {
		setStr(&b.HashKey, "source")
	}
	setDur(&b.ConnectTimeout, DefaultConnectTimeout)
	setDur(&b.ServerTimeout, DefaultServerTimeout)
	if b.Retries == 0 {
		b.Retries = DefaultRetries
	}
	setStr(&b.Check, DefaultCheck)
	setDur(&b.CheckInterval, DefaultCheckInterval)
	setDur(&b.CheckTimeout, DefaultCheckTimeout)
	if b.Rise == 0 {
		b.Rise = DefaultRise
	}
	if b.Fall == 0 {
		b.Fall = DefaultFall
	}
	if b.Check == "http" {
		setStr(&b.CheckPath, DefaultCheckPath)
		if b.CheckStatus == 0 {
			b.CheckStatus = DefaultCheckStatus
		}
	}
	for i := range b.Servers {
		s := &b.Servers[i]
		setStr(&s.Name, s.Address)
		if s.Weight == 0 {
			s.Weight = DefaultWeight
		}
	}
}
