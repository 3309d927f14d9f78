package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"wharf/internal/testenv"
	"wharf/internal/testpki"
)

// RELP against the real thing: rsyslog 8's omrelp and imrelp (librelp),
// unpacked by test/rsyslog/rsyslog.sh fetch, started per test with its
// own config and loopback ports.
//
// omrelp runs with windowSize 1024 and its queue dequeues 1024 at a time:
// with librelp's default window of 128 omrelp sends about 700 messages a
// second on this machine whatever the receiver (rsyslog's own imrelp the
// same as wharf), and 20,000 messages would take half a minute.
//
// These tests found a race in wharf's RELP input: a window slot was
// visible to the answer writer before it was filled, so a message could
// be answered before it was queued and its slot answered twice later;
// librelp then broke the session (error 10016, an answer it could not
// match) and resent its window: duplicates in the TLS run, one
// acknowledgement short in the plain one.

const relpMessages = 20000

// rsyslog is one rsyslogd process run in the foreground.
type rsyslog struct {
	dir    string // its work dir: DIR in its config
	cmd    *exec.Cmd
	out    *testenv.SyncBuffer
	exited chan error
}

// startRsyslog writes config (DIR replaced by a fresh work dir) and runs
// rsyslogd on it until the test ends. ready is a TCP address rsyslog
// listens on once it is up ("" to not wait).
func startRsyslog(t *testing.T, config, ready string) *rsyslog {
	t.Helper()
	bin := testenv.Env(t, "WHARF_RSYSLOGD")
	mods := testenv.Env(t, "WHARF_RSYSLOG_MODULES")
	dir := t.TempDir()
	config = strings.ReplaceAll(config, "DIR", dir)
	path := filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &rsyslog{dir: dir, out: &testenv.SyncBuffer{}, exited: make(chan error, 1)}
	r.cmd = exec.Command(bin, "-n", "-f", path, "-i", filepath.Join(dir, "rsyslog.pid"), "-M", mods)
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.exited <- r.cmd.Wait() }()
	t.Cleanup(func() {
		r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.exited:
		case <-time.After(10 * time.Second):
			r.cmd.Process.Kill()
			<-r.exited
		}
		if t.Failed() {
			t.Logf("rsyslogd output:\n%s", r.out.String())
		}
	})
	if ready != "" {
		deadline := time.Now().Add(15 * time.Second)
		for {
			c, err := net.DialTimeout("tcp", ready, time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case err := <-r.exited:
				r.exited <- err // for the cleanup, which waits for it (it hung here)
				t.Fatalf("rsyslogd exited: %v\n%s", err, r.out.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("rsyslogd not listening on %s after 15s:\n%s", ready, r.out.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return r
}

// sendLines writes n messages "... run seq=N" as LF-framed syslog to addr,

// startRsyslogRELP runs rsyslog taking syslog over TCP on inPort and
// forwarding it with omrelp to wharf's relp:// bind on relpPort, retrying
// for ever (a window of 1024, a 100,000-message queue); maxMsg is its
// maxMessageSize ("64k"), omExtra more omrelp parameters (TLS).
func startRsyslogRELP(t *testing.T, inPort, relpPort int, maxMsg, omExtra string) *rsyslog {
	t.Helper()
	return startRsyslog(t, fmt.Sprintf(`
global(workDirectory="DIR" maxMessageSize="%s")
module(load="imtcp")
module(load="omrelp")
input(type="imtcp" port="%d" ruleset="fwd")
ruleset(name="fwd" queue.type="LinkedList" queue.size="100000" queue.dequeueBatchSize="1024") {
  action(type="omrelp" target="127.0.0.1" port="%d" template="RSYSLOG_SyslogProtocol23Format" %s
         windowSize="1024" action.resumeRetryCount="-1" action.resumeInterval="1")
}
`, maxMsg, inPort, relpPort, omExtra), fmt.Sprintf("127.0.0.1:%d", inPort))
}

// pacing to about rate messages per second (0: as fast as possible).
func sendLines(t *testing.T, addr, run string, n, rate int) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w := bufio.NewWriter(c)
	start := time.Now()
	for i := range n {
		fmt.Fprintf(w, "<13>Dec  4 10:00:00 host app: %s seq=%d\n", run, i)
		if rate > 0 && i%100 == 99 {
			w.Flush()
			if ahead := time.Duration(i+1)*time.Second/time.Duration(rate) - time.Since(start); ahead > 0 {
				time.Sleep(ahead)
			}
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
}

var seqRE = regexp.MustCompile(`seq=(\d+)`)

// seqs counts the seq= numbers of run in the file at path.
func seqs(path, run string) map[int]int {
	got := map[int]int{}
	data, _ := os.ReadFile(path)
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.Contains(line, run) {
			continue
		}
		if m := seqRE.FindStringSubmatch(line); m != nil {
			n, _ := strconv.Atoi(m[1])
			got[n]++
		}
	}
	return got
}

// waitAll waits until path holds every seq 0..n-1 of run and returns the
// counts; it fails the test naming the first missing seq.
func waitAll(t *testing.T, path, run string, n int, timeout time.Duration) map[int]int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := seqs(path, run)
		if len(got) == n {
			return got
		}
		if time.Now().After(deadline) {
			for i := range n {
				if got[i] == 0 {
					t.Fatalf("%d of %d messages arrived; seq %d is missing", len(got), n, i)
				}
			}
			t.Fatalf("%d distinct seqs, want %d", len(got), n)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func duplicates(got map[int]int) int {
	d := 0
	for _, c := range got {
		d += c - 1
	}
	return d
}

// relpTLS are the certificates of a TLS test: wharf's server and client
// certificates, rsyslog's.
type relpTLS struct {
	ca                           *testpki.CA
	wharfCert, wharfKey          string // server cert for 127.0.0.1 / localhost
	clientCert, clientKey        string // wharf's client cert (CN wharf-client)
	rsyslogCert, rsyslogKey      string // rsyslog's (server and client use), CN localhost
	rsyslogClient, rsyslogCliKey string
}

func newRELPTLS(t *testing.T) *relpTLS {
	ca := testpki.NewCA(t, "relp test CA")
	p := &relpTLS{ca: ca}
	p.wharfCert, p.wharfKey = ca.Issue(t, "localhost", true)
	p.clientCert, p.clientKey = ca.Issue(t, "wharf-client", false)
	p.rsyslogCert, p.rsyslogKey = ca.Issue(t, "localhost", true)
	p.rsyslogClient, p.rsyslogCliKey = ca.Issue(t, "rsyslog-client", false)
	return p
}

// rsyslog omrelp -> wharf relp:// -> file: every message arrives.
func TestRELPFromRsyslog(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		t.Run(map[bool]string{false: "relp", true: "relp+tls"}[useTLS], func(t *testing.T) {
			relpPort, inPort := testenv.FreePort(t), testenv.FreePort(t)
			scheme, tlsKeys, omTLS := "relp", "", ""
			if useTLS {
				p := newRELPTLS(t)
				scheme = "relp+tls"
				tlsKeys = fmt.Sprintf("tls_cert = %q\ntls_key = %q\ntls_client_ca = %q\n", p.wharfCert, p.wharfKey, p.ca.File)
				omTLS = fmt.Sprintf(`tls="on" tls.caCert=%q tls.myCert=%q tls.myPrivKey=%q tls.authMode="name" tls.permittedPeer=["localhost"]`,
					p.ca.File, p.rsyslogClient, p.rsyslogCliKey)
			}
			in := start(t, fmt.Sprintf(`
[admin]
listen = "{{ADMIN}}"
[frontend.relpin]
bind = ["%s://127.0.0.1:%d"]
%ssinks = ["out"]
[sink.out]
type = "file"
path = "{{DIR}}/out.log"
`, scheme, relpPort, tlsKeys))
			rs := startRsyslogRELP(t, inPort, relpPort, "64k", omTLS)
			run := fmt.Sprintf("from-rsyslog-%d", time.Now().UnixNano())
			sendLines(t, fmt.Sprintf("127.0.0.1:%d", inPort), run, relpMessages, 0)
			got := waitAll(t, filepath.Join(in.dir, "out.log"), run, relpMessages, 60*time.Second)
			t.Logf("%d messages from rsyslog over %s, %d duplicates", len(got), scheme, duplicates(got))
			if duplicates(got) > 0 {
				t.Logf("wharf: %s\nrsyslog: %s\nrejected %v closed %v sessions %v", in.stderr.String(), rs.out.String(), in.metric("wharf_frontend_rejected_total"), in.metric("wharf_frontend_closed_total"), in.metric("wharf_relp_sessions_total"))
			}
			if acks := in.waitMetric(relpMessages, 10*time.Second, "wharf_relp_acks_sent_total"); acks < relpMessages {
				t.Fatalf("wharf_relp_acks_sent_total = %v, want at least %d", acks, relpMessages)
			}
			if errs := in.metric("wharf_frontend_closed_total", `reason="relp_`); errs != 0 {
				t.Fatalf("%v RELP sessions closed for errors", errs)
			}
			in.stop()
		})
	}
}

// wharf -> rsyslog imrelp -> file: every message arrives.
func TestRELPToRsyslog(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		t.Run(map[bool]string{false: "relp", true: "relp+tls"}[useTLS], func(t *testing.T) {
			relpPort, tcpPort := testenv.FreePort(t), testenv.FreePort(t)
			scheme, sinkTLS, imTLS := "relp", "", ""
			if useTLS {
				p := newRELPTLS(t)
				scheme = "relp+tls"
				sinkTLS = fmt.Sprintf("tls_ca = %q\ntls_cert = %q\ntls_key = %q\n", p.ca.File, p.clientCert, p.clientKey)
				imTLS = fmt.Sprintf(`tls="on" tls.caCert=%q tls.myCert=%q tls.myPrivKey=%q tls.authMode="name" tls.permittedPeer=["wharf-client"]`,
					p.ca.File, p.rsyslogCert, p.rsyslogKey)
			}
			dir := t.TempDir()
			out := filepath.Join(dir, "out.log")
			startRsyslog(t, fmt.Sprintf(`
global(workDirectory="DIR" maxMessageSize="64k")
module(load="imrelp")
input(type="imrelp" port="%d" ruleset="out" %s)
template(name="msgonly" type="string" string="%%msg%%\n")
ruleset(name="out") { action(type="omfile" file=%q template="msgonly") }
`, relpPort, imTLS, out), fmt.Sprintf("127.0.0.1:%d", relpPort))
			in := start(t, tcpEdge(tcpPort, "fwd")+fmt.Sprintf(`
[sink.fwd]
type = "syslog"
servers = ["%s://localhost:%d"]
%s`, scheme, relpPort, sinkTLS))
			run := fmt.Sprintf("to-rsyslog-%d", time.Now().UnixNano())
			sendLines(t, fmt.Sprintf("127.0.0.1:%d", tcpPort), run, relpMessages, 0)
			got := waitAll(t, out, run, relpMessages, 60*time.Second)
			t.Logf("%d messages to rsyslog over %s, %d duplicates", len(got), scheme, duplicates(got))
			// rsyslog writes the file before wharf has read the last answers,
			// and when a session broke (seen once on a loaded machine: a TLS
			// record error in imrelp) the messages it carried are already in
			// the file while wharf resends them after its retry backoff (up to
			// retry_max_backoff): wait for that too.
			if acks := in.waitMetric(relpMessages, 40*time.Second, "wharf_relp_acks_received_total"); acks != relpMessages {
				t.Fatalf("wharf_relp_acks_received_total = %v, want %d", acks, relpMessages)
			}
			in.stop()
		})
	}
}

// wharf killed -9 while rsyslog sends over RELP, then started again on
// the same disk buffer: with relp_ack = "durable" every message rsyslog
// was told was acknowledged is in the buffer, and what was not is resent
// by rsyslog, so all arrive; duplicates are possible and counted here.
func TestRELPKill9Durable(t *testing.T) {
	relpPort, inPort := testenv.FreePort(t), testenv.FreePort(t)
	dir := t.TempDir()
	admin := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cfg := fmt.Sprintf(`
[admin]
listen = "{{ADMIN}}"
[frontend.relpin]
bind = ["relp://127.0.0.1:%d"]
relp_ack = "durable"
sinks = ["out"]
[sink.out]
type = "file"
path = "{{DIR}}/out.log"
[sink.out.buffer]
dir = "{{DIR}}/buf"
fsync = "never"
`, relpPort)
	in := startIn(t, dir, admin, cfg)
	startRsyslogRELP(t, inPort, relpPort, "64k", "")
	run := fmt.Sprintf("kill9-relp-%d", time.Now().UnixNano())
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		sendLines(t, fmt.Sprintf("127.0.0.1:%d", inPort), run, relpMessages, 5000) // ~4s
	}()
	out := filepath.Join(dir, "out.log")
	deadline := time.Now().Add(30 * time.Second)
	for len(seqs(out, run)) < 3000 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	before := len(seqs(out, run))
	acked := in.metric("wharf_relp_acks_sent_total")
	in.cmd.Process.Kill()
	<-in.exited
	t.Logf("killed wharf with %d messages in the file, %v acknowledged to rsyslog", before, acked)
	time.Sleep(1500 * time.Millisecond) // rsyslog notices and retries
	in2 := startIn(t, dir, admin, cfg)
	<-sent
	got := waitAll(t, out, run, relpMessages, 90*time.Second)
	t.Logf("after restart: all %d messages arrived, %d duplicates", len(got), duplicates(got))
	in2.stop()
}

// rsyslog omrelp -> wharf (relp_ack = "delivered", memory queue) -> Kafka,
// wharf killed -9 mid-stream and started again: nothing was acknowledged
// to rsyslog before Kafka had it, so rsyslog resends the rest and every
// message is in the topic, without a disk buffer. At-least-once from the
// sending host to Kafka; duplicates counted.
func TestRELPKill9DeliveredToKafka(t *testing.T) {
	brokers := testenv.Env(t, "WHARF_KAFKA_BROKERS")
	kcat := testenv.Tool(t, "kcat")
	topic := fmt.Sprintf("wharf-relp-%d", time.Now().UnixNano())
	relpPort, inPort := testenv.FreePort(t), testenv.FreePort(t)
	dir := t.TempDir()
	admin := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cfg := fmt.Sprintf(`
[admin]
listen = "{{ADMIN}}"
[frontend.relpin]
bind = ["relp://127.0.0.1:%d"]
relp_ack = "delivered"
sinks = ["kafka"]
[sink.kafka]
type = "kafka"
brokers = ["%s"]
topic = "%s"
required_acks = "all"
batch_size = 500
batch_timeout = "5ms"
`, relpPort, brokers, topic)
	in := startIn(t, dir, admin, cfg)
	startRsyslogRELP(t, inPort, relpPort, "64k", "")
	run := fmt.Sprintf("kill9-kafka-%d", time.Now().UnixNano())
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		sendLines(t, fmt.Sprintf("127.0.0.1:%d", inPort), run, relpMessages, 5000)
	}()
	// topicSeqs reads the whole topic with kcat.
	topicSeqs := func() map[int]int {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, kcat, "-C", "-b", brokers, "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%s\n").Output()
		if err != nil {
			return map[int]int{}
		}
		path := filepath.Join(dir, "topic.txt")
		os.WriteFile(path, out, 0o644)
		return seqs(path, run)
	}
	deadline := time.Now().Add(30 * time.Second)
	for in.metric("wharf_relp_acks_sent_total") < 3000 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	acked := in.metric("wharf_relp_acks_sent_total")
	in.cmd.Process.Kill()
	<-in.exited
	t.Logf("killed wharf after %v messages were acknowledged to rsyslog", acked)
	if got := topicSeqs(); float64(len(got)) < acked {
		t.Fatalf("%v acknowledged but only %d in Kafka: acknowledged before Kafka had them", acked, len(got))
	}
	time.Sleep(1500 * time.Millisecond)
	in2 := startIn(t, dir, admin, cfg)
	<-sent
	var got map[int]int
	for deadline := time.Now().Add(90 * time.Second); ; {
		got = topicSeqs()
		if len(got) == relpMessages {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages in Kafka after the restart", len(got), relpMessages)
		}
		time.Sleep(time.Second)
	}
	t.Logf("after restart: all %d messages in Kafka, %d duplicates", len(got), duplicates(got))
	in2.stop()
}

