package ingest

import (
	"net/netip"
	"sync"

	"wharf/ingest/parse"
	"wharf/message"
	"wharf/route"
)

// outbox collects the messages of one read per destination, so each
// destination gets them at once at the read's end (see the package
// comment). It belongs to one goroutine: the event loop of a tcp://
// connection or a UDP socket, or a tls:// or relp:// connection's
// goroutine. Its storage is reused from read to read, so the steady
// state allocates nothing; flush drops every reference it held.
//
// A target that takes frames (route.FrameTarget: a syslog sink over TCP
// or TLS) gets each message framed as it is routed, into the
// destination's message.Frames. A message routed only to such targets is
// the outbox's scratch message, whose Raw is the read's buffer: no
// pooled message, no copy of Raw, no reference count (#16). The read's
// buffer must therefore stay as it is until flush returns: every caller
// flushes before it reads again or discards what it consumed. A target
// that sends a message as its octet-counted frame as received
// (route.Dest's PassOctet: the syslog sink with encoding raw and octet
// counting) gets a message that arrived so as the bytes it arrived in
// (framing.Framer.Wire), and a read's frames that lie back to back as
// one slice of the read's buffer (pass): no framing, one copy.
type outbox struct {
	dests  []outDest
	framed []outFrames
	// cache hands out messages freed in chunks by the sink runners.
	cache message.Cache
	// scratch is the message being routed when it carries no Ack (see
	// borrow); valid until the next borrow.
	scratch message.Message
	// peers is set when the messages of one read come from several
	// senders (a UDP socket's); a connection's have one.
	peers bool
	// in is the read's buffer while framesTo routes it; wire and wireEnd
	// place the octet-counted frame, as read, of the message it is
	// delivering: in[wireEnd-wire:wireEnd], or none when wire is 0
	// (framing.Framer.Wire). A target that passes such frames
	// (route.Dest's PassOctet) gets those bytes instead of AppendFrame's.
	in            []byte
	wire, wireEnd int
}

type outDest struct {
	t  route.Target
	ms []*message.Message
}

type outFrames struct {
	t  route.FrameTarget
	id uint64 // t's FrameID
	*frameBuf
}

// frameBuf is the storage of one target's frames for one read, taken from
// framePool at the read's first frame for the target and given back at
// flush: an idle connection holds none (a read's frames can be 64 KiB).
type frameBuf struct {
	f message.Frames
	// While run is set, f.B is not f's own storage (own meanwhile) but
	// the read's buffer from runFrom on, the frames passed as read so far
	// (see pass), sliced to its length so that an append to it can never
	// write into the read's buffer.
	run     bool
	runFrom int
	own     []byte
	// raw is each framed message's Raw (in the read's buffer), and peers
	// their senders, for remake: an entry where the sender changes (once
	// per read but on UDP), not one per message. With octet set (the
	// target's PassOctet) raw stays empty: each frame ends with its
	// message's Raw (rawOf).
	raw   [][]byte
	peers []peerFrom
	octet bool
}

var framePool = sync.Pool{New: func() any { return new(frameBuf) }}

// peerFrom is the sender of the framed messages from index from on.
type peerFrom struct {
	from int
	peer netip.AddrPort
}

// borrow returns the scratch message over raw, which is not copied: raw
// must stay valid until the message is routed (route) and the outbox
// flushed. Only Raw is set: deliver sets the fields of receipt and the
// parser (with format raw too) the parsed ones, all of them every time;
// zeroing the whole message cost 31 instructions a message. Its
// reference count and storage are never used.
func (o *outbox) borrow(raw []byte) *message.Message {
	o.scratch.Raw = raw
	return &o.scratch
}

// discard ends a message that was dropped by policy (nothing to send
// again): confirmed and released, unless it is the scratch message. o
// may be nil.
func (o *outbox) discard(m *message.Message) {
	if o != nil && m == &o.scratch {
		return
	}
	m.Confirm()
	m.Release()
}

// route adds m to the outbox for each of dests: framed at once for a target that takes frames, else as
// a message. The scratch message is copied into a pooled one (Clone) for
// the targets that queue messages; a pooled message (it carries an Ack)
// is passed with one reference per destination, a framed destination's
// moving with the frame (Frames.Add's held).
func (o *outbox) route(dests []route.Dest, m *message.Message) {
	if m == &o.scratch {
		var c *message.Message
		for i := range dests {
			d := &dests[i]
			if d.Frames != nil {
				o.frame(d, m, nil)
				continue
			}
			if c == nil {
				c = o.cache.Clone(m)
			} else {
				c.Retain(1) // not handed over yet: flush does that
			}
			o.add(d.Target, c)
		}
		return
	}
	if len(dests) > 1 {
		m.Retain(int32(len(dests) - 1))
	}
	for i := range dests {
		if d := &dests[i]; d.Frames != nil {
			o.frame(d, m, m)
		} else {
			o.add(d.Target, m)
		}
	}
}

