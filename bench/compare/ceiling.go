package compare

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// CeilingSearch looks for the highest fixed offered UDP rate a relay
// passes without loss, one bounded run per step: it doubles the rate from
// Start while steps are lossless, then bisects between the highest
// lossless and the lowest lossy step until they are at most Resolution
// apart. Each step is bounded in time by the scenario's duration and the
// receiver's drain (at most 60 s); the search by MaxSteps and Max.
type CeilingSearch struct {
	// Start is the first step's rate in msg/s.
	Start float64
	// Resolution: the search ends when the lossless and the lossy rate
	// are at most this far apart.
	Resolution float64
	// Max is the highest rate tried.
	Max float64
	// MaxSteps bounds the number of steps.
	MaxSteps int
}

// CeilingStep is one step of the search.
type CeilingStep struct {
	// Rate is the step's target offered rate; Offered what the generator
	// got out (msg/s).
	Rate    float64 `json:"rate"`
	Offered float64 `json:"offered_rate"`
	// Lost and Unstamped are the receiver's counts, LossPct the loss.
	Lost      uint64  `json:"lost"`
	Unstamped uint64  `json:"unstamped"`
	LossPct   float64 `json:"loss_pct"`
	// Err is the run's error, if any.
	Err string `json:"error,omitempty"`
}

// Lossless reports whether the step lost nothing and was offered at least
// 95% of its rate (a starved generator proves nothing about the relay).
func (s CeilingStep) Lossless() bool {
	return s.Err == "" && s.Lost == 0 && s.Unstamped == 0 && s.Offered >= 0.95*s.Rate
}

// bracket is the highest lossless step's rate (0: none) and the lowest
// step above it that was not lossless (nil: none).
func bracket(done []CeilingStep) (float64, *CeilingStep) {
	lo := 0.0
	for _, s := range done {
		if s.Lossless() && s.Rate > lo {
			lo = s.Rate
		}
	}
	var hi *CeilingStep
	for i, s := range done {
		if !s.Lossless() && s.Rate > lo && (hi == nil || s.Rate < hi.Rate) {
			hi = &done[i]
		}
	}
	return lo, hi
}

// Next is the rate of the step after done, or false when the search is
// over: the bracket is narrow enough, the lowest failing step failed with
// an error, or the bounds are met. A step the generator could not offer
// (starved: below 95% of its rate, with no loss) bounds the search from
// above as a lossy one does, so the search goes on below it: before, it
// ended there, and on a box where the generator paces 366k but not 400k
// a relay lossless at 300k was reported at its last doubling, 200k.
func (c CeilingSearch) Next(done []CeilingStep) (float64, bool) {
	if c.MaxSteps <= 0 || c.Start <= 0 || len(done) >= c.MaxSteps {
		return 0, false
	}
	if len(done) == 0 {
		return min(c.Start, c.Max), true
	}
	lo, hi := bracket(done)
	var next float64
	switch {
	case hi == nil:
		if lo >= c.Max {
			return 0, false
		}
		next = min(2*lo, c.Max)
	case hi.Err != "":
		return 0, false // nothing to learn above lo
	case hi.Rate-lo <= c.Resolution:
		return 0, false
	default:
		next = (lo + hi.Rate) / 2
	}
	// Round to a thousand so the steps read well.
	next = float64(int64(next/1000)) * 1000
	for _, s := range done {
		if s.Rate == next {
			return 0, false
		}
	}
	return next, next > 0
}

// Ceiling is a relay's search outcome.
type Ceiling struct {
	// Lossless is the highest step rate with zero loss (0: none).
	Lossless float64 `json:"lossless_rate"`
	// Next is the lowest step above it (the first that lost, failed or
	// was starved); nil when the search ran out of steps or reached Max.
	Next *CeilingStep `json:"next,omitempty"`
	// Bound says why the search ended: "loss" (Next lost messages),
	// "error", "generator" (the generator could not offer Next's rate:
	// the ceiling is at least Lossless), or "limit" (MaxSteps or Max
	// reached with no lossy step).
	Bound string        `json:"bound"`
	Steps []CeilingStep `json:"steps"`
}

