package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"wharf/bench/gen"
	"wharf/bench/recv"
	"wharf/internal/testenv"
)

// script runs a test/kafka script with args and returns its output.
func script(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command("bash", append([]string{"../kafka/" + name}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// kafkaSinkConf is frontend "edge" on port into a Kafka sink with
// acks=all; extra is appended to the sink section (a buffer table).
func kafkaSinkConf(port int, brokers, topic, extra string) string {
	return tcpEdge(port, "kafka") + fmt.Sprintf(`
[sink.kafka]
type = "kafka"
brokers = ["%s"]
topic = %q
required_acks = "all"
queue_size = 200000
retry_backoff = "100ms"
retry_max_backoff = "1s"
write_timeout = "5s"
%s`, strings.ReplaceAll(brokers, ",", `", "`), topic, extra)
}

// consume reads topic from its first offset into a Tracker counting only
// run's messages; the test waits with waitReceived.
func consume(t *testing.T, brokers, topic, run string) *recv.Consumer {
	t.Helper()
	k, err := recv.Consume(context.Background(), strings.Split(brokers, ","), topic, run)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

// logSize reports how many records the topic holds (duplicates from
// retried produce requests included).
func logSize(t *testing.T, k *recv.Consumer) int64 {
	t.Helper()
	n, err := k.LogSize(context.Background())
	if err != nil {
		t.Logf("log size: %v", err)
	}
	return n
}

// TestFaultKafkaBrokerPaused pauses the (single) test broker with SIGSTOP
// for 10 s while a sender streams 20k msg/s: the broker's sockets stay
// open and it answers nothing, which is not the same as a crash (no RST,
// no refused connections). Produce requests time out (write_timeout 5 s),
// so /readyz turns 503 and stays so until the broker runs; the queue and
// TCP backpressure hold the input, and once the broker runs again every
// message read must be in Kafka.
func TestFaultKafkaBrokerPaused(t *testing.T) {
	faultTest(t)
	brokers := testenv.Env(t, "WHARF_KAFKA_BROKERS")
	pid, err := strconv.Atoi(script(t, "kafka.sh", "pid"))
	if err != nil {
		t.Fatalf("kafka.sh pid: %v", err)
	}
	run := gen.NewRunID()
	topic := "wharf-paused-" + run
	port := testenv.FreePort(t)
	in := start(t, kafkaSinkConf(port, brokers, topic, ""))
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGCONT) })
	s := startSender(t, run, 0, []string{fmt.Sprintf("127.0.0.1:%d", port)}, 20000)
	time.Sleep(3 * time.Second)
	if in.metric("wharf_sink_sent_total", `sink="kafka"`) == 0 {
		t.Fatal("nothing reached Kafka before the pause")
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	paused := time.Now()
	pausedAt := in.metric("wharf_sink_sent_total", `sink="kafka"`)
	// /readyz must turn 503 during the pause (the first produce request
	// fails at write_timeout, 5 s) and stay 503 until the broker runs.
	var notReady time.Duration // when /readyz first said 503
	readyAgain := 0            // 200s after that, while still paused
	for time.Since(paused) < 10*time.Second {
		code := httpStatus(t, "http://"+in.admin+"/readyz")
		switch {
		case code == 503 && notReady == 0:
			notReady = time.Since(paused)
		case code == 200 && notReady != 0:
			readyAgain++
		}
		time.Sleep(100 * time.Millisecond)
	}
	during := in.metric("wharf_sink_sent_total", `sink="kafka"`)
	ready := httpStatus(t, "http://"+in.admin+"/readyz")
	syscall.Kill(pid, syscall.SIGCONT)
	first := "never"
	if notReady != 0 {
		first = notReady.Round(100*time.Millisecond).String() + " into it"
	}
	t.Logf("broker paused 10 s: sent %v -> %v during the pause, /readyz 503 first %s (%d answers 200 after), %d at its end, %v write errors",
		pausedAt, during, first, readyAgain, ready, in.metric("wharf_sink_write_errors_total", `sink="kafka"`))
	if notReady == 0 || ready != 503 || readyAgain > 0 {
		t.Errorf("/readyz during the 10 s pause: 503 first %s, %d answers 200 after that, %d at its end; want 503 within write_timeout (5 s) and until the end",
			first, readyAgain, ready)
	}
	time.Sleep(3 * time.Second)
	written := s.Stop()
	accounts := settle(t, []*instance{in}, "kafka")
	k := consume(t, brokers, topic, run)
	rep := waitReceived(k.Tracker)
	l := checkLedger(t, accounts, rep, written, s.Attempted(), 0)
	t.Logf("Kafka log holds %d records for %d distinct messages (%d duplicates from retried requests)", logSize(t, k), l.Received, logSize(t, k)-int64(l.Received))
	in.stop()
}

// clusterLeader kills nothing: it asks the cluster which node leads
// partition p of topic.
func clusterLeader(t *testing.T, topic string, p int) string {
	t.Helper()
	return script(t, "cluster.sh", "leader", topic, strconv.Itoa(p))
}

// TestFaultKafkaClusterLeaderKilled runs wharf against the three-node
// KRaft cluster (replication factor 3, min.insync.replicas=2, the sink
// with required_acks = "all") and kills the leader of partition 0 with
// SIGKILL while a sender streams 20k msg/s. Writes to its partitions fail
// until the controller fences it (broker.session.timeout.ms 6 s) and
// elects a new leader from the in-sync replicas; wharf retries whole
// batches. 0 lost: every message wharf read is in Kafka.
func TestFaultKafkaClusterLeaderKilled(t *testing.T) {
	faultTest(t)
	brokers := testenv.Env(t, "WHARF_KAFKA_CLUSTER")
	run := gen.NewRunID()
	topic := "wharf-leader-" + run
	script(t, "cluster.sh", "topic", topic, "3")
	port := testenv.FreePort(t)
	in := start(t, kafkaSinkConf(port, brokers, topic, ""))
	// The consumer reads while the leader dies (bench/recv looks the
	// leader up again after an error).
	k := consume(t, brokers, topic, run)
	s := startSender(t, run, 0, []string{fmt.Sprintf("127.0.0.1:%d", port)}, 20000)
	time.Sleep(4 * time.Second)
	leader := clusterLeader(t, topic, 0)
	before := in.metric("wharf_sink_sent_total", `sink="kafka"`)
	killedAt := time.Now()
	script(t, "cluster.sh", "kill", leader)
	t.Cleanup(func() { exec.Command("bash", "../kafka/cluster.sh", "start-node", leader).Run() })
	t.Logf("killed node %d (leader of partition 0) with %v messages in Kafka", mustAtoi(t, leader), before)
	// Delivery resumes once the partitions have new leaders.
	deadline := time.Now().Add(60 * time.Second)
	for in.metric("wharf_sink_sent_total", `sink="kafka"`) < before+40000 {
		if time.Now().After(deadline) {
			t.Fatalf("delivery did not resume within 60 s of the leader kill")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("40000 more delivered %v after the kill; new leader of partition 0: node %s; %v write errors",
		time.Since(killedAt).Round(100*time.Millisecond), clusterLeader(t, topic, 0), in.metric("wharf_sink_write_errors_total", `sink="kafka"`))
	time.Sleep(3 * time.Second)
	written := s.Stop()
	accounts := settle(t, []*instance{in}, "kafka")
	rep := waitReceived(k.Tracker)
	if err := k.Err(); err != nil {
		t.Errorf("consumer: %v", err)
	}
	l := checkLedger(t, accounts, rep, written, s.Attempted(), 0)
	t.Logf("Kafka log holds %d records for %d distinct messages; the consumer reconnected %d times",
		logSize(t, k), l.Received, k.Reconnects())
	in.stop()
	script(t, "cluster.sh", "start-node", leader)
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return n
}

// stoppedLine is wharf's last log line on a clean stop (cmd/wharf
// logTotals).
var stoppedLine = regexp.MustCompile(`msg=stopped received=(\d+) sent=(\d+) sink_dropped=(\d+) frontend_dropped=(\d+)`)

// stoppedAccount reads a node's own final account from the line wharf
// logs when it stops: its /metrics are gone with it.
func stoppedAccount(t *testing.T, in *instance, stderr string) recv.NodeLedger {
	t.Helper()
	m := stoppedLine.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no 'stopped' line in wharf's log:\n%s", stderr)
	}
	v := func(i int) uint64 { n, _ := strconv.ParseUint(m[i], 10, 64); return n }
	n := recv.NodeLedger{Node: in.admin + " (stopped)", Read: v(1), Delivered: v(2), Lost: map[string]uint64{}}
	if d := v(3); d > 0 {
		n.Lost["sink/*"] = d
	}
	// frontend_dropped is not a loss of read messages here: the line
	// sums every reason, and the ones that follow a read (parse_error,
	// no_route, route_drop, rate_limit) cannot happen with this config;
	// the rest (a partial frame when the node closed a sender's
	// connection) were never read.
	if d := v(4); d > 0 {
		t.Logf("node %s: %d frontend drops (bytes never read as a message)", in.admin, d)
	}
	return n
}

// TestFaultTwoNodesInFrontOfCluster is the scale-out story: two wharf
// nodes in front of the three-node cluster, A with a disk buffer, B with
// its queue in memory; senders list both nodes and move to the other
// when a connection fails. Under load (two senders, then three, 5k msg/s
// each):
//
//  1. node A is killed with SIGKILL. Its sender fails over to B. A is
//     started again on the same disk buffer and delivers what it had
//     read and not yet delivered: A's stream must be in Kafka as an
//     unbroken prefix 0..K, K at least what A had read by its last
//     /metrics before the kill. What the sender had written into A's
//     socket but A never read is lost with A's kernel socket; no node
//     can promise it (TCP syslog has no acknowledgement): the test
//     reports how much.
//  2. node B is stopped with SIGTERM (a drain): it stops accepting,
//     delivers everything it read (shutdown_timeout 30 s) and logs its
//     totals; its senders fail over to A. (A disk-buffered node keeps
//     what it could not deliver by shutdown_timeout in its buffer for
//     its next start instead: see docs/scale-out.md.)
//
// Then the ledger over the nodes that can account (A after its restart,
// B from its last log line) must balance: every message they read is in
// Kafka.
func TestFaultTwoNodesInFrontOfCluster(t *testing.T) {
	faultTest(t)
	brokers := testenv.Env(t, "WHARF_KAFKA_CLUSTER")
	run := gen.NewRunID()
	topic := "wharf-2nodes-" + run
	script(t, "cluster.sh", "topic", topic, "6")
	portA, portB := testenv.FreePort(t), testenv.FreePort(t)
	addrA, addrB := fmt.Sprintf("127.0.0.1:%d", portA), fmt.Sprintf("127.0.0.1:%d", portB)
	buffer := "[sink.kafka.buffer]\ndir = \"{{DIR}}/buf\"\nfsync = \"interval\"\n"
	dirA := t.TempDir()
	adminA := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cfgA := kafkaSinkConf(portA, brokers, topic, buffer)
	a := startIn(t, dirA, adminA, cfgA)
	b := start(t, kafkaSinkConf(portB, brokers, topic, "[global]\nshutdown_timeout = \"30s\"\n"))

	s0 := startSender(t, run, 0, []string{addrA, addrB}, 5000)
	s1 := startSender(t, run, 100, []string{addrB, addrA}, 5000)
	time.Sleep(4 * time.Second)

	// 1. SIGKILL A under load, restart it on its buffer.
	readA := a.metric("wharf_frontend_received_total")
	a.cmd.Process.Kill()
	<-a.exited
	t.Logf("node A killed after reading at least %v messages", readA)
	deadline := time.Now().Add(20 * time.Second)
	for s0.Failovers() < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the sender did not fail over to node B")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	a2 := startIn(t, dirA, adminA, cfgA)
	t.Logf("node A started again on its disk buffer")
	s2 := startSender(t, run, 200, []string{addrA, addrB}, 5000)
	time.Sleep(3 * time.Second)

	// 2. SIGTERM B under load: a drain.
	bErr := b.stop()
	bAcct := stoppedAccount(t, b, bErr)
	t.Logf("node B drained on SIGTERM: %+v", bAcct)
	time.Sleep(3 * time.Second)
	written := map[uint32]uint64{}
	for _, s := range []*numberedSender{s0, s1, s2} {
		for k, v := range s.Stop() {
			written[k] = v
		}
	}
	aAcct := settle(t, []*instance{a2}, "kafka")
	k := consume(t, brokers, topic, run)
	rep := waitReceived(k.Tracker)

	// A's streams before the kill: an unbroken prefix, at least what A
	// had read by the last look at its /metrics.
	killed := map[uint32]bool{}
	for _, st := range s0.StreamsTo(addrA) {
		if st < 200 {
			killed[st] = true
			break // s0's first stream; later ones to A went to A2
		}
	}
	att := map[uint32]uint64{}
	for _, s := range []*numberedSender{s0, s1, s2} {
		for k, v := range s.Attempted() {
			att[k] = v
		}
	}
	killedRep := subReport(rep, func(st uint32) bool { return killed[st] })
	checkNumbers(t, killedRep, att)
	var unread uint64
	for st := range killed {
		unread += written[st]
	}
	t.Logf("node A's stream before the kill: %d in Kafka without a gap (A had read at least %v); the sender's writes that returned held %d: %d were in A's socket unread when it died",
		killedRep.Unique, readA, unread, unread-killedRep.Unique)
	if killedRep.Lost > 0 || float64(killedRep.Unique) < readA {
		t.Errorf("node A's stream: %d in Kafka with %d missing, A had read at least %v", killedRep.Unique, killedRep.Lost, readA)
	}

	// Everything else: A after its restart and B by their own accounts.
	rest := subReport(rep, func(st uint32) bool { return !killed[st] })
	attRest := map[uint32]uint64{}
	for st, v := range att {
		if !killed[st] {
			attRest[st] = v
		}
	}
	l := checkLedger(t, append(aAcct, bAcct), rest, written, attRest, 0)
	if bAcct.Delivered != bAcct.Read {
		t.Errorf("node B delivered %d of the %d it read before it exited on SIGTERM", bAcct.Delivered, bAcct.Read)
	}
	t.Logf("the senders wrote %d messages that no node read (in a stopping or dying node's socket)", l.Sent+unread-l.Read-killedRep.Unique)
	t.Logf("Kafka log holds %d records for %d distinct messages; node A replayed its buffer and delivered %d in its second life",
		logSize(t, k), rep.Unique, aAcct[0].Delivered)
	a2.stop()
}
