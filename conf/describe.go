package conf

import (
	"fmt"
	"io"
	"strings"
)

// Describe prints the resolved config for people: every listener, every
// frontend's routes, every sink with all settings after defaults, then
// the warnings. `wharf check` prints exactly this. Output is sorted by
// name, so it is stable across runs.
func (c *Config) Describe(w io.Writer) {
	pr := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	if c.Path != "" {
		pr("config %s", c.Path)
	}
	if len(c.Included) > 0 {
		pr("included %s", strings.Join(c.Included, ", "))
	}
	switch {
	case c.Admin.Listen == "off":
		pr("admin off")
	case c.Admin.TokenFile != "":
		pr("admin %s, write endpoints need the bearer token in %s", c.Admin.Listen, c.Admin.TokenFile)
	case c.Admin.Token != "":
		pr("admin %s, write endpoints need the bearer token (token)", c.Admin.Listen)
	default:
		pr("admin %s", c.Admin.Listen)
	}
	pr("global shutdown_timeout %s, log_format %s, log_level %s", c.Global.ShutdownTimeout, c.Global.LogFormat, c.Global.LogLevel)

	pr("")
	pr("listeners:")
	for _, name := range sortedKeys(c.Frontends) {
		f := c.Frontends[name]
		for _, b := range f.Binds {
			if f.IsProxy() {
				pr("  %s %s -> frontend %s (%s proxy)", b.Scheme, b.Addr, name, f.Mode)
				continue
			}
			pr("  %s %s -> frontend %s (%s, format %s, framing %s)", b.Scheme, b.Addr, name, f.Mode, f.Format, f.Framing)
		}
	}

	pr("")
	pr("frontends:")
	for _, name := range sortedKeys(c.Frontends) {
		f := c.Frontends[name]
		if f.IsProxy() {
			describeProxyFrontend(pr, name, f) // proxy.go
			continue
		}
		pr("  frontend %s: mode %s, format %s, parse %s, framing %s, max_message_size %s, oversize %s, on_error %s",
			name, f.Mode, f.Format, f.Parse, f.Framing, f.MaxMessageSize, f.Oversize, f.OnError)
		if f.HasTLSBind() {
			mtls := "no client certificates"
			if f.TLSClientCA != "" {
				mtls = "client certificates required, CA " + f.TLSClientCA
			}
			pr("    tls cert %s, key %s, min_version %s, handshake timeout %s, %s", f.TLSCert, f.TLSKey, f.TLSMinVersion, f.HeaderTimeout, mtls)
		}
		if !f.RateLimit.IsZero() {
			pr("    rate_limit %s per bind, burst %d", f.RateLimit, f.RateBurst)
		}
		if !f.RateLimitPerIP.IsZero() {
			pr("    rate_limit %s per source IP, burst %d", f.RateLimitPerIP, f.RateBurstPerIP)
		}
		for i, r := range f.Routes {
			to := strings.Join(r.Sinks, ", ")
			if r.Action == "drop" {
				to = "drop"
			}
			pr("    route[%d] %s -> %s", i, describeMatch(r), to)
		}
		def := strings.Join(f.Sinks, ", ")
		if def == "" {
			def = "(dropped)"
		}
		if len(f.Routes) > 0 {
			pr("    otherwise -> %s", def)
		} else {
			pr("    all -> %s", def)
		}
	}

	pr("")
	pr("sinks:")
	for _, name := range sortedKeys(c.Sinks) {
		s := c.Sinks[name]
		pr("  sink %s: %s, encoding %s", name, s.Type, s.Encoding)
		if s.Options != nil {
			s.Options.Describe(func(format string, args ...any) { pr("    "+format, args...) })
		}
		retries := "max_retries 0 (until shutdown)"
		if s.MaxRetries > 0 {
			retries = fmt.Sprintf("max_retries %d", s.MaxRetries)
		}
		linger := "no linger"
		if s.BatchTimeout.Duration > 0 {
			linger = "linger " + s.BatchTimeout.String()
		}
		pr("    queue %d messages / %s (streams paused at %d / %s), batch %d messages / %s / %s, retry backoff %s..%s, %s",
			s.QueueSize, s.QueueBytes, s.BackpressureSize, s.BackpressureBytes, s.BatchSize, s.BatchBytes, linger,
			s.RetryBackoff, s.RetryMaxBackoff, retries)
	}

	c.describeBackends(pr) // proxy.go

	if len(c.Warnings) > 0 {
		pr("")
		pr("warnings:")
		for _, w := range c.Warnings {
			pr("  %s", w)
		}
	}
}

// describeMatch renders a route's conditions, "any" when it has none.
func describeMatch(r Route) string {
	var parts []string
	if len(r.Facility) > 0 {
		parts = append(parts, "facility "+strings.Join(r.Facility, ","))
	}
	if len(r.Severity) > 0 {
		parts = append(parts, "severity "+strings.Join(r.Severity, ","))
	}
	if r.Hostname != "" {
		parts = append(parts, fmt.Sprintf("hostname %q", r.Hostname))
	}
	if r.AppName != "" {
		parts = append(parts, fmt.Sprintf("app_name %q", r.AppName))
	}
	if r.MsgContains != "" {
		parts = append(parts, fmt.Sprintf("msg_contains %q", r.MsgContains))
	}
	if r.MsgRegex != "" {
		parts = append(parts, fmt.Sprintf("msg_regex %q", r.MsgRegex))
	}
	for _, k := range sortedKeys(r.SD) {
		parts = append(parts, fmt.Sprintf("sd %s=%q", k, r.SD[k]))
	}
	if len(parts) == 0 {
		return "any"
	}
	return strings.Join(parts, " ")
}
