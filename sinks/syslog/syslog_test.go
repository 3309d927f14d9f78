package syslog

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"wharf/conf"
	"wharf/internal/testenv"
	"wharf/message"
	"wharf/sinks"
)

func newSink(t *testing.T, cfg conf.Sink) (*Syslog, *bytes.Buffer) {
	t.Helper()
	cfg.Type = "syslog"
	s, err := sinks.New("fwd", &cfg)
	if err != nil {
		t.Fatal(err)
	}
	sl := s.(*Syslog)
	var logBuf lockedBuffer
	sl.log = slog.New(slog.NewTextHandler(&logBuf, nil))
	return sl, &logBuf.Buffer
}

type lockedBuffer struct {
	mu sync.Mutex
	bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Buffer.Write(p)
}

func msgs(raws ...string) []*message.Message {
	out := make([]*message.Message, len(raws))
	for i, r := range raws {
		out[i] = message.New([]byte(r))
	}
	return out
}

// frameServer is a TCP server on loopback that parses octet-counted or LF
// frames and records them.
type frameServer struct {
	l      net.Listener
	lf     bool
	mu     sync.Mutex
	frames []string
	conns  []net.Conn
	done   sync.WaitGroup
}

func newFrameServer(t *testing.T, lf bool) *frameServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fs := &frameServer{l: l, lf: lf}
	fs.done.Add(1)
	go fs.accept()
	t.Cleanup(fs.kill)
	return fs
}

func (fs *frameServer) url() string { return "tcp://" + fs.l.Addr().String() }

func (fs *frameServer) accept() {
	defer fs.done.Done()
	for {
		c, err := fs.l.Accept()
		if err != nil {
			return
		}
		fs.mu.Lock()
		fs.conns = append(fs.conns, c)
		fs.mu.Unlock()
		fs.done.Add(1)
		go fs.read(c)
	}
}

func (fs *frameServer) read(c net.Conn) {
	defer fs.done.Done()
	r := bufio.NewReader(c)
	for {
		var frame []byte
		if fs.lf {
			line, err := r.ReadBytes('\n')
			if err != nil {
				return
			}
			frame = line[:len(line)-1]
		} else {
			n, err := r.ReadString(' ')
			if err != nil {
				return
			}
			size, err := strconv.Atoi(strings.TrimSuffix(n, " "))
			if err != nil {
				panic("bad octet count " + strconv.Quote(n))
			}
			frame = make([]byte, size)
			if _, err := io.ReadFull(r, frame); err != nil {
				return
			}
		}
		fs.mu.Lock()
		fs.frames = append(fs.frames, string(frame))
		fs.mu.Unlock()
	}
}

func (fs *frameServer) got() []string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return append([]string(nil), fs.frames...)
}

// kill closes the listener and every connection, as a crashing collector.
func (fs *frameServer) kill() {
	fs.l.Close()
	fs.mu.Lock()
	for _, c := range fs.conns {
		c.Close()
	}
	fs.mu.Unlock()
	fs.done.Wait()
}

func TestNewValidates(t *testing.T) {
	f := func(cfg conf.Sink, wantErr string) {
		t.Helper()
		cfg.Type = "syslog"
		_, err := sinks.New("fwd", &cfg)
		if wantErr == "" && err != nil || wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)) {
			t.Errorf("%+v: err %v, want %q", cfg, err, wantErr)
		}
	}
	f(conf.Sink{Options: &Config{Servers: []string{"tcp://127.0.0.1:514", "udp://[::1]:514"}}}, "")
	f(conf.Sink{Encoding: "rfc5424", Options: &Config{Servers: []string{"tcp://h:514"}, OutFraming: "lf"}}, "")
	f(conf.Sink{}, "syslog sink needs servers")
	f(conf.Sink{Options: &Config{Servers: []string{"127.0.0.1:514"}}}, `servers[0]: "127.0.0.1:514": want tcp://host:port`)
	f(conf.Sink{Options: &Config{Servers: []string{"tcp://h:1", "http://h:514"}}}, `servers[1]`)
	f(conf.Sink{Options: &Config{Servers: []string{"tcp://h:1", "tls://h:514"}}}, "")
	f(conf.Sink{Options: &Config{Servers: []string{"tcp://h"}}}, `servers[0]`)
	f(conf.Sink{Options: &Config{Servers: []string{"tcp://h:1"}, OutFraming: "nul"}}, `out_framing "nul"`)
	f(conf.Sink{Encoding: "xml", Options: &Config{Servers: []string{"tcp://h:1"}}}, `encoding`)
}

