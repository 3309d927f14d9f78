// Package gnetlog routes gnet's own log lines into wharf's slog logger.
package gnetlog

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
)

// Logger is a gnet logging.Logger over log. gnet's informational lines
// ("Launching gnet with 2 event-loops") become debug lines: wharf logs its
// own "listening" line per bind.
type Logger struct{ Log *slog.Logger }

func (g Logger) Debugf(format string, args ...any) { g.Log.Debug(fmt.Sprintf(format, args...)) }
func (g Logger) Infof(format string, args ...any)  { g.Log.Debug(fmt.Sprintf(format, args...)) }
func (g Logger) Errorf(format string, args ...any) { g.Log.Error(fmt.Sprintf(format, args...)) }

// Warnf logs a warning, except gnet's "received event ... of a stale
// connection": an epoll event for a descriptor closed earlier in the same
// batch (a connection handed to a goroutine, or closed), which gnet
// ignores and which says nothing to an operator. That one is a debug
// line.
func (g Logger) Warnf(format string, args ...any) {
	if strings.Contains(format, "of a stale connection") {
		g.Log.Debug(fmt.Sprintf(format, args...))
		return
	}
	g.Log.Warn(fmt.Sprintf(format, args...))
}

// Fatalf logs and exits, as gnet's contract for Fatalf requires.
func (g Logger) Fatalf(format string, args ...any) {
	g.Log.Error(fmt.Sprintf(format, args...))
	os.Exit(1)
}
