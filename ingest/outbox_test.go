package ingest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"
	"unsafe"

	"wharf/conf"
	"wharf/ingest/framing"
	"wharf/message"
	"wharf/metrics"
	"wharf/route"
	"wharf/sinks"
)

// frameTaker is a route.FrameTarget that takes the first take frames of
// each read and leaves the rest to the caller (as a runner closing over
// one that frames differently does); the messages handed over instead
// are kept.
type frameTaker struct {
	take   int
	frames [][]byte
	ms     []*message.Message
}

func (t *frameTaker) Enqueue(m *message.Message, _ bool) bool {
	t.ms = append(t.ms, m)
	return true
}

func (t *frameTaker) EnqueueBatch(ms []*message.Message, _ bool) int {
	t.ms = append(t.ms, ms...)
	return len(ms)
}

func (t *frameTaker) TakesFrames() bool       { return true }
func (t *frameTaker) PassesOctetFrames() bool { return false }
func (t *frameTaker) FrameID() uint64         { return uint64(reflect.ValueOf(t).Pointer()) } // unique while t lives

func (t *frameTaker) AppendFrame(b []byte, m *message.Message) []byte {
	return append(append(b, m.Raw...), '\n')
}

func (t *frameTaker) EnqueueFrames(f *message.Frames, from int, _ bool) (next, queued int) {
	next = min(from+t.take, f.Len())
	for i := from; i < next; i++ {
		t.frames = append(t.frames, bytes.Clone(f.Frame(i)))
	}
	return next, next - from
}

// keeper is a Target that queues messages and keeps them.
type keeper struct{ ms []*message.Message }

func (k *keeper) Enqueue(m *message.Message, _ bool) bool { k.ms = append(k.ms, m); return true }
func (k *keeper) EnqueueBatch(ms []*message.Message, _ bool) int {
	k.ms = append(k.ms, ms...)
	return len(ms)
}

// A read's messages routed to a target that takes frames and one that
// queues messages: the frames are taken, the messages are copies that
// outlive the read's buffer, and frames the target leaves (a reload
// while the read was routed) are made into messages again, parsed, with
// each one's own sender.
func TestOutboxFramesAndMessages(t *testing.T) {
	ft, k := &frameTaker{take: 1}, &keeper{}
	l := newTestListenerTo(t, "header", ft)
	fe := l.routes.Load().Frontend(l.frontend)
	if d := fe.Default; len(d) != 1 || d[0].Frames == nil {
		t.Fatalf("routes %+v: the frame target not found as one", d)
	}
	fe.Default = append(fe.Default, route.Dest{Name: "keep", Target: k})
	s := l.settings.Load()
	out := outbox{peers: true} // senders differ within a read, as on UDP
	buf := []byte("<13>1 - host-a app - - - one<13>1 - host-b app - - - two<13>1 - host-c app - - - three")
	frames := [][]byte{buf[:28], buf[28:56], buf[56:]}
	peers := []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:1"), netip.MustParseAddrPort("192.0.2.2:2"), netip.MustParseAddrPort("192.0.2.2:2")}
	for i, f := range frames {
		l.deliver(&out, s, fe, f, 77, peers[i], nil)
	}
	out.flush(l, s, true)
	copy(buf, bytes.Repeat([]byte("X"), len(buf))) // the read's buffer is reused

	if got := fmt.Sprintf("%q", ft.frames); got != `["<13>1 - host-a app - - - one\n"]` {
		t.Errorf("frames taken: %s", got)
	}
	check := func(what string, ms []*message.Message, want []int) {
		t.Helper()
		if len(ms) != len(want) {
			t.Fatalf("%s: %d messages, want %d", what, len(ms), len(want))
		}
		for j, m := range ms {
			i := want[j]
			host := fmt.Sprintf("host-%c", 'a'+i)
			if !bytes.Contains(m.Raw, []byte(host)) || string(m.Field(m.Hostname)) != host || m.Peer != peers[i] ||
				m.Received != 77 || m.Frontend != l.frontend || m.Refs() != 1 {
				t.Errorf("%s %d: Raw %q, Hostname %q, Peer %v, Received %d, Frontend %q, Refs %d", what, j, m.Raw, m.Field(m.Hostname), m.Peer, m.Received, m.Frontend, m.Refs())
			}
			m.Release()
		}
	}
	check("queued as messages", k.ms, []int{0, 1, 2})
	check("made again from frames left", ft.ms, []int{1, 2})
}

