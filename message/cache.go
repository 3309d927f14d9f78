package message

import (
	"sync"
	"unsafe"
)

// chunkSize is how many freed messages move between goroutines at once.
const chunkSize = 64

// chunk carries freed messages from the goroutine that released them
// (a sink runner) to one that makes new ones (an event loop): one pool
// operation per chunkSize messages instead of two per message.
type chunk struct{ ms []*Message }

var (
	fullChunks  sync.Pool // *chunk with freed messages
	emptyChunks = sync.Pool{New: func() any { return &chunk{ms: make([]*Message, 0, chunkSize)} }}
)

// Cache hands out pooled messages to one goroutine (an event loop's
// outbox). The zero Cache is ready; it must not be shared.
type Cache struct{ c *chunk }

// New is New, taking the message from the cache's chunk of freed ones.
func (k *Cache) New(raw []byte) *Message {
	if k.c == nil || len(k.c.ms) == 0 {
		if k.c != nil {
			emptyChunks.Put(k.c)
			k.c = nil
		}
		c, _ := fullChunks.Get().(*chunk)
		if c == nil {
			return New(raw)
		}
		k.c = c
	}
	last := len(k.c.ms) - 1
	m := k.c.ms[last]
	k.c.ms[last] = nil
	k.c.ms = k.c.ms[:last]
	if last > 0 {
		// The next message to hand out was last written on the core
		// that released it: ask for its lines now, so the miss overlaps
		// with this message's copy and parse instead of stalling the
		// next New (perf put 13% of the TCP relay's CPU on that load).
		prefetchW(unsafe.Pointer(k.c.ms[last-1]), prefetchBytes)
	}
	return fill(m, raw)
}

// Clone returns a pooled copy of m with one reference: its Raw copied,
// the fields set on receipt and by the parser kept (Spans are offsets
// into Raw). m's Ack is not carried over. It makes a message that
// outlives the read of one that borrowed the read's buffer (the outbox's
// scratch message).
func (k *Cache) Clone(m *Message) *Message {
	c := k.New(m.Raw)
	c.Received, c.Frontend, c.Port, c.Transport, c.Peer = m.Received, m.Frontend, m.Port, m.Transport, m.Peer
	c.Format, c.Priority, c.Version = m.Format, m.Priority, m.Version
	c.Timestamp, c.Hostname, c.AppName, c.ProcID, c.MsgID, c.StructuredData, c.Msg = m.Timestamp, m.Hostname, m.AppName, m.ProcID, m.MsgID, m.StructuredData, m.Msg
	return c
}

// prefetchBytes is what fill and a typical message's copy write of a
// pooled message (every message is one: see messagePool): the struct and
// the first 384 bytes of the inline storage that follows it.
const prefetchBytes = unsafe.Offsetof(pooled{}.store) + 384

// ReleaseAll releases every message of ms (see Release), returning the
// freed ones to the pool in chunks.
func ReleaseAll(ms []*Message) {
	var c *chunk
	for _, m := range ms {
		if !m.drop() {
			continue
		}
		if c == nil {
			c = emptyChunks.Get().(*chunk)
		}
		c.ms = append(c.ms, m)
		if len(c.ms) == cap(c.ms) {
			fullChunks.Put(c)
			c = nil
		}
	}
	if c != nil {
		fullChunks.Put(c)
	}
}

// Flush gives the cache's freed messages back to the pool, so an idle
// holder (a quiet connection's outbox) pins none of them.
func (k *Cache) Flush() {
	if k.c == nil {
		return
	}
	if len(k.c.ms) > 0 {
		fullChunks.Put(k.c)
	} else {
		emptyChunks.Put(k.c)
	}
	k.c = nil
}
