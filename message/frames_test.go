package message

import (
	"bytes"
	"fmt"
	"net/netip"
	"reflect"
	"testing"
)

// TestFrames fills a Frames as an outbox does, with a held message in the
// middle, and reads it back as a runner does; Reset keeps the storage and
// forgets the held reference.
func TestFrames(t *testing.T) {
	var f Frames
	held := New([]byte("held"))
	for round := range 2 {
		for i, frame := range []string{"5 hello", "4 held", "3 bye"} {
			f.B = append(f.B, frame...)
			var h *Message
			if i == 1 {
				h = held
			}
			f.Add(len(frame)-2, int64(100+i), h)
		}
		if f.Len() != 3 || f.Received != 100 {
			t.Fatalf("round %d: Len %d, Received %d, want 3 and the first message's 100", round, f.Len(), f.Received)
		}
		for i, want := range []string{"5 hello", "4 held", "3 bye"} {
			if got := string(f.Frame(i)); got != want {
				t.Errorf("Frame(%d) = %q, want %q", i, got, want)
			}
			if got := f.RawLen(i); got != len(want)-2 {
				t.Errorf("RawLen(%d) = %d, want %d", i, got, len(want)-2)
			}
			if got, want := f.Held(i), map[bool]*Message{true: held}[i == 1]; got != want {
				t.Errorf("Held(%d) = %p, want %p", i, got, want)
			}
		}
		if got := string(f.Span(1, 3)); got != "4 held3 bye" {
			t.Errorf("Span(1, 3) = %q", got)
		}
		if got := string(f.Span(0, 1)); got != "5 hello" {
			t.Errorf("Span(0, 1) = %q", got)
		}
		f.Reset()
		if f.Len() != 0 || len(f.B) != 0 || f.Received != 0 || f.Held(1) != nil || cap(f.B) == 0 {
			t.Fatalf("after Reset: Len %d, B %q, Received %d, Held(1) %p, cap(B) %d", f.Len(), f.B, f.Received, f.Held(1), cap(f.B))
		}
	}
	// A held message only at the end: the ones before it have none.
	f.B = append(f.B, "a"...)
	f.Add(1, 1, nil)
	f.B = append(f.B, "b"...)
	f.Add(1, 1, held)
	if f.Held(0) != nil || f.Held(1) != held {
		t.Errorf("Held = %p, %p; want nil, the message", f.Held(0), f.Held(1))
	}
	// Receive times: one for a read, each its own for a batch.
	f.B = append(f.B, "c"...)
	f.Add(1, 5, nil)
	f.SetReceived(5)
	f.B = append(f.B, "d"...)
	f.Add(1, 1, nil)
	f.SetReceived(1)
	if got := []int64{f.ReceivedAt(0), f.ReceivedAt(1), f.ReceivedAt(2), f.ReceivedAt(3)}; fmt.Sprint(got) != "[1 1 5 1]" {
		t.Errorf("ReceivedAt = %v, want [1 1 5 1]", got)
	}
	f.Reset()
	f.Add(0, 9, nil)
	if f.ReceivedAt(0) != 9 {
		t.Errorf("after Reset: ReceivedAt(0) = %d, want 9", f.ReceivedAt(0))
	}
}

// TestCloneKeepsEveryField guards Clone against a field added to Message
// later and not copied: every exported field but Ack is set to a value
// other than its zero, and must come through. Raw is a copy.
func TestCloneKeepsEveryField(t *testing.T) {
	raw := []byte("<13>1 2026-01-01T00:00:00Z host app 42 id - hello")
	m := &Message{Raw: raw}
	v := reflect.ValueOf(m).Elem()
	for i := range v.NumField() {
		fv, ft := v.Field(i), v.Type().Field(i)
		if !ft.IsExported() || ft.Name == "Raw" || ft.Name == "Ack" {
			continue
		}
		switch fv.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			fv.SetInt(int64(7 + i))
		case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			fv.SetUint(uint64(7 + i))
		case reflect.String:
			fv.SetString("edge")
		case reflect.Struct:
			switch fv.Type() {
			case reflect.TypeOf(Span{}):
				fv.Set(reflect.ValueOf(Span{Off: uint32(i), Len: 3}))
			case reflect.TypeOf(netip.AddrPort{}):
				fv.Set(reflect.ValueOf(netip.MustParseAddrPort("192.0.2.7:514")))
			default:
				t.Fatalf("field %s: type %s not covered by this test", ft.Name, fv.Type())
			}
		default:
			t.Fatalf("field %s: kind %s not covered by this test", ft.Name, fv.Kind())
		}
	}
	var k Cache
	c := k.Clone(m)
	if !bytes.Equal(c.Raw, raw) || &c.Raw[0] == &raw[0] {
		t.Fatalf("Raw: %q (shared with the original: %v)", c.Raw, &c.Raw[0] == &raw[0])
	}
	if c.Refs() != 1 {
		t.Errorf("Refs %d, want 1", c.Refs())
	}
	cv := reflect.ValueOf(c).Elem()
	for i := range v.NumField() {
		ft := v.Type().Field(i)
		if !ft.IsExported() || ft.Name == "Raw" || ft.Name == "Ack" {
			continue
		}
		if !reflect.DeepEqual(cv.Field(i).Interface(), v.Field(i).Interface()) {
			t.Errorf("field %s: %v, want %v", ft.Name, cv.Field(i).Interface(), v.Field(i).Interface())
		}
	}
	c.Release()
}
