package diskbuf

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"sort"
)

// resyncBudget bounds the work (bytes hashed plus offsets tried) spent
// looking for the next valid record after a corrupt one; past it the rest
// of the segment is skipped.
const resyncBudget = 64 << 20

// readBufSize is the reader's initial buffer; it grows only for a record
// larger than it.
const readBufSize = 256 << 10

type scanStatus uint8

const (
	scanRecord    scanStatus = iota // a valid record; call consume
	scanEnd                         // no bytes left before limit
	scanCorrupt                     // invalid record at off; call resync
	scanWouldMove                   // the buffer must be compacted first
)

// errShort means the file ended before the scanner's limit.
var errShort = errors.New("diskbuf: segment shorter than expected")

// scanner streams the records of one segment file through a bounded
// buffer. buf[r:w] holds the file's bytes starting at off, the offset of
// the next record.
type scanner struct {
	f     io.ReaderAt
	buf   []byte
	r, w  int
	off   int64
	limit int64 // never read at or past this offset
	pend  int   // size of the record next returned, for consume
}

func (s *scanner) init(f io.ReaderAt, off int64) {
	s.f, s.off, s.r, s.w, s.pend = f, off, 0, 0, 0
	if s.buf == nil {
		s.buf = make([]byte, readBufSize)
	}
}

// fill makes n bytes from off available in buf[r:]. Without mayMove it
// reports false rather than move bytes already handed out.
func (s *scanner) fill(n int, mayMove bool) (bool, error) {
	if s.w-s.r >= n {
		return true, nil
	}
	if mayMove && s.r == s.w && len(s.buf) > readBufSize && n <= readBufSize/2 {
		s.buf, s.r, s.w = make([]byte, readBufSize), 0, 0 // shrink after a large record
	}
	if s.r+n > len(s.buf) {
		switch {
		case n > len(s.buf)/2:
			// Twice the largest record wanted, so that compaction (below)
			// happens only after consuming half a buffer: resync asks for
			// long records at every byte offset. Growing leaves the old
			// array to the records that alias it.
			nb := make([]byte, max(n, min(2*n, 2*(hdrSize+MaxRecordBytes))))
			s.w = copy(nb, s.buf[s.r:s.w])
			s.buf, s.r = nb, 0
		case mayMove:
			s.w = copy(s.buf, s.buf[s.r:s.w])
			s.r = 0
		default:
			return false, nil
		}
	}
	for s.w-s.r < n {
		pos := s.off + int64(s.w-s.r)
		want := min(int64(len(s.buf)-s.w), s.limit-pos)
		if want <= 0 {
			return false, errShort
		}
		m, err := s.f.ReadAt(s.buf[s.w:s.w+int(want)], pos)
		s.w += m
		if err != nil && s.w-s.r < n {
			if errors.Is(err, io.EOF) {
				return false, errShort
			}
			return false, err
		}
	}
	return true, nil
}

// fillOrShrink is fill, treating a file shorter than limit as ending
// where the data ends (so a truncated file is scanned, not looped on).
func (s *scanner) fillOrShrink(n int, mayMove bool) (ok, shrunk bool, err error) {
	ok, err = s.fill(n, mayMove)
	if errors.Is(err, errShort) {
		s.limit = s.off + int64(s.w-s.r)
		return false, true, nil
	}
	return ok, false, err
}

// next looks at the record at off. For scanRecord it returns the payload
// (aliasing buf) and the offset just past it; call consume to move on.
func (s *scanner) next(mayMove bool) ([]byte, int64, scanStatus, error) {
	for {
		rem := s.limit - s.off
		if rem <= 0 {
			return nil, 0, scanEnd, nil
		}
		if rem < hdrSize {
			return nil, 0, scanCorrupt, nil
		}
		ok, shrunk, err := s.fillOrShrink(hdrSize, mayMove)
		if err != nil {
			return nil, 0, 0, err
		}
		if shrunk {
			continue
		}
		if !ok {
			return nil, 0, scanWouldMove, nil
		}
		l := getU32(s.buf[s.r:])
		if l > MaxRecordBytes || int64(l) > rem-hdrSize {
			return nil, 0, scanCorrupt, nil
		}
		n := hdrSize + int(l)
		ok, shrunk, err = s.fillOrShrink(n, mayMove)
		if err != nil {
			return nil, 0, 0, err
		}
		if shrunk {
			continue
		}
		if !ok {
			return nil, 0, scanWouldMove, nil
		}
		if !s.valid(l) {
			return nil, 0, scanCorrupt, nil
		}
		s.pend = n
		return s.buf[s.r+hdrSize : s.r+n : s.r+n], s.off + int64(n), scanRecord, nil
	}
}

