package testenv

import (
	"testing"
	"time"
)

// EventuallyTimeout is how long Eventually waits: generous, because the
// suite runs on shared 2-core machines where a loaded scheduler can delay
// a goroutine by seconds. A passing test never waits for it.
const EventuallyTimeout = 10 * time.Second

// Eventually polls cond until it is true and fails the test (naming what
// it waited for) if it is not within EventuallyTimeout.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	EventuallyWithin(t, EventuallyTimeout, what, cond)
}

// EventuallyWithin is Eventually with its own timeout, for waits that
// are part of what the test asserts (a retry due within a second, say).
func EventuallyWithin(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Poll(d, cond) {
		t.Fatalf("timed out after %s waiting for %s", d, what)
	}
}

// Poll calls cond until it returns true or d has passed and reports
// whether it did, for a test that checks the outcome itself with a more
// detailed message (the frames it got against the frames it wanted, say).
// It polls every millisecond at first, then backs off to every 10 ms, so
// a condition that holds almost at once costs almost nothing. cond is
// called at least once, and a last time after d has passed.
func Poll(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	pause := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pause)
		pause = min(2*pause, 10*time.Millisecond)
	}
	return true
}
