package upstream

import (
	"net/netip"
	"slices"
	"strconv"
)

// HashOn says what a "hash" backend hashes to pick a server.
type HashOn uint8

// What a "hash" backend hashes (conf: hash_key).
const (
	// HashSource is the client address (tcp and http frontends).
	HashSource HashOn = iota
	// HashURI is the request path without the query (http frontends).
	HashURI
	// HashHeader is one request header's value (http frontends); a
	// request without it is balanced round robin, as HAProxy does.
	HashHeader
)

// pointsPerWeight is how many places on the ring one unit of weight
// takes. More points spread keys more evenly over the servers (about
// ±10% at 100 points) at the cost of a larger ring (weight 256 x 100
// points x 16 bytes = 400 KiB for one heavy server, built once).
const pointsPerWeight = 100

// point is one place of a server on the consistent-hash ring.
type point struct {
	h uint64
	s *Server
}

// ring is the consistent-hash ring of a "hash" backend: every server
// owns weight x pointsPerWeight points placed by hashing its name and the
// point's index, so where a server sits does not depend on the others.
// A key goes to the owner of the first point at or after its hash that
// is eligible. Adding a server takes keys only from the arcs its new
// points cut; removing one (or marking it down) moves only its own keys,
// to the next servers round the ring. Built in New and again by
// SetWeight (a new ring swapped in under the backend's lock); a ring is
// read-only once built.
type ring []point

// newRing builds the ring of servers with the weights weight gives.
func newRing(servers []*Server, weight func(*Server) int) ring {
	var r ring
	for _, s := range servers {
		n := weight(s) * pointsPerWeight
		buf := make([]byte, 0, len(s.Name)+8)
		for i := range n {
			buf = strconv.AppendInt(append(buf[:0], s.Name...), int64(i), 10)
			r = append(r, point{h: HashBytes(buf), s: s})
		}
	}
	slices.SortFunc(r, func(a, b point) int {
		switch {
		case a.h < b.h:
			return -1
		case a.h > b.h:
			return 1
		}
		return 0
	})
	return r
}

// lookup returns the first eligible server at or after key round the
// ring, or nil when none is.
func (r ring) lookup(key uint64, tried []*Server) *Server {
	if len(r) == 0 {
		return nil
	}
	i, _ := slices.BinarySearchFunc(r, key, func(p point, k uint64) int {
		switch {
		case p.h < k:
			return -1
		case p.h > k:
			return 1
		}
		return 0
	})
	var last *Server
	for n := 0; n < len(r); n++ {
		p := r[(i+n)%len(r)]
		if p.s == last {
			continue // the same server's neighbouring points: already refused
		}
		if p.s.eligible(tried) {
			return p.s
		}
		last = p.s
	}
	return nil
}

// HashBytes is the key of b for a "hash" backend's PickKey: 64-bit
// FNV-1a with a final avalanche (splitmix64's), so keys that differ in
// one byte land far apart on the ring. It allocates nothing.
func HashBytes(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return mix(h)
}

func mix(h uint64) uint64 {
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}

// hashAddr is HashBytes of the address's 16-byte form, inline.
func hashAddr(a netip.Addr) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range a.Unmap().As16() {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return mix(h)
}

// pickHash is the "hash" policy for a caller that has only the client
// address (tcp frontends, hash_key = "source").
func (b *Backend) pickHash(client netip.Addr, tried []*Server) *Server {
	return b.ring.lookup(hashAddr(client), tried)
}

// HashOn reports what a "hash" backend hashes and, for HashHeader, the
// header's name in lower case; ok is false for other balance policies.
func (b *Backend) HashOn() (on HashOn, header string, ok bool) {
	return b.hashOn, b.hashHeader, b.policy == hashRing
}

// Key is how a pick chooses its server, kept by a request that waits in
// the backend's queue so the server it is given is the one its pick
// would have chosen: by the client address (the backend's policy), by a
// hash key the caller computed, or round robin. The zero Key is
// ClientKey of the invalid address.
type Key struct {
	by     keyBy
	client netip.Addr
	hash   uint64
}

type keyBy uint8

const (
	byClient keyBy = iota
	byHash
	byRoundRobin
)

// ClientKey picks by the backend's policy with the client's address (Pick).
func ClientKey(client netip.Addr) Key { return Key{by: byClient, client: client} }

// HashKey picks as PickKey does with key.
func HashKey(key uint64) Key { return Key{by: byHash, hash: key} }

// RoundRobinKey picks as PickRoundRobin does.
func RoundRobinKey() Key { return Key{by: byRoundRobin} }

// chooseKey is choose for k, with b.mu held.
func (b *Backend) chooseKey(k Key, tried []*Server) *Server {
	if k.by == byClient || k.by == byHash && b.policy != hashRing {
		return b.choose(k.client, tried)
	}
	if s, ok := b.backup(tried); ok {
		return s
	}
	if k.by == byHash {
		return b.ring.lookup(k.hash, tried)
	}
	return b.pickRoundRobin(tried)
}

// PickBy is Pick with the server chosen by k.
func (b *Backend) PickBy(k Key, tried []*Server) *Server {
	b.mu.Lock()
	s := b.chooseKey(k, tried)
	if s != nil {
		s.take()
	}
	b.mu.Unlock()
	return s
}

// PickKey is Pick for a "hash" backend with a key the caller computed
// (HashBytes of a URI path or header value): the server that owns key on
// the consistent-hash ring, or the next eligible one round it. On other
// backends it falls back to Pick with an invalid client address.
func (b *Backend) PickKey(key uint64, tried []*Server) *Server { return b.PickBy(HashKey(key), tried) }

// PickRoundRobin picks by weighted round robin whatever the backend's
// policy: a "hash" backend's fallback for a request without its key.
func (b *Backend) PickRoundRobin(tried []*Server) *Server { return b.PickBy(RoundRobinKey(), tried) }