// Messages of one read routed to two frame targets, each to one or to
// both: each target gets exactly its messages, in order (the outbox
// finds a target's frames by its FrameID).
func TestOutboxFramesPerTarget(t *testing.T) {
	a, b := &frameTaker{take: 100}, &frameTaker{take: 100}
	l := newTestListenerTo(t, "header", a)
	s := l.settings.Load()
	da := route.Dest{Name: "a", Target: a, Frames: a, FrameID: a.FrameID()}
	db := route.Dest{Name: "b", Target: b, Frames: b, FrameID: b.FrameID()}
	if da.FrameID == db.FrameID {
		t.Fatal("two targets with one FrameID")
	}
	var out outbox
	for i, dests := range [][]route.Dest{{da}, {db}, {da, db}, {db, da}, {da}} {
		out.route(dests, out.borrow(fmt.Appendf(nil, "m%d", i)))
	}
	out.flush(l, s, true)
	if got := fmt.Sprintf("%q", a.frames); got != `["m0\n" "m2\n" "m3\n" "m4\n"]` {
		t.Errorf("target a took %s", got)
	}
	if got := fmt.Sprintf("%q", b.frames); got != `["m1\n" "m2\n" "m3\n"]` {
		t.Errorf("target b took %s", got)
	}
}

// octetTaker is a frameTaker that frames as the syslog sink does with
// encoding raw and octet counting, and passes frames as read
// (PassesOctetFrames). It counts the reads whose frames it was handed as
// a slice of in, the read's buffer, rather than a copy.
type octetTaker struct {
	frameTaker
	in      []byte
	aliased int
}

func (t *octetTaker) PassesOctetFrames() bool { return true }
func (t *octetTaker) AppendFrame(b []byte, m *message.Message) []byte {
	return fmt.Appendf(b, "%d %s", len(m.Raw), m.Raw)
}
func (t *octetTaker) EnqueueFrames(f *message.Frames, from int, block bool) (next, queued int) {
	if len(f.B) > 0 && len(t.in) > 0 {
		start, end := &t.in[0], &t.in[len(t.in)-1]
		if p := &f.B[0]; uintptr(unsafe.Pointer(p)) >= uintptr(unsafe.Pointer(start)) && uintptr(unsafe.Pointer(p)) <= uintptr(unsafe.Pointer(end)) {
			t.aliased++
		}
	}
	return t.frameTaker.EnqueueFrames(f, from, block)
}

