package compare

import "testing"

// The ceiling search doubles while steps are lossless, then bisects
// between the highest lossless and the lowest lossy (or starved) rate; it
// stops at an error, the resolution or a bound.
func TestCeilingSearch(t *testing.T) {
	c := CeilingSearch{Start: 100000, Resolution: 25000, Max: 1000000, MaxSteps: 8}
	ok := func(r float64) CeilingStep { return CeilingStep{Rate: r, Offered: r} }
	lossy := func(r float64) CeilingStep { return CeilingStep{Rate: r, Offered: r, Lost: 10, LossPct: 0.5} }
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
	f(nil, 100000, true, 0, "")
	f([]CeilingStep{ok(100000)}, 200000, true, 0, "")
	f([]CeilingStep{ok(100000), ok(200000), lossy(400000)}, 300000, true, 0, "")
	f([]CeilingStep{ok(100000), ok(200000), lossy(400000), lossy(300000)}, 250000, true, 0, "")
	f([]CeilingStep{ok(100000), ok(200000), lossy(400000), lossy(300000), ok(250000)}, 275000, true, 0, "")
	f([]CeilingStep{ok(100000), ok(200000), lossy(400000), lossy(300000), ok(250000), lossy(275000)}, 0, false, 250000, "loss")
	// Loss at the first step: bisect down towards 0.
	f([]CeilingStep{lossy(100000)}, 50000, true, 0, "")
	f([]CeilingStep{lossy(100000), lossy(50000), lossy(25000)}, 0, false, 0, "loss")
	// Unstamped messages count as loss.
	f([]CeilingStep{ok(100000), {Rate: 200000, Offered: 200000, Unstamped: 1}}, 150000, true, 0, "")
	// A step the generator could not offer bounds the search from above
	// like a lossy one (the search used to end there); at the resolution
	// the ceiling is reported as bound by the generator.
	starved := func(r float64) CeilingStep { return CeilingStep{Rate: r, Offered: 0.9 * r} }
	f([]CeilingStep{ok(100000), starved(200000)}, 150000, true, 0, "")
	f([]CeilingStep{ok(100000), ok(200000), starved(400000)}, 300000, true, 0, "")
	f([]CeilingStep{ok(100000), ok(200000), starved(400000), ok(300000)}, 350000, true, 0, "")
	f([]CeilingStep{ok(100000), ok(200000), starved(400000), ok(300000), starved(350000), ok(325000)}, 0, false, 325000, "generator")
	f([]CeilingStep{ok(100000), ok(200000), starved(400000), ok(300000), lossy(350000), ok(325000)}, 0, false, 325000, "loss")
	// An error ends the search: nothing above is known.
	f([]CeilingStep{ok(100000), {Rate: 200000, Err: "boom"}}, 0, false, 100000, "error")
	// Bounds: Max and MaxSteps.
	f([]CeilingStep{ok(100000), ok(200000), ok(400000), ok(800000)}, 1000000, true, 0, "")
	f([]CeilingStep{ok(100000), ok(200000), ok(400000), ok(800000), ok(1000000)}, 0, false, 1000000, "limit")
	c.MaxSteps = 2
	f([]CeilingStep{ok(100000), lossy(200000)}, 0, false, 100000, "loss")
	// The step above the ceiling is reported with its loss.
	s := CeilingOf([]CeilingStep{ok(100000), lossy(200000), {Rate: 150000, Offered: 149000, Lost: 7, LossPct: 2.5}})
	if s.Lossless != 100000 || s.Next == nil || s.Next.Rate != 150000 || s.Next.LossPct != 2.5 {
		t.Errorf("CeilingOf = %v, next %+v; want 100000 and the 150000 step with 2.5%% loss", s.Lossless, s.Next)
	}
	if _, more := (CeilingSearch{}).Next(nil); more {
		t.Error("a search with no steps allowed must not start")
	}
}

// The default plan (make bench) holds the ceiling search and TLS ingest;
// naming a kind plans it alone.
func TestPlanCeiling(t *testing.T) {
	kinds := map[string]bool{}
	for _, s := range (Options{}).Plan() {
		kinds[s.Kind] = true
	}
	if !kinds["udpceiling"] || !kinds["tls"] {
		t.Fatalf("default plan has kinds %v, want udpceiling and tls among them", kinds)
	}
	p := (Options{Scenarios: []string{"udpceiling"}}).Plan()
	if len(p) != 1 || p[0].Kind != "udpceiling" || p[0].Conns != 2 {
		t.Fatalf("plan = %+v, want one udpceiling scenario over 2 sockets", p)
	}
}
