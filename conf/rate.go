package conf

import (
	"encoding"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Rate is a message rate written "N/s" or "N/m" (the rate_limit keys):
// N messages per second or per minute, N a positive integer. The zero
// Rate means no limit.
//
// It implements encoding.TextUnmarshaler and toml.Unmarshaler; a bare
// TOML number other than 0 (no limit) is rejected because it does not say
// per what.
type Rate struct {
	// N is the number of messages per Per.
	N int64
	// Per is time.Second or time.Minute; 0 for the zero Rate.
	Per time.Duration
}

// MaxRatePerSecond bounds a rate: 10 million messages per second is ten
// times what one wharf process relays, so a higher "limit" limits nothing
// and is more likely a typo.
const MaxRatePerSecond = 10_000_000

const rateHint = "want messages per second or per minute, e.g. \"20000/s\" or \"600/m\""

// ParseRate parses "20000/s" and "600/m". Spaces around the parts are
// allowed; the unit is case-sensitive.
func ParseRate(s string) (Rate, error) {
	num, unit, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return Rate{}, fmt.Errorf("invalid rate %q: %s", s, rateHint)
	}
	num, unit = strings.TrimSpace(num), strings.TrimSpace(unit)
	var per time.Duration
	switch unit {
	case "s":
		per = time.Second
	case "m":
		per = time.Minute
	default:
		return Rate{}, fmt.Errorf("invalid rate %q: unknown unit %q; %s", s, unit, rateHint)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return Rate{}, fmt.Errorf("invalid rate %q: %q is not a whole number; %s", s, num, rateHint)
	}
	if n <= 0 {
		return Rate{}, fmt.Errorf("invalid rate %q: must be positive (leave the key out for no limit)", s)
	}
	r := Rate{N: n, Per: per}
	if r.PerSecond() > MaxRatePerSecond {
		return Rate{}, fmt.Errorf("invalid rate %q: above %d/s, which limits nothing (leave the key out for no limit)", s, MaxRatePerSecond)
	}
	return r, nil
}

// IsZero reports whether r is the zero Rate (no limit).
func (r Rate) IsZero() bool { return r.N == 0 }

// PerSecond is the rate in messages per second (0 for no limit).
func (r Rate) PerSecond() float64 {
	if r.N == 0 {
		return 0
	}
	return float64(r.N) / r.Per.Seconds()
}

// Interval is the time one message costs: Per/N (0 for no limit).
func (r Rate) Interval() time.Duration {
	if r.N == 0 {
		return 0
	}
	return r.Per / time.Duration(r.N)
}

// String writes the rate the way ParseRate reads it ("" for no limit).
func (r Rate) String() string {
	if r.N == 0 {
		return ""
	}
	unit := "s"
	if r.Per == time.Minute {
		unit = "m"
	}
	return strconv.FormatInt(r.N, 10) + "/" + unit
}

// UnmarshalText parses the rate with ParseRate.
func (r *Rate) UnmarshalText(text []byte) error {
	v, err := ParseRate(string(text))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// UnmarshalTOML lets BurntSushi/toml hand over the raw TOML value, so a
// bare number gets an error that says what is missing.
func (r *Rate) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case string:
		return r.UnmarshalText([]byte(x))
	case int64:
		if x == 0 { // what Parse masks a bad value to: no limit
			*r = Rate{}
			return nil
		}
		return fmt.Errorf("invalid rate %d: a number needs a unit; write it as a string such as \"%d/s\" or \"%d/m\"", x, x, x)
	default:
		return fmt.Errorf("invalid rate %v: %s", v, rateHint)
	}
}

// MarshalText writes the rate the way UnmarshalText reads it.
func (r Rate) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

var (
	_ encoding.TextUnmarshaler = (*Rate)(nil)
	_ encoding.TextMarshaler   = Rate{}
	_ toml.Unmarshaler         = (*Rate)(nil)
)

// rateLimits checks the rate keys of a syslog frontend (after defaults).
func (v *validator) rateLimits(p string, f *Frontend) {
	for _, k := range []struct {
		rateKey, burstKey string
		rate              Rate
		burst             int
	}{
		{"rate_limit", "rate_burst", f.RateLimit, f.RateBurst},
		{"rate_limit_per_ip", "rate_burst_per_ip", f.RateLimitPerIP, f.RateBurstPerIP},
	} {
		switch {
		case k.rate.IsZero() && k.burst != 0:
			v.errAt(p+"."+k.burstKey, "%s needs %s (e.g. %s = \"%d/s\")", k.burstKey, k.rateKey, k.rateKey, max(k.burst, 1))
		case k.burst < 0 || k.burst > MaxRateBurst:
			v.errAt(p+"."+k.burstKey, "%d out of range (1-%d messages)", k.burst, MaxRateBurst)
		}
	}
	if !f.RateLimit.IsZero() && f.RateLimitPerIP.PerSecond() > f.RateLimit.PerSecond() {
		v.warn(p+".rate_limit_per_ip", "%s is above rate_limit %s: the bind's limit is always reached first", f.RateLimitPerIP, f.RateLimit)
	}
}
