package conf

import (
	"strings"
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	f := func(in string, want Rate, wantErr string) {
		t.Helper()
		got, err := ParseRate(in)
		if wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Errorf("ParseRate(%q) error = %v, want it to say %q", in, err, wantErr)
			}
			return
		}
		if err != nil || got != want {
			t.Errorf("ParseRate(%q) = %+v, %v; want %+v", in, got, err, want)
		}
		if back, _ := ParseRate(got.String()); back != got {
			t.Errorf("%q does not round-trip through String (%q)", in, got.String())
		}
	}
	f("20000/s", Rate{20000, time.Second}, "")
	f(" 600 / m ", Rate{600, time.Minute}, "")
	f("1/m", Rate{1, time.Minute}, "")
	f("10000000/s", Rate{10_000_000, time.Second}, "")
	f("20000", Rate{}, "want messages per second or per minute")
	f("20000/h", Rate{}, `unknown unit "h"`)
	f("20000/S", Rate{}, `unknown unit "S"`)
	f("0/s", Rate{}, "must be positive")
	f("-5/s", Rate{}, "must be positive")
	f("1.5/s", Rate{}, "not a whole number")
	f("/s", Rate{}, "not a whole number")
	f("10000001/s", Rate{}, "limits nothing")
	f("99999999999999999999/s", Rate{}, "not a whole number")
}

func TestRateArithmetic(t *testing.T) {
	f := func(in string, perSecond float64, interval time.Duration, burst int) {
		t.Helper()
		r, err := ParseRate(in)
		if err != nil {
			t.Fatal(err)
		}
		if r.PerSecond() != perSecond || r.Interval() != interval || DefaultRateBurst(r) != burst {
			t.Errorf("%s: %v/s, interval %v, default burst %d; want %v/s, %v, %d", in, r.PerSecond(), r.Interval(), DefaultRateBurst(r), perSecond, interval, burst)
		}
	}
	f("20000/s", 20000, 50*time.Microsecond, 20000)
	f("90/m", 1.5, 666666666*time.Nanosecond, 2)
	f("1/m", 1.0/60, time.Minute, 1)
	if (Rate{}).Interval() != 0 || (Rate{}).PerSecond() != 0 || (Rate{}).String() != "" || !(Rate{}).IsZero() {
		t.Error("the zero Rate is not 'no limit'")
	}
}

// The per-IP limit above the bind's is legal but pointless: a warning.
func TestRateWarnings(t *testing.T) {
	c := &Config{
		Frontends: map[string]*Frontend{"edge": {
			Bind: []string{"udp://127.0.0.1:0"}, Sinks: []string{"out"},
			RateLimit: Rate{100, time.Second}, RateLimitPerIP: Rate{1000, time.Second},
		}},
		Sinks: map[string]*Sink{"out": {Type: "stdout"}},
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if fe := c.Frontends["edge"]; fe.RateBurst != 100 || fe.RateBurstPerIP != 1000 {
		t.Errorf("default bursts %d, %d; want 100, 1000", fe.RateBurst, fe.RateBurstPerIP)
	}
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "rate_limit_per_ip") {
		t.Errorf("warnings %q, want one about rate_limit_per_ip", c.Warnings)
	}
}
