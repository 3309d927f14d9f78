package compare

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Setup is what one relay run needs to know: where to listen, where to
// send, and a private folder for its config and state.
type Setup struct {
	// Kind is the scenario kind: "tcp", "udp", "kafka" (syslog relaying),
	// "http", "h2" (TLS, h2 by ALPN) or "tcpproxy" (proxying to the
	// backend at OutAddr).
	Kind string
	// In is the scheme ("tcp" or "udp") and InAddr the host:port the relay
	// listens on.
	In     string
	InAddr string
	// OutAddr is the receiver's TCP host:port (syslog out), the backend
	// server's (proxy scenarios), or empty when the output is Kafka.
	OutAddr string
	// Conns is how many sender connections the scenario opens (kind
	// "conns"); relays whose connection limit is lower raise it.
	Conns int
	// Brokers and Topic are the Kafka output, Compression its codec
	// ("none", "lz4", "zstd").
	Brokers     []string
	Topic       string
	Compression string
	// Dir is an empty folder for config, pid and state files.
	Dir string
	// Cert and Key are PEM files for a tls:// input (kind "tls").
	Cert, Key string
	// Root is the repository root (bin/wharf, var/peers).
	Root string
	// Exe is the wharf-bench executable (for the splice relay).
	Exe string
	// Engine, for wharf's http frontend: "" (the default, event-loop) or
	// "goroutines" (relay wharf-goroutines).
	Engine string
}

// Relay is one contender: how to check it is installed and start it.
type Relay struct {
	// Name as shown in results.
	Name string
	// Supports reports whether the relay takes part in a scenario kind
	// ("tcp", "udp", "kafka", "http", "tcpproxy").
	Supports func(kind string) bool
	// Check reports why the relay cannot run here (not installed), or nil.
	Check func(root string) error
	// Version is a one-line version string (best effort).
	Version func(root string) string
	// Start writes the relay's config into s.Dir and starts it.
	Start func(s Setup) (*Proc, error)
}

func kinds(k ...string) func(string) bool {
	return func(kind string) bool {
		for _, x := range k {
			if x == kind {
				return true
			}
		}
		return false
	}
}

func lookPath(name string) func(string) error {
	return func(string) error {
		if _, err := exec.LookPath(name); err != nil {
			return fmt.Errorf("%s not installed (bash bench/peers/install.sh)", name)
		}
		return nil
	}
}

func firstLine(argv ...string) string {
	out, _ := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(line)
}

func write(dir, name, text string) (string, error) {
	p := filepath.Join(dir, name)
	return p, os.WriteFile(p, []byte(text), 0o644)
}

func hostPort(addr string) (string, string) {
	i := strings.LastIndexByte(addr, ':')
	return addr[:i], addr[i+1:]
}

// rsyslogDir is where bench/peers/install.sh unpacks rsyslog.
func rsyslogDir(root string) string { return filepath.Join(root, "var/peers/rsyslog") }

// wharfBuilt and wharfVersion are the wharf relays' Check and Version.
func wharfBuilt(root string) error {
	if _, err := os.Stat(filepath.Join(root, "bin/wharf")); err != nil {
		return errors.New("bin/wharf not built (make build)")
	}
	return nil
}

func wharfVersion(root string) string { return firstLine(filepath.Join(root, "bin/wharf"), "version") }

