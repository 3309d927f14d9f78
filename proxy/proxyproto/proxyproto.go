// Package proxyproto reads and writes PROXY protocol headers, versions 1
// (text) and 2 (binary), as specified in HAProxy's doc/proxy-protocol.txt.
//
// Parse works on bytes already read, so callers can read whatever the
// client sent in one system call, parse the header from the front and
// forward the rest: nothing is read twice and nothing is lost. The Append
// functions and Parse of a v2 header allocate nothing (v1 text addresses
// cost two small allocations).
package proxyproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"strconv"
)

// Header is one parsed PROXY header.
type Header struct {
	// Version is 1 or 2.
	Version int
	// Local is true for a v2 LOCAL command or a v1 "UNKNOWN" family: the
	// connection was made by the proxy itself (a health check) and the
	// real endpoints are those of the socket.
	Local bool
	// Source is the original client address; Dest the address it
	// connected to. Both are zero when Local.
	Source, Dest netip.AddrPort
}

var (
	// ErrNeedMore means the bytes so far are a valid beginning of a
	// header: read more and call Parse again with all of them.
	ErrNeedMore = errors.New("proxyproto: incomplete header")
	// ErrNotProxy means the bytes do not start with a PROXY header.
	ErrNotProxy = errors.New("proxyproto: no PROXY protocol header")
	// ErrInvalid means a header signature was found but what follows is
	// malformed.
	ErrInvalid = errors.New("proxyproto: malformed PROXY header")
)

// sigV2 is the 12-byte v2 signature.
var sigV2 = []byte("\r\n\r\n\x00\r\nQUIT\n")

const (
	v1Prefix = "PROXY "
	// MaxV1Len is the longest v1 header, CRLF included (spec section 2.1).
	MaxV1Len = 107
	// maxV2Len caps the v2 length field we accept: addresses plus a
	// generous allowance for TLVs.
	maxV2Len = 16 + 2048
)

// Parse parses a header at the start of b and returns it with the number
// of bytes it took; the bytes after it are the client's payload. It
// returns ErrNeedMore when b is a proper prefix of a header,
// ErrNotProxy when b cannot start one, and ErrInvalid (wrapped with
// detail) for a malformed one.
func Parse(b []byte) (Header, int, error) {
	if len(b) == 0 {
		return Header{}, 0, ErrNeedMore
	}
	switch b[0] {
	case 'P':
		return parseV1(b)
	case '\r':
		return parseV2(b)
	}
	return Header{}, 0, ErrNotProxy
}

func prefixOf(b []byte, want string) bool {
	n := min(len(b), len(want))
	return string(b[:n]) == want[:n]
}

func parseV1(b []byte) (Header, int, error) {
	if !prefixOf(b, v1Prefix) {
		return Header{}, 0, ErrNotProxy
	}
	end := bytes.IndexByte(b[:min(len(b), MaxV1Len)], '\n')
	if end < 0 {
		if len(b) >= MaxV1Len {
			return Header{}, 0, invalid("v1 header longer than 107 bytes")
		}
		return Header{}, 0, ErrNeedMore
	}
	if end == 0 || b[end-1] != '\r' {
		return Header{}, 0, invalid("v1 header does not end in CRLF")
	}
	line := b[len(v1Prefix) : end-1]
	h := Header{Version: 1}
	fam, rest, _ := bytes.Cut(line, []byte{' '})
	switch string(fam) {
	case "UNKNOWN":
		h.Local = true
		return h, end + 1, nil
	case "TCP4", "TCP6":
	default:
		return Header{}, 0, invalid("v1 family is not TCP4, TCP6 or UNKNOWN")
	}
	var f [4][]byte
	for i := range f {
		var ok bool
		f[i], rest, ok = bytes.Cut(rest, []byte{' '})
		if ok != (i < 3) {
			return Header{}, 0, invalid("v1 header wants 4 fields after the family")
		}
	}
	src, err1 := netip.ParseAddr(string(f[0]))
	dst, err2 := netip.ParseAddr(string(f[1]))
	sp, err3 := parsePort(f[2])
	dp, err4 := parsePort(f[3])
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
		return Header{}, 0, invalid("v1 addresses or ports do not parse")
	}
	if want4 := string(fam) == "TCP4"; src.Is4() != want4 || dst.Is4() != want4 || src.Zone() != "" || dst.Zone() != "" {
		return Header{}, 0, invalid("v1 addresses do not match the family")
	}
	h.Source = netip.AddrPortFrom(src, sp)
	h.Dest = netip.AddrPortFrom(dst, dp)
	return h, end + 1, nil
}

// parsePort accepts 0-65535 in decimal without leading zeros or signs.
func parsePort(b []byte) (uint16, error) {
	if len(b) == 0 || len(b) > 5 || (len(b) > 1 && b[0] == '0') {
		return 0, ErrInvalid
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, ErrInvalid
		}
		n = n*10 + int(c-'0')
	}
	if n > 65535 {
		return 0, ErrInvalid
	}
	return uint16(n), nil
}

