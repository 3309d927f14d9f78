package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"wharf/internal/testenv"
)

// TestDeadLetterKeepsNoRouteNotRouteDrop holds the README's dead-letter
// split: a message no route takes is kept with reason no_route; one a
// route's action = "drop" discards (the operator asked for it) is not.
func TestDeadLetterKeepsNoRouteNotRouteDrop(t *testing.T) {
	port := testenv.FreePort(t)
	in := start(t, fmt.Sprintf(`
[admin]
listen = "{{ADMIN}}"
[frontend.logs]
bind = ["tcp://127.0.0.1:%d"]
dead_letter = "{{DIR}}/dead.jsonl"
[[frontend.logs.route]]
msg_contains = "DROPME"
action = "drop"
[[frontend.logs.route]]
msg_contains = "ROUTED"
sinks = ["out"]
[sink.out]
type = "file"
path = "{{DIR}}/out.log"
encoding = "raw"
batch_timeout = "5ms"
`, port))
	msg := func(text string) string { return "<13>1 2026-12-06T10:00:00Z host app - - - " + text }
	sendTCP(t, fmt.Sprintf("127.0.0.1:%d", port), []string{
		msg("ROUTED one"), msg("NOROUTE matches no route"), msg("DROPME by a drop route"), msg("ROUTED two"),
	})
	if out := readLines(t, filepath.Join(in.dir, "out.log"), 2, 5*time.Second); len(out) != 2 {
		t.Fatalf("out.log has %d lines, want the 2 routed:\n%s", len(out), strings.Join(out, "\n"))
	}
	testenv.Eventually(t, "both drops counted", func() bool {
		return in.metric("wharf_frontend_dropped_total", `reason="no_route"`) == 1 &&
			in.metric("wharf_frontend_dropped_total", `reason="route_drop"`) == 1
	})
	in.stop() // the dead-letter writer has flushed once wharf exits

	dead := readLines(t, filepath.Join(in.dir, "dead.jsonl"), 0, 0)
	if len(dead) != 1 {
		t.Fatalf("dead.jsonl has %d records, want 1 (the unrouted message):\n%s", len(dead), strings.Join(dead, "\n"))
	}
	rec := jsonRecord(t, dead[0])
	if rec["reason"] != "no_route" || !strings.Contains(fmt.Sprint(rec["raw"]), "NOROUTE matches no route") {
		t.Errorf("dead letter = %s, want the NOROUTE message with reason no_route", dead[0])
	}
}
