package kafka

import (
	"io"

	kafkago "github.com/segmentio/kafka-go"
)

// batchState is everything of one Write that kafka-go reads while it
// encodes produce requests: the arena of keys and values, the record spans
// into it and the per-partition record readers. A Sink reuses it for the
// next Write after a clean return; after a failed Write kafka-go may still
// be encoding from it (a request abandoned at a deadline), so the Sink
// drops it and starts a new one.
type batchState struct {
	arena []byte
	spans []recordSpan
	// order holds span indexes grouped by partition, batch order within a
	// partition; jobs[i].idx are sub-slices of it.
	order []int32
	jobs  []produceJob
}

// recordSpan locates one record's key and value in the arena:
// key arena[k:v] (absent when !hasKey), value arena[v:end].
type recordSpan struct {
	k, v, end int
	part      int32
	msg       int32 // index of the message in the Write's batch
	hasKey    bool
}

// size bounds the record's encoded size in a v2 record batch: key, value
// and the varint framing (length, attributes, timestamp delta 0, offset
// delta, key and value lengths, header count).
func (sp recordSpan) size(offsetDelta int) int {
	k, v := sp.v-sp.k, sp.end-sp.v
	n := 1 + 1 + varintLen(offsetDelta) + varintLen(v) + v + 1 // attrs, ts delta, offset delta, value, headers
	if sp.hasKey {
		n += varintLen(k) + k
	} else {
		n++ // -1: null key
	}
	return n + varintLen(n)
}

// varintLen is the length of n as a zigzag varint (n >= 0).
func varintLen(n int) int {
	u := uint64(n) << 1
	l := 1
	for u >= 0x80 {
		u >>= 7
		l++
	}
	return l
}

// recordBatchOverhead is the v2 record batch header: what a produce
// request's record set adds once to its records.
const recordBatchOverhead = 61

// produceJob is one partition's share of a Write: its records are
// produced in order, in one request or, when they exceed batch_bytes, in
// several sent one after the other.
type produceJob struct {
	partition int
	idx       []int32
	rd        recordReader
	// Set by the job: how many of its records were not acknowledged and
	// the first error; rejected are the batch indexes of records the
	// broker refused as too large even alone.
	failed   int
	err      error
	rejected []int
}

// recordReader is a kafkago.RecordReader over some of the batch's spans.
// ReadRecord returns the same Record each time, its Key and Value pointing
// at the reader's own byteSeq values, which point into the arena: nothing
// is allocated per record.
type recordReader struct {
	arena []byte
	spans []recordSpan
	idx   []int32 // the records of the current request
	next  int
	rec   kafkago.Record
	key   byteSeq
	value byteSeq
}

// reset makes r read the records idx from the start.
func (r *recordReader) reset(arena []byte, spans []recordSpan, idx []int32) {
	r.arena, r.spans, r.idx, r.next = arena, spans, idx, 0
}

// ReadRecord implements kafkago.RecordReader. The Record is valid until the
// next call.
func (r *recordReader) ReadRecord() (*kafkago.Record, error) {
	if r.next >= len(r.idx) {
		return nil, io.EOF
	}
	sp := &r.spans[r.idx[r.next]]
	r.next++
	r.value.b, r.value.off = r.arena[sp.v:sp.end:sp.end], 0
	r.rec.Value = &r.value
	if sp.hasKey {
		r.key.b, r.key.off = r.arena[sp.k:sp.v:sp.v], 0
		r.rec.Key = &r.key
	} else {
		r.rec.Key = nil // a Kafka null key
	}
	return &r.rec, nil
}

// byteSeq is a kafka-go protocol.Bytes over a slice of the arena. WriteTo
// lets kafka-go's io.Copy write it without a copy buffer.
type byteSeq struct {
	b   []byte
	off int
}

func (s *byteSeq) Len() int { return len(s.b) - s.off }

func (s *byteSeq) Read(p []byte) (int, error) {
	if s.off >= len(s.b) {
		return 0, io.EOF
	}
	n := copy(p, s.b[s.off:])
	s.off += n
	return n, nil
}

func (s *byteSeq) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(s.b[s.off:])
	s.off += n
	return int64(n), err
}

// Close is a no-op: the arena belongs to the Sink.
func (s *byteSeq) Close() error { return nil }

var (
	_ kafkago.RecordReader = (*recordReader)(nil)
	_ io.WriterTo          = (*byteSeq)(nil)
)
