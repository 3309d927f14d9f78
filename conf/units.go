package conf

import (
	"encoding"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Duration is a time.Duration written as a Go duration string ("10ms", "5s").
//
// It implements encoding.TextUnmarshaler and toml.Unmarshaler. A bare TOML
// integer is rejected unless it is 0 (Go durations need a unit).
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration string. Negative durations are
// rejected: no wharf setting means "in the past".
func (d *Duration) UnmarshalText(text []byte) error {
	s := strings.TrimSpace(string(text))
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q: want a Go duration such as \"10ms\", \"5s\" or \"1m30s\"", string(text))
	}
	if v < 0 {
		return fmt.Errorf("invalid duration %q: must not be negative", string(text))
	}
	d.Duration = v
	return nil
}

// UnmarshalTOML lets BurntSushi/toml hand over the raw TOML value, so a
// bare number gets an error that says what is missing.
func (d *Duration) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case string:
		return d.UnmarshalText([]byte(x))
	case int64:
		if x == 0 {
			d.Duration = 0
			return nil
		}
		return fmt.Errorf("invalid duration %d: a number needs a unit; write it as a string such as \"%ds\" or \"%dms\"", x, x, x)
	default:
		return fmt.Errorf("invalid duration %v: want a string such as \"10ms\" or \"5s\"", v)
	}
}

// MarshalText writes the duration the way UnmarshalText reads it.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// String is time.Duration's form ("10ms", "1m0s").
func (d Duration) String() string { return d.Duration.String() }

// Size is a byte count written as an integer or with a unit ("64KiB",
// "1MiB", "512B"; KB/MB are decimal, KiB/MiB binary).
//
// It implements encoding.TextUnmarshaler and toml.Unmarshaler, so
// `queue_bytes = 65536` and `queue_bytes = "64KiB"` both work.
type Size int64

// Size units. The decimal ones (KB, MB, GB) are powers of 1000, the
// binary ones (KiB, MiB, GiB) powers of 1024, as in IEC 80000-13.
const (
	B   Size = 1
	KB  Size = 1000
	MB  Size = 1000 * KB
	GB  Size = 1000 * MB
	KiB Size = 1 << 10
	MiB Size = 1 << 20
	GiB Size = 1 << 30
)

// sizeUnits are the accepted suffixes, case as written, largest first:
// String picks the largest unit that divides a size exactly.
var sizeUnits = []struct {
	name string
	mult Size
}{
	{"GiB", GiB}, {"GB", GB}, {"MiB", MiB}, {"MB", MB},
	{"KiB", KiB}, {"KB", KB}, {"B", B},
}

const sizeHint = "want an integer byte count with an optional unit B, KB, MB, GB, KiB, MiB or GiB, e.g. \"64KiB\""

// ParseSize parses "65536", "64KiB", "1 MB". Units are case-sensitive
// (kB or mib are rejected, so "mb" cannot be misread as millibits).
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 {
		if strings.HasPrefix(t, "-") {
			return 0, fmt.Errorf("invalid size %q: must not be negative", s)
		}
		return 0, fmt.Errorf("invalid size %q: %s", s, sizeHint)
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: number too large", s)
	}
	unit := strings.TrimSpace(t[i:])
	mult := Size(0)
	if unit == "" {
		mult = B
	}
	for _, u := range sizeUnits {
		if unit == u.name {
			mult = u.mult
		}
	}
	if mult == 0 {
		return 0, fmt.Errorf("invalid size %q: unknown unit %q; %s", s, unit, sizeHint)
	}
	if n > math.MaxInt64/int64(mult) {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return Size(n) * mult, nil
}

// UnmarshalText parses the size with ParseSize.
func (z *Size) UnmarshalText(text []byte) error {
	v, err := ParseSize(string(text))
	if err != nil {
		return err
	}
	*z = v
	return nil
}

// UnmarshalTOML lets BurntSushi/toml hand over the raw TOML value: an
// integer is a byte count, a string goes through ParseSize, and a float
// gets an error naming the value as written.
func (z *Size) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case string:
		return z.UnmarshalText([]byte(x))
	case int64:
		if x < 0 {
			return fmt.Errorf("invalid size %d: must not be negative", x)
		}
		*z = Size(x)
		return nil
	default:
		return fmt.Errorf("invalid size %v: %s", v, sizeHint)
	}
}

// MarshalText writes the size the way UnmarshalText reads it.
func (z Size) MarshalText() ([]byte, error) { return []byte(z.String()), nil }

// String uses the largest unit that divides the size exactly: 65536 is
// "64KiB", 64000 "64KB", 2000000000 "2GB", 100 "100B".
func (z Size) String() string {
	if z == 0 {
		return "0B"
	}
	for _, u := range sizeUnits {
		if z%u.mult == 0 {
			return strconv.FormatInt(int64(z/u.mult), 10) + u.name
		}
	}
	return strconv.FormatInt(int64(z), 10) + "B"
}

var (
	_ encoding.TextUnmarshaler = (*Size)(nil)
	_ encoding.TextMarshaler   = Size(0)
	_ toml.Unmarshaler         = (*Size)(nil)
	_ encoding.TextUnmarshaler = (*Duration)(nil)
	_ encoding.TextMarshaler   = Duration{}
	_ toml.Unmarshaler         = (*Duration)(nil)
)
