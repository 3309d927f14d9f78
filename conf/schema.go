package conf

import (
	"fmt"
	"strconv"
)

// This file is the config schema: every key a user can write. The config
// reference (reference.go, rendered to docs/config.md) documents every key
// and a test checks it covers each field here. Defaults live in
// defaults.go, loading in load.go, validation in validate.go.

// Config is a whole wharf config file.
type Config struct {
	// Admin is the admin listener (metrics, health, status, reload).
	Admin Admin `toml:"admin"`
	// Global holds process-wide settings.
	Global Global `toml:"global"`
	// Frontends by name. Each binds one or more ports.
	Frontends map[string]*Frontend `toml:"frontend"`
	// Sinks by name. Frontends and routes refer to them by name.
	Sinks map[string]*Sink `toml:"sink"`
	// Backends by name: server pools of proxy frontends (mode tcp/http).
	Backends map[string]*Backend `toml:"backend"`

	// Include lists more config files (glob patterns, relative to this
	// file's directory) whose frontends, sinks and backends join these.
	Include []string `toml:"include"`

	// Path is the file the config was read from ("" when parsed from memory).
	Path string `toml:"-"`
	// Included are the files Include named, in the order read.
	Included []string `toml:"-"`
	// Warnings are non-fatal findings of Load/Parse (e.g. a sink nothing
	// sends to), one line each, for `wharf check` and the startup log.
	Warnings []string `toml:"-"`
}

// Admin configures the admin HTTP listener.
type Admin struct {
	// Listen is host:port for the admin listener. Default 127.0.0.1:9600.
	// "off" disables it.
	Listen string `toml:"listen"`
	// Token, when set, is the bearer token the write endpoints (POST
	// /reload, /api/tap, /debug/pprof) require. Read-only endpoints stay
	// open.
	Token string `toml:"token"`
	// TokenFile names a file holding the token (surrounding whitespace
	// trimmed), so the config file itself can stay world-readable.
	TokenFile string `toml:"token_file"`
	// AllowedHosts are names, besides loopback addresses, localhost and
	// the listen address, that requests may carry in Host (the name the
	// admin listener is reached by through DNS or a reverse proxy). A
	// request naming any other host is refused (421): a web page that
	// rebinds its own name to 127.0.0.1 cannot read the admin API.
	AllowedHosts []string `toml:"allowed_hosts"`
	// AllowRemoteWithoutToken lets the admin listener start on a
	// non-loopback address without token or token_file. Without it such a
	// config is refused: anyone who reaches the port could reload the
	// config and read every message through /api/tap.
	AllowRemoteWithoutToken bool `toml:"allow_remote_without_token"`
	// TLSCert and TLSKey (PEM files), when both set, make the admin
	// listener serve HTTPS only, so the token and tapped messages do not
	// cross the network in clear text. Reloaded on SIGHUP.
	TLSCert string `toml:"tls_cert"`
	TLSKey  string `toml:"tls_key"`
	// TLSClientCA, with TLSCert, requires every client to present a
	// certificate signed by one of its CAs (mutual TLS). It authenticates
	// like the token does: a non-loopback listener with it needs no token.
	TLSClientCA string `toml:"tls_client_ca"`
}

// TLS reports whether the admin listener serves HTTPS.
func (a *Admin) TLS() bool { return a.TLSCert != "" && a.TLSKey != "" }

// Global holds process-wide settings.
type Global struct {
	// ShutdownTimeout bounds how long SIGTERM waits for queues to drain
	// before remaining messages are counted as dropped (reason "shutdown").
	ShutdownTimeout Duration `toml:"shutdown_timeout"`
	// LogFormat is "text" or "json" for wharf's own logs.
	LogFormat string `toml:"log_format"`
	// LogLevel is "debug", "info", "warn" or "error".
	LogLevel string `toml:"log_level"`
}