// valid checks the CRC of the record of length l at buf[r:], all in buf.
func (s *scanner) valid(l uint32) bool {
	h := s.buf[s.r : s.r+hdrSize]
	crc := crc32.Update(0, castagnoli, h[0:4])
	crc = crc32.Update(crc, castagnoli, s.buf[s.r+hdrSize:s.r+hdrSize+int(l)])
	return crc == getU32(h[4:8])
}

// consume moves past the record next returned.
func (s *scanner) consume() {
	s.skip(int64(s.pend))
	s.pend = 0
}

func (s *scanner) skip(n int64) {
	if n <= int64(s.w-s.r) {
		s.r += int(n)
	} else {
		s.r, s.w = 0, 0
	}
	s.off += n
}

// resync moves off from a corrupt record to the next offset holding a
// valid record, or to limit when there is none within resyncBudget.
func (s *scanner) resync() error {
	work := 0
	for {
		s.skip(1)
		rem := s.limit - s.off
		if rem <= 0 {
			return nil
		}
		if rem < hdrSize {
			s.skip(rem)
			return nil
		}
		ok, shrunk, err := s.fillOrShrink(hdrSize, true)
		if err != nil {
			return err
		}
		if shrunk || !ok {
			s.off-- // retry this offset against the new limit
			s.r, s.w = 0, 0
			continue
		}
		work++
		l := getU32(s.buf[s.r:])
		if l > MaxRecordBytes || int64(l) > rem-hdrSize {
			continue
		}
		work += int(l)
		if work > resyncBudget {
			s.skip(s.limit - s.off)
			return nil
		}
		ok, shrunk, err = s.fillOrShrink(hdrSize+int(l), true)
		if err != nil {
			return err
		}
		if shrunk || !ok {
			s.off--
			s.r, s.w = 0, 0
			continue
		}
		if s.valid(l) {
			return nil
		}
	}
}

// reader is the Buffer's read cursor: a segment and a scanner over it.
type reader struct {
	seg uint64
	gen uint64 // Buffer.segGen when f was opened
	f   *os.File
	s   scanner
}

func (r *reader) reset(p Position) {
	r.close()
	r.seg = p.Seg
	r.s.off, r.s.r, r.s.w, r.s.pend = p.Off, 0, 0, 0
}

func (r *reader) close() {
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
}

// Next returns the next records after the last ones it returned, in
// append order: at most max records (at least 1) and, unless the first
// record alone is larger, at most maxBytes payload bytes (0: no limit).
// It waits for at least one record until ctx is done or Close begins
// (ErrClosed). The records and their Data are valid until the next call
// to Next, Rewind or Close. Records must be confirmed with Ack to leave
// the buffer; unconfirmed ones come again after a restart or a Rewind.
func (b *Buffer) Next(ctx context.Context, max, maxBytes int) ([]Record, error) {
	if max <= 0 {
		max = 1
	}
	b.rmu.Lock()
	defer b.rmu.Unlock()
	for {
		recs, err := b.read(max, maxBytes)
		if err != nil || len(recs) > 0 {
			return recs, err
		}
		select {
		case <-b.dataCh:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-b.closedCh:
			return nil, ErrClosed
		}
	}
}

// Rewind moves the reader back to the first unconfirmed record, so Next
// hands out again what it handed out since the last Ack.
func (b *Buffer) Rewind() {
	b.rmu.Lock()
	defer b.rmu.Unlock()
	b.mu.Lock()
	b.deliv = b.ack
	b.rdN = b.ack.n
	pos := b.ack
	closed := b.closed
	b.mu.Unlock()
	if !closed {
		b.rd.reset(pos)
	}
}

