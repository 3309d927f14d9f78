package e2e

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"wharf/bench/recv"
	"wharf/bench/stamp"
)

// The fault matrix's shared parts: a sender that numbers every message
// and fails over between wharf nodes, collectors the test can stall or
// reset, and the ledger check every case ends with.

// numberedSender writes stamped messages (bench/stamp: run, stream, seq)
// over TCP, octet-counted, at about rate msg/s to the first address of
// addrs that accepts. When a write fails it moves on to the next address
// with a new stream (seq from 0 again), as a sender with a list of relays
// does. Each connection is its own stream, so per stream wharf read a
// prefix of what was written, in order.
type numberedSender struct {
	run   string
	addrs []string
	rate  int
	next  uint32 // next stream number

	mu        sync.Mutex
	conn      net.Conn
	streams   []uint32
	addrOf    map[uint32]string // the address each stream went to
	written   map[uint32]uint64 // messages in writes that returned without error
	attempted map[uint32]uint64 // written plus those of the failed write
	failovers int

	stop chan struct{}
	done chan struct{}
}

// startSender starts writing at once; streams are numbered from first.
func startSender(t *testing.T, run string, first uint32, addrs []string, rate int) *numberedSender {
	t.Helper()
	s := &numberedSender{run: run, addrs: addrs, rate: rate, next: first,
		written: map[uint32]uint64{}, attempted: map[uint32]uint64{}, addrOf: map[uint32]string{},
		stop: make(chan struct{}), done: make(chan struct{})}
	go s.loop()
	t.Cleanup(func() { s.Stop() })
	return s
}

func (s *numberedSender) loop() {
	defer close(s.done)
	start := time.Now()
	var total uint64
	cur := len(s.addrs) - 1
	var tpl *stamp.Template
	var stream uint32
	var seq uint64
	buf := make([]byte, 0, 256<<10)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			s.closeConn()
			return
		case now := <-tick.C:
			if tpl == nil {
				// Connect to the next address that accepts.
				cur = (cur + 1) % len(s.addrs)
				c, err := net.DialTimeout("tcp", s.addrs[cur], time.Second)
				if err != nil {
					continue
				}
				stream = s.next
				s.next++
				seq = 0
				tpl, _ = stamp.NewTemplate(stamp.Options{Run: s.run, Conn: int(stream), Size: 200, Framing: stamp.OctetCounting})
				s.mu.Lock()
				if len(s.streams) > 0 {
					s.failovers++
				}
				s.conn = c
				s.streams = append(s.streams, stream)
				s.addrOf[stream] = s.addrs[cur]
				s.mu.Unlock()
			}
			due := uint64(float64(s.rate) * now.Sub(start).Seconds())
			buf = buf[:0]
			n := uint64(0)
			for ; total+n < due && len(buf) < 200<<10; n++ {
				tpl.SetSeq(seq + n)
				tpl.SetTime(now.UnixNano())
				buf = append(buf, tpl.Frame...)
			}
			if n == 0 {
				continue
			}
			s.mu.Lock()
			c := s.conn
			s.attempted[stream] += n
			s.mu.Unlock()
			if c == nil {
				return
			}
			_, err := c.Write(buf)
			s.mu.Lock()
			if err == nil {
				s.written[stream] += n
			}
			s.mu.Unlock()
			total += n
			seq += n
			if err != nil {
				s.closeConn()
				tpl = nil
			}
		}
	}
}

func (s *numberedSender) closeConn() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
}

// Stop ends the sender (closing its connection: wharf reads the rest,
// since TCP delivers what was written before the FIN) and returns what
// it wrote per stream, counting only writes that returned without error.
func (s *numberedSender) Stop() map[uint32]uint64 {
	select {
	case <-s.stop:
	default:
		close(s.stop)
		// A write blocked by wharf's backpressure ends when the connection
		// closes.
		s.closeConn()
	}
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[uint32]uint64, len(s.written))
	for k, v := range s.written {
		out[k] = v
	}
	return out
}

// Written is the total of Stop's counts so far.
func (s *numberedSender) Written() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n uint64
	for _, v := range s.written {
		n += v
	}
	return n
}

// Failovers is how often the sender moved to another address.
func (s *numberedSender) Failovers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failovers
}

// StreamsTo lists the streams the sender opened to addr.
func (s *numberedSender) StreamsTo(addr string) []uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []uint32
	for _, st := range s.streams {
		if s.addrOf[st] == addr {
			out = append(out, st)
		}
	}
	return out
}

