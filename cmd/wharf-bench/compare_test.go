package main

import (
	"slices"
	"testing"

	"wharf/bench/compare"
)

// Without -scenarios (make bench) every kind is planned: the flag's
// default once listed kinds of its own and left out tls, udpceiling and
// conns, so make bench silently skipped them.
func TestCompareDefaultRunsEveryKind(t *testing.T) {
	o, _, err := parseCompare(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range compare.Kinds {
		if !o.Wants(k) {
			t.Errorf("kind %q not selected by default", k)
		}
	}
	var ids []string
	for _, s := range o.Plan() {
		ids = append(ids, s.ID)
	}
	for _, want := range []string{"tcp", "udp-ceiling", "tls", "conns-2000", "lat-1x1", "relp", "http", "h2", "tcpproxy"} {
		if !slices.Contains(ids, want) {
			t.Errorf("default plan %v lacks %s", ids, want)
		}
	}
	if o, _, _ := parseCompare([]string{"-scenarios", "tcp"}); o.Wants("tls") || !o.Wants("tcp") {
		t.Error("-scenarios tcp: want tcp only")
	}
}