// Frames passed as read (route.Dest's PassOctet) reach each target
// exactly as AppendFrame would have made them, in order, whatever mix of
// framings, trimmed trailers and routing the reads hold, split into reads
// anywhere; the read's buffer is never written; and a read whose frames
// for a target lie back to back is handed over as a slice of the buffer,
// not a copy.
func TestOutboxPassesOctetFrames(t *testing.T) {
	p, q := &octetTaker{frameTaker: frameTaker{take: 1 << 20}}, &octetTaker{frameTaker: frameTaker{take: 1 << 20}}
	fe := &conf.Frontend{Name: "edge", Format: "auto", Sinks: []string{"p", "q"}, MaxMessageSize: 64 << 10,
		Routes: []conf.Route{{Hostname: "only-p", Sinks: []string{"p"}}}}
	cfg := &conf.Config{Frontends: map[string]*conf.Frontend{"edge": fe},
		Sinks: map[string]*conf.Sink{"p": {Type: "syslog", Encoding: "raw"}, "q": {Type: "syslog", Encoding: "raw"}}}
	tab, err := route.Compile(cfg, map[string]route.Target{"p": p, "q": q})
	if err != nil {
		t.Fatal(err)
	}
	var h route.Holder
	h.Store(tab)
	l, err := New(fe, conf.Bind{Scheme: "tcp", Host: "127.0.0.1", Port: 5514, Addr: "127.0.0.1:5514"}, &h, metrics.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if d := tab.Frontend("edge").Default; len(d) != 2 || !d[0].PassOctet || !d[1].PassOctet {
		t.Fatalf("default destinations %+v: want both passing octet frames", d)
	}
	msg := func(host string, i int) string { return fmt.Sprintf("<13>1 - %s app - - - message %d", host, i) }
	octet := func(m string) string { return fmt.Sprintf("%d %s", len(m), m) }
	var in []byte
	var wantP, wantQ []string
	add := func(wire, raw string, toQ bool) {
		in = append(in, wire...)
		wantP = append(wantP, octet(raw))
		if toQ {
			wantQ = append(wantQ, octet(raw))
		}
	}
	for i := range 120 {
		m := msg("both", i)
		switch k := i % 6; {
		case i >= 60: // then only octet frames: whole reads pass as read
			add(octet(m), m, true)
		case k == 0: // octet frames back to back: passed as read
			add(octet(m), m, true)
		case k == 1: // routed to p only: q's run of frames read breaks
			m = msg("only-p", i)
			add(octet(m), m, false)
		case k == 2: // so q's next frame does not follow on from its run
			add(octet(m), m, true)
		case k == 3: // stray bytes between frames: nor does this one
			add("\n\x00"+octet(m), m, true)
		case k == 4: // LF framing: framed by AppendFrame
			add(m+"\n", m, true)
		case k == 5: // a trailer inside the count, trimmed: framed by AppendFrame
			add(octet(m+"\r\n"), m, true)
		}
	}
	for _, size := range []int{len(in), 1000, 97, 1} {
		p.frames, q.frames, p.aliased, q.aliased = nil, nil, 0, 0
		buf := bytes.Clone(in)
		keep := bytes.Clone(in)
		p.in, q.in = buf, buf
		fr := &framing.Framer{Mode: framing.Auto, Max: 64 << 10}
		s := l.settings.Load()
		var out outbox
		var held bool
		// Reads of at most size bytes; what a read leaves unframed starts
		// the next, as gnet keeps it.
		for start, end := 0, 0; start < len(buf); {
			end = min(len(buf), max(end, start)+size)
			n, _, _ := l.framesTo(&out, s, tab.Frontend("edge"), fr, buf[start:end], 0, zeroPeer, &held)
			start += n
			if end == len(buf) && n == 0 {
				break
			}
		}
		if !bytes.Equal(buf, keep) {
			t.Fatalf("reads of %d: the read's buffer was written", size)
		}
		for _, c := range []struct {
			name string
			got  [][]byte
			want []string
		}{{"p", p.frames, wantP}, {"q", q.frames, wantQ}} {
			var got []string
			for _, f := range c.got {
				got = append(got, string(f))
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("reads of %d, target %s took\n%q\nwant\n%q", size, c.name, got, c.want)
			}
		}
		if size < len(in) && (p.aliased == 0 || q.aliased == 0) {
			t.Errorf("reads of %d: frames handed over from the read's buffer %d and %d times, want some", size, p.aliased, q.aliased)
		}
	}
}

// ackLog records each Ack's answers by message number.
type ackLog struct {
	mu   sync.Mutex
	done map[int][]bool
}

type ackOf struct {
	log *ackLog
	i   int
}

func (a ackOf) Done(ok bool) {
	a.log.mu.Lock()
	a.log.done[a.i] = append(a.log.done[a.i], ok)
	a.log.mu.Unlock()
}

// A read of messages with and without an Ack (RELP), routed to a byte
// queue that closed and hands over to a runner that queues messages, and
// to a second runner that queues messages: each message reaches both
// once, in order, and each Ack is answered once, ok. (From the review of
// the frames path: the remade and the held messages together.)
func TestOutboxRemakeAcks(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := sinks.RunnerConfig{}.Resolved()
	old := sinks.NewRunner("out", framedDiscard{}, cfg, nil, log)
	old.Start()
	newSink, keepSink := &recordSink{}, &recordSink{}
	next := sinks.NewRunner("out", newSink, cfg, nil, log)
	next.Start()
	keep := sinks.NewRunner("keep", keepSink, cfg, nil, log)
	keep.Start()
	if err := old.HandOver(context.Background(), next); err != nil {
		t.Fatal(err)
	}
	l := newTestListenerTo(t, "header", old)
	fe := l.routes.Load().Frontend(l.frontend)
	if fe.Default[0].Frames == nil {
		t.Fatal("the byte queue is not a frame target")
	}
	fe.Default = append(fe.Default, route.Dest{Name: "keep", Target: keep})
	s := l.settings.Load()
	var out outbox
	acks := &ackLog{done: map[int][]bool{}}
	var want []string
	for i := range 10 {
		raw := []byte(fmt.Sprintf("<13>1 - host-%d app - - - msg %d", i, i))
		want = append(want, string(raw))
		var ack message.Acker
		if i%3 == 1 {
			ack = ackOf{acks, i}
		}
		l.deliver(&out, s, fe, raw, 5, netip.MustParseAddrPort("192.0.2.1:1"), ack)
	}
	if !out.flush(l, s, true) {
		t.Error("flush: not every message queued")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	next.Close(ctx)
	keep.Close(ctx)
	if fmt.Sprint(newSink.raw) != fmt.Sprint(want) || fmt.Sprint(keepSink.raw) != fmt.Sprint(want) {
		t.Errorf("the new runner got %q\nthe other got %q\nwant %q", newSink.raw, keepSink.raw, want)
	}
	for i := 1; i < 10; i += 3 {
		if d := acks.done[i]; fmt.Sprint(d) != "[true]" {
			t.Errorf("message %d's Ack answered %v, want [true]", i, d)
		}
	}
}

// TestScratchMatchesFresh guards borrow, which sets only Raw on the
// scratch message: deliver and the parser must set every other field
// each time, or a field of the previous message would leak into the
// next. The frames go through one outbox as one read's do (a single
// flush at the end; the target that queues messages gets a copy made as
// each is routed) and again without an outbox (message.New); the two
// must agree field by field. The frames alternate between ones that set
// a field (VERSION, structured data, MSGID) and ones that do not.
func TestScratchMatchesFresh(t *testing.T) {
	frames := []string{
		`<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 1234 ID47 [exampleSDID@32473 iut="3"] An application event`,
		`<34>Oct 11 22:14:15 mymachine su[12]: 'su root' failed`,
		`<13>1 2003-10-11T22:14:15Z h a p m [x@1 k="v"] with sd`,
		`not syslog at all`,
		`<13>1 - - - - - -`,
		`<999>x`,
		`<13>1 - h a p m [bad`,
		`<13>1 2003-10-11T22:14:15Z h a p m - plain`,
	}
	for _, format := range []string{"auto", "header", "raw", "rfc3164"} {
		k := &keeper{}
		l := newTestListenerTo(t, format, k)
		fe := l.routes.Load().Frontend(l.frontend)
		s := l.settings.Load()
		peer := func(i int) netip.AddrPort { return netip.MustParseAddrPort(fmt.Sprintf("192.0.2.%d:514", i+1)) }
		var out outbox
		out.peers = true
		for i, f := range frames {
			l.deliver(&out, s, fe, []byte(f), int64(100+i), peer(i), nil)
		}
		out.flush(l, s, true)
		half := len(k.ms)
		for i, f := range frames {
			l.deliver(nil, s, fe, []byte(f), int64(100+i), peer(i), nil)
		}
		// Both ways drop the same frames (a parse error under on_error =
		// "drop").
		if len(k.ms) != 2*half || half == 0 {
			t.Fatalf("%s: %d messages through the outbox, %d without", format, half, len(k.ms)-half)
		}
		for i := range half {
			a, b := reflect.ValueOf(k.ms[i]).Elem(), reflect.ValueOf(k.ms[half+i]).Elem()
			for j := range a.NumField() {
				ft := a.Type().Field(j)
				if !ft.IsExported() {
					continue
				}
				if !reflect.DeepEqual(a.Field(j).Interface(), b.Field(j).Interface()) {
					t.Errorf("%s, message %d: %s %v through the outbox, %v without", format, i, ft.Name, a.Field(j).Interface(), b.Field(j).Interface())
				}
			}
		}
		for _, m := range k.ms {
			m.Release()
		}
	}
}