// Frontend is a named set of binds with one job: syslog ingest (mode
// "syslog", the default) or, with the proxy issue, "tcp"/"http" forwarding.
type Frontend struct {
	// Name is the map key, filled in by Load.
	Name string `toml:"-"`
	// Mode is "syslog" (default). "tcp" and "http" belong to proxy frontends.
	Mode string `toml:"mode"`
	// Bind lists listen addresses as scheme://host:port, scheme udp or tcp.
	Bind []string `toml:"bind"`
	// Format is how messages are parsed: "auto" (default), "rfc5424",
	// "rfc3164" or "raw" (no parsing).
	Format string `toml:"format"`
	// Parse is how much of each message is parsed and checked: "header"
	// (default: PRI and header fields always; RFC5424 structured data and
	// MSG only when a sink's encoding or a tap needs them) or "full".
	Parse string `toml:"parse"`
	// Framing is TCP framing: "auto" (default: detected per connection),
	// "octet-counting", "lf" or "nul". UDP is one message per datagram.
	Framing string `toml:"framing"`
	// MaxMessageSize bounds one message. Default 64KiB.
	MaxMessageSize Size `toml:"max_message_size"`
	// Oversize is what happens to a longer message: "truncate" (default)
	// or "drop". Either way it is counted.
	Oversize string `toml:"oversize"`
	// OnError is the policy for malformed messages: "forward_raw"
	// (default: sent on unparsed) or "drop". Either way it is counted by
	// reason.
	OnError string `toml:"on_error"`
	// Sinks are the default destinations: every message that no route
	// rule matches goes to all of them.
	Sinks []string `toml:"sinks"`
	// Routes are ordered match rules; the first that matches decides the
	// sinks. Messages matching none go to Sinks.
	Routes []Route `toml:"route"`
	// Internal marks a frontend meant for internal networks only; `wharf
	// ports` warns when one binds a wildcard address (0.0.0.0 or ::).
	Internal bool `toml:"internal"`

	// --- proxy frontends (mode tcp and http); see proxy.go ---

	// Backend is the default backend: where connections (tcp) or requests
	// (http) go when no Use rule matches.
	Backend string `toml:"backend"`
	// Use are ordered backend-selection rules; the first that matches wins.
	Use []UseBackend `toml:"use"`
	// RedirectHTTPS answers every request with a redirect to the same URL
	// over https (mode http without TLS): HAProxy's redirect scheme https.
	RedirectHTTPS bool `toml:"redirect_https"`
	// ResponseHeaders are set on (or, with an empty value, removed from)
	// every final response from a server (mode http): HAProxy's
	// http-response set-header / del-header.
	ResponseHeaders map[string]string `toml:"response_headers"`
	// RequestHeaders are set on (or, with an empty value, removed from)
	// every request passed to a server (mode http): HAProxy's
	// http-request set-header / del-header.
	RequestHeaders map[string]string `toml:"request_headers"`
	// AccessLog names the sinks that get one syslog message per HTTP
	// request (http) or per connection (tcp): see proxy/accesslog.
	AccessLog []string `toml:"access_log"`
	// MaxConn bounds concurrent client connections; beyond it new ones
	// wait in the kernel's accept queue.
	MaxConn int `toml:"maxconn"`
	// MaxConnPerIP bounds the TCP/TLS connections one source (an IPv4
	// address or an IPv6 /64) holds on one bind (syslog) or frontend
	// (proxy; peers in TrustedProxies are exempt); a connection over it
	// is closed at once and counted (reason "maxconn_per_ip").
	MaxConnPerIP int `toml:"maxconn_per_ip"`
	// Allow lists CIDRs (or IPs) that may connect; empty allows all.
	Allow []string `toml:"allow"`
	// Deny lists CIDRs (or IPs) refused on accept; checked before Allow.
	Deny []string `toml:"deny"`
	// AcceptProxy makes every bind expect a PROXY protocol v1/v2 header,
	// accepted only from TrustedProxies.
	AcceptProxy bool `toml:"accept_proxy"`
	// TrustedProxies lists CIDRs whose PROXY headers (tcp, http) and
	// X-Forwarded-*/Forwarded headers (http) are believed.
	TrustedProxies []string `toml:"trusted_proxies"`
	// SNIRouting (tcp) reads the TLS ClientHello without terminating TLS
	// and picks the backend by server name (Use rules with sni).
	SNIRouting bool `toml:"sni_routing"`
	// HeaderTimeout bounds reading what comes before forwarding starts:
	// the PROXY header, the ClientHello (sni_routing), the HTTP request
	// header.
	HeaderTimeout Duration `toml:"header_timeout"`
	// ClientTimeout is the idle timeout on the client side: a tcp
	// connection with no bytes either way, or an idle HTTP keep-alive
	// connection, is closed after it.
	ClientTimeout Duration `toml:"client_timeout"`
	// MaxHeaderBytes bounds an HTTP request header (431 beyond it).
	MaxHeaderBytes Size `toml:"max_header_bytes"`
	// TLSCert and TLSKey are PEM files; set both to terminate TLS on an
	// http frontend or on the tls:// binds of a syslog frontend.
	TLSCert string `toml:"tls_cert"`
	// TLSKey is the private key file for TLSCert.
	TLSKey string `toml:"tls_key"`
	// TLSClientCA is a PEM file of CA certificates (syslog tls:// binds):
	// when set, clients must present a certificate signed by one of them
	// (mutual TLS).
	TLSClientCA string `toml:"tls_client_ca"`
	// TLSMinVersion is the lowest TLS version accepted on syslog tls://
	// binds: "1.2" (default) or "1.3".
	TLSMinVersion string `toml:"tls_min_version"`
	// TLSCiphers lists the TLS 1.2 cipher suites offered (IANA names, as
	// Go's crypto/tls spells them); empty offers only the ECDHE AEAD suites
	// (DefaultTLSCiphers). TLS 1.3 suites are not configurable.
	TLSCiphers []string `toml:"tls_ciphers"`
	// HTTP2 offers h2 by ALPN on an http frontend that terminates TLS
	// (nil: true); clients that do not ask for it get HTTP/1.1.
	HTTP2 *bool `toml:"http2"`
	// Engine is how an http frontend without TLS or accept_proxy serves
	// HTTP/1.1: "event-loop" (the default: gnet event loops for plain
	// exchanges, see proxy/httpproxy/evloop.go) or "goroutines" (a
	// goroutine per connection, as TLS and accept_proxy frontends always
	// are).
	Engine string `toml:"engine"`

	// DeadLetter, when set, is a file that keeps the raw bytes of every
	// message this frontend drops, with the reason, as JSON lines.
	DeadLetter string `toml:"dead_letter"`
	// FrameTimeout closes a syslog TCP connection that keeps a message
	// incomplete this long without finishing any (a slow or stuck sender).
	FrameTimeout Duration `toml:"frame_timeout"`
	// RateLimit bounds the messages one bind of a syslog frontend accepts
	// from all senders together ("20000/s", "600/m"); unset is no limit.
	// Over it, UDP datagrams are dropped and counted; TCP and TLS senders
	// are slowed (wharf stops reading from them), never disconnected.
	RateLimit Rate `toml:"rate_limit"`
	// RateBurst is how many messages a bind accepts at once before
	// RateLimit applies (the token bucket's size). Default: one second of
	// RateLimit.
	RateBurst int `toml:"rate_burst"`
	// RateLimitPerIP bounds the messages of each source IP address on one
	// bind, as RateLimit does for the bind as a whole.
	RateLimitPerIP Rate `toml:"rate_limit_per_ip"`
	// RateBurstPerIP is RateBurst for each source IP. Default: one second
	// of RateLimitPerIP.
	RateBurstPerIP int `toml:"rate_burst_per_ip"`

	// RELPWindow bounds the RELP transactions one session may have
	// unanswered (relp:// and relp+tls:// binds); beyond it wharf stops
	// reading from the sender until answers go out. Default librelp's 128.
	RELPWindow int `toml:"relp_window"`
	// RELPAck is when a RELP message is acknowledged to its sender:
	// "queued" (default: in every sink's queue), "durable" (in every
	// sink's disk buffer) or "delivered" (every sink delivered it; a sink
	// with a disk buffer counts once it is stored there).
	RELPAck string `toml:"relp_ack"`

	// Binds is Bind parsed by Load, same order.
	Binds []Bind `toml:"-"`
}

