package conf

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// KeyDoc documents one config key for the reference: its name, its type
// ("string", "duration"...), its default as shown, and what it does.
type KeyDoc struct {
	Key, Type, Default, Doc string
}

// section is one table of the reference.
type section struct {
	Title string // heading, e.g. "[sink.NAME]: kafka"
	Table string // the TOML table the keys live in, e.g. "sink.NAME"
	Intro string
	Keys  []KeyDoc
}

// RefDuration renders a default duration for the reference.
func RefDuration(d time.Duration) string { return "`" + d.String() + "`" }

// RefString renders a default string for the reference.
func RefString(s string) string { return "`\"" + s + "\"`" }

func dur(d time.Duration) string { return RefDuration(d) }
func q(s string) string          { return RefString(s) }

// sections is the one source of the config reference: Reference renders
// it, and a test checks it names every key of the schema. The common sink
// keys and each registered sink type's own come from functions, not
// variables, because sink types register after conf's init.
func sections() []section {
	out := append([]section(nil), baseSections...)
	out = append(out, sinkSection(), bufferSection)
	for _, name := range SinkTypes() {
		t := sinkType(name)
		out = append(out, section{Title: "[sink.NAME] type = \"" + name + "\"", Table: "sink.NAME", Intro: t.Intro, Keys: t.Keys})
	}
	return out
}

