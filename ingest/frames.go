package ingest

// The stream framing loop shared by tcp:// (OnTraffic), tls:// (serveTLS)
// and the rate limiter's flush at close: split the bytes read so far into
// frames, charge rate limits, deliver each message.

import (
	"net/netip"

	"wharf/ingest/framing"
	"wharf/route"
)

// frames is framesTo without an outbox: each message is enqueued on its
// routes at once (flushHeld at close, tests).
func (l *Listener) frames(s *settings, fe *route.Frontend, fr *framing.Framer, buf []byte, now int64, peer netip.AddrPort, held *bool) (off int, progress bool, wait int64) {
	return l.framesTo(nil, s, fe, fr, buf, now, peer, held)
}

// framesTo splits buf into frames and delivers them, for tcp://
// (OnTraffic) and tls:// binds: into out, which it flushes before it
// returns (one EnqueueBatch per destination and call). It returns how
// many bytes were consumed and whether a whole frame was among them. With
// rate limits it stops before the first message that finds no token,
// leaving fr as it was before that message, and returns how long until
// one is due (wait > 0, ns); held tracks that message so it is counted as
// rate limited once.
func (l *Listener) framesTo(out *outbox, s *settings, fe *route.Frontend, fr *framing.Framer, buf []byte, now int64, peer netip.AddrPort, held *bool) (off int, progress bool, wait int64) {
	var shadow framing.Framer // fr as it will be if the next message passes
	// Received counters are added once per read, not per message: both
	// event loops of a bind share them, and an atomic add per message
	// would bounce their cache line between the cores.
	var msgs, bytes uint64
	if out != nil {
		out.in = buf // frames as read are passed from it (outbox.pass)
	}
	defer func() {
		if msgs > 0 {
			l.received.Add(msgs)
			l.bytes.Add(bytes)
			if out != nil {
				out.flush(l, s, l.tcp)
			}
		} else if out != nil {
			out.in = nil
		}
	}()
	for off < len(buf) {
		next := fr
		if s.rate != nil {
			shadow = *fr
			next = &shadow
		}
		frame, n, status := next.Next(buf[off:])
		if s.rate != nil {
			// NeedMore costs no token, but may have skipped bytes (the
			// rest of an oversize frame): its state is kept as well.
			if status != framing.NeedMore {
				switch wait = s.rate.take(peer.Addr(), monoNow(), !*held); {
				case wait == 0:
					*held = false
				case s.rate.closing:
					// Over the debt bound while closing: dropped, counted.
					*fr = shadow
					off += n
					wait = 0
					continue
				default:
					*held = true
					return off, progress, wait
				}
			}
			*fr = shadow
		}
		off += n
		if out != nil { // the frame as read, if the message is delivered (outbox.pass)
			out.wire, out.wireEnd = fr.Wire(), off
		}
		switch status {
		case framing.OK:
			progress = true
			l.deliver(out, s, fe, frame, now, peer, nil)
			msgs, bytes = msgs+1, bytes+uint64(len(frame))
			continue
		case framing.Oversize:
			l.reason("malformed", "oversize").Inc()
			if frame != nil {
				l.truncated.Inc()
				l.deliver(out, s, fe, frame, now, peer, nil)
				msgs, bytes = msgs+1, bytes+uint64(len(frame))
			} else {
				l.reason("dropped", "oversize").Inc()
				l.reject("oversize", peer, buf[off-n:off]) // the part skipped in this read
			}
			continue
		case framing.Invalid:
			l.reason("malformed", fr.Reason()).Inc()
			l.reason("dropped", "framing_error").Inc()
			l.reject("framing_error", peer, buf[off-n:off])
			if n > 0 {
				continue
			}
		}
		break // NeedMore, or no progress
	}
	return off, progress, 0
}
