package e2e

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"wharf/internal/testenv"
	"wharf/internal/testpki"
)

// The snippet pairs of docs/migrating.md run side by side: the real peer
// (rsyslog, HAProxy) with the guide's snippet and wharf with the guide's
// block, on the same input over loopback, only addresses, ports and
// paths adapted. Pairs tested elsewhere: rsyslog 1
// (TestTraditionalFileLikeRsyslog); rsyslog 6, 9 and 10 and HAProxy 7, 9
// and 11 in migrating2_test.go.

// rsyslogInputs is the rsyslog.conf preamble of the rsyslog pairs: the
// UDP input under test on port, and a TCP input on ready, which
// startRsyslog dials to know rsyslog is up.
func rsyslogInputs(port, ready int) string {
	return fmt.Sprintf(`module(load="imudp")
input(type="imudp" port="%d" address="127.0.0.1")
module(load="imtcp")
input(type="imtcp" port="%d" address="127.0.0.1")
`, port, ready)
}

// rsyslogFileFormat makes rsyslog's file actions write the traditional
// line format, the one wharf's file sink is compared with.
const rsyslogFileFormat = `module(load="builtin:omfile" template="RSYSLOG_TraditionalFileFormat")
`

// frameCollector is a syslog collector on loopback that keeps every
// message it receives, TCP (octet-counted or LF frames, told apart per
// frame as rsyslog's imtcp does) or UDP (one per datagram).
type frameCollector struct {
	mu     sync.Mutex
	msgs   []string
	framed map[string]int // "octet-counting", "lf", "udp": how many
	ln     net.Listener
	pc     net.PacketConn
	conns  []net.Conn
	addr   string
}

func newTCPCollector(t *testing.T, addr string) *frameCollector {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return collectOn(t, ln)
}

// collectOn is newTCPCollector on a listener of the caller's (TLS).
func collectOn(t *testing.T, ln net.Listener) *frameCollector {
	c := &frameCollector{ln: ln, addr: ln.Addr().String(), framed: map[string]int{}}
	t.Cleanup(c.close)
	testenv.ServeEach(t, ln, func(conn net.Conn) {
		c.mu.Lock()
		c.conns = append(c.conns, conn)
		c.mu.Unlock()
		c.read(conn)
	})
	return c
}

func newUDPCollector(t *testing.T) *frameCollector {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &frameCollector{pc: pc, addr: pc.LocalAddr().String(), framed: map[string]int{}}
	t.Cleanup(c.close)
	go func() {
		buf := make([]byte, 65536)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			c.add("udp", strings.TrimRight(string(buf[:n]), "\n"))
		}
	}()
	return c
}

// close stops listening and closes every connection: a collector down.
func (c *frameCollector) close() {
	if c.ln != nil {
		c.ln.Close()
	}
	c.mu.Lock()
	for _, conn := range c.conns {
		conn.Close()
	}
	c.mu.Unlock()
	if c.pc != nil {
		c.pc.Close()
	}
}

func (c *frameCollector) add(how, m string) {
	c.mu.Lock()
	c.msgs = append(c.msgs, m)
	c.framed[how]++
	c.mu.Unlock()
}

func (c *frameCollector) read(conn net.Conn) {
	defer conn.Close()
	br := bufio.NewReader(conn)
	for {
		b, err := br.Peek(1)
		if err != nil {
			return
		}
		if b[0] >= '1' && b[0] <= '9' {
			n, err := br.ReadString(' ')
			if err != nil {
				return
			}
			size, err := strconv.Atoi(strings.TrimSuffix(n, " "))
			if err != nil {
				return
			}
			msg := make([]byte, size)
			if _, err := io.ReadFull(br, msg); err != nil {
				return
			}
			c.add("octet-counting", strings.TrimRight(string(msg), "\n"))
			continue
		}
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		c.add("lf", strings.TrimSuffix(line, "\n"))
	}
}

func (c *frameCollector) snapshot() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.msgs...)
}

func (c *frameCollector) framing() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var s []string
	for k, v := range c.framed {
		s = append(s, fmt.Sprintf("%s:%d", k, v))
	}
	sort.Strings(s)
	return strings.Join(s, " ")
}

var idRE = regexp.MustCompile(`\bid=(\d+)\b`)

// ids returns the sorted id=N numbers in msgs.
func ids(msgs []string) []int {
	var out []int
	for _, m := range msgs {
		if s := idRE.FindStringSubmatch(m); s != nil {
			n, _ := strconv.Atoi(s[1])
			out = append(out, n)
		}
	}
	sort.Ints(out)
	return out
}

// sendUDP sends each message as one datagram to addr.
func sendUDP(t *testing.T, addr string, msgs []string) {
	t.Helper()
	sendEach(t, "udp", addr, msgs, "", 2*time.Millisecond) // keep order across rsyslog's and wharf's UDP workers
}

// sendEach writes each message followed by sep on one connection of
// network to addr (over UDP with sep "", one datagram each), pausing gap
// after each.
func sendEach(t *testing.T, network, addr string, msgs []string, sep string, gap time.Duration) {
	t.Helper()
	c, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, m := range msgs {
		if _, err := io.WriteString(c, m+sep); err != nil {
			t.Fatal(err)
		}
		if gap > 0 {
			time.Sleep(gap)
		}
	}
}

// prioLine is an RFC3164 message of facility and severity (numbers) with
// id=n in its text.
func prioLine(fac, sev, n int, host, tag string) string {
	return fmt.Sprintf("<%d>Dec  6 05:10:%02d %s %s[%d]: event id=%d fac=%d sev=%d", fac*8+sev, n%60, host, tag, 100+n, n, fac, sev)
}

// destinations reads, for every file and collector, which ids reached it.
type destinations map[string][]int