// baseSections are the tables before the sinks.
var baseSections = []section{
	{
		Title: "[admin]", Table: "admin",
		Intro: "The admin HTTP listener: metrics, health, status and reload.",
		Keys: []KeyDoc{
			{"listen", "string", q(DefaultAdminListen), "host:port to listen on, or `\"off\"` to disable. Loopback by default because the admin API can reload the config; a non-loopback address needs `token`/`token_file` (or `allow_remote_without_token = true`) and is warned about. Port 0 picks a free port (tests)."},
			{"token", "string", "none", "Bearer token for the write endpoints: when set, `POST /reload`, `/api/tap` (what `wharf tap` reads), `/api/servers` (what `wharf server` uses) and `/debug/pprof/` answer 401 unless the request carries `Authorization: Bearer TOKEN`. `/`, `/api/status`, `/metrics`, `/healthz` and `/readyz` stay open. `wharf tap` and `wharf server` send the token of the config they are given."},
			{"token_file", "string", "none", "File holding the token (surrounding whitespace trimmed), instead of `token`, so the config file can stay world-readable; read at start and on reload."},
			{"allowed_hosts", "list of strings", "none", "Host names, besides loopback addresses, `localhost` and the `listen` address (any IP address when `listen` is a wildcard), that requests may name in `Host`: the name the admin listener is reached by through DNS or a reverse proxy, e.g. `[\"wharf1.example.com\"]`. A request with any other `Host` is refused with 421, whether or not a token is set: a web page whose own name is rebound to 127.0.0.1 (DNS rebinding) cannot read `/api/tap` or `/metrics`. Independently, a `POST` (any method but GET/HEAD/OPTIONS) that a browser marks cross-origin (`Sec-Fetch-Site`, or an `Origin` that is not the `Host`) is refused with 403, so a page cannot `POST /reload`; curl and scripts, which send neither header, are not affected. Applied at start and on reload. HAProxy has no equivalent: its stats page is reached by `stats uri`, and Host checks are written as ACLs (`http-request deny unless { req.hdr(host) -m str wharf1.example.com }`)."},
			{"tls_cert", "string", "none", "PEM certificate (chain) file; with `tls_key` the admin listener serves HTTPS only (TLS 1.2 and later), so the token, `/api/tap`'s messages and the status page do not cross the network in clear text. Reloaded on `SIGHUP` and `POST /reload` (new handshakes get the new certificate). `wharf tap` and `wharf server` given the config connect over HTTPS and trust exactly this certificate (pinned), or the CA given with `-cacert`. HAProxy: `ssl crt` on the stats `bind` line."},
			{"tls_key", "string", "none", "PEM private key file for `tls_cert`."},
			{"tls_client_ca", "string", "none", "With `tls_cert`: PEM file of CAs that client certificates must be signed by (mutual TLS); a client without one is refused in the handshake, on every endpoint. It authenticates like `token`, so a non-loopback `listen` with it needs no token. `wharf tap` and `wharf server` present `-cert`/`-key`."},
			{"allow_remote_without_token", "bool", "false", "Start the admin listener on a non-loopback `listen` address without `token`/`token_file`. Without it such a config is an error: anyone who reaches the port could reload the config and read every message through `/api/tap`. With it wharf starts and `wharf check`/`wharf run` warn. A non-loopback admin listener is warned about in any case; firewall it."},
		},
	},
	{
		Title: "[global]", Table: "global",
		Intro: "Process-wide settings.",
		Keys: []KeyDoc{
			{"shutdown_timeout", "duration", dur(DefaultShutdownTimeout), "How long SIGTERM waits for queues to drain; what is still queued then is dropped and counted (reason `shutdown`)."},
			{"log_format", "string", q(DefaultLogFormat), "wharf's own logs: `text` or `json`."},
			{"log_level", "string", q(DefaultLogLevel), "`debug`, `info`, `warn` or `error`."},
		},
	},
	{
		Title: "[frontend.NAME]", Table: "frontend.NAME",
		Intro: "A frontend is a named set of listeners with one job. At least one is required. Messages go to the sinks of the first route that matches, or to the frontend's `sinks` when none does.",
		Keys: []KeyDoc{
			{"mode", "string", q(DefaultMode), "`syslog` (ingest), or a proxy frontend: `tcp` (forward connections) or `http` (reverse proxy); their keys are in the next sections."},
			{"bind", "array of strings", "required", "Listen addresses `scheme://host:port`: scheme `udp`, `tcp`, `tls` (syslog over TLS, RFC 5425; needs `tls_cert` and `tls_key`), `relp` or `relp+tls` (RELP, see `relp_ack`; `relp+tls` needs `tls_cert` and `tls_key`); host an IP literal or a name that resolves (IPv6 in brackets: `tcp://[::1]:514`); port 1-65535, or 0 for a free port (tests). `0.0.0.0` listens on IPv4 only, a specific IPv6 address on IPv6 only, `[::]` on IPv6 and IPv4 (HAProxy's `bind :::514 v4v6`). Two binds of one scheme on the same address and port, or on a wildcard and an address it covers, are an error."},
			{"format", "string", q(DefaultFormat), "How messages are parsed: `auto` (RFC5424 or RFC3164, per message), `rfc5424`, `rfc3164`, `raw` (not parsed)."},
			{"parse", "string", q(DefaultParse), "How much of each message is parsed and checked. `header`: the PRI and header fields (timestamp, hostname, app-name, procid, msgid) of every message, so malformed headers are counted and handled by `on_error`, and routes can match them; RFC5424 structured data and MSG are parsed only while a sink of this frontend needs them (encoding `rfc5424` or `json`, or a disk buffer) or a tap is open, so with raw output malformed structured data is forwarded as received. `full`: every message completely, structured data included."},
			{"framing", "string", q(DefaultFraming), "TCP framing: `auto` (detected per frame from its first byte, like rsyslog and syslog-ng: a digit starts an octet-counted frame, anything else a frame ending in LF or NUL; one connection may mix them), `octet-counting`, `lf`, `nul`. UDP is one message per datagram."},
			{"max_message_size", "size", "`" + DefaultMaxMessageSize.String() + "`", "Longest accepted message, 1B-" + MaxMaxMessageSize.String() + "."},
			{"oversize", "string", q(DefaultOversize), "A longer message is `truncate`d (at a UTF-8 character boundary: at most 3 bytes less) or `drop`ped; either way it is counted. On `relp://` binds the frame is read past and answered, so the session goes on."},
			{"on_error", "string", q(DefaultOnError), "A malformed message (no `<PRI>`, a bad RFC5424 header) is sent on unparsed (`forward_raw`: forwarded rather than lost, as rsyslog and syslog-ng do, though they parse what they can of its header, e.g. the host and tag of a BSD line without `<PRI>`, which `format = \"rfc3164\"` does too) or `drop`ped; either way it is counted in `wharf_frontend_malformed_total` by reason, and dropped ones also in `wharf_frontend_dropped_total{reason=\"parse_error\"}`. A forwarded message keeps its bytes as received (encoding `raw`); encodings that need a priority give a message without a valid `<PRI>` 13 (`user.notice`, RFC3164's default): `json` then says `\"priority_assumed\":true` and carries the line as `raw`, `rfc5424` and `rfc3164` write `<13>`. It matches no route `facility` or `severity` condition, and its MSG is the whole line."},
			{"sinks", "array of strings", "none", "Default destinations: messages no route matches go to all of them. Required unless the frontend has routes (then unmatched messages are dropped and counted, with a warning)."},
			{"route", "array of tables", "none", "Ordered match rules, see below."},
			{"maxconn", "integer", fmt.Sprint(DefaultSyslogMaxConn), "TCP binds: most concurrent connections per bind; further ones are closed at once and counted (`wharf_frontend_rejected_total{reason=\"maxconn\"}`)."},
			{"maxconn_per_ip", "integer", fmt.Sprint(DefaultSyslogMaxConnPerIP), "`tcp://`, `tls://`, `relp://` and `relp+tls://` binds: most concurrent connections one source holds on a bind (an IPv4 address, or an IPv6 /64, since one host usually has a whole /64); further ones from it are closed at once and counted (`wharf_frontend_rejected_total{reason=\"maxconn_per_ip\"}`), while other sources still connect. Without it idle connections from one host could hold all of `maxconn` and lock every other sender out. Set it to `maxconn` to turn it off. Applied on reload (to new connections). HAProxy: `stick-table type ip size 100k store conn_cur`, `tcp-request connection track-sc0 src`, `tcp-request connection reject if { sc0_conn_cur gt 512 }`."},
			{"allow", "array of strings", "all", "Sender CIDRs or IPs allowed, checked before anything is read: a refused TCP connection is closed, a refused UDP datagram dropped; both counted (`reason=\"acl\"`)."},
			{"deny", "array of strings", "none", "Sender CIDRs or IPs refused; checked before `allow`."},
			{"client_timeout", "duration", "`0s` (off)", "TCP binds: close a connection that sent nothing for this long (`wharf_frontend_closed_total{reason=\"idle_timeout\"}`). Off by default: syslog senders keep quiet connections open and may lose the first message written after a silent close."},
			{"dead_letter", "string", "none", "A file (JSON lines) that keeps the raw bytes of every message this frontend drops, with frontend, bind, peer and reason (`parse_error`, `framing_error`, `oversize`, `no_route`): what was refused can be read and replayed. Written off the hot path; if the writer falls behind, records are counted in `wharf_deadletter_lost_total` instead. Opened like a file sink's `path`: never through a symbolic link (`O_NOFOLLOW`), never a directory, FIFO or file with other hard links (`wharf check` refuses such a path)."},
			{"frame_timeout", "duration", dur(DefaultFrameTimeout), "TCP binds: close a connection that keeps a message incomplete this long without finishing any (slow or stuck sender; `reason=\"frame_timeout\"`). It cannot be turned off: 0 means the default, like any duration; for senders that legitimately take longer, set a longer bound such as `\"1h\"`."},
			{"rate_limit", "rate", "none (off)", "Most messages one bind accepts from all its senders together, as `\"N/s\"` or `\"N/m\"` (e.g. `\"20000/s\"`); a token bucket of `rate_burst` tokens refilled at this rate. Over it a UDP datagram is dropped and counted (`wharf_frontend_dropped_total{reason=\"rate_limit\"}`; not written to `dead_letter`, which a flood would fill); a `tcp://` or `tls://` sender is slowed, never disconnected: wharf stops processing (and, on `tls://`, reading) its bytes until tokens refill, so TCP flow control holds the sender back; a `relp://` sender likewise (wharf stops reading the session, its `relp_window` fills). `wharf_frontend_rate_limited_total{scope=\"bind\"}` counts the messages dropped or held back. Cost on `tcp://` binds: gnet keeps reading a socket whatever wharf does, so once a held-back connection has more than 4 × `max_message_size` buffered, wharf pauses that connection's event loop (in steps of at most 10ms) until tokens bring it back under, which closes the kernel's TCP window on the sender; the other connections served by that event loop (one of one per CPU) wait too, other binds do not. Each pause is counted (`wharf_frontend_rate_limit_pauses_total`). Per held-back connection wharf holds at most 4 × `max_message_size` plus one read buffer (64KiB or `max_message_size`). When a held-back connection closes, the whole messages already read are delivered and charged to the buckets as debt that later messages pay off, up to a minute (or one more burst) beyond the burst; past that they are dropped and counted (`reason=\"rate_limit\"`). Off by default: any fixed number would be wrong for some site, and a relay that silently slows senders surprises people. Applied on reload."},
			{"rate_burst", "integer", "one second of `rate_limit`", "Messages a bind accepts at once before `rate_limit` applies (the bucket's size), 1-" + fmt.Sprint(MaxRateBurst) + ". One second absorbs the bursts real senders make (a daemon restarting, log rotation) while a flood is cut to the rate within a second."},
			{"rate_limit_per_ip", "rate", "none (off)", "As `rate_limit`, for each source IP address on its own (`scope=\"ip\"`): one noisy sender is held to this rate while the others are not. Counted per bind: a sender using two binds of the frontend gets this rate on each. Up to " + fmt.Sprint(RateLimitMaxIPs) + " addresses are tracked per bind; an address is forgotten once its bucket has refilled. Beyond that (a spoofed-source UDP flood) new addresses share one overflow bucket with this rate, so they are limited together, not let through, and memory stays bounded (about 3 MiB per bind). Checked before `rate_limit`, so a sender over its own limit does not use up the bind's tokens. Off by default."},
			{"rate_burst_per_ip", "integer", "one second of `rate_limit_per_ip`", "As `rate_burst`, for each source IP."},
			{"tls_cert", "string", "required with a `tls://` bind", "PEM certificate (chain) file served on the frontend's `tls://` and `relp+tls://` binds. Reloaded without a restart on `SIGHUP` and `POST /reload` (new handshakes get the new certificate; open connections keep theirs)."},
			{"tls_key", "string", "required with a `tls://` bind", "PEM private key file for `tls_cert`."},
			{"tls_client_ca", "string", "none", "PEM file of CA certificates: when set, `tls://` and `relp+tls://` binds require a client certificate signed by one of them (mutual TLS). A client without one, or with one from another CA, is refused and counted (`wharf_frontend_rejected_total{reason=\"tls_handshake\"}`, as is any failed handshake)."},
			{"tls_min_version", "string", q(DefaultTLSMinVersion) + " (tls)", "Lowest TLS version accepted on `tls://` and `relp+tls://` binds: `1.2` or `1.3`."},
			{"tls_ciphers", "array of strings", "ECDHE AEAD suites", "`tls://` and `relp+tls://` binds: " + TLSCiphersDoc + " HAProxy: `ssl-default-bind-ciphers` (OpenSSL names, e.g. `ECDHE-ECDSA-AES128-GCM-SHA256`)."},
			{"header_timeout", "duration", dur(DefaultTLSHandshakeTimeout) + " (tls, relp)", "`tls://` and `relp+tls://` binds: bound on the TLS handshake; a client that has not finished it by then is closed and counted (`reason=\"tls_handshake\"`). `relp://` and `relp+tls://` binds: also how long a session may take, from connecting (after the handshake), to send RELP's `open`; one that has not is closed and counted (`wharf_frontend_closed_total{reason=\"relp_open_timeout\"}`)."},
			{"relp_window", "integer", fmt.Sprint(DefaultRELPWindow) + " (relp)", "`relp://` and `relp+tls://` binds: most RELP transactions one session may have unanswered, 1-" + fmt.Sprint(MaxRELPWindow) + ". Beyond it wharf stops reading from that sender until answers go out (TCP flow control holds it back); memory per session stays about this many messages. The default is librelp's (and so rsyslog omrelp's) window."},
			{"relp_ack", "string", q(DefaultRELPAck) + " (relp)", "When a RELP message is acknowledged (`rsp 200`) to its sender: `queued` (in every sink's queue: lost if wharf dies before delivering it), `durable` (in every sink's disk buffer, which every sink the frontend sends to must have: survives `kill -9` of wharf; with `fsync = \"always\"` also a machine crash) or `delivered` (every sink delivered it: Kafka acknowledged it at `required_acks`, a syslog collector accepted it; a sink with a disk buffer counts once stored there). A message wharf drops by policy (no route, a route's `action = \"drop\"`, `on_error = \"drop\"`, `oversize = \"drop\"`) is acknowledged; one a sink drops (queue full, retries exhausted, shutdown) is not: the session is closed and the sender sends it again. Unacknowledged messages are resent by the sender after it reconnects, so each level is at-least-once: duplicates are possible."},
			{"internal", "boolean", "`false`", "Marks a frontend meant for internal networks only. It changes nothing at run time; `wharf ports` warns when such a frontend binds a wildcard address (`0.0.0.0`, `[::]`)."},
		},
	},
	{
		Title: "[[frontend.NAME.route]]", Table: "frontend.NAME.route",
		Intro: "A route matches when all its conditions hold; a condition left out matches anything. The first matching route decides the sinks (or drops the message). Routes are compiled once at start and on reload; header conditions cost a few nanoseconds per message and allocate nothing. `msg_contains`, `msg_regex` and `sd` need MSG and the structured data, so a frontend with one parses every message whole, as `parse = \"full\"` does.",
		Keys: []KeyDoc{
			{"facility", "array of strings", "any", "Facility names (`kern`, `user`, `mail`, `daemon`, `auth`, `syslog`, `lpr`, `news`, `uucp`, `cron`, `authpriv`, `ftp`, `ntp`, `security`, `console`, `solaris-cron` or `clock`, `local0`..`local7`) or numbers `\"0\"`-`\"23\"`."},
			{"severity", "string or array of strings", "any", "One severity or an inclusive range (either order), names or numbers: `\"warning\"`, `\"err..emerg\"`, `\"0..4\"`; or an array of them, like `facility`: `[\"emerg..err\", \"debug\"]`. Names: `emerg`, `alert`, `crit`, `err`/`error`, `warning`/`warn`, `notice`, `info`, `debug`. Ranges are spelled as for `wharf tap -severity`; unlike there (and syslog.conf), a single name is that severity only."},
			{"hostname", "string", "any", "Glob (Go `path.Match`) on HOSTNAME, e.g. `\"web-*\"`."},
			{"app_name", "string", "any", "Glob on APP-NAME (RFC3164: the tag)."},
			{"msg_contains", "string", "any", "MSG contains this text, byte for byte (rsyslog's `:msg, contains`). For a message forwarded unparsed (`format = \"raw\"`, or malformed under `on_error = \"forward_raw\"`) MSG is the whole line."},
			{"msg_regex", "string", "any", "An RE2 regular expression ([Go syntax](https://golang.org/s/re2syntax)) that must match somewhere in MSG (rsyslog's `:msg, regex`; anchor it with `^`/`$`). RE2 runs in time linear in the message, so a sender cannot make a route slow. Cost: a message that lacks the literal text every match needs (for a pattern of alternatives, each of them) is passed over with a substring search, ~0.1 µs; one that has it runs the regexp, ~4-6 µs for a 290-byte line on a loaded 2-core box (route `BenchmarkMatchContent`), so prefer `msg_contains` where a plain substring will do."},
			{"sd", "table of strings", "any", "RFC5424 structured-data conditions: `sd = { \"origin.ip\" = \"10.1.*\", \"exampleSDID@32473.eventSource\" = \"Application\" }`. Each key is `SD-ID.PARAM-NAME` (split at the last `.`), each value a glob on the parameter's value (escapes resolved); `\"*\"` only asks that the parameter is present. All must match; a message without the parameter does not."},
			{"action", "string", "`\"forward\"`", "`forward`: send matching messages to `sinks`. `drop`: discard them, counted as `wharf_frontend_dropped_total{reason=\"route_drop\"}` and not written to `dead_letter` (rsyslog's `stop`, syslog-ng's `flags(final)` without a destination); takes no `sinks`."},
			{"sinks", "array of strings", "required unless `action = \"drop\"`", "Where matching messages go."},
		},
	},
	{
		Title: "[frontend.NAME] mode = \"tcp\" or \"http\"", Table: "frontend.NAME",
		Intro: "A proxy frontend forwards each connection (`tcp`) or request (`http`) to a server of a backend, like an HAProxy frontend. Binds are `tcp://` only. The syslog keys (`format`, `framing`, `sinks`, `route`...) do not apply, and these keys do not apply to syslog frontends. An example, each part under the HAProxy config it mirrors:\n\n```toml\n" + strings.TrimRight(ProxyExampleConfig, "\n") + "\n```" +
			"\n\nReload (`SIGHUP`, `POST /reload`; HAProxy: `systemctl reload haproxy`, a new process taking the listening sockets over with `-x`/`expose-fd listeners`) applies every proxy change without a restart: binds that stay keep their sockets, so no connection is refused; new and removed binds and frontends open and close; `backend` and `use` changes apply to the next connection (`tcp`) or request (`http`, on open keep-alive connections too) while those in flight finish where they are. A frontend whose other keys change is rebuilt on the same sockets; the old one answers each open keep-alive connection's next request with `Connection: close` and finishes the rest within `shutdown_timeout`. New binds are opened before anything changes: an address in use fails the reload with nothing changed.",
		Keys: []KeyDoc{
			{"backend", "string", "none", "Default backend: where traffic no `use` rule matches goes. Without it, unmatched connections are closed and requests get 503."},
			{"use", "array of tables", "none", "Ordered backend-selection rules, see below."},
			{"redirect_https", "boolean", "`false`", "`http` frontends without `tls_cert`: answer every request with `301` to the same URL over https (the Host without its port, path and query as sent); no server is asked. HAProxy: `http-request redirect scheme https code 301`. Typically the port-80 frontend beside the TLS one."},
			{"response_headers", "table of strings", "none", "`http` frontends: fields set on every final response from a server, replacing the server's own of the same name (case-insensitively); an empty value removes the field. HAProxy: `http-response set-header` / `del-header`. E.g. `response_headers = { \"Strict-Transport-Security\" = \"max-age=63072000\", \"Server\" = \"\" }`. Framing and connection fields (`Content-Length`, `Transfer-Encoding`, `Connection`...) cannot be set; wharf's own answers (503...) and 1xx are left alone."},
			{"request_headers", "table of strings", "none", "`http` frontends: fields set on every request passed to a server, replacing the client's own of the same name (case-insensitively); an empty value removes the field. HAProxy: `http-request set-header` / `del-header`. E.g. `request_headers = { \"X-Request-Source\" = \"edge\", \"Cookie\" = \"\" }`. HTTP/1.1 and HTTP/2 clients alike. Framing, connection and the fields the proxy writes itself (`Host`, `X-Forwarded-For`, `-Proto`, `-Host`, `Forwarded`, `Expect`) cannot be set."},
			{"access_log", "array of strings", "none (no access log)", "Sinks that get one syslog message per request (`http`, HTTP/2 streams included) or per connection (`tcp`), as HAProxy's `option httplog`/`option tcplog` lines go to its `log` servers: RFC 5424, facility local0, severity info (err for a 5xx or no answer; for `tcp`, no server), APP-NAME `wharf`, MSGID `http` or `tcp`, the fields as structured data (`[http@32473 client=... frontend=... backend=... server=... status=... bytes=... tc=... tr=... ta=...]`, for JSON sinks and routes) and as text in HAProxy's order: `10.0.0.7:51234 [05/Dec/2026:19:10:00.123] web be/b1 0/2/3 200 1234 \"GET / HTTP/1.1\"` (times in ms from the request's start: connect (0 for a pooled connection), response head, total; -1 when not reached; bytes: response body to the client) or, for `tcp`, `... db pg/p1 1/1503 512 20480` (connect/total, bytes from and to the client). A line is offered to each sink without waiting: a full sink queue drops it (`wharf_sink_dropped_total{reason=\"queue_full\"}`), the proxy is never held back. `wharf tap --frontend NAME` streams the lines live, with or without `access_log`. Applied on reload."},
			{"maxconn", "integer", fmt.Sprint(DefaultProxyMaxConn), "Most concurrent client connections; further ones wait in the kernel's accept queue."},
			{"maxconn_per_ip", "integer", fmt.Sprint(DefaultProxyMaxConnPerIP), "Most concurrent client connections from one source (an IPv4 address or an IPv6 /64); further ones from it are closed at once and counted (`wharf_proxy_frontend_rejected_total{reason=\"maxconn_per_ip\"}`), so one client cannot take every `maxconn` slot. Over HTTP/2 the source's streams in flight, over all its connections, are capped at the same number (else one source could have 100 times as many requests at the servers as over HTTP/1.1); further streams are refused with REFUSED_STREAM and counted (`wharf_proxy_http2_errors_total{reason=\"maxconn_per_ip\"}`). Counted by the connecting peer: peers in `trusted_proxies` (a load balancer in front) are exempt. Set it to `maxconn` to turn it off. HAProxy: `stick-table type ip size 100k store conn_cur`, `tcp-request connection track-sc0 src`, `tcp-request connection reject if { sc0_conn_cur gt 1024 }`."},
			{"allow", "array of strings", "all", "Client CIDRs or IPs allowed to connect, checked on accept before anything is read; others are closed and counted (`reason=\"acl\"`)."},
			{"deny", "array of strings", "none", "Client CIDRs or IPs refused on accept; checked before `allow`."},
			{"accept_proxy", "boolean", "`false`", "Every connection must start with a PROXY protocol v1 or v2 header, which is accepted only from `trusted_proxies` (others are closed and counted); the client address it carries is used for routing, ACL-free logging, `source` balancing and forwarded headers."},
			{"trusted_proxies", "array of strings", "none", "CIDRs whose PROXY headers are accepted and, on `http` frontends, whose forwarding headers (`Forwarded`, `X-Real-IP` and every `X-Forwarded-*`) are kept; wharf appends its hop to `X-Forwarded-For` and `Forwarded`. From anyone else they are removed, so a server cannot be fooled by a client's `X-Forwarded-Port` or `X-Forwarded-Prefix`."},
			{"sni_routing", "boolean", "`false`", "`tcp` only: read the TLS ClientHello without terminating TLS and pick the backend by server name with `use` rules' `sni`; the ClientHello is then replayed to the server."},
			{"header_timeout", "duration", dur(DefaultHeaderTimeout), "How long a new connection may take to send what comes before forwarding: the PROXY header, the ClientHello (`sni_routing`), the HTTP request header. One that has not by then is closed and counted (`wharf_proxy_frontend_rejected_total{reason=\"header_timeout\"}`; `http`: a request head begun and not finished, on every request of a connection, which catches slowloris). `http` with `tls_cert`: the TLS handshake too, within the same `header_timeout` from connecting as the first request head (or HTTP/2's preface and SETTINGS), not one each; a handshake that fails or is not finished by then is counted `reason=\"tls_handshake\"`."},
			{"client_timeout", "duration", dur(DefaultClientTimeout), "Idle timeout on the client side: a `tcp` connection that moved no byte either way for this long is closed (noticed within a quarter of the shorter of this and `server_timeout`); an idle `http` keep-alive connection too, and one whose client stopped reading the response (a write to it made no progress for this long; HAProxy: `timeout client`)."},
			{"max_header_bytes", "size", "`" + DefaultMaxHeaderBytes.String() + "` (http)", "`http` only: longest request header; longer gets 431."},
			{"tls_cert", "string", "none", "`http` only: PEM certificate (chain) file; with `tls_key`, the frontend terminates TLS."},
			{"tls_key", "string", "none", "`http` only: PEM private key file for `tls_cert`."},
			{"tls_ciphers", "array of strings", "ECDHE AEAD suites", "`http` frontends with `tls_cert`: " + TLSCiphersDoc + " HAProxy: `ciphers` on the `bind` line."},
			{"http2", "boolean", "`true`", "`http` frontends with `tls_cert`: offer HTTP/2 by ALPN (`h2`, then `http/1.1`); each stream is routed and rewritten (Host, `X-Forwarded-*`, `Forwarded`, hop-by-hop fields) as an HTTP/1.1 request is, and sent to the servers as HTTP/1.1 (a body without content-length as chunked, with the request's trailer fields after its last chunk; fields RFC 9110 bars from trailers are dropped). At most 100 concurrent streams per connection, header blocks up to `max_header_bytes`, client RST_STREAMs, and requests wharf resets because of a fault of the client's own (malformed ones refused before they run included; REFUSED_STREAM over the stream limits not), capped at 100 a second together (a leaky bucket: at most 100 + 100 per second in any interval; CVE-2023-44487 and CVE-2025-8671: GOAWAY ENHANCE_YOUR_CALM), a stream reset before its request was sent taking no server connection, an idle connection closed after `client_timeout`, a connection error's GOAWAY followed by a lingering close (up to 1 s and 256 KiB of the client's input read and dropped, so it gets the GOAWAY rather than a reset); each refusal counted in `wharf_proxy_http2_errors_total{reason}`. No h2c. HAProxy: `alpn h2,http/1.1` on the `bind` line."},
			{"engine", "string", "`event-loop`", "`http` frontends without `tls_cert` or `accept_proxy` (those always use `goroutines`): `event-loop` serves plain exchanges on gnet event loops, the client and its server connection on the same loop (no goroutine wake-ups per request): a request without body (GET, HEAD, OPTIONS, TRACE) in origin form, answered with a `Content-Length` body of at most 32 KiB (or none), while no access log or tap is on. Anything else (a body, an upgrade, chunked or larger responses, a server with `send_proxy`, a connect that fails, every server at its `maxconn` (the request waits in the backend's queue there), a malformed head, an answer the client's socket does not take at once, more than 1 MiB pipelined) is handed, with the bytes already read and any answer not yet written, to the goroutine code, which serves that connection from then on. `goroutines` serves each client connection on its own goroutine. Both engines answer alike: a soak (2026-12-05) found four exchanges where the event loop did not (a half-close with answers queued, a half-close on a stale server connection, a server closing mid-body, over 1 MiB pipelined) and a double `connect_timeout` wait; all are fixed, and proxy/httpproxy/engines_parity_test.go runs each against both engines. Differences left: a client that closes while its request is at the server counts as 499 and its server connection closes at once (goroutines notice only when they write the answer, and count the server's status). Response bodies over 32 KiB are streamed by the goroutine code, which is faster there (wrk -c10, 2026-12-06: 64 KiB 12.6k req/s vs 9.8k relayed whole by the loop). The default was `goroutines` until 2026-12-06. Measured in `make bench` (the HTTP row; relay `wharf-goroutines` is the other engine)."},
		},
	},
	{
		Title: "[[frontend.NAME.use]]", Table: "frontend.NAME.use",
		Intro: "A use rule matches when all its conditions hold; the first match picks the backend. Names match exactly or, with a leading `*.`, any one label (`*.example.com` matches `a.example.com`, not `example.com` nor `a.b.example.com`), case-insensitively.",
		Keys: []KeyDoc{
			{"sni", "string", "none", "`tcp` with `sni_routing`: TLS server name. Besides an exact name and `*.example.com` (one label), `sni` takes a leading dot: `.example.com` matches any depth below (`a.example.com`, `a.b.example.com`) but not `example.com` itself, as HAProxy's `req_ssl_sni -m end .example.com` (nginx's `.example.com` also matches `example.com`: add an exact rule for it). Case-insensitive, as HAProxy's `-i`."},
			{"host", "string", "any", "`http`: Host header (port ignored)."},
			{"path_prefix", "string", "any", "`http`: request path prefix, e.g. `\"/api/\"`."},
			{"backend", "string", "required", "Backend for matching traffic."},
		},
	},
	{
		Title: "[backend.NAME]", Table: "backend.NAME",
		Intro: "A backend is a pool of servers for proxy frontends, like an HAProxy backend. A server is taken out after `fall` failed checks or connects in a row and put back after `rise` passed checks; when no server is up, a `tcp` client is closed at once and an `http` client gets 503, both counted.\n\n" +
			"Servers are controlled at runtime on the admin API, as with HAProxy's runtime API, and `wharf server` is its client: " +
			"`wharf server drain web/app1` (HAProxy: `set server web/app1 state drain`; API: `POST /api/servers/web/app1` with `state=drain`) takes no new connections or requests while those in flight finish; " +
			"`wharf server maint web/app1` (`state maint`, `state=maint`) takes none either and does not cut those in flight (as in HAProxy, where `shutdown sessions server` is a separate command wharf does not have); " +
			"`wharf server ready web/app1` (`state ready`, `state=ready`) puts it back; " +
			"`wharf server weight web/app1 3` (`set server web/app1 weight 3`, `weight=3`) changes its share under every `balance` (0-256; 0 takes no new ones; a `hash` backend rebuilds its ring, so only the keys on the arcs the server gains or loses move); " +
			"`wharf server list` (`show servers state`; `GET /api/servers`, JSON) lists health, admin state, weight and active connections. " +
			"Health checks keep running in every state (HAProxy stops them in maint), so a drained server shows whether it is healthy before it is put back. " +
			"Both endpoints need the `[admin]` token when one is set. The state and weight are shown on the status page and exported as `wharf_proxy_server_admin_state{state=\"ready|drain|maint\"}` (1 or 0) and `wharf_proxy_server_weight`. " +
			"They last until changed or wharf restarts (a restart starts every server ready at its configured weight, as HAProxy does without a `server-state-file`). A reload keeps them on every server whose name, address and configured weight it does not change, also when it rebuilds the backend (another server added, `balance` changed), as HAProxy's `server-state-file` with `load-server-state-from-file global` does across a reload.\n\n" +
			"A reload (`SIGHUP`, `POST /reload`) applies backend changes at once: a changed backend is built anew beside the old one (its kept servers keep their health state), new connections and requests go to it while those in flight finish on the old one, which stops its health checks and closes its pooled HTTP connections once nothing is in flight to it. A removed backend closes the same way.",
		Keys: []KeyDoc{
			{"balance", "string", q(DefaultBalance), "`roundrobin` (weighted), `leastconn` (fewest open connections per weight), `source` (hash of the client IP: one client sticks to one server while the set of up servers stays the same), `hash` (consistent hashing of `hash_key`: each server owns weight x 100 points on a ring, so adding a server moves only the keys it takes over and a server going down moves only its own; HAProxy: `balance source|uri|hdr(NAME)` with `hash-type consistent`)."},
			{"hash_key", "string", "`source` with `balance = \"hash\"`", "What `balance = \"hash\"` hashes: `source` (the client IP; the PROXY-protocol or trusted X-Forwarded-For client when those apply), `uri` (the request path without the query, http frontends) or `header:NAME` (that request header's value, http frontends; a request without it is balanced round robin, as HAProxy does). HAProxy: `balance uri`, `balance hdr(NAME)`."},
			{"server", "array of tables", "required", "The servers, see below."},
			{"connect_timeout", "duration", dur(DefaultConnectTimeout), "Bound on one connect; a failed connect is retried on the next server."},
			{"queue_timeout", "duration", "`connect_timeout`", "How long a connection (`tcp`) or request (`http`) waits for a slot when every server that is up is at its `maxconn` (see the server's `maxconn`). HAProxy: `timeout queue`, which also defaults to `timeout connect`."},
			{"server_timeout", "duration", dur(DefaultServerTimeout), "`tcp`: idle timeout on the server side (no byte either way for this long closes the connection). `http`: longest wait for a response header (then 504), and for a write of the request to the server to make progress (a server that stopped reading the body; HAProxy: `timeout server`)."},
			{"retries", "integer", fmt.Sprint(DefaultRetries), "Further connect attempts after a failed one, each on the next server."},
			{"check", "string", q(DefaultCheck), "Active health check: `tcp` (connect), `http` (GET `check_path`, expect `check_status`), `none` (failed connects still mark servers down; they are tried again after `check_interval`)."},
			{"check_interval", "duration", dur(DefaultCheckInterval), "Time between checks of one server."},
			{"check_timeout", "duration", dur(DefaultCheckTimeout), "Bound on one check."},
			{"rise", "integer", fmt.Sprint(DefaultRise), "Passed checks in a row that mark a down server up."},
			{"fall", "integer", fmt.Sprint(DefaultFall), "Failed checks or connects in a row that mark an up server down."},
			{"check_path", "string", q(DefaultCheckPath) + " (http)", "`check = \"http\"`: path requested."},
			{"check_status", "integer", fmt.Sprint(DefaultCheckStatus) + " (http)", "`check = \"http\"`: expected status."},
		},
	},
	{
		Title: "[[backend.NAME.server]]", Table: "backend.NAME.server",
		Keys: []KeyDoc{
			{"address", "string", "required", "`host:port` of the server."},
			{"name", "string", "the address", "Label in metrics and logs; unique within the backend."},
			{"weight", "integer", fmt.Sprint(DefaultWeight), "Relative share, 1-256. Changed at runtime by `wharf server weight` (0-256)."},
			{"maxconn", "integer", "0 (unlimited)", "Most concurrent connections (`tcp`) or requests (`http`); a full server is skipped. `tcp`: when every server that is up is full, a new connection waits in the backend's queue, first come first served, for one to free a slot, up to the backend's `queue_timeout`, then is closed and counted (`wharf_proxy_frontend_rejected_total{reason=\"queue_timeout\"}`), as HAProxy queues; at most the frontend's `maxconn` connections wait (more are closed at once, `reason=\"queue_full\"`), and `wharf_proxy_backend_queued` is how many do. `http`: a request finding every server full waits in the same queue (the event-loop engine hands its connection to the goroutine code to wait), and after `queue_timeout` gets 503, counted as `wharf_proxy_http_errors_total{kind=\"queue_timeout\"}` (HAProxy answers 503 after `timeout queue`); at most the frontend's `maxconn` requests wait (more get 503 at once, `kind=\"queue_full\"`)."},
			{"send_proxy", "string", "none", "Send a PROXY protocol header (`v1` or `v2`) with the client's address first, like HAProxy's `send-proxy`/`send-proxy-v2`. On `http` backends this turns off connection reuse (the header names one client)."},
			{"backup", "boolean", "false", "A backup server takes no traffic while any other server of the backend is up, ready and weighted above 0 (health checks, `wharf server`); once none is, the first backup that is up (in config order) takes it all, and the others resume as soon as one comes back. HAProxy: `server ... backup`. Backups are health-checked like the others."},
		},
	},
}