// Relays are all contenders in display order; wharf first.
var Relays = []*Relay{
	{
		Name:     "wharf",
		Supports: kinds("tcp", "tls", "conns", "udp", "udpceiling", "relp", "kafka", "http", "h2", "tcpproxy"),
		Check:    wharfBuilt,
		Version:  wharfVersion,
		Start: func(s Setup) (*Proc, error) {
			if s.Kind == "http" || s.Kind == "h2" || s.Kind == "tcpproxy" {
				return startWharfProxy(s)
			}
			conf := fmt.Sprintf(`# Written by wharf-bench compare.
[admin]
listen = "off"

[frontend.in]
bind = ["%s://%s"]
sinks = ["out"]
`, s.In, s.InAddr)
			if s.In == "tls" {
				conf += fmt.Sprintf("tls_cert = %q\ntls_key = %q\n", s.Cert, s.Key)
			}
			if s.Conns > 512 {
				// All senders come from 127.0.0.1: above the default
				// maxconn_per_ip (512) they would be refused.
				conf += fmt.Sprintf("maxconn_per_ip = %d\n", 2*s.Conns)
			}
			if s.Topic != "" {
				conf += fmt.Sprintf(`
[sink.out]
type = "kafka"
brokers = [%s]
topic = %q
required_acks = "one"
compression = %q
`, quoteList(s.Brokers), s.Topic, s.Compression)
			} else {
				out := "tcp"
				if s.Kind == "relp" {
					out = "relp"
				}
				conf += fmt.Sprintf(`
[sink.out]
type = "syslog"
servers = ["%s://%s"]
out_framing = "octet-counting"
`, out, s.OutAddr)
			}
			p, err := write(s.Dir, "wharf.toml", conf)
			if err != nil {
				return nil, err
			}
			return startProc([]string{filepath.Join(s.Root, "bin/wharf"), "run", "-c", p}, nil, s.Dir)
		},
	},
	{
		// wharf's HTTP proxy with engine = "goroutines" (the engine TLS
		// frontends use), beside the default in the same run.
		Name:     "wharf-goroutines",
		Supports: kinds("http"),
		Check:    wharfBuilt,
		Version:  wharfVersion,
		Start: func(s Setup) (*Proc, error) {
			s.Engine = "goroutines"
			return startWharfProxy(s)
		},
	},
	{
		Name:     "byte-copy",
		Supports: kinds("tcp", "conns", "tcpproxy", "http"),
		Check:    func(string) error { return nil },
		Version:  func(string) string { return "wharf-bench splice (Go io.Copy, splice(2))" },
		Start: func(s Setup) (*Proc, error) {
			return startProc([]string{s.Exe, "splice", "-listen", s.InAddr, "-to", s.OutAddr}, nil, s.Dir)
		},
	},
	{
		Name:     "socat",
		Supports: kinds("tcp", "tcpproxy"),
		Check:    lookPath("socat"),
		Version:  func(string) string { return firstLine("sh", "-c", "socat -V | grep 'socat version'") },
		Start: func(s Setup) (*Proc, error) {
			h, p := hostPort(s.InAddr)
			return startProc([]string{"socat", "-b262144", fmt.Sprintf("TCP-LISTEN:%s,bind=%s,reuseaddr,fork", p, h), "TCP:" + s.OutAddr}, nil, s.Dir)
		},
	},
	{
		Name:     "haproxy",
		Supports: kinds("tcp", "conns", "udp", "http", "h2", "tcpproxy"),
		Check:    lookPath("haproxy"),
		Version:  func(string) string { return firstLine("haproxy", "-v") },
		Start: func(s Setup) (*Proc, error) {
			if s.Kind == "http" || s.Kind == "h2" || s.Kind == "tcpproxy" {
				return startHAProxyProxy(s, 2)
			}
			bind := "bind"
			if s.In == "udp" {
				bind = "dgram-bind"
			}
			conf := fmt.Sprintf(`# Written by wharf-bench compare.
global
    maxconn %d
    nbthread 2

ring out
    description "bench output"
    format rfc5424
    maxlen 65535
    size 33554432
    timeout connect 5s
    timeout server 30s
    server recv %s

log-forward fwd
    %s %s
    maxconn %d
    timeout client 30s
    log ring@out local0
`, max(2000, 4*s.Conns), s.OutAddr, bind, s.InAddr, max(1000, 2*s.Conns))
			p, err := write(s.Dir, "haproxy.cfg", conf)
			if err != nil {
				return nil, err
			}
			return startProc([]string{"haproxy", "-db", "-f", p}, nil, s.Dir)
		},
	},
	{
		Name:     "haproxy-1t",
		Supports: kinds("http"),
		Check:    lookPath("haproxy"),
		Version:  func(string) string { return firstLine("haproxy", "-v") + " (nbthread 1)" },
		Start:    func(s Setup) (*Proc, error) { return startHAProxyProxy(s, 1) },
	},
	{
		Name:     "nginx",
		Supports: kinds("http", "tcpproxy"),
		Check:    checkNginx,
		Version:  func(string) string { return firstLine("nginx", "-v") + " (worker_processes auto)" },
		Start:    func(s Setup) (*Proc, error) { return startNginx(s, "auto") },
	},
	{
		Name:     "nginx-1w",
		Supports: kinds("http"),
		Check:    checkNginx,
		Version:  func(string) string { return firstLine("nginx", "-v") + " (worker_processes 1)" },
		Start:    func(s Setup) (*Proc, error) { return startNginx(s, "1") },
	},
	{
		Name:     "rsyslog",
		Supports: kinds("tcp", "tls", "conns", "udp", "udpceiling", "relp", "kafka"),
		Check: func(root string) error {
			if _, err := os.Stat(filepath.Join(rsyslogDir(root), "usr/sbin/rsyslogd")); err != nil {
				return errors.New("rsyslog not unpacked (bash bench/peers/install.sh)")
			}
			return nil
		},
		Version: func(root string) string {
			return firstLine(filepath.Join(rsyslogDir(root), "usr/sbin/rsyslogd"), "-v")
		},
		Start: func(s Setup) (*Proc, error) {
			h, port := hostPort(s.InAddr)
			conf := fmt.Sprintf(`# Written by wharf-bench compare.
global(workDirectory=%q)
main_queue(queue.size="100000" queue.dequeueBatchSize="1024")
template(name="raw" type="string" string="%%rawmsg%%")
`, s.Dir)
			switch {
			case s.In == "relp":
				conf += fmt.Sprintf(`module(load="imrelp")
input(type="imrelp" address=%q port=%q ruleset="fwd")
`, h, port)
			case s.In == "udp":
				// Documented imudp tuning: 2 threads, batches of 128, 4 MB buffer.
				conf += fmt.Sprintf(`module(load="imudp" threads="2" batchSize="128")
input(type="imudp" address=%q port=%q rcvbufSize="4m" ruleset="fwd")
`, h, port)
			case s.In == "tls":
				// imtcp with its GnuTLS driver (rsyslog-gnutls: lmnsd_gtls),
				// anonymous clients accepted, as the generator has no
				// certificate.
				conf += fmt.Sprintf(`global(defaultNetstreamDriver="gtls" defaultNetstreamDriverCertFile=%q defaultNetstreamDriverKeyFile=%q)
module(load="imtcp" maxSessions="%d" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
input(type="imtcp" address=%q port=%q ruleset="fwd")
`, s.Cert, s.Key, max(1000, 2*s.Conns), h, port)
			default:
				conf += fmt.Sprintf(`module(load="imtcp" maxSessions="%d")
input(type="imtcp" address=%q port=%q ruleset="fwd")
`, max(1000, 2*s.Conns), h, port)
			}
			if s.Topic != "" {
				conf += fmt.Sprintf(`module(load="omkafka")
ruleset(name="fwd") {
    action(type="omkafka" broker=[%s] topic=%q template="raw"
           confParam=["compression.codec=%s", "queue.buffering.max.ms=5", "batch.num.messages=10000"]
           topicConfParam=["request.required.acks=1"])
}
`, quoteList(s.Brokers), s.Topic, s.Compression)
			} else if s.Kind == "relp" {
				// windowSize 1024: with librelp's default of 128 omrelp
				// sends about 700 msg/s here (measured against rsyslog's
				// own imrelp and against wharf alike).
				oh, op := hostPort(s.OutAddr)
				conf += fmt.Sprintf(`module(load="omrelp")
ruleset(name="fwd") {
    action(type="omrelp" target=%q port=%q template="raw" windowSize="1024")
}
`, oh, op)
			} else {
				oh, op := hostPort(s.OutAddr)
				conf += fmt.Sprintf(`ruleset(name="fwd") {
    action(type="omfwd" target=%q port=%q protocol="tcp" tcp_framing="octet-counted" template="raw")
}
`, oh, op)
			}
			p, err := write(s.Dir, "rsyslog.conf", conf)
			if err != nil {
				return nil, err
			}
			d := rsyslogDir(s.Root)
			return startProc([]string{filepath.Join(d, "usr/sbin/rsyslogd"), "-n", "-f", p, "-i", filepath.Join(s.Dir, "rsyslog.pid"),
				"-M", filepath.Join(d, "usr/lib/x86_64-linux-gnu/rsyslog")},
				[]string{"LD_LIBRARY_PATH=" + filepath.Join(d, "usr/lib/x86_64-linux-gnu")}, s.Dir)
		},
	},
	{
		Name:     "syslog-ng",
		Supports: kinds("tcp", "tls", "conns", "udp", "udpceiling", "kafka"),
		Check:    lookPath("syslog-ng"),
		Version:  func(string) string { return firstLine("syslog-ng", "--version") },
		Start: func(s Setup) (*Proc, error) {
			h, port := hostPort(s.InAddr)
			tlsOpt := ""
			if s.In == "tls" {
				tlsOpt = fmt.Sprintf(" tls(key-file(%q) cert-file(%q) peer-verify(optional-untrusted))", s.Key, s.Cert)
			}
			conf := fmt.Sprintf(`@version: 3.38
# Written by wharf-bench compare.
options { stats-freq(0); log-fifo-size(100000); keep-hostname(yes); chain-hostnames(no); use-dns(no); };
source s_in { syslog(ip(%q) port(%s) transport(%q) max-connections(%d) log-iw-size(%d) so-rcvbuf(4194304) flags(store-raw-message)%s); };
`, h, port, s.In, max(1000, 2*s.Conns), 100*max(1000, 2*s.Conns), tlsOpt)
			if s.Topic != "" {
				conf += fmt.Sprintf(`destination d_out { kafka-c(bootstrap-servers(%q) topic(%q) message("$RAWMSG")
    config("acks" => "1" "compression.codec" => %q "queue.buffering.max.ms" => "5" "batch.num.messages" => "10000")); };
`, strings.Join(s.Brokers, ","), s.Topic, s.Compression)
			} else {
				oh, op := hostPort(s.OutAddr)
				conf += fmt.Sprintf(`destination d_out { syslog(%q port(%s) transport("tcp")); };
`, oh, op)
			}
			conf += "log { source(s_in); destination(d_out); flags(flow-control); };\n"
			p, err := write(s.Dir, "syslog-ng.conf", conf)
			if err != nil {
				return nil, err
			}
			return startProc([]string{"syslog-ng", "-F", "--no-caps", "-f", p,
				"-R", filepath.Join(s.Dir, "persist"), "-p", filepath.Join(s.Dir, "pid"), "-c", filepath.Join(s.Dir, "ctl")}, nil, s.Dir)
		},
	},
}