func (d destinations) String() string {
	var keys []string
	for k := range d {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	for _, k := range keys {
		fmt.Fprintf(&b, "  %-8s %v\n", k, d[k])
	}
	return b.String()
}

func fileLines(path string) []string {
	data, _ := os.ReadFile(path)
	return splitLines(data)
}

// waitStill polls until f returns the same count three times in a row,
// 200ms apart, within timeout, and at least min.
func waitStill(timeout time.Duration, min int, f func() int) {
	last, same := -1, 0
	testenv.Poll(timeout, func() bool {
		n := f()
		if n == last {
			same++
		} else {
			same = 0
		}
		last = n
		time.Sleep(200 * time.Millisecond)
		return n >= min && same >= 3
	})
}

// TestMigratingFacilitySeverityRoutes: rsyslog pairs 3 (facility filters
// to files) and 4 (severity filters, *.=debug ~, mail.none): the same
// datagrams to rsyslog running the guide's snippet and to wharf running
// the guide's block reach the same files and collectors, and the files'
// lines are the same byte for byte. rsyslog 8 writes a legacy
// "/var/log/..." action in RSYSLOG_FileFormat (RFC 3339 timestamps)
// unless the site sets RSYSLOG_TraditionalFileFormat as the default, as
// the Debian and Red Hat configs did: the snippets run with that line
// added (wharf's "traditional"), and the guide says so.
func TestMigratingFacilitySeverityRoutes(t *testing.T) {
	const (
		kern, user, mail, daemon, auth, authpriv, cron, local0 = 0, 1, 2, 3, 4, 10, 9, 16
	)
	var msgs []string
	n := 0
	for _, fac := range []int{user, mail, daemon, auth, authpriv, cron, local0} {
		for sev := range 8 {
			msgs = append(msgs, prioLine(fac, sev, n, "web1", "app"))
			n++
		}
	}
	cases := []struct {
		name       string
		rsyslog    string // %[1]s the UDP port, %[2]s the collector's address
		wharf      string // the same
		files      []string
		collectors []string // names, in the order of the %s after the port
	}{{
		name: "facility",
		rsyslog: `auth,authpriv.*    DIR/secure
mail.*             -DIR/maillog
*.*                @@%[2]s
`,
		wharf: `[frontend.syslog]
bind = ["udp://127.0.0.1:%[1]d"]
sinks = ["central"]

[[frontend.syslog.route]]
facility = ["auth", "authpriv"]
sinks = ["secure", "central"]     # first match wins: name every destination

[[frontend.syslog.route]]
facility = ["mail"]
sinks = ["maillog", "central"]

[sink.secure]
type = "file"
path = "{{DIR}}/secure"
encoding = "traditional"
file_mode = "0600"

[sink.maillog]
type = "file"
path = "{{DIR}}/maillog"
encoding = "traditional"

[sink.central]
type = "syslog"
servers = ["tcp://%[2]s"]
`,
		files:      []string{"secure", "maillog"},
		collectors: []string{"central"},
	}, {
		name: "severity",
		rsyslog: `*.err                        @@%[2]s
*.=debug                     ~
*.info;mail.none;cron.none   DIR/messages
`,
		wharf: `[frontend.syslog]
bind = ["udp://127.0.0.1:%[1]d"]
sinks = ["messages"]

[[frontend.syslog.route]]
facility = ["mail", "cron"]
severity = "emerg..err"           # *.err, but mail.none;cron.none for messages
sinks = ["alerts"]

[[frontend.syslog.route]]
facility = ["mail", "cron"]       # the rest of mail and cron goes nowhere
action = "drop"

[[frontend.syslog.route]]
severity = "emerg..err"           # *.err: err and everything more severe
sinks = ["alerts", "messages"]

[[frontend.syslog.route]]
severity = "debug"                # *.=debug ~ : discard
action = "drop"

[sink.alerts]
type = "syslog"
servers = ["tcp://%[2]s"]

[sink.messages]
type = "file"
path = "{{DIR}}/messages"
encoding = "traditional"
`,
		files:      []string{"messages"},
		collectors: []string{"alerts"},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			run := func(who string) (destinations, map[string][]string, *frameCollector) {
				col := newTCPCollector(t, "")
				port := testenv.FreePort(t)
				var dir string
				if who == "rsyslog" {
					ready := testenv.FreePort(t)
					r := startRsyslog(t, rsyslogFileFormat+rsyslogInputs(port, ready)+fmt.Sprintf(tc.rsyslog, port, col.addr), fmt.Sprintf("127.0.0.1:%d", ready))
					dir = r.dir
				} else {
					in := start(t, "[admin]\nlisten = \"{{ADMIN}}\"\n"+fmt.Sprintf(tc.wharf, port, col.addr))
					dir = in.dir
				}
				sendUDP(t, fmt.Sprintf("127.0.0.1:%d", port), msgs)
				d := destinations{}
				lines := map[string][]string{}
				waitStill(10*time.Second, 1, func() int {
					total := len(col.snapshot())
					for _, f := range tc.files {
						total += len(fileLines(filepath.Join(dir, f)))
					}
					return total
				})
				for _, f := range tc.files {
					lines[f] = fileLines(filepath.Join(dir, f))
					d[f] = ids(lines[f])
				}
				d[tc.collectors[0]] = ids(col.snapshot())
				return d, lines, col
			}
			rd, rl, rc := run("rsyslog")
			wd, wl, wc := run("wharf")
			if rd.String() != wd.String() {
				t.Errorf("routing differs:\nrsyslog\n%swharf\n%s", rd, wd)
			}
			for _, f := range tc.files {
				if len(rl[f]) == 0 {
					t.Errorf("rsyslog wrote nothing to %s", f)
				}
				for i := range min(len(rl[f]), len(wl[f])) {
					if rl[f][i] != wl[f][i] {
						t.Errorf("%s line %d:\nrsyslog %q\nwharf   %q", f, i, rl[f][i], wl[f][i])
					}
				}
			}
			rm, wm := rc.snapshot(), wc.snapshot()
			if len(rm) > 0 && len(wm) > 0 {
				t.Logf("%s: rsyslog sends %q (%s), wharf %q (%s)", tc.collectors[0], rm[0], rc.framing(), wm[0], wc.framing())
			}
			t.Logf("destinations:\n%s", wd)
		})
	}
}

// TestMigratingForwardFailover: rsyslog pair 2, forwarding to a TCP
// collector with a UDP one used while it is down
// ($ActionExecOnlyWhenPreviousIsSuspended), against wharf's servers list.
// One message every 100ms goes to both relays; the primary collector is
// up, then down, then up again. Both send everything to the primary while
// it is up, switch to the backup while it is down, and go back to the
// primary once it is back (both retry it after 30s: rsyslog's
// action.resumeInterval, wharf's failback interval).
func TestMigratingForwardFailover(t *testing.T) {
	type relay struct {
		name            string
		central, backup *frameCollector
		conn            net.Conn
	}
	var relays []*relay
	for _, who := range []string{"rsyslog", "wharf"} {
		r := &relay{name: who, central: newTCPCollector(t, ""), backup: newUDPCollector(t)}
		port := testenv.FreePort(t)
		if who == "rsyslog" {
			startRsyslog(t, fmt.Sprintf(`module(load="imudp")
input(type="imudp" port="%[1]d" address="127.0.0.1")
module(load="imtcp")
input(type="imtcp" port="%[1]d" address="127.0.0.1")
*.* @@%[2]s
$ActionExecOnlyWhenPreviousIsSuspended on
*.* @%[3]s
`, port, r.central.addr, r.backup.addr), fmt.Sprintf("127.0.0.1:%d", port))
		} else {
			start(t, fmt.Sprintf(`[admin]
listen = "{{ADMIN}}"

[frontend.syslog]
bind = ["udp://127.0.0.1:%[1]d", "tcp://127.0.0.1:%[1]d"]
sinks = ["central"]

[sink.central]
type = "syslog"
# In order: the second is used while the first is down (rsyslog's
# action.execOnlyWhenPreviousIsSuspended), and wharf fails back.
servers = ["tcp://%[2]s", "udp://%[3]s"]
out_framing = "octet-counting"    # rsyslog's TCP_Framing="octet-counted"; "lf" for the traditional framing
encoding = "raw"                  # forward the bytes as received
`, port, r.central.addr, r.backup.addr))
		}
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		r.conn = c
		relays = append(relays, r)
	}
	next := 0
	send := func() int {
		id := next
		next++
		for _, r := range relays {
			if _, err := fmt.Fprintf(r.conn, "%s\n", prioLine(1, 5, id, "web1", "app")); err != nil {
				t.Fatalf("%s: %v", r.name, err)
			}
		}
		time.Sleep(100 * time.Millisecond)
		return id
	}
	// ranges counts, per relay, the ids of [from, to) at each collector.
	report := func(phase string, from, to int) map[string]string {
		out := map[string]string{}
		for _, r := range relays {
			var c, b int
			for _, id := range ids(r.central.snapshot()) {
				if id >= from && id < to {
					c++
				}
			}
			for _, id := range ids(r.backup.snapshot()) {
				if id >= from && id < to {
					b++
				}
			}
			out[r.name] = fmt.Sprintf("central %d backup %d lost %d", c, b, to-from-c-b)
			t.Logf("%-12s %-7s of %d: %s", phase, r.name, to-from, out[r.name])
		}
		return out
	}
	for range 10 {
		send()
	}
	time.Sleep(time.Second)
	if up := report("primary up", 0, 10); up["rsyslog"] != up["wharf"] || up["wharf"] != "central 10 backup 0 lost 0" {
		t.Errorf("primary up: rsyslog %s, wharf %s; want everything at central", up["rsyslog"], up["wharf"])
	}
	addrs := map[string]string{}
	for _, r := range relays {
		addrs[r.name] = r.central.addr
		r.central.close()
	}
	down := next
	for range 30 {
		send()
	}
	time.Sleep(time.Second)
	dn := report("primary down", down, next)
	// The ten messages after the first three must be at the backup for
	// both: each relay notices the broken connection within a write or two.
	for _, r := range relays {
		got := map[int]bool{}
		for _, id := range ids(r.backup.snapshot()) {
			got[id] = true
		}
		for id := down + 3; id < next; id++ {
			if !got[id] {
				t.Errorf("%s: id=%d, sent while the primary was down, not at the backup (%s)", r.name, id, dn[r.name])
				break
			}
		}
	}
	back := next
	for _, r := range relays {
		r.central = newTCPCollector(t, addrs[r.name])
	}
	failedBack := func(r *relay) bool { return len(ids(r.central.snapshot())) > 0 }
	started := time.Now()
	backAt := map[string]time.Duration{}
	for time.Since(started) < 45*time.Second && len(backAt) < len(relays) {
		send()
		for _, r := range relays {
			if _, ok := backAt[r.name]; !ok && failedBack(r) {
				backAt[r.name] = time.Since(started).Round(100 * time.Millisecond)
			}
		}
	}
	for range 10 {
		send()
	}
	time.Sleep(time.Second)
	report("primary back", back, next)
	for _, r := range relays {
		if _, ok := backAt[r.name]; !ok {
			t.Errorf("%s did not go back to the primary within 45s", r.name)
		}
		got := ids(r.central.snapshot())
		if n := len(got); n < 10 || got[n-1] != next-1 {
			t.Errorf("%s: the last messages are not at the primary: %v", r.name, got)
		}
	}
	t.Logf("back to the primary after: %v", backAt)
}

