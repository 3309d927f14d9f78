package diskbuf

import (
	"fmt"
	"os"
)

// Report is what Verify found in a buffer directory.
type Report struct {
	// Segments, Records and Bytes count segment files, valid records and
	// the files' bytes.
	Segments int
	Records  uint64
	Bytes    int64
	// Pending counts valid records at or after the checkpoint: what the
	// next Open would hand out.
	Pending uint64
	// CorruptRecords counts corrupt regions (as the reader would count
	// them) outside the last segment's tail.
	CorruptRecords uint64
	// TornTailBytes is the length of the invalid tail of the last segment,
	// which the next Open truncates.
	TornTailBytes int64
	// Ack is the checkpoint; AckValid is false when the ack file is
	// missing or corrupt (the next Open replays everything).
	Ack      Position
	AckValid bool
}

// OK reports whether the buffer has no corruption and no torn tail.
func (r Report) OK() bool { return r.CorruptRecords == 0 && r.TornTailBytes == 0 }

// Verify checks the buffer in dir without opening it for writing:
// it streams through every segment (memory bounded like the reader) and
// counts records, corrupt regions and the torn tail. Run it on a buffer
// no process has open: a segment being written may look torn.
func Verify(dir string) (Report, error) { return VerifyProgress(dir, nil) }

// VerifyProgress is Verify calling progress (when not nil) before each
// segment with the bytes checked so far and the total, for a progress
// display on large buffers.
func VerifyProgress(dir string, progress func(done, total int64)) (Report, error) {
	var rep Report
	segs, err := listSegments(dir)
	if err != nil {
		return rep, err
	}
	var total int64
	for _, seg := range segs {
		total += seg.size
	}
	rep.Ack, rep.AckValid, _, err = readCheckpoint(dir)
	if err != nil {
		return rep, err
	}
	var s scanner
	for i, seg := range segs {
		if progress != nil {
			progress(rep.Bytes, total)
		}
		rep.Segments++
		rep.Bytes += seg.size
		f, err := os.Open(fmt.Sprintf("%s/%s", dir, segName(seg.base)))
		if err != nil {
			return rep, fmt.Errorf("diskbuf: verify: %w", err)
		}
		s.init(f, 0)
		s.limit = seg.size
		var good int64
		var corrupt, sinceGood uint64
		for {
			_, end, st, err := s.next(true)
			if err != nil {
				f.Close()
				return rep, fmt.Errorf("diskbuf: verify %s: %w", segName(seg.base), err)
			}
			if st == scanEnd {
				break
			}
			if st == scanCorrupt {
				sinceGood++
				if err := s.resync(); err != nil {
					f.Close()
					return rep, fmt.Errorf("diskbuf: verify %s: %w", segName(seg.base), err)
				}
				continue
			}
			rep.Records++
			pending := !rep.AckValid || seg.base > rep.Ack.Seg || (seg.base == rep.Ack.Seg && end > rep.Ack.Off)
			if pending {
				rep.Pending++
			}
			good = end
			corrupt += sinceGood
			sinceGood = 0
			s.consume()
		}
		f.Close()
		last := i == len(segs)-1
		if last && good < seg.size {
			rep.TornTailBytes = seg.size - good // what Open truncates
		} else {
			corrupt += sinceGood
		}
		rep.CorruptRecords += corrupt
	}
	return rep, nil
}
