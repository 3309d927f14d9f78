package main

import (
	"context"
	"log/slog"

	"wharf/conf"
	"wharf/metrics"
	"wharf/proxy"
)

// startProxies starts every proxy frontend (mode tcp or http) of cfg and
// the backends they use. Call it after the sinks are started; call stop
// together with the syslog listeners' Stop, with the same shutdown
// context: it stops accepting, lets open connections finish until ctx
// ends, then closes them. With no proxy frontend it starts nothing. set
// gives the status page the proxies' stats.
func startProxies(cfg *conf.Config, reg *metrics.Registry, log *slog.Logger, hooks proxy.Hooks) (set *proxy.Set, stop func(ctx context.Context), err error) {
	set, err = proxy.Start(cfg, reg, log, hooks)
	if err != nil {
		return nil, nil, err
	}
	return set, func(ctx context.Context) {
		if err := set.Shutdown(ctx); err != nil {
			log.Warn("proxy shutdown", "err", err)
		}
	}, nil
}
