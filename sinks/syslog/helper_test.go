package syslog

import (
	"wharf/conf"
	"wharf/sinks"
)

// newFromConf builds a syslog sink as wharf does: sinks.New applies the
// section's defaults and validates it before the factory runs.
func newFromConf(name string, cfg *conf.Sink) (sinks.Sink, error) {
	cfg.Type = "syslog"
	return sinks.New(name, cfg)
}

// sc returns the sink's syslog options, made when missing.
func sc(c *conf.Sink) *Config {
	if c.Options == nil {
		c.Options = &Config{}
	}
	return c.Options.(*Config)
}