// startHAProxy runs a real HAProxy in the foreground on config (after a
// global/defaults head) until the test ends, and waits until every port
// in ports accepts connections.
func startHAProxy(t *testing.T, config string, ports ...int) {
	t.Helper()
	bin := testenv.Tool(t, "haproxy")
	config = `global
    maxconn 200
defaults
    timeout connect 2s
    timeout client 10s
    timeout server 10s
` + config
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-c", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s\n%s", err, out, config)
	}
	cmd := exec.Command(bin, "-db", "-f", path)
	out := &testenv.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("haproxy output:\n%s", out.String())
		}
	})
	for _, p := range ports {
		testenv.EventuallyWithin(t, 5*time.Second, fmt.Sprintf("haproxy listening on %d", p), func() bool {
			c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err == nil {
				c.Close()
			}
			return err == nil
		})
	}
}

// nameServer is a TCP server on a fixed loopback address that writes its
// name to each connection and closes it; it can be stopped and started.
type nameServer struct {
	name, addr string
	mu         sync.Mutex
	ln         net.Listener
}

func newNameServer(t *testing.T, name string) *nameServer {
	s := &nameServer{name: name, addr: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))}
	s.up(t)
	t.Cleanup(s.down)
	return s
}

func (s *nameServer) up(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	testenv.ServeEach(t, ln, func(c net.Conn) {
		io.WriteString(c, s.name)
		c.Close()
	})
}

func (s *nameServer) down() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		s.ln.Close()
		s.ln = nil
	}
}

// answers connects n times to addr and counts the answers ("" for a
// connection closed without one).
func answers(addr string, n int) string {
	got := map[string]int{}
	for range n {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			got["refused"]++
			continue
		}
		c.SetDeadline(time.Now().Add(3 * time.Second))
		b, _ := io.ReadAll(c)
		c.Close()
		got[string(b)]++
	}
	var s []string
	for k, v := range got {
		s = append(s, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(s)
	return strings.Join(s, " ")
}

// TestMigratingTCPBackendChecksBackup: HAProxy pair 3, a TCP frontend
// with a round-robin backend, health checks (rise 2, fall 3) and a
// backup server. HAProxy and wharf share the three servers and see the
// same outages: both spread connections evenly over pg1 and pg2 and none
// to pg3; with pg1 down, all to pg2; with both down, all to the backup;
// with pg1 back, all to pg1. The check interval is 500ms on both, not
// 2s, to keep the test short.
func TestMigratingTCPBackendChecksBackup(t *testing.T) {
	pg1, pg2, pg3 := newNameServer(t, "pg1"), newNameServer(t, "pg2"), newNameServer(t, "pg3")
	hp := testenv.FreePort(t)
	startHAProxy(t, fmt.Sprintf(`frontend db
    mode tcp
    bind 127.0.0.1:%d
    default_backend pg
backend pg
    mode tcp
    balance roundrobin
    server pg1 %s check inter 500ms rise 2 fall 3
    server pg2 %s check inter 500ms rise 2 fall 3
    server pg3 %s check inter 500ms rise 2 fall 3 backup
`, hp, pg1.addr, pg2.addr, pg3.addr), hp)
	in := start(t, fmt.Sprintf(`[admin]
listen = "{{ADMIN}}"

[frontend.db]
mode = "tcp"
bind = ["tcp://127.0.0.1:0"]
backend = "pg"

[backend.pg]
balance = "roundrobin"
check = "tcp"
check_interval = "500ms"
rise = 2
fall = 3

[[backend.pg.server]]
name = "pg1"
address = %q

[[backend.pg.server]]
name = "pg2"
address = %q

# Only while pg1 and pg2 are both down (or in maint, or weight 0).
[[backend.pg.server]]
name = "pg3"
address = %q
backup = true
`, pg1.addr, pg2.addr, pg3.addr))
	proxies := map[string]string{"haproxy": fmt.Sprintf("127.0.0.1:%d", hp), "wharf": proxyBind(t, in, "db")}
	settle := 3 * 500 * time.Millisecond // fall (or rise) checks
	step := func(what, want string) {
		t.Helper()
		time.Sleep(settle + 700*time.Millisecond)
		for _, who := range []string{"haproxy", "wharf"} {
			if got := answers(proxies[who], 6); got != want {
				t.Errorf("%s: %s: %s, want %s", what, who, got, want)
			}
		}
	}
	step("all up", "pg1=3 pg2=3")
	pg1.down()
	step("pg1 down", "pg2=6")
	pg2.down()
	step("pg1 and pg2 down", "pg3=6")
	pg1.up(t)
	step("pg1 back", "pg1=6")
}

// TestMigratingSNIRouting: HAProxy pair 10, TLS passthrough by SNI. The
// same TLS clients (each its server name) reach the same backend through
// HAProxy and wharf, but for a name in capitals: the snippet's
// req_ssl_sni -m end compares case-sensitively, wharf's sni rule as
// HAProxy's -i does (the guide says so).
func TestMigratingSNIRouting(t *testing.T) {
	ca := testpki.NewCA(t, "sni test CA")
	cert, _, _ := ca.ServerCert(t, "localhost")
	tlsServer := func(name string) string {
		ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
		if err != nil {
			t.Fatal(err)
		}
		testenv.ServeEach(t, ln, func(c net.Conn) {
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, name)
		})
		return ln.Addr().String()
	}
	web, db := tlsServer("web_tls"), tlsServer("db")
	hp := testenv.FreePort(t)
	startHAProxy(t, fmt.Sprintf(`frontend tls
    mode tcp
    bind 127.0.0.1:%d
    tcp-request inspect-delay 5s
    tcp-request content accept if { req_ssl_hello_type 1 }
    use_backend db if { req_ssl_sni -m end .db.example.com }
    default_backend web_tls
backend web_tls
    mode tcp
    server w1 %s
backend db
    mode tcp
    server d1 %s
`, hp, web, db), hp)
	in := start(t, fmt.Sprintf(`[admin]
listen = "{{ADMIN}}"

[frontend.tls]
mode = "tcp"
bind = ["tcp://127.0.0.1:0"]
sni_routing = true
header_timeout = "5s"             # inspect-delay
backend = "web_tls"

[[frontend.tls.use]]
sni = ".db.example.com"           # -m end: any depth below, not db.example.com itself
backend = "db"

[backend.web_tls]
[[backend.web_tls.server]]
address = %q

[backend.db]
[[backend.db.server]]
address = %q
`, web, db))
	proxies := map[string]string{"haproxy": fmt.Sprintf("127.0.0.1:%d", hp), "wharf": proxyBind(t, in, "tls")}
	via := func(addr, sni string) string {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 3 * time.Second}, "tcp", addr, &tls.Config{ServerName: sni, InsecureSkipVerify: true})
		if err != nil {
			return "error: " + err.Error()
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		b, _ := io.ReadAll(c)
		return string(b)
	}
	for _, tc := range []struct{ sni, want, wharf string }{
		{"a.db.example.com", "db", ""},
		{"a.b.db.example.com", "db", ""},
		{"db.example.com", "web_tls", ""},
		{"xdb.example.com", "web_tls", ""},
		{"www.example.com", "web_tls", ""},
		{"", "web_tls", ""}, // no SNI
		{"A.DB.EXAMPLE.COM", "web_tls", "db"},
	} {
		want := map[string]string{"haproxy": tc.want, "wharf": tc.want}
		if tc.wharf != "" {
			want["wharf"] = tc.wharf
		}
		for _, who := range []string{"haproxy", "wharf"} {
			if got := via(proxies[who], tc.sni); got != want[who] {
				t.Errorf("SNI %q via %s: %q, want %q", tc.sni, who, got, want[who])
			}
		}
	}
}