// sinkSection is the keys every sink has; some defaults depend on the
// registered types.
func sinkSection() section {
	return section{
		Title: "[sink.NAME]", Table: "sink.NAME",
		Intro: "A sink is a named output. Every sink has a queue in front of it that batches and retries; these keys apply to every type. A sink no frontend uses is a warning.",
		Keys: []KeyDoc{
			{"type", "string", "required", refTypes() + ". Keys of another type are an error."},
			{"encoding", "string", refEncodingDefaults(), "`raw` (bytes as received), `rfc5424` (re-encoded; an RFC3164 timestamp without a year gets the latest year that puts it at most 31 days after the receive time, as syslog-ng does (rsyslog takes the receive year: `Jan  1` received in December is dated that year)), `rfc3164` (BSD syslog `<PRI>Mmm dd hh:mm:ss HOST TAG[PID]: MSG` for old collectors, like rsyslog's `RSYSLOG_TraditionalForwardFormat`: an RFC3164 sender's `Mmm dd hh:mm:ss` timestamp is kept as sent and its other forms (with a year, a fraction, ISO 8601) are written in that form; other timestamps are converted to wharf's local time zone (`TZ`); TAG is APP-NAME cut to 32 bytes; RFC5424 MSGID and structured data are left out), `traditional` (the same line without `<PRI>`: `Mmm dd hh:mm:ss HOST TAG[PID]: MSG`, a classic /var/log file's line, like rsyslog's `RSYSLOG_TraditionalFileFormat`, except that for an RFC5424 sender rsyslog writes no colon after `TAG[PID]`, and that an RFC 3339 timestamp whose offset is not wharf's is written in wharf's local zone where rsyslog writes the sender's clock" + refEncodingNotFor("traditional") + "), `traditional-rfc3339` (the same line with an RFC 3339 timestamp, `2026-12-06T05:10:11.123456+00:00 HOST TAG[PID]: MSG`, like rsyslog's `RSYSLOG_FileFormat`, its built-in default for files: an RFC 3339 timestamp is written as sent, zone and up to 6 fraction digits; a BSD one is read in wharf's local zone; no colon difference aside, byte for byte as rsyslog" + refEncodingNotFor("traditional-rfc3339") + "), `json` (parsed fields" + refEncodingNotFor("json") + ")."},
			{"queue_size", "integer", fmt.Sprint(DefaultQueueSize), "Most messages queued; beyond it UDP messages are dropped and counted (reason `queue_full`)."},
			{"queue_bytes", "size", "`" + DefaultQueueBytes.String() + "`", "Most message bytes queued."},
			{"backpressure_size", "integer", sinkTypeDefaults(fmt.Sprint(DefaultBackpressureSize), func(t *SinkType) string { return nonZero(2 * t.BatchSize) }) + " (two batches)", "Queued messages at which TCP and TLS senders are paused (not read) until the queue drains below it, while the sink is healthy; the default is at least two batches, at most queue_size. A small mark keeps latency and memory low when senders outrun a working sink. While the sink fails (its last write or check failed) senders may fill the whole queue, which is there to ride out the outage; UDP, which cannot be paused, may always use the whole queue."},
			{"backpressure_bytes", "size", "`" + DefaultBackpressureBytes.String() + "`", "The same mark in bytes; the default is at least two batches, at most queue_bytes."},
			{"batch_size", "integer", sinkTypeDefaults(fmt.Sprint(DefaultBatchSize), func(t *SinkType) string { return nonZero(t.BatchSize) }), "Most messages per write; at most queue_size."},
			{"batch_bytes", "size", sinkTypeDefaults("`"+DefaultBatchBytes.String()+"`", func(t *SinkType) string { return nonZero(int(t.BatchBytes)) }), "Most bytes per write; at most queue_bytes."},
			{"batch_timeout", "duration", "0s (natural batching)", "How long a partial batch waits for more messages (a linger). 0 writes what has queued as soon as the previous write is done: a message reaching an idle sink leaves at once, and batches fill from what arrives while a write is in flight."},
			{"retry_backoff", "duration", dur(DefaultRetryBackoff), "First retry delay; doubles up to retry_max_backoff."},
			{"retry_max_backoff", "duration", dur(DefaultRetryMaxBackoff), "Longest retry delay; at least retry_backoff."},
			{"max_retries", "integer", fmt.Sprint(DefaultMaxRetries), "Retries of a failed batch before it is dropped (reason `retries_exhausted`); 0 retries until shutdown."},
			{"buffer", "table", "none", "A disk buffer for this sink's queue: see `[sink.NAME.buffer]`."},
		},
	}
}

