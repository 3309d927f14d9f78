package conf

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
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
		if err := checkBufferDir(b.Dir); errors.Is(err, errNotWritable) {
			// check may run as another user than wharf run: say so, do
			// not refuse.
			v.warn(p+".dir", "%v", err)
		} else if err != nil {
			v.errAt(p+".dir", "%v", err)
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

// unusableFS says why no user could make a buffer directory in dir ("" if
// nothing says so): a read-only mount, or a kernel pseudo filesystem
// (proc, sysfs, cgroup...) where mkdir fails whoever runs it. Unlike
// errNotWritable, which depends on the user wharf runs as, these are
// errors for wharf check too.
func unusableFS(dir string) string {
	var st unix.Statfs_t
	if unix.Statfs(dir, &st) != nil {
		return ""
	}
	if st.Flags&unix.ST_RDONLY != 0 {
		return "on a read-only filesystem"
	}
	switch st.Type {
	case unix.PROC_SUPER_MAGIC:
		return "on the proc filesystem"
	case unix.SYSFS_MAGIC:
		return "on sysfs"
	case unix.CGROUP_SUPER_MAGIC, unix.CGROUP2_SUPER_MAGIC:
		return "on a cgroup filesystem"
	case unix.DEBUGFS_MAGIC, unix.TRACEFS_MAGIC:
		return "on a kernel debug filesystem"
	}
	return ""
}

// errNotWritable marks a buffer directory this user could not create.
var errNotWritable = errors.New("not writable by this user")

// checkBufferDir reports a buffer directory wharf run could not open:
// a non-directory in its place, or, when it does not exist yet, a
// nearest existing ancestor that is not a directory or (errNotWritable)
// that this user cannot create entries in (wharf creates the directory
// at start).
func checkBufferDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case err == nil && !fi.IsDir():
		return fmt.Errorf("%s exists and is not a directory", dir)
	case err == nil:
		return nil
	case !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR):
		return fmt.Errorf("%s: %v", dir, errors.Unwrap(err))
	}
	return checkCreatable(dir, filepath.Dir(filepath.Clean(dir)))
}

// CheckFileDir reports why wharf run could not create file, which it
// writes in dir (the file's directory, or for a templated path the fixed
// directory before the first placeholder), creating dir and its missing
// parents first: the nearest existing ancestor of dir is not a directory
// ("mkdir /etc/passwd: not a directory" at start), or is on a filesystem
// where nobody can create anything. A file that exists already is left to
// its own checks, and so is whether this user may write (wharf run may
// run as another). Nothing is created.
func CheckFileDir(file, dir string) error {
	if _, err := os.Lstat(file); err == nil {
		return nil
	}
	err := checkCreatable(file, filepath.Clean(dir))
	if errors.Is(err, errNotWritable) {
		return nil
	}
	return err
}

// checkCreatable walks up from parent to the first ancestor that exists
// and reports why what (a directory or file below it) could not be
// created there: that ancestor is not a directory, is on an unusable
// filesystem, or (errNotWritable) this user cannot create entries in it.
func checkCreatable(what, parent string) error {
	for {
		fi, err := os.Stat(parent)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("%s cannot be created: %s is not a directory", what, parent)
			}
			if fsErr := unusableFS(parent); fsErr != "" {
				return fmt.Errorf("%s cannot be created: %s is %s; choose a directory on a disk", what, parent, fsErr)
			}
			if err := syscall.Access(parent, 0x2|0x1); err != nil { // W_OK|X_OK
				if errors.Is(err, syscall.EROFS) {
					return fmt.Errorf("%s cannot be created: %s is on a read-only filesystem; choose a writable directory", what, parent)
				}
				return fmt.Errorf("%s cannot be created: %s is %w (uid %d); if wharf runs as another user, make sure that one can", what, parent, errNotWritable, os.Getuid())
			}
			return nil
		}
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			return fmt.Errorf("%s cannot be created: %v", what, err)
		}
		next := filepath.Dir(parent)
		if next == parent {
			return nil
		}
		parent = next
	}
}