// TestMigratingHTTPHostPathRouting: HAProxy pair 4, use_backend by Host
// (hdr(host) -i) and path prefix. The same requests reach the same
// backend through HAProxy and wharf, but for a Host header with a port:
// hdr(host) is the whole header, so "api.example.com:80" and
// "api.example.com." do not match in HAProxy, where wharf's host ignores
// the port and a trailing dot (the guide says so).
func TestMigratingHTTPHostPathRouting(t *testing.T) {
	web, api := httpBackend(t, "web"), httpBackend(t, "api")
	hp := testenv.FreePort(t)
	startHAProxy(t, fmt.Sprintf(`frontend www
    mode http
    bind 127.0.0.1:%d
    acl is_api hdr(host) -i api.example.com
    acl v1 path_beg /v1/
    use_backend api if is_api v1
    default_backend web
backend web
    mode http
    server w1 %s
backend api
    mode http
    server a1 %s
`, hp, web.addr, api.addr), hp)
	in := start(t, fmt.Sprintf(`[admin]
listen = "{{ADMIN}}"

[frontend.www]
mode = "http"
bind = ["tcp://127.0.0.1:0"]
backend = "web"

[[frontend.www.use]]
host = "api.example.com"
path_prefix = "/v1/"
backend = "api"

[backend.web]
[[backend.web.server]]
address = %q

[backend.api]
[[backend.api.server]]
address = %q
`, web.addr, api.addr))
	proxies := map[string]string{"haproxy": fmt.Sprintf("127.0.0.1:%d", hp), "wharf": proxyBind(t, in, "www")}
	get := func(addr, target, host string) string {
		c, err := net.DialTimeout("tcp", addr, 3*time.Second)
		if err != nil {
			return "error: " + err.Error()
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", target, host)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return "error: " + err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return fmt.Sprintf("%d %s", resp.StatusCode, b)
	}
	for _, tc := range []struct{ target, host, want, wharf string }{
		{"/v1/users", "api.example.com", "200 api", ""},
		{"/v1/", "API.Example.COM", "200 api", ""},
		{"/v1/x?y=/v2/", "api.example.com", "200 api", ""},
		{"/v2/users", "api.example.com", "200 web", ""},
		{"/v1", "api.example.com", "200 web", ""},
		{"/V1/users", "api.example.com", "200 web", ""},
		{"/v1/users", "www.example.com", "200 web", ""},
		{"/v1/users", "api.example.com:80", "200 web", "200 api"},
		{"/v1/users", "api.example.com.", "200 web", "200 api"},
	} {
		want := map[string]string{"haproxy": tc.want, "wharf": tc.want}
		if tc.wharf != "" {
			want["wharf"] = tc.wharf
		}
		for _, who := range []string{"haproxy", "wharf"} {
			if got := get(proxies[who], tc.target, tc.host); got != want[who] {
				t.Errorf("GET %s Host %s via %s: %q, want %q", tc.target, tc.host, who, got, want[who])
			}
		}
	}
}

// TestMigratingTLSInOut: rsyslog pair 8, TLS in (clients need a
// certificate: x509/certvalid) and out (the collector's certificate must
// name central.example.net: x509/name with PermittedPeers). A client
// with a certificate is relayed by both to a collector whose
// certificate names central.example.net; a client without one is
// refused by both; neither sends to a collector whose certificate names
// another host. rsyslog frames its TLS output with LF (omfwd's default
// TCP_Framing), wharf with octet counting (RFC 5425); both present their
// certificate to the collector.
func TestMigratingTLSInOut(t *testing.T) {
	ca := testpki.NewCA(t, "migrating TLS CA")
	serverCert, serverKey := ca.Issue(t, "localhost", true)
	clientCert := ca.ClientCert(t, "sender")
	wharfCliCert, wharfCliKey := ca.Issue(t, "wharf-relay", false)
	for _, name := range []string{"central.example.net", "other.example.net"} {
		t.Run(name, func(t *testing.T) {
			collCert, _, _ := ca.ServerCert(t, name)
			var presented sync.Map
			collector := func() *frameCollector {
				ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
					Certificates: []tls.Certificate{collCert},
					ClientAuth:   tls.RequestClientCert,
					VerifyConnection: func(cs tls.ConnectionState) error {
						presented.Store(len(cs.PeerCertificates) > 0, true)
						return nil
					},
				})
				if err != nil {
					t.Fatal(err)
				}
				return collectOn(t, ln)
			}
			type relay struct {
				name string
				addr string
				col  *frameCollector
			}
			rs := &relay{name: "rsyslog", col: collector()}
			port := testenv.FreePort(t)
			rs.addr = fmt.Sprintf("127.0.0.1:%d", port)
			_, cport, _ := net.SplitHostPort(rs.col.addr)
			startRsyslog(t, fmt.Sprintf(`global(DefaultNetstreamDriverCAFile="%s"
       DefaultNetstreamDriverCertFile="%s"
       DefaultNetstreamDriverKeyFile="%s")
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="x509/certvalid")
input(type="imtcp" port="%d" address="127.0.0.1")
action(type="omfwd" target="127.0.0.1" port="%s" protocol="tcp"
       StreamDriver="gtls" StreamDriverMode="1" StreamDriverAuthMode="x509/name"
       StreamDriverPermittedPeers="central.example.net")
`, ca.File, serverCert, serverKey, port, cport), rs.addr)
			wh := &relay{name: "wharf", col: collector()}
			in := start(t, fmt.Sprintf(`[admin]
listen = "{{ADMIN}}"

[frontend.tls]
bind = ["tls://127.0.0.1:0"]
tls_cert = %q
tls_key = %q
tls_client_ca = %q   # AuthMode x509/certvalid: clients need a certificate
sinks = ["central"]

[sink.central]
type = "syslog"
servers = ["tls://%s"]
tls_ca = %q
tls_server_name = "central.example.net"           # x509/name with PermittedPeers
tls_cert = %q            # if the collector wants a client certificate
tls_key = %q
`, serverCert, serverKey, ca.File, wh.col.addr, ca.File, wharfCliCert, wharfCliKey))
			wh.addr = in.bind("tls", "tls")
			next := 0
			for _, r := range []*relay{rs, wh} {
				send := func(certs []tls.Certificate) (int, error) {
					id := next
					next++
					c, err := tls.DialWithDialer(&net.Dialer{Timeout: 3 * time.Second}, "tcp", r.addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", Certificates: certs})
					if err != nil {
						return id, err
					}
					defer c.Close()
					c.SetDeadline(time.Now().Add(3 * time.Second))
					if _, err := fmt.Fprintf(c, "%s\n", prioLine(1, 5, id, "web1", "app")); err != nil {
						return id, err
					}
					// TLS 1.3: a refused client certificate shows on the first read.
					_, err = c.Read(make([]byte, 1))
					if err == io.EOF {
						err = nil
					} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
						err = nil
					}
					return id, err
				}
				withID, err := send([]tls.Certificate{clientCert})
				if err != nil {
					t.Errorf("%s refused a client with a certificate: %v", r.name, err)
				}
				withoutID, err := send(nil)
				if err == nil {
					t.Logf("%s: client without a certificate: no error seen by the client", r.name)
				}
				if name == "central.example.net" {
					testenv.Poll(5*time.Second, func() bool { return len(r.col.snapshot()) > 0 })
				} else {
					time.Sleep(3 * time.Second)
				}
				got := ids(r.col.snapshot())
				want := []int{withID}
				if name != "central.example.net" {
					want = nil
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("%s: collector %s got ids %v, want %v (%d without a client certificate)", r.name, name, got, want, withoutID)
				}
				t.Logf("%s -> %s: ids %v, framing %s", r.name, name, got, r.col.framing())
			}
			if _, ok := presented.Load(false); ok {
				t.Errorf("a relay connected to the collector without a client certificate")
			}
		})
	}
}

