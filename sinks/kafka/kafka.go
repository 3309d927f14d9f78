// Package kafka is wharf's Kafka sink: it produces each batch the runner
// hands it to one topic with segmentio/kafka-go's Writer, synchronously,
// and returns only when the brokers acknowledged every message at the
// configured required_acks.
//
// Batching is the runner's job (sinks.Runner: batch_size, batch_bytes,
// batch_timeout). The kafka-go Writer is configured so that one Write
// becomes one produce request per partition (more only if an encoding
// inflates a partition's share past batch_bytes) and leaves at once:
// its BatchSize and BatchBytes are the runner's limits, and its
// BatchTimeout is writerLinger, not kafka-go's 1 s default.
//
// Buffer lifetimes: Write encodes keys and values into an arena the sink
// owns, so no kafka-go structure ever points into a sinks.Message and
// the runner may release the batch as soon as Write returns. The arena is
// reused by the next Write, except after a failed or interrupted Write,
// when kafka-go may still hold it; then it is left to kafka-go and the
// garbage collector and a new one is started.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"wharf/conf"
	"wharf/sinks"
)

func init() { sinks.Register("kafka", New) }

const (
	// writerLinger is the kafka-go Writer's BatchTimeout. In synchronous
	// mode kafka-go holds a partition's partial batch until it is full or
	// this timer fires; the runner has already waited batch_timeout for the
	// batch, so waiting again would only add latency to every Write. The
	// timer cannot split a Write's messages for one partition: they are
	// all added under the partition lock the timer also needs.
	writerLinger = 50 * time.Microsecond
	// writerAttempts is how often kafka-go itself tries a produce request
	// before failing it. A second attempt rides over a leader change or a
	// just-created topic; beyond that the runner's retry with backoff
	// takes over.
	writerAttempts = 2
	// writerBackoff is kafka-go's wait before its own second attempt.
	writerBackoff = 50 * time.Millisecond
	// maxDialTimeout bounds one connect to a broker: a connection that
	// takes longer on a LAN is as good as down.
	maxDialTimeout = 5 * time.Second
	// metadataTTL is how stale the cached partition layout may get (kafka-go
	// randomizes the refresh below it). It also bounds how long a sink keeps
	// failing after the brokers came back.
	metadataTTL = 5 * time.Second
	// checkTimeout bounds Check when ctx has no earlier deadline.
	checkTimeout = 3 * time.Second
	// maxArenaFactor: an arena grown past this many times batch_bytes by
	// one unusual batch is dropped rather than kept for the next Write.
	maxArenaFactor = 4
)

// Sink produces messages to one Kafka topic.
//
// Concurrency: Write is called from one goroutine and never concurrently
// with itself or Close (the sinks.Sink contract). Check may be called
// from any goroutine at any time.
type Sink struct {
	name string
	opt  options
	tr   *kafkago.Transport
	w    *kafkago.Writer

	// Reused across Writes; see the package doc for their lifetime.
	arena []byte
	spans []recordSpan
	msgs  []kafkago.Message
	// rejected lists the batch indexes encode left out as too large.
	rejected []int
}

// recordSpan locates one record's key and value in the arena:
// key arena[k:v] (absent when !hasKey), value arena[v:end].
type recordSpan struct {
	k, v, end int
	hasKey    bool
}

// New builds a Kafka sink from its config section. It validates every
// option but does not touch the network: brokers that are down at start
// make Write fail (and the runner retry), not New.
func New(name string, cfg *conf.Sink) (sinks.Sink, error) {
	opt, err := parseOptions(name, cfg)
	if err != nil {
		return nil, err
	}
	tr := &kafkago.Transport{
		DialTimeout: min(opt.writeTimeout, maxDialTimeout),
		MetadataTTL: metadataTTL,
		// Only this topic's metadata: cheap on big clusters.
		MetadataTopics: []string{opt.topic},
		ClientID:       "wharf",
		TLS:            opt.tls,
		SASL:           opt.sasl,
	}
	w := &kafkago.Writer{
		Addr:         kafkago.TCP(opt.brokers...),
		Topic:        opt.topic,
		Balancer:     newBalancer(opt.balancer),
		Compression:  opt.compression,
		RequiredAcks: opt.acks,
		BatchSize:    opt.batchSize,
		BatchBytes:   opt.batchBytes,
		BatchTimeout: writerLinger,
		WriteTimeout: opt.writeTimeout,
		ReadTimeout:  opt.writeTimeout,
		MaxAttempts:  writerAttempts,
		// Both bounds set: kafka-go's defaults (100ms, 1s) would otherwise
		// apply to the one in-writer retry.
		WriteBackoffMin: writerBackoff,
		WriteBackoffMax: writerBackoff,
		// Like the Java producer: the broker's auto.create.topics.enable
		// decides whether a missing topic is created.
		AllowAutoTopicCreation: true,
		Transport:              tr,
	}
	return &Sink{name: name, opt: opt, tr: tr, w: w}, nil
}

