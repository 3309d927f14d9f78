// Package relp is the Reliable Event Logging Protocol as rsyslog's librelp
// speaks it: frame parsing and building, open offers, response parsing and
// the server's per-session rules (transaction numbers in sequence, open
// before anything else). It is pure over []byte, like ingest/framing: it
// knows no sockets, and both the RELP input (ingest) and the RELP output
// (sinks/syslog) use it.
//
// A frame is
//
//	TXNR SP COMMAND SP DATALEN [SP DATA] LF
//
// TXNR is 1 to 9 digits (0 only for the server's "serverclose" hint),
// COMMAND 1 to 32 letters, DATALEN 1 to 9 digits; DATA and the SP before
// it are present only when DATALEN > 0. A client numbers its frames 1, 2,
// 3, ... (after 999999999 comes 1 again) and the server answers each with
// an "rsp" frame carrying the same TXNR, whose data starts with a
// three-digit code ("200 OK"). Commands: "open" (offers: relp_version,
// relp_software, commands), "syslog" (one message), "close"; the server
// may send "serverclose" (TXNR 0) before it goes away.
package relp

import (
	"bytes"
	"fmt"
	"strconv"

	"wharf/internal/ascii"
)

// Protocol constants, as librelp (relp.h) has them.
const (
	// DefaultWindow is librelp's RELP_DFLT_WINDOW_SIZE: how many frames a
	// client sends before it waits for responses.
	DefaultWindow = 128
	// MaxTxnr is the largest transaction number; the next one is 1.
	MaxTxnr = 999999999
	// Version is the protocol version offered (RELP_CURR_PROTOCOL_VERSION).
	Version = 0
	// maxCmd is the longest command name.
	maxCmd = 32
	// maxDigits bounds TXNR and DATALEN.
	maxDigits = 9
	// MaxHeader is the longest frame header: "TXNR SP COMMAND SP DATALEN SP".
	MaxHeader = maxDigits + 1 + maxCmd + 1 + maxDigits + 1
)

// Commands.
const (
	CmdOpen        = "open"
	CmdSyslog      = "syslog"
	CmdClose       = "close"
	CmdRsp         = "rsp"
	CmdServerClose = "serverclose"
)

// NextTxnr returns the transaction number after t (librelp wraps to 1).
func NextTxnr(t uint32) uint32 {
	if t >= MaxTxnr {
		return 1
	}
	return t + 1
}

// Frame is one parsed frame. Cmd and Data alias the parsed buffer: valid
// until the caller overwrites or discards those bytes.
type Frame struct {
	Txnr uint32
	Cmd  []byte
	Data []byte
}

// Error is a protocol violation: the session that sent it cannot go on.
// Reason is a short label for counters ("frame", "datalen", "txnr",
// "sequence", "offer", "response").
type Error struct {
	Reason string
	Detail string
}

func (e *Error) Error() string { return "relp: " + e.Detail }

