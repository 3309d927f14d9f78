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
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"wharf/internal/logfile"
	"wharf/metrics"
)

// maxRaw bounds the bytes kept per record, so a flood of huge garbage
// cannot fill the disk faster than the frontend's own size limit allows.
const maxRaw = 64 << 10

// queueLen bounds records waiting for the writer goroutine.
const queueLen = 4096

type record struct {
	when     int64
	frontend string
	bind     string
	reason   string
	peer     netip.AddrPort
	raw      []byte
}

// File is one dead-letter file. Safe for concurrent use.
type File struct {
	path    string
	ch      chan record
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
		lost:    reg.Counter("wharf_deadletter_lost_total", "Refused messages not written because the dead-letter writer fell behind.", "path", path),
	}
	go d.run(f)
	return d, nil
}

// Put records raw (copied; the caller keeps its buffer) as refused for
// reason. It never blocks.
func (d *File) Put(frontend, bind, reason string, peer netip.AddrPort, raw []byte) {
	r := record{when: time.Now().UnixNano(), frontend: frontend, bind: bind, reason: reason, peer: peer}
	if len(raw) > 0 {
		r.raw = append([]byte(nil), raw[:min(len(raw), maxRaw)]...)
	}
	select {
	case d.ch <- r:
	default:
		d.lost.Inc()
	}
}

// Close writes what is queued and closes the file.
func (d *File) Close() {
	d.once.Do(func() { close(d.ch) })
	<-d.done
}

func (d *File) run(f *os.File) {
	defer close(d.done)
	w := bufio.NewWriterSize(f, 64<<10)
	var line []byte
	for r := range d.ch {
		line = appendRecord(line[:0], r)
		w.Write(line)
		d.written.Inc()
		if len(d.ch) == 0 {
			w.Flush()
		}
	}
	w.Flush()
	f.Close()
}

// appendRecord renders one JSON line. The bytes go in "raw" as a JSON
// string when they are valid UTF-8, otherwise hex-encoded in "raw_hex",
// so they can be recovered exactly either way.
func appendRecord(b []byte, r record) []byte {
	b = append(b, `{"time":"`...)
	b = time.Unix(0, r.when).UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","frontend":`...)
	b = strconv.AppendQuote(b, r.frontend)
	b = append(b, `,"bind":`...)
	b = strconv.AppendQuote(b, r.bind)
	b = append(b, `,"reason":`...)
	b = strconv.AppendQuote(b, r.reason)
	if r.peer.IsValid() {
		b = append(b, `,"peer":"`...)
		b = r.peer.AppendTo(b)
		b = append(b, '"')
	}
	if utf8.Valid(r.raw) {
		b = append(b, `,"raw":`...)
		b = appendJSONString(b, r.raw)
	} else {
		b = append(b, `,"raw_hex":"`...)
		for _, c := range r.raw {
			b = append(b, hexDigits[c>>4], hexDigits[c&15])
		}
		b = append(b, '"')
	}
	return append(b, "}\n"...)
}

const hexDigits = "0123456789abcdef"

// appendJSONString quotes valid UTF-8 s as a JSON string.
func appendJSONString(b, s []byte) []byte {
	b = append(b, '"')
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, `\u00`...)
			b = append(b, hexDigits[c>>4], hexDigits[c&15])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
