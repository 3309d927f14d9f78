package ingest

import (
	"fmt"
	"log/slog"
	"os"
)

// gnetLogger routes gnet's own log lines into wharf's slog logger. gnet's
// informational lines ("Launching gnet with 2 event-loops") become debug
// lines: wharf logs its own "listening" line per bind.
type gnetLogger struct{ log *slog.Logger }

func (g gnetLogger) Debugf(format string, args ...any) { g.log.Debug(fmt.Sprintf(format, args...)) }
func (g gnetLogger) Infof(format string, args ...any)  { g.log.Debug(fmt.Sprintf(format, args...)) }
func (g gnetLogger) Warnf(format string, args ...any)  { g.log.Warn(fmt.Sprintf(format, args...)) }
func (g gnetLogger) Errorf(format string, args ...any) { g.log.Error(fmt.Sprintf(format, args...)) }

// Fatalf logs and exits, as gnet's contract for Fatalf requires.
func (g gnetLogger) Fatalf(format string, args ...any) {
	g.log.Error(fmt.Sprintf(format, args...))
	os.Exit(1)
}