// Attempted is what the sender wrote or tried to write per stream.
func (s *numberedSender) Attempted() map[uint32]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[uint32]uint64, len(s.attempted))
	for k, v := range s.attempted {
		out[k] = v
	}
	return out
}

// fakeCollector is a downstream TCP syslog collector under the test's
// control, counting stamped messages into a recv.Tracker. It can stall
// (keep accepting, stop reading every connection, keep them open) and
// resume, or reset each connection (RST, unread data discarded by the
// kernel) after it read resetAfter bytes of it.
type fakeCollector struct {
	ln         net.Listener
	tr         *recv.Tracker
	stalled    atomic.Bool
	resetAfter int64
	accepted   atomic.Int64
	bytes      atomic.Int64 // read from all connections
	resets     atomic.Int64
	wg         sync.WaitGroup
	mu         sync.Mutex
	conns      map[net.Conn]bool
}

// newFakeCollector listens on a free loopback port and counts what it
// reads into tr.
func newFakeCollector(t *testing.T, tr *recv.Tracker, run string, resetAfter int64) *fakeCollector {
	t.Helper()
	var lc net.ListenConfig
	if resetAfter > 0 {
		// A collector that resets loses what its kernel held unread;
		// wharf writes the last 1 MiB again (sinks/syslog replayBytes),
		// which is the promise under test. A fixed receive buffer of
		// 256 KiB (the kernel doubles it) keeps that backlog within it
		// even when this test process is starved of CPU; autotuned, it
		// grew past 3 MiB on a loaded box (13,040 messages beyond the
		// replay, as the README says a real collector would lose).
		lc.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 256<<10)
			})
			return serr
		}
	}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeCollector{ln: ln, tr: tr, resetAfter: resetAfter, conns: map[net.Conn]bool{}}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.accepted.Add(1)
			f.mu.Lock()
			f.conns[c] = true
			f.mu.Unlock()
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				recv.Serve(&collectorConn{Conn: c, f: f}, f.tr, run)
				c.Close()
			}()
		}
	}()
	t.Cleanup(f.close)
	return f
}

func (f *fakeCollector) addr() string { return f.ln.Addr().String() }

func (f *fakeCollector) close() {
	f.ln.Close()
	f.stalled.Store(false)
	f.mu.Lock()
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// collectorConn is one accepted connection of a fakeCollector.
type collectorConn struct {
	net.Conn
	f    *fakeCollector
	read int64
}

func (c *collectorConn) Read(p []byte) (int, error) {
	for c.f.stalled.Load() {
		time.Sleep(10 * time.Millisecond)
	}
	if c.f.resetAfter > 0 {
		left := c.f.resetAfter - c.read
		if left <= 0 {
			// A crash mid-stream: RST, and what sits unread in the kernel
			// is gone with the socket.
			c.Conn.(*net.TCPConn).SetLinger(0)
			c.Conn.Close()
			c.f.resets.Add(1)
			return 0, net.ErrClosed
		}
		if int64(len(p)) > left {
			p = p[:left]
		}
	}
	n, err := c.Conn.Read(p)
	c.read += int64(n)
	c.f.bytes.Add(int64(n))
	return n, err
}

// ledgerCheck is how every case ends. It waits until each wharf node's
// own books balance (nothing queued or in flight) and the receivers have
// stopped receiving (every receiver of a test feeds one Tracker, so a
// stream split across two collectors by a failover is accounted as one),
// then checks the promise with checkLedger. It returns the ledger.
func ledgerCheck(t *testing.T, nodes []*instance, sink string, s *numberedSender, wantLost uint64, tr *recv.Tracker) (recv.Ledger, recv.Report) {
	t.Helper()
	written := s.Stop()
	// What the sender wrote last may still be on its way into wharf (on a
	// loaded box, for a while): the accounts count only once they stand
	// still across the receiver's own settling.
	var accounts []recv.NodeLedger
	var rep recv.Report
	for range 5 {
		accounts = settle(t, nodes, sink)
		rep = waitReceived(tr)
		again := settle(t, nodes, sink)
		if sameAccounts(accounts, again) {
			break
		}
		accounts = again
	}
	return checkLedger(t, accounts, rep, written, s.Attempted(), wantLost), rep
}

// sameAccounts reports whether two scrapes of the nodes read and
// delivered the same.
func sameAccounts(a, b []recv.NodeLedger) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Read != b[i].Read || a[i].Delivered != b[i].Delivered {
			return false
		}
	}
	return true
}

