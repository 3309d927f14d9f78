package acl

import (
	"net/netip"
	"sync"
)

// PerIP counts open connections per source and refuses one over a cap
// (maxconn_per_ip), so one sender cannot take every connection slot of a
// bind. A source is an IPv4 address, or an IPv6 /64: one host usually
// holds a whole /64, so counting single IPv6 addresses would let it open
// a cap's worth from each of 2^64 of them. Safe for concurrent use; the
// map is sharded so event loops accepting at once rarely share a lock.
type PerIP struct {
	shards [16]perIPShard
}

type perIPShard struct {
	mu sync.Mutex
	n  map[netip.Addr]int32
}

// source maps an address to the key it is counted under.
func source(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

func (p *PerIP) shard(a netip.Addr) *perIPShard {
	b := a.As16()
	return &p.shards[(b[15]^b[7]^b[3])&15]
}

// Acquire counts a new connection from a and reports true, or reports
// false (and counts nothing) when a already holds max connections. max
// <= 0 means no cap; an invalid address (not TCP) is never capped.
// Every true must be paired with one Release.
func (p *PerIP) Acquire(a netip.Addr, max int) bool {
	if !a.IsValid() {
		return true
	}
	a = source(a)
	s := p.shard(a)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == nil {
		s.n = make(map[netip.Addr]int32)
	}
	n := s.n[a]
	if max > 0 && int(n) >= max {
		return false
	}
	s.n[a] = n + 1
	return true
}

// Release counts a connection from a (admitted by Acquire) gone.
func (p *PerIP) Release(a netip.Addr) {
	if !a.IsValid() {
		return
	}
	a = source(a)
	s := p.shard(a)
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.n[a]; n > 1 {
		s.n[a] = n - 1
	} else {
		delete(s.n, a)
	}
}

// Open returns how many connections a's source holds.
func (p *PerIP) Open(a netip.Addr) int {
	a = source(a)
	s := p.shard(a)
	s.mu.Lock()
	defer s.mu.Unlock()
	return int(s.n[a])
}
