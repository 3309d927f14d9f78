package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"wharf/internal/testenv"
)

// TestKafkaEndToEnd relays 10k messages over TCP into a real Kafka broker
// and reads them back with kcat and with a Go consumer, checking count,
// key (the hostname) and value (the raw message).
func TestKafkaEndToEnd(t *testing.T) {
	brokers := testenv.Env(t, "WHARF_KAFKA_BROKERS")
	kcat := testenv.Tool(t, "kcat")
	topic := fmt.Sprintf("wharf-e2e-%d", time.Now().UnixNano())
	port := testenv.FreePort(t)
	in := start(t, tcpEdge(port, "kafka")+fmt.Sprintf(`
[sink.kafka]
type = "kafka"
brokers = ["%s"]
topic = "%s"
key = "hostname"
compression = "zstd"
required_acks = "all"
batch_size = 500
batch_timeout = "5ms"
`, brokers, topic))

	const n = 10000
	want := map[string]string{} // value -> key
	msgs := make([]string, n)
	for i := range msgs {
		host := fmt.Sprintf("host-%d", i%7)
		msgs[i] = fmt.Sprintf("<134>1 2026-11-25T10:00:00.%06dZ %s app %d - - message %d", i, host, i, i)
		want[msgs[i]] = host
	}
	sendTCP(t, fmt.Sprintf("127.0.0.1:%d", port), msgs)
	if got := in.waitMetric(n, 30*time.Second, "wharf_sink_sent_total", `sink="kafka"`); got != n {
		t.Fatalf("wharf_sink_sent_total = %v, want %d\n%s", got, n, in.stderr.String())
	}

	// kcat: every record as key<TAB>value.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, kcat, "-C", "-b", brokers, "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%k\t%s\n").Output()
	if err != nil {
		t.Fatalf("kcat: %v", err)
	}
	lines := splitLines(out)
	checkRecords(t, "kcat", lines, want)

	// A Go consumer over every partition.
	conn, err := kafka.Dial("tcp", brokers)
	if err != nil {
		t.Fatal(err)
	}
	parts, err := conn.ReadPartitions(topic)
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	var recs []string
	for _, p := range parts {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{brokers}, Topic: topic, Partition: p.ID, MaxWait: 100 * time.Millisecond})
		last, err := lastOffset(brokers, topic, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		for off := int64(0); off < last; off++ {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				t.Fatalf("partition %d offset %d: %v", p.ID, off, err)
			}
			recs = append(recs, string(m.Key)+"\t"+string(m.Value))
		}
		r.Close()
	}
	checkRecords(t, "kafka-go reader", recs, want)
	in.stop()
}

func lastOffset(broker, topic string, partition int) (int64, error) {
	c, err := kafka.DialLeader(context.Background(), "tcp", broker, topic, partition)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.ReadLastOffset()
}

// checkRecords checks that recs (key TAB value) hold exactly the wanted
// values once each, each with its key.
func checkRecords(t *testing.T, who string, recs []string, want map[string]string) {
	t.Helper()
	if len(recs) != len(want) {
		t.Fatalf("%s read %d records, want %d", who, len(recs), len(want))
	}
	seen := map[string]bool{}
	var bad []string
	for _, r := range recs {
		key, val, _ := strings.Cut(r, "\t")
		wk, ok := want[val]
		switch {
		case !ok:
			bad = append(bad, "unexpected value "+val)
		case seen[val]:
			bad = append(bad, "duplicate "+val)
		case key != wk:
			bad = append(bad, fmt.Sprintf("key %q for %q, want %q", key, val, wk))
		}
		seen[val] = true
	}
	sort.Strings(bad)
	if len(bad) > 0 {
		t.Fatalf("%s: %d bad records, first: %v", who, len(bad), bad[:min(5, len(bad))])
	}
}
