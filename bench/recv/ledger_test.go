package recv

import (
	"strings"
	"testing"
)

const sampleMetrics = `# HELP wharf_frontend_received_total Messages received, per frontend bind.
# TYPE wharf_frontend_received_total counter
wharf_frontend_received_total{frontend="edge",bind="tcp://127.0.0.1:5514"} 1000
wharf_frontend_received_total{frontend="edge",bind="udp://127.0.0.1:5514"} 500
wharf_frontend_dropped_total{frontend="edge",bind="tcp://127.0.0.1:5514",reason="no_route"} 3
wharf_frontend_dropped_total{frontend="edge",bind="tcp://127.0.0.1:5514",reason="incomplete_frame_at_close"} 1
wharf_sink_sent_total{sink="kafka"} 1407
wharf_sink_sent_total{sink="copy"} 1497
wharf_sink_dropped_total{sink="kafka",reason="queue_full"} 90
wharf_sink_dropped_total{sink="kafka",reason="shutdown"} 0
wharf_sink_dropped_total{sink="we\"ird",reason="closed"} 2
wharf_sink_queue_messages{sink="kafka"} 0
wharf_sink_queue_bytes{sink="kafka"} 0
`

func TestParseMetricsAndLedger(t *testing.T) {
	n, err := ParseMetrics(strings.NewReader(sampleMetrics), "a", "kafka")
	if err != nil {
		t.Fatal(err)
	}
	if n.Read != 1500 || n.Delivered != 1407 || n.Queued != 0 || n.LostTotal() != 93 ||
		n.Lost["sink/kafka/queue_full"] != 90 || n.Lost["frontend/edge/no_route"] != 3 {
		t.Fatalf("parsed %+v", n)
	}
	all, _ := ParseMetrics(strings.NewReader(sampleMetrics), "a", "")
	if all.Delivered != 2904 || all.Lost[`sink/we"ird/closed`] != 2 {
		t.Fatalf("all sinks: %+v", all)
	}

	f := func(received uint64, queued int64, want int64, ok bool, flag string) {
		t.Helper()
		n := n
		n.Queued = queued
		l := NewLedger([]NodeLedger{n}, Report{Unique: received, Dups: 4}, 1600)
		if l.Uncounted != want || l.OK() != ok || !strings.Contains(l.String(), flag) {
			t.Errorf("received %d queued %d: uncounted %d ok %v, want %d %v:\n%s", received, queued, l.Uncounted, l.OK(), want, ok, l)
		}
	}
	f(1407, 0, 0, true, "ledger: OK")
	f(1400, 0, 7, false, "MISMATCH: 7 messages wharf read are neither")
	f(1410, 0, -3, false, "receiver holds 3 more")
	f(1400, 7, 0, false, "NOT SETTLED")
}
