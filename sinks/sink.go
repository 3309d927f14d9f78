// Package sinks holds the message type every stage shares, the small
// contract every output implements, the registry that builds outputs by
// type name, and the Runner that sits in front of each output owning its
// queue, batching, retries and counters.
//
// Sinks stay simple: a Sink only knows how to deliver a batch. Everything
// about queueing and retrying lives in the Runner.
package sinks

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"wharf/conf"
	"wharf/message"
)

// Sink delivers batches of messages to one destination.
//
// Concurrency: the Runner calls Write from a single goroutine; Write is
// never concurrent with itself or with Close. The batch slice and the
// messages in it are only valid during the call: a Sink that keeps bytes
// beyond Write must copy them.
type Sink interface {
	// Write delivers the batch. It returns nil when the destination has
	// accepted every message (Kafka: acknowledged at the configured acks;
	// TCP: written and flushed). On error the Runner retries the whole
	// batch with backoff, so Write should be safe to repeat (at-least-once).
	// Write must give up when ctx is done.
	Write(ctx context.Context, batch []*message.Message) error
	// Close flushes and releases resources. Called once, after the last Write.
	Close() error
}

// Immediate is implemented by a Sink that can deliver a small batch on
// the caller's goroutine without waiting: a Runner without a linger or a
// spool offers the queue to WriteNow when its delivery goroutine is idle
// and only a few messages are queued, so a message on a quiet link does
// not wait for that goroutine to wake up (the light-load latency of a
// relay that reads and writes on one thread).
//
// Concurrency: WriteNow is called from producers (listener event loops),
// at most one at a time per Runner, but possibly while the Runner's
// goroutine is inside Write: it must not wait for Write (TryLock, and
// decline). It must not block on the destination either: it declines
// (returns false, having sent nothing) when the connection is not up,
// not known to be healthy, or might not take the bytes at once, and the
// Runner's goroutine delivers the batch as usual. A write that fails
// after it began is the sink's to report and recover from, as in Write;
// WriteNow then returns false and the batch is written again by Write
// (at-least-once). The batch and its messages are valid only during the
// call.
type Immediate interface {
	WriteNow(batch []*message.Message) bool
}

// Factory builds a Sink from its config section, whose defaults are
// applied and which passed validation (New sees to both); its Options are
// the type's own struct. It returns an error naming the key for what
// validation cannot see (unreadable TLS files, say); it must not block on
// the network (a broker that is down at start is the Runner's problem,
// not a config error).
type Factory func(name string, cfg *conf.Sink) (Sink, error)

var (
	registryMu sync.RWMutex
	registry   = map[string]Factory{}
)

// Register makes a sink type available by name: its config (keys,
// defaults, validation, reference text), which conf decodes a
// [sink.NAME] table of this type into, and the factory that builds it.
// Sink packages call it from init, as Telegraf's outputs and Caddy's
// modules register; a new sink type touches neither conf nor this
// package. Registering a name twice panics (a programming error).
func Register(typ string, c conf.SinkType, f Factory) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[typ]; dup {
		panic("sinks: type registered twice: " + typ)
	}
	conf.RegisterSinkType(typ, c)
	registry[typ] = f
}

// Types lists the registered sink types, sorted.
func Types() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	out := make([]string, 0, len(registry))
	for k := range registry {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// New builds the sink named name from cfg using the factory for cfg.Type.
// It applies cfg's defaults (a no-op for a loaded config) and validates
// it as conf does, so a section built in code gets the same checks.
func New(name string, cfg *conf.Sink) (Sink, error) {
	registryMu.RLock()
	f, ok := registry[cfg.Type]
	registryMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("sinks: sink %q: unknown type %q (known: %v)", name, cfg.Type, Types())
	}
	cfg.ApplyDefaults()
	if err := conf.CheckSink(name, cfg); err != nil {
		return nil, fmt.Errorf("sinks: %w", err)
	}
	return f(name, cfg)
}

// RejectedError is what Write returns when it delivered every message of
// the batch except those at Indexes, which the destination will never
// accept (larger than it takes, invalid): retrying cannot help. The Runner
// counts them as dropped with reason "rejected", the others as sent, and
// does not retry the batch. Err says why.
type RejectedError struct {
	Indexes []int
	Err     error
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("%d message(s) rejected for good: %v", len(e.Indexes), e.Err)
}

func (e *RejectedError) Unwrap() error { return e.Err }
