package proxy_test

import (
	"strings"
	"testing"

	"wharf/proxy/upstream"
)

const setConfig = `
[frontend.f]
mode = "tcp"
bind = ["tcp://127.0.0.1:0"]
backend = "web"
[backend.web]
check = "none"
[[backend.web.server]]
name = "a"
address = "127.0.0.1:1"
[[backend.web.server]]
name = "b"
address = "127.0.0.1:2"
`

// Set.Server finds a server for runtime control or says what exists.
func TestSetServerLookup(t *testing.T) {
	set, _ := startWharf(t, setConfig)
	f := func(backend, server, wantErr string) {
		t.Helper()
		s, err := set.Server(backend, server)
		switch {
		case wantErr == "" && (err != nil || s == nil || s.Name != server):
			t.Errorf("Server(%s, %s) = %v, %v", backend, server, s, err)
		case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
			t.Errorf("Server(%s, %s) error %v, want %q", backend, server, err, wantErr)
		}
	}
	f("web", "a", "")
	f("web", "b", "")
	f("api", "a", `unknown backend "api"; running backends: web`)
	f("web", "c", `backend web has no server "c"; its servers: a, b`)
	if n := len(set.Servers()); n != 2 {
		t.Errorf("Servers: %d, want 2", n)
	}
}

// A rebuilt set keeps the runtime state of unchanged servers.
func TestSetCarryAdminState(t *testing.T) {
	old, _ := startWharf(t, setConfig)
	a, _ := old.Server("web", "a")
	a.SetState(upstream.StateDrain)
	b, _ := old.Server("web", "b")
	b.SetWeight(7)
	// b's address changes: it is a new server, at its configured weight.
	nw, _ := startWharf(t, strings.Replace(setConfig, "127.0.0.1:2", "127.0.0.1:3", 1))
	nw.CarryAdminState(old)
	if a, _ := nw.Server("web", "a"); a.State() != upstream.StateDrain {
		t.Errorf("a: state %s after the rebuild, want drain", a.State())
	}
	if b, _ := nw.Server("web", "b"); b.EffectiveWeight() != 1 {
		t.Errorf("b (new address): weight %d, want the configured 1", b.EffectiveWeight())
	}
}