// TestRELPOversizeFromRsyslog: rsyslog (maxMessageSize 128k) sends one
// 80 KB message among 1,101 through omrelp to a relp:// bind with the
// default 64 KiB max_message_size. Before, wharf closed the session
// (relp_datalen) and rsyslog resent that frame on every reconnect: none of
// the 1,000 after it arrived. Now it is truncated (oversize = "truncate",
// the default), answered, and every message arrives.
func TestRELPOversizeFromRsyslog(t *testing.T) {
	relpPort, inPort := testenv.FreePort(t), testenv.FreePort(t)
	dir := t.TempDir()
	in := startIn(t, dir, "127.0.0.1:0", fmt.Sprintf(`
[admin]
listen = "{{ADMIN}}"
[frontend.relpin]
bind = ["relp://127.0.0.1:%d"]
sinks = ["out"]
[sink.out]
type = "file"
path = "{{DIR}}/out.log"
`, relpPort))
	startRsyslogRELP(t, inPort, relpPort, "128k", "")
	run := fmt.Sprintf("oversize-relp-%d", time.Now().UnixNano())
	addr := fmt.Sprintf("127.0.0.1:%d", inPort)
	sendLines(t, addr, run, 100, 0)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "<13>Dec  4 10:00:00 host app: %s seq=100 big %s\n", run, strings.Repeat("x", 80000))
	c.Close()
	c, err = net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(c)
	for i := 101; i < 1101; i++ {
		fmt.Fprintf(w, "<13>Dec  4 10:00:00 host app: %s seq=%d\n", run, i)
	}
	w.Flush()
	c.Close()
	got := waitAll(t, filepath.Join(dir, "out.log"), run, 1101, 30*time.Second)
	truncated, closed := in.metric("wharf_frontend_truncated_total"), in.metric("wharf_frontend_closed_total", `reason="relp_datalen"`)
	t.Logf("%d of 1101 arrived, %d duplicates; truncated %v, relp_datalen closes %v", len(got), duplicates(got), truncated, closed)
	if truncated != 1 || closed != 0 {
		t.Errorf("truncated %v, relp_datalen closes %v; want 1 and 0", truncated, closed)
	}
	in.stop()
}

