package compare

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// WriteFiles writes results into dir as <date>.json and <date>.md, and
// the same table and chart as latest.md, latest.json and latest.svg. It
// returns the paths written.
func WriteFiles(r *Results, dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	stem := r.Date.Format("2006-01-02T1504Z")
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	var md strings.Builder
	Markdown(&md, r, "latest.svg")
	var svg strings.Builder
	SVG(&svg, r)
	files := map[string][]byte{
		stem + ".json": append(js, '\n'),
		stem + ".md":   []byte(md.String()),
		"latest.json":  append(js, '\n'),
		"latest.md":    []byte(md.String()),
		"latest.svg":   []byte(svg.String()),
	}
	var paths []string
	for _, name := range []string{stem + ".md", stem + ".json", "latest.md", "latest.json", "latest.svg"} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, files[name], 0o644); err != nil {
			return paths, err
		}
		paths = append(paths, p)
	}
	return paths, nil
}

func rate(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.0fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func dur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.0fµs", float64(d)/1e3)
}

func ratio(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", v)
}

// Markdown writes the results as markdown tables, one per scenario.
// chart, when set, is an image link placed under the heading.
func Markdown(w io.Writer, r *Results, chart string) {
	m := r.Machine
	fmt.Fprintf(w, "# wharf-bench compare, %s\n\n", r.Date.Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "Machine: %d cores, %s, kernel %s, %d MiB RAM. Generator, relay and receiver share the machine. "+
		"Median of %d runs per row, run in rounds (every relay once a round); %d B RFC5424 messages. Ratios are wharf's figure divided by the row's (>1: wharf ahead). "+
		"\"others' CPU\" is the share of the machine used by unrelated processes during the runs (noise). Method: bench/README.md.\n\n", m.Cores, m.CPU, m.Kernel, m.MemoryMB, r.Runs, r.Size)
	if r.Commit != "" {
		fmt.Fprintf(w, "Repository at %s", r.Commit)
		if !r.WharfBuilt.IsZero() {
			fmt.Fprintf(w, "; bin/wharf built %s", r.WharfBuilt.Format("2006-01-02 15:04:05 MST"))
		}
		fmt.Fprint(w, ".\n\n")
	}
	if chart != "" {
		fmt.Fprintf(w, "![chart](%s)\n\n", chart)
	}
	for _, s := range r.Scenarios {
		fmt.Fprintf(w, "## %s\n\n", s.Scenario.Title)
		switch s.Scenario.Kind {
		case "http":
			httpTable(w, s)
		case "h2":
			h2Table(w, s)
		case "tcpproxy":
			streamTable(w, s)
		case "udpceiling":
			ceilingTable(w, s)
		default:
			syslogTable(w, s)
		}
		fmt.Fprintln(w)
	}
	if len(r.UDPLossless) > 0 {
		fmt.Fprint(w, "Highest fixed offered UDP rate with zero loss (median run):")
		for _, rl := range Relays {
			if v, ok := r.UDPLossless[rl.Name]; ok {
				if v == 0 {
					fmt.Fprintf(w, " %s none;", rl.Name)
				} else {
					fmt.Fprintf(w, " %s %s;", rl.Name, rate(v))
				}
			}
		}
		fmt.Fprint(w, "\n\n")
	}
	fmt.Fprintln(w, "Versions:")
	fmt.Fprintln(w)
	seen := map[string]bool{}
	for _, s := range r.Scenarios {
		for _, row := range s.Rows {
			if row.Version != "" && !seen[row.Relay] {
				seen[row.Relay] = true
				fmt.Fprintf(w, "- %s: %s\n", row.Relay, oneLine(row.Version))
			}
		}
	}
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "|", "/")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// SVG draws one panel per scenario with two bar groups per relay:
// delivered msg/s and messages per relay CPU second, each scaled to the
// panel's largest value; loss is printed next to the rate.
func SVG(w io.Writer, r *Results) {
	const (
		width    = 900
		left     = 110
		barH     = 13
		gap      = 6
		panelPad = 46
	)
	colors := map[string]string{"wharf": "#1f77b4", "wharf-goroutines": "#17becf", "byte-copy": "#7f7f7f", "socat": "#bcbd22",
		"haproxy": "#2ca02c", "haproxy-1t": "#98df8a", "rsyslog": "#d62728", "syslog-ng": "#9467bd",
		"nginx": "#ff7f0e", "nginx-1w": "#ffbb78"}
	var body strings.Builder
	y := 40
	for _, s := range r.Scenarios {
		var rows []Row
		maxRate, maxCPU := 0.0, 0.0
		// Light-load scenarios are about latency: their panels show p50
		// and p99 (shorter is better) instead of rate and CPU.
		latency := strings.HasPrefix(s.Scenario.ID, "lat-")
		valA, valB := func(m Run) float64 { return m.Delivered }, func(m Run) float64 { return m.MsgPerCPU }
		if latency {
			valA = func(m Run) float64 { return float64(m.Latency.P50) }
			valB = func(m Run) float64 { return float64(m.Latency.P99) }
		}
		for _, row := range s.Rows {
			if row.Skipped != "" || row.Median.Err != "" {
				continue
			}
			rows = append(rows, row)
			maxRate = max(maxRate, valA(row.Median))
			maxCPU = max(maxCPU, valB(row.Median))
		}
		fmt.Fprintf(&body, `<text x="10" y="%d" font-weight="bold">%s</text>`+"\n", y, html.EscapeString(s.Scenario.Title))
		y += 8
		half := (width - left - 40) / 2
		rateLabel, cpuLabel, fmtRate := "delivered msg/s", "messages per relay CPU second", rate
		fmtRight := rate
		switch {
		case latency:
			rateLabel, cpuLabel = "p50 latency (shorter is better)", "p99 latency"
			fmtRate = func(v float64) string { return dur(time.Duration(v)) }
			fmtRight = fmtRate
		case s.Scenario.Unit == "requests":
			rateLabel, cpuLabel = "requests/s", "requests per relay CPU second"
		case s.Scenario.Unit == "bytes":
			rateLabel, cpuLabel = "MB/s", "MB per relay CPU second"
			fmtRate = func(v float64) string { return fmt.Sprintf("%.0f MB", v/1e6) }
			fmtRight = fmtRate
		}
		fmt.Fprintf(&body, `<text x="%d" y="%d" fill="#555">%s</text><text x="%d" y="%d" fill="#555">%s</text>`+"\n",
			left, y+10, rateLabel, left+half+20, y+10, cpuLabel)
		y += 16
		if len(rows) == 0 {
			fmt.Fprintf(&body, `<text x="%d" y="%d" fill="#999">no successful runs</text>`+"\n", left, y+10)
			y += panelPad
			continue
		}
		for _, row := range rows {
			c := colors[row.Relay]
			if c == "" {
				c = "#17becf"
			}
			m := row.Median
			wr, wc := 0, 0
			if maxRate > 0 {
				wr = int(float64(half-70) * valA(m) / maxRate)
			}
			if maxCPU > 0 {
				wc = int(float64(half-70) * valB(m) / maxCPU)
			}
			fmt.Fprintf(&body, `<text x="%d" y="%d" text-anchor="end">%s</text>`, left-6, y+barH-2, html.EscapeString(row.Relay))
			fmt.Fprintf(&body, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"/>`, left, y, max(wr, 1), barH, c)
			label := fmtRate(valA(m))
			if m.LossPct > 0 {
				label += fmt.Sprintf(" (%.1f%% lost)", m.LossPct)
			}
			fmt.Fprintf(&body, `<text x="%d" y="%d">%s</text>`, left+wr+4, y+barH-2, label)
			fmt.Fprintf(&body, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s" opacity="0.7"/>`, left+half+20, y, max(wc, 1), barH, c)
			fmt.Fprintf(&body, `<text x="%d" y="%d">%s</text>`+"\n", left+half+20+wc+4, y+barH-2, fmtRight(valB(m)))
			y += barH + gap
		}
		y += panelPad - gap
	}
	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">`+"\n", width, y)
	fmt.Fprintf(w, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(w, `<text x="10" y="20" font-size="14" font-weight="bold">wharf vs peers, %s, %d cores %s (median of %d)</text>`+"\n",
		r.Date.Format("2006-01-02"), r.Machine.Cores, html.EscapeString(r.Machine.CPU), r.Runs)
	io.WriteString(w, body.String())
	io.WriteString(w, "</svg>\n")
}

// syslogTable is a syslog scenario's table (messages).
func syslogTable(w io.Writer, s ScenarioResult) {
	fmt.Fprintln(w, "| relay | delivered msg/s | offered msg/s | loss % | dups | p50 | p99 | p99.9 | max | CPU s / M msgs | msgs / CPU s | peak RSS MiB | wharf rate ratio | wharf CPU ratio | others' CPU | runs (delivered msg/s) |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
	for _, row := range s.Rows {
		if row.Skipped != "" {
			fmt.Fprintf(w, "| %s | not run: %s ||||||||||||||| |\n", row.Relay, row.Skipped)
			continue
		}
		d := row.Median
		if d.Err != "" {
			fmt.Fprintf(w, "| %s | failed: %s ||||||||||||||| |\n", row.Relay, oneLine(d.Err))
			continue
		}
		var runs []string
		if s.Scenario.Rate > 0 && d.Offered < 0.95*s.Scenario.Rate {
			runs = append(runs, "generator starved, offered below target:")
		}
		for _, x := range row.Runs {
			if x.Err != "" {
				runs = append(runs, "error")
			} else {
				runs = append(runs, rate(x.Delivered))
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %.3f | %d | %s | %s | %s | %s | %.2f | %s | %d | %s | %s | %.0f%% | %s |\n",
			row.Relay, rate(d.Delivered), rate(d.Offered), d.LossPct, d.Dups,
			dur(d.Latency.P50), dur(d.Latency.P99), dur(d.Latency.P999), dur(d.Latency.Max),
			d.CPUPerM, rate(d.MsgPerCPU), d.PeakRSS>>20, ratio(row.RateVsWharf), ratio(row.CPUVsWharf), 100*d.OthersBusy, strings.Join(runs, " / "))
	}
}

// skipped writes a row for a relay that did not run or failed, and
// reports whether it did; cols is the table's column count.
func skipped(w io.Writer, row Row, cols int) bool {
	pad := strings.Repeat("|", cols-2)
	switch {
	case row.Skipped != "":
		fmt.Fprintf(w, "| %s | not run: %s %s |\n", row.Relay, row.Skipped, pad)
	case row.Median.Err != "":
		fmt.Fprintf(w, "| %s | failed: %s %s |\n", row.Relay, oneLine(row.Median.Err), pad)
	default:
		return false
	}
	return true
}

// runsCell lists each run's rate with f.
func runsCell(row Row, f func(Run) string) string {
	var runs []string
	for _, x := range row.Runs {
		if x.Err != "" {
			runs = append(runs, "error")
		} else {
			runs = append(runs, f(x))
		}
	}
	return strings.Join(runs, " / ")
}

// httpTable is the HTTP proxy scenario's table (requests).
func httpTable(w io.Writer, s ScenarioResult) {
	fmt.Fprintln(w, "| relay | requests/s | p50 | p99 | p99.9 | max | non-2xx/3xx | socket errors | CPU s / M requests | requests / CPU s | peak RSS MiB | wharf rate ratio | wharf CPU ratio | others' CPU | runs (requests/s) |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
	for _, row := range s.Rows {
		if skipped(w, row, 15) {
			continue
		}
		d := row.Median
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %d | %d | %.2f | %s | %d | %s | %s | %.0f%% | %s |\n",
			row.Relay, rate(d.Delivered), dur(d.Latency.P50), dur(d.Latency.P99), dur(d.Latency.P999), dur(d.Latency.Max),
			d.Non2xx, d.SocketErrors, d.CPUPerM, rate(d.MsgPerCPU), d.PeakRSS>>20, ratio(row.RateVsWharf), ratio(row.CPUVsWharf),
			100*d.OthersBusy, runsCell(row, func(x Run) string { return rate(x.Delivered) }))
	}
}

// h2Table is the HTTP/2 proxy scenario's table: h2load reports the mean
// and the largest request time, not percentiles.
func h2Table(w io.Writer, s ScenarioResult) {
	fmt.Fprintln(w, "| relay | requests/s | mean | max | non-2xx/3xx | failed | CPU s / M requests | requests / CPU s | peak RSS MiB | wharf rate ratio | wharf CPU ratio | others' CPU | runs (requests/s) |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
	for _, row := range s.Rows {
		if skipped(w, row, 13) {
			continue
		}
		d := row.Median
		fmt.Fprintf(w, "| %s | %s | %s | %s | %d | %d | %.2f | %s | %d | %s | %s | %.0f%% | %s |\n",
			row.Relay, rate(d.Delivered), dur(d.Latency.Mean), dur(d.Latency.Max),
			d.Non2xx, d.SocketErrors, d.CPUPerM, rate(d.MsgPerCPU), d.PeakRSS>>20, ratio(row.RateVsWharf), ratio(row.CPUVsWharf),
			100*d.OthersBusy, runsCell(row, func(x Run) string { return rate(x.Delivered) }))
	}
}

// streamTable is the TCP proxy scenario's table (bytes, in MB = 10^6).
func streamTable(w io.Writer, s ScenarioResult) {
	fmt.Fprintln(w, "| relay | MB/s | CPU s / GB | MB / CPU s | peak RSS MiB | wharf rate ratio | wharf CPU ratio | others' CPU | runs (MB/s) |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---|")
	for _, row := range s.Rows {
		if skipped(w, row, 9) {
			continue
		}
		d := row.Median
		fmt.Fprintf(w, "| %s | %.0f | %.3f | %.0f | %d | %s | %s | %.0f%% | %s |\n",
			row.Relay, d.Delivered/1e6, d.CPUPerGB, d.MsgPerCPU/1e6, d.PeakRSS>>20, ratio(row.RateVsWharf), ratio(row.CPUVsWharf),
			100*d.OthersBusy, runsCell(row, func(x Run) string { return fmt.Sprintf("%.0f", x.Delivered/1e6) }))
	}
}
