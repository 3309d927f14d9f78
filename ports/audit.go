package ports

import (
	"fmt"
	"os"
	"path/filepath"
)

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
	// Ephemeral is true for a port in the kernel's ephemeral range
	// (ip_local_port_range): the kernel picked it, so it is likely a
	// client's UDP socket or a server bound to port 0.
	Ephemeral bool `json:"ephemeral_port,omitempty"`
	// Count is how many sockets this row stands for: identical sockets
	// of one process (SO_REUSEPORT, one per event loop) share a row.
	Count int `json:"count"`
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
//
// ephemeral is the kernel's ephemeral port range (low, high), as
// EphemeralRange reads it; {0, 0} marks no port ephemeral. Adjacent
// identical sockets (same process, address and outcome) are merged into
// one row with a Count.
func AuditSockets(ls []Listener, ss []Socket, ephemeral [2]int) *Audit {
	a := &Audit{Sockets: make([]AuditedSocket, 0, len(ss)), NotListening: []Listener{}, Unchecked: []Listener{}}
	found := make([]bool, len(ls))
	for _, s := range ss {
		as := AuditedSocket{Socket: s, Status: StatusUnexpected, Count: 1}
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
		as.Ephemeral = ephemeral[0] > 0 && s.Port >= ephemeral[0] && s.Port <= ephemeral[1]
		if n := len(a.Sockets); n > 0 && sameRow(&a.Sockets[n-1], &as) {
			a.Sockets[n-1].Count++
			continue
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
		// A wildcard listens on a socket of its own family: 0.0.0.0 on
		// IPv4, [::] on IPv6 (internal/netfamily).
		if a.IsUnspecified() && s.Addr.IsUnspecified() && a.Is4() == s.Addr.Is4() {
			return true
		}
	}
	return false
}

// sameRow reports sockets that differ only in inode.
func sameRow(x, y *AuditedSocket) bool {
	return x.Proto == y.Proto && x.Addr == y.Addr && x.Port == y.Port && x.V6 == y.V6 &&
		x.UID == y.UID && x.PID == y.PID && x.Process == y.Process &&
		x.Status == y.Status && x.DeclaredBy == y.DeclaredBy
}

// EphemeralRange reads the kernel's ephemeral port range from
// procRoot/sys/net/ipv4/ip_local_port_range ("32768\t60999").
func EphemeralRange(procRoot string) ([2]int, error) {
	b, err := os.ReadFile(filepath.Join(procRoot, "sys/net/ipv4/ip_local_port_range"))
	if err != nil {
		return [2]int{}, fmt.Errorf("ports: ephemeral port range: %w", err)
	}
	var r [2]int
	if _, err := fmt.Sscan(string(b), &r[0], &r[1]); err != nil || r[0] <= 0 || r[1] < r[0] {
		return [2]int{}, fmt.Errorf("ports: ephemeral port range: cannot parse %q", b)
	}
	return r, nil
}