func TestFramingOverLoopback(t *testing.T) {
	raws := []string{"<13>1 - h a - - - one", "", "with\nnewline", "日本語 \xff", strings.Repeat("x", 70000)}
	for _, lf := range []bool{false, true} {
		fs := newFrameServer(t, lf)
		framing := "octet-counting"
		want := raws
		if lf {
			framing = "lf"
			// A LF inside would end the frame early: written as "#012".
			want = []string{raws[0], raws[1], "with#012newline", raws[3], raws[4]}
		}
		s, _ := newSink(t, conf.Sink{Options: &Config{Servers: []string{fs.url()}, OutFraming: framing}})
		if err := s.Write(context.Background(), msgs(raws...)); err != nil {
			t.Fatal(err)
		}
		s.Close()
		testenv.Poll(testenv.EventuallyTimeout, func() bool { return len(fs.got()) >= len(want) })
		if got := fs.got(); fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
			t.Errorf("framing %s: got %d frames, want %d", framing, len(got), len(want))
		}
	}
}

func TestUDPOneDatagramPerMessage(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	s, _ := newSink(t, conf.Sink{Encoding: "rfc5424", Options: &Config{Servers: []string{"udp://" + pc.LocalAddr().String()}}})
	in := msgs("a", "b b", "c")
	if err := s.Write(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65536)
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for _, m := range in {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		if want := sinks.EncodingRFC5424.Append(nil, m); string(buf[:n]) != string(want) {
			t.Errorf("datagram %q, want %q", buf[:n], want)
		}
	}
	s.Close()
}

// TestUDPBatchWhole: a batch of 1500 messages arrives whole, one datagram
// per message, in order; a message longer than a datagram can carry is
// cut at maxDatagram.
func TestUDPBatchWhole(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	// Room for the whole batch, so the loopback cannot drop any of it.
	rc, err := pc.(*net.UDPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, 64<<20)
	})
	if serr != nil {
		t.Fatalf("SO_RCVBUFFORCE (the tests run as root): %v", serr)
	}
	s, _ := newSink(t, conf.Sink{Encoding: "raw", Options: &Config{Servers: []string{"udp://" + pc.LocalAddr().String()}}})
	defer s.Close()
	var texts []string
	for i := range 1500 {
		texts = append(texts, fmt.Sprintf("<13>1 - h app - - - message %d", i))
	}
	texts[700] = "<13>1 - h app - - - " + strings.Repeat("x", 70000)
	if err := s.Write(context.Background(), msgs(texts...)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<17)
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i, want := range texts {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		if len(want) > maxDatagram {
			want = want[:maxDatagram]
		}
		if string(buf[:n]) != want {
			t.Fatalf("datagram %d: %d bytes %.40q..., want %d bytes %.40q...", i, n, buf[:n], len(want), want)
		}
	}
}

func TestErrorNamesServerAndBacksOff(t *testing.T) {
	dead := testenv.ClosedAddr(t)
	s, logs := newSink(t, conf.Sink{Options: &Config{Servers: []string{"tcp://" + dead}}})
	err := s.Write(context.Background(), msgs("x"))
	want := fmt.Sprintf(`sinks/syslog: sink "fwd": no server accepted the batch: server tcp://%s: dial: connection refused`, dead)
	if err == nil || err.Error() != want {
		t.Fatalf("error\n got: %v\nwant: %s", err, want)
	}
	// Right after a failure the server is not dialled again.
	err = s.Write(context.Background(), msgs("x"))
	if err == nil || !strings.Contains(err.Error(), "skipped for") {
		t.Fatalf("second write: %v, want the server skipped during its backoff", err)
	}
	if logs.Len() != 0 {
		t.Errorf("single server logged %q; the Runner logs final errors", logs.String())
	}
	if err := s.Check(context.Background()); err == nil {
		t.Error("Check succeeded with the only server down")
	}
}