func errorf(reason, format string, args ...any) *Error {
	return &Error{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// Next parses the frame at the start of b. With a whole frame there it
// returns it and n, the bytes it spans (trailer included). n == 0 with a
// nil error means more bytes are needed; need is then the size of the
// whole frame when its header is complete (so a caller can tell whether
// its buffer is large enough), else 0. A DATALEN above maxData is an
// error as soon as the header is read, before any data is awaited
// (librelp's default oversize mode, "abort"). Next never allocates.
func Next(b []byte, maxData int) (f Frame, n, need int, err error) {
	i := 0
	// TXNR
	start := i
	var v uint64
	for i < len(b) && isDigit(b[i]) {
		if i-start == maxDigits {
			return f, 0, 0, errorf("frame", "transaction number longer than %d digits", maxDigits)
		}
		v = v*10 + uint64(b[i]-'0')
		i++
	}
	if i == len(b) {
		return f, 0, 0, nil
	}
	if i == start {
		return f, 0, 0, errorf("frame", "frame does not start with a transaction number (byte %q)", b[i])
	}
	if b[i] != ' ' {
		return f, 0, 0, errorf("frame", "unexpected byte %q after the transaction number", b[i])
	}
	f.Txnr = uint32(v)
	i++
	// COMMAND
	start = i
	for i < len(b) && isAlpha(b[i]) {
		if i-start == maxCmd {
			return f, 0, 0, errorf("frame", "command longer than %d letters", maxCmd)
		}
		i++
	}
	if i == len(b) {
		return f, 0, 0, nil
	}
	if i == start || b[i] != ' ' {
		return f, 0, 0, errorf("frame", "unexpected byte %q in the command", b[i])
	}
	f.Cmd = b[start:i:i]
	i++
	// DATALEN
	start = i
	v = 0
	for i < len(b) && isDigit(b[i]) {
		if i-start == maxDigits {
			return f, 0, 0, errorf("datalen", "data length longer than %d digits", maxDigits)
		}
		v = v*10 + uint64(b[i]-'0')
		i++
	}
	if i == len(b) {
		return f, 0, 0, nil
	}
	if i == start {
		return f, 0, 0, errorf("frame", "unexpected byte %q where the data length belongs", b[i])
	}
	if v > uint64(maxData) {
		if b[i] == ' ' && v <= maxOversize {
			return f, 0, 0, &Oversize{Txnr: f.Txnr, Cmd: f.Cmd, DataLen: int(v), HeaderLen: i + 1, Max: maxData}
		}
		return f, 0, 0, errorf("datalen", "data length %d over the limit of %d bytes", v, maxData)
	}
	dl := int(v)
	if dl == 0 {
		if b[i] != '\n' {
			return f, 0, 0, errorf("frame", "frame with data length 0 not ended by LF (byte %q)", b[i])
		}
		return f, i + 1, 0, nil
	}
	if b[i] != ' ' {
		return f, 0, 0, errorf("frame", "unexpected byte %q after the data length", b[i])
	}
	i++
	total := i + dl + 1
	if len(b) < total {
		return f, 0, total, nil
	}
	if b[total-1] != '\n' {
		return f, 0, 0, errorf("frame", "frame not ended by LF after %d bytes of data (byte %q)", dl, b[total-1])
	}
	f.Data = b[i : i+dl : i+dl]
	return f, total, 0, nil
}

// Oversize is Next's error for a frame whose DATALEN is over the limit,
// once its header is complete: HeaderLen bytes up to and including the
// space before the data. A caller that reads past the DataLen data bytes
// and the trailing LF may keep the session (wharf's oversize = truncate
// or drop for a syslog frame, as librelp's oversizeMode truncate); one
// that does not treats it as any Error ("datalen"). Cmd aliases the
// parsed buffer.
type Oversize struct {
	Txnr               uint32
	Cmd                []byte
	DataLen, HeaderLen int
	Max                int // the limit it is over
}

func (e *Oversize) Error() string {
	return fmt.Sprintf("relp: data length %d over the limit of %d bytes", e.DataLen, e.Max)
}

// maxOversize bounds the DATALEN Next reports as Oversize rather than an
// Error: a frame that claims more is taken as garbage, not a message to
// read past.
const maxOversize = 1 << 30

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

// AppendFrame appends a frame to dst.
func AppendFrame(dst []byte, txnr uint32, cmd string, data []byte) []byte {
	dst = ascii.AppendUint(dst, uint64(txnr))
	dst = append(dst, ' ')
	dst = append(dst, cmd...)
	dst = append(dst, ' ')
	dst = ascii.AppendUint(dst, uint64(len(data)))
	if len(data) > 0 {
		dst = append(dst, ' ')
		dst = append(dst, data...)
	}
	return append(dst, '\n')
}

// AppendRsp appends an "rsp" frame for txnr with data "CODE TEXT".
func AppendRsp(dst []byte, txnr uint32, code int, text string) []byte {
	dst = ascii.AppendUint(dst, uint64(txnr))
	dst = append(dst, " rsp "...)
	dst = ascii.AppendUint(dst, uint64(4+len(text)))
	dst = append(dst, ' ')
	dst = ascii.AppendUint(dst, uint64(code%1000))
	dst = append(dst, ' ')
	dst = append(dst, text...)
	return append(dst, '\n')
}

// ParseRsp splits rsp data into its code and text; rest is what follows
// the first LF (the server's offers in the answer to "open").
func ParseRsp(data []byte) (code int, text, rest []byte, err error) {
	if len(data) < 3 || !isDigit(data[0]) || !isDigit(data[1]) || !isDigit(data[2]) || (len(data) > 3 && data[3] != ' ') {
		return 0, nil, nil, errorf("response", "response %q does not start with a three-digit code", clip(data))
	}
	code = int(data[0]-'0')*100 + int(data[1]-'0')*10 + int(data[2]-'0')
	if len(data) > 4 {
		text = data[4:]
	}
	if i := bytes.IndexByte(text, '\n'); i >= 0 {
		text, rest = text[:i], text[i+1:]
	}
	return code, text, rest, nil
}

// Offer returns the comma-separated values of the offer name in open or
// rsp data ("relp_version=0\ncommands=syslog"), and whether it is there.
func Offer(data []byte, name string) (values [][]byte, ok bool) {
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		k, v, _ := bytes.Cut(line, []byte("="))
		if string(k) != name {
			continue
		}
		for _, x := range bytes.Split(v, []byte(",")) {
			if len(x) > 0 {
				values = append(values, x)
			}
		}
		return values, true
	}
	return nil, false
}

// hasValue reports whether values holds v.
func hasValue(values [][]byte, v string) bool {
	for _, x := range values {
		if string(x) == v {
			return true
		}
	}
	return false
}

// ClientOffers is what a client sends with "open".
func ClientOffers(software string) []byte {
	return []byte("relp_version=" + strconv.Itoa(Version) + "\nrelp_software=" + software + "\ncommands=" + CmdSyslog)
}

// CheckServerOffers checks the offers in the server's answer to "open":
// a relp_version this side speaks, and the syslog command.
func CheckServerOffers(offers []byte) error {
	if v, ok := Offer(offers, "relp_version"); ok {
		if len(v) == 0 || string(v[0]) != strconv.Itoa(Version) {
			return errorf("offer", "server offers relp_version %q; wharf speaks %d", bytes.Join(v, []byte(",")), Version)
		}
	}
	cmds, _ := Offer(offers, "commands")
	if !hasValue(cmds, CmdSyslog) {
		return errorf("offer", "server does not offer the syslog command (commands=%s)", bytes.Join(cmds, []byte(",")))
	}
	return nil
}

// clip shortens b for an error message.
func clip(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}
