package upstream

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"wharf/internal/testenv"
)

// queueBackend is a backend whose servers are all at maxconn 1, with
// queue_timeout qt, and the picks that fill them.
func queueBackend(t *testing.T, qt time.Duration, servers ...string) (*Backend, []*Server) {
	t.Helper()
	b := pool(t, "roundrobin", servers...)
	b.queueTimeout = qt
	var held []*Server
	for range servers {
		s, err := b.acquire(context.Background(), ClientKey(netip.Addr{}), 10)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, s)
	}
	return b, held
}

// queued starts an acquire in the background once the queue holds n-1
// (so the waiters queue in the order started) and returns its result.
func queued(ctx context.Context, t *testing.T, b *Backend, maxQueue int) <-chan error {
	t.Helper()
	want := b.Queued() + 1
	done := make(chan error, 1)
	go func() {
		s, err := b.acquire(ctx, ClientKey(netip.Addr{}), maxQueue)
		if err == nil {
			defer s.Release()
		}
		done <- err
	}()
	deadline := time.Now().Add(2 * time.Second)
	for b.Queued() < want {
		if time.Now().After(deadline) {
			t.Fatalf("acquire did not queue (queued %d, want %d)", b.Queued(), want)
		}
		time.Sleep(time.Millisecond)
	}
	return done
}

func TestQueueFIFO(t *testing.T) {
	b, held := queueBackend(t, 10*time.Second, "a:1:1")
	// Three waiters; each, once served, holds its slot until told.
	type result struct {
		i int
		s *Server
	}
	order := make(chan result, 3)
	release := make(chan struct{})
	for i := range 3 {
		want := b.Queued() + 1
		go func() {
			s, err := b.acquire(context.Background(), ClientKey(netip.Addr{}), 10)
			if err != nil {
				t.Errorf("waiter %d: %v", i, err)
				return
			}
			order <- result{i, s}
			<-release
			s.Release()
		}()
		for b.Queued() < want {
			time.Sleep(time.Millisecond)
		}
	}
	// The held slot, then each waiter's, goes to the next in line.
	held[0].Release()
	for want := range 3 {
		r := <-order
		if r.i != want {
			t.Fatalf("served waiter %d, want %d (first come, first served)", r.i, want)
		}
		if n := r.s.Active(); n != 1 {
			t.Fatalf("server active %d, want 1 (maxconn)", n)
		}
		release <- struct{}{}
	}
	if b.Queued() != 0 {
		t.Errorf("queued %d after all served", b.Queued())
	}
}

func TestQueueBounds(t *testing.T) {
	b, held := queueBackend(t, 200*time.Millisecond, "a:1:1", "b:1:1")
	// maxQueue 0: no queue at all, as before queueing existed.
	if _, err := b.acquire(context.Background(), ClientKey(netip.Addr{}), 0); !errors.Is(err, ErrNoServer) {
		t.Errorf("maxQueue 0: %v, want ErrNoServer", err)
	}
	// One may wait; the second finds the queue full at once.
	first := queued(context.Background(), t, b, 1)
	if _, err := b.acquire(context.Background(), ClientKey(netip.Addr{}), 1); !errors.Is(err, ErrQueueFull) {
		t.Errorf("second waiter with maxQueue 1: %v, want ErrQueueFull", err)
	}
	start := time.Now()
	if err := <-first; !errors.Is(err, ErrQueueTimeout) {
		t.Errorf("waiter: %v, want ErrQueueTimeout", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("queue timeout took %v, want about 200ms", d)
	}
	// A cancelled context (forced shutdown) ends the wait.
	ctx, cancel := context.WithCancel(context.Background())
	w := queued(ctx, t, b, 5)
	cancel()
	if err := <-w; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled waiter: %v, want context.Canceled", err)
	}
	// With no server up, waiting cannot help: refused at once.
	for _, s := range b.servers {
		s.up.Store(false)
	}
	if _, err := b.acquire(context.Background(), ClientKey(netip.Addr{}), 5); !errors.Is(err, ErrNoServer) {
		t.Errorf("no server up: %v, want ErrNoServer", err)
	}
	if b.Queued() != 0 || b.queue.Len() != 0 {
		t.Errorf("queue holds %d (%d) after every waiter left", b.Queued(), b.queue.Len())
	}
	for _, s := range held {
		s.Release()
	}
}

// A server that comes back (admin ready, health) serves the queue, not
// only a Release.
func TestQueueServedByServerBack(t *testing.T) {
	b, held := queueBackend(t, 10*time.Second, "a:1:1", "b:1:1")
	b.server("b").SetState(StateMaint)
	held[1].Release() // b is free but in maint: no use
	w := queued(context.Background(), t, b, 5)
	select {
	case err := <-w:
		t.Fatalf("waiter served by a server in maint: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	b.server("b").SetState(StateReady)
	select {
	case err := <-w:
		if err != nil {
			t.Fatalf("waiter: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("server back in ready did not serve the queue")
	}
	held[0].Release()
}

// A waiter is given the server its key picks (an http request's URI or
// header hash on a "hash" backend), not one by the client address; and
// TryAcquire (the event loops' pick) neither queues nor overtakes a
// waiter.
func TestQueueKeyAndTryAcquire(t *testing.T) {
	b := pool(t, "hash", "a:1:1", "b:1:1")
	b.queueTimeout = 10 * time.Second
	// A key each server owns, as the ring says with both eligible.
	keys := map[*Server]uint64{}
	for k := range 1000 {
		key := HashBytes([]byte{byte(k), byte(k >> 8)})
		keys[b.ring.lookup(key, nil)] = key
	}
	if len(keys) != 2 {
		t.Fatalf("keys for %d servers, want 2", len(keys))
	}
	var held []*Server
	for range 2 {
		s := b.TryAcquire(RoundRobinKey())
		if s == nil {
			t.Fatal("TryAcquire with servers free: nil")
		}
		held = append(held, s)
	}
	for _, owner := range b.servers {
		done := make(chan *Server, 1)
		go func() {
			s, err := b.Acquire(context.Background(), HashKey(keys[owner]), 5)
			if err != nil {
				t.Error(err)
			}
			done <- s
		}()
		testenv.EventuallyWithin(t, 2*time.Second, "waiter queued", func() bool { return b.Queued() == 1 })
		if s := b.TryAcquire(ClientKey(netip.Addr{})); s != nil || b.Queued() != 1 {
			t.Fatalf("TryAcquire with every server full: %v (queued %d), want nil and no wait", s, b.Queued())
		}
		// Free both slots at once (maint, release, ready in one dispatch):
		// the waiter takes the one its key owns.
		for _, s := range held {
			s.SetState(StateMaint)
			s.Release()
		}
		b.mu.Lock()
		for _, s := range b.servers {
			s.admin.Store(uint32(StateReady))
		}
		b.dispatch()
		b.mu.Unlock()
		got := <-done
		if got != owner {
			t.Errorf("waiter with %s's key got %s", owner.Name, got.Name)
		}
		other := b.TryAcquire(RoundRobinKey())
		if other == nil || other == got {
			t.Fatalf("TryAcquire with one server free: %v", other)
		}
		held = []*Server{got, other}
	}
	for _, s := range held {
		s.Release()
	}
}