// UseBackend is one backend-selection rule of a proxy frontend. All given
// conditions must hold.
type UseBackend struct {
	// SNI matches the TLS server name (tcp with sni_routing): exact
	// ("db.example.com"), a wildcard for one label ("*.example.com") or,
	// with a leading dot, any depth below ("a.b.example.com" matches
	// ".example.com"; "example.com" does not).
	SNI string `toml:"sni"`
	// Host matches the HTTP Host header (port ignored), exact or wildcard.
	Host string `toml:"host"`
	// PathPrefix matches the start of the HTTP request path.
	PathPrefix string `toml:"path_prefix"`
	// Backend is where matching traffic goes. Required.
	Backend string `toml:"backend"`
}

// Backend is a named pool of servers that proxy frontends forward to.
type Backend struct {
	// Name is the map key, filled in by Load.
	Name string `toml:"-"`
	// Balance picks a server: "roundrobin" (default, weighted),
	// "leastconn", "source" (hash of the client IP) or "hash"
	// (consistent hashing of HashKey).
	Balance string `toml:"balance"`
	// HashKey is what balance "hash" hashes: "source" (default, the
	// client IP), "uri" (the request path) or "header:NAME" (http).
	HashKey string `toml:"hash_key"`
	// Servers of the pool.
	Servers []Server `toml:"server"`
	// ConnectTimeout bounds one connect attempt to a server.
	ConnectTimeout Duration `toml:"connect_timeout"`
	// QueueTimeout bounds how long a connection (tcp) or request (http)
	// waits for a server below its maxconn when every usable one is
	// full; 0 is ConnectTimeout (HAProxy's timeout queue).
	QueueTimeout Duration `toml:"queue_timeout"`
	// ServerTimeout is the idle timeout on the server side (tcp) or how
	// long a server may take to start its response (http).
	ServerTimeout Duration `toml:"server_timeout"`
	// Retries is how many more servers a failed connect is retried on.
	Retries int `toml:"retries"`
	// Check is the active health check: "tcp" (connect), "http" (GET
	// CheckPath, expect CheckStatus) or "none".
	Check string `toml:"check"`
	// CheckInterval is the time between two checks of one server.
	CheckInterval Duration `toml:"check_interval"`
	// CheckTimeout bounds one check.
	CheckTimeout Duration `toml:"check_timeout"`
	// Rise is how many checks in a row must pass to mark a server up.
	Rise int `toml:"rise"`
	// Fall is how many failures in a row (checks or connects) mark a
	// server down.
	Fall int `toml:"fall"`
	// CheckPath is the path an http check requests.
	CheckPath string `toml:"check_path"`
	// CheckStatus is the status an http check expects.
	CheckStatus int `toml:"check_status"`
}

