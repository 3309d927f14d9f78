package kafka

// Tests against a real Kafka broker started by test/kafka/kafka.sh:
//
//	bash test/kafka/kafka.sh fetch && bash test/kafka/kafka.sh start
//	WHARF_INTEGRATION=1 WHARF_KAFKA_BROKERS=127.0.0.1:9092 go test ./sinks/kafka/
//	bash test/kafka/kafka.sh stop
//
// Without WHARF_KAFKA_BROKERS these tests skip (fail under WHARF_INTEGRATION).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"wharf/conf"
	"wharf/internal/testenv"
	"wharf/message"
	"wharf/sinks"
)

// newTopic creates a topic with a name unique to this run and waits until
// every partition has a leader.
func newTopic(t testing.TB, brokers string, partitions int, configs ...kafkago.ConfigEntry) string {
	t.Helper()
	name := strings.NewReplacer("/", ".", " ", "_").Replace(t.Name())
	topic := fmt.Sprintf("wharf-test.%s.%d.%04d", name, time.Now().UnixNano(), rand.IntN(10000))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := &kafkago.Client{Addr: kafkago.TCP(strings.Split(brokers, ",")...)}
	res, err := c.CreateTopics(ctx, &kafkago.CreateTopicsRequest{Topics: []kafkago.TopicConfig{
		{Topic: topic, NumPartitions: partitions, ReplicationFactor: 1, ConfigEntries: configs},
	}})
	if err != nil {
		t.Fatalf("creating topic %s: %v", topic, err)
	}
	if err := res.Errors[topic]; err != nil {
		t.Fatalf("creating topic %s: %v", topic, err)
	}
	for {
		md, err := c.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{topic}})
		if err == nil && len(md.Topics) == 1 && md.Topics[0].Error == nil && len(md.Topics[0].Partitions) == partitions {
			ready := true
			for _, p := range md.Topics[0].Partitions {
				ready = ready && p.Leader.ID >= 0 && p.Leader.Host != ""
			}
			// The metadata can name a leader a moment before that broker
			// serves the partition (NOT_LEADER_OR_FOLLOWER); a ListOffsets
			// answered by each leader proves it does.
			for _, p := range md.Topics[0].Partitions {
				ready = ready && leaderServes(ctx, brokers, topic, p.ID)
			}
			if ready {
				return topic
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("topic %s has no leaders after 30s (last error %v)", topic, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// leaderServes reports whether the partition's leader answers ListOffsets.
func leaderServes(ctx context.Context, brokers, topic string, partition int) bool {
	c, err := kafkago.DialLeader(ctx, "tcp", strings.Split(brokers, ",")[0], topic, partition)
	if err != nil {
		return false
	}
	defer c.Close()
	_, err = c.ReadLastOffset()
	return err == nil
}

// record is one Kafka record as read back.
type record struct {
	partition  int
	key, value string
}

// readTopic reads every record of topic, partition by partition up to the
// high watermark, with kafka-go partition readers (no consumer group).
// waitTopic reads topic until it holds at least n records (or timeout)
// and returns them; each read dials the brokers, so reads are 100ms apart.
func waitTopic(t testing.TB, brokers, topic string, n int, timeout time.Duration) []record {
	t.Helper()
	var got []record
	testenv.Poll(timeout, func() bool {
		if got = readTopic(t, brokers, topic); len(got) >= n {
			return true
		}
		time.Sleep(100 * time.Millisecond)
		return false
	})
	return got
}

func readTopic(t testing.TB, brokers, topic string) []record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	broker := strings.Split(brokers, ",")[0]
	conn, err := kafkago.DialContext(ctx, "tcp", broker)
	if err != nil {
		t.Fatal(err)
	}
	parts, err := conn.ReadPartitions(topic)
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	var out []record
	for _, p := range parts {
		lc, err := kafkago.DialLeader(ctx, "tcp", broker, topic, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		last, err := lc.ReadLastOffset()
		lc.Close()
		if err != nil {
			t.Fatalf("partition %d: last offset: %v", p.ID, err)
		}
		r := kafkago.NewReader(kafkago.ReaderConfig{
			Brokers: []string{broker}, Topic: topic, Partition: p.ID,
			MaxWait: 50 * time.Millisecond, MaxBytes: 8 << 20,
		})
		for off := int64(0); off < last; off++ {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				r.Close()
				t.Fatalf("partition %d offset %d of %d: %v", p.ID, off, last, err)
			}
			out = append(out, record{p.ID, string(m.Key), string(m.Value)})
		}
		r.Close()
	}
	return out
}

// produce writes n messages from syslogMessage through a sink built from
// cfg, in batches of batchSize, and returns the wanted key for each value.
// The wanted key follows from kc(&cfg).Key and syslogMessage's scheme, not from
// the sink's own code.
func produce(t testing.TB, cfg conf.Sink, n, batchSize int) map[string]string {
	t.Helper()
	s, err := newFromConf("it", &cfg)
	if err != nil {
		t.Fatal(err)
	}
	k := s.(*Sink)
	want := make(map[string]string, n)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	batch := make([]*message.Message, 0, batchSize)
	flush := func() {
		if err := s.Write(ctx, batch); err != nil {
			t.Fatalf("Write: %v", err)
		}
		for _, m := range batch {
			m.Release() // the runner's job: Write keeps no references
		}
		batch = batch[:0]
	}
	for i := 0; i < n; i++ {
		m := syslogMessage(i)
		v := string(k.opt.encoding.Append(nil, m))
		if _, dup := want[v]; dup {
			t.Fatalf("test bug: value %q twice", v)
		}
		switch kc(&cfg).Key {
		case "hostname":
			want[v] = fmt.Sprintf("host-%d.example.net", i%7)
		case "app_name":
			want[v] = fmt.Sprintf("app%d", i%5)
		default:
			want[v] = ""
		}
		batch = append(batch, m)
		if len(batch) == batchSize {
			flush()
		}
	}
	if len(batch) > 0 {
		flush()
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return want
}

// checkRecords checks that got holds every wanted value exactly once with
// its key, and that one key never spans two partitions.
func checkRecords(t testing.TB, who string, got []record, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: read %d records, want %d", who, len(got), len(want))
	}
	seen := make(map[string]bool, len(got))
	keyPart := map[string]int{}
	bad := 0
	for _, r := range got {
		wk, ok := want[r.value]
		var problem string
		switch {
		case !ok:
			problem = "unexpected value"
		case seen[r.value]:
			problem = "duplicate"
		case r.key != wk:
			problem = fmt.Sprintf("key %q, want %q", r.key, wk)
		}
		seen[r.value] = true
		if r.key != "" && r.partition >= 0 {
			if p, ok := keyPart[r.key]; ok && p != r.partition {
				problem = fmt.Sprintf("key %q on partitions %d and %d", r.key, p, r.partition)
			}
			keyPart[r.key] = r.partition
		}
		if problem != "" {
			if bad++; bad <= 5 {
				t.Errorf("%s: %s: %q", who, problem, r.value)
			}
		}
	}
	if bad > 5 {
		t.Errorf("%s: %d bad records in all", who, bad)
	}
}

// syslogMessage is a ~300 byte RFC5424 message with 7 hosts and 5 apps;
// no tabs or newlines, so kcat's line format can carry it.
func syslogMessage(i int) *message.Message {
	m := testMessage(i, fmt.Sprintf("host-%d.example.net", i%7), fmt.Sprintf("app%d", i%5))
	pad := strings.Repeat("x", 300-len(m.Raw)-10)
	raw := fmt.Sprintf("%s %s %08d", m.Raw, pad, i)
	h, a, msg := m.Hostname, m.AppName, m.Msg
	m.Release()
	m = message.New([]byte(raw))
	m.Format, m.Priority, m.Version = message.FormatRFC5424, 13, 1
	m.Hostname, m.AppName, m.Msg = h, a, message.Span{Off: msg.Off, Len: uint32(len(raw)) - msg.Off}
	return m
}

func TestKafkaRoundTrip(t *testing.T) {
	brokers := testenv.Env(t, "WHARF_KAFKA_BROKERS")
	topic := newTopic(t, brokers, 3)
	cfg := conf.Sink{Type: "kafka", BatchSize: 500, Options: &Config{Brokers: strings.Split(brokers, ","), Topic: topic, Key: "hostname", WriteTimeout: conf.Duration{Duration: 10 * time.Second}}}
	const n = 10000
	start := time.Now()
	want := produce(t, cfg, n, 500)
	t.Logf("produced %d messages in %v", n, time.Since(start))

	got := readTopic(t, brokers, topic)
	checkRecords(t, "kafka-go reader", got, want)
	parts := map[int]int{}
	for _, r := range got {
		parts[r.partition]++
	}
	if len(parts) < 2 {
		t.Errorf("7 keys landed on partitions %v; the hash balancer should spread them", parts)
	}

	// The same, read by an independent client (librdkafka's kcat).
	kcat := testenv.Tool(t, "kcat")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, kcat, "-C", "-b", brokers, "-t", topic, "-o", "beginning", "-e", "-q",
		"-f", "%p\t%k\t%s\n").Output()
	if err != nil {
		t.Fatalf("kcat: %v", err)
	}
	var viaKcat []record
	for _, line := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		p, rest, _ := strings.Cut(line, "\t")
		k, v, _ := strings.Cut(rest, "\t")
		var pn int
		fmt.Sscan(p, &pn)
		viaKcat = append(viaKcat, record{pn, k, v})
	}
	checkRecords(t, "kcat", viaKcat, want)

	// "hash" must place a key where the Java client (murmur2) would:
	// librdkafka's murmur2 partitioner is that one. Produce one record per
	// key with kcat and compare partitions.
	ourPart := map[string]int{}
	for _, r := range got {
		ourPart[r.key] = r.partition
	}
	var in strings.Builder
	for h := 0; h < 7; h++ {
		fmt.Fprintf(&in, "host-%d.example.net\tkcat-probe\n", h)
	}
	cmd := exec.CommandContext(ctx, kcat, "-P", "-b", brokers, "-t", topic, "-K", "\t", "-X", "topic.partitioner=murmur2")
	cmd.Stdin = strings.NewReader(in.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kcat -P: %v: %s", err, out)
	}
	out, err = exec.CommandContext(ctx, kcat, "-C", "-b", brokers, "-t", topic, "-o", "beginning", "-e", "-q",
		"-f", "%p\t%k\t%s\n").Output()
	if err != nil {
		t.Fatalf("kcat: %v", err)
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
		if ourPart[k] != pn {
			t.Errorf("key %q: wharf put it on partition %d, librdkafka murmur2 on %d", k, ourPart[k], pn)
		}
	}
	if probes != 7 {
		t.Errorf("read %d kcat probes back, want 7", probes)
	}
}