// TestMigratingHTTPCheck: HAProxy pair 5, option httpchk GET /healthz
// expecting 200, web1 at weight 2. Through HAProxy and wharf alike, web1
// takes two requests in three; while web2's /healthz answers 503 it
// takes none, and its share comes back once /healthz answers 200 again.
// The check interval is 500ms on both, not 2s, to keep the test short.
func TestMigratingHTTPCheck(t *testing.T) {
	type web struct {
		name string
		addr string
		sick atomic.Bool
	}
	newWeb := func(name string) *web {
		w := &web{name: name}
		s := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/healthz" {
				if w.sick.Load() {
					rw.WriteHeader(http.StatusServiceUnavailable)
				}
				return
			}
			io.WriteString(rw, name)
		}))
		t.Cleanup(s.Close)
		w.addr = strings.TrimPrefix(s.URL, "http://")
		return w
	}
	web1, web2 := newWeb("web1"), newWeb("web2")
	hp := testenv.FreePort(t)
	startHAProxy(t, fmt.Sprintf(`frontend www
    mode http
    bind 127.0.0.1:%d
    default_backend web
backend web
    mode http
    option httpchk GET /healthz
    http-check expect status 200
    server web1 %s check inter 500ms weight 2
    server web2 %s check inter 500ms
`, hp, web1.addr, web2.addr), hp)
	in := start(t, fmt.Sprintf(`[admin]
listen = "{{ADMIN}}"

[frontend.www]
mode = "http"
bind = ["tcp://127.0.0.1:0"]
backend = "web"

[backend.web]
check = "http"
check_path = "/healthz"
check_status = 200
check_interval = "500ms"

[[backend.web.server]]
name = "web1"
address = %q
weight = 2

[[backend.web.server]]
name = "web2"
address = %q
`, web1.addr, web2.addr))
	proxies := map[string]string{"haproxy": fmt.Sprintf("127.0.0.1:%d", hp), "wharf": proxyBind(t, in, "www")}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 3 * time.Second}
	count := func(addr string, n int) string {
		got := map[string]int{}
		for range n {
			resp, err := client.Get("http://" + addr + "/")
			if err != nil {
				got["error"]++
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			got[fmt.Sprintf("%d:%s", resp.StatusCode, b)]++
		}
		var s []string
		for k, v := range got {
			s = append(s, fmt.Sprintf("%s=%d", k, v))
		}
		sort.Strings(s)
		return strings.Join(s, " ")
	}
	step := func(what, want string) {
		t.Helper()
		time.Sleep(3*500*time.Millisecond + 700*time.Millisecond) // fall (or rise) checks
		for _, who := range []string{"haproxy", "wharf"} {
			if got := count(proxies[who], 6); got != want {
				t.Errorf("%s: %s: %s, want %s", what, who, got, want)
			}
		}
	}
	step("both healthy", "200:web1=4 200:web2=2")
	web2.sick.Store(true)
	step("web2 /healthz 503", "200:web1=6")
	web2.sick.Store(false)
	step("web2 healthy again", "200:web1=4 200:web2=2")
}

// TestMigratingLogForward: HAProxy pair 1, log-forward to two UDP
// collectors, one rfc5424 and one rfc3164. The same datagrams (RFC3164
// with and without a PID, RFC5424 with structured data) come out of
// HAProxy and wharf with the same bytes, but for the zone of an RFC3164
// timestamp re-encoded as RFC5424: HAProxy writes "-00:00" (zone
// unknown), wharf its local zone, "Z" with TZ=UTC (the guide says so).
// Both keep the sender's facility: local0 on HAProxy's log lines does not
// replace it.
func TestMigratingLogForward(t *testing.T) {
	t.Setenv("TZ", "UTC") // wharf's zone for RFC3164 timestamps
	ha, hb, wa, wb := newUDPCollector(t), newUDPCollector(t), newUDPCollector(t), newUDPCollector(t)
	hp, ready := testenv.FreePort(t), testenv.FreePort(t)
	startHAProxy(t, fmt.Sprintf(`log-forward syslog
    dgram-bind 127.0.0.1:%d
    bind 127.0.0.1:%d
    log %s format rfc5424 local0
    log %s format rfc3164 local0
`, hp, ready, ha.addr, hb.addr), ready)
	wp := testenv.FreePort(t)
	start(t, fmt.Sprintf(`[admin]
listen = "{{ADMIN}}"

[frontend.syslog]
bind = ["udp://127.0.0.1:%[1]d", "tcp://127.0.0.1:%[1]d"]
sinks = ["a", "b"]                # each message to both, as two log lines do

[sink.a]
type = "syslog"
servers = ["udp://%[2]s"]
encoding = "rfc5424"

[sink.b]
type = "syslog"
servers = ["udp://%[3]s"]
encoding = "rfc3164"
`, wp, wa.addr, wb.addr))
	msgs := []string{
		"<14>Dec  6 05:10:11 web1 app[7]: bsd id=1",
		`<165>1 2026-12-06T05:10:11.123456Z web1 app 7 ID47 [ex@32473 k="v"] rfc5424 id=2`,
		"<13>Dec  6 05:10:11 web1 app: no pid id=3",
		"<86>Dec  6 05:10:12 web2 sshd[99]: authpriv id=4",
	}
	sendUDP(t, fmt.Sprintf("127.0.0.1:%d", hp), msgs)
	sendUDP(t, fmt.Sprintf("127.0.0.1:%d", wp), msgs)
	for _, c := range []*frameCollector{ha, hb, wa, wb} {
		testenv.Poll(5*time.Second, func() bool { return len(c.snapshot()) >= len(msgs) })
	}
	for _, pair := range []struct {
		format     string
		haproxy, w *frameCollector
	}{{"rfc5424", ha, wa}, {"rfc3164", hb, wb}} {
		h, w := pair.haproxy.snapshot(), pair.w.snapshot()
		sort.Strings(h)
		sort.Strings(w)
		if len(h) != len(msgs) || len(w) != len(msgs) {
			t.Fatalf("%s: haproxy sent %d, wharf %d, want %d:\n%q\n%q", pair.format, len(h), len(w), len(msgs), h, w)
		}
		for i := range h {
			want := strings.Replace(h[i], ":11-00:00 ", ":11Z ", 1)
			want = strings.Replace(want, ":12-00:00 ", ":12Z ", 1)
			if w[i] != want {
				t.Errorf("%s:\nhaproxy %q\nwharf   %q", pair.format, h[i], w[i])
			}
		}
	}
}

