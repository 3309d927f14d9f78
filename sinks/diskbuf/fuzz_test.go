package diskbuf

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// FuzzReader writes arbitrary bytes as two segment files (the input split
// in two) and reads the buffer: no panic, no endless loop, every call
// makes progress, and the reader agrees with Verify on what is valid.
func FuzzReader(f *testing.F) {
	var valid []byte
	for i := range 5 {
		valid = appendRecord(valid, payload(i))
	}
	f.Add(valid, uint16(len(valid)/2))
	f.Add(valid[:len(valid)-3], uint16(len(valid)))
	bad := append([]byte(nil), valid...)
	bad[20] ^= 0xff
	f.Add(bad, uint16(30))
	f.Add(make([]byte, 64), uint16(8))
	f.Add([]byte{0xff, 0xff, 0xff, 0x00, 1, 2, 3, 4}, uint16(0))
	f.Add(appendRecord(nil, nil), uint16(0))
	f.Fuzz(func(t *testing.T, data []byte, split uint16) {
		if len(data) > 1<<16 {
			return
		}
		cut := min(int(split), len(data))
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, segName(0)), data[:cut], 0o640); err != nil {
			t.Fatal(err)
		}
		if cut < len(data) {
			if err := os.WriteFile(filepath.Join(dir, segName(1000)), data[cut:], 0o640); err != nil {
				t.Fatal(err)
			}
		}
		rep, err := Verify(dir)
		if err != nil {
			t.Fatal(err)
		}
		b, err := Open(dir, Options{MaxTotalBytes: 1 << 20, Fsync: FsyncNever})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // Next must not wait: it reads what is there, then gives up
		var n uint64
		for calls := 0; ; calls++ {
			if calls > len(data)+2 {
				t.Fatalf("no end after %d calls", calls)
			}
			recs, err := b.Next(ctx, 3, 64)
			if err != nil {
				break
			}
			if len(recs) == 0 {
				t.Fatal("Next returned nothing and no error")
			}
			n += uint64(len(recs))
			if err := b.Ack(recs[len(recs)-1].Pos); err != nil {
				t.Fatal(err)
			}
		}
		s := b.Stats()
		if n != rep.Records || s.CorruptRecords != rep.CorruptRecords || int64(s.TornBytes) != rep.TornTailBytes {
			t.Fatalf("read %d records, stats %+v; Verify %+v", n, s, rep)
		}
	})
}
