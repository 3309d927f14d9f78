// Package kafka is wharf's Kafka sink: it produces each batch the runner
// hands it to one topic with segmentio/kafka-go's low-level client
// (Client.Produce over a Transport), synchronously, and returns only when
// the brokers acknowledged every message at the configured required_acks.
//
// Batching is the runner's job (sinks.Runner: batch_size, batch_bytes,
// batch_timeout). A Write splits its batch by partition with the
// configured balancer and sends one produce request per partition, the
// partitions concurrently; a partition gets more than one request, sent
// one after the other, only when its share with Kafka's record framing is
// larger than batch_bytes. The Transport routes each request to the
// partition's leader. The partition count is cached by the sink and
// looked up again (in the Transport's metadata cache) every metadataTTL
// and after any failed Write.
//
// Buffer lifetimes: Write encodes keys and values into an arena the sink
// owns, and kafka-go reads them through the sink's record readers
// (batchState), so no kafka-go structure ever points into a
// message.Message and the runner may release the batch as soon as Write
// returns. The arena, spans and readers are reused by the next Write,
// except after a failed or interrupted Write, when kafka-go may still be
// encoding a request abandoned at its deadline; then they are left to
// kafka-go and the garbage collector and new ones are started.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	metadataAPI "github.com/segmentio/kafka-go/protocol/metadata"

	"wharf/conf"
	"wharf/message"
	"wharf/sinks"
)

const (
	// produceAttempts is how often the sink itself tries a produce request
	// before failing the Write (kafka-go's Writer did the same with
	// MaxAttempts 2). A second attempt rides over a leader change or a
	// just-created topic; beyond that the runner's retry with backoff
	// takes over.
	produceAttempts = 2
	// produceBackoff is the wait before the second attempt.
	produceBackoff = 50 * time.Millisecond
	// maxDialTimeout bounds one connect to a broker: a connection that
	// takes longer on a LAN is as good as down.
	maxDialTimeout = 5 * time.Second
	// metadataTTL is how stale the Transport's cached partition layout may
	// get (kafka-go randomizes the refresh below it), and how long the sink
	// trusts the partition count it read from it. It also bounds how long
	// a sink keeps failing after the brokers came back.
	metadataTTL = 5 * time.Second
	// checkTimeout bounds Check when ctx has no earlier deadline.
	checkTimeout = 3 * time.Second
	// maxArenaFactor: an arena grown past this many times batch_bytes by
	// one unusual batch is dropped rather than kept for the next Write.
	maxArenaFactor = 4
	// recordOverhead bounds what Kafka adds to a record's key and value in
	// a record batch holding only that record (batch header and varint
	// framing); a message that does not fit batch_bytes with it is
	// rejected.
	recordOverhead = recordBatchOverhead + 23
)

// Sink produces messages to one Kafka topic.
//
// Concurrency: Write is called from one goroutine and never concurrently
// with itself or Close (the sinks.Sink contract); it runs one goroutine
// per partition while it produces. Check may be called from any
// goroutine at any time.
type Sink struct {
	name   string
	opt    options
	tr     *kafkago.Transport
	client *kafkago.Client
	bal    kafkago.Balancer
	topics []string // {opt.topic}, for metadata requests

	// The topic's partition count, 0 when unknown, read at partitionsAt.
	partitions   int
	partitionsAt time.Time
	partList     []int // 0..partitions-1, the balancer's argument
	counts       []int // records per partition in this Write

	// st is the reused per-Write state; see the package doc for its
	// lifetime. nil after a failed Write.
	st *batchState
	// rejected lists the batch indexes encode left out as too large.
	rejected []int

	// maxRequest bounds a produce request's record set: batch_bytes, or
	// less once a broker refused a request as too large (runJob).
	// shrunkLogged is set once that was logged.
	maxRequest   atomic.Int64
	shrunkLogged atomic.Bool
	log          *slog.Logger

	// requests and records count produce requests (each attempt) and the
	// records they carried, for tests.
	requests, records atomic.Int64
}

// New builds a Kafka sink from its config section, with defaults applied
// and validated (sinks.New does both). It does not touch the network:
// brokers that are down at start make Write fail (and the runner retry),
// not New.
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
	client := &kafkago.Client{
		Addr:      kafkago.TCP(opt.brokers...),
		Transport: tr,
		// The broker is asked to answer within half of it (kafka-go halves
		// a Client's timeout for the produce request's own timeout).
		Timeout: opt.writeTimeout,
	}
	s := &Sink{name: name, opt: opt, tr: tr, client: client,
		bal: newBalancer(opt.balancer), topics: []string{opt.topic},
		log: slog.Default().With("sink", name)}
	s.maxRequest.Store(opt.batchBytes)
	return s, nil
}

