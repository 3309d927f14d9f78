package syslog

// Tests against a real syslog-ng collector started by
// test/collector/syslog-ng.sh (make test does it). Without it they skip;
// under WHARF_INTEGRATION=1 they fail.

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"wharf/conf"
	"wharf/ingest/parse"
	"wharf/internal/testenv"
	"wharf/message"
	"wharf/metrics"
	"wharf/sinks"
)

// collectorLines waits until the collector's output file holds want lines
// containing id, then checks no more arrive, and returns them in file order.
func collectorLines(t *testing.T, file, id string, want int) []string {
	t.Helper()
	read := func() []string {
		b, err := os.ReadFile(file)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		var out []string
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, id) {
				out = append(out, line)
			}
		}
		return out
	}
	testenv.Poll(30*time.Second, func() bool { return len(read()) >= want })
	time.Sleep(300 * time.Millisecond) // anything extra (duplicates) shows up now
	return read()
}

func runID(t *testing.T) string {
	return fmt.Sprintf("%s-%d", t.Name(), time.Now().UnixNano())
}

// testMessages builds n RFC5424 and RFC3164 lines carrying id and a
// sequence number, with spaces, quotes, SD and UTF-8 inside.
func testMessages(id string, from, n int) []string {
	out := make([]string, n)
	for i := range out {
		seq := from + i
		if seq%2 == 0 {
			out[i] = fmt.Sprintf(`<165>1 2026-11-25T19:10:00.123Z host-%d app 42 ID%d [ex@32473 k="v \"q\""] %s seq=%06d Grüße – ünïcödé`, seq%7, seq%10, id, seq)
		} else {
			out[i] = fmt.Sprintf(`<13>Nov 25 19:10:00 host-%d tag[%d]: %s seq=%06d plain text   with  spaces`, seq%7, seq, id, seq)
		}
	}
	return out
}

// forward sends raws through a Runner into the sink and closes the runner.
func forward(t *testing.T, s sinks.Sink, raws []string) *sinks.Runner {
	t.Helper()
	r := sinks.NewRunner("fwd", s, sinks.RunnerConfig{BatchSize: 256, BatchTimeout: 10 * time.Millisecond,
		RetryBackoff: 10 * time.Millisecond, RetryMaxBackoff: 100 * time.Millisecond}.Resolved(), metrics.NewRegistry(), nil)
	r.Start()
	for _, raw := range raws {
		if !r.Enqueue(message.New([]byte(raw)), true) {
			t.Fatal("enqueue refused")
		}
	}
	return r
}

func closeRunner(t *testing.T, r *sinks.Runner) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if st := r.Stats(); st.Dropped[sinks.DropShutdown] != 0 || st.Dropped[sinks.DropQueueFull] != 0 {
		t.Fatalf("runner dropped messages: %+v", st)
	}
}

func expectExact(t *testing.T, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("collector has %d messages, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("message %d differs:\n got: %q\nwant: %q", i, got[i], want[i])
		}
	}
}

func TestCollectorTCPOctetCounting10k(t *testing.T) {
	addr := testenv.Env(t, "WHARF_COLLECTOR_TCP")
	out := testenv.Env(t, "WHARF_COLLECTOR_OUT")
	id := runID(t)
	s, _ := newSink(t, conf.Sink{Options: &Config{Servers: []string{"tcp://" + addr}}})
	want := testMessages(id, 0, 10000)
	r := forward(t, s, want)
	closeRunner(t, r)
	if st := r.Stats(); st.Sent != 10000 || st.Batches < 40 {
		t.Errorf("stats %+v: want 10000 sent in batches of at most 256", st)
	}
	expectExact(t, collectorLines(t, filepath.Join(out, "tcp.log"), id, len(want)), want)
}

func TestCollectorFailoverFromClosedPort(t *testing.T) {
	addr := testenv.Env(t, "WHARF_COLLECTOR_TCP")
	out := testenv.Env(t, "WHARF_COLLECTOR_OUT")
	id := runID(t)
	dead := testenv.ClosedAddr(t)
	s, logs := newSink(t, conf.Sink{Options: &Config{Servers: []string{"tcp://" + dead, "tcp://" + addr}}})
	want := testMessages(id, 0, 2000)
	r := forward(t, s, want)
	closeRunner(t, r)
	expectExact(t, collectorLines(t, filepath.Join(out, "tcp.log"), id, len(want)), want)
	if s.Failovers() != 1 {
		t.Errorf("failovers %d, want 1", s.Failovers())
	}
	wantLog := fmt.Sprintf(`server tcp://%s: dial: connection refused; trying next server`, dead)
	if !strings.Contains(logs.String(), wantLog) || !strings.Contains(logs.String(), "switching from server tcp://"+dead+" to tcp://"+addr) {
		t.Errorf("log lacks the failover:\n%s", logs.String())
	}
	if st := r.Stats(); st.WriteErrors != 0 {
		t.Errorf("failover inside one Write should not fail the batch: %+v", st)
	}
}

// Regression: the first batch after the collector closed the connection
// was written into the dead socket without error and lost.
func TestCollectorFirstServerDiesMidStream(t *testing.T) {
	addr := testenv.Env(t, "WHARF_COLLECTOR_TCP")
	out := testenv.Env(t, "WHARF_COLLECTOR_OUT")
	id := runID(t)
	first := newFrameServer(t, false)
	s, _ := newSink(t, conf.Sink{Options: &Config{Servers: []string{first.url(), "tcp://" + addr}}})
	before := testMessages(id, 0, 3000)
	after := testMessages(id, 3000, 3000)
	r := forward(t, s, before)
	testenv.Poll(testenv.EventuallyTimeout, func() bool { return len(first.got()) >= len(before) })
	expectExact(t, first.got(), before)
	first.kill() // connection and listener gone, mid-stream
	for _, raw := range after {
		r.Enqueue(message.New([]byte(raw)), true)
	}
	closeRunner(t, r)
	expectExact(t, collectorLines(t, filepath.Join(out, "tcp.log"), id, len(after)), after)
	if s.Failovers() != 1 {
		t.Errorf("failovers %d, want 1", s.Failovers())
	}
}

