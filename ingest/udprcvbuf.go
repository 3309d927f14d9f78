package ingest

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// raiseUDPBuffers applies SO_RCVBUFFORCE (udpRecvBuffer) to every UDP
// socket of this process bound to local, the bind's address (its port
// resolved). gnet opens one socket per event loop (SO_REUSEPORT), the
// first before OnBoot and the others after it, and hands out only the
// first (Engine.Dup): the others kept gnet's SO_RCVBUF, which the kernel
// caps at net.core.rmem_max, and took about half the datagrams with the
// smaller buffer. So the sockets are found in /proc/self/fd once they
// all exist (one per CPU, gnet's multicore count), polling for up to
// wait. It reports how many it raised and the last error.
func raiseUDPBuffers(local unix.Sockaddr, wait time.Duration) (raised int, err error) {
	want := runtime.NumCPU()
	deadline := time.Now().Add(wait)
	for {
		fds := udpSocketsAt(local)
		if len(fds) >= want || time.Now().After(deadline) {
			for _, fd := range fds {
				if e := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, udpRecvBuffer); e != nil {
					err = e
					continue
				}
				raised++
			}
			return raised, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// udpSocketsAt lists this process's datagram socket descriptors bound to
// local. The descriptors stay gnet's: they are used here only while its
// engine runs (socket options are safe from any thread).
func udpSocketsAt(local unix.Sockaddr) []int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if link, err := os.Readlink("/proc/self/fd/" + e.Name()); err != nil || !strings.HasPrefix(link, "socket:") {
			continue
		}
		if t, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE); err != nil || t != unix.SOCK_DGRAM {
			continue
		}
		if sa, err := unix.Getsockname(fd); err == nil && sameSockaddr(sa, local) {
			out = append(out, fd)
		}
	}
	return out
}

func sameSockaddr(a, b unix.Sockaddr) bool {
	switch x := a.(type) {
	case *unix.SockaddrInet4:
		y, ok := b.(*unix.SockaddrInet4)
		return ok && x.Port == y.Port && x.Addr == y.Addr
	case *unix.SockaddrInet6:
		y, ok := b.(*unix.SockaddrInet6)
		return ok && x.Port == y.Port && x.Addr == y.Addr
	}
	return false
}
