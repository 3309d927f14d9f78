package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"wharf/internal/testenv"
)

// faultTest skips unless WHARF_FAULT is set: fault tests stop and restart
// shared peers, so test/run.sh runs them on their own after the rest of
// the suite, never beside other packages' tests.
func faultTest(t *testing.T) {
	t.Helper()
	if os.Getenv("WHARF_FAULT") == "" {
		t.Skip("fault test: run by test/run.sh with WHARF_FAULT=1, alone")
	}
}

// kafkaScript runs test/kafka/kafka.sh with args (the environment, with
// KAFKA_PORT, comes from test/run.sh).
func kafkaScript(t *testing.T, env []string, args ...string) {
	t.Helper()
	cmd := exec.Command("bash", append([]string{"../kafka/kafka.sh"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kafka.sh %v: %v\n%s", args, err, out)
	}
}

// pacedSender writes octet-counted messages "... seq=N" to addr at about
// rate per second for d, and returns how many it wrote.
func pacedSender(t *testing.T, addr string, rate int, d time.Duration) <-chan int {
	done := make(chan int, 1)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer c.Close()
		w := bufio.NewWriterSize(c, 64<<10)
		start := time.Now()
		seq := 0
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for now := range tick.C {
			if now.Sub(start) >= d {
				break
			}
			due := int(float64(rate) * now.Sub(start).Seconds())
			for ; seq < due; seq++ {
				m := "<13>1 2026-11-25T10:00:00Z h app - - - seq=" + strconv.Itoa(seq)
				w.WriteString(strconv.Itoa(len(m)))
				w.WriteByte(' ')
				w.WriteString(m)
			}
			if err := w.Flush(); err != nil {
				break
			}
		}
		done <- seq
	}()
	return done
}

// TestFaultKafkaOutage stops the real broker for 10 s while messages flow
// in over TCP at 50k msg/s, then restarts it: with TCP backpressure and
// the in-memory queue, every message must reach Kafka (duplicates are
// allowed by at-least-once and counted, loss is not).
func TestFaultKafkaOutage(t *testing.T) {
	faultTest(t)
	t.Run("memory", func(t *testing.T) { kafkaOutage(t, "") })
	t.Run("disk", func(t *testing.T) {
		kafkaOutage(t, fmt.Sprintf("[sink.kafka.buffer]\ndir = %q\nfsync = \"interval\"\n", filepath.Join(t.TempDir(), "buf")))
	})
}

// kafkaOutage runs the outage with the sink's queue in memory (buffer "")
// or on disk (buffer is a [sink.kafka.buffer] table).
func kafkaOutage(t *testing.T, buffer string) {
	brokers := testenv.Env(t, "WHARF_KAFKA_BROKERS")
	kcat := testenv.Tool(t, "kcat")
	topic := fmt.Sprintf("wharf-outage-%d", time.Now().UnixNano())
	port := testenv.FreePort(t)
	in := start(t, tcpEdge(port, "kafka")+fmt.Sprintf(`
[sink.kafka]
type = "kafka"
brokers = ["%s"]
topic = "%s"
required_acks = "all"
queue_size = 200000
retry_backoff = "100ms"
retry_max_backoff = "1s"
write_timeout = "5s"
%s`, brokers, topic, buffer))

	sent := pacedSender(t, fmt.Sprintf("127.0.0.1:%d", port), 50000, 18*time.Second)
	time.Sleep(3 * time.Second)
	if in.metric("wharf_sink_sent_total", `sink="kafka"`) == 0 {
		t.Fatal("nothing reached Kafka before the outage")
	}
	kafkaScript(t, nil, "stop")
	t.Logf("broker stopped at %v sent to Kafka", in.metric("wharf_sink_sent_total", `sink="kafka"`))
	time.Sleep(10 * time.Second)
	if code := httpStatus(t, "http://"+in.admin+"/readyz"); code != 503 {
		t.Errorf("/readyz = %d during the outage, want 503", code)
	}
	kafkaScript(t, []string{"KAFKA_KEEP_DATA=1"}, "start")
	n := <-sent
	t.Logf("sender wrote %d messages", n)
	if got := in.waitMetric(float64(n), 90*time.Second, "wharf_sink_sent_total", `sink="kafka"`); got < float64(n) {
		t.Fatalf("wharf delivered %v of %d after the broker came back", got, n)
	}
	if d := in.metric("wharf_sink_dropped_total"); d != 0 {
		t.Errorf("wharf dropped %v messages", d)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, kcat, "-C", "-b", brokers, "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%s\n").Output()
	if err != nil {
		t.Fatalf("kcat: %v", err)
	}
	seen := make([]int, n)
	extra := 0
	for _, l := range splitLines(out) {
		i := strings.LastIndex(l, "seq=")
		v, err := strconv.Atoi(l[i+4:])
		if i < 0 || err != nil || v >= n {
			extra++
			continue
		}
		seen[v]++
	}
	missing, dups := 0, 0
	for _, c := range seen {
		if c == 0 {
			missing++
		}
		if c > 1 {
			dups += c - 1
		}
	}
	t.Logf("Kafka holds %d of %d messages once or more; %d duplicates; %d unexpected records", n-missing, n, dups, extra)
	if missing > 0 || extra > 0 {
		t.Fatalf("%d messages lost across the outage (%d unexpected records)", missing, extra)
	}
	in.stop()
}
