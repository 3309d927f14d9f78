package sinks

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"wharf/internal/testenv"
	"wharf/message"
)

// ackRecorder counts Done calls by outcome.
type ackRecorder struct{ ok, failed atomic.Int32 }

func (a *ackRecorder) Done(ok bool) {
	if ok {
		a.ok.Add(1)
	} else {
		a.failed.Add(1)
	}
}

// The completion hook of relp_ack = "delivered": a message's Ack learns
// once, after the last holder released it, whether every sink delivered
// it; a drop anywhere (here: retries exhausted on one of two sinks) makes
// it false.
func TestAckAfterEverySinkConfirmed(t *testing.T) {
	good := NewRunner("good", &fakeSink{}, RunnerConfig{BatchSize: 10, BatchTimeout: time.Millisecond}.Resolved(), nil, quietLog())
	bad := NewRunner("bad", &fakeSink{fail: func(int) error { return errors.New("nope") }},
		RunnerConfig{BatchSize: 10, BatchTimeout: time.Millisecond, MaxRetries: 1, RetryBackoff: time.Millisecond}.Resolved(), nil, quietLog())
	good.Start()
	bad.Start()
	defer closeRunner(t, good, time.Second)
	defer closeRunner(t, bad, time.Second)

	var one, both ackRecorder
	m := message.New([]byte("to good only"))
	m.Ack = &one
	good.Enqueue(m, true)
	testenv.Eventually(t, "ack from one sink", func() bool { return one.ok.Load() == 1 })

	m = message.New([]byte("to both"))
	m.Ack = &both
	m.Retain(1)
	good.Enqueue(m, true)
	bad.Enqueue(m, true)
	testenv.Eventually(t, "failed ack", func() bool { return both.failed.Load() == 1 })
	if one.failed.Load() != 0 || both.ok.Load() != 0 {
		t.Fatalf("one %d/%d both %d/%d", one.ok.Load(), one.failed.Load(), both.ok.Load(), both.failed.Load())
	}

	// A message dropped by policy before any sink is confirmed by its
	// holder (the listener) and acknowledged.
	var policy ackRecorder
	m = message.New([]byte("no route"))
	m.Ack = &policy
	m.Confirm()
	m.Release()
	if policy.ok.Load() != 1 {
		t.Fatal("a confirmed message was not acknowledged")
	}
}

// Messages without an Ack pay nothing for the hook.
func TestReleaseWithoutAckAllocs(t *testing.T) {
	if n := testing.AllocsPerRun(1000, func() {
		m := message.New([]byte("<13>hello"))
		m.Retain(1)
		m.Confirm()
		m.Release()
		m.Release()
	}); n != 0 {
		t.Fatalf("%.1f allocations per message", n)
	}
}
