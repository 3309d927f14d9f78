package compare

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// CeilingSearch steps a fixed offered UDP rate up, one bounded run per
// step, until a step loses messages, and reports the last lossless step.
// Each step is bounded in time by the scenario's duration and the
// receiver's drain (at most 60 s); the search by MaxSteps and Max.
type CeilingSearch struct {
	// Start is the first step's rate in msg/s.
	Start float64
	// Step is added to the rate after every lossless step.
	Step float64
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

// Starved reports a step whose generator fell short of the rate.
func (s CeilingStep) Starved() bool { return s.Err == "" && s.Offered < 0.95*s.Rate }

// Next is the rate of the step after done, or false when the search is
// over: the last step lost, failed or was starved, or the bounds are met.
func (c CeilingSearch) Next(done []CeilingStep) (float64, bool) {
	if len(done) == 0 {
		return c.Start, c.MaxSteps > 0 && c.Start > 0
	}
	if len(done) >= c.MaxSteps {
		return 0, false
	}
	last := done[len(done)-1]
	if !last.Lossless() {
		return 0, false
	}
	next := last.Rate + c.Step
	if c.Step <= 0 || next > c.Max {
		return 0, false
	}
	return next, true
}

// Ceiling is a relay's search outcome.
type Ceiling struct {
	// Lossless is the highest step rate with zero loss (0: none).
	Lossless float64 `json:"lossless_rate"`
	// Next is the step after it (the first that lost, failed or was
	// starved); nil when the search ran out of steps or reached Max.
	Next *CeilingStep `json:"next,omitempty"`
	// Bound says why the search ended: "loss", "error", "generator"
	// (the generator could not offer the rate: the ceiling is at least
	// Lossless), or "limit" (MaxSteps or Max reached).
	Bound string        `json:"bound"`
	Steps []CeilingStep `json:"steps"`
}

// CeilingOf sums up a finished search.
func CeilingOf(steps []CeilingStep) Ceiling {
	c := Ceiling{Steps: steps, Bound: "limit"}
	for i, s := range steps {
		if s.Lossless() {
			c.Lossless = s.Rate
			continue
		}
		c.Next = &steps[i]
		switch {
		case s.Err != "":
			c.Bound = "error"
		case s.Lost > 0 || s.Unstamped > 0:
			c.Bound = "loss"
		default:
			c.Bound = "generator"
		}
		break
	}
	return c
}

// runCeiling runs the search for one relay: every step is one UDP run at
// a fixed rate (a starved step is retried up to twice). The row's runs are
// the steps' runs; its median is the last lossless step's run.
func runCeiling(ctx context.Context, o Options, sc Scenario, rl *Relay, dir, label string) (Row, Ceiling) {
	row := Row{Relay: rl.Name}
	search := CeilingSearch{Start: o.CeilingStart, Step: o.CeilingStep, Max: o.CeilingMax, MaxSteps: o.CeilingSteps}
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
		for try := 0; try < 3 && ctx.Err() == nil; try++ {
			d := filepath.Join(dir, fmt.Sprintf("step%d-%d", len(steps), try))
			os.MkdirAll(d, 0o755)
			run = runOnce(ctx, o, step, rl, d, fmt.Sprintf("%s %s", label, rate(r)))
			os.RemoveAll(d)
			if run.Err != "" || run.Offered >= 0.95*r {
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
		o.CeilingStart = 300000
	}
	if o.CeilingStep <= 0 {
		o.CeilingStep = 100000
	}
	if o.CeilingMax <= 0 {
		o.CeilingMax = 2000000
	}
	if o.CeilingSteps <= 0 {
		o.CeilingSteps = 12
	}
	if o.CeilingConns <= 0 {
		o.CeilingConns = 2
	}
}
