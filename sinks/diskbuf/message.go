package diskbuf

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"sync"

	"wharf/message"
)

// codecVersion is the first byte of an encoded message.
const codecVersion = 1

// EncodeMessage appends m's record form to dst and returns it:
//
//	version      1 byte (1)
//	Received     int64 LE
//	Port         uint16 LE
//	Transport, Format, Version   1 byte each
//	Priority     int16 LE
//	Peer         1 byte kind (0 none, 4, 6) + 4 or 16 address bytes
//	             (+ uvarint zone length + zone for 6) + uint16 LE port
//	Frontend     uvarint length + bytes
//	7 spans      uvarint Off, uvarint Len each (Timestamp, Hostname,
//	             AppName, ProcID, MsgID, StructuredData, Msg)
//	Raw          uvarint length + bytes (ends the record)
//
// It allocates only when dst must grow. A decoded message encodes to the
// same bytes.
func EncodeMessage(dst []byte, m *message.Message) []byte {
	dst = append(dst, codecVersion)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(m.Received))
	dst = binary.LittleEndian.AppendUint16(dst, m.Port)
	dst = append(dst, byte(m.Transport), byte(m.Format), m.Version)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(m.Priority))
	switch a := m.Peer.Addr(); {
	case !m.Peer.IsValid():
		dst = append(dst, 0)
	case a.Is4():
		b := a.As4()
		dst = append(append(dst, 4), b[:]...)
	default:
		b := a.As16()
		dst = append(append(dst, 6), b[:]...)
		dst = binary.AppendUvarint(dst, uint64(len(a.Zone())))
		dst = append(dst, a.Zone()...)
	}
	if m.Peer.IsValid() {
		dst = binary.LittleEndian.AppendUint16(dst, m.Peer.Port())
	}
	dst = binary.AppendUvarint(dst, uint64(len(m.Frontend)))
	dst = append(dst, m.Frontend...)
	for _, s := range [...]message.Span{m.Timestamp, m.Hostname, m.AppName, m.ProcID, m.MsgID, m.StructuredData, m.Msg} {
		dst = binary.AppendUvarint(dst, uint64(s.Off))
		dst = binary.AppendUvarint(dst, uint64(s.Len))
	}
	dst = binary.AppendUvarint(dst, uint64(len(m.Raw)))
	return append(dst, m.Raw...)
}

// errDecode is wrapped by every DecodeMessage error.
var errDecode = errors.New("diskbuf: record is not an encoded message")

type decoder struct {
	b   []byte
	err bool
}

func (d *decoder) take(n int) []byte {
	if d.err || n < 0 || n > len(d.b) {
		d.err = true
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) uvarint(max uint64) uint64 {
	if d.err {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 || v > max {
		d.err = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

// DecodeMessage rebuilds the message EncodeMessage wrote into rec. The
// message is a pooled message.Message with one reference (Raw copied out of
// rec, so rec may be reused at once); the caller releases it. Frontend
// names are interned: decoding allocates nothing beyond the pooled message
// once a name has been seen. A record that is not a valid encoding (spans
// outside Raw, trailing bytes, unknown version) is an error.
func DecodeMessage(rec []byte) (*message.Message, error) {
	d := decoder{b: rec}
	if v := d.take(1); d.err || v[0] != codecVersion {
		return nil, errDecode
	}
	h := d.take(8 + 2 + 3 + 2 + 1)
	if d.err {
		return nil, errDecode
	}
	var peer netip.AddrPort
	switch h[15] {
	case 0:
	case 4:
		a := d.take(4)
		p := d.take(2)
		if !d.err {
			peer = netip.AddrPortFrom(netip.AddrFrom4([4]byte(a)), binary.LittleEndian.Uint16(p))
		}
	case 6:
		a := d.take(16)
		zone := d.take(int(d.uvarint(255)))
		p := d.take(2)
		if !d.err {
			addr := netip.AddrFrom16([16]byte(a))
			if len(zone) > 0 {
				addr = addr.WithZone(string(zone))
			}
			peer = netip.AddrPortFrom(addr, binary.LittleEndian.Uint16(p))
		}
	default:
		return nil, errDecode
	}
	fe := d.take(int(d.uvarint(1 << 16)))
	var spans [7]message.Span
	for i := range spans {
		spans[i].Off = uint32(d.uvarint(1<<32 - 1))
		spans[i].Len = uint32(d.uvarint(1<<32 - 1))
	}
	raw := d.take(int(d.uvarint(MaxRecordBytes)))
	if d.err || len(d.b) != 0 {
		return nil, errDecode
	}
	for _, s := range spans {
		if uint64(s.Off)+uint64(s.Len) > uint64(len(raw)) {
			return nil, errDecode
		}
	}
	m := message.New(raw)
	m.Received = int64(binary.LittleEndian.Uint64(h[0:8]))
	m.Port = binary.LittleEndian.Uint16(h[8:10])
	m.Transport = message.Transport(h[10])
	m.Format = message.Format(h[11])
	m.Version = h[12]
	m.Priority = int16(binary.LittleEndian.Uint16(h[13:15]))
	m.Peer = peer
	m.Frontend = intern(fe)
	m.Timestamp, m.Hostname, m.AppName, m.ProcID = spans[0], spans[1], spans[2], spans[3]
	m.MsgID, m.StructuredData, m.Msg = spans[4], spans[5], spans[6]
	return m, nil
}

// Frontend names come from the config, so there are few; the cap keeps
// corrupt or hostile records from growing the table without bound.
const maxInterned = 1024

var (
	internMu sync.RWMutex
	interned = map[string]string{}
)

func intern(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	internMu.RLock()
	s, ok := interned[string(b)]
	internMu.RUnlock()
	if ok {
		return s
	}
	s = string(b)
	internMu.Lock()
	if len(interned) < maxInterned {
		interned[s] = s
	}
	internMu.Unlock()
	return s
}