// Server is one server of a backend.
type Server struct {
	// Name labels the server in metrics and logs; default its address.
	Name string `toml:"name"`
	// Address is host:port.
	Address string `toml:"address"`
	// Weight is the server's share relative to the others (1-256).
	Weight int `toml:"weight"`
	// MaxConn bounds concurrent connections (tcp) or requests (http) to
	// this server; 0 is unlimited.
	MaxConn int `toml:"maxconn"`
	// SendProxy sends a PROXY protocol header first: "v1", "v2" or ""
	// (none).
	SendProxy string `toml:"send_proxy"`
	// Backup servers take traffic only while no other server of the
	// backend is up (HAProxy's backup): the first one up in config order.
	Backup bool `toml:"backup"`
}

// Bind is one parsed listen address.
type Bind struct {
	// Scheme is "udp", "tcp", "tls" (TCP with TLS, RFC 5425), "relp"
	// (RELP over TCP) or "relp+tls" (RELP over TLS).
	Scheme string
	// Host is the IP literal or host name, without brackets.
	Host string
	// Port is 1..65535 (0 allowed in tests: pick a free port).
	Port int
	// Addr is host:port as net.Listen wants it.
	Addr string
}

// Route is one match rule of a frontend. All given conditions must hold.
type Route struct {
	// Facility lists facility names ("kern", "user", ..., "local7") or
	// numbers as strings. Empty matches any.
	Facility []string `toml:"facility"`
	// Severity lists severities: each a name, a number or an inclusive
	// range "emerg..warning" (either order), written as one string or an
	// array of them. Empty matches any.
	Severity Severities `toml:"severity"`
	// Hostname is a glob (path.Match syntax) on HOSTNAME. Empty matches any.
	Hostname string `toml:"hostname"`
	// AppName is a glob on APP-NAME (RFC3164: the tag). Empty matches any.
	AppName string `toml:"app_name"`
	// MsgContains matches messages whose MSG contains this text
	// (case-sensitive bytes; rsyslog's `:msg, contains`). Empty matches any.
	MsgContains string `toml:"msg_contains"`
	// MsgRegex is an RE2 regular expression (Go regexp syntax) that must
	// match somewhere in MSG (rsyslog's `:msg, regex`). Empty matches any.
	MsgRegex string `toml:"msg_regex"`
	// SD maps "SD-ID.PARAM-NAME" (split at the last '.') to a glob the
	// RFC5424 structured-data parameter's value must match; "*" only asks
	// that the parameter is present. All entries must match.
	SD map[string]string `toml:"sd"`
	// Action is "forward" (default: send to Sinks) or "drop" (discard and
	// count as dropped, reason route_drop: rsyslog's `stop`).
	Action string `toml:"action"`
	// Sinks are where matching messages go. Required unless Action is
	// "drop".
	Sinks []string `toml:"sinks"`
}

