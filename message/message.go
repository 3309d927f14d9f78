// Package message holds the syslog message as it travels from a listener
// to the sinks: the received bytes, where the parser found each header
// field in them (Span), and the metadata of its arrival. It also decodes
// the TIMESTAMP field into a time.Time for encoders that need one.
//
// It depends on the standard library only, so that every other package
// (the parser, the route table, the sinks) can share the type without
// depending on each other.
package message

import (
	"net/netip"
	"sync"
	"sync/atomic"
)

// Format is the syslog dialect a message was recognised as.
type Format uint8

// Formats a parser can recognise. FormatRaw means "not parsed": either the
// frontend asked for raw passthrough or the message was malformed and the
// frontend's on_error policy is forward_raw.
const (
	FormatRaw Format = iota
	FormatRFC5424
	FormatRFC3164
)

// String returns the config spelling of the format.
func (f Format) String() string {
	switch f {
	case FormatRFC5424:
		return "rfc5424"
	case FormatRFC3164:
		return "rfc3164"
	}
	return "raw"
}

// Transport is the protocol a message arrived on.
type Transport uint8

// Transports of a bind.
const (
	TransportUDP Transport = iota
	TransportTCP
	TransportTLS
	TransportRELP
	TransportRELPTLS
)

// String returns the bind scheme of the transport.
func (t Transport) String() string {
	switch t {
	case TransportTCP:
		return "tcp"
	case TransportTLS:
		return "tls"
	case TransportRELP:
		return "relp"
	case TransportRELPTLS:
		return "relp+tls"
	}
	return "udp"
}

// Span locates a field inside Message.Raw: Raw[Off:Off+Len]. A zero Span
// (Len 0) means the field is absent or, for RFC5424, the NILVALUE "-".
type Span struct{ Off, Len uint32 }

// Message is one syslog message on its way from a listener to the sinks.
//
// Ownership: Raw is owned by the message (copied out of the event loop's
// buffer by New), so a Message may cross goroutines. Every field
// returned by the accessor methods aliases Raw and stays valid until the
// last reference is released. A message is shared by every sink it is
// routed to: the router calls Retain once per extra sink, each sink runner
// calls Release exactly once when it is done with it (sent, dropped or
// failed). After the last Release the message returns to a pool and must
// not be touched.
//
// One kind of message breaks these rules and never leaves its read: a
// listener's scratch message (ingest's outbox), whose Raw is the read's
// buffer. It is parsed and routed, then framed for the sinks that queue
// bytes (Frames) and copied (Cache.Clone) for the others; it is never
// retained, released or handed to a sink runner.
//
// A Message is filled by one goroutine (the event loop that received it)
// before it is enqueued anywhere; after that it is read-only.
type Message struct {
	// Raw is the message as received, without framing (no octet count,
	// no trailing LF/NUL).
	Raw []byte

	// The fields a sink touches besides Raw (Ack, refs, holders,
	// confirmed, Received) follow it, in the struct's first 64 bytes: a
	// pooled message (720 bytes, size class 768) starts at a cache line,
	// so confirming and releasing a delivered message reads the line the
	// sink's copy of Raw brought in, not one more.

	// Ack, when set, is told once whether every holder of the message
	// confirmed it (see Confirm): at its last Release. The RELP input sets
	// it for relp_ack = "durable" and "delivered"; other messages leave it
	// nil and pay one nil check in Release.
	Ack Acker

	// refs counts the references held. Atomic once the message is handed
	// on (Retain, Release, Refs); New sets it with a plain store: the
	// message is not shared yet, and a locked instruction there cost the
	// relay ~10% of its CPU (the line was last written on the core that
	// released the message).
	refs int32
	// holders counts the references ever taken (1 + Retains), confirmed
	// the Confirm calls; only kept for messages with an Ack.
	holders   int32
	confirmed atomic.Int32
	// Received is the receive time in Unix nanoseconds.
	Received int64
	// Frontend is the name of the frontend whose bind received the message.
	// It points at the config's string; no allocation per message.
	Frontend string
	// Port is the local port the message arrived on.
	Port uint16
	// Transport is the bind's protocol.
	Transport Transport
	// Peer is the sender's address.
	Peer netip.AddrPort

	// Format is what the parser recognised; FormatRaw when not parsed.
	Format Format
	// Priority is the PRI value 0..191, or -1 when absent or unparsed.
	Priority int16
	// Version is the RFC5424 VERSION (1), 0 otherwise.
	Version uint8
	// Timestamp, Hostname, AppName, ProcID, MsgID, StructuredData and Msg
	// locate header fields in Raw. For RFC3164 AppName is the TAG and
	// ProcID the bracketed pid, if any.
	Timestamp, Hostname, AppName, ProcID, MsgID, StructuredData, Msg Span

	// buf is Raw's storage, kept with the pooled message (inline: one
	// cache miss less than a pointer to it).
	buf []byte
}