// bufferSection is a sink's disk buffer table.
var bufferSection = section{
	Title: "[sink.NAME.buffer]", Table: "sink.NAME.buffer",
	Intro: "An optional disk buffer for any sink: its queue becomes an append-only segment log (records with length and CRC) in `dir`. A message leaves it only after the sink confirmed it (Kafka: acknowledged at `required_acks`; syslog TCP: written), so what is unconfirmed survives a crash or restart and is delivered after it (at-least-once: duplicates possible, loss not). A torn or corrupt record is skipped and counted. `queue_size`/`queue_bytes` do not apply to a buffered sink. A reload can add, remove and add back a buffered sink (a removed one stops draining and lets go of its directory as soon as it is added back; what it had not delivered is delivered by the new one) and change its other settings (the new runner takes the open buffer over: what the old one had not confirmed is delivered by the new one). In this table, `max_bytes`, `segment_bytes`, `on_full`, `fsync` and `fsync_interval` change by reload (applied to the open buffer: a raised `max_bytes` lets held-back input in at once; a lowered one deletes nothing, input waits until delivery brings the buffer under it; a new `fsync` applies from the next append); a new `dir` by reload gives the sink a new buffer and moves what the old one holds undelivered into it (batch by batch, each confirmed in the old dir only once the new one has written it: a crash meanwhile gives duplicates, not loss; logged when done, and a move cut short by shutdown or by a reload giving the old dir back leaves the rest in the old dir, said in the log). A restart on a config with a new `dir` does not know the old one: stop wharf and move the old dir's files (the `.seg` files and `ack`) into the new, empty dir first.",
	Keys: []KeyDoc{
		{"dir", "string", "required", "Directory of this sink's buffer (created if missing; one sink per directory, enforced with a lock). If it is deleted while wharf runs, wharf makes it again within a second, stores new records there and writes the undelivered segments back into it from the descriptors it keeps, so a restart keeps them (`wharf_buffer_removals_total`; `wharf_buffer_lost_records_total` for segments beyond the 256 it keeps open; `/readyz` 503 while a write-back has not succeeded)."},
		{"max_bytes", "size", "`" + DefaultBufferMaxBytes.String() + "`", "Most bytes of segment files on disk."},
		{"segment_bytes", "size", "`" + DefaultBufferSegmentBytes.String() + "` (at most max_bytes/4)", "Size of one segment file; space is freed a whole segment at a time."},
		{"fsync", "string", q(DefaultBufferFsync), "`always` (each append on disk before it returns: survives power loss, ~100x slower), `interval`, or `never` (survives a wharf crash, not a machine crash). A failing fsync is counted (`wharf_buffer_sync_errors_total`), logged, and makes `/readyz` 503 until one works again; the records are still delivered."},
		{"fsync_interval", "duration", dur(DefaultBufferFsyncInterval), "Period of `fsync = \"interval\"`."},
		{"on_full", "string", q(DefaultBufferOnFull), "`block`: TCP input waits for room (backpressure), UDP input drops and counts; `drop_newest`: drop and count (`wharf_sink_dropped_total{reason=\"queue_full\"}`). The same applies while the buffer's disk cannot be written (full before `max_bytes` is reached, read-only, I/O errors): with `block` TCP input waits, UDP input is dropped and counted as `reason=\"spool_error\"`; with `drop_newest` everything new is (`spool_error`). That is a state of the buffer, not an error per message: `/readyz` answers 503 with the path, the error and the free space, `wharf_buffer_writable` is 0, one line is logged (then at most one per 30 s), and wharf retries every second and whenever the sink confirms records; once everything in the buffer is confirmed it starts a new segment file and deletes the old one, so a full disk recovers on its own when the sink drains it. A checkpoint that cannot be written is retried the same way."},
	},
}

