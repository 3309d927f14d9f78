package sinks

import (
	"context"
	"errors"
	"testing"

	"wharf/message"
)

// putSpool is a Spool whose Put stores everything and returns err.
type putSpool struct{ err error }

func (s *putSpool) Put(_ context.Context, ms []*message.Message, _ bool) (int, error) {
	return len(ms), s.err
}

func (s *putSpool) Get(ctx context.Context, dst []*message.Message, _ int, _ int64) ([]*message.Message, error) {
	<-ctx.Done()
	return dst, ctx.Err()
}

func (s *putSpool) Commit() error { return nil }

// A message the spool stored but could not make durable (a failed fsync
// under fsync = "always") is not confirmed: a sender waiting for
// durability (RELP relp_ack = "durable") hears no and sends it again.
func TestSpoolStoredWithoutDurabilityNotConfirmed(t *testing.T) {
	f := func(putErr error, wantOK bool) {
		t.Helper()
		r := NewRunner("s", &fakeSink{}, RunnerConfig{Spool: &putSpool{err: putErr}}.Resolved(), nil, quietLog())
		r.Start()
		defer closeRunner(t, r, 0)
		var a ackRecorder
		m := message.New([]byte("<13>hello"))
		m.Ack = &a
		if !r.Enqueue(m, true) {
			t.Fatal("not stored")
		}
		if ok := a.ok.Load() == 1; ok != wantOK || a.ok.Load()+a.failed.Load() != 1 {
			t.Fatalf("put error %v: ack ok %d failed %d, want ok = %v", putErr, a.ok.Load(), a.failed.Load(), wantOK)
		}
		if d := r.Stats().Dropped[DropSpoolError]; d != 0 {
			t.Fatalf("stored message counted as dropped: %d", d)
		}
	}
	f(nil, true)
	f(errors.New("diskbuf: fsync: input/output error"), false)
}
