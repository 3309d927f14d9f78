package conf

import (
	"bytes"
	"strings"
	"testing"
)

const proxyValid = `
[frontend.tls]
mode = "tcp"
bind = ["tcp://127.0.0.1:0"]
sni_routing = true
backend = "web"
allow = ["127.0.0.0/8", "::1"]
deny = ["127.0.0.66"]
accept_proxy = true
trusted_proxies = ["10.0.0.0/8"]

[[frontend.tls.use]]
sni = "*.db.example.com"
backend = "db"

[frontend.site]
mode = "http"
bind = ["tcp://127.0.0.1:0"]
backend = "web"

[[frontend.site.use]]
host = "api.example.com"
path_prefix = "/v1/"
backend = "db"

[backend.web]
balance = "leastconn"
check = "http"
[[backend.web.server]]
address = "127.0.0.1:8001"
weight = 3
[[backend.web.server]]
name = "b"
address = "127.0.0.1:8002"
send_proxy = "v2"
maxconn = 10

[backend.db]
check = "none"
[[backend.db.server]]
address = "127.0.0.1:5432"
`

func TestProxyParseValid(t *testing.T) {
	c, err := Parse([]byte(proxyValid), "p.toml")
	if err != nil {
		t.Fatal(err)
	}
	web := c.Backends["web"]
	if web.Name != "web" || web.CheckPath != "/" || web.CheckStatus != 200 || web.Servers[0].Name != "127.0.0.1:8001" || web.Servers[1].Weight != 1 || web.Rise != DefaultRise {
		t.Errorf("defaults not applied: %+v", web)
	}
	if f := c.Frontends["site"]; f.MaxHeaderBytes != DefaultMaxHeaderBytes || f.Format != "" || f.MaxConn != DefaultProxyMaxConn {
		t.Errorf("http frontend defaults: %+v", f)
	}
	var b bytes.Buffer
	c.Describe(&b)
	for _, want := range []string{
		"tcp 127.0.0.1:0 -> frontend tls (tcp proxy)",
		"use[0] sni *.db.example.com -> backend db",
		"use[0] host api.example.com path_prefix /v1/ -> backend db",
		"backend web: balance leastconn",
		"check http GET / expect 200",
		"server b 127.0.0.1:8002 weight 1 maxconn 10 send_proxy v2",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("Describe lacks %q:\n%s", want, b.String())
		}
	}
}

