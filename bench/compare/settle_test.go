package compare

import (
	"context"
	"testing"
	"time"
)

// settle returns as soon as a window is quiet, waits out busy ones, and
// gives up after max when the machine stays busy.
func TestSettle(t *testing.T) {
	const window = 20 * time.Millisecond
	for _, tc := range []struct {
		name   string
		busy   []float64 // share of the 2 CPUs used in each window; the last repeats
		want   bool
		checks int // reads of the busy time, at least
	}{
		{"quiet at once", []float64{0.02}, true, 2},
		{"busy, then quiet", []float64{0.5, 0.3, 0.05}, true, 6},
		{"busy throughout", []float64{0.5}, false, 4},
		{"just over the bound", []float64{0.12}, false, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The fake counter advances by each window's share of two
			// CPUs over the time that actually passed.
			var total time.Duration
			last := time.Now()
			reads, win := 0, 0
			read := func() time.Duration {
				now := time.Now()
				if reads%2 == 1 { // the end of a window
					share := tc.busy[min(win, len(tc.busy)-1)]
					total += time.Duration(share * 2 * float64(now.Sub(last)))
					win++
				}
				last = now
				reads++
				return total
			}
			got := settle(context.Background(), 0.1, window, 5*window, read, 2)
			if got != tc.want || reads < tc.checks {
				t.Errorf("settle = %v after %d reads, want %v after at least %d", got, reads, tc.want, tc.checks)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if settle(ctx, 0.1, time.Hour, time.Hour, func() time.Duration { return 0 }, 2) {
		t.Error("settle on a cancelled context reported the machine quiet")
	}
}