func quoteList(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = fmt.Sprintf("%q", x)
	}
	return strings.Join(q, ", ")
}

// startWharfProxy runs wharf with one proxy frontend (mode "http" or
// "tcp") and one backend holding the harness's server. Active health
// checks are off, as in the HAProxy and nginx configs; everything else is
// wharf's defaults.
func startWharfProxy(s Setup) (*Proc, error) {
	mode, tlsKeys, engine := "tcp", "", ""
	if s.Kind == "http" || s.Kind == "h2" {
		mode = "http"
	}
	if s.Engine != "" {
		engine = fmt.Sprintf("engine = %q\n", s.Engine)
	}
	if s.Kind == "h2" {
		cert, key, _, err := writeBenchCert(s.Dir)
		if err != nil {
			return nil, err
		}
		tlsKeys = fmt.Sprintf("tls_cert = %q\ntls_key = %q\n", cert, key)
	}
	conf := fmt.Sprintf(`# Written by wharf-bench compare.
[admin]
listen = "off"

[frontend.in]
mode = %q
bind = ["tcp://%s"]
backend = "be"
`+tlsKeys+engine+`
[backend.be]
check = "none"
server = [{ address = %q, name = "b1" }]
`, mode, s.InAddr, s.OutAddr)
	p, err := write(s.Dir, "wharf.toml", conf)
	if err != nil {
		return nil, err
	}
	return startProc([]string{filepath.Join(s.Root, "bin/wharf"), "run", "-c", p}, nil, s.Dir)
}

