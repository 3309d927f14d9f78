// Package logthrottle keeps a warning that can repeat thousands of times a
// second (accept failing on EMFILE under a connection flood) to one log
// line per interval, with how many it stood for.
package logthrottle

import (
	"sync/atomic"
	"time"
)

// Throttle is one throttled warning. The zero value is ready; it is safe
// for concurrent use.
type Throttle struct {
	last atomic.Int64 // when a line was last let through (Unix ns)
	held atomic.Int64 // occurrences since then
}

// Allow counts one occurrence and reports whether to log it now: the
// first one, then at most one per interval. n is how many occurrences
// the line stands for (this one and those held back since the last).
func (t *Throttle) Allow(now time.Time, interval time.Duration) (ok bool, n int64) {
	n = t.held.Add(1)
	last := t.last.Load()
	if last != 0 && now.UnixNano()-last < int64(interval) {
		return false, n
	}
	if !t.last.CompareAndSwap(last, now.UnixNano()) {
		return false, n // another goroutine logs this round
	}
	t.held.Add(-n)
	return true, n
}
