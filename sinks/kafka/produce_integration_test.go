package kafka

// Tests of the produce path (partitioning, request splitting, allocations)
// against the real broker of test/kafka/kafka.sh; see integration_test.go.

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"wharf/conf"
	"wharf/internal/testenv"
	"wharf/message"
)

// javaMurmur2 is the Java client's Utils.murmur2, written from its
// definition here so the test does not trust kafka-go's port of it.
func javaMurmur2(data []byte) int32 {
	const (
		seed = 0x9747b28c
		m    = 0x5bd1e995
		r    = 24
	)
	n := len(data)
	h := uint32(seed) ^ uint32(n)
	for i := 0; i+4 <= n; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := data[n&^3:]
	switch len(tail) {
	case 3:
		h ^= uint32(tail[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(tail[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(tail[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}

// javaPartition is the Java producer's partition for a non-null key:
// toPositive(murmur2(key)) % partitions.
func javaPartition(key []byte, partitions int) int {
	return int(uint32(javaMurmur2(key))&0x7fffffff) % partitions
}

// The "hash" balancer puts a key where the Java client does. The hash
// values are those of Kafka's own UtilsTest.testMurmur2.
func TestHashBalancerMatchesJava(t *testing.T) {
	bal := newBalancer("hash")
	parts := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	f := func(key string, want int32) {
		t.Helper()
		if got := javaMurmur2([]byte(key)); got != want {
			t.Fatalf("test murmur2(%q) = %d, Java says %d", key, got, want)
		}
		for n := 1; n <= len(parts); n++ {
			if got, want := bal.Balance(kafkago.Message{Key: []byte(key)}, parts[:n]...), javaPartition([]byte(key), n); got != want {
				t.Errorf("key %q, %d partitions: balancer picks %d, Java %d", key, n, got, want)
			}
		}
	}
	f("21", -973932308)
	f("foobar", -790332482)
	f("a-little-bit-long-string", -985981536)
	f("a-little-bit-longer-string", -1486304829)
	f("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971)
	f("abc", 479470107)
}

// sequencedMessage is a ~300 byte RFC5424 message with host "host-<h>"
// whose value ends in its sequence number i.
func sequencedMessage(i, h int) *message.Message {
	m := testMessage(i, fmt.Sprintf("host-%d", h), "app")
	host, app, msg := m.Hostname, m.AppName, m.Msg
	raw := fmt.Sprintf("%s %s %08d", m.Raw, strings.Repeat("x", 300-len(m.Raw)-10), i)
	m.Release()
	m = message.New([]byte(raw))
	m.Format, m.Priority, m.Version = message.FormatRFC5424, 13, 1
	m.Hostname, m.AppName, m.Msg = host, app, message.Span{Off: msg.Off, Len: uint32(len(raw)) - msg.Off}
	return m
}

// seqOf returns the sequence number a sequencedMessage value ends in.
func seqOf(t testing.TB, value string) int {
	t.Helper()
	i, err := strconv.Atoi(value[strings.LastIndexByte(value, ' ')+1:])
	if err != nil {
		t.Fatalf("value %q: no sequence number", value)
	}
	return i
}

// writeSequenced writes messages 0..n-1 (host i%hosts) in Writes of the
// given sizes, cycled, and returns the sink's produce request count.
func writeSequenced(t testing.TB, cfg conf.Sink, n, hosts int, sizes ...int) int64 {
	t.Helper()
	s, err := newFromConf("it", &cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i, w := 0, 0; i < n; w++ {
		size := min(sizes[w%len(sizes)], n-i)
		batch := make([]*message.Message, size)
		for j := range batch {
			batch[j] = sequencedMessage(i+j, (i+j)%hosts)
		}
		if err := s.Write(ctx, batch); err != nil {
			t.Fatalf("Write %d (messages %d..%d): %v", w, i, i+size-1, err)
		}
		for _, m := range batch {
			m.Release()
		}
		i += size
	}
	return s.(*Sink).requests.Load()
}

// checkSequenced checks that got holds messages 0..n-1 exactly once and,
// within each partition, in the order they were written; want(i, key,
// partition) reports a misplaced record.
func checkSequenced(t testing.TB, got []record, n int, want func(i int, r record) string) {
	t.Helper()
	seen := make([]bool, n)
	last := map[int]int{}
	bad := 0
	for _, r := range got {
		i := seqOf(t, r.value)
		var problem string
		switch {
		case i < 0 || i >= n:
			problem = "unexpected"
		case seen[i]:
			problem = "duplicate"
		default:
			seen[i] = true
			if l, ok := last[r.partition]; ok && i < l {
				problem = fmt.Sprintf("after message %d on partition %d", l, r.partition)
			}
			last[r.partition] = i
			if problem == "" {
				problem = want(i, r)
			}
		}
		if problem != "" {
			if bad++; bad <= 5 {
				t.Errorf("message %d (key %q, partition %d): %s", i, r.key, r.partition, problem)
			}
		}
	}
	missing := 0
	for i, ok := range seen {
		if !ok {
			if missing++; missing <= 5 {
				t.Errorf("message %d missing", i)
			}
		}
	}
	if bad+missing > 0 {
		t.Errorf("%d of %d messages read back; %d misplaced or duplicated, %d missing", len(got), n, bad, missing)
	}
}

// On a multi-partition topic every keyed message lands on the partition
// the Java client's murmur2 picks for its key (checked both against the
// formula and against librdkafka's murmur2 partitioner through kcat), and
// every message arrives exactly once, in order within its partition.
// Writes of odd sizes put uneven shares on the partitions.
func TestKafkaKeyedPartitionsLikeJava(t *testing.T) {
	brokers := testenv.Env(t, "WHARF_KAFKA_BROKERS")
	kcat := testenv.Tool(t, "kcat")
	const partitions, n, hosts = 7, 6000, 60
	topic := newTopic(t, brokers, partitions)
	writeSequenced(t, conf.Sink{Options: &Config{Brokers: strings.Split(brokers, ","), Topic: topic, Key: "hostname"}},
		n, hosts, 1, 997, 13, 2500, 250)
	got := readTopic(t, brokers, topic)
	used := map[int]bool{}
	checkSequenced(t, got, n, func(i int, r record) string {
		used[r.partition] = true
		key := fmt.Sprintf("host-%d", i%hosts)
		if r.key != key {
			return fmt.Sprintf("key %q, want %q", r.key, key)
		}
		if p := javaPartition([]byte(key), partitions); r.partition != p {
			return fmt.Sprintf("on partition %d, Java's murmur2 picks %d", r.partition, p)
		}
		return ""
	})
	if len(used) != partitions {
		t.Errorf("%d keys used only partitions %v of %d", hosts, used, partitions)
	}

	// librdkafka's murmur2 partitioner (the Java one) agrees.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var in strings.Builder
	for h := 0; h < hosts; h++ {
		fmt.Fprintf(&in, "host-%d\tkcat-probe\n", h)
	}
	cmd := exec.CommandContext(ctx, kcat, "-P", "-b", brokers, "-t", topic, "-K", "\t", "-X", "topic.partitioner=murmur2")
	cmd.Stdin = strings.NewReader(in.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kcat -P: %v: %s", err, out)
	}
	out, err := exec.CommandContext(ctx, kcat, "-C", "-b", brokers, "-t", topic, "-o", "beginning", "-e", "-q",
		"-f", "%p\t%k\t%s\n").Output()
	if err != nil {
		t.Fatalf("kcat -C: %v", err)
	}
	probes := 0
	for _, line := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		p, rest, _ := strings.Cut(line, "\t")
		k, v, _ := strings.Cut(rest, "\t")
		if v != "kcat-probe" {
			continue
		}
		probes++
		var pn int
		fmt.Sscan(p, &pn)
		if want := javaPartition([]byte(k), partitions); pn != want {
			t.Errorf("key %q: librdkafka murmur2 put it on partition %d, wharf on %d", k, pn, want)
		}
	}
	if probes != hosts {
		t.Errorf("read %d kcat probes back, want %d", probes, hosts)
	}
}

// Unkeyed messages go round robin over every partition, each exactly
// once and in order within its partition.
func TestKafkaRoundRobinExactlyOnce(t *testing.T) {
	brokers := testenv.Env(t, "WHARF_KAFKA_BROKERS")
	const partitions, n = 5, 3000
	topic := newTopic(t, brokers, partitions)
	writeSequenced(t, conf.Sink{Options: &Config{Brokers: strings.Split(brokers, ","), Topic: topic}}, n, 1, 1000, 7, 333)
	got := readTopic(t, brokers, topic)
	per := map[int]int{}
	checkSequenced(t, got, n, func(i int, r record) string {
		per[r.partition]++
		if r.key != "" {
			return fmt.Sprintf("key %q, want none", r.key)
		}
		return ""
	})
	for p := 0; p < partitions; p++ {
		if per[p] < n/partitions/2 {
			t.Errorf("partition %d got %d of %d messages: %v", p, per[p], n, per)
		}
	}
}

// A partition's share larger than batch_bytes goes out in several produce
// requests (at least its size / batch_bytes), one after the other: every
// message once and in order.
func TestKafkaSplitsSharesOverBatchBytes(t *testing.T) {
	brokers := testenv.Env(t, "WHARF_KAFKA_BROKERS")
	const partitions, n, batchBytes = 2, 1000, 16 << 10
	topic := newTopic(t, brokers, partitions)
	requests := writeSequenced(t, conf.Sink{BatchBytes: batchBytes, Options: &Config{Brokers: strings.Split(brokers, ","), Topic: topic, Key: "hostname"}}, n, 2, n)
	// ~300 KB in all: at least 300K/16K requests.
	if atLeast := int64(n * 300 / batchBytes); requests < atLeast {
		t.Errorf("%d produce requests for %d bytes with batch_bytes %d, want at least %d", requests, n*300, batchBytes, atLeast)
	}
	checkSequenced(t, readTopic(t, brokers, topic), n, func(int, record) string { return "" })
}

// Regression: kafka-go's Writer allocated per message (a []Message of
// batch_size per request, Message copies). A Write must allocate nothing
// per message once warm: 2000 messages cost what 200 cost, give or take
// a few allocations (kafka-go's background metadata refresh).
func TestKafkaWriteAllocatesNothingPerMessage(t *testing.T) {
	brokers := testenv.Env(t, "WHARF_KAFKA_BROKERS")
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	topic := newTopic(t, brokers, 3)
	s, err := newFromConf("it", &conf.Sink{Options: &Config{Brokers: strings.Split(brokers, ","), Topic: topic, Key: "hostname"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	batch := make([]*message.Message, 2000)
	for i := range batch {
		batch[i] = syslogMessage(i)
	}
	defer func() {
		for _, m := range batch {
			m.Release()
		}
	}()
	ctx := context.Background()
	allocs := func(n int) float64 {
		if err := s.Write(ctx, batch[:n]); err != nil { // warm up
			t.Fatal(err)
		}
		return testing.AllocsPerRun(30, func() {
			if err := s.Write(ctx, batch[:n]); err != nil {
				t.Fatal(err)
			}
		})
	}
	small, large := allocs(200), allocs(2000)
	t.Logf("allocations per Write: %.1f for 200 messages, %.1f for 2000", small, large)
	if perMsg := (large - small) / 1800; perMsg > 0.01 {
		t.Errorf("Write allocates %.3f times per message (%.1f for 200 messages, %.1f for 2000), want none", perMsg, small, large)
	}
}
