package recv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// Consumer reads every partition of a Kafka topic from its first offset
// and feeds the message values to a Tracker. Close stops it.
type Consumer struct {
	// Tracker receives every stamped message value.
	Tracker *Tracker
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	err     error
}

// CreateTopic creates topic with the given partitions (replication 1) on
// the cluster behind brokers; an existing topic is left as it is.
func CreateTopic(ctx context.Context, brokers []string, topic string, partitions int) error {
	c, err := dialAny(ctx, brokers)
	if err != nil {
		return err
	}
	defer c.Close()
	ctrl, err := c.Controller()
	if err != nil {
		return fmt.Errorf("bench/recv: kafka controller: %w", err)
	}
	cc, err := (&kafka.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", net.JoinHostPort(ctrl.Host, strconv.Itoa(ctrl.Port)))
	if err != nil {
		return fmt.Errorf("bench/recv: kafka controller %s:%d: %w", ctrl.Host, ctrl.Port, err)
	}
	defer cc.Close()
	err = cc.CreateTopics(kafka.TopicConfig{Topic: topic, NumPartitions: partitions, ReplicationFactor: 1})
	if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		return fmt.Errorf("bench/recv: create topic %s: %w", topic, err)
	}
	return nil
}

func dialAny(ctx context.Context, brokers []string) (*kafka.Conn, error) {
	var errs []error
	for _, b := range brokers {
		c, err := (&kafka.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", b)
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("bench/recv: no kafka broker reachable at %v: %w", brokers, errors.Join(errs...))
}

// Consume starts reading topic (which must exist or appear within 10 s).
// run, when set, counts other runs' messages as foreign.
func Consume(ctx context.Context, brokers []string, topic, run string) (*Consumer, error) {
	c, err := dialAny(ctx, brokers)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var parts []kafka.Partition
	for deadline := time.Now().Add(10 * time.Second); ; {
		parts, err = c.ReadPartitions(topic)
		if err == nil && len(parts) > 0 {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("bench/recv: kafka topic %s has no partitions: %v", topic, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	ctx, cancel := context.WithCancel(ctx)
	k := &Consumer{Tracker: NewTracker(), cancel: cancel}
	for _, p := range parts {
		leader := net.JoinHostPort(p.Leader.Host, strconv.Itoa(p.Leader.Port))
		pc, err := kafka.DialLeader(ctx, "tcp", leader, topic, p.ID)
		if err != nil {
			k.Close()
			return nil, fmt.Errorf("bench/recv: kafka %s partition %d leader %s: %w", topic, p.ID, leader, err)
		}
		if _, err := pc.Seek(0, kafka.SeekStart); err != nil {
			pc.Close()
			k.Close()
			return nil, fmt.Errorf("bench/recv: kafka %s partition %d: seek to first offset: %w", topic, p.ID, err)
		}
		k.wg.Add(1)
		go k.partition(ctx, pc, newCollector(k.Tracker, run))
	}
	return k, nil
}

func (k *Consumer) partition(ctx context.Context, pc *kafka.Conn, col *collector) {
	defer k.wg.Done()
	defer pc.Close()
	stop := context.AfterFunc(ctx, func() { pc.SetReadDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, 64<<10)
	for ctx.Err() == nil {
		pc.SetReadDeadline(time.Now().Add(2 * time.Second))
		b := pc.ReadBatchWith(kafka.ReadBatchConfig{MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 100 * time.Millisecond})
		nbytes := 0
		for {
			n, err := b.Read(buf)
			if err != nil {
				break
			}
			nbytes += n
			col.msg(buf[:n])
		}
		col.flush(nbytes)
		if err := b.Close(); err != nil && !errors.Is(err, io.EOF) && ctx.Err() == nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			k.mu.Lock()
			k.err = fmt.Errorf("bench/recv: kafka read: %w", err)
			k.mu.Unlock()
			return
		}
	}
}

// Err is the error that stopped a partition reader, if any.
func (k *Consumer) Err() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.err
}

// Close stops the partition readers and waits for them.
func (k *Consumer) Close() error {
	k.cancel()
	k.wg.Wait()
	return k.Err()
}