func TestProxyParseErrors(t *testing.T) {
	f := func(name, cfg string, want ...string) {
		t.Helper()
		_, err := Parse([]byte(cfg), "p.toml")
		if err == nil {
			t.Errorf("%s: Parse succeeded, want errors %q", name, want)
			return
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error lacks %q:\n%v", name, w, err)
			}
		}
	}
	f("everything wrong", `
[frontend.a]
mode = "tcp"
bind = ["udp://127.0.0.1:0"]
backend = "nope"
format = "raw"
allow = ["10.0.0.0/33"]
accept_proxy = true
tls_cert = "x.pem"
[[frontend.a.use]]
sni = "a.*.com"
backend = "b"
[[frontend.a.use]]
host = "x"
[backend.b]
balance = "random"
check = "tcp"
check_path = "/x"
[[backend.b.server]]
address = "nohost"
weight = 1000
send_proxy = "v3"
[[backend.b.server]]
address = "127.0.0.1:1"
name = "127.0.0.1:1"
[[backend.b.server]]
address = "127.0.0.1:1"
`,
		`p.toml:4:9: frontend.a.bind[0]: mode tcp listens on tcp only`,
		`frontend.a.backend: unknown backend "nope"`,
		`frontend.a.format: key format applies to syslog frontends only`,
		`frontend.a.allow[0]: "10.0.0.0/33" is not a CIDR`,
		`frontend.a.accept_proxy: accept_proxy needs trusted_proxies`,
		`tls_cert/tls_key apply to mode http only`,
		`frontend.a.use[0].sni: sni rules need sni_routing = true`,
		`frontend.a.use[0].sni: "a.*.com": a wildcard is only allowed`,
		`frontend.a.use[1]: use rule has no backend`,
		`frontend.a.use[1]: host and path_prefix match HTTP requests`,
		`backend.b.balance: balance "random" is not one of roundrobin, leastconn, source, hash`,
		`backend.b.check_path: check_path applies to check = "http" only`,
		`backend.b.server[0].address: "nohost": missing port`,
		`backend.b.server[0].weight: weight 1000 out of range (1-256)`,
		`backend.b.server[0].send_proxy: send_proxy "v3" is not one of v1, v2`,
		`backend.b.server[2].name: server name "127.0.0.1:1" is already used by backend.b.server[1]`,
	)
	f("proxy keys on syslog", `
[frontend.s]
bind = ["udp://127.0.0.1:0"]
sinks = ["o"]
backend = "x"
sni_routing = true
access_log = ["o"]
response_headers = { "X-A" = "b" }
[sink.o]
type = "stdout"
`, `frontend.s.backend: key backend applies to proxy frontends`, `frontend.s.sni_routing: key sni_routing applies to proxy frontends`,
		`frontend.s.access_log: key access_log applies to proxy frontends`, `frontend.s.response_headers: key response_headers applies to proxy frontends`)
	f("response_headers", `
[frontend.h]
mode = "http"
bind = ["tcp://127.0.0.1:0"]
backend = "b"
response_headers = { "Content-Length" = "5", "Bad Name" = "x", "X-Split" = "a\r\nX-Injected: 1" }
request_headers = { "Host" = "x", "x-forwarded-for" = "1.2.3.4", "Transfer-Encoding" = "chunked", "X-Ok" = "fine", "X-Nul" = "a\u0000" }
access_log = ["nope"]
[frontend.t]
mode = "tcp"
bind = ["tcp://127.0.0.1:0"]
backend = "b"
response_headers = { "X-A" = "b" }
request_headers = { "X-A" = "b" }
redirect_https = true
[backend.b]
[[backend.b.server]]
address = "127.0.0.1:1"
`, `frontend.h.response_headers: Content-Length is set by the proxy itself`,
		`frontend.h.response_headers: "Bad Name" is not a valid header field name`,
		`frontend.h.response_headers: the value of X-Split has a CR, LF or NUL`,
		`frontend.h.request_headers: Host is set by the proxy itself`,
		`frontend.h.request_headers: Transfer-Encoding is set by the proxy itself`,
		`frontend.h.request_headers: the value of X-Nul has a CR, LF or NUL`,
		`frontend.h.request_headers: x-forwarded-for is set by the proxy itself`,
		`frontend.h.access_log[0]: unknown sink "nope"`,
		`frontend.t.response_headers: response_headers applies to mode http only`,
		`frontend.t.request_headers: request_headers applies to mode http only`,
		`frontend.t.redirect_https: redirect_https applies to mode http frontends without tls_cert`)
	f("hash keys", `
[frontend.t]
mode = "tcp"
bind = ["tcp://127.0.0.1:0"]
backend = "u"
[backend.u]
balance = "hash"
hash_key = "uri"
[[backend.u.server]]
address = "127.0.0.1:1"
[backend.h]
balance = "hash"
hash_key = "header:"
[[backend.h.server]]
address = "127.0.0.1:1"
[backend.x]
balance = "hash"
hash_key = "cookie"
[[backend.x.server]]
address = "127.0.0.1:1"
[backend.r]
hash_key = "source"
[[backend.r.server]]
address = "127.0.0.1:1"
`, `backend.h.hash_key: hash_key "header:": want header:NAME`,
		`backend.r.hash_key: hash_key applies to balance = "hash" only`,
		`backend.u.hash_key: hash_key "uri" needs HTTP requests, but tcp frontend t uses this backend`,
		`backend.x.hash_key: hash_key "cookie" is not one of source, uri, header:NAME`)
	f("http specifics", `
[frontend.h]
mode = "http"
bind = ["tcp://127.0.0.1:0"]
sni_routing = true
tls_key = "k.pem"
[[frontend.h.use]]
sni = "a.example.com"
backend = "b"
[[frontend.h.use]]
path_prefix = "api"
backend = "b"
[backend.b]
check = "http"
check_path = "health"
check_status = 99
[[backend.b.server]]
address = "127.0.0.1:1"
`, `frontend.h.sni_routing: sni_routing applies to mode tcp only`,
		`frontend.h: set both tls_cert and tls_key`,
		`frontend.h.tls_key: cannot read k.pem`,
		`frontend.h.use[0].sni: sni matches on tcp frontends`,
		`frontend.h.use[1].path_prefix: path_prefix "api" must start with /`,
		`backend.b.check_path: check_path "health" must start with /`,
		`backend.b.check_status: status 99 out of range (100-599)`)
	f("sni patterns", `
[frontend.t]
mode = "tcp"
bind = ["tcp://127.0.0.1:0"]
sni_routing = true
backend = "b"
[[frontend.t.use]]
sni = ".db.example.com"
backend = "b"
[[frontend.t.use]]
sni = "..example.com"
backend = "b"
[[frontend.t.use]]
sni = ".*.example.com"
backend = "b"
[[frontend.t.use]]
sni = "."
backend = "b"
[frontend.h]
mode = "http"
bind = ["tcp://127.0.0.1:0"]
[[frontend.h.use]]
host = ".example.com"
backend = "b"
[backend.b]
[[backend.b.server]]
address = "127.0.0.1:1"
`, `p.toml:11:1: frontend.t.use[1].sni: "..example.com": a leading dot takes a domain name`,
		`p.toml:14:1: frontend.t.use[2].sni: ".*.example.com": a leading dot takes a domain name`,
		`frontend.t.use[3].sni: ".": a leading dot takes a domain name`,
		`frontend.h.use[0].host: ".example.com" is not a host name`)
	f("no backend, no servers", `
[frontend.t]
mode = "tcp"
bind = ["tcp://127.0.0.1:0"]
[backend.empty]
`, `frontend.t: no backend: add backend = "NAME"`, `backend.empty: no servers`)
}

func TestParsePrefix(t *testing.T) {
	f := func(in, want, wantErr string) {
		t.Helper()
		p, err := ParsePrefix(in)
		if wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Errorf("ParsePrefix(%q) err = %v, want %q", in, err, wantErr)
			}
			return
		}
		if err != nil || p.String() != want {
			t.Errorf("ParsePrefix(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
	f("10.1.2.3/8", "10.0.0.0/8", "")
	f("192.0.2.7", "192.0.2.7/32", "")
	f("::1", "::1/128", "")
	f("::ffff:10.0.0.0/104", "10.0.0.0/8", "")
	f("::ffff:10.0.0.1", "10.0.0.1/32", "")
	f("10.0.0.0/33", "", "not a CIDR")
	f("example.com", "", "not an IP address")
}

// The proxy example in docs/config.md must stay a valid config.
func TestProxyExample(t *testing.T) {
	c, err := Parse([]byte(ProxyExampleConfig), "example.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 0 {
		t.Errorf("warnings: %v", c.Warnings)
	}
	if c.Backends["web"].Servers[0].Weight != 2 || c.Frontends["tls"].Use[0].SNI != ".db.example.com" {
		t.Error("example not decoded as written")
	}
}
