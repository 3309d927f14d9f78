package relp

import (
	"errors"
	"testing"
)

func TestNext(t *testing.T) {
	f := func(in string, max int, wantTxnr uint32, wantCmd, wantData string, wantN int) {
		t.Helper()
		fr, n, _, err := Next([]byte(in), max)
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if n != wantN || fr.Txnr != wantTxnr || string(fr.Cmd) != wantCmd || string(fr.Data) != wantData {
			t.Fatalf("%q: got %d %q %q n=%d, want %d %q %q n=%d", in, fr.Txnr, fr.Cmd, fr.Data, n, wantTxnr, wantCmd, wantData, wantN)
		}
	}
	f("1 open 5 hello\n", 100, 1, "open", "hello", 15)
	f("2 syslog 3 a\nb\nrest", 100, 2, "syslog", "a\nb", 15)
	f("0 serverclose 0\n", 100, 0, "serverclose", "", 16)
	f("999999999 close 0\nX", 100, 999999999, "close", "", 18)
	f("12 rsp 6 200 OK\n", 6, 12, "rsp", "200 OK", 16)

	incomplete := func(in string, wantNeed int) {
		t.Helper()
		_, n, need, err := Next([]byte(in), 100)
		if err != nil || n != 0 || need != wantNeed {
			t.Fatalf("%q: n=%d need=%d err=%v, want incomplete need=%d", in, n, need, err, wantNeed)
		}
	}
	incomplete("", 0)
	incomplete("1", 0)
	incomplete("1 sys", 0)
	incomplete("1 syslog 1", 0)
	incomplete("1 syslog 10 ", 23)
	incomplete("1 syslog 3 abc", 15)

	bad := func(in, reason string) {
		t.Helper()
		_, _, _, err := Next([]byte(in), 100)
		var e *Error
		if !errors.As(err, &e) || e.Reason != reason {
			t.Fatalf("%q: err %v, want reason %q", in, err, reason)
		}
	}
	bad("x open 0\n", "frame")
	bad(" 1 open 0\n", "frame")
	bad("1234567890 open 0\n", "frame")
	bad("1  open 0\n", "frame")
	bad("1 op3n 0\n", "frame")
	bad("1 abcdefghijklmnopqrstuvwxyzabcdefgh 0\n", "frame")
	bad("1 open x\n", "frame")
	bad("1 open 0 \n", "frame")
	bad("1 open 3 abcX", "frame")
	bad("1 syslog 101\n", "datalen") // no data: not a frame to read past
	bad("1 syslog 1234567890", "datalen")

	// Over the limit with the header complete: Oversize, for a caller
	// that reads past the data (ingest's oversize handling).
	_, _, _, err := Next([]byte("7 syslog 101 abc"), 100)
	var ov *Oversize
	if !errors.As(err, &ov) || ov.Txnr != 7 || string(ov.Cmd) != "syslog" || ov.DataLen != 101 || ov.HeaderLen != len("7 syslog 101 ") || ov.Max != 100 {
		t.Fatalf("oversize frame: err %#v, want Oversize{7 syslog 101 HeaderLen 13 Max 100}", err)
	}
	bad("1 syslog 3\n", "frame")
}

func TestAppendRoundTrip(t *testing.T) {
	b := AppendFrame(nil, 7, CmdSyslog, []byte("<13>hello\nworld"))
	b = AppendFrame(b, 8, CmdClose, nil)
	b = AppendRsp(b, 8, 200, "OK")
	want := "7 syslog 15 <13>hello\nworld\n8 close 0\n8 rsp 6 200 OK\n"
	if string(b) != want {
		t.Fatalf("got %q want %q", b, want)
	}
	fr, n, _, err := Next(b, 100)
	if err != nil || fr.Txnr != 7 || string(fr.Data) != "<13>hello\nworld" {
		t.Fatalf("%+v %v", fr, err)
	}
	fr, m, _, err := Next(b[n:], 100)
	if err != nil || string(fr.Cmd) != "close" || fr.Data != nil {
		t.Fatalf("%+v %v", fr, err)
	}
	fr, _, _, err = Next(b[n+m:], 100)
	if err != nil {
		t.Fatal(err)
	}
	code, text, rest, err := ParseRsp(fr.Data)
	if err != nil || code != 200 || string(text) != "OK" || rest != nil {
		t.Fatalf("%d %q %q %v", code, text, rest, err)
	}
}

func TestNextAllocs(t *testing.T) {
	b := AppendFrame(nil, 123, CmdSyslog, []byte("<13>Oct 11 22:14:15 host app: hello"))
	if n := testing.AllocsPerRun(100, func() { _, _, _, _ = Next(b, 1<<16) }); n != 0 {
		t.Fatalf("Next allocates %.1f times per frame", n)
	}
}

func TestServerSession(t *testing.T) {
	open := Frame{Txnr: 1, Cmd: []byte("open"), Data: ClientOffers("test")}
	var s Server
	if k, err := s.Accept(open); k != KindOpen || err != nil {
		t.Fatalf("open: %v %v", k, err)
	}
	if k, err := s.Accept(Frame{Txnr: 2, Cmd: []byte("syslog"), Data: []byte("x")}); k != KindSyslog || err != nil {
		t.Fatalf("syslog: %v %v", k, err)
	}
	if k, err := s.Accept(Frame{Txnr: 3, Cmd: []byte("starttls")}); k != KindUnknown || err != nil {
		t.Fatalf("unknown: %v %v", k, err)
	}
	if _, err := s.Accept(Frame{Txnr: 5, Cmd: []byte("syslog")}); err == nil || err.(*Error).Reason != "txnr" {
		t.Fatalf("skipped txnr accepted: %v", err)
	}

	bad := func(reason string, frames ...Frame) {
		t.Helper()
		var s Server
		var err error
		for _, f := range frames {
			if _, err = s.Accept(f); err != nil {
				break
			}
		}
		if err == nil || err.(*Error).Reason != reason {
			t.Fatalf("got %v, want reason %s", err, reason)
		}
	}
	bad("sequence", Frame{Txnr: 1, Cmd: []byte("syslog")})
	bad("txnr", Frame{Txnr: 2, Cmd: []byte("open"), Data: ClientOffers("x")})
	bad("offer", Frame{Txnr: 1, Cmd: []byte("open"), Data: []byte("relp_version=0\ncommands=foo")})
	bad("sequence", open, Frame{Txnr: 2, Cmd: []byte("open"), Data: ClientOffers("x")})
	bad("sequence", open, Frame{Txnr: 2, Cmd: []byte("close")}, Frame{Txnr: 3, Cmd: []byte("syslog")})
}

func TestOffers(t *testing.T) {
	d := []byte(OpenResponse("wharf"))
	code, text, rest, err := ParseRsp(append([]byte("200 "), d...))
	if err != nil || code != 200 || string(text) != "OK" {
		t.Fatalf("%d %q %v", code, text, err)
	}
	if err := CheckServerOffers(rest); err != nil {
		t.Fatal(err)
	}
	if err := CheckServerOffers([]byte("relp_version=0\ncommands=")); err == nil {
		t.Fatal("server without syslog accepted")
	}
	if v, ok := Offer([]byte("a=1\ncommands=syslog,foo\n"), "commands"); !ok || len(v) != 2 || string(v[1]) != "foo" {
		t.Fatalf("%q %v", v, ok)
	}
	if NextTxnr(MaxTxnr) != 1 || NextTxnr(1) != 2 {
		t.Fatal("NextTxnr")
	}
}