// frame appends m framed for dest's target (dest.Frames) to its Frames;
// held is m when a reference of it moves with the frame.
func (o *outbox) frame(dest *route.Dest, m, held *message.Message) {
	t := dest.Frames
	var d *outFrames
	for i := range o.framed {
		if o.framed[i].id == dest.FrameID {
			d = &o.framed[i]
			break
		}
	}
	if d == nil {
		if len(o.framed) < cap(o.framed) {
			o.framed = o.framed[:len(o.framed)+1]
		} else {
			o.framed = append(o.framed, outFrames{})
		}
		d = &o.framed[len(o.framed)-1]
		d.t, d.id, d.frameBuf = t, dest.FrameID, framePool.Get().(*frameBuf)
		d.octet = dest.PassOctet
	}
	if dest.PassOctet && o.wire > 0 && m == &o.scratch {
		d.pass(o.in, o.wireEnd-o.wire, o.wireEnd)
	} else {
		if d.run {
			d.endRun()
		}
		d.f.B = t.AppendFrame(d.f.B, m)
	}
	d.f.Add(len(m.Raw), m.Received, held)
	if k := len(d.peers); k == 0 || (o.peers && d.peers[k-1].peer != m.Peer) {
		d.peers = append(d.peers, peerFrom{from: d.f.Len() - 1, peer: m.Peer})
	}
	if !d.octet {
		d.raw = append(d.raw, m.Raw)
	}
}

// rawOf returns framed message i's Raw, for remake: valid until flush.
func (d *outFrames) rawOf(i int) []byte {
	if d.octet { // "LEN SP RAW"
		fr := d.f.Frame(i)
		return fr[len(fr)-d.f.RawLen(i):]
	}
	return d.raw[i]
}

// pass appends in[from:to], a message's octet-counted frame as read, to
// d's frames: the target frames the message so itself (route.Dest's
// PassOctet). While the read's frames for d lie back to back in in, f.B
// is that part of in and grows over each next one, so they are copied
// once, into the target's queue, with one memmove at flush, instead of
// framed and copied here and copied again there (#16). A frame that does
// not follow on ends the run (endRun).
func (d *outFrames) pass(in []byte, from, to int) {
	switch {
	case d.run && from == d.runFrom+len(d.f.B):
		d.f.B = in[d.runFrom:to:to]
		return
	case d.run:
		d.endRun()
	case len(d.f.B) == 0:
		d.run, d.runFrom, d.own = true, from, d.f.B
		d.f.B = in[from:to:to]
		return
	}
	d.f.B = append(d.f.B, in[from:to]...)
}

// endRun copies the run of frames f.B covers into f's own storage, which
// f.B is again.
func (d *outFrames) endRun() {
	d.f.B = append(d.own[:0], d.f.B...)
	d.run, d.own = false, nil
}

// add queues m (one reference) for t.
func (o *outbox) add(t route.Target, m *message.Message) {
	for i := range o.dests {
		if d := &o.dests[i]; d.t == t {
			d.ms = append(d.ms, m)
			return
		}
	}
	if len(o.dests) < cap(o.dests) {
		o.dests = o.dests[:len(o.dests)+1]
		d := &o.dests[len(o.dests)-1]
		d.t, d.ms = t, append(d.ms[:0], m)
		return
	}
	o.dests = append(o.dests, outDest{t: t, ms: append(make([]*message.Message, 0, 64), m)})
}

// flush hands every destination its messages, in the order added, and
// reports whether every one was queued (RELP's relp_ack = "queued"
// answers on it). With block it waits for queue space (see
// Runner.EnqueueBatch). l and s are the listener and settings the read
// was routed under, should frames have to be made into messages again
// (remake).
func (o *outbox) flush(l *Listener, s *settings, block bool) (all bool) {
	all = true
	for i := range o.framed {
		d := &o.framed[i]
		n := d.f.Len()
		next, queued := d.t.EnqueueFrames(&d.f, 0, block)
		if next < n {
			// The target closed and hands over to one that wants
			// messages (a reload changed the sink).
			queued += d.t.EnqueueBatch(l.remake(s, d, next), block)
		}
		if queued < n {
			all = false
		}
		if d.run { // give f its storage back; drop the read's buffer
			d.f.B, d.run, d.own = d.own, false, nil
		}
		d.f.Reset()
		clear(d.raw)
		d.raw, d.peers = d.raw[:0], d.peers[:0]
		framePool.Put(d.frameBuf)
		d.t, d.id, d.frameBuf = nil, 0, nil
	}
	o.framed = o.framed[:0]
	o.scratch = message.Message{} // holds no buffer while idle
	o.in, o.wire = nil, 0
	for i := range o.dests {
		d := &o.dests[i]
		if len(d.ms) > 0 && d.t.EnqueueBatch(d.ms, block) < len(d.ms) {
			all = false
		}
		clear(d.ms)
		d.t, d.ms = nil, d.ms[:0]
	}
	o.dests = o.dests[:0]
	o.cache.Flush()
	return all
}

// remake makes d's framed messages from index from on into messages
// again, for a target that no longer takes their frames: a held message
// is itself, the others are made from their Raw as deliver made them,
// parsed in full under s (the runner taking them over may need more
// than the old routes did). Rare: a reload while the read was routed.
func (l *Listener) remake(s *settings, d *outFrames, from int) []*message.Message {
	ms := make([]*message.Message, 0, d.f.Len()-from)
	p := 0
	for i := from; i < d.f.Len(); i++ {
		for p+1 < len(d.peers) && d.peers[p+1].from <= i {
			p++
		}
		if m := d.f.Held(i); m != nil {
			ms = append(ms, m)
			continue
		}
		m := message.New(d.rawOf(i))
		l.stamp(m, d.f.ReceivedAt(i), d.peers[p].peer)
		if s.format != parse.Raw {
			_ = parse.Parse(m, s.format) // a parse error was counted when it arrived
		}
		ms = append(ms, m)
	}
	return ms
}