// Write produces the batch and returns nil once the brokers acknowledged
// every message at required_acks ("none": once they were sent). On error
// some messages may have been written anyway; the runner retries the
// whole batch, so consumers see at-least-once delivery.
//
// Write gives up after write_timeout, or earlier when ctx is done. It does
// not keep references to the batch after it returns.
func (s *Sink) Write(ctx context.Context, batch []*message.Message) error {
	if len(batch) == 0 {
		return nil
	}
	st := s.encode(batch)
	if len(st.spans) > 0 {
		wctx, cancel := context.WithTimeout(ctx, s.opt.writeTimeout)
		failed, err := s.produce(wctx, st)
		cancel()
		if err != nil {
			// kafka-go may still be encoding from st (see the package doc).
			s.st = nil
			// kafka-go keeps a failed metadata fetch, or a stale partition
			// leader, cached until its metadata TTL; dropping the
			// connection pool (and the sink's partition count) makes the
			// runner's retry start from fresh connections and metadata.
			// In-flight requests keep their pool alive (refcounted).
			s.partitions = 0
			s.tr.CloseIdleConnections()
			return s.explain(ctx, err, failed, len(batch))
		}
	}
	if cap(st.arena) > maxArenaFactor*int(s.opt.batchBytes) {
		st.arena = nil
	}
	if len(s.rejected) > 0 {
		return &sinks.RejectedError{Indexes: s.rejected, Err: fmt.Errorf(
			"sinks/kafka: sink %q: %d message(s) larger than batch_bytes %d (with Kafka's per-record overhead), or refused by the broker as too large even alone, cannot be produced; raise batch_bytes and the topic's max.message.bytes, or lower the frontend's max_message_size",
			s.name, len(s.rejected), s.opt.batchBytes)}
	}
	return nil
}

// encode fills the Write state's arena and spans from batch, copying keys
// and encoded values into the arena. It allocates only while the arena
// and slices grow (or once after a failed Write).
func (s *Sink) encode(batch []*message.Message) *batchState {
	if s.st == nil {
		s.st = &batchState{}
	}
	st := s.st
	buf := st.arena[:0]
	spans := st.spans[:0]
	s.rejected = s.rejected[:0]
	for i, m := range batch {
		sp := recordSpan{k: len(buf), msg: int32(i)}
		if key := s.key(m); key != nil {
			buf = append(buf, key...)
			sp.hasKey = true
		}
		sp.v = len(buf)
		buf = s.opt.encoding.Append(buf, m)
		sp.end = len(buf)
		if sp.end-sp.k+recordOverhead > int(s.opt.batchBytes) {
			// The broker would refuse the whole request for it, forever.
			s.rejected = append(s.rejected, i)
			buf = buf[:sp.k]
			continue
		}
		spans = append(spans, sp)
	}
	st.arena, st.spans = buf, spans
	return st
}

// record returns span i's key (nil when absent) and value.
func (st *batchState) record(i int) (key, value []byte) {
	sp := st.spans[i]
	if sp.hasKey {
		key = st.arena[sp.k:sp.v:sp.v]
	}
	return key, st.arena[sp.v:sp.end:sp.end]
}

// key returns the configured key field of m, nil when unset or absent
// (a nil key is a Kafka null key; the hash balancer then spreads such
// messages at random, as the Java client does).
func (s *Sink) key(m *message.Message) []byte {
	switch s.opt.key {
	case keyHostname:
		return m.Field(m.Hostname)
	case keyAppName:
		return m.Field(m.AppName)
	}
	return nil
}

// produce sends st's records and waits for every partition's requests. It
// returns how many records were not acknowledged and the first error.
func (s *Sink) produce(ctx context.Context, st *batchState) (failed int, err error) {
	n, err := s.partitionCount(ctx)
	if err != nil {
		return 0, err
	}
	s.assign(st, n)
	jobs := st.jobs
	if len(jobs) == 1 {
		s.runJob(ctx, st, &jobs[0])
	} else {
		var wg sync.WaitGroup
		for i := 1; i < len(jobs); i++ {
			wg.Add(1)
			go func(j *produceJob) {
				defer wg.Done()
				s.runJob(ctx, st, j)
			}(&jobs[i])
		}
		s.runJob(ctx, st, &jobs[0])
		wg.Wait()
	}
	for i := range jobs {
		j := &jobs[i]
		if j.err != nil {
			failed += j.failed
			if err == nil {
				err = j.err
			}
		}
		s.rejected = append(s.rejected, j.rejected...)
	}
	slices.Sort(s.rejected)
	return failed, err
}

