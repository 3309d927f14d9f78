package recv

import (
	"bytes"
	"errors"
	"time"

	"wharf/bench/stamp"
)

// Framing modes of a TCP stream; detected from its first byte.
const (
	modeUnknown = iota
	modeOctet   // "LEN SP MSG" (RFC 6587 octet counting)
	modeLF      // MSG LF
)

// errFraming reports a broken octet-counting header.
var errFraming = errors.New("bench/recv: bad octet-counting header (want digits, a space, then that many bytes)")

// splitter cuts one TCP stream into messages. The mode is fixed by the
// first non-whitespace byte: a digit means octet counting, anything else
// LF-terminated messages. Not safe for concurrent use: one per connection.
type splitter struct{ mode int }

// split calls fn for each complete message at the start of b and returns
// how many bytes it consumed; the rest is an incomplete message to be
// completed by the next read. The slices given to fn are valid only
// during the call.
func (s *splitter) split(b []byte, fn func(msg []byte)) (int, error) {
	off := 0
	for {
		// Whitespace between frames (trailers some relays add) is skipped.
		for off < len(b) && (b[off] == '\n' || b[off] == '\r' || b[off] == ' ' || b[off] == 0) {
			off++
		}
		if off == len(b) {
			return off, nil
		}
		if s.mode == modeUnknown {
			if b[off] >= '0' && b[off] <= '9' {
				s.mode = modeOctet
			} else {
				s.mode = modeLF
			}
		}
		if s.mode == modeLF {
			nl := bytes.IndexByte(b[off:], '\n')
			if nl < 0 {
				return off, nil
			}
			fn(b[off : off+nl])
			off += nl + 1
			continue
		}
		n, i := 0, off
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
			n = n*10 + int(b[i]-'0')
			if n > 1<<24 {
				return off, errFraming
			}
		}
		if i == len(b) {
			return off, nil // header incomplete
		}
		if b[i] != ' ' || i == off {
			return off, errFraming
		}
		if len(b)-(i+1) < n {
			return off, nil
		}
		fn(b[i+1 : i+1+n])
		off = i + 1 + n
	}
}

// collector turns messages into Records for one Tracker, flushing once
// per read so the Tracker's lock is taken once per buffer, not per
// message. Not safe for concurrent use: one per connection or socket.
type collector struct {
	t       *Tracker
	run     []byte // accept only this run id; nil: the Tracker's (adopt)
	recs    []Record
	foreign uint64
	bad     uint64
	bytes   uint64
	samples []string // a few unstamped messages, for diagnosis
}

// maxSamples is how many unstamped messages a Tracker keeps.
const maxSamples = 5

func newCollector(t *Tracker, run string) *collector {
	c := &collector{t: t, recs: make([]Record, 0, 4096)}
	if run != "" {
		c.run = []byte(run)
	}
	return c
}

// msg accounts for one message.
func (c *collector) msg(b []byte) {
	s, ok := stamp.Parse(b)
	switch {
	case !ok:
		c.bad++
		if len(c.samples) < maxSamples {
			c.samples = append(c.samples, string(b[:min(len(b), 200)]))
		}
	case c.run == nil:
		// No -run: the first run seen anywhere is the one accounted (two
		// runs' streams 0, 1... would otherwise merge, their sequence
		// numbers counted as duplicates); later runs are foreign.
		c.run = []byte(c.t.adopt(s.Run))
		c.msg(b)
	case !bytes.Equal(s.Run, c.run):
		c.foreign++
	default:
		c.recs = append(c.recs, Record{Stream: s.Conn, Seq: s.Seq, Sent: s.Time})
	}
}

// flush hands what was collected to the Tracker, stamped as received now.
func (c *collector) flush(nbytes int) {
	c.bytes += uint64(nbytes)
	if len(c.recs) == 0 && c.foreign == 0 && c.bad == 0 {
		return
	}
	if len(c.samples) > 0 {
		c.t.addSamples(c.samples)
		c.samples = c.samples[:0]
	}
	c.t.Add(time.Now().UnixNano(), c.recs, c.foreign, c.bad, c.bytes)
	c.recs, c.foreign, c.bad, c.bytes = c.recs[:0], 0, 0, 0
}
