package upstream

import (
	"fmt"
	"math"
	"net/netip"
	"testing"
)

// owners maps each of n keys to the server a "hash" backend picks.
func owners(b *Backend, n int) []string {
	out := make([]string, n)
	for i := range n {
		s := b.PickKey(HashBytes(fmt.Appendf(nil, "/item/%d", i)), nil)
		if s == nil {
			out[i] = ""
			continue
		}
		s.Release()
		out[i] = s.Name
	}
	return out
}

// TestHashRingAddServer guards the point of consistent hashing: adding a
// fifth server to four takes about a fifth of the keys, every moved key
// goes to the new server, and no key moves between the old four (with
// modulo hashing, as balance "source" does, about 4/5 would move).
func TestHashRingAddServer(t *testing.T) {
	const n = 20000
	before := owners(pool(t, "hash", "a", "b", "c", "d"), n)
	after := owners(pool(t, "hash", "a", "b", "c", "d", "e"), n)
	moved := 0
	for i := range n {
		if before[i] == after[i] {
			continue
		}
		moved++
		if after[i] != "e" {
			t.Fatalf("key %d moved from %s to %s, not to the new server", i, before[i], after[i])
		}
	}
	if share := float64(moved) / n; share < 0.14 || share > 0.26 {
		t.Errorf("adding a fifth server moved %.1f%% of the keys, want about 20%%", 100*share)
	}
}

// A server going down moves only its own keys; back up, they return.
func TestHashRingServerDown(t *testing.T) {
	const n = 20000
	b := pool(t, "hash", "a", "b", "c", "d")
	before := owners(b, n)
	b.server("c").up.Store(false)
	down := owners(b, n)
	for i := range n {
		switch {
		case before[i] == "c" && down[i] == "c":
			t.Fatalf("key %d still on the down server", i)
		case before[i] != "c" && down[i] != before[i]:
			t.Fatalf("key %d moved from %s to %s though its server stayed up", i, before[i], down[i])
		}
	}
	b.server("c").up.Store(true)
	back := owners(b, n)
	for i := range n {
		if back[i] != before[i] {
			t.Fatalf("key %d on %s after c came back, was %s", i, back[i], before[i])
		}
	}
}

// Keys spread by weight: equal servers within 15% of an even share, a
// weight-3 server about three times a weight-1 one.
func TestHashRingSpread(t *testing.T) {
	const n = 40000
	count := func(b *Backend) map[string]int {
		c := map[string]int{}
		for _, o := range owners(b, n) {
			c[o]++
		}
		return c
	}
	c := count(pool(t, "hash", "a", "b", "c", "d"))
	for _, name := range []string{"a", "b", "c", "d"} {
		if dev := math.Abs(float64(c[name])/(n/4) - 1); dev > 0.15 {
			t.Errorf("server %s got %d of %d keys (%.0f%% off an even share)", name, c[name], n, 100*dev)
		}
	}
	c = count(pool(t, "hash", "light:1", "heavy:3"))
	if r := float64(c["heavy"]) / float64(c["light"]); r < 2.4 || r > 3.6 {
		t.Errorf("weight 3 against 1 got %d vs %d keys (%.2fx), want about 3x", c["heavy"], c["light"], r)
	}
}

// The same client address sticks to one server on a tcp frontend
// (Pick with hash_key = "source"), and maxconn / tried are honoured by
// walking on round the ring.
func TestHashSourceAndTried(t *testing.T) {
	b := pool(t, "hash", "a", "b", "c")
	ip := netip.MustParseAddr("192.0.2.7")
	first := b.Pick(ip, nil)
	first.Release()
	for range 10 {
		s := b.Pick(ip, nil)
		if s != first {
			t.Fatalf("client moved from %s to %s", first.Name, s.Name)
		}
		s.Release()
	}
	next := b.Pick(ip, []*Server{first})
	if next == nil || next == first {
		t.Fatalf("tried server not skipped: %v", next)
	}
	next.Release()
	if s := b.Pick(ip, b.servers); s != nil {
		t.Fatalf("picked %s with every server tried", s.Name)
	}
}

func TestPickKeyAllocs(t *testing.T) {
	b := pool(t, "hash", "a", "b", "c", "d")
	key := []byte("/some/path")
	var tried [4]*Server
	if n := testing.AllocsPerRun(1000, func() {
		s := b.PickKey(HashBytes(key), tried[:0])
		s.Release()
	}); n != 0 {
		t.Errorf("%.1f allocations per PickKey, want 0", n)
	}
}

func BenchmarkPickKey(b *testing.B) {
	be := pool(&testing.T{}, "hash", "a", "b", "c", "d")
	key := []byte("/some/longer/path/to/an/object")
	b.ReportAllocs()
	for range b.N {
		s := be.PickKey(HashBytes(key), nil)
		s.Release()
	}
}
