package ports

import (
	"bytes"
	"slices"
	"testing"
)

// FuzzParseNet: ParseNet never panics, and splitting the body at a line
// boundary into two files (each with the header) gives the same sockets
// in the same order, or an error for one half when the whole fails.
func FuzzParseNet(f *testing.F) {
	f.Add([]byte(tcpHeader+
		"   0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 112 1 00000000174cd7ed 100 0 0 10 0\n"+
		"   1: 0100007F:DE8E 0100007F:A8CF 06 00000000:00000000 03:00000726 00000000     0        0 0 3 000000006c54d8ec\n"), uint(1))
	f.Add([]byte(v6Header+
		" 9853: 00000000000000000000000001000000:158A 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 86966 2 00000000eac0f93c 0\n"+
		" 9856: 00000000000000000000000000000000:158D 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 86971 2 00000000efd376ea 0\n"), uint(0))
	f.Fuzz(func(t *testing.T, data []byte, cut uint) {
		for _, proto := range []string{"tcp", "udp"} {
			whole, errWhole := ParseNet(data, proto, "fuzz")
			nl := bytes.IndexByte(data, '\n')
			if nl < 0 {
				continue
			}
			header, body := data[:nl+1], data[nl+1:]
			lines := bytes.SplitAfter(body, []byte("\n"))
			k := int(cut % uint(len(lines)+1))
			a := append(bytes.Clone(header), bytes.Join(lines[:k], nil)...)
			b := append(bytes.Clone(header), bytes.Join(lines[k:], nil)...)
			sa, errA := ParseNet(a, proto, "fuzz")
			sb, errB := ParseNet(b, proto, "fuzz")
			if (errWhole != nil) != (errA != nil || errB != nil) {
				t.Fatalf("%s: whole error %v, halves %v / %v", proto, errWhole, errA, errB)
			}
			if errWhole == nil && !slices.Equal(whole, append(sa, sb...)) {
				t.Fatalf("%s: whole %v, halves %v + %v", proto, whole, sa, sb)
			}
		}
	})
}