// TestMigratingLogForwardMaxconnTimeout: HAProxy pair 2, log-forward
// with maxconn and timeout client (2 and 1s here, not 2000 and 10m), the
// same octet-counted messages on three connections opened one after the
// other and left open. HAProxy logs to a UDP collector here, not through
// a ring (the ring's queue is not what this compares). Both relay what
// the first two connections send. wharf closes the third at once and
// counts it (wharf_frontend_rejected_total{reason="maxconn"}), and closes
// an idle connection after client_timeout. HAProxy 2.6 leaves the third
// in the kernel's backlog (in some runs it relayed it at once) and
// closes an idle connection seconds late or not at all
// (haproxy/haproxy#2112), so only its first two are checked (the guide
// says so).
func TestMigratingLogForwardMaxconnTimeout(t *testing.T) {
	hc, wc := newUDPCollector(t), newTCPCollector(t, "")
	hp := testenv.FreePort(t)
	startHAProxy(t, fmt.Sprintf(`log-forward syslog
    bind 127.0.0.1:%d
    maxconn 2
    timeout client 1s
    log %s format rfc5424 local0
`, hp, hc.addr))
	in := start(t, fmt.Sprintf(`[admin]
listen = "{{ADMIN}}"

[frontend.syslog]
bind = ["tcp://127.0.0.1:0"]
maxconn = 2
client_timeout = "1s"
sinks = ["central"]

[sink.central]
type = "syslog"
servers = ["tcp://%s"]
encoding = "rfc5424"
queue_bytes = "256MiB"
`, wc.addr))
	relays := map[string]string{"haproxy": fmt.Sprintf("127.0.0.1:%d", hp), "wharf": in.bind("syslog", "tcp")}
	cols := map[string]*frameCollector{"haproxy": hc, "wharf": wc}
	for _, who := range []string{"haproxy", "wharf"} {
		var conns []net.Conn
		for id := 1; id <= 3; id++ {
			var c net.Conn
			var err error
			testenv.Poll(3*time.Second, func() bool { // HAProxy may not listen yet
				c, err = net.DialTimeout("tcp", relays[who], time.Second)
				return err == nil
			})
			if err != nil {
				t.Fatalf("%s: connection %d: %v", who, id, err)
			}
			defer c.Close()
			m := fmt.Sprintf("<14>1 2026-12-06T05:10:11Z web1 app 7 - - event id=%d", id)
			fmt.Fprintf(c, "%d %s", len(m), m)
			conns = append(conns, c)
			time.Sleep(100 * time.Millisecond)
		}
		idleSince := time.Now()
		conns[2].SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		_, err := conns[2].Read(make([]byte, 1))
		thirdClosed := err != nil && !isTimeout(err)
		conns[1].SetReadDeadline(idleSince.Add(3 * time.Second))
		_, err = conns[1].Read(make([]byte, 1))
		idleClosed := err != nil && !isTimeout(err)
		idle := time.Since(idleSince).Round(100 * time.Millisecond)
		waitStill(3*time.Second, 2, func() int { return len(cols[who].snapshot()) })
		got := fmt.Sprint(ids(cols[who].snapshot()))
		t.Logf("%s: relayed %s; third connection closed at once: %v; idle one closed: %v after %v", who, got, thirdClosed, idleClosed, idle)
		if who == "haproxy" {
			if !strings.HasPrefix(got, "[1 2") {
				t.Errorf("haproxy relayed %s, want the first two connections' [1 2]", got)
			}
			continue
		}
		if got != "[1 2]" || !thirdClosed {
			t.Errorf("wharf relayed %s, third connection closed at once %v; want [1 2], true", got, thirdClosed)
		}
		if !idleClosed || idle > 2*time.Second {
			t.Errorf("wharf: an idle connection was not closed after the 1s client_timeout (closed %v after %v)", idleClosed, idle)
		}
	}
	if n := in.metric("wharf_frontend_rejected_total", `reason="maxconn"`); n != 1 {
		t.Errorf(`wharf_frontend_rejected_total{reason="maxconn"} = %v, want 1`, n)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// holdServer is a TCP server that writes its name to each connection and
// keeps it open until the client closes it.
func holdServer(t *testing.T, name string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	testenv.ServeEach(t, ln, func(c net.Conn) {
		defer c.Close()
		io.WriteString(c, name)
		io.Copy(io.Discard, c)
	})
	return ln.Addr().String()
}

// TestMigratingLeastconnSource: HAProxy pair 6. balance leastconn with a
// server maxconn (1 here, not 100): a second connection waits while the
// first holds the server, is forwarded once the first ends, and is closed
// after the queue timeout (timeout connect: 1s on both) when it does not.
// The queue timeout is checked on a backend of its own (q1), so that what
// the first check left behind (a connection served from the queue, one
// whose slot the proxy has not yet released) cannot change it.
// balance source: each client address (127.0.0.2 to .9) always reaches
// the same server, and the addresses are spread over both; which server
// an address reaches differs (the hashes differ), so only that is
// compared.
func TestMigratingLeastconnSource(t *testing.T) {
	a1, q1, s1, s2 := holdServer(t, "a1"), holdServer(t, "q1"), holdServer(t, "s1"), holdServer(t, "s2")
	hp, hq, hs := testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)
	startHAProxy(t, fmt.Sprintf(`frontend api
    mode tcp
    bind 127.0.0.1:%d
    default_backend api
frontend queue
    mode tcp
    bind 127.0.0.1:%d
    default_backend queue
frontend sticky
    mode tcp
    bind 127.0.0.1:%d
    default_backend sticky
backend api
    mode tcp
    timeout connect 1s
    balance leastconn
    server a1 %s maxconn 1
backend queue
    mode tcp
    timeout connect 1s
    balance leastconn
    server q1 %s maxconn 1
backend sticky
    mode tcp
    balance source
    server s1 %s
    server s2 %s
`, hp, hq, hs, a1, q1, s1, s2), hp, hq, hs)
	in := start(t, fmt.Sprintf(`[admin]
listen = "{{ADMIN}}"

[frontend.api]
mode = "tcp"
bind = ["tcp://127.0.0.1:0"]
backend = "api"

[frontend.queue]
mode = "tcp"
bind = ["tcp://127.0.0.1:0"]
backend = "queue"

[frontend.sticky]
mode = "tcp"
bind = ["tcp://127.0.0.1:0"]
backend = "sticky"

[backend.api]
balance = "leastconn"
connect_timeout = "1s"
[[backend.api.server]]
address = %q
maxconn = 1                       # when full, new connections queue

[backend.queue]
balance = "leastconn"
connect_timeout = "1s"
[[backend.queue.server]]
address = %q
maxconn = 1

[backend.sticky]
balance = "source"                # hash of the client IP
[[backend.sticky.server]]
address = %q
[[backend.sticky.server]]
address = %q
`, a1, q1, s1, s2))
	api := map[string]string{"haproxy": fmt.Sprintf("127.0.0.1:%d", hp), "wharf": proxyBind(t, in, "api")}
	queue := map[string]string{"haproxy": fmt.Sprintf("127.0.0.1:%d", hq), "wharf": proxyBind(t, in, "queue")}
	sticky := map[string]string{"haproxy": fmt.Sprintf("127.0.0.1:%d", hs), "wharf": proxyBind(t, in, "sticky")}
	// read returns what conn's server wrote within d, "" if nothing, and
	// whether the connection was closed.
	read := func(c net.Conn, d time.Duration) (string, bool) {
		c.SetReadDeadline(time.Now().Add(d))
		b := make([]byte, 16)
		n, err := c.Read(b)
		return string(b[:n]), err != nil && !isTimeout(err)
	}
	dial := func(addr, from string) net.Conn {
		t.Helper()
		d := net.Dialer{Timeout: 2 * time.Second}
		if from != "" {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
		}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, who := range []string{"haproxy", "wharf"} {
		first := dial(api[who], "")
		if got, _ := read(first, 2*time.Second); got != "a1" {
			t.Errorf("%s: first connection got %q, want a1", who, got)
		}
		second := dial(api[who], "")
		got, closed := read(second, 400*time.Millisecond)
		first.Close()
		later, _ := read(second, 2*time.Second)
		second.Close()
		if got != "" || closed || later != "a1" {
			t.Errorf("%s: a second connection while a1 is at maxconn got %q (closed %v), then %q after the first ended; want to wait, then a1", who, got, closed, later)
		}
		hold := dial(queue[who], "")
		if got, _ := read(hold, 2*time.Second); got != "q1" {
			t.Errorf("%s: the first connection to q1 got %q, want q1", who, got)
		}
		waiting := dial(queue[who], "")
		t0 := time.Now()
		got, closed = read(waiting, 3*time.Second)
		waited := time.Since(t0).Round(100 * time.Millisecond)
		hold.Close()
		waiting.Close()
		if got != "" || !closed || waited < 800*time.Millisecond || waited > 2500*time.Millisecond {
			t.Errorf("%s: a connection waiting for q1 got %q, closed %v after %v; want closed after the 1s queue timeout", who, got, closed, waited)
		}
		perSource := map[string]bool{}
		for i := 2; i <= 9; i++ {
			from := fmt.Sprintf("127.0.0.%d", i)
			seen := map[string]bool{}
			for range 3 {
				c := dial(sticky[who], from)
				got, _ := read(c, 2*time.Second)
				c.Close()
				seen[got] = true
				perSource[got] = true
			}
			if len(seen) != 1 {
				t.Errorf("%s: balance source sent %s to %v, want one server", who, from, seen)
			}
		}
		if !perSource["s1"] || !perSource["s2"] {
			t.Errorf("%s: balance source sent 8 addresses to %v, want both servers", who, perSource)
		}
	}
}

// TestMigratingRedirectHeaders: HAProxy pair 12. The plain frontend
// answers every request with a 301 to the same URL in https; the TLS
// frontend sets X-Edge and removes X-Debug on the request the server
// sees, and sets Strict-Transport-Security and removes X-Powered-By on
// the response the client sees. The same requests through HAProxy and
// wharf give the same status, Location and headers, but for a Host with
// a port (HAProxy keeps it in the https URL, wharf drops it) and a
// request without Host (HAProxy: 301 to "https:///old", wharf: 400); the
// guide says so.
func TestMigratingRedirectHeaders(t *testing.T) {
	ca := testpki.NewCA(t, "redirect test CA")
	certFile, keyFile := ca.Issue(t, "localhost", true)
	pemData := append(must(os.ReadFile(certFile)), must(os.ReadFile(keyFile))...)
	pemFile := filepath.Join(t.TempDir(), "site.pem")
	testpki.WriteFile(t, pemFile, pemData)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Powered-By", "PHP/8")
		fmt.Fprintf(w, "X-Edge=%q X-Debug=%q", r.Header.Values("X-Edge"), r.Header.Values("X-Debug"))
	}))
	t.Cleanup(web.Close)
	webAddr := strings.TrimPrefix(web.URL, "http://")
	hp, hs := testenv.FreePort(t), testenv.FreePort(t)
	startHAProxy(t, fmt.Sprintf(`frontend www
    mode http
    bind 127.0.0.1:%d
    http-request redirect scheme https code 301
frontend www_tls
    mode http
    bind 127.0.0.1:%d ssl crt %s
    http-response set-header Strict-Transport-Security "max-age=63072000"
    http-response del-header X-Powered-By
    http-request set-header X-Edge www_tls
    http-request del-header X-Debug
    default_backend web
backend web
    mode http
    server w1 %s
`, hp, hs, pemFile, webAddr), hp, hs)
	in := start(t, fmt.Sprintf(`[admin]
listen = "{{ADMIN}}"

[frontend.www]
mode = "http"
bind = ["tcp://127.0.0.1:0"]
redirect_https = true

[frontend.www_tls]
mode = "http"
bind = ["tcp://127.0.0.1:0"]
tls_cert = %q
tls_key = %q
backend = "web"
response_headers = { "Strict-Transport-Security" = "max-age=63072000", "X-Powered-By" = "" }
request_headers = { "X-Edge" = "www_tls", "X-Debug" = "" }

[backend.web]
[[backend.web.server]]
address = %q
`, certFile, keyFile, webAddr))
	plain := map[string]string{"haproxy": fmt.Sprintf("127.0.0.1:%d", hp), "wharf": proxyBind(t, in, "www")}
	secure := map[string]string{"haproxy": fmt.Sprintf("127.0.0.1:%d", hs), "wharf": proxyBind(t, in, "www_tls")}
	do := func(addr string, tlsOn bool, req string) string {
		var c net.Conn
		var err error
		if tlsOn {
			c, err = tls.DialWithDialer(&net.Dialer{Timeout: 3 * time.Second}, "tcp", addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
		} else {
			c, err = net.DialTimeout("tcp", addr, 3*time.Second)
		}
		if err != nil {
			return "error: " + err.Error()
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		io.WriteString(c, req)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return "error: " + err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode/100 == 3 {
			return fmt.Sprintf("%d Location=%q", resp.StatusCode, resp.Header.Get("Location"))
		}
		return fmt.Sprintf("%d STS=%q X-Powered-By=%q %s", resp.StatusCode, resp.Header.Values("Strict-Transport-Security"), resp.Header.Values("X-Powered-By"), bytes.TrimSpace(b))
	}
	for _, tc := range []struct {
		tls        bool
		req, wharf string // wharf: what wharf answers where it differs
	}{
		{false, "GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n", ""},
		{false, "POST /form HTTP/1.1\r\nHost: www.example.com\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", ""},
		// HAProxy keeps the port of the Host header in the https URL.
		{false, "GET / HTTP/1.1\r\nHost: www.example.com:8080\r\nConnection: close\r\n\r\n", `301 Location="https://www.example.com/"`},
		// HAProxy redirects a request without Host to "https:///old".
		{false, "GET /old HTTP/1.0\r\n\r\n", `400 STS=[] X-Powered-By=[] 400 Bad Request: no Host to redirect to`},
		{true, "GET / HTTP/1.1\r\nHost: localhost\r\nX-Edge: client\r\nX-Debug: 1\r\nConnection: close\r\n\r\n", ""},
		{true, "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", ""},
	} {
		addrs := plain
		if tc.tls {
			addrs = secure
		}
		h, w := do(addrs["haproxy"], tc.tls, tc.req), do(addrs["wharf"], tc.tls, tc.req)
		if want := tc.wharf; want == "" && h != w || want != "" && (w != want || h == w) {
			t.Errorf("%q:\nhaproxy %s\nwharf   %s", tc.req, h, w)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestMigratingTimeoutsRetries: HAProxy pair 8, with the timeouts at 1s
// (connect 500ms) and the first server refusing connections. A
// connection idle after the server's greeting is closed after about 1s
// by both. Where the connection goes differs: the snippet has no option
// redispatch, so HAProxy retries the server round robin chose, and a
// connection sent to the dead one is closed without an answer; wharf's
// retries go to the other server (the guide says so).
func TestMigratingTimeoutsRetries(t *testing.T) {
	dead := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)) // nothing listens
	alive := holdServer(t, "a2")
	hp := testenv.FreePort(t)
	startHAProxy(t, fmt.Sprintf(`defaults
    timeout connect 500ms
    timeout client  1s
    timeout server  1s
    retries 2
frontend app
    mode tcp
    bind 127.0.0.1:%d
    default_backend app
backend app
    mode tcp
    server a1 %s
    server a2 %s
`, hp, dead, alive), hp)
	in := start(t, fmt.Sprintf(`[admin]
listen = "{{ADMIN}}"

[frontend.app]
mode = "tcp"
bind = ["tcp://127.0.0.1:0"]
client_timeout = "1s"
backend = "app"

[backend.app]
connect_timeout = "500ms"
server_timeout = "1s"
retries = 2                       # other servers tried after a failed connect
[[backend.app.server]]
address = %q
[[backend.app.server]]
address = %q
`, dead, alive))
	proxies := map[string]string{"haproxy": fmt.Sprintf("127.0.0.1:%d", hp), "wharf": proxyBind(t, in, "app")}
	want := map[string]string{"haproxy": "=2 a2=2", "wharf": "a2=4"}
	for _, who := range []string{"haproxy", "wharf"} {
		got := map[string]int{}
		var idle []time.Duration
		for range 4 {
			c, err := net.DialTimeout("tcp", proxies[who], 2*time.Second)
			if err != nil {
				got["refused"]++
				continue
			}
			c.SetReadDeadline(time.Now().Add(3 * time.Second))
			b := make([]byte, 8)
			n, _ := io.ReadAtLeast(c, b, 2)
			got[string(b[:n])]++
			if n > 0 && len(idle) == 0 { // one idle wait each
				t0 := time.Now()
				_, err := c.Read(b)
				if err != nil && !isTimeout(err) {
					idle = append(idle, time.Since(t0).Round(100*time.Millisecond))
				} else {
					idle = append(idle, -1)
				}
			}
			c.Close()
		}
		var s []string
		for k, v := range got {
			s = append(s, fmt.Sprintf("%s=%d", k, v))
		}
		sort.Strings(s)
		t.Logf("%s: %s; idle connections closed after %v", who, strings.Join(s, " "), idle)
		if g := strings.Join(s, " "); g != want[who] {
			t.Errorf("%s: answers %s, want %s", who, g, want[who])
		}
		for _, d := range idle {
			if d < 800*time.Millisecond || d > 1500*time.Millisecond {
				t.Errorf("%s: an idle connection closed after %v, want about 1s", who, d)
			}
		}
	}
}

// TestMigratingDropNoise: rsyslog pair 5, discarding HAProxy's health
// check lines and lab hosts (stop) before forwarding the rest. The same
// datagrams to rsyslog with the snippet (and a *.* @@ forward after it)
// and to wharf with the guide's block: the same ids reach the collector.
func TestMigratingDropNoise(t *testing.T) {
	msgs := []string{
		"<134>Dec  6 05:10:01 web1 haproxy[10]: 10.0.0.7 GET /healthz HTTP/1.1 id=1",
		"<134>Dec  6 05:10:02 web1 haproxy[10]: 10.0.0.7 GET /api HTTP/1.1 id=2",
		"<134>Dec  6 05:10:03 web1 nginx[11]: 10.0.0.7 GET /healthz HTTP/1.1 id=3",
		"<134>Dec  6 05:10:04 web1 haproxy: GET /healthz without pid id=4",
		"<134>Dec  6 05:10:05 web1 haproxy[10]: get /healthz lower case id=5",
		"<134>Dec  6 05:10:06 web1 haproxyd[10]: GET /healthz other program id=6",
		"<134>1 2026-12-06T05:10:07Z web1 haproxy 10 - - GET /healthz rfc5424 id=7",
		"<13>Dec  6 05:10:08 lab-db1 app[7]: lab host id=8",
		"<13>Dec  6 05:10:09 labdb1 app[7]: not a lab- host id=9",
		"<13>Dec  6 05:10:10 web-lab-1 app[7]: lab- inside id=10",
		"<13>1 2026-12-06T05:10:11Z lab-x app 7 - - lab host rfc5424 id=11",
		"<13>Dec  6 05:10:12 LAB-db2 app[7]: capitals id=12",
		"<13>Dec  6 05:10:13 web1 app[7]: plain id=13",
	}
	got := map[string][]int{}
	for _, who := range []string{"rsyslog", "wharf"} {
		col := newTCPCollector(t, "")
		port := testenv.FreePort(t)
		if who == "rsyslog" {
			ready := testenv.FreePort(t)
			startRsyslog(t, rsyslogInputs(port, ready)+`if $programname == 'haproxy' and $msg contains 'GET /healthz' then stop
:hostname, startswith, "lab-" stop
*.* @@`+col.addr+"\n", fmt.Sprintf("127.0.0.1:%d", ready))
		} else {
			start(t, fmt.Sprintf(`[admin]
listen = "{{ADMIN}}"

[frontend.syslog]
bind = ["udp://127.0.0.1:%d"]
sinks = ["central"]

[[frontend.syslog.route]]
app_name = "haproxy"
msg_contains = "GET /healthz"
action = "drop"                   # counted: wharf_frontend_dropped_total{reason="route_drop"}

[[frontend.syslog.route]]
hostname = "lab-*"
action = "drop"

[sink.central]
type = "syslog"
servers = ["tcp://%s"]
`, port, col.addr))
		}
		sendUDP(t, fmt.Sprintf("127.0.0.1:%d", port), msgs)
		waitStill(5*time.Second, 1, func() int { return len(col.snapshot()) })
		got[who] = ids(col.snapshot())
	}
	t.Logf("forwarded: rsyslog %v, wharf %v", got["rsyslog"], got["wharf"])
	if fmt.Sprint(got["rsyslog"]) != fmt.Sprint(got["wharf"]) {
		t.Errorf("forwarded ids differ: rsyslog %v, wharf %v", got["rsyslog"], got["wharf"])
	}
}

// TestMigratingPerHostFiles: rsyslog pair 7, one file per host, program
// and day (dynaFile). The same datagrams to rsyslog with the snippet
// (traditional file format, as wharf's block writes) and to wharf with
// the guide's block give the same files, each with the same lines, but
// for the differences the guide names (a leading dot, a slash in the
// tag, an RFC5424 sender's tag).
func TestMigratingPerHostFiles(t *testing.T) {
	t.Setenv("TZ", "UTC") // the receive date in the path, on both
	msgs := []string{
		"<13>Dec  6 05:10:01 web1 app[7]: one id=1",
		"<13>Dec  6 05:10:02 web2 app[7]: two id=2",
		"<13>Dec  6 05:10:03 web1 sshd[8]: three id=3",
		"<13>Dec  6 05:10:04 web1 app[7]: four id=4",
		"<13>1 2026-12-06T05:10:05Z web3 api 9 - - rfc5424 id=5",
		"<13>1 2026-12-06T05:10:06Z web3 - - - - no app id=6",
		"<13>Dec  6 05:10:07 .hidden app[7]: leading dot id=7",
		"<13>Dec  6 05:10:08 web1 my/app[7]: slash in tag id=8",
	}
	trees := map[string]map[string][]string{}
	for _, who := range []string{"rsyslog", "wharf"} {
		port := testenv.FreePort(t)
		var dir string
		if who == "rsyslog" {
			ready := testenv.FreePort(t)
			r := startRsyslog(t, rsyslogFileFormat+rsyslogInputs(port, ready)+`template(name="PerHost" type="string"
         string="DIR/remote/%HOSTNAME%/%PROGRAMNAME%-%$YEAR%-%$MONTH%-%$DAY%.log")
action(type="omfile" dynaFile="PerHost" dynaFileCacheSize="100")
`, fmt.Sprintf("127.0.0.1:%d", ready))
			dir = r.dir
		} else {
			in := start(t, fmt.Sprintf(`[admin]
listen = "{{ADMIN}}"

[frontend.syslog]
bind = ["udp://127.0.0.1:%d"]
sinks = ["per-host"]

[sink.per-host]
type = "file"
path = "{{DIR}}/remote/{hostname}/{app_name}-{date}.log"
encoding = "traditional"
max_open_files = 100              # dynaFileCacheSize; least recently written closed first
`, port))
			dir = in.dir
		}
		sendUDP(t, fmt.Sprintf("127.0.0.1:%d", port), msgs)
		tree := map[string][]string{}
		count := func() int {
			tree = map[string][]string{}
			n := 0
			filepath.WalkDir(filepath.Join(dir, "remote"), func(p string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					rel, _ := filepath.Rel(dir, p)
					tree[rel] = fileLines(p)
					n += len(tree[rel])
				}
				return nil
			})
			return n
		}
		waitStill(5*time.Second, len(msgs), count)
		count()
		trees[who] = tree
	}
	for _, who := range []string{"rsyslog", "wharf"} {
		var s []string
		for p, lines := range trees[who] {
			s = append(s, fmt.Sprintf("%s %v", p, ids(lines)))
		}
		sort.Strings(s)
		t.Logf("%s:\n  %s", who, strings.Join(s, "\n  "))
	}
	// What differs, each in one message: rsyslog keeps a leading dot
	// (wharf writes _), ends PROGRAMNAME at a slash (wharf's app_name
	// keeps the tag whole, the slash made _), and writes an RFC5424
	// sender's tag without the colon, and "-" for no APP-NAME (wharf
	// leaves the tag out). The guide says so.
	r, w := map[string][]string{}, trees["wharf"]
	for p, lines := range trees["rsyslog"] {
		p = strings.Replace(p, "/.hidden/", "/_hidden/", 1)
		p = strings.Replace(p, "/my-", "/my_app-", 1)
		var fixed []string
		for _, l := range lines {
			l = strings.Replace(l, " api[9] rfc5424", " api[9]: rfc5424", 1)
			l = strings.Replace(l, " web3 - no app", " web3 no app", 1)
			fixed = append(fixed, l)
		}
		r[p] = fixed
	}
	for p, rl := range r {
		if wl, ok := w[p]; !ok {
			t.Errorf("rsyslog wrote %s %v (wharf's name for it), wharf did not", p, ids(rl))
		} else if strings.Join(rl, "\n") != strings.Join(wl, "\n") {
			t.Errorf("%s:\nrsyslog %q (as wharf is expected to write it)\nwharf   %q", p, rl, wl)
		}
	}
	for p, wl := range w {
		if _, ok := r[p]; !ok {
			t.Errorf("wharf wrote %s %v, rsyslog did not", p, ids(wl))
		}
	}
}
