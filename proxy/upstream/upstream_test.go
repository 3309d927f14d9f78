package upstream

import (
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"wharf/conf"
	"wharf/metrics"
)

// pool builds a backend without starting checks; servers are
// "name:weight:maxconn", with ":backup" after for a backup server.
func pool(t *testing.T, balance string, servers ...string) *Backend {
	t.Helper()
	bc := &conf.Backend{Name: "b", Balance: balance}
	for i, s := range servers {
		parts := strings.Split(s, ":")
		sc := conf.Server{Name: parts[0], Address: "127.0.0.1:" + string(rune('1'+i))}
		if len(parts) > 1 {
			sc.Weight = atoi(parts[1])
		}
		if len(parts) > 2 {
			sc.MaxConn = atoi(parts[2])
		}
		sc.Backup = len(parts) > 3 && parts[3] == "backup"
		bc.Servers = append(bc.Servers, sc)
	}
	(&conf.Config{Backends: map[string]*conf.Backend{"b": bc}}).ApplyDefaults()
	b, err := New(bc, metrics.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

func (b *Backend) server(name string) *Server {
	for _, s := range b.servers {
		if s.Name == name {
			return s
		}
	}
	return nil
}

func TestPick(t *testing.T) {
	// f picks n times (releasing each unless hold) and compares the
	// sequence of names.
	f := func(b *Backend, client string, n int, hold bool, want string) {
		t.Helper()
		var got []string
		for range n {
			s := b.Pick(netip.MustParseAddr(client), nil)
			if s == nil {
				got = append(got, "-")
				continue
			}
			got = append(got, s.Name)
			if !hold {
				s.Release()
			}
		}
		if g := strings.Join(got, ""); g != want {
			t.Errorf("%s picks: %s, want %s", b.cfg.Balance, g, want)
		}
	}
	f(pool(t, "roundrobin", "a", "b", "c"), "10.0.0.1", 6, false, "abcabc")
	f(pool(t, "roundrobin", "a:5", "b:1", "c:1"), "10.0.0.1", 7, false, "aabacaa") // smooth: spread out
	f(pool(t, "roundrobin", "a:1:1", "b:1:1"), "10.0.0.1", 3, true, "ab-")         // maxconn full
	f(pool(t, "leastconn", "a", "b:2"), "10.0.0.1", 6, true, "abbbab")             // a:2 b:4 held; ties rotate
	f(pool(t, "leastconn", "a", "b"), "10.0.0.1", 4, false, "abab")                // ties rotate
	b := pool(t, "source", "a", "b", "c", "d")
	first := b.Pick(netip.MustParseAddr("192.0.2.1"), nil)
	first.Release()
	f(b, "192.0.2.1", 3, false, strings.Repeat(first.Name, 3))
	f(b, "::ffff:192.0.2.1", 1, false, first.Name) // mapped form is the same client
	// Clients spread over the servers.
	seen := map[string]bool{}
	for i := range 64 {
		s := b.Pick(netip.AddrFrom4([4]byte{10, 0, byte(i), 1}), nil)
		seen[s.Name] = true
		s.Release()
	}
	if len(seen) != 4 {
		t.Errorf("64 clients reached %d of 4 servers", len(seen))
	}
	// Down servers and tried ones are skipped.
	b = pool(t, "roundrobin", "a", "b", "c")
	b.server("b").up.Store(false)
	f(b, "10.0.0.1", 4, false, "acac")
	if s := b.Pick(netip.Addr{}, []*Server{b.server("a"), b.server("c")}); s != nil {
		t.Errorf("picked %s, all others tried or down", s.Name)
	}
}

func TestRiseFall(t *testing.T) {
	b := pool(t, "roundrobin", "a")
	b.cfg.Rise, b.cfg.Fall = 2, 3
	s := b.server("a")
	f := func(ok bool, wantUp bool) {
		t.Helper()
		s.observe(ok, "test", nil)
		if s.Up() != wantUp {
			t.Fatalf("after %v: up = %v, want %v", ok, s.Up(), wantUp)
		}
	}
	f(false, true)
	f(false, true)
	f(true, true) // a success resets the fail run
	f(false, true)
	f(false, true)
	f(false, false) // third failure in a row
	f(true, false)
	f(false, false) // a failure resets the ok run
	f(true, false)
	f(true, true) // second success in a row
	if up, down := s.wentUp.Load(), s.wentDown.Load(); up != 1 || down != 1 {
		t.Errorf("transitions up %d down %d, want 1 and 1", up, down)
	}
}

func BenchmarkPick(b *testing.B) {
	for _, bal := range []string{"roundrobin", "leastconn", "source"} {
		b.Run(bal, func(b *testing.B) {
			p := pool(&testing.T{}, bal, "a:3", "b:1", "c:2", "d:1")
			client := netip.MustParseAddr("192.0.2.1")
			b.ReportAllocs()
			for b.Loop() {
				p.Pick(client, nil).Release()
			}
		})
	}
}

// The balance policy is resolved once, by New: an unknown one is an
// error there (it used to fall back to round robin on every pick).
func TestUnknownBalance(t *testing.T) {
	bc := &conf.Backend{Name: "b", Balance: "random", Servers: []conf.Server{{Address: "127.0.0.1:1"}}}
	_, err := New(bc, metrics.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.Contains(err.Error(), `balance "random" is not one of`) {
		t.Errorf("New with balance random: %v", err)
	}
}

// TestBackupServers: backups take nothing while any other server is up,
// ready and weighted; then the first backup up in config order takes
// everything, and the others resume as soon as one is back. A pool
// server that is only full does not let a backup in (HAProxy's rule).
func TestBackupServers(t *testing.T) {
	for _, balance := range []string{"roundrobin", "leastconn", "source", "hash"} {
		t.Run(balance, func(t *testing.T) {
			b := pool(t, balance, "a:1:1", "b", "c:1:0:backup", "d:1:0:backup")
			picks := func(n int) map[string]int {
				got := map[string]int{}
				for i := range n {
					client := netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})
					var s *Server
					switch i % 3 {
					case 0:
						s = b.Pick(client, nil)
					case 1:
						s = b.PickKey(uint64(i)*0x9e3779b97f4a7c15, nil)
					default:
						s = b.PickRoundRobin(nil)
					}
					if s == nil {
						got["none"]++
						continue
					}
					got[s.Name]++
					s.Release()
				}
				return got
			}
			if got := picks(60); got["c"]+got["d"]+got["none"] != 0 {
				t.Errorf("all up: %v, want only a and b", got)
			}
			b.server("a").up.Store(false)
			if got := picks(30); got["b"] != 30 {
				t.Errorf("a down: %v, want all on b", got)
			}
			b.server("b").SetState(StateMaint)
			if got := picks(30); got["c"] != 30 {
				t.Errorf("a down, b in maint: %v, want all on the first backup c", got)
			}
			b.server("c").up.Store(false)
			if got := picks(30); got["d"] != 30 {
				t.Errorf("c down too: %v, want all on d", got)
			}
			b.server("a").up.Store(true)
			if got := picks(30); got["a"] != 30 {
				t.Errorf("a back: %v, want all on a (backups idle again)", got)
			}
			// a is full (maxconn 1) while b is in maint: no backup.
			full := b.Pick(netip.Addr{}, nil)
			if full == nil || full.Name != "a" {
				t.Fatalf("pick = %v, want a", full)
			}
			if s := b.Pick(netip.Addr{}, nil); s != nil {
				t.Errorf("a full: picked %s, want none (a backup is for servers down, not busy)", s.Name)
				s.Release()
			}
			full.Release()
		})
	}
}
