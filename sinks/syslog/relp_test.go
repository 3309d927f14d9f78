package syslog

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"wharf/conf"
	"wharf/message"
	"wharf/relp"
)

// relpServer is a RELP server on loopback whose answers the test steers:
// it records every syslog message it receives and answers it unless
// answer says otherwise, and closes a session when cut says so.
type relpServer struct {
	t  *testing.T
	l  net.Listener
	mu sync.Mutex
	// got are the messages received, in order, duplicates included.
	got []string
	// answer decides per message (0-based count over all sessions)
	// whether it is acknowledged; nil acknowledges all.
	answer func(n int) bool
	// cut closes the session after the n-th message (0-based) when true;
	// serverclose sends librelp's hint first.
	cut         func(n int) bool
	serverclose bool
	sessions    int
	// maxBurst is the most syslog frames answered at once: the server
	// answers all it has read, so the client had at least that many
	// unanswered.
	maxBurst int
}

func newRELPServer(t *testing.T) *relpServer {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rs := &relpServer{t: t, l: l}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go rs.serve(c)
		}
	}()
	return rs
}

func (rs *relpServer) url() string { return "relp://" + rs.l.Addr().String() }

func (rs *relpServer) serve(c net.Conn) {
	defer c.Close()
	rs.mu.Lock()
	rs.sessions++
	rs.mu.Unlock()
	var sess relp.Server
	var buf []byte
	tmp := make([]byte, 64<<10)
	for {
		k, err := c.Read(tmp)
		if err != nil {
			return
		}
		buf = append(buf, tmp[:k]...)
		var out []byte
		burst := 0
		for {
			f, n, _, err := relp.Next(buf, 1<<20)
			if err != nil {
				rs.t.Errorf("server: %v", err)
				return
			}
			if n == 0 {
				break
			}
			kind, err := sess.Accept(f)
			if err != nil {
				rs.t.Errorf("server: %v", err)
				return
			}
			switch kind {
			case relp.KindOpen:
				out = relp.AppendRsp(out, f.Txnr, 200, relp.OpenResponse("test"))
			case relp.KindClose:
				out = relp.AppendRsp(out, f.Txnr, 200, "OK")
			case relp.KindSyslog:
				rs.mu.Lock()
				i := len(rs.got)
				rs.got = append(rs.got, string(f.Data))
				burst++
				rs.maxBurst = max(rs.maxBurst, burst)
				ack := rs.answer == nil || rs.answer(i)
				cut := rs.cut != nil && rs.cut(i)
				rs.mu.Unlock()
				if ack {
					out = relp.AppendRsp(out, f.Txnr, 200, "OK")
				}
				if cut {
					if rs.serverclose {
						out = relp.AppendFrame(out, 0, "serverclose", nil)
					}
					c.Write(out)
					return
				}
			}
			buf = buf[n:]
		}
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}

func (rs *relpServer) received() []string {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return append([]string(nil), rs.got...)
}

func numbered(n int) []*message.Message {
	raws := make([]string, n)
	for i := range raws {
		raws[i] = fmt.Sprintf("<13>1 2026-12-04T10:00:00Z h app - - - msg %d", i)
	}
	return msgs(raws...)
}

func TestRELPOutputWaitsForEveryAck(t *testing.T) {
	rs := newRELPServer(t)
	s, _ := newSink(t, conf.Sink{Options: &Config{Servers: []string{rs.url()}}})
	defer s.Close()
	batch := numbered(1000) // several windows of 128
	if err := s.Write(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	if got := rs.received(); len(got) != 1000 || got[999] != string(batch[999].Raw) {
		t.Fatalf("server received %d messages", len(got))
	}
	if st := s.RELPStats(); st.AcksReceived != 1000 || st.Resent != 0 || st.InFlight != 0 {
		t.Fatalf("stats %+v", st)
	}
	// A second batch rides the same session.
	if err := s.Write(context.Background(), numbered(5)); err != nil {
		t.Fatal(err)
	}
	if rs.sessions != 1 {
		t.Fatalf("%d sessions, want 1", rs.sessions)
	}
}

// relp_window bounds the messages waiting for an answer: with 4 the
// server never has more than 4 to answer at once, and all 1000 arrive.
func TestRELPOutputWindow(t *testing.T) {
	rs := newRELPServer(t)
	s, _ := newSink(t, conf.Sink{Options: &Config{Servers: []string{rs.url()}, RELPWindow: 4}})
	defer s.Close()
	if err := s.Write(context.Background(), numbered(1000)); err != nil {
		t.Fatal(err)
	}
	rs.mu.Lock()
	got, burst := len(rs.got), rs.maxBurst
	rs.mu.Unlock()
	if got != 1000 || burst > 4 {
		t.Fatalf("server received %d messages, at most %d unanswered at once; want 1000 and at most relp_window 4", got, burst)
	}
}

// A session that breaks mid-batch: the retry sends only what was not
// acknowledged (what the server received but did not answer is resent
// and counted), and every message arrives.
func TestRELPOutputResendsUnacknowledged(t *testing.T) {
	for _, serverclose := range []bool{false, true} {
		t.Run(fmt.Sprint("serverclose=", serverclose), func(t *testing.T) {
			rs := newRELPServer(t)
			rs.serverclose = serverclose
			// The first session answers 300 messages, receives 50 more
			// unanswered, then closes.
			rs.answer = func(n int) bool { return n < 300 || n >= 350 }
			rs.cut = func(n int) bool { return n == 349 }
			s, _ := newSink(t, conf.Sink{Options: &Config{Servers: []string{rs.url()}}})
			defer s.Close()
			batch := numbered(1000)
			err := s.Write(context.Background(), batch)
			if err == nil {
				t.Fatal("Write succeeded though the session broke")
			}
			for i := 0; err != nil && i < 5; i++ {
				time.Sleep(serverBackoff + 100*time.Millisecond) // the server is marked down for a moment
				err = s.Write(context.Background(), batch)
			}
			if err != nil {
				t.Fatal(err)
			}
			got := rs.received()
			seen := map[string]int{}
			for _, g := range got {
				seen[g]++
			}
			// At least the 50 received but unanswered are resent; acks in
			// flight when the session broke may be lost too (the server's
			// close can reset them away), and those are resent as well:
			// every duplicate the server saw is a counted resend.
			for i, m := range batch {
				if n := seen[string(m.Raw)]; n < 1 || n > 2 || (i >= 300 && i < 350 && n != 2) {
					t.Fatalf("message %d received %d times", i, n)
				}
			}
			st := s.RELPStats()
			if st.Resent < 50 || int(st.Resent) < len(got)-len(batch) || st.AcksReceived != 1000 {
				t.Fatalf("stats %+v with %d received, want every duplicate counted (resent is an upper bound: some never reached the server) and 1000 acks", st, len(got))
			}
		})
	}
}

// A server that never answers: Write gives up after write_timeout and
// fails over to the next server, which gets the batch.
func TestRELPOutputSilentServerFailsOver(t *testing.T) {
	silent, good := newRELPServer(t), newRELPServer(t)
	silent.answer = func(int) bool { return false }
	s, logs := newSink(t, conf.Sink{Options: &Config{Servers: []string{silent.url(), good.url()}, WriteTimeout: conf.Duration{Duration: 300 * time.Millisecond}}})
	defer s.Close()
	start := time.Now()
	if err := s.Write(context.Background(), numbered(10)); err != nil {
		t.Fatal(err)
	}
	if len(good.received()) != 10 || time.Since(start) > 5*time.Second {
		t.Fatalf("good server got %d", len(good.received()))
	}
	if !strings.Contains(logs.String(), "no answer within") {
		t.Fatalf("log does not say why: %s", logs)
	}
}
