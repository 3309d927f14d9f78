package message

import (
	"bytes"
	"fmt"
	"testing"
	"unsafe"
)

// TestCacheNewReusesFreedMessages runs messages through a Cache the way an
// event loop and a sink runner do (New, hand on, ReleaseAll), over more
// than one chunk, so New takes freed messages and prefetches the next one:
// every message must hold exactly its own bytes and a fresh header.
func TestCacheNewReusesFreedMessages(t *testing.T) {
	var k Cache
	for round := range 4 {
		ms := make([]*Message, 0, 3*chunkSize)
		for i := range cap(ms) {
			raw := []byte(fmt.Sprintf("<13>1 - host app - - - round %d message %d %s", round, i, bytes.Repeat([]byte("x"), i*7%600)))
			m := k.New(raw)
			if !bytes.Equal(m.Raw, raw) || m.Priority != -1 || m.Refs() != 1 || m.Ack != nil || m.Format != FormatRaw {
				t.Fatalf("round %d message %d: Raw %q, Priority %d, Refs %d: not a fresh message", round, i, m.Raw, m.Priority, m.Refs())
			}
			m.Priority = 13 // what a parse would set; the next fill must clear it
			ms = append(ms, m)
		}
		for i, m := range ms {
			if want := fmt.Sprintf("round %d message %d ", round, i); !bytes.Contains(m.Raw, []byte(want)) {
				t.Fatalf("message %d was overwritten: %q", i, m.Raw[:40])
			}
		}
		ReleaseAll(ms)
	}
}

// TestPrefetchWChangesNothing: prefetchW is a hint; over a message, past
// the end of its allocation and for no bytes it must neither fault nor
// write.
func TestPrefetchWChangesNothing(t *testing.T) {
	m := New([]byte("<13>1 - host app - - - prefetched"))
	defer m.Release()
	before := append([]byte(nil), m.Raw...)
	prefetchW(unsafe.Pointer(m), prefetchBytes)
	prefetchW(unsafe.Pointer(m), unsafe.Sizeof(pooled{})+64<<10)
	prefetchW(unsafe.Pointer(m), 0)
	if !bytes.Equal(m.Raw, before) || m.Refs() != 1 {
		t.Fatalf("after prefetchW: %q, refs %d", m.Raw, m.Refs())
	}
}
