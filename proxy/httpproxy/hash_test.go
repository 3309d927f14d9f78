package httpproxy

import (
	"fmt"
	"strings"
	"testing"
)

// TestHashBalance: balance = "hash" on a header or the URI, over real
// sockets. The same tenant (or path) always reaches the same server,
// different ones spread over the servers, and a request without the
// header is balanced round robin instead of failing.
func TestHashBalance(t *testing.T) {
	a, b, c := reporter(t, "a"), reporter(t, "b"), reporter(t, "c")
	servers := func(backend string) string {
		return fmt.Sprintf(`
[[backend.%[1]s.server]]
name = "a"
address = %[2]q
[[backend.%[1]s.server]]
name = "b"
address = %[3]q
[[backend.%[1]s.server]]
name = "c"
address = %[4]q
`, backend, hostPort(a), hostPort(b), hostPort(c))
	}
	r := start(t, `
[frontend.f]
mode = "http"
bind = ["tcp://127.0.0.1:0"]
backend = "tenant"
[[frontend.f.use]]
path_prefix = "/obj/"
backend = "uri"
[backend.tenant]
balance = "hash"
hash_key = "header:X-Tenant"
check = "none"
`+servers("tenant")+`
[backend.uri]
balance = "hash"
hash_key = "uri"
check = "none"
`+servers("uri"))
	who := func(path string, hdr ...string) string {
		t.Helper()
		code, body := get(t, r.url()+path, "x", hdr...)
		if code != 200 {
			t.Fatalf("GET %s: %d %s", path, code, body)
		}
		name, _, _ := strings.Cut(body, " ")
		return name
	}
	seen := map[string]bool{}
	for i := range 30 {
		tenant := fmt.Sprintf("tenant-%d", i)
		first := who("/", "X-Tenant", tenant)
		seen[first] = true
		for range 3 {
			// Another path, another header case: same tenant, same server.
			if got := who(fmt.Sprintf("/p%d", i), "x-tenant", tenant); got != first {
				t.Fatalf("%s went to %s, then %s", tenant, first, got)
			}
		}
	}
	if len(seen) != 3 {
		t.Errorf("30 tenants reached servers %v, want all three", seen)
	}
	// No header: round robin over all three.
	rr := map[string]bool{}
	for range 6 {
		rr[who("/")] = true
	}
	if len(rr) != 3 {
		t.Errorf("requests without X-Tenant reached %v, want round robin over all three", rr)
	}
	// URI: the path without the query decides.
	seen = map[string]bool{}
	for i := range 30 {
		first := who(fmt.Sprintf("/obj/%d", i))
		seen[first] = true
		if got := who(fmt.Sprintf("/obj/%d?v=2", i)); got != first {
			t.Fatalf("/obj/%d went to %s, with a query to %s", i, first, got)
		}
	}
	if len(seen) != 3 {
		t.Errorf("30 paths reached servers %v, want all three", seen)
	}
}

// TestHashSourceTrustedXFF: balance = "hash" on the source and balance =
// "source" take the client from a trusted proxy's X-Forwarded-For (its
// last address, the one that proxy added), as docs/config.md says: 30
// clients behind one trusted proxy spread over the servers, each one
// sticky, and an address the client itself put first does not count.
// From an untrusted peer the header is ignored: one connecting address,
// one server. (Before, the connecting address was hashed always: every
// client behind the proxy went to one server.)
func TestHashSourceTrustedXFF(t *testing.T) {
	a, b, c := reporter(t, "a"), reporter(t, "b"), reporter(t, "c")
	for _, balance := range []string{"balance = \"hash\"", "balance = \"source\""} {
		for _, trusted := range []string{"127.0.0.0/8", "10.9.9.9/32"} {
			t.Run(balance+"/trusted="+trusted, func(t *testing.T) {
				r := start(t, fmt.Sprintf(`
[frontend.f]
mode = "http"
bind = ["tcp://127.0.0.1:0"]
backend = "b"
trusted_proxies = [%q]
[backend.b]
%s
check = "none"
[[backend.b.server]]
name = "a"
address = %q
[[backend.b.server]]
name = "b"
address = %q
[[backend.b.server]]
name = "c"
address = %q
`, trusted, balance, hostPort(a), hostPort(b), hostPort(c)))
				who := func(xff string) string {
					t.Helper()
					code, body := get(t, r.url()+"/", "x", "X-Forwarded-For", xff)
					if code != 200 {
						t.Fatalf("GET: %d %s", code, body)
					}
					name, _, _ := strings.Cut(body, " ")
					return name
				}
				seen := map[string]bool{}
				for i := range 30 {
					client := fmt.Sprintf("10.0.%d.1", i)
					first := who(client)
					seen[first] = true
					if got := who("192.0.2.7, " + client); got != first {
						t.Fatalf("%s went to %s, then (behind a forged first address) to %s", client, first, got)
					}
				}
				switch {
				case trusted == "127.0.0.0/8" && len(seen) != 3:
					t.Errorf("30 clients behind a trusted proxy reached %v, want all three servers", seen)
				case trusted != "127.0.0.0/8" && len(seen) != 1:
					t.Errorf("one untrusted peer reached %v, want one server (its X-Forwarded-For ignored)", seen)
				}
			})
		}
	}
}
