package recv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
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
	topic   string
	brokers []string
	// reconnects counts partition connections redialled after an error.
	reconnects atomic.Uint64
}

// Reconnects is how often a partition reader had to redial after an
// error (reads resume at the next unread offset, so no message is read
// twice).
func (k *Consumer) Reconnects() uint64 { return k.reconnects.Load() }

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
	k := &Consumer{Tracker: NewTracker(), cancel: cancel, topic: topic, brokers: brokers}
	for _, p := range parts {
		leader := net.JoinHostPort(p.Leader.Host, strconv.Itoa(p.Leader.Port))
		pr := &partitionReader{leader: leader, brokers: brokers, topic: topic, id: p.ID}
		// A new topic's leader may take a moment to serve it.
		for deadline := time.Now().Add(10 * time.Second); ; {
			err := pr.dial(ctx)
			if err == nil {
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				k.Close()
				return nil, err
			}
			time.Sleep(100 * time.Millisecond)
		}
		k.wg.Add(1)
		go k.partition(ctx, pr, newCollector(k.Tracker, run))
	}
	return k, nil
}

// partitionReader reads one partition and reconnects after errors from
// the next unread offset: a kafka-go Conn is not reliable after a read
// deadline fired mid-response. A reconnect asks the brokers for the
// partition's leader again, so reading goes on after a leader change
// (the old leader killed).
type partitionReader struct {
	leader  string
	brokers []string
	topic   string
	id      int
	conn    *kafka.Conn
	next    int64 // next offset to read; 0 means from the first offset
}

// refreshLeader asks any broker who leads the partition now.
func (p *partitionReader) refreshLeader(ctx context.Context) {
	c, err := dialAny(ctx, p.brokers)
	if err != nil {
		return
	}
	defer c.Close()
	parts, err := c.ReadPartitions(p.topic)
	if err != nil {
		return
	}
	for _, q := range parts {
		if q.ID == p.id && q.Leader.Host != "" {
			p.leader = net.JoinHostPort(q.Leader.Host, strconv.Itoa(q.Leader.Port))
		}
	}
}

func (p *partitionReader) dial(ctx context.Context) error {
	c, err := kafka.DialLeader(ctx, "tcp", p.leader, p.topic, p.id)
	if err != nil {
		return fmt.Errorf("bench/recv: kafka %s partition %d leader %s: %w", p.topic, p.id, p.leader, err)
	}
	if p.next == 0 {
		_, err = c.Seek(0, kafka.SeekStart)
	} else {
		_, err = c.Seek(p.next, kafka.SeekAbsolute)
	}
	if err != nil {
		c.Close()
		return fmt.Errorf("bench/recv: kafka %s partition %d: seek to offset %d: %w", p.topic, p.id, p.next, err)
	}
	p.conn = c
	return nil
}

func (k *Consumer) partition(ctx context.Context, p *partitionReader, col *collector) {
	defer k.wg.Done()
	defer func() {
		if p.conn != nil {
			p.conn.Close()
		}
	}()
	buf := make([]byte, 64<<10)
	// A partition that fails for maxOutage in a row (no leader, topic
	// gone) stops its reader; a leader change takes seconds.
	const maxOutage = 60 * time.Second
	failures := 0
	var failingSince time.Time
	fail := func() bool {
		if failures++; failures == 1 {
			failingSince = time.Now()
		}
		return time.Since(failingSince) > maxOutage
	}
	for ctx.Err() == nil {
		if p.conn == nil {
			if failures > 0 {
				p.refreshLeader(ctx)
			}
			if err := p.dial(ctx); err != nil {
				if fail() {
					k.setErr(err)
					return
				}
				time.Sleep(200 * time.Millisecond)
				continue
			}
		}
		c := p.conn
		stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Now()) })
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b := c.ReadBatchWith(kafka.ReadBatchConfig{MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 100 * time.Millisecond})
		nbytes := 0
		for {
			n, err := b.Read(buf)
			if err != nil {
				break
			}
			// A fetch from an offset inside a record batch (the previous
			// response was cut at MaxBytes mid-batch, or a reconnect) gets
			// the whole batch back, and kafka-go does not skip the records
			// before the offset asked for (v2 batches): they were read
			// already. Offset() is the read record's offset + 1.
			if b.Offset() <= p.next {
				continue
			}
			nbytes += n
			col.msg(buf[:n])
		}
		if off := b.Offset(); off > p.next { // a failed batch reports offset 0
			p.next = off
		}
		col.flush(nbytes)
		err := b.Close()
		stop()
		if err == nil || errors.Is(err, io.EOF) {
			failures = 0
			continue
		}
		if errors.Is(err, kafka.RequestTimedOut) && nbytes == 0 {
			continue // kafka-go's way of saying "no new messages yet"
		}
		if ctx.Err() != nil {
			return
		}
		// Any error (a deadline included) may leave the connection
		// mid-response: start over from the next unread offset.
		c.Close()
		p.conn = nil
		k.reconnects.Add(1)
		if fail() {
			k.setErr(fmt.Errorf("bench/recv: kafka %s partition %d: %w", p.topic, p.id, err))
			return
		}
	}
}

func (k *Consumer) setErr(err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.err == nil {
		k.err = err
	}
}

// LogSize is the number of messages the topic's partitions hold (last
// minus first offset, summed), asked of each partition's current leader.
// Compared with what the Tracker received it tells producer-side
// duplicates (in the log) from consumer ones.
func (k *Consumer) LogSize(ctx context.Context) (int64, error) {
	c, err := dialAny(ctx, k.brokers)
	if err != nil {
		return 0, err
	}
	parts, err := c.ReadPartitions(k.topic)
	c.Close()
	if err != nil {
		return 0, fmt.Errorf("bench/recv: kafka topic %s: %w", k.topic, err)
	}
	var n int64
	for _, p := range parts {
		c, err := kafka.DialLeader(ctx, "tcp", net.JoinHostPort(p.Leader.Host, strconv.Itoa(p.Leader.Port)), k.topic, p.ID)
		if err != nil {
			return 0, err
		}
		first, last, err := c.ReadOffsets()
		c.Close()
		if err != nil {
			return 0, err
		}
		n += last - first
	}
	return n, nil
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