// Acker learns the fate of a message that carries it (Message.Ack): Done
// is called exactly once, from whichever goroutine releases the message
// last, with ok true when every holder confirmed it. It must not block.
type Acker interface {
	Done(ok bool)
}

// Confirm records that one holder is done with m for good: a sink runner
// delivered it (or stored it in a disk buffer), or the listener dropped
// it by policy (no route, parse error), which needs no redelivery. Call
// it before that holder's Release. A message released without a Confirm
// from every holder (dropped: queue full, shutdown, retries exhausted,
// rejected) tells its Ack ok = false.
func (m *Message) Confirm() {
	if m.Ack != nil {
		m.confirmed.Add(1)
	}
}

// Facility returns the facility code (Priority/8), or -1 when unknown.
func (m *Message) Facility() int {
	if m.Priority < 0 {
		return -1
	}
	return int(m.Priority) / 8
}

// Severity returns the severity code (Priority%8), or -1 when unknown.
func (m *Message) Severity() int {
	if m.Priority < 0 {
		return -1
	}
	return int(m.Priority) % 8
}

// Field returns the bytes s locates, or nil for an absent field. The slice
// aliases Raw: valid until the message is released.
func (m *Message) Field(s Span) []byte {
	if s.Len == 0 {
		return nil
	}
	return m.Raw[s.Off : s.Off+s.Len : s.Off+s.Len]
}

// Retain adds n references, one per additional holder. Like the fields,
// it is called before the message is handed on.
func (m *Message) Retain(n int32) {
	m.holders += n
	atomic.AddInt32(&m.refs, n)
}

// Refs returns the number of references held, for tests that check each
// holder released the message exactly once.
func (m *Message) Refs() int32 { return atomic.LoadInt32(&m.refs) }

// Release drops one reference; the last one returns the message to the pool.
func (m *Message) Release() {
	if m.drop() {
		messagePool.Put(m)
	}
}

// drop drops one reference; after the last one it tells the Ack, clears
// m for reuse and reports true.
func (m *Message) drop() bool {
	// The sole holder (the common case: one sink) needs no locked
	// decrement: no one else holds m, so no one can Retain or Release
	// it meanwhile, and the load sees every earlier Retain and Release
	// (they happened before m was handed to this holder). A plain store
	// of 0 keeps a second Release (a bug) from pooling m twice.
	if atomic.LoadInt32(&m.refs) == 1 {
		m.refs = 0
	} else if atomic.AddInt32(&m.refs, -1) != 0 {
		return false
	}
	if m.Ack != nil {
		m.Ack.Done(m.confirmed.Load() == m.holders)
	}
	// Only what could pin memory is cleared here; fill resets the rest
	// on the goroutine that reuses m, which writes those lines anyway
	// (clearing all of m here dirtied every line of it in this core's
	// cache, for the next core to fetch).
	m.Ack = nil
	if cap(m.buf) > maxPooledBuf {
		m.buf = nil
	}
	return true
}

// maxPooledBuf keeps a rare huge message from pinning memory in the pool.
const maxPooledBuf = 64 << 10

// pooled is a message with room for a typical message's bytes in the
// same allocation: one object, adjacent lines, instead of two. Larger
// messages get a buffer of their own.
type pooled struct {
	m     Message
	store [pooledBytes]byte
}

const pooledBytes = 512

var messagePool = sync.Pool{New: func() any {
	p := new(pooled)
	p.m.buf = p.store[:0]
	return &p.m
}}

// New returns a pooled message holding a copy of raw, with one
// reference. The caller fills the metadata, then hands it on.
func New(raw []byte) *Message {
	return fill(messagePool.Get().(*Message), raw)
}

// fill makes a freed message m a new one holding a copy of raw.
func fill(m *Message, raw []byte) *Message {
	buf := m.buf
	*m = Message{}
	m.buf = append(buf[:0], raw...)
	m.Raw = m.buf
	m.Priority = -1
	m.holders = 1
	m.refs = 1 // not shared yet: a plain store (see the field)
	return m
}
