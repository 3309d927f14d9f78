package message

// Frames is a run of messages framed for one sink, in order: what a
// listener hands a byte-queue runner (see sinks.Framer) for one read,
// instead of the messages. The messages themselves then need not outlive
// the read: no pooled message, no copy of Raw into it, no reference
// count shared with the runner's core.
//
// A Frames belongs to its producer (an event loop's outbox), which fills
// it with Add and reuses it read after read (Reset). The runner that
// takes it copies the frames out before it returns; it keeps nothing of
// the Frames but the Held messages it took.
type Frames struct {
	// B is the frames, back to back.
	B    []byte
	ends []int   // ends[i] is where frame i ends in B
	raw  []int32 // raw[i] is the length of message i's Raw
	// held[i] is message i when its sender waits for it (an Ack), with
	// one reference for the runner; nil when no message so far has one.
	held []*Message
	// received[i] is message i's receive time when some message's
	// differs from the first's (a batch handed over on reload, see
	// SetReceived); nil while all share Received (a read's messages).
	received []int64
	// Received is the receive time of the first message (Unix ns).
	Received int64
	rawTotal int64 // the sum of raw
}

// Add records the frame that ends B (appended by the caller since the
// last Add) as the next message's, rawLen being the length of its Raw
// and received its receive time if it is the first (else see
// SetReceived). held is the message if its sender waits for it (one
// reference moves with it), else nil.
func (f *Frames) Add(rawLen int, received int64, held *Message) {
	if len(f.ends) == 0 {
		f.Received = received
	}
	f.ends = append(f.ends, len(f.B))
	f.raw = append(f.raw, int32(rawLen))
	f.rawTotal += int64(rawLen)
	if held != nil {
		for len(f.held) < len(f.ends)-1 {
			f.held = append(f.held, nil)
		}
		f.held = append(f.held, held)
	}
}

// SetReceived sets the receive time of the last message added, where
// messages were received at different times (a batch handed over on
// reload); a read's share the first's, Received, and need not.
func (f *Frames) SetReceived(received int64) {
	i := len(f.ends) - 1
	if received == f.Received && len(f.received) == 0 {
		return
	}
	for len(f.received) < i {
		f.received = append(f.received, f.Received)
	}
	f.received = append(f.received, received)
}

// Len returns the number of messages.
func (f *Frames) Len() int { return len(f.ends) }

// Frame returns message i's frame (a slice of B).
func (f *Frames) Frame(i int) []byte {
	start := 0
	if i > 0 {
		start = f.ends[i-1]
	}
	return f.B[start:f.ends[i]]
}

// Span returns the frames of messages [from, to), back to back (a slice
// of B).
func (f *Frames) Span(from, to int) []byte {
	start := 0
	if from > 0 {
		start = f.ends[from-1]
	}
	return f.B[start:f.ends[to-1]]
}

// RawLen returns the length of message i's Raw: queue bounds and sent
// bytes count Raw bytes, whatever the framing adds.
func (f *Frames) RawLen(i int) int { return int(f.raw[i]) }

// RawTotal returns the sum of every message's RawLen.
func (f *Frames) RawTotal() int64 { return f.rawTotal }

// AnyHeld reports whether some message is held (see Held).
func (f *Frames) AnyHeld() bool { return len(f.held) > 0 }

// ReceivedAt returns message i's receive time (Unix ns).
func (f *Frames) ReceivedAt(i int) int64 {
	if i < len(f.received) {
		return f.received[i]
	}
	return f.Received
}

// Held returns message i if its sender waits for it, else nil.
func (f *Frames) Held(i int) *Message {
	if i < len(f.held) {
		return f.held[i]
	}
	return nil
}

// Reset empties f, keeping its storage. The references of held messages
// must have been handed on (or released) before.
func (f *Frames) Reset() {
	clear(f.held)
	f.B, f.ends, f.raw, f.held, f.received, f.Received = f.B[:0], f.ends[:0], f.raw[:0], f.held[:0], f.received[:0], 0
	f.rawTotal = 0
}
