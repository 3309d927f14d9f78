package acl

import (
	"net/netip"
	"sync"
	"testing"
)

func TestPerIP(t *testing.T) {
	var p PerIP
	a, b := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	for i := range 3 {
		if !p.Acquire(a, 3) {
			t.Fatalf("connection %d refused under the cap", i)
		}
	}
	if p.Acquire(a, 3) || p.Acquire(netip.MustParseAddr("::ffff:127.0.0.1"), 3) {
		t.Fatal("a fourth connection was admitted")
	}
	if !p.Acquire(b, 3) {
		t.Fatal("another address was refused")
	}
	p.Release(a)
	if !p.Acquire(a, 3) {
		t.Fatal("refused after a release")
	}
	if !p.Acquire(a, 0) {
		t.Fatal("max 0 is no cap")
	}
	// IPv6: one /64 is one source.
	x, y, z := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::ffff:2"), netip.MustParseAddr("2001:db8:0:1::1")
	if !p.Acquire(x, 1) || p.Acquire(y, 1) || !p.Acquire(z, 1) {
		t.Error("IPv6 sources are not counted per /64")
	}
	for range 2 {
		if !p.Acquire(netip.Addr{}, 1) {
			t.Error("an invalid address was capped")
		}
	}

	// Concurrent acquire/release leaves nothing behind.
	var q PerIP
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			addr := netip.AddrFrom4([4]byte{10, 0, 0, byte(i % 3)})
			for range 1000 {
				if q.Acquire(addr, 1<<20) {
					q.Release(addr)
				}
			}
		}()
	}
	wg.Wait()
	for i := range 3 {
		if n := q.Open(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})); n != 0 {
			t.Errorf("10.0.0.%d holds %d after all released", i, n)
		}
	}
}

// BenchmarkPerIP is the cost maxconn_per_ip adds to accepting a
// connection and closing it: one Acquire and one Release.
func BenchmarkPerIP(b *testing.B) {
	var p PerIP
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			a := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
			if p.Acquire(a, 512) {
				p.Release(a)
			}
			i++
		}
	})
}
