package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"wharf/internal/testenv"
)

// TestBufferDirRemovedWhileRunning: the disk buffer's directory deleted
// (rm -rf) under a running wharf whose collector is down, with 3,000
// messages on disk in 64 KiB segments. Before, wharf went on appending
// to the removed file and, once the collector was back, delivered only
// what was in the segment its reader had open (380 of 3,000 here):
// "spool read failed; retrying" forever, and nothing after that segment
// arrived, also nothing sent after the removal.
//
// Now wharf notices within a second, makes the directory again and says
// so (/readyz 503 "removed while in use", wharf_buffer_removals_total);
// what is sent after that is stored in the new directory. When the
// collector comes back, all 4,000 arrive (the buffer keeps a descriptor
// of each segment not yet delivered), none is counted in
// wharf_buffer_lost_records_total, /readyz is 200 again and the new
// directory holds a lock and a segment.
func TestBufferDirRemovedWhileRunning(t *testing.T) {
	bufDir := filepath.Join(t.TempDir(), "buf")
	collector := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	tcpPort, udpPort := testenv.FreePort(t), testenv.FreePort(t)
	cfg := strings.Replace(diskBufferConfig(tcpPort, udpPort, collector, bufDir),
		`max_bytes = "64MiB"`, `max_bytes = "64MiB"`+"\nsegment_bytes = \"64KiB\"", 1)
	workDir, admin := t.TempDir(), fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	in := startIn(t, workDir, admin, cfg)
	addr := fmt.Sprintf("127.0.0.1:%d", tcpPort)

	batch := func(from, to int) []string {
		var msgs []string
		for i := from; i < to; i++ {
			msgs = append(msgs, fmt.Sprintf("<13>1 2026-12-05T00:00:00Z h app - - - %s seq=%d", strings.Repeat("x", 100), i))
		}
		return msgs
	}
	const before, after = 3000, 1000
	sendTCP(t, addr, batch(0, before))
	in.waitMetric(before, 10*time.Second, "wharf_buffer_pending_records")
	if segs, _ := filepath.Glob(filepath.Join(bufDir, "*.seg")); len(segs) < 4 {
		t.Fatalf("want several segments on disk, got %d", len(segs))
	}

	if err := os.RemoveAll(bufDir); err != nil {
		t.Fatal(err)
	}
	in.waitMetric(1, 5*time.Second, "wharf_buffer_removals_total")
	code, body := getBody(t, "http://"+admin+"/readyz")
	if code != 503 || !strings.Contains(body, "removed while in use") {
		t.Errorf("/readyz after the buffer dir was removed = %d %q, want 503 saying so", code, body)
	}
	sendTCP(t, addr, batch(before, before+after))
	if !testenv.Poll(10*time.Second, func() bool { return in.metric("wharf_frontend_received_total") == before+after }) {
		t.Fatalf("wharf read %v of %d", in.metric("wharf_frontend_received_total"), before+after)
	}
	if segs, _ := filepath.Glob(filepath.Join(bufDir, "*.seg")); len(segs) == 0 {
		t.Errorf("no segment in the buffer dir made again")
	}

	ln, err := net.Listen("tcp", collector)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	sink := &lineSink{}
	go sink.serve(ln)
	var old, fresh int
	var lost float64
	testenv.Poll(30*time.Second, func() bool {
		msgs := sink.snapshot()
		old, _, _ = ledger(msgs, "seq=", before)
		all, _, _ := ledger(msgs, "seq=", before+after)
		fresh = all - old
		lost = in.metric("wharf_buffer_lost_records_total")
		return fresh == after && old == before
	})
	t.Logf("of %d messages on disk when the directory was removed: %d delivered, %v counted lost; %d of %d sent after it delivered",
		before, old, lost, fresh, after)
	if fresh != after {
		t.Errorf("%d of %d messages sent after the removal delivered", fresh, after)
	}
	if old != before || lost != 0 {
		t.Errorf("of the %d on disk before: %d delivered, %v counted lost; want all delivered", before, old, lost)
	}
	if !testenv.Poll(5*time.Second, func() bool { return httpStatus(t, "http://"+admin+"/readyz") == 200 }) {
		_, body := getBody(t, "http://"+admin+"/readyz")
		t.Errorf("/readyz not 200 after everything was delivered: %s", body)
	}
	if _, err := os.Stat(filepath.Join(bufDir, "LOCK")); err != nil {
		t.Errorf("the buffer dir made again has no lock file: %v", err)
	}
	in.stop()
}