// Write produces the batch and returns nil once the brokers acknowledged
// every message at required_acks ("none": once they were sent). On error
// some messages may have been written anyway; the runner retries the
// whole batch, so consumers see at-least-once delivery.
//
// Write gives up after write_timeout, or earlier when ctx is done. It does
// not keep references to the batch after it returns.
func (s *Sink) Write(ctx context.Context, batch []*sinks.Message) error {
	if len(batch) == 0 {
		return nil
	}
	msgs := s.encode(batch)
	var err error
	if len(msgs) > 0 {
		wctx, cancel := context.WithTimeout(ctx, s.opt.writeTimeout)
		err = s.w.WriteMessages(wctx, msgs...)
		cancel()
	}
	// Our []kafkago.Message is ours again (kafka-go copies the structs), but
	// only a clean return proves kafka-go is done with the arena bytes.
	if err != nil || cap(s.arena) > maxArenaFactor*int(s.opt.batchBytes) {
		s.arena = nil
	}
	if err != nil {
		// kafka-go keeps a failed metadata fetch, or a stale partition
		// leader, cached until its metadata TTL; dropping the connection
		// pool makes the runner's retry start from fresh connections and
		// metadata. In-flight requests keep their pool alive (refcounted).
		s.tr.CloseIdleConnections()
		return s.explain(ctx, err, len(batch))
	}
	if len(s.rejected) > 0 {
		return &sinks.RejectedError{Indexes: s.rejected, Err: fmt.Errorf(
			"sinks/kafka: sink %q: %d message(s) larger than batch_bytes %d (with Kafka's per-record overhead) cannot be produced; raise batch_bytes and the topic's max.message.bytes, or lower the frontend's max_message_size",
			s.name, len(s.rejected), s.opt.batchBytes)}
	}
	return nil
}

// recordOverhead bounds what kafka-go adds to key and value when it
// checks a message against BatchBytes (lengths, attributes, timestamp).
const recordOverhead = 64

// encode fills s.msgs from batch, copying keys and encoded values into
// the arena. It allocates only while the arena and slices grow.
func (s *Sink) encode(batch []*sinks.Message) []kafkago.Message {
	buf := s.arena[:0]
	spans := s.spans[:0]
	s.rejected = s.rejected[:0]
	for i, m := range batch {
		sp := recordSpan{k: len(buf)}
		if key := s.key(m); key != nil {
			buf = append(buf, key...)
			sp.hasKey = true
		}
		sp.v = len(buf)
		buf = s.opt.encoding.Append(buf, m)
		sp.end = len(buf)
		if sp.end-sp.k+recordOverhead > int(s.opt.batchBytes) {
			// kafka-go would fail the whole batch for it, forever.
			s.rejected = append(s.rejected, i)
			buf = buf[:sp.k]
			continue
		}
		spans = append(spans, sp)
	}
	// Slice the arena only now: appends above may have moved it.
	msgs := s.msgs[:0]
	for _, sp := range spans {
		km := kafkago.Message{Value: buf[sp.v:sp.end:sp.end]}
		if sp.hasKey {
			km.Key = buf[sp.k:sp.v:sp.v]
		}
		msgs = append(msgs, km)
	}
	s.arena, s.spans, s.msgs = buf, spans, msgs
	return msgs
}

// key returns the configured key field of m, nil when unset or absent
// (a nil key is a Kafka null key; the hash balancer then spreads such
// messages at random, as the Java client does).
func (s *Sink) key(m *sinks.Message) []byte {
	switch s.opt.key {
	case keyHostname:
		return m.Field(m.Hostname)
	case keyAppName:
		return m.Field(m.AppName)
	}
	return nil
}

// Check is a readiness probe: it asks each broker in turn for the topic's
// metadata over a fresh connection and returns nil at the first answer.
// It takes at most checkTimeout (3 s), or less when ctx ends sooner. A
// topic that does not exist yet is not an error: the first Write creates
// it when the broker allows auto-creation. Check never blocks Write and
// may run concurrently with it. The runner may call it before the first
// Write or to decide when to retry; it is optional.
func (s *Sink) Check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	var errs []string
	for _, b := range s.opt.brokers {
		err := s.checkBroker(ctx, b)
		if err == nil {
			return nil
		}
		errs = append(errs, err.Error())
		if ctx.Err() != nil {
			break
		}
	}
	return fmt.Errorf("sinks/kafka: sink %q: no broker answered a metadata request (%s); check brokers = %s and that Kafka is running",
		s.name, strings.Join(errs, "; "), s.brokerList())
}

