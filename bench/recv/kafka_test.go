package recv

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"wharf/bench/stamp"
	"wharf/internal/testenv"
)

// TestConsumeKafka produces a known stream (with a gap and a duplicate)
// to a fresh topic with two partitions and checks the consumer's counts.
func TestConsumeKafka(t *testing.T) {
	brokers := strings.Split(testenv.Env(t, "WHARF_KAFKA_BROKERS"), ",")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topic := "wharf-bench-test-" + time.Now().Format("150405.000000")
	if err := CreateTopic(ctx, brokers, topic, 2); err != nil {
		t.Fatal(err)
	}
	tp, err := stamp.NewTemplate(stamp.Options{Size: 300, Run: "kt", Conn: 0})
	if err != nil {
		t.Fatal(err)
	}
	var msgs []kafka.Message
	add := func(seq uint64) {
		tp.SetSeq(seq)
		tp.SetTime(time.Now().UnixNano())
		msgs = append(msgs, kafka.Message{Value: append([]byte(nil), tp.Frame...)})
	}
	const n = 20000
	for seq := uint64(0); seq < n; seq++ {
		switch seq {
		case 500: // lost
		case 700: // duplicated
			add(seq)
			add(seq)
		default:
			add(seq)
		}
	}
	produce(ctx, t, &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, Balancer: &kafka.RoundRobin{},
		BatchSize: 1000, BatchTimeout: 10 * time.Millisecond, RequiredAcks: kafka.RequireOne}, msgs)
	k, err := Consume(ctx, brokers, topic, "kt")
	if err != nil {
		t.Fatal(err)
	}
	// Every message, the duplicate included, must arrive.
	for k.Tracker.Received() < n && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	r := k.Tracker.Report([]uint64{n})
	if r.Unique != n-1 || r.Lost != 1 || r.Dups != 1 || r.Bad != 0 || r.Received != n {
		t.Fatalf("report %+v", r)
	}
}

// TestConsumeKafkaLargeBatches: more than one fetch (16 MiB) of ~1 MB
// record batches in one partition, so a fetch response ends inside a
// record batch and the next fetch starts in its middle. The broker then
// returns the whole batch again; the consumer must not count its first
// records twice.
func TestConsumeKafkaLargeBatches(t *testing.T) {
	brokers := strings.Split(testenv.Env(t, "WHARF_KAFKA_BROKERS"), ",")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	topic := "wharf-bench-large-" + time.Now().Format("150405.000000")
	if err := CreateTopic(ctx, brokers, topic, 1); err != nil {
		t.Fatal(err)
	}
	tp, err := stamp.NewTemplate(stamp.Options{Size: 300, Run: "kl", Conn: 0})
	if err != nil {
		t.Fatal(err)
	}
	const n = 70000 // ~21 MB
	msgs := make([]kafka.Message, n)
	for seq := range uint64(n) {
		tp.SetSeq(seq)
		tp.SetTime(time.Now().UnixNano())
		msgs[seq] = kafka.Message{Value: append([]byte(nil), tp.Frame...)}
	}
	produce(ctx, t, &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, BatchSize: 3000, BatchBytes: 1e6,
		BatchTimeout: 10 * time.Millisecond, RequiredAcks: kafka.RequireOne}, msgs)
	k, err := Consume(ctx, brokers, topic, "kl")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for k.Tracker.Received() < n && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	for time.Now().Before(deadline) && ctx.Err() == nil { // anything extra would arrive now
		time.Sleep(100 * time.Millisecond)
		if k.Tracker.Received() > n {
			break
		}
	}
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	if r := k.Tracker.Report([]uint64{n}); r.Unique != n || r.Dups != 0 || r.Lost != 0 || r.Received != n {
		t.Fatalf("report %+v", r)
	}
}

// produce writes msgs with w and closes it, retrying while a new topic is
// not yet in every broker's metadata.
func produce(ctx context.Context, t *testing.T, w *kafka.Writer, msgs []kafka.Message) {
	t.Helper()
	defer w.Close()
	for {
		err := w.WriteMessages(ctx, msgs...)
		if err == nil {
			return
		}
		if !errors.Is(err, kafka.UnknownTopicOrPartition) || ctx.Err() != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
