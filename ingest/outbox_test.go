package ingest

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"

	"wharf/message"
	"wharf/route"
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

func (t *frameTaker) TakesFrames() bool { return true }

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
	var out outbox
	buf := []byte("<13>1 - host-a app - - - one<13>1 - host-b app - - - two<13>1 - host-c app - - - three")
	frames := [][]byte{buf[:28], buf[28:56], buf[56:]}
	peers := []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:1"), netip.MustParseAddrPort("192.0.2.2:2"), netip.MustParseAddrPort("192.0.2.2:2")}
	for i, f := range frames {
		l.deliver(&out, s, fe, f, 77, peers[i], nil)
	}
	out.flush(true)
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