func TestKafkaCompressionAndEncoding(t *testing.T) {
	brokers := testenv.Env(t, "WHARF_KAFKA_BROKERS")
	f := func(compression, encoding, key string) {
		t.Run(compression+"/"+encoding+"/"+key, func(t *testing.T) {
			topic := newTopic(t, brokers, 2)
			cfg := conf.Sink{Encoding: encoding, Options: &Config{Brokers: strings.Split(brokers, ","), Topic: topic, Compression: compression, Key: key, RequiredAcks: "all"}}
			want := produce(t, cfg, 2000, 250)
			checkRecords(t, "kafka-go reader", readTopic(t, brokers, topic), want)
		})
	}
	f("gzip", "raw", "hostname")
	f("zstd", "raw", "app_name")
	f("snappy", "rfc5424", "none")
	f("lz4", "json", "hostname")
	f("none", "json", "app_name")
}

// kcat (librdkafka) must decode what kafka-go compressed with zstd.
func TestKafkaZstdReadByKcat(t *testing.T) {
	brokers := testenv.Env(t, "WHARF_KAFKA_BROKERS")
	kcat := testenv.Tool(t, "kcat")
	topic := newTopic(t, brokers, 1)
	want := produce(t, conf.Sink{Options: &Config{Brokers: strings.Split(brokers, ","), Topic: topic, Compression: "zstd", Key: "hostname"}},
		1000, 1000)
	out, err := exec.Command(kcat, "-C", "-b", brokers, "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%k\t%s\n").Output()
	if err != nil {
		t.Fatalf("kcat: %v", err)
	}
	var got []record
	for _, line := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		k, v, _ := strings.Cut(line, "\t")
		got = append(got, record{-1, k, v})
	}
	checkRecords(t, "kcat zstd", got, want)
}