// refTypes lists the sink types as code: "`a`, `b` or `c`".
func refTypes() string {
	ts := SinkTypes()
	for i, t := range ts {
		ts[i] = "`" + t + "`"
	}
	if len(ts) < 2 {
		return strings.Join(ts, "")
	}
	return strings.Join(ts[:len(ts)-1], ", ") + " or " + ts[len(ts)-1]
}

// refEncodingDefaults lists each type's default encoding.
func refEncodingDefaults() string {
	var parts []string
	for _, name := range SinkTypes() {
		parts = append(parts, name+" "+q(sinkType(name).DefaultEncoding))
	}
	return strings.Join(parts, ", ")
}

// refEncodingNotFor names the types that cannot write enc ("; not for
// syslog sinks"), or "".
func refEncodingNotFor(enc string) string {
	var not []string
	for _, name := range SinkTypes() {
		if !slices.Contains(sinkType(name).Encodings, enc) {
			not = append(not, name)
		}
	}
	if len(not) == 0 {
		return ""
	}
	return "; not for " + strings.Join(not, "/") + " sinks"
}

// nonZero renders n, or "" for 0 (no type-specific default).
func nonZero(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprint(n)
}

// ExampleConfig is the example in the reference: an edge relay taking
// syslog on UDP and TCP 514 and sending it to Kafka, to a downstream
// collector pair with failover, and to a local file.
const ExampleConfig = `# Edge relay: syslog in on UDP and TCP 514; out to Kafka, to a
# downstream collector (with a standby) and to a local file.

[admin]
listen = "127.0.0.1:9600"

[global]
shutdown_timeout = "15s"
log_format = "json"

[frontend.edge]
bind = ["udp://0.0.0.0:514", "tcp://0.0.0.0:514"]
max_message_size = "64KiB"
sinks = ["kafka", "collector"]

# Security events also go to a local file.
[[frontend.edge.route]]
facility = ["auth", "authpriv"]
sinks = ["kafka", "collector", "audit"]

# Debug noise from the web tier stays out of the collector.
[[frontend.edge.route]]
hostname = "web-*"
severity = "info..debug"
sinks = ["kafka"]

[sink.kafka]
type = "kafka"
brokers = ["kafka-1.example.net:9092", "kafka-2.example.net:9092"]
topic = "syslog"
key = "hostname"
compression = "lz4"
required_acks = "all"

[sink.collector]
type = "syslog"
servers = ["tcp://collector-a.example.net:514", "tcp://collector-b.example.net:514"]
queue_bytes = "256MiB"

[sink.audit]
type = "file"
path = "/var/log/wharf/audit.jsonl"
file_mode = "0600"
`

