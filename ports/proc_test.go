package ports

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"testing"

	"wharf/conf"
)

// littleEndian skips tests whose /proc lines were copied from an x86
// machine: the kernel prints addresses as host-order words.
func littleEndian(t *testing.T) {
	t.Helper()
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("the sample /proc lines are from a little-endian host")
	}
}

// Lines as this machine's kernel prints them (x86_64, Linux 6.x).
const (
	tcpHeader = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode                                                     \n"
	udpHeader = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops            \n"
	v6Header  = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
)

func TestParseNet(t *testing.T) {
	littleEndian(t)
	f := func(proto, text string, want ...string) {
		t.Helper()
		ss, err := ParseNet([]byte(text), proto, "test")
		if err != nil {
			t.Fatalf("ParseNet: %v", err)
		}
		var got []string
		for _, s := range ss {
			got = append(got, fmt.Sprintf("%s %s %d v6=%v uid=%d inode=%d", s.Proto, s.Addr, s.Port, s.V6, s.UID, s.Inode))
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	// LISTEN on 0.0.0.0:2024 is kept; TIME_WAIT (06) and ESTABLISHED (01) are not.
	f("tcp", tcpHeader+
		"   0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 112 1 00000000174cd7ed 100 0 0 10 0                       \n"+
		"   1: 0100007F:DE8E 0100007F:A8CF 06 00000000:00000000 03:00000726 00000000     0        0 0 3 000000006c54d8ec                                      \n"+
		"   2: 0100007F:2384 0100007F:D7C6 01 00000000:00000000 00:00000000 00000000   104        0 88231 1 0000000047a8a1c2 20 4 30 10 -1                    \n"+
		"   3: 0A01A8C0:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 90001 1 0000000047a8a1c3 100 0 0 10 0                     \n",
		"tcp 0.0.0.0 2024 v6=false uid=0 inode=112",
		"tcp 192.168.1.10 8080 v6=false uid=1000 inode=90001")
	// tcp6: :: and ::1 listening; an IPv4-mapped established one skipped;
	// an IPv4-mapped listener is unmapped.
	f("tcp", v6Header+
		"   0: 00000000000000000000000001000000:158C 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 86969 1 000000003b7fdd77 100 0 0 10 0\n"+
		"   1: 0000000000000000FFFF00000100007F:81FA 0000000000000000FFFF00000100007F:2385 06 00000000:00000000 03:000015C4 00000000     0        0 0 3 000000001e7bf1bb\n"+
		"   2: 00000000000000000000000000000000:3C9A 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 89086 2 000000002ba55016 100 0 0 10 0\n"+
		"   3: 0000000000000000FFFF00000100007F:2710 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 89087 2 000000002ba55017 100 0 0 10 0\n"+
		"   4: B80D0120000000000000000001000000:01BB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 89088 2 000000002ba55018 100 0 0 10 0\n",
		"tcp ::1 5516 v6=true uid=0 inode=86969",
		"tcp :: 15514 v6=true uid=0 inode=89086",
		"tcp 127.0.0.1 10000 v6=true uid=0 inode=89087",
		"tcp 2001:db8::1 443 v6=true uid=0 inode=89088")
	// udp: an unconnected bound socket (07) is kept; a connected one (01,
	// remote set) and a 07 socket with remote port set are not.
	f("udp", udpHeader+
		" 9854: 0100007F:158B 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 86968 2 000000002acd6dd3 0         \n"+
		" 1234: 0100007F:C350 0100007F:0202 01 00000000:00000000 00:00000000 00000000     0        0 86970 2 000000002acd6dd4 0         \n"+
		" 1235: 0100007F:C351 0100007F:0202 07 00000000:00000000 00:00000000 00000000     0        0 86972 2 000000002acd6dd5 0         \n",
		"udp 127.0.0.1 5515 v6=false uid=0 inode=86968")
	f("udp", v6Header+
		" 9853: 00000000000000000000000001000000:158A 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 86966 2 00000000eac0f93c 0\n"+
		" 9856: 00000000000000000000000000000000:158D 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 86971 2 00000000efd376ea 0\n",
		"udp ::1 5514 v6=true uid=0 inode=86966",
		"udp :: 5517 v6=true uid=0 inode=86971")
	// Header only, and an empty file.
	f("tcp", tcpHeader)
	f("udp", "")

	bad := func(line, wantErr string) {
		t.Helper()
		_, err := ParseNet([]byte(tcpHeader+line+"\n"), "tcp", "/proc/net/tcp")
		if err == nil || !strings.Contains(err.Error(), wantErr) || !strings.Contains(err.Error(), "/proc/net/tcp line 2") {
			t.Errorf("%q: error %v, want one naming line 2 and containing %q", line, err, wantErr)
		}
	}
	bad("   0: 00000000:07E8 00000000:0000 0A", "fields")
	bad("   0: 0000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 112 1", "7 hex digits")
	bad("   0: 0000000G:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 112 1", "bad address word")
	bad("   0: 00000000:7E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 112 1", "bad port")
	bad("   0: 00000000 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 112 1 x", "HEXADDR:HEXPORT")
	bad("   0: 00000000:07E8 00000000:0000 ZZ 00000000:00000000 00:00000000 00000000     0        0 112 1", "bad state")
	bad("   0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     x        0 112 1", "bad uid")
	bad("   0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 -1 1", "bad inode")
}

func TestSocketInode(t *testing.T) {
	f := func(link string, want uint64, wantOK bool) {
		t.Helper()
		got, ok := socketInode(link)
		if got != want || ok != wantOK {
			t.Errorf("socketInode(%q) = %d, %v; want %d, %v", link, got, ok, want, wantOK)
		}
	}
	f("socket:[86968]", 86968, true)
	f("socket:[]", 0, false)
	f("socket:[12", 0, false)
	f("pipe:[86968]", 0, false)
	f("/dev/null", 0, false)
	f("anon_inode:[eventpoll]", 0, false)
}

// TestAuditFindsListeners opens real sockets on loopback and reads this
// host's /proc: an undeclared TCP listener and an undeclared UDP socket
// are flagged with this process's name, a declared TCP listener and a
// declared UDP socket on ::1 are found as declared, and a declared port
// nobody listens on is reported as not listening.
func TestAuditFindsListeners(t *testing.T) {
	if _, err := os.Stat("/proc/net/tcp"); err != nil {
		t.Skip("no /proc/net/tcp: not Linux")
	}
	comm, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	self := strings.TrimSpace(string(comm))

	undeclTCP, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer undeclTCP.Close()
	undeclUDP, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer undeclUDP.Close()
	declTCP, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer declTCP.Close()
	declUDP, err := net.ListenPacket("udp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer declUDP.Close()
	// A port that was free a moment ago: declared, nobody listening.
	gone, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gonePort := gone.Addr().(*net.TCPAddr).Port
	gone.Close()

	port := func(a net.Addr) int { return int(netip.MustParseAddrPort(a.String()).Port()) }
	cfg, err := conf.Parse([]byte(fmt.Sprintf(`
[admin]
listen = "off"
[frontend.decl]
bind = ["tcp://127.0.0.1:%d", "udp://[::1]:%d", "tcp://127.0.0.1:%d"]
sinks = ["out"]
[sink.out]
type = "stdout"
`, port(declTCP.Addr()), port(declUDP.LocalAddr()), gonePort)), "audit.toml")
	if err != nil {
		t.Fatal(err)
	}
	r := NewReport(cfg)
	if err := r.AddAudit("/proc"); err != nil {
		t.Fatal(err)
	}
	find := func(proto string, a net.Addr) *AuditedSocket {
		t.Helper()
		ap, _ := netip.ParseAddrPort(a.String())
		for i := range r.Audit.Sockets {
			s := &r.Audit.Sockets[i]
			if s.Proto == proto && s.Port == int(ap.Port()) && s.Addr == ap.Addr().Unmap() {
				return s
			}
		}
		t.Fatalf("%s %s not among the listening sockets", proto, a)
		return nil
	}
	check := func(proto string, a net.Addr, status, declaredBy string) {
		t.Helper()
		s := find(proto, a)
		if s.Status != status || s.DeclaredBy != declaredBy {
			t.Errorf("%s %s: status %q declared_by %q, want %q %q", proto, a, s.Status, s.DeclaredBy, status, declaredBy)
		}
		if s.PID != os.Getpid() || s.Process != self {
			t.Errorf("%s %s: owner %d %q, want this process %d %q", proto, a, s.PID, s.Process, os.Getpid(), self)
		}
	}
	check("tcp", undeclTCP.Addr(), StatusUnexpected, "")
	check("udp", undeclUDP.LocalAddr(), StatusUnexpected, "")
	check("tcp", declTCP.Addr(), StatusDeclared, "frontend.decl.bind[0]")
	check("udp", declUDP.LocalAddr(), StatusDeclared, "frontend.decl.bind[1]")
	if len(r.Audit.NotListening) != 1 || r.Audit.NotListening[0].Path != "frontend.decl.bind[2]" {
		t.Errorf("not listening: %+v, want frontend.decl.bind[2] only", r.Audit.NotListening)
	}
	if r.Findings() < 3 { // two unexpected here, one not listening
		t.Errorf("Findings() = %d, want at least 3", r.Findings())
	}
	var b strings.Builder
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(fmt.Sprintf(`\b%d +%s\b`, os.Getpid(), regexp.QuoteMeta(self))).MatchString(b.String()) {
		t.Errorf("text lacks this process (%d %s):\n%s", os.Getpid(), self, b.String())
	}
	for _, want := range []string{
		"unexpected listener",
		"declared (frontend.decl.bind[0])",
		"declared but not listening: frontend.decl.bind[2]",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, b.String())
		}
	}
}

// TestListensFamilies: a wildcard matches a wildcard socket of its own
// family only, for every listener (internal/netfamily: 0.0.0.0 listens
// on IPv4, [::] and no host on IPv6, dual-stack).
func TestListensFamilies(t *testing.T) {
	f := func(mode, host, sockAddr string, v6 bool, want bool) {
		t.Helper()
		l := &Listener{Proto: "tcp", Host: host, Port: 514, Mode: mode}
		l.resolve()
		s := &Socket{Proto: "tcp", Addr: netip.MustParseAddr(sockAddr), Port: 514, V6: v6}
		if got := listens(l, s); got != want {
			t.Errorf("%s %s vs socket %s: %v, want %v", mode, host, sockAddr, got, want)
		}
	}
	f("syslog", "0.0.0.0", "0.0.0.0", false, true)
	f("syslog", "0.0.0.0", "::", true, false)
	f("syslog", "::", "::", true, true)
	f("syslog", "::", "0.0.0.0", false, false)
	f("admin", "0.0.0.0", "::", true, false)
	f("admin", "0.0.0.0", "0.0.0.0", false, true)
	f("admin", "", "::", true, true)
	f("syslog", "127.0.0.1", "127.0.0.1", true, true) // mapped, unmapped by ParseNet
	f("syslog", "127.0.0.1", "127.0.0.2", false, false)
	f("syslog", "0.0.0.0", "127.0.0.1", false, false)
}

// TestAuditRows: sockets of one process differing only in inode share a
// row (gnet's SO_REUSEPORT sockets); ports in the ephemeral range are
// marked; declared and missing listeners are told apart.
func TestAuditRows(t *testing.T) {
	ls := []Listener{
		{Proto: "udp", Host: "0.0.0.0", Port: 514, Mode: "syslog", Path: "frontend.a.bind[0]"},
		{Proto: "tcp", Host: "127.0.0.1", Port: 601, Mode: "syslog", Path: "frontend.a.bind[1]"},
		{Proto: "tcp", Host: "127.0.0.1", Port: 0, Mode: "syslog", Path: "frontend.a.bind[2]"},
	}
	for i := range ls {
		ls[i].resolve()
	}
	sock := func(proto, addr string, port, pid int, inode uint64) Socket {
		return Socket{Proto: proto, Addr: netip.MustParseAddr(addr), Port: port, PID: pid, Process: "p", Inode: inode}
	}
	ss := []Socket{
		sock("tcp", "0.0.0.0", 22, 10, 1),
		sock("tcp", "127.0.0.1", 40000, 11, 2),
		sock("udp", "0.0.0.0", 514, 12, 3),
		sock("udp", "0.0.0.0", 514, 12, 4),
		sock("udp", "0.0.0.0", 514, 13, 5), // another process on the same port: own row
	}
	a := AuditSockets(ls, ss, [2]int{32768, 60999})
	var got []string
	for _, s := range a.Sockets {
		got = append(got, fmt.Sprintf("%s %d pid=%d %s%s eph=%v n=%d", s.Proto, s.Port, s.PID, s.Status, s.DeclaredBy, s.Ephemeral, s.Count))
	}
	want := []string{
		"tcp 22 pid=10 unexpected listener eph=false n=1",
		"tcp 40000 pid=11 unexpected listener eph=true n=1",
		"udp 514 pid=12 declaredfrontend.a.bind[0] eph=false n=2",
		"udp 514 pid=13 declaredfrontend.a.bind[0] eph=false n=1",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if a.Unexpected() != 2 {
		t.Errorf("Unexpected() = %d, want 2", a.Unexpected())
	}
	if len(a.NotListening) != 1 || a.NotListening[0].Path != "frontend.a.bind[1]" {
		t.Errorf("not listening %+v, want frontend.a.bind[1]", a.NotListening)
	}
	if len(a.Unchecked) != 1 || a.Unchecked[0].Path != "frontend.a.bind[2]" {
		t.Errorf("unchecked %+v, want frontend.a.bind[2] (port 0)", a.Unchecked)
	}
}

func TestEphemeralRange(t *testing.T) {
	f := func(content string, want [2]int, wantErr bool) {
		t.Helper()
		root := t.TempDir()
		dir := root + "/sys/net/ipv4"
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dir+"/ip_local_port_range", []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := EphemeralRange(root)
		if (err != nil) != wantErr || got != want {
			t.Errorf("%q: %v, %v; want %v, error %v", content, got, err, want, wantErr)
		}
	}
	f("32768\t60999\n", [2]int{32768, 60999}, false)
	f("1024 65535", [2]int{1024, 65535}, false)
	f("60999\t32768\n", [2]int{}, true)
	f("garbage", [2]int{}, true)
	if _, err := EphemeralRange(t.TempDir()); err == nil {
		t.Error("missing file: no error")
	}
}