func parseV2(b []byte) (Header, int, error) {
	if !prefixOf(b, string(sigV2)) {
		return Header{}, 0, ErrNotProxy
	}
	if len(b) < 16 {
		return Header{}, 0, ErrNeedMore
	}
	verCmd, fam := b[12], b[13]
	n := 16 + int(binary.BigEndian.Uint16(b[14:16]))
	if verCmd>>4 != 2 {
		return Header{}, 0, invalid("v2 version is not 2")
	}
	if n > maxV2Len {
		return Header{}, 0, invalid("v2 header longer than 2064 bytes")
	}
	if len(b) < n {
		return Header{}, 0, ErrNeedMore
	}
	h := Header{Version: 2}
	switch verCmd & 0xf {
	case 0: // LOCAL
		h.Local = true
		return h, n, nil
	case 1: // PROXY
	default:
		return Header{}, 0, invalid("v2 command is neither LOCAL nor PROXY")
	}
	a := b[16:n]
	switch fam {
	case 0x11: // TCP over IPv4
		if len(a) < 12 {
			return Header{}, 0, invalid("v2 TCP4 address block too short")
		}
		h.Source = netip.AddrPortFrom(netip.AddrFrom4([4]byte(a[0:4])), binary.BigEndian.Uint16(a[8:10]))
		h.Dest = netip.AddrPortFrom(netip.AddrFrom4([4]byte(a[4:8])), binary.BigEndian.Uint16(a[10:12]))
	case 0x21: // TCP over IPv6
		if len(a) < 36 {
			return Header{}, 0, invalid("v2 TCP6 address block too short")
		}
		h.Source = netip.AddrPortFrom(netip.AddrFrom16([16]byte(a[0:16])).Unmap(), binary.BigEndian.Uint16(a[32:34]))
		h.Dest = netip.AddrPortFrom(netip.AddrFrom16([16]byte(a[16:32])).Unmap(), binary.BigEndian.Uint16(a[34:36]))
	case 0x00: // UNSPEC: the receiver must use the socket's addresses
		h.Local = true
	default:
		return Header{}, 0, invalid("v2 family is not TCP over IPv4/IPv6 or UNSPEC")
	}
	return h, n, nil
}

type invalidError string

func (e invalidError) Error() string { return "proxyproto: malformed PROXY header: " + string(e) }
func (e invalidError) Unwrap() error { return ErrInvalid }

func invalid(why string) error { return invalidError(why) }

// AppendV1 appends a v1 header for a TCP connection from src to dst. An
// invalid src or dst, or a family mismatch, gives "PROXY UNKNOWN\r\n".
func AppendV1(buf []byte, src, dst netip.AddrPort) []byte {
	s, d := src.Addr().Unmap(), dst.Addr().Unmap()
	if !s.IsValid() || !d.IsValid() || s.Is4() != d.Is4() {
		return append(buf, "PROXY UNKNOWN\r\n"...)
	}
	buf = append(buf, v1Prefix...)
	if s.Is4() {
		buf = append(buf, "TCP4 "...)
	} else {
		buf = append(buf, "TCP6 "...)
		s, d = s.WithZone(""), d.WithZone("")
	}
	buf = s.AppendTo(buf)
	buf = append(buf, ' ')
	buf = d.AppendTo(buf)
	buf = append(buf, ' ')
	buf = strconv.AppendUint(buf, uint64(src.Port()), 10)
	buf = append(buf, ' ')
	buf = strconv.AppendUint(buf, uint64(dst.Port()), 10)
	return append(buf, '\r', '\n')
}

// AppendV2 appends a v2 PROXY header for a TCP connection from src to
// dst, with no TLVs. An invalid src or dst gives a LOCAL header.
func AppendV2(buf []byte, src, dst netip.AddrPort) []byte {
	s, d := src.Addr().Unmap(), dst.Addr().Unmap()
	if !s.IsValid() || !d.IsValid() {
		return AppendV2Local(buf)
	}
	buf = append(buf, sigV2...)
	if s.Is4() && d.Is4() {
		buf = append(buf, 0x21, 0x11, 0, 12)
		s4, d4 := s.As4(), d.As4()
		buf = append(buf, s4[:]...)
		buf = append(buf, d4[:]...)
	} else {
		buf = append(buf, 0x21, 0x21, 0, 36)
		s16, d16 := s.As16(), d.As16() // IPv4 as v4-mapped IPv6
		buf = append(buf, s16[:]...)
		buf = append(buf, d16[:]...)
	}
	buf = binary.BigEndian.AppendUint16(buf, src.Port())
	return binary.BigEndian.AppendUint16(buf, dst.Port())
}

// AppendV2Local appends a v2 LOCAL header (for health checks).
func AppendV2Local(buf []byte) []byte {
	buf = append(buf, sigV2...)
	return append(buf, 0x20, 0x00, 0, 0)
}

// Append appends a header of version 1 or 2 (see AppendV1, AppendV2).
func Append(buf []byte, version int, src, dst netip.AddrPort) []byte {
	if version == 1 {
		return AppendV1(buf, src, dst)
	}
	return AppendV2(buf, src, dst)
}
