package gnetlog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestLevels: gnet's lines land at the level an operator needs.
func TestLevels(t *testing.T) {
	for _, c := range []struct {
		log  func(Logger)
		want string
	}{
		{func(l Logger) { l.Infof("Launching gnet with %d event-loops", 2) }, "level=DEBUG"},
		{func(l Logger) {
			l.Warnf("received event[fd=%d|ev=%d|flags=%d] of a stale connection from event-loop(%d)", 9, 1, 0, 0)
		}, "level=DEBUG"},
		{func(l Logger) { l.Warnf("failed to write: %v", "EPIPE") }, "level=WARN"},
		{func(l Logger) { l.Errorf("event-loop(%d) is exiting", 1) }, "level=ERROR"},
	} {
		var b bytes.Buffer
		c.log(Logger{Log: slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug}))})
		if !strings.Contains(b.String(), c.want) {
			t.Errorf("%q, want %s", b.String(), c.want)
		}
	}
}