// Reference renders the config reference as Markdown: the text of
// docs/config.md and of `wharf help config`.
func Reference() string {
	var b strings.Builder
	w := func(s ...string) {
		for _, l := range s {
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	w("# wharf configuration reference",
		"",
		"<!-- Generated by conf.Reference (conf/reference.go); do not edit. Regenerate: go test ./conf -run TestReferenceDoc -update -->",
		"",
		"wharf reads one TOML file (`wharf run -c wharf.toml`, or `--config wharf.toml`, or just `wharf run wharf.toml`; without one, `/etc/wharf/wharf.toml`; `wharf check wharf.toml` validates it and prints the resolved setup). Unknown keys are errors, and so are keys that do not apply to a sink's type. All problems are reported at once, each as `FILE:LINE:COL: PATH: MESSAGE`, for example:",
		"",
		"```",
		"wharf.toml:4:1: frontend.edge.bind[1]: port 70000 out of range (1-65535)",
		"wharf.toml:9:1: frontend.edge.bindd: unknown key; did you mean bind?",
		"```",
		"",
		"Every key except those marked required has a default, so a config only needs what differs.",
		"",
		"**Sizes** are an integer byte count (`65536`) or a string with a unit: `B`, `KB`, `MB`, `GB` (powers of 1000) or `KiB`, `MiB`, `GiB` (powers of 1024), case as written: `\"64KiB\"`.",
		"**Durations** are Go duration strings: `\"10ms\"`, `\"5s\"`, `\"1m30s\"`.",
		"**Rates** are messages per second or per minute, as a string: `\"20000/s\"`, `\"600/m\"`.",
		"A size, count or duration of 0 means the default.",
		"**Relative paths** (a file sink's `path`, `dead_letter`, a buffer's `dir`, `tls_*` files, `token_file`) are relative to wharf's working directory, not to the config file: `/var/lib/wharf` under the shipped systemd unit and in the container. Only `include` patterns are relative to the main file's directory.",
		"",
		"**Environment variables** expand in string values: `\"${NAME}\"`, or `\"${NAME:-default}\"` for a default when `NAME` is unset or empty (`brokers = [\"${KAFKA_HOST}:9092\"]`). An unset variable without a default is an error at its key. `$${` is a literal `${`; any other `$` stays as written. Secrets can also come from files: `token_file`, `sasl_password_file`.",
		"",
		"**Includes**: `include = [\"conf.d/*.toml\"]` at the top of the main file reads more files (glob patterns relative to the main file's directory, matched in name order) whose `[frontend.*]`, `[sink.*]` and `[backend.*]` tables join the main file's; a name defined twice is an error, and `[admin]`, `[global]` and `include` belong in the main file only. Errors in an included file name it: `conf.d/kafka.toml:3:1: sink.kafka.topic: ...`. A pattern that matches nothing is fine (an empty `conf.d`); a plain file name that does not exist is an error. `SIGHUP` and `POST /reload` read the included files again.",
		"",
		"## Example",
		"",
		"```toml",
	)
	b.WriteString(ExampleConfig)
	w("```", "")
	for _, s := range sections() {
		w("## "+strings.ReplaceAll(s.Title, "NAME", "*name*"), "")
		if s.Intro != "" {
			w(s.Intro, "")
		}
		if len(s.Keys) == 0 {
			continue
		}
		w("| key | type | default | meaning |", "|---|---|---|---|")
		for _, k := range s.Keys {
			w(fmt.Sprintf("| `%s` | %s | %s | %s |", k.Key, k.Type, k.Default, k.Doc))
		}
		w("")
	}
	return strings.TrimRight(b.String(), "\n") + "\n"
}
