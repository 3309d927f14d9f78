package syslog

import (
	"fmt"
	"strings"
	"time"

	"wharf/conf"
	"wharf/relp"
	"wharf/sinks"
)

func init() { sinks.Register("syslog", configType, New) }

// Defaults of a syslog sink's keys, each with its reason.
const (
	// DefaultEncoding forwards the bytes as received (a relay should not
	// rewrite what it relays).
	DefaultEncoding = "raw"
	// DefaultOutFraming is octet-counting (RFC6587 3.4.1): it survives
	// messages containing newlines, LF framing does not.
	DefaultOutFraming = "octet-counting"
	// DefaultWriteTimeout bounds writing one batch to a collector: one
	// that stops reading is failed over from instead of blocking the
	// queue behind it.
	DefaultWriteTimeout = 10 * time.Second
	// DefaultDialTimeout is long enough for a TLS-less TCP connect across
	// a WAN, short enough to fail over to the next server quickly.
	DefaultDialTimeout = 5 * time.Second
)

// Config is a syslog sink's own keys in [sink.NAME] (type = "syslog").
type Config struct {
	// Servers are downstream collectors, tcp://host:port, tls://host:port
	// (RFC 5425) or udp://host:port, tried in order (failover).
	Servers []string `toml:"servers"`
	// OutFraming of TCP output: "octet-counting" (default) or "lf".
	OutFraming string `toml:"out_framing"`
	// DialTimeout bounds one connect attempt.
	DialTimeout conf.Duration `toml:"dial_timeout"`
	// WriteTimeout bounds writing one batch to a collector.
	WriteTimeout conf.Duration `toml:"write_timeout"`
	// RELPWindow is how many messages a relp:// server may leave
	// unanswered at a time (0: relp.DefaultWindow).
	RELPWindow int `toml:"relp_window"`
	// ClientTLS holds the tls_* keys, for tls:// servers.
	conf.ClientTLS
}

// configType is what conf knows of the syslog type.
var configType = conf.SinkType{
	New:             func() conf.SinkOptions { return &Config{} },
	Encodings:       []string{"raw", "rfc5424", "rfc3164"},
	DefaultEncoding: DefaultEncoding,
	Order:           20,
	Keys: []conf.KeyDoc{
		{Key: "servers", Type: "array of strings", Default: "required", Doc: "Downstream collectors `tcp://host:port`, `tls://host:port` (syslog over TLS, RFC 5425; octet counting), `udp://host:port`, `relp://host:port` or `relp+tls://host:port` (RELP, as rsyslog's imrelp speaks it: a batch leaves the queue only when the collector acknowledged every message; after a broken session the unacknowledged ones are sent again, counted in `wharf_relp_resent_total`, so duplicates are possible), tried in order: the first that works gets the traffic (failover). A RELP collector that answers nothing for `write_timeout` counts as failed."},
		{Key: "out_framing", Type: "string", Default: conf.RefString(DefaultOutFraming), Doc: "TCP framing: `octet-counting` or `lf` (a control character inside a message, a LF included, is then written as `#` and three octal digits, e.g. `#012`, so it cannot end the frame early)."},
		{Key: "dial_timeout", Type: "duration", Default: conf.RefDuration(DefaultDialTimeout), Doc: "Bound on one connect attempt."},
		{Key: "write_timeout", Type: "duration", Default: conf.RefDuration(DefaultWriteTimeout), Doc: "Bound on writing one batch; a collector that stops reading is failed over from."},
		{Key: "relp_window", Type: "integer", Default: "`128`", Doc: "`relp://` and `relp+tls://` servers: how many messages may wait for the server's answer at a time (librelp's default, 128; rsyslog's omrelp `windowSize`). A larger window keeps a distant collector busy; each unanswered message stays in the sink's queue until answered. 1-" + fmt.Sprint(conf.MaxRELPWindow) + "."},
		{Key: "tls_ca", Type: "string", Default: "system roots", Doc: "`tls://` and `relp+tls://` servers: PEM file of CA certificates that verify the collector's certificate."},
		{Key: "tls_cert", Type: "string", Default: "none", Doc: "`tls://` and `relp+tls://` servers: PEM client certificate (chain) for collectors that require mutual TLS; with `tls_key`."},
		{Key: "tls_key", Type: "string", Default: "none", Doc: "`tls://` and `relp+tls://` servers: private key file for `tls_cert`."},
		{Key: "tls_server_name", Type: "string", Default: "the server's host", Doc: "`tls://` and `relp+tls://` servers: name the collector's certificate must carry (and SNI sent), when it differs from the host in `servers`."},
		{Key: "tls_insecure_skip_verify", Type: "boolean", Default: "`false`", Doc: "`tls://` and `relp+tls://` servers: accept any certificate. **For tests only**: it lets anyone on the path read and alter the logs. Warned about by `wharf check`."},
		{Key: "tls_ciphers", Type: "array of strings", Default: "ECDHE AEAD suites", Doc: "`tls://` and `relp+tls://` servers: " + conf.TLSCiphersDoc + " HAProxy: `ssl-default-server-ciphers`."},
	},
}

