package diskbuf

import (
	"context"
	"fmt"
)

// moveBatch bounds one step of MoveTo: records and payload bytes read
// from the source before they are appended to the destination.
const (
	moveBatch      = 512
	moveBatchBytes = 1 << 20
)

// MoveTo copies the records b holds unconfirmed into dst, oldest first,
// and confirms each in b only after dst has written it (and fsync'ed it
// under dst's Fsync "always"): at every moment a record is in at least one
// of the two buffers, so a crash in between gives a duplicate, never a
// loss. It is how a sink given a new buffer directory by a reload takes
// the old directory's records along.
//
// Nothing else may read b meanwhile (its reader is rewound first) nor
// append to it: MoveTo returns once b is empty. It stops early, with what
// it did not move still in b, when ctx is done, either buffer closes, or
// dst refuses a record (full under OnFull "drop_newest", or unwritable
// and not allowed to wait); under "block" it waits for dst's reader to
// make room. It returns how many records it moved; b's reader is left at
// the first record not moved.
func (b *Buffer) MoveTo(ctx context.Context, dst *Buffer) (uint64, error) {
	if b == dst {
		return 0, fmt.Errorf("diskbuf: move of %s into itself", b.dir)
	}
	b.Rewind()
	defer b.Rewind() // what was read and not moved comes again
	var moved uint64
	payloads := make([][]byte, 0, moveBatch)
	for {
		if err := ctx.Err(); err != nil {
			return moved, err
		}
		b.rmu.Lock()
		recs, err := b.read(moveBatch, moveBatchBytes)
		if err != nil || len(recs) == 0 {
			b.rmu.Unlock()
			return moved, err // empty: read does not wait
		}
		payloads = payloads[:0]
		for _, r := range recs {
			payloads = append(payloads, r.Data)
		}
		// recs alias b's reader buffer: append them before the next read.
		// Records dst does not take stay here: not dropped.
		n, aerr := dst.appendFunc(ctx, len(payloads), func(d []byte, i int) []byte { return append(d, payloads[i]...) }, false)
		var last Position
		if n > 0 {
			last = recs[n-1].Pos
		}
		b.rmu.Unlock()
		if n > 0 {
			if err := b.Ack(last); err != nil {
				return moved, err
			}
			moved += uint64(n)
		}
		if aerr != nil {
			return moved, aerr
		}
		if n < len(recs) {
			return moved, ErrFull
		}
	}
}
