package upstream

import (
	"fmt"
	"strings"
)

// AdminState is a server's administrative state, set by the operator (the
// admin API's POST /api/servers/BACKEND/SERVER, `wharf server`), as
// HAProxy's `set server BACKEND/SERVER state ready|drain|maint`. It is
// independent of the health state (Up): health checks keep running in
// every state, so the status page shows whether a drained server is
// healthy before it is put back.
type AdminState uint32

const (
	// StateReady takes new connections and requests (when up).
	StateReady AdminState = iota
	// StateDrain takes no new connections or requests; those in flight
	// finish. The server is on its way out of service.
	StateDrain
	// StateMaint takes no new connections or requests either; those in
	// flight are not cut (as in HAProxy, where cutting them is a separate
	// command). The server is out of service.
	StateMaint
)

// String returns the state's name: ready, drain or maint.
func (a AdminState) String() string {
	switch a {
	case StateReady:
		return "ready"
	case StateDrain:
		return "drain"
	case StateMaint:
		return "maint"
	}
	return fmt.Sprintf("AdminState(%d)", uint32(a))
}

// ParseAdminState parses ready, drain or maint.
func ParseAdminState(s string) (AdminState, error) {
	for st := StateReady; st <= StateMaint; st++ {
		if strings.EqualFold(s, st.String()) {
			return st, nil
		}
	}
	return 0, fmt.Errorf("state %q is not one of ready, drain, maint", s)
}

// MaxWeight is the largest weight a server takes, in config and at
// runtime (HAProxy's limit too).
const MaxWeight = 256

// Server returns the backend's server called name, or nil.
func (b *Backend) Server(name string) *Server {
	for _, s := range b.servers {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// SetState changes the server's administrative state. New picks honour
// it at once; connections and requests in flight are left to finish.
func (s *Server) SetState(st AdminState) error {
	if st > StateMaint {
		return fmt.Errorf("proxy/upstream: backend %s server %s: invalid state %d", s.b.Name, s.Name, uint32(st))
	}
	b := s.b
	b.adminMu.Lock()
	defer b.adminMu.Unlock()
	b.mu.Lock()
	old := s.State()
	s.admin.Store(uint32(st))
	b.dispatch() // a server back in ready takes queued connections
	b.mu.Unlock()
	if old != st {
		b.log.Info("server state set", "server", s.Name, "addr", s.Addr, "from", old.String(), "to", st.String())
	}
	return nil
}

// SetWeight changes the server's effective weight (0-MaxWeight; 0 takes
// no new connections, as in HAProxy). Every balance policy uses it from
// the next pick; a "hash" backend rebuilds its consistent-hash ring, so
// only the keys on the arcs the server gains or loses move.
func (s *Server) SetWeight(w int) error {
	if w < 0 || w > MaxWeight {
		return fmt.Errorf("weight %d out of range (0-%d)", w, MaxWeight)
	}
	b := s.b
	b.adminMu.Lock() // one rebuild at a time, so the last ring built wins
	defer b.adminMu.Unlock()
	old := s.EffectiveWeight()
	if old == w {
		return nil
	}
	var r ring
	if b.policy == hashRing {
		// Built outside b.mu (weights change only under adminMu, held):
		// picks go on over the old ring meanwhile.
		r = newRing(b.pool, func(x *Server) int {
			if x == s {
				return w
			}
			return x.EffectiveWeight()
		})
	}
	b.mu.Lock()
	s.weight.Store(int32(w))
	if r != nil {
		b.ring = r
	}
	b.dispatch() // a weight above 0 takes queued connections
	b.mu.Unlock()
	b.log.Info("server weight set", "server", s.Name, "addr", s.Addr, "from", old, "to", w)
	return nil
}

// CarryAdminState copies the administrative state and effective weight
// of old's servers to b's servers of the same name whose address and
// configured weight are unchanged, so a rebuilt backend keeps what the
// operator set. Call before b takes traffic.
func (b *Backend) CarryAdminState(old *Backend) {
	for _, s := range b.servers {
		o := old.Server(s.Name)
		if o == nil || o.Addr != s.Addr || o.Weight != s.Weight {
			continue
		}
		s.SetState(o.State())
		s.SetWeight(o.EffectiveWeight())
	}
}

// CarryHealth copies the health state (up or down, and the check runs
// toward rise and fall) of old's servers to b's servers of the same name
// and address, so a server a rebuilt backend keeps does not take traffic
// while it is down, nor wait out rise checks while it is up. Call before
// b takes traffic.
func (b *Backend) CarryHealth(old *Backend) {
	for _, s := range b.servers {
		o := old.Server(s.Name)
		if o == nil || o.Addr != s.Addr {
			continue
		}
		old.mu.Lock()
		up, okRun, failRun := o.up.Load(), o.okRun, o.failRun
		old.mu.Unlock()
		b.mu.Lock()
		s.up.Store(up)
		s.okRun, s.failRun = okRun, failRun
		b.mu.Unlock()
		if up {
			s.upGauge.Set(1)
		} else {
			s.upGauge.Set(0)
		}
	}
}

// Active returns the connections or requests in flight to all of b's
// servers: 0 once a backend a reload removed has no more use.
func (b *Backend) Active() int64 {
	var n int64
	for _, s := range b.servers {
		n += s.Active()
	}
	return n
}
