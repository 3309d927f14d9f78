package file

import (
	"wharf/conf"
	"wharf/sinks"
)

// newFromConf builds a file sink as wharf does: sinks.New applies the
// section's defaults and validates it before the factory runs.
func newFromConf(name string, cfg *conf.Sink) (sinks.Sink, error) {
	cfg.Type = "file"
	return sinks.New(name, cfg)
}