// Check answers nil against the live broker, also for a topic that does
// not exist yet (the first Write creates it), and the first Write to a
// missing topic auto-creates it.
func TestKafkaCheckAndAutoCreate(t *testing.T) {
	brokers := testenv.Env(t, "WHARF_KAFKA_BROKERS")
	topic := fmt.Sprintf("wharf-test.autocreate.%d", time.Now().UnixNano())
	s, err := newFromConf("it", &conf.Sink{Options: &Config{Brokers: strings.Split(brokers, ","), Topic: topic}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.(*Sink).Check(context.Background()); err != nil {
		t.Fatalf("Check: %v", err)
	}
	m := syslogMessage(1)
	defer m.Release()
	// A just-created topic may need a metadata refresh; the runner retries
	// a failed Write, so do the same here, bounded.
	testenv.Poll(20*time.Second, func() bool {
		if err = s.Write(context.Background(), []*message.Message{m}); err != nil {
			time.Sleep(100 * time.Millisecond) // a retry pace, not a busy loop
		}
		return err == nil
	})
	if err != nil {
		t.Fatalf("Write to auto-created topic: %v", err)
	}
	got := readTopic(t, brokers, topic)
	if len(got) != 1 || !bytes.Equal([]byte(got[0].value), m.Raw) {
		t.Fatalf("read %v", got)
	}
}

// BenchmarkKafkaWrite measures Write of ~300 B messages with acks one:
// batches of 1000 to a 3-partition topic, and batches of 3400 (about the
// default batch_bytes, 1MiB) to a 1-partition topic as in make bench's
// Kafka scenario. allocs/msg counts every allocation in the process
// during the Writes (kafka-go's connection goroutines included), per
// message.
func BenchmarkKafkaWrite(b *testing.B) {
	brokers := testenv.Env(b, "WHARF_KAFKA_BROKERS")
	for _, c := range []struct {
		name, compression     string
		partitions, batchSize int
	}{
		{"p3/none/1000", "none", 3, 1000},
		{"p3/zstd/1000", "zstd", 3, 1000},
		{"p1/none/3400", "none", 1, 3400},
	} {
		b.Run(c.name, func(b *testing.B) {
			topic := newTopic(b, brokers, c.partitions)
			s, err := newFromConf("bench", &conf.Sink{BatchSize: c.batchSize, Options: &Config{Brokers: strings.Split(brokers, ","), Topic: topic, RequiredAcks: "one", Compression: c.compression}})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			batch := make([]*message.Message, c.batchSize)
			size := 0
			for i := range batch {
				batch[i] = syslogMessage(i)
				size += len(batch[i].Raw)
			}
			defer func() {
				for _, m := range batch {
					m.Release()
				}
			}()
			ctx := context.Background()
			if err := s.Write(ctx, batch); err != nil { // warm up connections and arena
				b.Fatal(err)
			}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				if err := s.Write(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			elapsed := time.Since(start)
			b.StopTimer()
			runtime.ReadMemStats(&m1)
			msgs := float64(b.N * c.batchSize)
			b.ReportMetric(msgs/elapsed.Seconds(), "msgs/s")
			b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/msgs, "allocs/msg")
		})
	}
}

// Regression: a linger before sending (kafka-go's Writer waited 1 s by
// default) or a partition's share split into several requests would make
// each Write slow or chatty. One Write of less than batch_bytes must
// become at most one produce request per partition, sent at once.
func TestKafkaOneProducePerPartition(t *testing.T) {
	brokers := testenv.Env(t, "WHARF_KAFKA_BROKERS")
	const partitions = 3
	topic := newTopic(t, brokers, partitions)
	s, err := newFromConf("it", &conf.Sink{BatchSize: 1000, Options: &Config{Brokers: strings.Split(brokers, ","), Topic: topic}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	k := s.(*Sink)
	batch := make([]*message.Message, 1000)
	for i := range batch {
		batch[i] = syslogMessage(i)
	}
	defer func() {
		for _, m := range batch {
			m.Release()
		}
	}()
	if err := s.Write(context.Background(), batch); err != nil { // warm up
		t.Fatal(err)
	}
	requests0, records0 := k.requests.Load(), k.records.Load()
	fastest := time.Hour
	for i := 0; i < 5; i++ {
		start := time.Now()
		if err := s.Write(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
		fastest = min(fastest, time.Since(start))
	}
	// A linger of 1 s would make every Write take over 1 s; the fastest
	// of five is robust against a loaded machine.
	if fastest > 500*time.Millisecond {
		t.Errorf("the fastest of 5 Writes of 1000 messages took %v", fastest)
	}
	requests, records := k.requests.Load()-requests0, k.records.Load()-records0
	if requests > 5*partitions || records != 5000 {
		t.Errorf("5 Writes of 1000 messages: %d produce requests carrying %d messages, want at most %d requests", requests, records, 5*partitions)
	}
}

// required_acks = "none": Write returns once sent, and the records still
// arrive (the broker is healthy, so nothing is lost here).
func TestKafkaAcksNone(t *testing.T) {
	brokers := testenv.Env(t, "WHARF_KAFKA_BROKERS")
	topic := newTopic(t, brokers, 2)
	want := produce(t, conf.Sink{Options: &Config{Brokers: strings.Split(brokers, ","), Topic: topic, RequiredAcks: "none", Key: "hostname"}},
		2000, 500)
	got := waitTopic(t, brokers, topic, len(want), 15*time.Second)
	checkRecords(t, "kafka-go reader", got, want)
}

// TestKafkaTopicMaxMessageBytes: a topic whose max.message.bytes (20 kB)
// is far below the sink's batch_bytes (the default, 1 MB). Before, the
// broker refused every request (MESSAGE_TOO_LARGE) and the runner retried
// the same batch forever: the sink delivered nothing until its config
// changed. Now the sink splits refused requests, keeps the smaller size
// for later Writes and says so once; a record refused even alone is
// rejected, the rest of the batch produced in order.
func TestKafkaTopicMaxMessageBytes(t *testing.T) {
	brokers := testenv.Env(t, "WHARF_KAFKA_BROKERS")
	topic := newTopic(t, brokers, 2, kafkago.ConfigEntry{ConfigName: "max.message.bytes", ConfigValue: "20000"})
	// The sink logs through slog.Default, taken when it is made.
	var logged testenv.SyncBuffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logged, nil)))
	s, err := newFromConf("small", &conf.Sink{Options: &Config{Brokers: strings.Split(brokers, ","), Topic: topic}})
	slog.SetDefault(prev)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	write := func(from, to, big int) error {
		batch := make([]*message.Message, 0, to-from+1)
		for i := from; i < to; i++ {
			if i == big {
				batch = append(batch, message.New([]byte(strings.Repeat("B", 30000))))
			}
			batch = append(batch, message.New(fmt.Appendf(nil, "<13>1 2026-12-05T10:00:00Z host app - - - %06d %s", i, strings.Repeat("x", 250))))
		}
		defer message.ReleaseAll(batch)
		return s.Write(context.Background(), batch)
	}
	err = write(0, 3000, 1500)
	var rej *sinks.RejectedError
	if !errors.As(err, &rej) || len(rej.Indexes) != 1 || rej.Indexes[0] != 1500 {
		t.Fatalf("Write = %v, want a RejectedError for index 1500 (the 30 kB record) only", err)
	}
	// The smaller request size is kept: the second Write is not refused
	// again, and the refusal was logged once.
	kept := s.(*Sink).maxRequest.Load()
	if kept >= 20000 {
		t.Errorf("request bound after the refusals: %d bytes, want below the topic's 20000", kept)
	}
	if err := write(3000, 4000, -1); err != nil {
		t.Fatalf("second Write: %v", err)
	}
	if now := s.(*Sink).maxRequest.Load(); now > kept {
		t.Errorf("request bound went back up from %d to %d bytes", kept, now)
	}
	if n := strings.Count(logged.String(), "refused a produce request"); n != 1 {
		t.Errorf("the too-large refusal was logged %d times, want once:\n%s", n, logged.String())
	}
	got := waitTopic(t, brokers, topic, 4000, 30*time.Second)
	if len(got) != 4000 {
		t.Fatalf("topic holds %d records, want 4000", len(got))
	}
	seen := map[string]bool{}
	for _, r := range got {
		seen[r.value] = true
	}
	for i := range 4000 {
		if !seen[fmt.Sprintf("<13>1 2026-12-05T10:00:00Z host app - - - %06d %s", i, strings.Repeat("x", 250))] {
			t.Fatalf("record %d missing", i)
		}
	}
}

// TestKafkaOversizeRejectedNotRetried: one message larger than
// batch_bytes in a batch must not make the batch fail forever; the rest is
// produced and the big one reported as rejected for good.
func TestKafkaOversizeRejectedNotRetried(t *testing.T) {
	brokers := testenv.Env(t, "WHARF_KAFKA_BROKERS")
	topic := newTopic(t, brokers, 1)
	s, err := newFromConf("big", &conf.Sink{BatchBytes: 4096, Options: &Config{Brokers: strings.Split(brokers, ","), Topic: topic}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	batch := []*message.Message{
		message.New([]byte("small one")),
		message.New([]byte(strings.Repeat("x", 8000))),
		message.New([]byte("small two")),
	}
	err = s.Write(context.Background(), batch)
	var rej *sinks.RejectedError
	if !errors.As(err, &rej) || len(rej.Indexes) != 1 || rej.Indexes[0] != 1 {
		t.Fatalf("Write = %v, want a RejectedError for index 1", err)
	}
	if !strings.Contains(err.Error(), "batch_bytes") {
		t.Errorf("error %q does not say which setting to change", err)
	}
	got := waitTopic(t, brokers, topic, 2, 15*time.Second)
	if len(got) != 2 {
		t.Fatalf("topic holds %d records, want the 2 small ones", len(got))
	}
}