// TestRELPRouteDropFromRsyslog: relp_ack = "delivered" and a route that
// drops some messages (action = "drop"). Before, the dropped message was
// never answered, the session closed (relp_not_delivered) and rsyslog
// resent it on every reconnect: it never got past it (audit: 127 of the
// 1,000 after it). Now it is answered as a drop by policy and all 2,000
// others arrive.
func TestRELPRouteDropFromRsyslog(t *testing.T) {
	relpPort, inPort := testenv.FreePort(t), testenv.FreePort(t)
	dir := t.TempDir()
	in := startIn(t, dir, "127.0.0.1:0", fmt.Sprintf(`
[admin]
listen = "{{ADMIN}}"
[frontend.relpin]
bind = ["relp://127.0.0.1:%d"]
relp_ack = "delivered"
[[frontend.relpin.route]]
msg_contains = "DROPME"
action = "drop"
[[frontend.relpin.route]]
sinks = ["out"]
[sink.out]
type = "file"
path = "{{DIR}}/out.log"
`, relpPort))
	startRsyslogRELP(t, inPort, relpPort, "64k", "")
	run := fmt.Sprintf("routedrop-relp-%d", time.Now().UnixNano())
	addr := fmt.Sprintf("127.0.0.1:%d", inPort)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(c)
	for i := range 2001 {
		if i == 1000 {
			fmt.Fprintf(w, "<13>Dec  4 10:00:00 host app: DROPME %s\n", run)
			continue
		}
		seq := i
		if i > 1000 {
			seq = i - 1
		}
		fmt.Fprintf(w, "<13>Dec  4 10:00:00 host app: %s seq=%d\n", run, seq)
	}
	w.Flush()
	c.Close()
	got := waitAll(t, filepath.Join(dir, "out.log"), run, 2000, 30*time.Second)
	notDelivered := in.metric("wharf_frontend_closed_total", `reason="relp_not_delivered"`)
	t.Logf("%d of 2000 arrived, %d duplicates; route drops %v, relp_not_delivered closes %v",
		len(got), duplicates(got), in.metric("wharf_frontend_dropped_total", `reason="route_drop"`), notDelivered)
	if notDelivered != 0 {
		t.Errorf("relp_not_delivered = %v, want 0", notDelivered)
	}
	in.stop()
}
