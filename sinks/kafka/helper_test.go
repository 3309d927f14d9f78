package kafka

import (
	"wharf/conf"
	"wharf/sinks"
)

// newFromConf builds a kafka sink as wharf does: sinks.New applies the
// section's defaults and validates it before the factory runs.
func newFromConf(name string, cfg *conf.Sink) (sinks.Sink, error) {
	cfg.Type = "kafka"
	return sinks.New(name, cfg)
}

// kc returns the sink's kafka options, made when missing.
func kc(c *conf.Sink) *Config {
	if c.Options == nil {
		c.Options = &Config{}
	}
	return c.Options.(*Config)
}
