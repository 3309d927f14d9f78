// Package sni reads the server name from a TLS ClientHello without
// terminating TLS, and matches names against exact, one-label wildcard
// ("*.example.com") and any-depth suffix (".example.com") rules.
//
// ServerName works on the bytes a client has sent so far: a proxy reads
// into a buffer until ServerName stops returning ErrNeedMore, then
// forwards the whole buffer to the chosen server, which sees the
// handshake untouched.
package sni

import (
	"encoding/binary"
	"errors"
	"strings"
)

var (
	// ErrNeedMore means the bytes so far are a valid beginning of a
	// ClientHello: read more and call again with all of them.
	ErrNeedMore = errors.New("sni: incomplete ClientHello")
	// ErrNotTLS means the bytes are not a TLS handshake record.
	ErrNotTLS = errors.New("sni: not a TLS ClientHello")
	// ErrMalformed means a ClientHello that does not parse.
	ErrMalformed = errors.New("sni: malformed ClientHello")
)

// MaxHelloLen bounds the ClientHello (handshake message and record
// headers) a caller needs to buffer. Real ones are under 2KiB, a few KiB
// with post-quantum key shares; 64KiB leaves room without letting a
// client make the proxy hold much.
const MaxHelloLen = 64 << 10

const (
	recordHandshake  = 22
	typeClientHello  = 1
	extServerName    = 0
	nameTypeHostName = 0
)

// ServerName returns the server_name (SNI) of the ClientHello at the start
// of b, lower-cased by the caller's rules (it is returned as sent), or ""
// when the client sent none. The ClientHello may span several TLS
// records. The returned string is a copy; b may be reused.
func ServerName(b []byte) (string, error) {
	hello, err := handshakeMessage(b)
	if err != nil {
		return "", err
	}
	return parseHello(hello)
}

// handshakeMessage reassembles the first handshake message (type and
// length header included) from TLS records at the start of b.
func handshakeMessage(b []byte) ([]byte, error) {
	var msg []byte // only allocated when the message spans records
	var first []byte
	need := -1
	for {
		if len(b) < 5 {
			if len(b) > 0 && b[0] != recordHandshake {
				return nil, ErrNotTLS
			}
			return nil, ErrNeedMore
		}
		if b[0] != recordHandshake || b[1] != 3 {
			return nil, ErrNotTLS
		}
		n := int(binary.BigEndian.Uint16(b[3:5]))
		if n == 0 || n > 1<<14+256 {
			return nil, ErrMalformed
		}
		if len(b) < 5+n {
			return nil, ErrNeedMore
		}
		frag := b[5 : 5+n]
		b = b[5+n:]
		if first == nil && msg == nil {
			first = frag
		} else {
			if msg == nil {
				msg = append(make([]byte, 0, max(need, 2*len(first))), first...)
			}
			msg = append(msg, frag...)
		}
		cur := first
		if msg != nil {
			cur = msg
		}
		if need < 0 && len(cur) >= 4 {
			if cur[0] != typeClientHello {
				return nil, ErrNotTLS
			}
			need = 4 + (int(cur[1])<<16 | int(cur[2])<<8 | int(cur[3]))
			if need > MaxHelloLen {
				return nil, ErrMalformed
			}
		}
		if need >= 0 && len(cur) >= need {
			return cur[:need], nil
		}
	}
}

// reader is a bounds-checked cursor over a ClientHello.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) skip(n int) {
	if r.bad || n > len(r.b) {
		r.bad = true
		return
	}
	r.b = r.b[n:]
}

func (r *reader) u8() int {
	if r.bad || len(r.b) < 1 {
		r.bad = true
		return 0
	}
	v := int(r.b[0])
	r.b = r.b[1:]
	return v
}

func (r *reader) u16() int {
	if r.bad || len(r.b) < 2 {
		r.bad = true
		return 0
	}
	v := int(binary.BigEndian.Uint16(r.b))
	r.b = r.b[2:]
	return v
}

func (r *reader) bytes(n int) []byte {
	if r.bad || n > len(r.b) {
		r.bad = true
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func parseHello(msg []byte) (string, error) {
	r := reader{b: msg[4:]}
	r.skip(2 + 32)  // legacy_version, random
	r.skip(r.u8())  // legacy_session_id
	r.skip(r.u16()) // cipher_suites
	r.skip(r.u8())  // legacy_compression_methods
	if !r.bad && len(r.b) == 0 {
		return "", nil // no extensions at all (TLS 1.0 style)
	}
	exts := reader{b: r.bytes(r.u16())}
	if r.bad {
		return "", ErrMalformed
	}
	for len(exts.b) > 0 {
		typ := exts.u16()
		body := reader{b: exts.bytes(exts.u16())}
		if exts.bad {
			return "", ErrMalformed
		}
		if typ != extServerName {
			continue
		}
		list := reader{b: body.bytes(body.u16())}
		for len(list.b) > 0 && !list.bad {
			nt := list.u8()
			name := list.bytes(list.u16())
			if list.bad {
				break
			}
			if nt == nameTypeHostName {
				if len(name) == 0 || !validName(name) {
					return "", ErrMalformed
				}
				return string(name), nil
			}
		}
		if body.bad || list.bad {
			return "", ErrMalformed
		}
		return "", nil
	}
	return "", nil
}

// validName accepts the bytes of a DNS host name: letters, digits,
// hyphen, underscore and dots, at most 255.
func validName(b []byte) bool {
	if len(b) > 255 {
		return false
	}
	for _, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '.', c == '_':
		default:
			return false
		}
	}
	return true
}

// Match reports whether a host name matches pattern. Three forms:
//
//   - "db.example.com" matches that name only;
//   - "*.example.com" matches a name with exactly one more label in front
//     ("a.example.com", not "example.com" nor "a.b.example.com"), as in
//     TLS certificates;
//   - ".example.com" (a leading dot) matches a name ending in
//     ".example.com" with one or more labels in front, at any depth
//     ("a.example.com", "a.b.example.com"), but not "example.com" itself:
//     HAProxy's `req_ssl_sni -m end .example.com`. (nginx's server_name
//     ".example.com" also matches "example.com"; here that takes a second,
//     exact rule.)
//
// Comparison ignores case (DNS names do; HAProxy's -i) and a trailing
// dot. It does not allocate.
func Match(pattern, name string) bool {
	pattern = strings.TrimSuffix(pattern, ".")
	name = strings.TrimSuffix(name, ".")
	if suffix, ok := strings.CutPrefix(pattern, "*"); ok {
		if !hasLabelSuffix(name, suffix) {
			return false
		}
		return !strings.Contains(name[:len(name)-len(suffix)], ".")
	}
	if strings.HasPrefix(pattern, ".") {
		return hasLabelSuffix(name, pattern)
	}
	return strings.EqualFold(pattern, name)
}

// hasLabelSuffix: suffix (".example.com") ends name, with at least one
// byte in front of it, ignoring case.
func hasLabelSuffix(name, suffix string) bool {
	return len(name) > len(suffix) && strings.EqualFold(name[len(name)-len(suffix):], suffix)
}
