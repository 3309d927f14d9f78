package ports

// Audit statuses of a listening socket.
const (
	// StatusDeclared: a declared listener covers the socket.
	StatusDeclared = "declared"
	// StatusUnexpected: no declared listener covers the socket.
	StatusUnexpected = "unexpected listener"
)

// AuditedSocket is a listening socket with what the config says about it.
type AuditedSocket struct {
	Socket
	// Service is what the port usually carries ("" when not in the table).
	Service string `json:"service"`
	// Status is StatusDeclared or StatusUnexpected.
	Status string `json:"status"`
	// DeclaredBy is the config path of the listener that covers it.
	DeclaredBy string `json:"declared_by,omitempty"`
}

// Audit compares declared listeners with the host's listening sockets.
type Audit struct {
	// Sockets are all listening sockets, in ReadSockets order.
	Sockets []AuditedSocket `json:"sockets"`
	// NotListening are declared listeners no socket matches.
	NotListening []Listener `json:"not_listening"`
	// Unchecked are declared listeners that cannot be matched: port 0
	// (chosen when wharf starts) or a host that does not resolve.
	Unchecked []Listener `json:"unchecked"`
}

// Unexpected counts sockets no declared listener covers.
func (a *Audit) Unexpected() int {
	n := 0
	for _, s := range a.Sockets {
		if s.Status == StatusUnexpected {
			n++
		}
	}
	return n
}

// AuditSockets matches ls (from Declared) against ss (from ReadSockets).
// A socket matches a listener with the same transport and port and the
// same address; a wildcard listener matches a wildcard socket of its
// family, or of either family where Go's net.Listen serves it (admin,
// proxy modes: 0.0.0.0 there becomes a dual-stack :: socket). A specific
// address also matches its IPv4-mapped form on an IPv6 socket.
func AuditSockets(ls []Listener, ss []Socket) *Audit {
	a := &Audit{Sockets: make([]AuditedSocket, 0, len(ss)), NotListening: []Listener{}, Unchecked: []Listener{}}
	found := make([]bool, len(ls))
	for _, s := range ss {
		as := AuditedSocket{Socket: s, Status: StatusUnexpected}
		if svc := Lookup(s.Port, s.Proto); svc != nil {
			as.Service = svc.Name
		}
		for i := range ls {
			if listens(&ls[i], &s) {
				found[i] = true
				if as.DeclaredBy == "" {
					as.Status, as.DeclaredBy = StatusDeclared, ls[i].Path
				}
			}
		}
		a.Sockets = append(a.Sockets, as)
	}
	for i := range ls {
		switch {
		case ls[i].Port == 0 || len(ls[i].addrs) == 0:
			a.Unchecked = append(a.Unchecked, ls[i])
		case !found[i]:
			a.NotListening = append(a.NotListening, ls[i])
		}
	}
	return a
}

// listens reports whether socket s serves listener l.
func listens(l *Listener, s *Socket) bool {
	if l.Proto != s.Proto || l.Port != s.Port || l.Port == 0 {
		return false
	}
	for _, a := range l.addrs {
		if a == s.Addr {
			return true
		}
		if a.IsUnspecified() && s.Addr.IsUnspecified() && (l.dualStack() || a.Is4() == s.Addr.Is4()) {
			return true
		}
	}
	return false
}
