package compare

import (
	"context"
	"runtime"
	"time"
)

// Settle waits until the machine is quiet before a comparison: less than
// busy (a share of all CPUs, 0.1 for 10%) used over one window, read from
// /proc/stat as each run's "others' CPU" is (machineBusy). A Kafka broker
// just started keeps a CPU busy for a while (the JVM warming up, KRaft's
// first writes), and the first scenario's runs shared the box with it
// ("others' CPU" 20% in wharf's TCP runs on 2026-12-06). It gives up
// after max, or when ctx ends, and reports whether the machine settled.
func Settle(ctx context.Context, busy float64, window, max time.Duration) bool {
	return settle(ctx, busy, window, max, machineBusy, runtime.NumCPU())
}

// settle is Settle over read, the machine's busy CPU time so far, on cpus
// CPUs.
func settle(ctx context.Context, busy float64, window, max time.Duration, read func() time.Duration, cpus int) bool {
	deadline := time.Now().Add(max)
	for {
		b0, t0 := read(), time.Now()
		select {
		case <-ctx.Done():
			return false
		case <-time.After(window):
		}
		if used := read() - b0; used.Seconds() < busy*time.Since(t0).Seconds()*float64(cpus) {
			return true
		}
		if !time.Now().Before(deadline) {
			return false
		}
	}
}
