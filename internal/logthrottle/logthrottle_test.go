package logthrottle

import (
	"testing"
	"time"
)

func TestAllow(t *testing.T) {
	var th Throttle
	t0 := time.Unix(1000, 0)
	steps := []struct {
		at time.Duration
		ok bool
		n  int64
	}{
		{0, true, 1},                       // the first is logged
		{10 * time.Millisecond, false, 1},  // held back
		{500 * time.Millisecond, false, 2}, // held back
		{time.Second, true, 3},             // a second on: logged, standing for three
		{time.Second + 1, false, 1},
		{3 * time.Second, true, 2},
	}
	for i, s := range steps {
		ok, n := th.Allow(t0.Add(s.at), time.Second)
		if ok != s.ok || (ok && n != s.n) || (!ok && n != s.n) {
			t.Errorf("step %d (+%v): Allow = %v, %d; want %v, %d", i, s.at, ok, n, s.ok, s.n)
		}
	}
}