// segState returns the read limit of segment base, whether it is sealed
// (a later segment exists) and, when base is gone, the segment to go on
// with. Called with mu held.
func (b *Buffer) segState(base uint64) (limit int64, sealed, exists bool, next uint64) {
	i := sort.Search(len(b.segs), func(i int) bool { return b.segs[i].base >= base })
	if i < len(b.segs) && b.segs[i].base == base {
		return b.segs[i].size, i < len(b.segs)-1, true, 0
	}
	if i == len(b.segs) {
		i-- // cannot happen: the active segment is the newest
	}
	return 0, false, false, b.segs[i].base
}

// read collects records without waiting. It stops at a segment boundary,
// before a corrupt region, and where going on would move bytes already
// handed out in this batch.
func (b *Buffer) read(max, maxBytes int) ([]Record, error) {
	b.recs = b.recs[:0]
	size := 0
	missing := 0
	for {
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			return nil, ErrClosed
		}
		limit, sealed, exists, next := b.segState(b.rd.seg)
		gen, active := b.segGen, b.segs[len(b.segs)-1].base
		b.mu.Unlock()
		if b.rd.f != nil && b.rd.gen != gen && b.rd.seg == active {
			// The active segment was made again under its name (it was
			// empty when its directory was removed): read the new file.
			b.rd.reset(Position{Seg: b.rd.seg, Off: b.rd.s.off})
		}
		if !exists {
			b.rd.reset(Position{Seg: next})
			continue
		}
		if b.rd.f == nil {
			f, err := b.openSegment(b.rd.seg)
			if errors.Is(err, fs.ErrNotExist) && missing < 3 {
				// Confirmed and removed meanwhile (segState moves on),
				// or removed from under the buffer: lost (skipped and
				// counted), unless it is the active one, which the next
				// try reads through its held descriptor (removed.go).
				if missing++; missing > 1 && b.segmentLost(b.rd.seg, b.rd.s.off) {
					missing = 0
				}
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("diskbuf: open segment for reading: %w", err)
			}
			b.rd.f, b.rd.gen = f, gen
			b.rd.s.init(f, b.rd.s.off)
		}
		b.rd.s.limit = limit
		for len(b.recs) < max {
			p, end, st, err := b.rd.s.next(len(b.recs) == 0)
			if err != nil {
				if len(b.recs) > 0 {
					return b.deliver(), nil
				}
				return nil, fmt.Errorf("diskbuf: read %s: %w", segName(b.rd.seg), err)
			}
			switch st {
			case scanRecord:
				if len(b.recs) > 0 && maxBytes > 0 && size+len(p) > maxBytes {
					return b.deliver(), nil
				}
				b.rd.s.consume()
				b.rdN++
				b.recs = append(b.recs, Record{Data: p, Pos: Position{Seg: b.rd.seg, Off: end, n: b.rdN}})
				size += len(p)
				continue
			case scanCorrupt:
				if len(b.recs) > 0 {
					return b.deliver(), nil
				}
				b.corrupt.Add(1)
				if err := b.rd.s.resync(); err != nil {
					return nil, fmt.Errorf("diskbuf: read %s: %w", segName(b.rd.seg), err)
				}
				continue
			case scanWouldMove:
				return b.deliver(), nil
			case scanEnd:
				if !sealed || len(b.recs) > 0 {
					return b.deliver(), nil
				}
				b.mu.Lock()
				i := sort.Search(len(b.segs), func(i int) bool { return b.segs[i].base > b.rd.seg })
				next = b.segs[min(i, len(b.segs)-1)].base // sealed: i is in range
				b.mu.Unlock()
				b.rd.reset(Position{Seg: next})
			}
			break
		}
		if len(b.recs) == max {
			return b.deliver(), nil
		}
	}
}

// deliver records the batch as handed out and returns it.
func (b *Buffer) deliver() []Record {
	if len(b.recs) > 0 {
		b.mu.Lock()
		b.deliv = b.recs[len(b.recs)-1].Pos
		b.mu.Unlock()
	}
	return b.recs
}
