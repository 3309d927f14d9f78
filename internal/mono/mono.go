// Package mono is nanoseconds on the monotonic clock since the process
// started: what timeouts, rate limits and drains measure with, so an NTP
// step or a VM resume that moves the wall clock neither closes every
// connection as idle nor holds senders until the wall clock catches up.
package mono

import "time"

var base = time.Now()

// Now is nanoseconds since the process started, on the monotonic clock.
func Now() int64 { return int64(time.Since(base)) }
