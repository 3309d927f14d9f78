package diskbuf

import (
	"context"
	"testing"
	"time"
)

const benchRecord = 300

func BenchmarkAppend(b *testing.B) {
	for _, fsync := range []string{FsyncNever, FsyncInterval, FsyncAlways} {
		b.Run(fsync, func(b *testing.B) {
			buf := openT(b, b.TempDir(), Options{MaxTotalBytes: 64 << 30, Fsync: fsync, FsyncInterval: time.Second})
			defer buf.Close()
			p := make([]byte, benchRecord)
			ctx := context.Background()
			b.ReportAllocs()
			b.SetBytes(benchRecord)
			for b.Loop() {
				if err := buf.Append(ctx, p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAppendBatch appends 100 records per call, as a runner flushing
// a batch would; bytes and ns are per record.
func BenchmarkAppendBatch(b *testing.B) {
	for _, fsync := range []string{FsyncNever, FsyncInterval, FsyncAlways} {
		b.Run(fsync, func(b *testing.B) {
			buf := openT(b, b.TempDir(), Options{MaxTotalBytes: 64 << 30, Fsync: fsync})
			defer buf.Close()
			ps := make([][]byte, 100)
			for i := range ps {
				ps[i] = make([]byte, benchRecord)
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.SetBytes(benchRecord * int64(len(ps)))
			for b.Loop() {
				if _, err := buf.AppendBatch(ctx, ps); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkNext reads and confirms records in batches of 1000 (the
// runner's default batch size); bytes are per record.
func BenchmarkNext(b *testing.B) {
	buf := openT(b, b.TempDir(), Options{MaxTotalBytes: 64 << 30, Fsync: FsyncNever})
	defer buf.Close()
	p := make([]byte, benchRecord)
	ctx := context.Background()
	ps := make([][]byte, 1000)
	for i := range ps {
		ps[i] = p
	}
	b.ReportAllocs()
	b.SetBytes(benchRecord * 1000)
	for b.Loop() {
		b.StopTimer()
		buf.AppendBatch(ctx, ps)
		b.StartTimer()
		for n := 0; n < len(ps); {
			recs, err := buf.Next(ctx, 1000, 1<<20)
			if err != nil {
				b.Fatal(err)
			}
			n += len(recs)
			buf.Ack(recs[len(recs)-1].Pos)
		}
	}
}

func BenchmarkEncodeDecodeMessage(b *testing.B) {
	m := testMessages()[0]
	dst := make([]byte, 0, 512)
	b.ReportAllocs()
	b.SetBytes(int64(len(m.Raw)))
	for b.Loop() {
		dst = EncodeMessage(dst[:0], m)
		d, err := DecodeMessage(dst)
		if err != nil {
			b.Fatal(err)
		}
		d.Release()
	}
}

// BenchmarkAppendParallelAlways has 32 goroutines appending single records
// with Fsync "always": they share fsyncs (group commit).
func BenchmarkAppendParallelAlways(b *testing.B) {
	buf := openT(b, b.TempDir(), Options{MaxTotalBytes: 64 << 30, Fsync: FsyncAlways})
	defer buf.Close()
	b.ReportAllocs()
	b.SetBytes(benchRecord)
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		p := make([]byte, benchRecord)
		for pb.Next() {
			if err := buf.Append(context.Background(), p); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
