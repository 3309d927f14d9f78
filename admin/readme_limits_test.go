package admin

import (
	"testing"
	"time"
)

// TestREADMELimits pins the admin listener's limits to the figures
// README's Security section states (a request header of 64 KiB and 5 s,
// idle keep-alive closed after a minute, 16 scrapes and 16 status
// requests at once, 256 connections). The behaviour tests (idle_test.go,
// status_test.go, maxconn_test.go, test/e2e TestAdminHeaderBounds) use
// these constants; this is what breaks when one changes and the README
// does not.
func TestREADMELimits(t *testing.T) {
	for _, c := range []struct {
		what      string
		got, want int64
	}{
		{"idle keep-alive timeout", int64(adminIdleTimeout), int64(time.Minute)},
		{"request header bytes", adminMaxHeaderBytes, 64 << 10},
		{"/metrics scrapes at once", adminMaxScrapesInFlight, 16},
		{"/api/status requests at once", statusMaxInFlight, 16},
		{"connections", adminMaxConns, 256},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, README says %d: change both", c.what, c.got, c.want)
		}
	}
}