// settle waits (up to 90 s) until every node has nothing queued or in
// flight and has read nothing new for half a second (five looks in a
// row), and returns their accounts.
func settle(t *testing.T, nodes []*instance, sink string) []recv.NodeLedger {
	t.Helper()
	var accounts, prev []recv.NodeLedger
	deadline := time.Now().Add(90 * time.Second)
	stable := 0
	for {
		accounts = nil
		settled := true
		for i, in := range nodes {
			n, err := recv.ScrapeNode(context.Background(), in.admin, sink)
			if err != nil {
				t.Fatal(err)
			}
			// Settled, and nothing read since the last look: a sender's
			// last write may still sit in the node's socket when its queue
			// is momentarily empty (CI: 100 read after the scrape, the
			// ledger 100 short).
			settled = settled && n.Settled() && prev != nil && prev[i].Read == n.Read
			accounts = append(accounts, n)
		}
		prev = accounts
		if settled {
			stable++
		} else {
			stable = 0
		}
		if stable >= 5 || time.Now().After(deadline) {
			return accounts
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitReceived waits until tr has had nothing new for 1.5 s (at most 60
// s) and returns its report.
func waitReceived(tr *recv.Tracker) recv.Report {
	var rep recv.Report
	last, stable := uint64(0), 0
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline) && stable < 15; {
		rep = tr.Report(nil)
		if rep.Unique == last && rep.Unique > 0 {
			stable++
		} else {
			last, stable = rep.Unique, 0
		}
		time.Sleep(100 * time.Millisecond)
	}
	return rep
}

// checkLedger checks the promise by message number and by count:
//   - per stream, the receivers hold every sequence number from 0 to the
//     highest they hold (wharf read a prefix of each stream, in order),
//     none beyond what the sender wrote, nothing foreign;
//   - the ledger: read = received + counted losses + queued (recv.Ledger),
//     and the counted losses are wantLost.
//
// written is what the senders' writes that returned without error held
// (the ledger's "senders wrote"), attempted that plus the failed writes.
func checkLedger(t *testing.T, accounts []recv.NodeLedger, rep recv.Report, written, attempted map[uint32]uint64, wantLost uint64) recv.Ledger {
	t.Helper()
	var sent uint64
	for st, v := range written {
		if _, ok := attempted[st]; ok {
			sent += v
		}
	}
	l := recv.NewLedger(accounts, rep, sent)
	t.Logf("ledger:\n%s", l)
	holes := checkNumbers(t, rep, attempted)
	if rep.Foreign > 0 || rep.Bad > 0 {
		t.Errorf("receivers hold %d messages of another run and %d without a stamp", rep.Foreign, rep.Bad)
	}
	if !l.Settled {
		t.Fatalf("wharf still has messages queued or in flight after 90 s")
	}
	if l.LostTotal != wantLost {
		t.Errorf("wharf counted %d messages lost (%v), want %d", l.LostTotal, l.Lost, wantLost)
	}
	if !l.OK() || holes > l.LostTotal {
		t.Fatalf("ledger does not balance: %d read are neither received nor counted; %d sequence numbers missing", l.Uncounted, holes)
	}
	return l
}

// subReport is rep restricted to the streams keep accepts.
func subReport(rep recv.Report, keep func(stream uint32) bool) recv.Report {
	out := recv.Report{Foreign: rep.Foreign, Bad: rep.Bad}
	for _, s := range rep.Streams {
		if !keep(s.Stream) {
			continue
		}
		out.Streams = append(out.Streams, s)
		out.Received += s.Received
		out.Unique += s.Unique
		out.Dups += s.Dups
		out.Lost += s.Lost
	}
	return out
}

// checkNumbers reports, per stream, sequence numbers missing below the
// highest one received and any beyond what the sender wrote; it returns
// how many are missing.
func checkNumbers(t *testing.T, rep recv.Report, attempted map[uint32]uint64) uint64 {
	t.Helper()
	var holes uint64
	for _, s := range rep.Streams {
		if s.Lost > 0 {
			t.Logf("stream %d: %d sequence numbers missing below %d", s.Stream, s.Lost, s.HighestSeq)
			holes += s.Lost
		}
		if a, ok := attempted[s.Stream]; ok && s.Unique > 0 && s.HighestSeq >= a {
			t.Errorf("stream %d: receiver holds seq %d, the sender wrote only %d", s.Stream, s.HighestSeq, a)
		}
	}
	return holes
}