func TestCollectorLFWithRFC5424Encoding(t *testing.T) {
	addr := testenv.Env(t, "WHARF_COLLECTOR_TCP_LF")
	out := testenv.Env(t, "WHARF_COLLECTOR_OUT")
	id := runID(t)
	s, _ := newSink(t, conf.Sink{Encoding: "rfc5424", Options: &Config{Servers: []string{"tcp://" + addr}, OutFraming: "lf"}})
	raws := testMessages(id, 0, 1000)
	r := forward(t, s, raws)
	closeRunner(t, r)
	// Unparsed messages are re-encoded with PRI 13 and the raw line as MSG;
	// the receive time differs per message, so compare from HOSTNAME on.
	got := collectorLines(t, filepath.Join(out, "lf.log"), id, len(raws))
	if len(got) != len(raws) {
		t.Fatalf("collector has %d messages, want %d", len(got), len(raws))
	}
	for i, line := range got {
		f := strings.SplitN(line, " ", 3)
		if len(f) != 3 || f[0] != "<13>1" || !strings.HasSuffix(f[2], " - - - - "+raws[i]) {
			t.Fatalf("line %d: %q, want <13>1 TIMESTAMP HOST - - - - %q", i, line, raws[i])
		}
	}
}

func TestCollectorUDP(t *testing.T) {
	addr := testenv.Env(t, "WHARF_COLLECTOR_UDP")
	out := testenv.Env(t, "WHARF_COLLECTOR_OUT")
	id := runID(t)
	s, _ := newSink(t, conf.Sink{Options: &Config{Servers: []string{"udp://" + addr}}})
	want := testMessages(id, 0, 300)
	// Small batches with pauses: UDP has no flow control.
	r := sinks.NewRunner("fwd", s, sinks.RunnerConfig{BatchSize: 50}.Resolved(), nil, nil)
	r.Start()
	for i, raw := range want {
		r.Enqueue(message.New([]byte(raw)), true)
		if i%50 == 49 {
			time.Sleep(5 * time.Millisecond)
		}
	}
	closeRunner(t, r)
	got := collectorLines(t, filepath.Join(out, "udp.log"), id, len(want))
	if !bytes.Equal([]byte(strings.Join(got, "\n")), []byte(strings.Join(want, "\n"))) {
		t.Fatalf("collector got %d of %d UDP messages (or altered)", len(got), len(want))
	}
}

// TestCollectorRFC3164Encoding: RFC5424 and RFC3164 input, encoded as
// rfc3164 for an old collector, is parsed by syslog-ng's BSD parser into
// the same host, program, pid, priority and message.
func TestCollectorRFC3164Encoding(t *testing.T) {
	addr := testenv.Env(t, "WHARF_COLLECTOR_TCP_BSD")
	out := testenv.Env(t, "WHARF_COLLECTOR_OUT")
	id := runID(t)
	s, _ := newSink(t, conf.Sink{Encoding: "rfc3164", Options: &Config{Servers: []string{"tcp://" + addr}, OutFraming: "lf"}})
	raws := []string{
		`<165>1 2026-11-25T19:10:00.123Z web-1.example.com nginx 4242 ID47 [ex@32473 k="v"] ` + id + ` GET /cart 200`,
		`<34>Nov 25 19:10:00 fw-2 su[230]: ` + id + ` 'su root' failed`,
		`<14>1 2026-11-25T19:10:00Z db-1 postgres - - - ` + id + ` checkpoint complete`,
		id + ` %ASA-4-106023: no PRI at all`,
	}
	want := []string{
		"web-1.example.com|nginx|4242|local4.notice|" + id + " GET /cart 200",
		"fw-2|su|230|auth.crit|" + id + " 'su root' failed",
		"db-1|postgres||user.info|" + id + " checkpoint complete",
	}
	r := sinks.NewRunner("fwd", s, sinks.RunnerConfig{BatchSize: 256}.Resolved(), metrics.NewRegistry(), nil)
	r.Start()
	for _, raw := range raws {
		m := message.New([]byte(raw))
		m.Peer = netip.MustParseAddrPort("192.0.2.7:40000")
		m.Received = time.Now().UnixNano()
		_ = parse.Parse(m, parse.Auto) // the last one is malformed: forwarded raw
		r.Enqueue(m, true)
	}
	closeRunner(t, r)
	got := collectorLines(t, filepath.Join(out, "bsd.log"), id, len(raws))
	if len(got) != len(raws) {
		t.Fatalf("collector has %d lines, want %d:\n%s", len(got), len(raws), strings.Join(got, "\n"))
	}
	for i, w := range want {
		if got[i] != w {
			t.Errorf("line %d as syslog-ng parsed it:\n got: %q\nwant: %q", i, got[i], w)
		}
	}
	// No PRI: user.notice, the peer as host, the line as sent after it.
	if f := strings.SplitN(got[3], "|", 5); len(f) != 5 || f[0] != "192.0.2.7" || f[3] != "user.notice" || !strings.Contains(got[3], "%ASA-4-106023: no PRI at all") {
		t.Errorf("line 3 as syslog-ng parsed it: %q, want host 192.0.2.7, user.notice, the line", got[3])
	}
}
