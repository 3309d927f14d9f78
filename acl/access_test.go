package acl

import (
	"net/netip"
	"testing"
)

func TestAccess(t *testing.T) {
	f := func(allow, deny []string, addr string, want bool) {
		t.Helper()
		a, err := Parse("allow", allow)
		if err != nil {
			t.Fatal(err)
		}
		d, err := Parse("deny", deny)
		if err != nil {
			t.Fatal(err)
		}
		ac := Access{Allow: a, Deny: d}
		if got := ac.Permits(netip.MustParseAddr(addr)); got != want {
			t.Errorf("allow %v deny %v: Permits(%s) = %v, want %v", allow, deny, addr, got, want)
		}
	}
	f(nil, nil, "192.0.2.1", true)
	f([]string{"10.0.0.0/8"}, nil, "10.1.2.3", true)
	f([]string{"10.0.0.0/8"}, nil, "11.1.2.3", false)
	f([]string{"10.0.0.0/8"}, []string{"10.0.0.66"}, "10.0.0.66", false)
	f(nil, []string{"10.0.0.0/8"}, "::ffff:10.0.0.1", false)
	f([]string{"::1"}, nil, "::1", true)
	f([]string{"::1"}, nil, "127.0.0.1", false)
	if _, err := Parse("frontend x allow", []string{"nope"}); err == nil {
		t.Error("Parse accepted a bad CIDR")
	}
}
