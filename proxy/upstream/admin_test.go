package upstream

import (
	"net/netip"
	"strings"
	"sync"
	"testing"

	"wharf/metrics"
)

// share picks n times from b for distinct clients and counts picks per
// server name; "-" counts refusals. It holds every pick until the end, so
// leastconn sees the load it balances by.
func share(b *Backend, n int) map[string]int {
	got := map[string]int{}
	var held []*Server
	for i := range n {
		s := b.Pick(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), nil)
		if s == nil {
			got["-"]++
			continue
		}
		got[s.Name]++
		held = append(held, s)
	}
	for _, s := range held {
		s.Release()
	}
	return got
}

// Drain and maint take a server out of every policy's picks while it
// stays up (health is separate); ready puts it back. Connections in
// flight are not touched: Active still counts them.
func TestAdminStateEveryPolicy(t *testing.T) {
	for _, bal := range []string{"roundrobin", "leastconn", "source", "hash"} {
		for _, st := range []AdminState{StateDrain, StateMaint} {
			b := pool(t, bal, "a", "b", "c")
			held := b.server("b")
			b.Pick(netip.Addr{}, []*Server{b.server("a"), b.server("c")}) // one in flight on b
			if err := held.SetState(st); err != nil {
				t.Fatal(err)
			}
			if got := share(b, 300); got["b"] != 0 || got["a"] == 0 || got["c"] == 0 {
				t.Errorf("%s, b in %s: picks %v, want none on b", bal, st, got)
			}
			if !held.Up() || held.Active() != 1 || held.Stats().AdminState != st.String() {
				t.Errorf("%s, b in %s: up %v active %d stats state %q", bal, st, held.Up(), held.Active(), held.Stats().AdminState)
			}
			held.Release()
			held.SetState(StateReady)
			if got := share(b, 300); got["b"] == 0 {
				t.Errorf("%s, b ready again: picks %v, none on b", bal, got)
			}
		}
	}
	b := pool(t, "roundrobin", "a")
	b.server("a").SetState(StateDrain)
	if s := b.Pick(netip.Addr{}, nil); s != nil {
		t.Errorf("the only server drained: picked %s, want none (503)", s.Name)
	}
}

// Weight changes shift the share under every policy; weight 0 takes no
// new picks, as in HAProxy.
func TestSetWeightShiftsShare(t *testing.T) {
	for _, bal := range []string{"roundrobin", "leastconn", "source", "hash"} {
		b := pool(t, bal, "a", "b")
		const n = 4000
		if err := b.server("a").SetWeight(3); err != nil {
			t.Fatal(err)
		}
		got := share(b, n)
		if r := float64(got["a"]) / n; r < 0.65 || r > 0.85 {
			t.Errorf("%s, weights 3:1: a got %.0f%% of picks %v, want about 75%%", bal, 100*r, got)
		}
		if b.server("a").EffectiveWeight() != 3 || b.server("a").Weight != 1 || b.server("a").Stats().Weight != 3 {
			t.Errorf("%s: effective weight %d, configured %d", bal, b.server("a").EffectiveWeight(), b.server("a").Weight)
		}
		b.server("a").SetWeight(0)
		if got := share(b, 200); got["a"] != 0 || got["b"] != 200 {
			t.Errorf("%s, a at weight 0: picks %v, want all on b", bal, got)
		}
	}
	f := func(w int, want string) {
		t.Helper()
		err := pool(t, "roundrobin", "a").server("a").SetWeight(w)
		if (err == nil) != (want == "") || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("SetWeight(%d) = %v, want %q", w, err, want)
		}
	}
	f(0, "")
	f(256, "")
	f(257, "weight 257 out of range (0-256)")
	f(-1, "out of range")
}

