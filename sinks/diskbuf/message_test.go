package diskbuf

import (
	"bytes"
	"net/netip"
	"testing"

	"wharf/message"
)

func testMessages() []*message.Message {
	raw := []byte("<34>1 2026-11-25T19:10:00Z host app 42 ID47 [sd@1 a=\"b\"] hello")
	full := func(peer string, tr message.Transport) *message.Message {
		return &message.Message{
			Raw: raw, Received: 1764097800123456789, Frontend: "edge", Port: 5514,
			Transport: tr, Peer: netip.MustParseAddrPort(peer),
			Format: message.FormatRFC5424, Priority: 34, Version: 1,
			Timestamp: message.Span{Off: 6, Len: 20}, Hostname: message.Span{Off: 27, Len: 4},
			AppName: message.Span{Off: 32, Len: 3}, ProcID: message.Span{Off: 36, Len: 2},
			MsgID: message.Span{Off: 39, Len: 4}, StructuredData: message.Span{Off: 44, Len: 12},
			Msg: message.Span{Off: 57, Len: 5},
		}
	}
	return []*message.Message{
		full("192.0.2.7:40000", message.TransportTCP),
		full("[fe80::1%eth0]:514", message.TransportTLS),
		full("[::ffff:10.1.2.3]:9", message.TransportUDP),
		{Raw: []byte("garbage"), Priority: -1},                // raw, no peer, no frontend
		{Raw: nil, Priority: -1, Frontend: "f", Received: -5}, // empty
		{Raw: []byte("<13>x"), Priority: 13, Format: message.FormatRFC3164, Msg: message.Span{Off: 4, Len: 1}},
	}
}

func TestMessageRoundTrip(t *testing.T) {
	for i, m := range testMessages() {
		enc := EncodeMessage(nil, m)
		d, err := DecodeMessage(enc)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if !bytes.Equal(d.Raw, m.Raw) || d.Received != m.Received || d.Frontend != m.Frontend ||
			d.Port != m.Port || d.Transport != m.Transport || d.Peer != m.Peer || d.Format != m.Format ||
			d.Priority != m.Priority || d.Version != m.Version || d.Timestamp != m.Timestamp ||
			d.Hostname != m.Hostname || d.AppName != m.AppName || d.ProcID != m.ProcID ||
			d.MsgID != m.MsgID || d.StructuredData != m.StructuredData || d.Msg != m.Msg {
			t.Fatalf("message %d: decoded %+v, want %+v", i, d, m)
		}
		if again := EncodeMessage([]byte("prefix"), d); !bytes.Equal(again[6:], enc) {
			t.Fatalf("message %d: re-encoding differs", i)
		}
		if string(d.Field(d.Msg)) != string(m.Field(m.Msg)) {
			t.Fatalf("message %d: Msg %q", i, d.Field(d.Msg))
		}
		d.Release()
	}
}

func TestDecodeMessageErrors(t *testing.T) {
	enc := EncodeMessage(nil, testMessages()[0])
	f := func(rec []byte) {
		t.Helper()
		if m, err := DecodeMessage(rec); err == nil {
			m.Release()
			t.Fatalf("DecodeMessage(%q) succeeded", rec)
		}
	}
	for n := range len(enc) {
		f(enc[:n]) // every truncation
	}
	f(append(append([]byte(nil), enc...), 0)) // trailing byte
	v2 := append([]byte(nil), enc...)
	v2[0] = 2
	f(v2) // unknown version
	peer := append([]byte(nil), enc...)
	peer[16] = 5
	f(peer) // unknown address kind
	span := EncodeMessage(nil, &message.Message{Raw: []byte("ab"), Msg: message.Span{Off: 1, Len: 2}})
	f(span) // span past Raw
}

// Encoding into a large enough buffer and decoding into a pooled message
// allocate nothing (the frontend name is interned).
func TestMessageAllocs(t *testing.T) {
	m := testMessages()[0]
	dst := make([]byte, 0, 512)
	if n := testing.AllocsPerRun(100, func() { dst = EncodeMessage(dst[:0], m) }); n != 0 {
		t.Fatalf("EncodeMessage: %v allocs", n)
	}
	if n := testing.AllocsPerRun(100, func() {
		d, err := DecodeMessage(dst)
		if err != nil {
			t.Fatal(err)
		}
		d.Release()
	}); n >= 1 {
		t.Fatalf("DecodeMessage: %v allocs", n)
	}
}

// FuzzDecodeMessage: arbitrary records never panic; what decodes has its
// spans inside Raw and encodes canonically (decode(encode(m)) encodes the
// same).
func FuzzDecodeMessage(f *testing.F) {
	for _, m := range testMessages() {
		f.Add(EncodeMessage(nil, m))
	}
	f.Fuzz(func(t *testing.T, rec []byte) {
		m, err := DecodeMessage(rec)
		if err != nil {
			return
		}
		for _, s := range []message.Span{m.Timestamp, m.Hostname, m.AppName, m.ProcID, m.MsgID, m.StructuredData, m.Msg} {
			m.Field(s)
		}
		enc := EncodeMessage(nil, m)
		m.Release()
		m2, err := DecodeMessage(enc)
		if err != nil {
			t.Fatalf("re-encoded message does not decode: %v", err)
		}
		if enc2 := EncodeMessage(nil, m2); !bytes.Equal(enc, enc2) {
			t.Fatal("encoding not stable")
		}
		m2.Release()
	})
}