// HasConditions reports whether the route matches on anything; a route
// without conditions matches every message.
func (r *Route) HasConditions() bool {
	return len(r.Facility) > 0 || len(r.Severity) > 0 || r.Hostname != "" || r.AppName != "" ||
		r.MsgContains != "" || r.MsgRegex != "" || len(r.SD) > 0
}

// Severities is a route's severity condition: one string in TOML
// (severity = "err..emerg") or an array (severity = ["err", "debug"]).
type Severities []string

// UnmarshalTOML accepts a string, a severity number (severity = 3), or an
// array of those. It never fails: anything else is kept as written
// (fmt's %v) and reported by validation with its index, so one bad value
// does not hide the rest of the file's errors.
func (s *Severities) UnmarshalTOML(v any) error {
	list, isList := v.([]any)
	if !isList {
		list = []any{v}
	}
	out := make(Severities, 0, len(list))
	for _, e := range list {
		switch x := e.(type) {
		case string:
			out = append(out, x)
		case int64:
			out = append(out, strconv.FormatInt(x, 10)) // checked like "3"
		default:
			out = append(out, fmt.Sprintf("%v", e))
		}
	}
	*s = out
	return nil
}

// Sink is one named output: the keys every sink has. Type picks the
// implementation, whose own keys are in Options; setting a key of another
// type is an error.
type Sink struct {
	// Name is the map key, filled in by Load.
	Name string `toml:"-"`
	// Type is a registered sink type: "kafka", "syslog", "file", "stdout".
	Type string `toml:"type"`

	// --- Runner: queue, batching, retry (every type) ---

	// QueueSize bounds queued messages. Default 100000.
	QueueSize int `toml:"queue_size"`
	// QueueBytes bounds queued message bytes. Default 64MiB.
	QueueBytes Size `toml:"queue_bytes"`
	// BackpressureSize is how many queued messages pause stream (TCP,
	// TLS) senders while the sink is healthy: their connections are not
	// read until the queue is below it again. While the sink fails, and
	// for UDP (which cannot be paused), the queue fills up to QueueSize.
	// Default 4096 (at least two batches, at most QueueSize).
	BackpressureSize int `toml:"backpressure_size"`
	// BackpressureBytes is BackpressureSize in bytes. Default 4MiB (at
	// least two batches, at most QueueBytes).
	BackpressureBytes Size `toml:"backpressure_bytes"`
	// BatchSize is the most messages handed to the sink in one Write.
	BatchSize int `toml:"batch_size"`
	// BatchBytes is the most bytes handed to the sink in one Write.
	BatchBytes Size `toml:"batch_bytes"`
	// BatchTimeout is how long a partial batch waits for more messages.
	BatchTimeout Duration `toml:"batch_timeout"`
	// RetryBackoff is the first retry delay; it doubles up to RetryMaxBackoff.
	RetryBackoff Duration `toml:"retry_backoff"`
	// RetryMaxBackoff caps the retry delay.
	RetryMaxBackoff Duration `toml:"retry_max_backoff"`
	// MaxRetries is how often a failed batch is retried before it is
	// dropped (reason "retries_exhausted"). 0 means retry until shutdown.
	MaxRetries int `toml:"max_retries"`

	// --- Encoding ---

	// Encoding of each message: "raw" (bytes as received), "rfc5424"
	// (re-encoded), "rfc3164" (BSD syslog for old collectors), "json"
	// (parsed fields); which ones and the default depend on the type.
	Encoding string `toml:"encoding"`

	// Buffer, when set, puts the sink's queue on disk (see buffer.go).
	Buffer *Buffer `toml:"buffer"`

	// Options are the keys of the sink's type, decoded into the struct
	// the type registered (see sinktype.go): *kafka.Config for "kafka".
	// ApplyDefaults makes one for a registered type when it is nil.
	Options SinkOptions `toml:"-"`
}