// A weight change on a "hash" backend rebuilds the ring: raising one
// server's weight moves keys only onto it, and setting it back restores
// every key's owner (consistent hashing holds across runtime changes).
func TestSetWeightRebuildsRing(t *testing.T) {
	const n = 20000
	b := pool(t, "hash", "a", "b", "c", "d")
	before := owners(b, n)
	b.server("d").SetWeight(2)
	after := owners(b, n)
	moved := 0
	for i := range n {
		if before[i] != after[i] {
			moved++
			if after[i] != "d" {
				t.Fatalf("key %d moved from %s to %s, not to the heavier server", i, before[i], after[i])
			}
		}
	}
	if share := float64(moved) / n; share < 0.10 || share > 0.30 {
		t.Errorf("d from weight 1 to 2 moved %.1f%% of the keys, want about 15%%", 100*share)
	}
	b.server("d").SetWeight(1)
	for i, o := range owners(b, n) {
		if o != before[i] {
			t.Fatalf("key %d on %s after the weight was set back, was %s", i, o, before[i])
		}
	}
}

// Picks stay allocation-free with the admin state and weight checks.
func TestPickAllocsWithAdminState(t *testing.T) {
	for _, bal := range []string{"roundrobin", "leastconn", "source", "hash"} {
		b := pool(t, bal, "a:3", "b", "c:2")
		b.server("b").SetState(StateDrain)
		b.server("c").SetWeight(5)
		client := netip.MustParseAddr("192.0.2.1")
		var tried [3]*Server
		if n := testing.AllocsPerRun(1000, func() { b.Pick(client, tried[:0]).Release() }); n != 0 {
			t.Errorf("%s: %.1f allocations per Pick, want 0", bal, n)
		}
	}
}

// SetState and SetWeight race with picks (go test -race guards the
// lock discipline).
func TestAdminConcurrentWithPicks(t *testing.T) {
	b := pool(t, "hash", "a", "b", "c")
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if s := b.PickKey(HashBytes([]byte("/k")), nil); s != nil {
					s.Release()
				}
				if s := b.PickRoundRobin(nil); s != nil {
					s.Release()
				}
			}
		}()
	}
	for i := range 50 {
		b.server("a").SetWeight(1 + i%4)
		b.server("b").SetState(AdminState(i % 3))
	}
	close(stop)
	wg.Wait()
}

// The admin state and weight are exported as gauges.
func TestAdminMetrics(t *testing.T) {
	reg := metrics.NewRegistry()
	b := pool(t, "roundrobin", "a")
	b2, err := New(b.Config(), reg, b.log)
	if err != nil {
		t.Fatal(err)
	}
	b2.Start() // exports the computed series
	defer b2.Close()
	b2.server("a").SetState(StateMaint)
	b2.server("a").SetWeight(7)
	mfs, err := reg.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				if l.GetName() == "state" {
					key += "/" + l.GetValue()
				}
			}
			got[key] = m.GetGauge().GetValue()
		}
	}
	want := map[string]float64{
		"wharf_proxy_server_weight":            7,
		"wharf_proxy_server_admin_state/ready": 0,
		"wharf_proxy_server_admin_state/drain": 0,
		"wharf_proxy_server_admin_state/maint": 1,
		"wharf_proxy_server_up":                1,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
}

// CarryAdminState keeps what the operator set on servers a rebuilt
// backend still has unchanged, and not on changed ones.
func TestCarryAdminState(t *testing.T) {
	old := pool(t, "roundrobin", "a", "b:2", "c")
	old.server("a").SetState(StateDrain)
	old.server("b").SetWeight(9)
	old.server("c").SetState(StateMaint)
	nb := pool(t, "roundrobin", "a", "b:3", "c") // b's configured weight changed
	nb.CarryAdminState(old)
	if st := nb.server("a").State(); st != StateDrain {
		t.Errorf("a: state %s, want drain carried over", st)
	}
	if w := nb.server("b").EffectiveWeight(); w != 3 {
		t.Errorf("b: weight %d, want 3 (its config changed, so the runtime weight is not carried)", w)
	}
	if st := nb.server("c").State(); st != StateMaint {
		t.Errorf("c: state %s, want maint carried over", st)
	}
}
