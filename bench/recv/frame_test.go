package recv

import (
	"bytes"
	"testing"

	"wharf/bench/stamp"
)

// splitAll feeds in to a splitter in chunks cut at the given points, as
// reads would deliver them, and returns the messages.
func splitAll(t *testing.T, in []byte, cuts ...int) ([]string, error) {
	t.Helper()
	var sp splitter
	var out []string
	var pending []byte
	prev := 0
	for _, c := range append(cuts, len(in)) {
		pending = append(pending, in[prev:c]...)
		prev = c
		used, err := sp.split(pending, func(m []byte) { out = append(out, string(m)) })
		if err != nil {
			return out, err
		}
		pending = append([]byte{}, pending[used:]...)
	}
	return out, nil
}

func TestSplitter(t *testing.T) {
	f := func(in string, want []string, bad bool) {
		t.Helper()
		for cut := 0; cut <= len(in); cut++ {
			got, err := splitAll(t, []byte(in), cut)
			if (err != nil) != bad {
				t.Fatalf("%q cut %d: err %v", in, cut, err)
			}
			if !bad && len(got) != len(want) {
				t.Fatalf("%q cut %d: got %q want %q", in, cut, got, want)
			}
			for i := range want {
				if !bad && got[i] != want[i] {
					t.Fatalf("%q cut %d: got %q want %q", in, cut, got, want)
				}
			}
		}
	}
	f("5 <1>ab3 <2>", []string{"<1>ab", "<2>"}, false)
	f("5 <1>ab\n3 <2>\n", []string{"<1>ab", "<2>"}, false) // LF trailers tolerated
	f("<1>a\n<2>b\r\n\n<3>", []string{"<1>a", "<2>b\r"}, false)
	f("5x<1>ab", nil, true)
	f("5 <1>ab <2>", nil, true)
}

func FuzzSplitter(f *testing.F) {
	f.Add([]byte("5 <1>ab3 <2>"), 3)
	f.Add([]byte("<1>a\n<2>b\n"), 4)
	f.Fuzz(func(t *testing.T, in []byte, cut int) {
		whole, err1 := splitAll(t, in)
		if cut < 0 || cut > len(in) {
			cut = len(in) / 2
		}
		parts, err2 := splitAll(t, in, cut)
		if (err1 == nil) != (err2 == nil) {
			// A split may only change where an error surfaces, not whether.
			t.Fatalf("error differs: %v vs %v", err1, err2)
		}
		if err1 == nil && len(whole) != len(parts) {
			t.Fatalf("whole %q parts %q", whole, parts)
		}
	})
}

// TestCollectorStream runs a known stream through splitter and collector
// with reads cut at odd sizes: deliberate gaps, duplicates, reordering, a
// foreign run and a stampless message.
func TestCollectorStream(t *testing.T) {
	var stream bytes.Buffer
	add := func(run string, conn int, seq uint64) {
		tp, _ := stamp.NewTemplate(stamp.Options{Framing: stamp.OctetCounting, Size: 300, Run: run, Conn: conn})
		tp.SetSeq(seq)
		tp.SetTime(1)
		stream.Write(tp.Frame)
	}
	for seq := uint64(0); seq < 1000; seq++ {
		add("r", 1, seq) // stream 1 is clean, interleaved with stream 0
		switch {
		case seq%100 == 7: // gap
		case seq%100 == 8: // 9 comes before 8
			add("r", 0, seq+1)
		case seq%100 == 9:
			add("r", 0, seq-1)
		case seq%250 == 3: // duplicate
			add("r", 0, seq)
			add("r", 0, seq)
		default:
			add("r", 0, seq)
		}
	}
	add("other", 0, 5)
	stream.WriteString("12 <1>no stamp!")
	for _, chunk := range []int{1, 7, 299, 4096, 1 << 20} {
		tr := NewTracker()
		col := newCollector(tr, "r")
		var sp splitter
		in := stream.Bytes()
		var buf []byte
		for len(in) > 0 {
			n := min(chunk, len(in))
			buf = append(buf, in[:n]...)
			in = in[n:]
			used, err := sp.split(buf, col.msg)
			if err != nil {
				t.Fatal(err)
			}
			col.flush(n)
			buf = append(buf[:0], buf[used:]...)
		}
		r := tr.Report([]uint64{1000, 1000})
		if r.Lost != 10 || r.Dups != 4 || r.Reordered != 10 || r.Unique != 1990 || r.Foreign != 1 || r.Bad != 1 {
			t.Fatalf("chunk %d: lost %d dups %d reordered %d unique %d foreign %d bad %d",
				chunk, r.Lost, r.Dups, r.Reordered, r.Unique, r.Foreign, r.Bad)
		}
		if r.Streams[1].Lost != 0 || r.Bytes != uint64(stream.Len()) {
			t.Fatalf("chunk %d: %+v", chunk, r)
		}
	}
}

// Without a run id the first run seen is the one accounted: a second
// run's stream 0 is foreign, not merged into the first's (where its
// sequence numbers would count as duplicates), also when it arrives on
// another connection.
func TestCollectorAdoptsFirstRun(t *testing.T) {
	frame := func(run string, seq uint64) []byte {
		tp, _ := stamp.NewTemplate(stamp.Options{Framing: stamp.OctetCounting, Size: 200, Run: run, Conn: 0})
		tp.SetSeq(seq)
		tp.SetTime(1)
		return append([]byte(nil), tp.Frame...)
	}
	tr := NewTracker()
	a, b := newCollector(tr, ""), newCollector(tr, "")
	for seq := range uint64(100) {
		for _, c := range []struct {
			col *collector
			run string
		}{{a, "first"}, {b, "second"}} {
			var sp splitter
			if _, err := sp.split(frame(c.run, seq), c.col.msg); err != nil {
				t.Fatal(err)
			}
		}
	}
	a.flush(0)
	b.flush(0)
	r := tr.Report(nil)
	if r.Unique != 100 || r.Dups != 0 || r.Foreign != 100 {
		t.Fatalf("unique %d dups %d foreign %d, want 100 0 100", r.Unique, r.Dups, r.Foreign)
	}
}
