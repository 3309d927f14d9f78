package ports

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Socket is one listening socket read from /proc/net.
type Socket struct {
	// Proto is "tcp" or "udp" (the tcp6/udp6 files give tcp/udp too).
	Proto string `json:"proto"`
	// Addr is the local address, IPv4-mapped IPv6 addresses unmapped.
	Addr netip.Addr `json:"address"`
	// Port is the local port.
	Port int `json:"port"`
	// V6 is true for sockets from tcp6/udp6 (an IPv6 socket; with the
	// address :: it usually takes IPv4 too).
	V6 bool `json:"ipv6_socket"`
	// UID owns the socket.
	UID int `json:"uid"`
	// Inode identifies the socket; /proc/PID/fd links read "socket:[Inode]".
	Inode uint64 `json:"inode"`
	// PID and Process (/proc/PID/comm) own the socket; 0 and "" when no
	// readable fd links to it. With several owners, the lowest PID.
	PID     int    `json:"pid,omitempty"`
	Process string `json:"process,omitempty"`
}

// TCP states in /proc/net/tcp (include/net/tcp_states.h).
const (
	tcpListen = 0x0A
	// tcpClose is the state of an unconnected UDP socket.
	tcpClose = 0x07
)

// ParseNet parses the text of /proc/net/tcp, tcp6, udp or udp6 and
// returns the listening sockets: TCP in state LISTEN (0A), UDP bound to a
// port and not connected (state 07 with remote port 0). proto is "tcp" or
// "udp"; the address width (8 or 32 hex digits) tells IPv4 from IPv6.
// name is used in errors only.
//
// Addresses are printed by the kernel as the raw in_addr / in6_addr read
// as 32-bit words in host byte order, each as %08X: 127.0.0.1 is
// 0100007F on little-endian machines. Ports are plain hex.
func ParseNet(data []byte, proto, name string) ([]Socket, error) {
	var out []Socket
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		f := strings.Fields(sc.Text())
		if line == 1 || len(f) == 0 { // header: "sl local_address ..."
			continue
		}
		if len(f) < 10 {
			return nil, fmt.Errorf("ports: %s line %d: %d fields, want at least 10 (sl local rem st queues timer retrnsmt uid timeout inode)", name, line, len(f))
		}
		st, err := strconv.ParseUint(f[3], 16, 8)
		if err != nil {
			return nil, fmt.Errorf("ports: %s line %d: bad state %q", name, line, f[3])
		}
		laddr, lport, err := parseHexAddrPort(f[1])
		if err != nil {
			return nil, fmt.Errorf("ports: %s line %d: local address: %v", name, line, err)
		}
		_, rport, err := parseHexAddrPort(f[2])
		if err != nil {
			return nil, fmt.Errorf("ports: %s line %d: remote address: %v", name, line, err)
		}
		switch {
		case proto == "tcp" && st == tcpListen:
		case proto == "udp" && st == tcpClose && rport == 0 && lport != 0:
		default:
			continue
		}
		uid, err := strconv.Atoi(f[7])
		if err != nil {
			return nil, fmt.Errorf("ports: %s line %d: bad uid %q", name, line, f[7])
		}
		inode, err := strconv.ParseUint(f[9], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("ports: %s line %d: bad inode %q", name, line, f[9])
		}
		out = append(out, Socket{
			Proto: proto, Addr: laddr.Unmap(), Port: lport, V6: laddr.Is6(),
			UID: uid, Inode: inode,
		})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("ports: %s: %w", name, err)
	}
	return out, nil
}

// parseHexAddrPort parses "0100007F:0202" or the 32-digit IPv6 form.
func parseHexAddrPort(s string) (netip.Addr, int, error) {
	h, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.Addr{}, 0, fmt.Errorf("%q: want HEXADDR:HEXPORT", s)
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil || len(p) != 4 {
		return netip.Addr{}, 0, fmt.Errorf("%q: bad port %q", s, p)
	}
	var b [16]byte
	switch len(h) {
	case 8, 32:
	default:
		return netip.Addr{}, 0, fmt.Errorf("%q: address has %d hex digits, want 8 or 32", s, len(h))
	}
	for i := 0; i < len(h); i += 8 {
		w, err := strconv.ParseUint(h[i:i+8], 16, 32)
		if err != nil {
			return netip.Addr{}, 0, fmt.Errorf("%q: bad address word %q", s, h[i:i+8])
		}
		binary.NativeEndian.PutUint32(b[i/2:], uint32(w))
	}
	if len(h) == 8 {
		return netip.AddrFrom4([4]byte(b[:4])), int(port), nil
	}
	return netip.AddrFrom16(b), int(port), nil
}

// netFiles are the /proc/net files read by ReadSockets.
var netFiles = []struct{ file, proto string }{
	{"net/tcp", "tcp"}, {"net/tcp6", "tcp"}, {"net/udp", "udp"}, {"net/udp6", "udp"},
}

// ReadSockets reads the listening sockets under procRoot (normally
// "/proc") and fills in their owners where /proc/PID/fd is readable. A
// missing tcp6/udp6 file (IPv6 disabled) is skipped. The result is sorted
// by proto, port, address, inode.
//
// /proc/net/* shows the sockets of the reader's network namespace.
func ReadSockets(procRoot string) ([]Socket, error) {
	var all []Socket
	for _, nf := range netFiles {
		path := filepath.Join(procRoot, nf.file)
		data, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("ports: cannot read listening sockets: %w", err)
		}
		ss, err := ParseNet(data, nf.proto, path)
		if err != nil {
			return nil, err
		}
		all = append(all, ss...)
	}
	owners := SocketOwners(procRoot)
	for i := range all {
		if o, ok := owners[all[i].Inode]; ok {
			all[i].PID, all[i].Process = o.PID, o.Process
		}
	}
	sortSockets(all)
	return all, nil
}

func sortSockets(ss []Socket) {
	sort.Slice(ss, func(i, j int) bool {
		a, b := ss[i], ss[j]
		if a.Proto != b.Proto {
			return a.Proto < b.Proto // tcp before udp
		}
		if a.Port != b.Port {
			return a.Port < b.Port
		}
		if c := a.Addr.Compare(b.Addr); c != 0 {
			return c < 0
		}
		return a.Inode < b.Inode
	})
}

// Owner is a process holding a socket.
type Owner struct {
	// PID is the process id; Process is its /proc/PID/comm.
	PID     int
	Process string
}

// SocketOwners maps socket inodes to the lowest PID holding them, by
// reading every /proc/PID/fd link ("socket:[12345]"). Processes whose fd
// directory cannot be read (another user's, without privileges) or that
// exit meanwhile are skipped silently: their sockets stay without owner.
func SocketOwners(procRoot string) map[uint64]Owner {
	m := make(map[uint64]Owner)
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return m
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		fdDir := filepath.Join(procRoot, e.Name(), "fd")
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue
		}
		comm := ""
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
			if err != nil {
				continue
			}
			in, ok := socketInode(link)
			if !ok {
				continue
			}
			if o, seen := m[in]; seen && o.PID < pid {
				continue
			}
			if comm == "" {
				b, _ := os.ReadFile(filepath.Join(procRoot, e.Name(), "comm"))
				comm = strings.TrimSpace(string(b))
			}
			m[in] = Owner{PID: pid, Process: comm}
		}
	}
	return m
}

// socketInode parses a /proc/PID/fd link target "socket:[12345]".
func socketInode(link string) (uint64, bool) {
	s, ok := strings.CutPrefix(link, "socket:[")
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, "]")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}
