package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestReloadFailedSays: what a failed reload says (answer, log line) and
// counts depends on whether the new config runs. Refused before anything
// changed (invalid, a build error, a bind the probe refused): the previous
// config runs. A bind that failed after its probe passed (the address
// taken in between, a race the e2e tests cannot reproduce at will; or its
// dead-letter file would not open, TestReloadPartialCounted in test/e2e):
// the new config runs without it, counted "partial".
func TestReloadFailedSays(t *testing.T) {
	applied := errApplied{errors.New("some binds could not be opened")}
	for _, c := range []struct {
		err  error
		want string
	}{
		{errors.New("new binds cannot be opened"), "the previous config keeps running"},
		{applied, "the new config is running"},
		{fmt.Errorf("reload: %w", applied), "the new config is running"},
	} {
		if got := reloadFailed(c.err); !strings.Contains(got, c.want) {
			t.Errorf("reloadFailed(%v) = %q, want it to say %q", c.err, got, c.want)
		}
	}
}
