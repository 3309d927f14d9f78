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
// Now wharf notices within a second, makes the directory again, writes
// the segments it holds back into it and says so (log lines,
// wharf_buffer_removals_total); what is sent after that is stored in the
// new directory. When the
// collector comes back, all 4,000 arrive (the buffer keeps a descriptor
// of each segment not yet delivered), none is counted in
// wharf_buffer_lost_records_total, /readyz is 200 again and the new
// directory holds a lock and a segment.
func TestBufferDirRemovedWhileRunning(t *testing.T) {
	r := removeBufferDir(t, "")
	in, bufDir, collector, admin := r.in, r.bufDir, r.collector, r.admin
	before, after := r.before, r.after

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

// bufDirRemoval is a wharf whose buffer directory removeBufferDir deleted
// with r.before messages on disk, r.after more sent after that; the
// collector (address r.collector) is down.
type bufDirRemoval struct {
	in                             *instance
	bufDir, collector, admin, work string
	cfg                            string
	before, after                  int
}

// removeBufferDir starts wharf with a disk buffer of 64 KiB segments and
// its collector down (extra is appended to the config), sends 3,000
// messages, removes the buffer directory (rm -rf), waits until wharf
// noticed (/readyz says so) and sends 1,000 more.
func removeBufferDir(t *testing.T, extra string) bufDirRemoval {
	r := bufDirRemoval{bufDir: filepath.Join(t.TempDir(), "buf"), before: 3000, after: 1000}
	r.collector = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	tcpPort, udpPort := testenv.FreePort(t), testenv.FreePort(t)
	r.cfg = strings.Replace(diskBufferConfig(tcpPort, udpPort, r.collector, r.bufDir),
		`max_bytes = "64MiB"`, `max_bytes = "64MiB"`+"\nsegment_bytes = \"64KiB\"", 1) + extra
	r.work, r.admin = t.TempDir(), fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	r.in = startIn(t, r.work, r.admin, r.cfg)
	addr := fmt.Sprintf("127.0.0.1:%d", tcpPort)

	sendTCP(t, addr, seqBatch(0, r.before))
	r.in.waitMetric(float64(r.before), 10*time.Second, "wharf_buffer_pending_records")
	if segs, _ := filepath.Glob(filepath.Join(r.bufDir, "*.seg")); len(segs) < 4 {
		t.Fatalf("want several segments on disk, got %d", len(segs))
	}
	testenv.RemoveDirAtOnce(t, r.bufDir) // a bare RemoveAll races with wharf making the directory again
	r.in.waitMetric(1, 5*time.Second, "wharf_buffer_removals_total")
	sendTCP(t, addr, seqBatch(r.before, r.before+r.after))
	if !testenv.Poll(10*time.Second, func() bool { return r.in.metric("wharf_frontend_received_total") == float64(r.before+r.after) }) {
		t.Fatalf("wharf read %v of %d", r.in.metric("wharf_frontend_received_total"), r.before+r.after)
	}
	if segs, _ := filepath.Glob(filepath.Join(r.bufDir, "*.seg")); len(segs) == 0 {
		t.Errorf("no segment in the buffer dir made again")
	}
	return r
}

// seqBatch returns RFC5424 messages "seq=from" .. "seq=to-1".
func seqBatch(from, to int) []string {
	var msgs []string
	for i := from; i < to; i++ {
		msgs = append(msgs, fmt.Sprintf("<13>1 2026-12-05T00:00:00Z h app - - - %s seq=%d", strings.Repeat("x", 100), i))
	}
	return msgs
}

// TestBufferDirRemovedThenStop: as above, but wharf is stopped (SIGTERM)
// while the collector is still down, then started again with it up.
// Before, the records written before the removal were only in the
// removed files, which the stop closed: the restart delivered 1,000 of
// 4,000, nothing counted the 3,000 and wharf exited 0 (audit). Now wharf
// writes the segments it holds back into the directory it made again, so
// a restart finds them: 4,000 of 4,000 arrive, none counted lost, and the
// stop exits 0 with nothing dropped.
func TestBufferDirRemovedThenStop(t *testing.T) {
	r := removeBufferDir(t, "\n[global]\nshutdown_timeout = \"2s\"\n")
	if !r.in.waitLog("written back from the removed files", 5*time.Second) {
		t.Errorf("no log line saying the removed files' records were written back")
	}
	if code := httpStatus(t, "http://"+r.admin+"/readyz"); code != 503 {
		t.Errorf("/readyz = %d with the collector down, want 503", code) // the sink, not the removal
	}
	log := r.in.stop() // fails the test unless wharf exits 0
	if v, ok := testenv.LogAttr(log, "stopped", "dropped_at_shutdown"); !ok || v != "0" {
		t.Errorf("stop line: dropped_at_shutdown = %q, want 0", v)
	}

	ln, err := net.Listen("tcp", r.collector)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	sink := &lineSink{}
	go sink.serve(ln)
	in := startIn(t, t.TempDir(), r.admin, r.cfg)
	var old, all int
	testenv.Poll(30*time.Second, func() bool {
		msgs := sink.snapshot()
		old, _, _ = ledger(msgs, "seq=", r.before)
		all, _, _ = ledger(msgs, "seq=", r.before+r.after)
		return all == r.before+r.after
	})
	lost := in.metric("wharf_buffer_lost_records_total")
	t.Logf("after the restart: %d of %d delivered (%d of the %d on disk before the removal), %v counted lost",
		all, r.before+r.after, old, r.before, lost)
	if all != r.before+r.after || lost != 0 {
		t.Errorf("after the restart %d of %d delivered, %v counted lost; want all delivered", all, r.before+r.after, lost)
	}
	in.stop()
}