func TestFailoverAndFailback(t *testing.T) {
	primaryAddr := testenv.ClosedAddr(t)
	backup := newFrameServer(t, false)
	s, logs := newSink(t, conf.Sink{Options: &Config{Servers: []string{"tcp://" + primaryAddr, backup.url()}}})
	s.failback = 50 * time.Millisecond
	if err := s.Write(context.Background(), msgs("1", "2")); err != nil {
		t.Fatal(err)
	}
	wantLog := fmt.Sprintf(`sinks/syslog: sink \"fwd\": server tcp://%s: dial: connection refused; trying next server`, primaryAddr)
	if !strings.Contains(logs.String(), wantLog) {
		t.Errorf("log lacks %q:\n%s", wantLog, logs.String())
	}
	if s.Failovers() != 1 || s.Server() != backup.url() {
		t.Fatalf("failovers %d, server %s", s.Failovers(), s.Server())
	}
	want := []ServerState{{URL: "tcp://" + primaryAddr, Down: true, Failures: 1}, {URL: backup.url(), Active: true}}
	if got := s.Servers(); !reflect.DeepEqual(got, want) {
		t.Errorf("Servers() after the failover = %+v, want %+v", got, want)
	}
	// The primary comes back: after the failback interval (and its
	// backoff) the sink returns to it.
	l, err := net.Listen("tcp", primaryAddr)
	if err != nil {
		t.Skipf("cannot rebind %s: %v", primaryAddr, err)
	}
	primary := &frameServer{l: l}
	primary.done.Add(1)
	go primary.accept()
	t.Cleanup(primary.kill)
	testenv.Poll(5*time.Second, func() bool {
		if s.Server() == "tcp://"+primaryAddr {
			return true
		}
		if err := s.Write(context.Background(), msgs("later")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // one write per retry interval
		return false
	})
	if s.Server() != "tcp://"+primaryAddr || s.Failovers() != 2 {
		t.Fatalf("no failback: server %s, failovers %d", s.Server(), s.Failovers())
	}
	if st := s.Servers(); !st[0].Active || st[0].Down || st[1].Active {
		t.Errorf("Servers() after the failback = %+v, want the primary active and up", st)
	}
	s.Write(context.Background(), msgs("back"))
	s.Close()
	last := func() string {
		got := primary.got()
		if len(got) == 0 {
			return ""
		}
		return got[len(got)-1]
	}
	testenv.Poll(testenv.EventuallyTimeout, func() bool { return last() == "back" })
	if got := primary.got(); last() != "back" {
		t.Errorf("primary got %q", got)
	}
}

func TestWriteGivesUpWhenContextEnds(t *testing.T) {
	// A server that accepts but never reads: the write blocks once the
	// socket buffers are full, and ctx must end it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			time.Sleep(3 * time.Second)
			c.Close()
		}
	}()
	s, _ := newSink(t, conf.Sink{Options: &Config{Servers: []string{"tcp://" + l.Addr().String()}}})
	big := strings.Repeat("y", 1<<20)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	var werr error
	for range 64 {
		if werr = s.Write(ctx, msgs(big)); werr != nil {
			break
		}
	}
	if werr == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("write to a stalled server: err %v after %v", werr, time.Since(start))
	}
	s.Close()
}

// BenchmarkWriteTCP measures one 256-message batch (octet counting, raw)
// to a loopback server that discards.
func BenchmarkWriteTCP(b *testing.B) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go io.Copy(io.Discard, c)
		}
	}()
	cfg := conf.Sink{Type: "syslog", Options: &Config{Servers: []string{"tcp://" + l.Addr().String()}}}
	s, err := newFromConf("bench", &cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	batch := msgs(testMessages("bench", 0, 256)...)
	var size int64
	for _, m := range batch {
		size += int64(len(m.Raw))
	}
	b.ReportAllocs()
	b.SetBytes(size)
	for b.Loop() {
		if err := s.Write(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkWriteUDP measures one 256-message batch (raw) to a loopback
// UDP socket that discards.
func BenchmarkWriteUDP(b *testing.B) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 1<<16)
		for {
			if _, _, err := pc.(*net.UDPConn).ReadFromUDPAddrPort(buf); err != nil {
				return
			}
		}
	}()
	cfg := conf.Sink{Type: "syslog", Options: &Config{Servers: []string{"udp://" + pc.LocalAddr().String()}}}
	s, err := newFromConf("bench", &cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	batch := msgs(testMessages("bench", 0, 256)...)
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Write(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "msgs/s")
}