// CeilingOf sums up a finished search.
func CeilingOf(steps []CeilingStep) Ceiling {
	lo, hi := bracket(steps)
	c := Ceiling{Lossless: lo, Steps: steps, Bound: "limit"}
	if hi != nil {
		n := *hi
		c.Next = &n
		switch {
		case n.Err != "":
			c.Bound = "error"
		case n.Lost > 0 || n.Unstamped > 0:
			c.Bound = "loss"
		default:
			c.Bound = "generator"
		}
	}
	return c
}

// runCeiling runs the search for one relay: every step is one UDP run at
// a fixed rate (a starved step is retried up to twice). The row's runs are
// the steps' runs; its median is the last lossless step's run.
func runCeiling(ctx context.Context, o Options, sc Scenario, rl *Relay, dir, label string) (Row, Ceiling) {
	row := Row{Relay: rl.Name}
	search := CeilingSearch{Start: o.CeilingStart, Resolution: o.CeilingStep, Max: o.CeilingMax, MaxSteps: o.CeilingSteps}
	var steps []CeilingStep
	var best Run
	for ctx.Err() == nil {
		r, ok := search.Next(steps)
		if !ok {
			break
		}
		step := sc
		step.Kind, step.Rate = "udp", r
		var run Run
		const tries = 3
		for try := 0; try < tries && ctx.Err() == nil; try++ {
			d := filepath.Join(dir, fmt.Sprintf("step%d-%d", len(steps), try))
			os.MkdirAll(d, 0o755)
			run = runOnce(ctx, o, step, rl, d, fmt.Sprintf("%s %s", label, rate(r)))
			os.RemoveAll(d)
			if run.Err != "" || run.Offered >= 0.95*r || try == tries-1 {
				break
			}
			fmt.Fprintf(o.Log, "%-8s %-10s step %s: generator starved (offered %.0f), rerun\n", sc.ID, rl.Name, rate(r), run.Offered)
		}
		st := CeilingStep{Rate: r, Offered: run.Offered, Lost: run.Lost, Unstamped: run.Unstamped, LossPct: run.LossPct, Err: run.Err}
		steps = append(steps, st)
		row.Runs = append(row.Runs, run)
		if st.Lossless() {
			best = run
		}
		fmt.Fprintf(o.Log, "%-8s %-10s step %s: offered %s, %s\n", sc.ID, rl.Name, rate(r), rate(run.Offered), run.summary("udp"))
	}
	row.Median = best
	return row, CeilingOf(steps)
}

// ceilingTable writes one line per relay: the lossless ceiling and the
// step after it.
func ceilingTable(w interface{ Write([]byte) (int, error) }, s ScenarioResult) {
	fmt.Fprintln(w, "| relay | highest lossless rate | next step: offered | loss | ended by | steps | relay CPU s/M at ceiling | others' CPU |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---|---:|---:|---:|")
	for _, row := range s.Rows {
		if row.Skipped != "" {
			fmt.Fprintf(w, "| %s | skipped: %s | | | | | | |\n", row.Relay, oneLine(row.Skipped))
			continue
		}
		c := row.Ceiling
		if c == nil {
			continue
		}
		lossless, next, loss := "none", "-", "-"
		if c.Lossless > 0 {
			lossless = rate(c.Lossless)
		}
		if c.Next != nil {
			next = fmt.Sprintf("%s (target %s)", rate(c.Next.Offered), rate(c.Next.Rate))
			loss = fmt.Sprintf("%.3f%%", c.Next.LossPct)
			if c.Next.Err != "" {
				loss = "error: " + oneLine(c.Next.Err)
			}
		}
		busy := 0.0
		for _, r := range row.Runs {
			busy = max(busy, r.OthersBusy)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %d | %.2f | up to %.0f%% |\n", row.Relay, lossless, next, loss, c.Bound, len(c.Steps), row.Median.CPUPerM, 100*busy)
	}
}

// defaultCeiling fills the search bounds.
func (o *Options) defaultCeiling() {
	if o.CeilingStart <= 0 {
		o.CeilingStart = 100000
	}
	if o.CeilingStep <= 0 {
		o.CeilingStep = 25000
	}
	if o.CeilingMax <= 0 {
		o.CeilingMax = 2000000
	}
	if o.CeilingSteps <= 0 {
		o.CeilingSteps = 10
	}
	if o.CeilingConns <= 0 {
		o.CeilingConns = 2
	}
}
