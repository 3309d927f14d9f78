package ingest

import (
	"encoding/binary"
	"net/netip"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// gnet reads UDP with one recvfrom(2) per datagram and one event-loop
// wake-up per datagram. Once gnet has woken us for a readable socket, the
// listener drains further datagrams itself with recvmmsg(2), udpBatchSize
// at a time, so a burst costs one system call per batch instead of one
// wake-up and one call per datagram. gnet stays the event loop: it still
// owns the sockets, the polling and the shutdown.
const (
	udpBatchSize = 32
	// udpMaxBatches bounds one drain, so one busy socket cannot starve the
	// other sockets of the same event loop; level-triggered polling brings
	// us back for the rest.
	udpMaxBatches = 16
)

// mmsghdr is struct mmsghdr of <sys/socket.h> on 64-bit Linux.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
	_   [4]byte
}

// udpBatch holds the buffers of one socket's recvmmsg calls. With
// SO_REUSEPORT every event loop has its own socket, so a batch is only
// ever used by one goroutine: the loop that owns its socket.
type udpBatch struct {
	// out collects the messages of a read for their runners.
	out outbox
	// emptied is the Listener's udpEpoch as of the last read that began
	// after it was loaded and left the socket empty (Drain).
	emptied atomic.Uint64
	slot    int
	bufs    []byte
	iov     []unix.Iovec
	hdrs    []mmsghdr
	names   []unix.RawSockaddrInet6 // large enough for an IPv4 address too
}

func newUDPBatch(slot int) *udpBatch {
	b := &udpBatch{
		slot:  slot,
		bufs:  make([]byte, udpBatchSize*slot),
		iov:   make([]unix.Iovec, udpBatchSize),
		hdrs:  make([]mmsghdr, udpBatchSize),
		names: make([]unix.RawSockaddrInet6, udpBatchSize),
	}
	b.out.peers = true // datagrams from many senders
	for i := range b.hdrs {
		b.iov[i].Base = &b.bufs[i*slot]
		b.iov[i].SetLen(slot)
		h := &b.hdrs[i].hdr
		h.Iov = &b.iov[i]
		h.SetIovlen(1)
		h.Name = (*byte)(unsafe.Pointer(&b.names[i]))
	}
	return b
}

// read receives up to udpBatchSize datagrams without blocking and returns
// how many arrived (0 when the socket is empty or on error).
func (b *udpBatch) read(fd int) int {
	for i := range b.hdrs {
		b.hdrs[i].hdr.Namelen = uint32(unsafe.Sizeof(b.names[i]))
		b.hdrs[i].hdr.Flags = 0
	}
	n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&b.hdrs[0])), udpBatchSize, unix.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		return 0
	}
	return int(n)
}

// datagram returns the i-th datagram of the last read, whether the kernel
// cut it (it was longer than the slot), and its sender. The bytes are
// valid until the next read.
func (b *udpBatch) datagram(i int) (data []byte, truncated bool, peer netip.AddrPort) {
	h := &b.hdrs[i]
	n := int(h.n)
	truncated = h.hdr.Flags&unix.MSG_TRUNC != 0 || n > b.slot
	n = min(n, b.slot)
	data = b.bufs[i*b.slot : i*b.slot+n]
	raw := &b.names[i]
	switch raw.Family {
	case unix.AF_INET:
		a4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(raw))
		peer = netip.AddrPortFrom(netip.AddrFrom4(a4.Addr), portFromNetwork(a4.Port))
	case unix.AF_INET6:
		peer = netip.AddrPortFrom(netip.AddrFrom16(raw.Addr).Unmap(), portFromNetwork(raw.Port))
	}
	return data, truncated, peer
}

// portFromNetwork converts a sockaddr port (network byte order, stored in
// a host-order uint16) to its value.
func portFromNetwork(p uint16) uint16 {
	var b [2]byte
	binary.NativeEndian.PutUint16(b[:], p)
	return binary.BigEndian.Uint16(b[:])
}
