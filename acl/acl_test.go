package acl

import (
	"net/netip"
	"testing"
)

func TestPermit(t *testing.T) {
	l, err := New([]string{"10.0.0.0/8", "192.0.2.7", "2001:db8::/32"}, []string{"10.9.0.0/16"})
	if err != nil {
		t.Fatal(err)
	}
	f := func(addr string, want bool) {
		t.Helper()
		if got := l.Permit(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Permit(%s) = %v, want %v", addr, got, want)
		}
	}
	f("10.1.2.3", true)
	f("10.9.1.1", false) // denied before allowed
	f("192.0.2.7", true)
	f("192.0.2.8", false)
	f("::ffff:10.1.2.3", true) // mapped v4
	f("2001:db8::1", true)
	f("2001:db9::1", false)

	var none *List
	if !none.Permit(netip.MustParseAddr("203.0.113.1")) {
		t.Error("nil list must permit")
	}
	if l, err := New(nil, nil); l != nil || err != nil {
		t.Errorf("empty lists: got %v, %v; want nil, nil", l, err)
	}
	if _, err := New([]string{"10.0.0.0/33"}, nil); err == nil {
		t.Error("bad CIDR accepted")
	}
	onlyDeny, _ := New(nil, []string{"127.0.0.2"})
	if onlyDeny.Permit(netip.MustParseAddr("127.0.0.2")) || !onlyDeny.Permit(netip.MustParseAddr("127.0.0.1")) {
		t.Error("deny-only list wrong")
	}
}
