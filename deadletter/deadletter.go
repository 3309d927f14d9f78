// Package deadletter keeps what wharf refused: the raw bytes of every
// message a frontend dropped (malformed, oversize, unroutable), with the
// reason, as JSON lines in a file an operator can read and replay.
//
// Writing never blocks the caller (an event loop): records go through a
// bounded channel to one writer goroutine; when it falls behind, records
// are counted as lost instead (wharf_deadletter_lost_total).
package deadletter

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"wharf/internal/jsonstr"
	"wharf/internal/logfile"
	"wharf/metrics"
)

// maxRaw bounds the bytes kept per record, so a flood of huge garbage
// cannot fill the disk faster than the frontend's own size limit allows.
const maxRaw = 64 << 10

// queueLen bounds records waiting for the writer goroutine.
const queueLen = 4096

// maxQueuedBytes bounds the raw bytes waiting for the writer goroutine:
// 8 MiB is 4096 records of 2 KiB, or 128 of the largest kept (maxRaw), so
// the queue cannot hold 4096 x 64 KiB = 256 MiB of refused garbage. A
// record that would exceed it is counted as lost.
const maxQueuedBytes = 8 << 20

type record struct {
	when     int64
	frontend string
	bind     string
	reason   string
	peer     netip.AddrPort
	raw      *[]byte // pooled copy, nil when there were no bytes
}

// rawPool holds the copies of refused bytes on their way to the writer,
// so Put allocates nothing once the pool is warm.
var rawPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// File is one dead-letter file. Safe for concurrent use.
type File struct {
	path    string
	ch      chan record
	queued  atomic.Int64 // raw bytes in ch
	done    chan struct{}
	written *metrics.Counter
	lost    *metrics.Counter
	once    sync.Once
}

// Open appends to path (creating it and its directory, mode 0640). Like
// file sinks it refuses a symbolic link, a directory, a non-regular file
// and a file with other hard links (see internal/logfile).
func Open(path string, reg *metrics.Registry) (*File, error) {
	f, err := logfile.OpenAppend(path, 0o640)
	if err != nil {
		return nil, fmt.Errorf("deadletter: %s: %w", path, err)
	}
	d := &File{
		path:    path,
		ch:      make(chan record, queueLen),
		done:    make(chan struct{}),
		written: reg.Counter("wharf_deadletter_written_total", "Refused messages written to a dead-letter file.", "path", path),
		lost:    reg.Counter("wharf_deadletter_lost_total", "Refused messages not written because the dead-letter writer fell behind or the write failed.", "path", path),
	}
	go d.run(f)
	return d, nil
}

// Put records raw (copied into a pooled buffer, at most 64 KiB; the
// caller keeps its own) as refused for reason. It never blocks: when the
// writer is 4096 records or 8 MiB behind, the record is counted as lost.
func (d *File) Put(frontend, bind, reason string, peer netip.AddrPort, raw []byte) {
	n := int64(min(len(raw), maxRaw))
	if d.queued.Add(n) > maxQueuedBytes {
		d.queued.Add(-n)
		d.lost.Inc()
		return
	}
	r := record{when: time.Now().UnixNano(), frontend: frontend, bind: bind, reason: reason, peer: peer}
	if n > 0 {
		r.raw = rawPool.Get().(*[]byte)
		*r.raw = append((*r.raw)[:0], raw[:n]...)
	}
	select {
	case d.ch <- r:
	default:
		d.release(r)
		d.lost.Inc()
	}
}

// release returns r's bytes to the pool and the queue's byte budget.
func (d *File) release(r record) {
	if r.raw != nil {
		d.queued.Add(-int64(len(*r.raw)))
		rawPool.Put(r.raw)
	}
}

// Close writes what is queued and closes the file.
func (d *File) Close() {
	d.once.Do(func() { close(d.ch) })
	<-d.done
}

// followInterval is how often, at most, the writer checks that the path
// still names its file (logfile.Moved), before a flush's first record.
var followInterval = time.Second

// run writes records as they come, flushing when the queue is empty.
// Records count as written once flushed to the file; those a failed write
// or flush loses count as lost, and the next record is tried afresh.
// Before a flush's first record, at most once per followInterval, a file
// deleted or rotated away under it is replaced by a new one at the path.
func (d *File) run(f *os.File) {
	defer close(d.done)
	defer func() { f.Close() }()
	w := bufio.NewWriterSize(f, 64<<10)
	checked := time.Now()
	follow := func() {
		if time.Since(checked) < followInterval {
			return
		}
		checked = time.Now()
		if _, moved := logfile.Moved(f, d.path); !moved {
			return
		}
		if nf, err := logfile.OpenAppend(d.path, 0o640); err == nil {
			f.Close()
			f = nf
			w.Reset(f)
		}
	}
	var line []byte
	var buffered uint64 // records in w, not yet flushed
	settle := func(err error) {
		if err != nil {
			d.lost.Add(buffered)
			w.Reset(f) // drop the rest of what failed; later records try again
		} else {
			d.written.Add(buffered)
		}
		buffered = 0
	}
	for r := range d.ch {
		if buffered == 0 {
			follow() // before the first record of a flush
		}
		line = appendRecord(line[:0], r)
		d.release(r)
		buffered++
		if _, err := w.Write(line); err != nil {
			settle(err)
			continue
		}
		if len(d.ch) == 0 {
			settle(w.Flush())
		}
	}
	settle(w.Flush())
}

// appendRecord renders one JSON line. The bytes go in "raw" as a JSON
// string when they are valid UTF-8, otherwise hex-encoded in "raw_hex",
// so they can be recovered exactly either way.
func appendRecord(b []byte, r record) []byte {
	b = append(b, `{"time":"`...)
	b = time.Unix(0, r.when).UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","frontend":`...)
	b = jsonstr.AppendString(b, r.frontend)
	b = append(b, `,"bind":`...)
	b = jsonstr.AppendString(b, r.bind)
	b = append(b, `,"reason":`...)
	b = jsonstr.AppendString(b, r.reason)
	if r.peer.IsValid() {
		b = append(b, `,"peer":"`...)
		b = r.peer.AppendTo(b)
		b = append(b, '"')
	}
	var raw []byte
	if r.raw != nil {
		raw = *r.raw
	}
	if utf8.Valid(raw) {
		b = append(b, `,"raw":`...)
		b = jsonstr.Append(b, raw)
	} else {
		b = append(b, `,"raw_hex":"`...)
		b = jsonstr.AppendHex(b, raw)
		b = append(b, '"')
	}
	return append(b, "}\n"...)
}
