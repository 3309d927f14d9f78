package gen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsghdr is struct mmsghdr from <sys/socket.h> (linux/amd64, arm64).
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

// udpSegments is how many equal-size datagrams one GSO send carries
// (the kernel's UDP_MAX_SEGMENTS is at least 64).
const udpSegments = 64

// runUDP sends the stream in sendmmsg batches over a connected socket.
// Each batch slot is a copy of the template with its own seq; the slots,
// iovecs and headers are set up once and reused. With GSO (UDP_SEGMENT)
// one mmsghdr entry carries up to udpSegments messages that the kernel
// cuts into separate datagrams, so the receiver still sees one message per
// datagram while the sender pays for one stack traversal per entry.
func (w *worker) runUDP(ctx context.Context) error {
	uc, ok := w.conn.(*net.UDPConn)
	if !ok {
		return errors.New("bench/gen: UDP target did not give a *net.UDPConn")
	}
	uc.SetWriteBuffer(4 << 20)
	rc, err := uc.SyscallConn()
	if err != nil {
		return fmt.Errorf("bench/gen: stream %d: %w", w.idx, err)
	}
	tp := w.template()
	size := len(tp.Frame)
	segs := 1
	if !w.g.cfg.NoGSO {
		var serr error
		rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_SEGMENT, size) })
		if serr == nil {
			segs = udpSegments
		}
	}
	batch := w.g.cfg.Batch
	slots := make([]byte, batch*size)
	entries := (batch + segs - 1) / segs
	iov := make([]unix.Iovec, entries)
	hdrs := make([]mmsghdr, entries)
	for i := range hdrs {
		iov[i].Base = &slots[i*segs*size]
		hdrs[i].hdr.Iov = &iov[i]
		hdrs[i].hdr.SetIovlen(1)
	}
	first := true
	for w.sent < w.count {
		n := int(w.allowance(ctx, uint64(batch)))
		if n == 0 {
			return nil
		}
		tp.SetTime(time.Now().UnixNano())
		for i := 0; i < n; i++ {
			if !first {
				tp.IncSeq()
			}
			first = false
			copy(slots[i*size:], tp.Frame)
		}
		used := (n + segs - 1) / segs
		for i := 0; i < used; i++ {
			iov[i].SetLen(min(segs, n-i*segs) * size)
		}
		for off := 0; off < used; {
			var sent int
			var errno syscall.Errno
			err := rc.Write(func(fd uintptr) bool {
				r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&hdrs[off])), uintptr(used-off), 0, 0, 0)
				if e == unix.EAGAIN {
					return false
				}
				sent, errno = int(r), e
				return true
			})
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("bench/gen: stream %d: sendmmsg to %s: %w", w.idx, w.g.addr, err)
			}
			if errno != 0 {
				// ECONNREFUSED reports an earlier datagram that found no
				// listener; this batch was not sent. Retry it after a
				// tick so the sequence stays gap-free on our side.
				w.g.errs.Add(1)
				if ctx.Err() != nil {
					return nil
				}
				time.Sleep(tick)
				continue
			}
			for i := off; i < off+sent; i++ {
				w.sent += uint64(iov[i].Len) / uint64(size)
			}
			off += sent
			w.g.sent[w.idx].Store(w.sent)
		}
	}
	return nil
}