// ApplyDefaults fills every unset key.
func (c *Config) ApplyDefaults() {
	if c.OutFraming == "" {
		c.OutFraming = DefaultOutFraming
	}
	if c.DialTimeout.Duration == 0 {
		c.DialTimeout.Duration = DefaultDialTimeout
	}
	if c.WriteTimeout.Duration == 0 {
		c.WriteTimeout.Duration = DefaultWriteTimeout
	}
	if c.RELPWindow == 0 {
		c.RELPWindow = relp.DefaultWindow
	}
}

// hasRELPServer reports whether a relp:// or relp+tls:// server is listed.
func (c *Config) hasRELPServer() bool {
	for _, srv := range c.Servers {
		if strings.HasPrefix(srv, "relp://") || strings.HasPrefix(srv, "relp+tls://") {
			return true
		}
	}
	return false
}

// HasTLSServer reports whether a tls:// or relp+tls:// server is listed.
func (c *Config) HasTLSServer() bool {
	for _, srv := range c.Servers {
		if strings.HasPrefix(srv, "tls://") || strings.HasPrefix(srv, "relp+tls://") {
			return true
		}
	}
	return false
}

// Validate reports every problem with the keys.
func (c *Config) Validate(v *conf.SinkCheck) {
	if len(c.Servers) == 0 {
		v.Errorf("", "syslog sink needs servers = [\"tcp://host:514\"]")
	}
	for i, srv := range c.Servers {
		if err := checkServer(srv); err != nil {
			v.Errorf(fmt.Sprintf("servers[%d]", i), "%v", err)
		}
	}
	v.Enum("out_framing", c.OutFraming, "octet-counting", "lf")
	v.NotNegative("write_timeout", c.WriteTimeout)
	v.NotNegative("dial_timeout", c.DialTimeout)
	switch {
	case c.RELPWindow < 1 || c.RELPWindow > conf.MaxRELPWindow:
		v.Errorf("relp_window", "%d out of range (1-%d)", c.RELPWindow, conf.MaxRELPWindow)
	case c.RELPWindow != relp.DefaultWindow && !c.hasRELPServer():
		v.Errorf("relp_window", "relp_window applies to relp:// and relp+tls:// servers only; none of servers is")
	}
	if !c.HasTLSServer() {
		if c.ClientTLS.IsSet() {
			v.Errorf("", "tls_* keys apply to tls:// servers only; none of servers is tls://")
		}
		return
	}
	c.ClientTLS.Validate(v)
}

func checkServer(s string) error {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return fmt.Errorf("%q: want tcp://host:port, tls://host:port, udp://host:port, relp://host:port or relp+tls://host:port", s)
	}
	switch scheme {
	case "tcp", "udp", "tls", "relp", "relp+tls":
	default:
		return fmt.Errorf("unknown scheme %q in %q (use tcp, tls, udp, relp or relp+tls)", scheme, s)
	}
	_, _, err := conf.ParseHostPort(rest)
	return err
}

// Describe writes the resolved settings for `wharf check`.
func (c *Config) Describe(pr func(format string, args ...any)) {
	pr("servers %s (in order, failover)", strings.Join(c.Servers, ", "))
	pr("out_framing %s, dial_timeout %s, write_timeout %s", c.OutFraming, c.DialTimeout, c.WriteTimeout)
	if c.hasRELPServer() {
		pr("relp_window %d", c.RELPWindow)
	}
	if c.HasTLSServer() {
		pr("%s", c.ClientTLS.Describe())
	}
}

var _ conf.SinkOptions = (*Config)(nil)