// partitionCount returns the topic's partition count: the cached one, or
// after metadataTTL (or a failed Write) the one in the Transport's
// metadata cache. Like the Java producer, a topic missing there is asked
// for with auto-creation allowed, so the broker's auto.create.topics.enable
// decides whether it is created.
func (s *Sink) partitionCount(ctx context.Context) (int, error) {
	if s.partitions > 0 && time.Since(s.partitionsAt) < metadataTTL {
		return s.partitions, nil
	}
	r, err := s.tr.RoundTrip(ctx, s.client.Addr, &metadataAPI.Request{TopicNames: s.topics, AllowAutoTopicCreation: true})
	if err != nil {
		return 0, err
	}
	for _, t := range r.(*metadataAPI.Response).Topics {
		if t.Name != s.opt.topic {
			continue
		}
		if t.ErrorCode != 0 {
			return 0, kafkago.Error(t.ErrorCode)
		}
		if len(t.Partitions) == 0 {
			break
		}
		s.partitions, s.partitionsAt = len(t.Partitions), time.Now()
		for len(s.partList) < s.partitions {
			s.partList = append(s.partList, len(s.partList))
		}
		return s.partitions, nil
	}
	return 0, kafkago.UnknownTopicOrPartition
}

// assign picks each record's partition with the balancer and groups the
// records into one job per partition, batch order kept within each.
func (s *Sink) assign(st *batchState, n int) {
	if cap(s.counts) < n {
		s.counts = make([]int, n)
	}
	counts := s.counts[:n]
	clear(counts)
	spans := st.spans
	if n == 1 {
		for i := range spans {
			spans[i].part = 0
		}
		counts[0] = len(spans)
	} else {
		parts := s.partList[:n]
		for i := range spans {
			sp := &spans[i]
			var msg kafkago.Message
			msg.Key, msg.Value = st.record(i)
			p := s.bal.Balance(msg, parts...)
			if p < 0 || p >= n { // not from kafka-go's balancers
				p = 0
			}
			sp.part = int32(p)
			counts[p]++
		}
	}
	// Counting sort of span indexes by partition; counts become the
	// partitions' next free slots in order.
	if cap(st.order) < len(spans) {
		st.order = make([]int32, len(spans))
	}
	order := st.order[:len(spans)]
	jobs := st.jobs[:0]
	start := 0
	for p, c := range counts {
		if c == 0 {
			continue
		}
		jobs = append(jobs, produceJob{partition: p, idx: order[start : start+c]})
		counts[p] = start
		start += c
	}
	for i := range spans {
		p := spans[i].part
		order[counts[p]] = int32(i)
		counts[p]++
	}
	st.order, st.jobs = order, jobs
}

// runJob produces one partition's records in requests of at most
// s.maxRequest bytes (record framing included) and records the outcome
// in j.
//
// A broker refuses a request larger than the topic's max.message.bytes
// (MESSAGE_TOO_LARGE) and always will: a batch_bytes above it would fail
// every Write. So a refused request is split: the sink halves maxRequest
// (for every later Write too, and says so once) and sends the records
// again in smaller requests; a record refused alone is rejected for good
// (j.rejected: the runner counts it and moves on), the rest goes on.
func (s *Sink) runJob(ctx context.Context, st *batchState, j *produceJob) {
	j.rejected = j.rejected[:0]
	for idx := j.idx; len(idx) > 0; {
		limit := int(s.maxRequest.Load()) - recordBatchOverhead
		n, size := 0, 0
		for n < len(idx) {
			sz := st.spans[idx[n]].size(n)
			if n > 0 && size+sz > limit {
				break
			}
			size += sz
			n++
		}
		err := s.produceRequest(ctx, st, j, idx[:n])
		switch {
		case err == nil:
			idx = idx[n:]
		case tooLarge(err) && n > 1:
			s.shrink(size+recordBatchOverhead, err)
		case tooLarge(err):
			j.rejected = append(j.rejected, int(st.spans[idx[0]].msg))
			idx = idx[1:]
		default:
			j.failed, j.err = len(idx), err
			return
		}
	}
}

