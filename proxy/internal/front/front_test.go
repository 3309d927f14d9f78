package front

import (
	"strings"
	"testing"
)

// TestListenBindIPv4WildcardIsIPv4Only: a proxy frontend's bind on
// 0.0.0.0 opens an IPv4 socket (internal/netfamily), not Go's default
// dual-stack [::], so it takes no IPv6 clients and leaves [::1] on the
// same port to another frontend, as wharf check assumes.
func TestListenBindIPv4WildcardIsIPv4Only(t *testing.T) {
	ln, err := ListenBind("proxy/test", "f", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if a := ln.Addr().String(); !strings.HasPrefix(a, "0.0.0.0:") {
		t.Errorf("bind tcp://0.0.0.0:0 listens on %s, want 0.0.0.0 (IPv4 only)", a)
	}
}
