package conf

import (
	"os"
	"time"
)

// Buffer is a sink's optional disk buffer, the [sink.NAME.buffer] table.
// With one, the sink's queue is an append-only segment log on disk
// (sinks/diskbuf) instead of memory: a message leaves it only after the
// sink confirmed it, and what is unconfirmed survives a crash or restart.
type Buffer struct {
	// Dir is the buffer's directory, one per sink. Required.
	Dir string `toml:"dir"`
	// MaxBytes bounds the segment files on disk.
	MaxBytes Size `toml:"max_bytes"`
	// SegmentBytes bounds one segment file.
	SegmentBytes Size `toml:"segment_bytes"`
	// Fsync is "always" (each append is on disk before it returns),
	// "interval" (every FsyncInterval) or "never" (the OS decides).
	Fsync string `toml:"fsync"`
	// FsyncInterval is the period of Fsync "interval".
	FsyncInterval Duration `toml:"fsync_interval"`
	// OnFull is "block" (TCP input waits: backpressure) or "drop_newest".
	OnFull string `toml:"on_full"`
}

// Buffer defaults, each with its reason.
const (
	// DefaultBufferMaxBytes is 1GiB: minutes of a busy relay's traffic,
	// enough to ride out a broker restart, small next to any log disk.
	DefaultBufferMaxBytes = 1 * GiB
	// DefaultBufferSegmentBytes is 64MiB: confirmed space comes back a
	// whole segment at a time, so segments stay a small part of the total.
	DefaultBufferSegmentBytes = 64 * MiB
	// DefaultBufferFsync is "interval": a crash of the machine (not just
	// of wharf) loses at most one interval, at a fraction of the cost of
	// "always" (measured ~4k vs ~600k single appends/s on ext4).
	DefaultBufferFsync = "interval"
	// DefaultBufferFsyncInterval bounds that loss window to 1s.
	DefaultBufferFsyncInterval = time.Second
	// DefaultBufferOnFull blocks: a full buffer slows TCP senders rather
	// than losing what they send.
	DefaultBufferOnFull = "block"
)

func (b *Buffer) applyDefaults() {
	if b == nil {
		return
	}
	if b.MaxBytes == 0 {
		b.MaxBytes = DefaultBufferMaxBytes
	}
	if b.SegmentBytes == 0 {
		b.SegmentBytes = min(DefaultBufferSegmentBytes, b.MaxBytes/4)
	}
	setStr(&b.Fsync, DefaultBufferFsync)
	setDur(&b.FsyncInterval, DefaultBufferFsyncInterval)
	setStr(&b.OnFull, DefaultBufferOnFull)
}

// buffer validates a sink's buffer table; dirs tracks directories already
// used so two sinks cannot share one.
func (v *validator) buffer(p string, b *Buffer, dirs map[string]string) {
	if b == nil {
		return
	}
	p += ".buffer"
	if b.Dir == "" {
		v.errAt(p+".dir", "dir is required: a directory of its own for this sink's buffer, e.g. \"/var/lib/wharf/NAME\"")
	} else {
		if other, dup := dirs[b.Dir]; dup {
			v.errAt(p+".dir", "%s is also the buffer dir of %s; give each sink its own", b.Dir, other)
		}
		dirs[b.Dir] = p
		if fi, err := os.Stat(b.Dir); err == nil && !fi.IsDir() {
			v.errAt(p+".dir", "%s exists and is not a directory", b.Dir)
		}
	}
	if b.SegmentBytes < 4*KiB {
		v.errAt(p+".segment_bytes", "%s is too small (at least 4KiB)", b.SegmentBytes)
	}
	if b.MaxBytes < 2*b.SegmentBytes {
		v.errAt(p+".max_bytes", "%s must be at least twice segment_bytes (%s): space is freed a whole segment at a time", b.MaxBytes, b.SegmentBytes)
	}
	v.enum(p, "fsync", b.Fsync, "always", "interval", "never")
	v.enum(p, "on_full", b.OnFull, "block", "drop_newest")
	if b.Fsync == "interval" && b.FsyncInterval.Duration <= 0 {
		v.errAt(p+".fsync_interval", "must be positive with fsync = \"interval\"")
	}
}
