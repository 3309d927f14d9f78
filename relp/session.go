package relp

import "strconv"

// Kind is what a client frame asks of the server.
type Kind uint8

// Kinds of client frames.
const (
	// KindOpen starts the session; answer with OpenResponse.
	KindOpen Kind = iota + 1
	// KindSyslog carries one message in Frame.Data.
	KindSyslog
	// KindClose ends the session: answer "200 OK", then close.
	KindClose
	// KindUnknown is a command the server does not support: answer 500
	// and go on (the transaction number was valid).
	KindUnknown
)

// Server holds the rules of one server-side session: the first frame is
// "open", transaction numbers follow each other (1, 2, ... as librelp's
// server checks them), nothing follows "close". The zero value is a
// session before its first frame.
type Server struct {
	next   uint32 // expected transaction number; 0 means 1
	open   bool
	closed bool
}

// Closed reports whether the session received "close".
func (s *Server) Closed() bool { return s.closed }

// Accept checks frame f against the session and says what it is. An
// error ends the session: wrong transaction number, a command before
// "open", anything after "close", a second "open", a client that does
// not offer the syslog command.
func (s *Server) Accept(f Frame) (Kind, error) {
	want := s.next
	if want == 0 {
		want = 1
	}
	if s.closed {
		return 0, errorf("sequence", "frame %d %s after close", f.Txnr, clip(f.Cmd))
	}
	if f.Txnr != want {
		return 0, errorf("txnr", "transaction number %d, expected %d", f.Txnr, want)
	}
	s.next = NextTxnr(want)
	switch string(f.Cmd) {
	case CmdOpen:
		if s.open {
			return 0, errorf("sequence", "second open in one session (transaction %d)", f.Txnr)
		}
		if v, ok := Offer(f.Data, "relp_version"); ok {
			if len(v) == 0 {
				return 0, errorf("offer", "open offers an empty relp_version")
			}
			if _, err := strconv.ParseUint(string(v[0]), 10, 31); err != nil {
				return 0, errorf("offer", "open offers relp_version %q", v[0])
			}
		}
		cmds, _ := Offer(f.Data, "commands")
		if !hasValue(cmds, CmdSyslog) {
			return 0, errorf("offer", "client does not offer the syslog command")
		}
		s.open = true
		return KindOpen, nil
	case CmdSyslog:
		if !s.open {
			return 0, errorf("sequence", "syslog before open (transaction %d)", f.Txnr)
		}
		return KindSyslog, nil
	case CmdClose:
		if !s.open {
			return 0, errorf("sequence", "close before open (transaction %d)", f.Txnr)
		}
		s.closed = true
		return KindClose, nil
	}
	if !s.open {
		return 0, errorf("sequence", "command %q before open (transaction %d)", clip(f.Cmd), f.Txnr)
	}
	return KindUnknown, nil
}

// OpenResponse is the data of the server's "rsp" to "open": librelp's
// "200 OK" followed by the server's offers.
func OpenResponse(software string) string {
	return "OK\nrelp_version=" + strconv.Itoa(Version) + "\nrelp_software=" + software + "\ncommands=" + CmdSyslog
}