// tooLarge reports whether the broker refused a request for its size.
func tooLarge(err error) bool {
	return errors.Is(err, kafkago.MessageSizeTooLarge) || errors.Is(err, kafkago.RecordListTooLarge)
}

// shrink lowers maxRequest below a refused request of size bytes (to half
// of it) and logs the first time.
func (s *Sink) shrink(size int, err error) {
	next := int64(size / 2)
	for {
		cur := s.maxRequest.Load()
		if next >= cur {
			return // another partition's job shrank it already
		}
		if s.maxRequest.CompareAndSwap(cur, next) {
			break
		}
	}
	if s.shrunkLogged.CompareAndSwap(false, true) {
		s.log.Warn(fmt.Sprintf("sinks/kafka: sink %q: the broker refused a produce request of %d bytes as too large (%v); sending smaller requests from now on, halved until the broker takes them (next: at most %d bytes). Set batch_bytes below the topic's max.message.bytes to avoid the refused requests.",
			s.name, size, unwrapKafkaGo(err), next))
	}
}

// produceRequest sends records idx of one partition in one produce
// request, and once more after produceBackoff when the first attempt
// failed with an error worth retrying.
func (s *Sink) produceRequest(ctx context.Context, st *batchState, j *produceJob, idx []int32) error {
	req := kafkago.ProduceRequest{
		Topic:        s.opt.topic,
		Partition:    j.partition,
		RequiredAcks: s.opt.acks,
		Compression:  s.opt.compression,
		Records:      &j.rd,
	}
	for attempt := 1; ; attempt++ {
		// A failed attempt that was not interrupted returned after kafka-go
		// was done with the reader, so rewinding it is safe.
		j.rd.reset(st.arena, st.spans, idx)
		s.requests.Add(1)
		s.records.Add(int64(len(idx)))
		res, err := s.client.Produce(ctx, &req)
		if err == nil && res != nil {
			err = responseError(res)
		}
		if err == nil {
			return nil
		}
		if attempt >= produceAttempts || ctx.Err() != nil || !retryable(err) {
			return err
		}
		t := time.NewTimer(produceBackoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
	}
}

// responseError is the partition's error in a produce response, with the
// broker's first per-record complaint when it gave any.
func responseError(res *kafkago.ProduceResponse) error {
	if res.Error == nil && len(res.RecordErrors) == 0 {
		return nil
	}
	first := -1
	for i := range res.RecordErrors {
		if first < 0 || i < first {
			first = i
		}
	}
	switch {
	case first < 0:
		return res.Error
	case res.Error == nil:
		return fmt.Errorf("record %d of the request: %w", first, res.RecordErrors[first])
	}
	return fmt.Errorf("%w (record %d of the request: %v)", res.Error, first, res.RecordErrors[first])
}

// retryable reports whether a produce error may clear on an immediate
// second attempt: the errors kafka-go's Writer retried (Kafka errors
// marked retriable, temporary and transient network errors).
func retryable(err error) bool {
	var temp interface{ Temporary() bool }
	if errors.As(err, &temp) && temp.Temporary() {
		return true
	}
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
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

// Close closes the connections. Called once, after the last Write, so
// no request of the sink's is in flight except those a failed Write
// abandoned at its deadline.
func (s *Sink) Close() error {
	s.tr.CloseIdleConnections()
	s.st, s.rejected = nil, nil
	return nil
}

// explain turns a kafka-go error into one that says what failed and what
// to do. failed counts the records not acknowledged (0: the Write failed
// before producing, e.g. no metadata). The original error stays wrapped
// for errors.Is/As.
func (s *Sink) explain(ctx context.Context, err error, failed, n int) error {
	prefix := fmt.Sprintf("sinks/kafka: sink %q: topic %q", s.name, s.opt.topic)
	if failed > 0 {
		return &writeError{fmt.Sprintf("%s: %d of %d messages not acknowledged: %s", prefix, failed, n, s.hint(ctx, err)), err}
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
	var kerr kafkago.Error
	var netErr net.Error
	switch {
	case ctx.Err() != nil:
		return "write interrupted (" + ctx.Err().Error() + ")"
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("no acknowledgement within write_timeout %s; check that Kafka at %s is healthy, or raise write_timeout",
			s.opt.writeTimeout, s.brokerList())
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