func (s *Sink) checkBroker(ctx context.Context, broker string) error {
	tr := &kafkago.Transport{DialTimeout: min(s.opt.writeTimeout, checkTimeout), ClientID: "wharf-check", TLS: s.opt.tls, SASL: s.opt.sasl}
	defer tr.CloseIdleConnections()
	c := &kafkago.Client{Addr: kafkago.TCP(broker), Transport: tr}
	res, err := c.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{s.opt.topic}})
	if err != nil {
		return fmt.Errorf("broker %s: %v", broker, unwrapKafkaGo(err))
	}
	for _, t := range res.Topics {
		if t.Name == s.opt.topic && t.Error != nil && !errors.Is(t.Error, kafkago.UnknownTopicOrPartition) {
			return fmt.Errorf("broker %s: topic %q: %v", broker, s.opt.topic, t.Error)
		}
	}
	return nil
}

// Close flushes what kafka-go still holds, waits for it, and closes the
// connections. Called once, after the last Write.
func (s *Sink) Close() error {
	err := s.w.Close()
	s.tr.CloseIdleConnections()
	s.arena, s.spans, s.msgs = nil, nil, nil
	if err != nil {
		return fmt.Errorf("sinks/kafka: sink %q: closing the writer: %w", s.name, err)
	}
	return nil
}

// explain turns a kafka-go error into one that says what failed and what
// to do. The original error stays wrapped for errors.Is/As.
func (s *Sink) explain(ctx context.Context, err error, n int) error {
	prefix := fmt.Sprintf("sinks/kafka: sink %q: topic %q", s.name, s.opt.topic)

	var werrs kafkago.WriteErrors
	if errors.As(err, &werrs) {
		failed, first := 0, error(nil)
		for _, e := range werrs {
			if e != nil {
				failed++
				if first == nil {
					first = e
				}
			}
		}
		return &writeError{fmt.Sprintf("%s: %d of %d messages not acknowledged: %s", prefix, failed, n, s.hint(ctx, first)), err}
	}
	return &writeError{prefix + ": " + s.hint(ctx, err), err}
}

// writeError is a readable message that still wraps kafka-go's error (the
// hint already quotes the cause, so Error does not repeat it).
type writeError struct {
	msg string
	err error
}

func (e *writeError) Error() string { return e.msg }
func (e *writeError) Unwrap() error { return e.err }

// hint describes one underlying error and the likely fix.
func (s *Sink) hint(ctx context.Context, err error) string {
	var tooLarge kafkago.MessageTooLargeError
	var kerr kafkago.Error
	var netErr net.Error
	switch {
	case ctx.Err() != nil:
		return "write interrupted (" + ctx.Err().Error() + ")"
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("no acknowledgement within write_timeout %s; check that Kafka at %s is healthy, or raise write_timeout",
			s.opt.writeTimeout, s.brokerList())
	case errors.As(err, &tooLarge):
		return fmt.Sprintf("a message of %d bytes is larger than batch_bytes %d; raise batch_bytes (and the topic's max.message.bytes) or lower the frontend's max_message_size",
			len(tooLarge.Message.Key)+len(tooLarge.Message.Value), s.opt.batchBytes)
	case errors.Is(err, kafkago.UnknownTopicOrPartition):
		return "topic does not exist (yet); a broker with auto.create.topics.enable=true creates it and a retry succeeds, otherwise create the topic"
	case errors.As(err, &kerr):
		return fmt.Sprintf("broker refused the produce request: %s (%s)", kerr.Title(), kerr.Description())
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF), errors.Is(err, syscall.EPIPE):
		return fmt.Sprintf("connection to brokers %s lost mid-request (%v); check that Kafka is running (a restarting broker clears on retry)",
			strings.Join(s.opt.brokers, ","), unwrapKafkaGo(err))
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.As(err, &netErr):
		return fmt.Sprintf("brokers %s unreachable: %v; check brokers = %s and that Kafka is running",
			strings.Join(s.opt.brokers, ","), unwrapKafkaGo(err), s.brokerList())
	}
	return fmt.Sprintf("produce to %s failed: %v", s.brokerList(), err)
}

// brokerList renders the brokers as they are written in the config.
func (s *Sink) brokerList() string {
	return `["` + strings.Join(s.opt.brokers, `", "`) + `"]`
}

// unwrapKafkaGo strips kafka-go's "kafka.(*Client).Metadata: " style
// prefixes, keeping the cause (e.g. "dial tcp 127.0.0.1:1: connect:
// connection refused").
func unwrapKafkaGo(err error) error {
	var op *net.OpError
	if errors.As(err, &op) {
		return op
	}
	return err
}

var (
	_ sinks.Sink    = (*Sink)(nil)
	_ sinks.Checker = (*Sink)(nil)
)
