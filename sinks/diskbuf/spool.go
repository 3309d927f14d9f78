package diskbuf

import (
	"context"
	"errors"
	"sync/atomic"

	"wharf/message"
)

// Spool carries messages (message.Message) through a Buffer for a sink runner:
// producers Put messages (encoded with EncodeMessage), the runner's
// delivery loop Gets them back as pooled messages and Commits once the
// sink has accepted them.
//
// Concurrency: Put from any number of goroutines; Get, Commit and Rewind
// from the one delivery goroutine.
type Spool struct {
	b           *Buffer
	last        Position // after the last record Get returned
	undecodable atomic.Uint64
}

// NewSpool wraps b; the Spool does not own it (close b yourself).
func NewSpool(b *Buffer) *Spool { return &Spool{b: b} }

// Buffer returns the wrapped buffer (for Stats).
func (s *Spool) Buffer() *Buffer { return s.b }

var doneCtx = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// Put stores ms in order and returns how many it stored; the messages are
// only read (the caller keeps, and releases, its references). With block
// it waits for space when the buffer is full and OnFull is "block", until
// ctx is done; without block, or with OnFull "drop_newest", a full buffer
// stores no more. Running out of space (or of ctx while waiting for it)
// is not an error: n < len(ms) with a nil error, counted in
// Stats.DroppedFull. An error (ErrClosed, ErrUnwritable when the disk
// cannot be written and Put may not wait) is a failure to store. It
// allocates nothing.
func (s *Spool) Put(ctx context.Context, ms []*message.Message, block bool) (int, error) {
	if !block {
		ctx = doneCtx
	}
	n, err := s.b.AppendFunc(ctx, len(ms), func(dst []byte, i int) []byte { return EncodeMessage(dst, ms[i]) })
	if errors.Is(err, ErrFull) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		err = nil
	}
	return n, err
}

// Get waits for stored messages and appends up to max of them (and up to
// about maxBytes of encoded bytes, at least one) to dst, decoded into
// pooled messages with one reference each that the caller releases. A
// record that does not decode (written by an incompatible version) is
// skipped and counted in Undecodable. Errors are Next's.
func (s *Spool) Get(ctx context.Context, dst []*message.Message, max int, maxBytes int64) ([]*message.Message, error) {
	for {
		recs, err := s.b.Next(ctx, max, int(min(maxBytes, 1<<30)))
		if err != nil {
			return dst, err
		}
		n := len(dst)
		for _, r := range recs {
			m, err := DecodeMessage(r.Data)
			if err != nil {
				s.undecodable.Add(1)
				continue
			}
			dst = append(dst, m)
		}
		s.last = recs[len(recs)-1].Pos
		if len(dst) > n {
			return dst, nil
		}
	}
}

// Commit confirms every message Get has returned so far: they leave the
// buffer and are not replayed after a restart.
func (s *Spool) Commit() error {
	return s.b.Ack(s.last)
}

// Rewind makes Get return every uncommitted message again.
func (s *Spool) Rewind() {
	s.b.Rewind()
	s.last = Position{}
}

// Undecodable counts records Get skipped because they did not decode.
func (s *Spool) Undecodable() uint64 { return s.undecodable.Load() }
