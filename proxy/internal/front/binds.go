package front

import (
	"net"
	"sync"
	"time"
)

// Bind is one listening socket of a proxy frontend and the state of the
// accept loop serving it. The frontend runs the loop; the loop ends when
// Stopping is closed (or the socket is), and calls Ended as it returns.
type Bind struct {
	LN   *net.TCPListener
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// Stop tells the accept loop to end. Safe to call more than once.
func (b *Bind) Stop() { b.once.Do(func() { close(b.stop) }) }

// Stopping is closed once Stop was called.
func (b *Bind) Stopping() <-chan struct{} { return b.stop }

// Stopped reports whether Stop was called.
func (b *Bind) Stopped() bool {
	select {
	case <-b.stop:
		return true
	default:
		return false
	}
}

// Ended is called once by the accept loop when it returns.
func (b *Bind) Ended() { close(b.done) }

// Binds are the listening sockets a proxy frontend accepts on: added by
// Serve (at start, or a reload that opened a socket or took it over from
// another frontend), handed on by Release. Safe for concurrent use.
type Binds struct {
	mu   sync.Mutex
	list []*Bind
}

// Add starts tracking ln, its deadline cleared (a Release may have set
// one), and returns its Bind for the caller's accept loop.
func (bs *Binds) Add(ln *net.TCPListener) *Bind {
	ln.SetDeadline(time.Time{})
	b := &Bind{LN: ln, stop: make(chan struct{}), done: make(chan struct{})}
	bs.mu.Lock()
	bs.list = append(bs.list, b)
	bs.mu.Unlock()
	return b
}

// Release stops accepting on ln and returns once its accept loop has
// ended. With closeIt the socket is closed (a bind a reload removed);
// otherwise it stays open, its pending connections waiting in the
// kernel's queue, for another frontend to Add. Connections already
// accepted are not touched. An ln not tracked is ignored.
func (bs *Binds) Release(ln *net.TCPListener, closeIt bool) {
	bs.mu.Lock()
	var b *Bind
	for i, x := range bs.list {
		if x.LN == ln {
			b = x
			bs.list = append(bs.list[:i:i], bs.list[i+1:]...)
			break
		}
	}
	bs.mu.Unlock()
	if b == nil {
		return
	}
	b.Stop()
	if closeIt {
		ln.Close()
	} else {
		ln.SetDeadline(ALongTimeAgo) // wakes a blocked Accept
	}
	<-b.done
}

// CloseAll stops every accept loop and closes every socket (Shutdown).
// It does not wait for the loops.
func (bs *Binds) CloseAll() {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	for _, b := range bs.list {
		b.Stop()
		b.LN.Close()
	}
}

// Addrs returns the bound addresses (useful with port 0).
func (bs *Binds) Addrs() []net.Addr {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	out := make([]net.Addr, len(bs.list))
	for i, b := range bs.list {
		out[i] = b.LN.Addr()
	}
	return out
}