// startHAProxyProxy runs HAProxy as a plain frontend/backend pair in
// mode http (keep-alive both ways, HAProxy's default server connection
// reuse) or mode tcp, with threads threads and no health checks.
func startHAProxyProxy(s Setup, threads int) (*Proc, error) {
	mode, opts, bind := "tcp", "    option splice-request\n    option splice-response\n", s.InAddr
	if s.Kind == "http" || s.Kind == "h2" {
		mode, opts = "http", "    option http-keep-alive\n"
	}
	if s.Kind == "h2" {
		_, _, pem, err := writeBenchCert(s.Dir)
		if err != nil {
			return nil, err
		}
		bind += " ssl crt " + pem + " alpn h2,http/1.1"
	}
	conf := fmt.Sprintf(`# Written by wharf-bench compare.
global
    maxconn 4000
    nbthread %d

defaults
    mode %s
%s    timeout connect 5s
    timeout client 60s
    timeout server 60s

frontend fe
    bind %s
    default_backend be

backend be
    server b1 %s
`, threads, mode, opts, bind, s.OutAddr)
	p, err := write(s.Dir, "haproxy.cfg", conf)
	if err != nil {
		return nil, err
	}
	return startProc([]string{"haproxy", "-db", "-f", p}, nil, s.Dir)
}

