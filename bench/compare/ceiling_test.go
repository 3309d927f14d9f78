package compare

import "testing"

// The ceiling search steps up while steps are lossless and stops at the
// first loss, error, starved generator or bound.
func TestCeilingSearch(t *testing.T) {
	c := CeilingSearch{Start: 100, Step: 50, Max: 300, MaxSteps: 4}
	ok := func(r float64) CeilingStep { return CeilingStep{Rate: r, Offered: r} }
	f := func(done []CeilingStep, want float64, wantOK bool, wantLossless float64, wantBound string) {
		t.Helper()
		got, more := c.Next(done)
		if got != want || more != wantOK {
			t.Errorf("Next(%v) = %v, %v; want %v, %v", done, got, more, want, wantOK)
		}
		if !more {
			s := CeilingOf(done)
			if s.Lossless != wantLossless || s.Bound != wantBound {
				t.Errorf("CeilingOf(%v) = %v, %q; want %v, %q", done, s.Lossless, s.Bound, wantLossless, wantBound)
			}
		}
	}
	f(nil, 100, true, 0, "")
	f([]CeilingStep{ok(100)}, 150, true, 0, "")
	f([]CeilingStep{ok(100), {Rate: 150, Offered: 150, Lost: 3, LossPct: 0.1}}, 0, false, 100, "loss")
	f([]CeilingStep{ok(100), {Rate: 150, Offered: 150, Unstamped: 1}}, 0, false, 100, "loss")
	f([]CeilingStep{ok(100), {Rate: 150, Offered: 100}}, 0, false, 100, "generator")
	f([]CeilingStep{{Rate: 100, Err: "boom"}}, 0, false, 0, "error")
	f([]CeilingStep{ok(100), ok(150), ok(200), ok(250)}, 0, false, 250, "limit") // MaxSteps
	c.MaxSteps = 10
	f([]CeilingStep{ok(100), ok(150), ok(200), ok(250), ok(300)}, 0, false, 300, "limit") // Max
	// The step after the ceiling is reported with its loss.
	s := CeilingOf([]CeilingStep{ok(100), {Rate: 150, Offered: 149, Lost: 7, LossPct: 2.5}})
	if s.Next == nil || s.Next.Rate != 150 || s.Next.LossPct != 2.5 {
		t.Errorf("Next step = %+v, want the 150 step with 2.5%% loss", s.Next)
	}
	if _, more := (CeilingSearch{}).Next(nil); more {
		t.Error("a search with no steps allowed must not start")
	}
}

// The plan holds the ceiling scenario only when asked for.
func TestPlanCeiling(t *testing.T) {
	for _, s := range (Options{}).Plan() {
		if s.Kind == "udpceiling" {
			t.Fatal("udpceiling in the default plan? want it only when named")
		}
	}
	p := (Options{Scenarios: []string{"udpceiling"}}).Plan()
	if len(p) != 1 || p[0].Kind != "udpceiling" || p[0].Conns != 2 {
		t.Fatalf("plan = %+v, want one udpceiling scenario over 2 sockets", p)
	}
}
