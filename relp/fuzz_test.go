package relp

import (
	"slices"
	"testing"
)

// frames parses parts as one stream arriving in those reads, keeping the
// unparsed tail between reads as a connection handler does. It returns
// the frames (rendered), the error reason that ended the stream (or ""),
// and the tail left unparsed.
func frames(t *testing.T, max int, parts ...[]byte) (out []string, errReason string, tail []byte) {
	t.Helper()
	var buf []byte
	for _, p := range parts {
		buf = append(buf, p...)
		for {
			f, n, need, err := Next(buf, max)
			if err != nil {
				if ov, ok := err.(*Oversize); ok {
					if ov.HeaderLen > len(buf) || ov.DataLen <= max {
						t.Fatalf("Oversize %+v with %d bytes buffered, max %d", ov, len(buf), max)
					}
					return out, "oversize", nil
				}
				return out, err.(*Error).Reason, nil
			}
			if n == 0 {
				if need != 0 && need <= len(buf) {
					t.Fatalf("need %d with %d bytes buffered", need, len(buf))
				}
				break
			}
			if n > len(buf) || n > MaxHeader+max+1 {
				t.Fatalf("frame of %d bytes from %d buffered (max %d)", n, len(buf), max)
			}
			if len(f.Data) > max {
				t.Fatalf("data of %d bytes over max %d", len(f.Data), max)
			}
			// A frame rebuilt from its parts parses to the same parts
			// (leading zeros aside, which librelp accepts too).
			again := AppendFrame(nil, f.Txnr, string(f.Cmd), f.Data)
			g, _, _, err := Next(again, max)
			if err != nil || g.Txnr != f.Txnr || string(g.Cmd) != string(f.Cmd) || string(g.Data) != string(f.Data) {
				t.Fatalf("frame %q rebuilt as %q: %v", buf[:n], again, err)
			}
			out = append(out, string(buf[:n]))
			buf = buf[n:]
		}
	}
	return out, "", buf
}

// FuzzNext feeds the parser arbitrary bytes whole and split in two at an
// arbitrary point (a partial read): both must give the same frames and the
// same error, and a frame never exceeds the data limit.
func FuzzNext(f *testing.F) {
	f.Add([]byte("1 open 41 relp_version=0\nrelp_software=x\ncommands=syslog\n2 syslog 5 <13>a\n3 close 0\n"), uint16(100), uint16(7))
	f.Add([]byte("0 serverclose 0\n1 rsp 6 200 OK\n"), uint16(10), uint16(3))
	f.Add([]byte("1 syslog 99999 x"), uint16(64), uint16(12))
	f.Add([]byte("1 syslog 3 abcX2 syslog 0\n"), uint16(64), uint16(0))
	f.Fuzz(func(t *testing.T, in []byte, max, split uint16) {
		m := int(max%512) + 1
		at := int(split) % (len(in) + 1)
		whole, errWhole, tailWhole := frames(t, m, in)
		parts, errParts, tailParts := frames(t, m, in[:at], in[at:])
		if !slices.Equal(whole, parts) || errWhole != errParts || string(tailWhole) != string(tailParts) {
			t.Fatalf("max %d split at %d of %q:\nwhole %q err %q tail %q\nparts %q err %q tail %q", m, at, in, whole, errWhole, tailWhole, parts, errParts, tailParts)
		}
	})
}