// nginxStream is where Debian's libnginx-mod-stream puts the stream module.
const nginxStream = "/usr/lib/nginx/modules/ngx_stream_module.so"

func checkNginx(string) error {
	if _, err := exec.LookPath("nginx"); err != nil {
		return errors.New("nginx not installed (bash bench/peers/install.sh)")
	}
	if _, err := os.Stat(nginxStream); err != nil {
		return errors.New("nginx stream module missing (libnginx-mod-stream; bash bench/peers/install.sh)")
	}
	return nil
}

// startNginx runs nginx in the foreground (daemon off; the master stays
// the harness's child and its workers are measured as its children) from
// a config and prefix in s.Dir, with workers worker processes. HTTP:
// proxy_pass to an upstream with keepalive 64 over HTTP/1.1; keep-alive
// request limits raised so that neither side reconnects every 1000
// requests (HAProxy and wharf have no such limit). TCP: the stream
// module's proxy_pass with its defaults.
func startNginx(s Setup, workers string) (*Proc, error) {
	conf := fmt.Sprintf(`# Written by wharf-bench compare.
worker_processes %s;
daemon off;
pid nginx.pid;
error_log stderr warn;
events { worker_connections 8192; }
`, workers)
	if s.Kind == "http" {
		conf += fmt.Sprintf(`http {
    access_log off;
    client_body_temp_path body;
    proxy_temp_path proxy;
    fastcgi_temp_path fastcgi;
    uwsgi_temp_path uwsgi;
    scgi_temp_path scgi;
    keepalive_requests 1000000;
    upstream be {
        server %s;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen %s;
        location / {
            proxy_pass http://be;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
`, s.OutAddr, s.InAddr)
	} else {
		conf = "load_module " + nginxStream + ";\n" + conf + fmt.Sprintf(`stream {
    server {
        listen %s;
        proxy_pass %s;
    }
}
`, s.InAddr, s.OutAddr)
	}
	p, err := write(s.Dir, "nginx.conf", conf)
	if err != nil {
		return nil, err
	}
	return startProc([]string{"nginx", "-p", s.Dir, "-c", p, "-e", "stderr"}, nil, s.Dir)
}
