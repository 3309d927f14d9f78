package conf

import "time"

// Duration is a time.Duration written as a Go duration string ("10ms", "5s").
type Duration struct{ time.Duration }

// Size is a byte count written as an integer or with a unit ("64KiB",
// "1MiB", "512B"; KB/MB are decimal, KiB/MiB binary).
type Size int64
