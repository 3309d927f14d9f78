// Package compare runs wharf and its peers (a byte-copy ceiling, socat,
// HAProxy, rsyslog, syslog-ng, nginx) through the same scenarios, one
// after another in one process, with the same generator and receiver (or,
// for the proxy scenarios, the same backend and load client), and records
// delivered rate, loss, duplicates, latency, CPU seconds per million
// messages or requests (or per GB) and peak RSS. See bench/README.md for
// the method.
package compare

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"wharf/bench/gen"
	"wharf/bench/latency"
	"wharf/bench/recv"
	"wharf/bench/stamp"
)

// Options configure a comparison.
type Options struct {
	// Root is the repository root (bin/wharf, var/peers, bench/results).
	Root string
	// Exe is the wharf-bench executable, for the splice relay.
	Exe string
	// Runs per relay and scenario; the median is reported. Default 3.
	Runs int
	// TCPDuration and UDPDuration are each run's generator time.
	TCPDuration, UDPDuration time.Duration
	// TCPConns is the generator connections in TCP scenarios. Default 2.
	TCPConns int
	// UDPRates are offered rates in msg/s; 0 means as fast as possible.
	UDPRates []float64
	// Size is the message size. Default 300.
	Size int
	// WriteSize is the generator's TCP bytes per write. Default 256 KiB.
	// Small writes (one message each, like loggen) make relays read less
	// per system call and cost them more CPU per message.
	WriteSize int
	// ProxyDuration is each proxy scenario run's load time. Default 5s.
	ProxyDuration time.Duration
	// HTTPConns and HTTPThreads are wrk's -c and -t. Default 64 and 1.
	HTTPConns, HTTPThreads int
	// StreamConns is the readers in the TCP proxy scenario. Default 4.
	StreamConns int
	// Scenarios picks kinds (Kinds). Empty: all of them.
	Scenarios []string
	// CeilingStart, CeilingStep (the resolution), CeilingMax and
	// CeilingSteps bound the udpceiling search (see CeilingSearch):
	// defaults 100k, 25k, 2M and 10 steps. CeilingConns is the generator's UDP sockets there
	// (default 2).
	CeilingStart, CeilingStep, CeilingMax float64
	CeilingSteps, CeilingConns            int
	// Relays picks relays by name. Empty: all installed.
	Relays []string
	// Brokers enables the Kafka scenario.
	Brokers []string
	// Progress receives a live status line (carriage-return updated) when
	// set; nil keeps the run quiet.
	Progress io.Writer
	// Log receives one line per finished run; nil discards.
	Log io.Writer
}

// Scenario is one workload.
type Scenario struct {
	ID   string `json:"id"`
	Kind string `json:"kind"` // tcp, udp, relp, kafka, http, tcpproxy
	// Unit is what the rate and per-CPU figures count: "messages"
	// (syslog scenarios), "requests" (http) or "bytes" (tcpproxy).
	Unit  string  `json:"unit"`
	Title string  `json:"title"`
	Rate  float64 `json:"offered_rate"` // 0: as fast as possible
	// OneAtATime sends one message, waits until the receiver has it, and
	// repeats (latency at the lightest load); Count bounds the run.
	OneAtATime bool   `json:"one_at_a_time,omitempty"`
	Count      uint64 `json:"count,omitempty"`
	// Duration of each generator run.
	Duration time.Duration `json:"duration_ns"`
	// Conns overrides Options.TCPConns (kind "conns": many slow senders).
	Conns int `json:"conns,omitempty"`
	// Compression is the Kafka codec every relay uses (kafka scenarios):
	// "none", "lz4" or "zstd".
	Compression string `json:"compression,omitempty"`
}

// Run is one relay run's measurements.
type Run struct {
	Sent   uint64 `json:"sent"`
	Unique uint64 `json:"unique"`
	Dups   uint64 `json:"duplicates"`
	Lost   uint64 `json:"lost"`
	// Unstamped counts messages that arrived without a readable stamp
	// (a relay that rewrote or truncated them).
	Unstamped uint64 `json:"unstamped"`
	// Reconnects counts Kafka consumer redials (reads resume at the next
	// unread offset, so they never cause duplicates).
	Reconnects uint64 `json:"consumer_reconnects,omitempty"`
	// KafkaLogSize is how many messages the topic held at the end:
	// received == log size means duplicates were written by the relay
	// (producer retries), not read twice.
	KafkaLogSize int64 `json:"kafka_log_size,omitempty"`
	// UnstampedSamples shows a few of them.
	UnstampedSamples []string `json:"unstamped_samples,omitempty"`
	LossPct          float64  `json:"loss_pct"`
	Offered          float64  `json:"offered_rate"` // sent / generator time
	// Delivered is the rate in the scenario's unit: messages/s (unique /
	// (last received - generator start)), requests/s (wrk's count over its
	// duration) or bytes/s (read through the proxy over the run).
	Delivered float64         `json:"delivered_rate"`
	Latency   latency.Summary `json:"latency"`
	CPU       float64         `json:"cpu_seconds"`
	// CPUPerM is CPU seconds per million messages or requests.
	CPUPerM float64 `json:"cpu_seconds_per_million"`
	// MsgPerCPU is messages, requests or bytes per relay CPU second.
	MsgPerCPU float64 `json:"messages_per_cpu_second"`
	// Requests, Non2xx and SocketErrors are wrk's counts (http): completed
	// requests, responses with a status other than 2xx/3xx, and connect,
	// read, write and timeout errors.
	Requests     uint64 `json:"requests,omitempty"`
	Non2xx       uint64 `json:"non_2xx_3xx,omitempty"`
	SocketErrors uint64 `json:"socket_errors,omitempty"`
	// Bytes is what the readers got through the proxy (tcpproxy), and
	// CPUPerGB the relay's CPU seconds per 10^9 of them.
	Bytes    uint64  `json:"bytes,omitempty"`
	CPUPerGB float64 `json:"cpu_seconds_per_gb,omitempty"`
	PeakRSS  int64   `json:"peak_rss_bytes"`
	// HarnessCPU is the generator's and receiver's CPU seconds.
	HarnessCPU float64 `json:"harness_cpu_seconds"`
	// OthersBusy is the share of the machine's CPU (0..1) used by
	// processes other than the relay and the harness during the run: the
	// noise from neighbours. Runs with a high figure are suspect.
	OthersBusy float64 `json:"others_busy"`
	Err        string  `json:"error,omitempty"`
}

// Row is one relay in one scenario: the median of its runs.
type Row struct {
	Relay   string `json:"relay"`
	Version string `json:"version,omitempty"`
	// Median holds the per-metric medians over the successful runs.
	Median Run   `json:"median"`
	Runs   []Run `json:"runs"`
	// Skipped says why the relay did not run (not installed...).
	Skipped string `json:"skipped,omitempty"`
	// RateVsWharf and CPUVsWharf are wharf's delivered rate and messages
	// per CPU second divided by this relay's (0 when unknown).
	RateVsWharf float64 `json:"wharf_rate_ratio,omitempty"`
	CPUVsWharf  float64 `json:"wharf_cpu_efficiency_ratio,omitempty"`
	// Ceiling is the udpceiling search's outcome (Runs are its steps).
	Ceiling *Ceiling `json:"ceiling,omitempty"`
}

// ScenarioResult is one scenario's rows.
type ScenarioResult struct {
	Scenario Scenario `json:"scenario"`
	Rows     []Row    `json:"rows"`
}

// Machine describes where the run happened.
type Machine struct {
	Cores    int    `json:"cores"`
	CPU      string `json:"cpu"`
	Kernel   string `json:"kernel"`
	MemoryMB int64  `json:"memory_mb"`
}

// Results is a whole comparison.
type Results struct {
	Date      time.Time `json:"date"`
	Machine   Machine   `json:"machine"`
	Runs      int       `json:"runs"`
	Size      int       `json:"message_size"`
	TCPConns  int       `json:"tcp_conns"`
	WriteSize int       `json:"write_size,omitempty"`
	// Commit is `git describe --always --dirty` of the repository, and
	// WharfBuilt the modification time of bin/wharf: which wharf ran.
	Commit     string           `json:"commit,omitempty"`
	WharfBuilt time.Time        `json:"wharf_built,omitempty"`
	Scenarios  []ScenarioResult `json:"scenarios"`
	// UDPLossless is, per relay, the highest fixed offered UDP rate at
	// which the median run lost nothing (0: lossless at none).
	UDPLossless map[string]float64 `json:"udp_lossless_rate,omitempty"`
}

// udpLossless fills r.UDPLossless from the fixed-rate UDP scenarios.
func (r *Results) udpLossless() {
	for _, s := range r.Scenarios {
		if s.Scenario.Kind != "udp" || s.Scenario.Rate == 0 {
			continue
		}
		for _, row := range s.Rows {
			m := row.Median
			if row.Skipped != "" || m.Err != "" {
				continue
			}
			if r.UDPLossless == nil {
				r.UDPLossless = map[string]float64{}
			}
			best := r.UDPLossless[row.Relay]
			if m.Lost == 0 && m.Unstamped == 0 && m.Offered >= 0.95*s.Scenario.Rate && s.Scenario.Rate > best {
				best = s.Scenario.Rate
			}
			r.UDPLossless[row.Relay] = best
		}
	}
}

func (o *Options) defaults() {
	o.defaultCeiling()
	if o.Runs <= 0 {
		o.Runs = 3
	}
	if o.TCPDuration <= 0 {
		o.TCPDuration = 8 * time.Second
	}
	if o.UDPDuration <= 0 {
		o.UDPDuration = 5 * time.Second
	}
	if o.TCPConns <= 0 {
		o.TCPConns = 2
	}
	if o.UDPRates == nil {
		o.UDPRates = []float64{25000, 50000, 100000, 200000, 300000, 400000, 0}
	}
	if o.Size <= 0 {
		o.Size = 300
	}
	if o.ProxyDuration <= 0 {
		o.ProxyDuration = 5 * time.Second
	}
	if o.HTTPConns <= 0 {
		o.HTTPConns = 64
	}
	if o.HTTPThreads <= 0 {
		o.HTTPThreads = 1
	}
	if o.StreamConns <= 0 {
		o.StreamConns = 4
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
}

// Kinds are the scenario kinds, in the order Plan runs them: "latency"
// is the TCP relay at light load (one message at a time, 1k and 25k
// msg/s), "kafka-lz4" and "kafka-zstd" pick one codec of "kafka".
var Kinds = []string{"tcp", "udpceiling", "tls", "udp", "latency", "conns", "relp", "kafka", "http", "h2", "tcpproxy"}

// Wants reports whether the options select scenario kind k: every kind
// when Scenarios is empty (make bench), else the named ones.
func (o Options) Wants(k string) bool {
	return len(o.Scenarios) == 0 || slices.Contains(o.Scenarios, k)
}

// Plan lists the scenarios the options select.
func (o Options) Plan() []Scenario {
	o.defaults()
	want := o.Wants
	var sc []Scenario
	if want("tcp") {
		sc = append(sc, Scenario{ID: "tcp", Kind: "tcp", Unit: "messages", Duration: o.TCPDuration,
			Title: fmt.Sprintf("TCP relay: RFC5424 %d B octet-counted in, TCP out, %d connections, max rate", o.Size, o.TCPConns)})
	}
	if want("udpceiling") { // a search of a few minutes
		sc = append(sc, Scenario{ID: "udp-ceiling", Kind: "udpceiling", Unit: "messages", Duration: o.UDPDuration, Conns: o.CeilingConns,
			Title: fmt.Sprintf("UDP lossless ceiling: RFC5424 in over %d UDP sockets, TCP out; fixed rates from %s, doubled while lossless, then bisected to %s (at most %d steps of %v, up to %s)", o.CeilingConns, rate(o.CeilingStart), rate(o.CeilingStep), o.CeilingSteps, o.UDPDuration, rate(o.CeilingMax))})
	}
	if want("tls") {
		sc = append(sc, Scenario{ID: "tls", Kind: "tls", Unit: "messages", Duration: o.TCPDuration,
			Title: fmt.Sprintf("TLS ingest: RFC5424 %d B octet-counted in over TLS (RFC 5425, self-signed P-256 certificate), TCP out, %d connections, max rate", o.Size, o.TCPConns)})
	}
	if want("udp") {
		for _, r := range o.UDPRates {
			id, t := "udp-max", "UDP relay: RFC5424 in over UDP, TCP out, max offered rate"
			if r > 0 {
				id = fmt.Sprintf("udp-%gk", r/1000)
				t = fmt.Sprintf("UDP relay: RFC5424 in over UDP, TCP out, %gk msg/s offered", r/1000)
			}
			sc = append(sc, Scenario{ID: id, Kind: "udp", Unit: "messages", Rate: r, Duration: o.UDPDuration, Title: t})
		}
	}
	if want("latency") {
		// Light load: where a linger or a slow wake-up shows, hidden at
		// saturation. Kind tcp, so every TCP relay takes part.
		sc = append(sc, Scenario{ID: "lat-1x1", Kind: "tcp", Unit: "messages", OneAtATime: true, Count: 2000, Duration: o.UDPDuration,
			Title: "Latency, one message at a time: send, wait until the receiver has it, repeat (2000 messages, TCP in and out)"})
		for _, r := range []float64{1000, 25000} {
			sc = append(sc, Scenario{ID: fmt.Sprintf("lat-%gk", r/1000), Kind: "tcp", Unit: "messages", Rate: r, Duration: o.UDPDuration,
				Title: fmt.Sprintf("Latency at light load: %gk msg/s offered over TCP, TCP out", r/1000)})
		}
	}
	if want("conns") {
		// Many hosts, each quiet: 2000 connections at 1 msg/s each. What
		// counts is that every message arrives, its latency, and the
		// relay's memory for that many connections. socat (a process per
		// connection) does not take part.
		sc = append(sc, Scenario{ID: "conns-2000", Kind: "conns", Unit: "messages", Conns: 2000, Rate: 2000, Duration: o.TCPDuration,
			Title: "2000 slow TCP senders: 2000 connections at 1 msg/s each (2000 msg/s in all), TCP out"})
	}
	if want("relp") {
		sc = append(sc, Scenario{ID: "relp", Kind: "relp", Unit: "messages", Duration: o.TCPDuration,
			Title: fmt.Sprintf("RELP relay: RFC5424 %d B over RELP in (window 128), RELP out to a receiver that acknowledges each message, %d connections, max rate", o.Size, o.TCPConns)})
	}
	if want("kafka") && len(o.Brokers) > 0 {
		sc = append(sc, Scenario{ID: "kafka", Kind: "kafka", Unit: "messages", Duration: o.TCPDuration, Compression: "none",
			Title: fmt.Sprintf("TCP in to Kafka (acks=1, no compression), %d connections, max rate", o.TCPConns)})
	}
	for _, codec := range []string{"lz4", "zstd"} {
		// Each relay compresses with the same codec through its own
		// client (wharf: kafka-go; rsyslog omkafka and syslog-ng kafka-c:
		// librdkafka), at the codec's default level.
		if (want("kafka") || want("kafka-"+codec)) && len(o.Brokers) > 0 {
			sc = append(sc, Scenario{ID: "kafka-" + codec, Kind: "kafka", Unit: "messages", Duration: o.TCPDuration, Compression: codec,
				Title: fmt.Sprintf("TCP in to Kafka (acks=1, %s compression), %d connections, max rate", codec, o.TCPConns)})
		}
	}
	if want("http") {
		sc = append(sc, Scenario{ID: "http", Kind: "http", Unit: "requests", Duration: o.ProxyDuration,
			Title: fmt.Sprintf("HTTP proxy: wrk -t%d -c%d keep-alive GET through the proxy to a Go net/http backend (%d B body)", o.HTTPThreads, o.HTTPConns, len(httpBody))})
	}
	if want("h2") {
		c, m := h2Shape(o.HTTPConns)
		sc = append(sc, Scenario{ID: "h2", Kind: "h2", Unit: "requests", Duration: o.ProxyDuration,
			Title: fmt.Sprintf("HTTP/2 proxy: h2load -c%d -m%d over TLS (h2 by ALPN) through the proxy to a Go net/http backend over HTTP/1.1 (%d B body)", c, m, len(httpBody))})
	}
	if want("tcpproxy") {
		sc = append(sc, Scenario{ID: "tcpproxy", Kind: "tcpproxy", Unit: "bytes", Duration: o.ProxyDuration,
			Title: fmt.Sprintf("TCP proxy: %d connections pull a stream from a Go backend through the proxy", o.StreamConns)})
	}
	return sc
}

// Compare runs every selected scenario for every selected relay.
func Compare(ctx context.Context, o Options) (*Results, error) {
	o.defaults()
	res := &Results{Date: time.Now().UTC(), Machine: ThisMachine(), Runs: o.Runs, Size: o.Size, TCPConns: o.TCPConns, WriteSize: o.WriteSize}
	if out, err := exec.Command("git", "-C", o.Root, "describe", "--always", "--dirty").Output(); err == nil {
		res.Commit = strings.TrimSpace(string(out))
	}
	if fi, err := os.Stat(filepath.Join(o.Root, "bin/wharf")); err == nil {
		res.WharfBuilt = fi.ModTime().UTC()
	}
	tmp, err := os.MkdirTemp("", "wharf-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	plan := o.Plan()
	for si, sc := range plan {
		sr := ScenarioResult{Scenario: sc}
		// The relays that run the scenario, each with its row's index.
		type part struct {
			rl  *Relay
			row int
		}
		var parts []part
		for _, rl := range Relays {
			if !rl.Supports(sc.Kind) || (len(o.Relays) > 0 && !slices.Contains(o.Relays, rl.Name)) {
				continue
			}
			row := Row{Relay: rl.Name}
			if err := rl.Check(o.Root); err != nil {
				row.Skipped = err.Error()
				fmt.Fprintf(o.Log, "%-8s %-10s skipped: %v\n", sc.ID, rl.Name, err)
				sr.Rows = append(sr.Rows, row)
				continue
			}
			row.Version = rl.Version(o.Root)
			if sc.Kind == "udpceiling" {
				dir := filepath.Join(tmp, fmt.Sprintf("%s-%s", sc.ID, rl.Name))
				os.MkdirAll(dir, 0o755)
				r, c := runCeiling(ctx, o, sc, rl, dir, fmt.Sprintf("[%d/%d %s] %s", si+1, len(plan), sc.ID, rl.Name))
				r.Version, r.Ceiling = row.Version, &c
				if o.Progress != nil {
					fmt.Fprint(o.Progress, "\r\033[K")
				}
				fmt.Fprintf(o.Log, "%-8s %-10s ceiling: lossless %s, ended by %s\n", sc.ID, rl.Name, rate(c.Lossless), c.Bound)
				sr.Rows = append(sr.Rows, r)
				continue
			}
			sr.Rows = append(sr.Rows, row)
			parts = append(parts, part{rl, len(sr.Rows) - 1})
		}
		// In rounds, every relay once a round: a slow phase of the box,
		// or a neighbour busy for a minute (a Kafka broker starting),
		// then falls on every relay alike instead of on the runs of the
		// one that was running (all of one relay's runs in a row put
		// wharf's TCP runs beside the broker's start-up).
		for i := 0; i < o.Runs && ctx.Err() == nil; i++ {
			for _, p := range parts {
				if ctx.Err() != nil {
					break
				}
				rl, row := p.rl, &sr.Rows[p.row]
				label := fmt.Sprintf("[%d/%d %s] %s run %d/%d", si+1, len(plan), sc.ID, rl.Name, i+1, o.Runs)
				dir := filepath.Join(tmp, fmt.Sprintf("%s-%s-%d", sc.ID, rl.Name, i))
				os.MkdirAll(dir, 0o755)
				run := runOnce
				switch sc.Kind {
				case "http":
					run = runHTTP
				case "h2":
					run = runH2
				case "tcpproxy":
					run = runStream
				}
				r := run(ctx, o, sc, rl, dir, label)
				// A generator starved by neighbours offers less than the
				// scenario's rate; such a run measures nothing. Retry it.
				for retry := 0; retry < 2 && r.Err == "" && sc.Rate > 0 && r.Offered < 0.95*sc.Rate && ctx.Err() == nil; retry++ {
					fmt.Fprintf(o.Log, "%-8s %-10s run %d: generator starved (offered %.0f of %.0f msg/s), rerun\n", sc.ID, rl.Name, i+1, r.Offered, sc.Rate)
					os.RemoveAll(dir)
					os.MkdirAll(dir, 0o755)
					r = run(ctx, o, sc, rl, dir, label)
				}
				row.Runs = append(row.Runs, r)
				if o.Progress != nil {
					fmt.Fprint(o.Progress, "\r\033[K")
				}
				fmt.Fprintf(o.Log, "%-8s %-10s run %d: %s\n", sc.ID, rl.Name, i+1, r.summary(sc.Kind))
			}
		}
		for _, p := range parts {
			sr.Rows[p.row].Median = median(sr.Rows[p.row].Runs)
		}
		ratios(sr.Rows)
		res.Scenarios = append(res.Scenarios, sr)
		if ctx.Err() != nil {
			break
		}
	}
	if o.Progress != nil {
		fmt.Fprint(o.Progress, "\r\033[K")
	}
	res.udpLossless()
	return res, ctx.Err()
}

// summary is a one-line account of a run for the log.
func (r Run) summary(kind string) string {
	if r.Err != "" {
		return "error: " + r.Err
	}
	switch kind {
	case "h2":
		return fmt.Sprintf("%9.0f req/s, mean %v, max %v, non-2xx %d, failed %d, %.2f CPU s/M req, RSS %d MiB, others busy %.0f%%",
			r.Delivered, r.Latency.Mean, r.Latency.Max, r.Non2xx, r.SocketErrors, r.CPUPerM, r.PeakRSS>>20, 100*r.OthersBusy)
	case "http":
		return fmt.Sprintf("%9.0f req/s, p50 %v, p99 %v, non-2xx %d, socket errors %d, %.2f CPU s/M req, RSS %d MiB, others busy %.0f%%",
			r.Delivered, r.Latency.P50, r.Latency.P99, r.Non2xx, r.SocketErrors, r.CPUPerM, r.PeakRSS>>20, 100*r.OthersBusy)
	case "tcpproxy":
		return fmt.Sprintf("%8.0f MB/s, %.3f CPU s/GB, RSS %d MiB, others busy %.0f%%", r.Delivered/1e6, r.CPUPerGB, r.PeakRSS>>20, 100*r.OthersBusy)
	}
	s := fmt.Sprintf("%9.0f msg/s delivered, loss %6.3f%%, dups %d, unstamped %d, %.2f CPU s/M msgs, p99 %v, RSS %d MiB, others busy %.0f%%",
		r.Delivered, r.LossPct, r.Dups, r.Unstamped, r.CPUPerM, r.Latency.P99.Round(time.Microsecond), r.PeakRSS>>20, 100*r.OthersBusy)
	if r.KafkaLogSize > 0 {
		s += fmt.Sprintf(", kafka log %d, consumer reconnects %d", r.KafkaLogSize, r.Reconnects)
	}
	return s
}

// runOnce is one relay run: receiver, relay, generator, drain, measure.
func runOnce(ctx context.Context, o Options, sc Scenario, rl *Relay, dir, label string) Run {
	fail := func(err error) Run { return Run{Err: err.Error()} }
	runID := gen.NewRunID()
	var tracker *recv.Tracker
	consumerErr := func() error { return nil }
	var consumer *recv.Consumer
	setup := Setup{Kind: sc.Kind, In: "tcp", Dir: dir, Root: o.Root, Exe: o.Exe, Conns: sc.Conns}
	if sc.Kind == "udp" || sc.Kind == "relp" || sc.Kind == "tls" {
		setup.In = sc.Kind
	}
	if sc.Kind == "tls" {
		var err error
		if setup.Cert, setup.Key, _, err = writeBenchCert(dir); err != nil {
			return fail(err)
		}
	}
	if sc.Kind == "kafka" {
		setup.Brokers, setup.Topic, setup.Compression = o.Brokers, "wharf-bench-"+rl.Name+"-"+runID, cmp.Or(sc.Compression, "none")
		if err := recv.CreateTopic(ctx, o.Brokers, setup.Topic, 1); err != nil {
			return fail(err)
		}
		k, err := recv.Consume(ctx, o.Brokers, setup.Topic, runID)
		if err != nil {
			return fail(err)
		}
		defer k.Close()
		tracker = k.Tracker
		consumerErr = k.Err
		consumer = k
	} else {
		out := "tcp"
		if sc.Kind == "relp" {
			out = "relp" // RELP in, RELP out: the receiver acknowledges every message
		}
		srv, err := recv.Listen(out+"://127.0.0.1:0", runID)
		if err != nil {
			return fail(err)
		}
		defer srv.Close()
		setup.OutAddr = srv.Addr().String()
		tracker = srv.Tracker
	}
	port, err := freePort()
	if err != nil {
		return fail(err)
	}
	setup.InAddr = fmt.Sprintf("127.0.0.1:%d", port)
	p, err := rl.Start(setup)
	if err != nil {
		return fail(err)
	}
	defer p.Stop(5 * time.Second)
	if err := waitListening(ctx, setup.In, setup.InAddr, p, 15*time.Second); err != nil {
		return fail(err)
	}
	if setup.In == "udp" {
		time.Sleep(200 * time.Millisecond) // bound is not always ready: let the workers start
	}
	gcfg := gen.Config{Target: setup.In + "://" + setup.InAddr, Format: stamp.RFC5424, Framing: stamp.OctetCounting,
		Size: o.Size, Conns: map[bool]int{true: 1, false: o.TCPConns}[setup.In == "udp"], Rate: sc.Rate, Duration: sc.Duration, Run: runID, WriteSize: o.WriteSize}
	if sc.Conns > 0 {
		gcfg.Conns = sc.Conns
	}
	if sc.OneAtATime {
		gcfg.Conns, gcfg.Count = 1, sc.Count
		gcfg.Await = func(sent uint64) bool { return awaitUnique(ctx, tracker, sent, 2*time.Second) }
	}
	g, err := gen.New(gcfg)
	if err != nil {
		return fail(err)
	}

	u0 := treeUsage(p.Pid())
	busy0, self0 := machineBusy(), selfCPU()
	peak := u0.rss
	stopProgress := make(chan struct{})
	progressDone := make(chan struct{})
	var draining atomic.Bool
	start := time.Now()
	go func() { // samples peak RSS and draws the status line
		defer close(progressDone)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopProgress:
				return
			case <-t.C:
			}
			if u := treeUsage(p.Pid()); u.rss > peak {
				peak = u.rss
			}
			if o.Progress != nil {
				phase := "sending"
				if draining.Load() {
					draining.Store(true)
				}
				fmt.Fprintf(o.Progress, "\r\033[K%s: %s %.1fs/%.0fs, sent %.2fM, received %.2fM",
					label, phase, time.Since(start).Seconds(), sc.Duration.Seconds(), float64(g.Sent())/1e6, float64(tracker.Unique())/1e6)
			}
		}
	}()
	gres, gerr := g.Run(ctx)
	draining.Store(true)
	idle := 3 * time.Second
	if setup.In == "udp" {
		idle = 1500 * time.Millisecond
	}
	dctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	recv.Wait(dctx, tracker, recv.WaitOptions{Count: gres.Total, Idle: idle, StartIdle: true})
	cancel()
	u1 := treeUsage(p.Pid())
	busy1, self1 := machineBusy(), selfCPU()
	wall := time.Since(start)
	close(stopProgress)
	<-progressDone
	if u1.rss > peak {
		peak = u1.rss
	}
	if exited, err := p.Exited(); exited {
		return fail(fmt.Errorf("relay died during the run: %v", err))
	}
	if gerr != nil {
		return fail(gerr)
	}
	if err := consumerErr(); err != nil {
		return fail(err)
	}
	rep := tracker.Report(gres.Sent)
	r := Run{Sent: gres.Total, Unique: rep.Unique, Dups: rep.Dups, Lost: rep.Lost, LossPct: rep.LossPct, Unstamped: rep.Bad, UnstampedSamples: rep.BadSamples,
		Offered: gres.Rate, Latency: rep.Latency, PeakRSS: peak}
	if !rep.Last.IsZero() {
		if d := rep.Last.Sub(start); d > 0 {
			r.Delivered = float64(rep.Unique) / d.Seconds()
		}
	}
	r.CPU = (u1.cpu - u0.cpu).Seconds()
	if consumer != nil {
		r.Reconnects = consumer.Reconnects()
		if n, err := consumer.LogSize(ctx); err == nil {
			r.KafkaLogSize = n
		}
	}
	r.HarnessCPU = (self1 - self0).Seconds()
	if others := (busy1 - busy0).Seconds() - r.CPU - r.HarnessCPU; others > 0 {
		r.OthersBusy = others / (wall.Seconds() * float64(runtime.NumCPU()))
	}
	if rep.Unique > 0 {
		r.CPUPerM = r.CPU / float64(rep.Unique) * 1e6
	}
	if r.CPU > 0 {
		r.MsgPerCPU = float64(rep.Unique) / r.CPU
	}
	if rep.Unique == 0 {
		r.Err = "nothing arrived at the receiver"
	}
	return r
}

// median takes each metric's median over the runs without an error.
func median(runs []Run) Run {
	var ok []Run
	for _, r := range runs {
		if r.Err == "" {
			ok = append(ok, r)
		}
	}
	if len(ok) == 0 {
		if len(runs) > 0 {
			return Run{Err: runs[len(runs)-1].Err}
		}
		return Run{Err: "no runs"}
	}
	mf := func(get func(Run) float64) float64 {
		v := make([]float64, len(ok))
		for i, r := range ok {
			v[i] = get(r)
		}
		slices.Sort(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	md := func(get func(Run) time.Duration) time.Duration {
		return time.Duration(mf(func(r Run) float64 { return float64(get(r)) }))
	}
	return Run{
		Sent:         uint64(mf(func(r Run) float64 { return float64(r.Sent) })),
		Unique:       uint64(mf(func(r Run) float64 { return float64(r.Unique) })),
		Dups:         uint64(mf(func(r Run) float64 { return float64(r.Dups) })),
		Lost:         uint64(mf(func(r Run) float64 { return float64(r.Lost) })),
		LossPct:      mf(func(r Run) float64 { return r.LossPct }),
		Offered:      mf(func(r Run) float64 { return r.Offered }),
		Delivered:    mf(func(r Run) float64 { return r.Delivered }),
		CPU:          mf(func(r Run) float64 { return r.CPU }),
		CPUPerM:      mf(func(r Run) float64 { return r.CPUPerM }),
		MsgPerCPU:    mf(func(r Run) float64 { return r.MsgPerCPU }),
		PeakRSS:      int64(mf(func(r Run) float64 { return float64(r.PeakRSS) })),
		HarnessCPU:   mf(func(r Run) float64 { return r.HarnessCPU }),
		OthersBusy:   mf(func(r Run) float64 { return r.OthersBusy }),
		Requests:     uint64(mf(func(r Run) float64 { return float64(r.Requests) })),
		Non2xx:       uint64(mf(func(r Run) float64 { return float64(r.Non2xx) })),
		SocketErrors: uint64(mf(func(r Run) float64 { return float64(r.SocketErrors) })),
		Bytes:        uint64(mf(func(r Run) float64 { return float64(r.Bytes) })),
		CPUPerGB:     mf(func(r Run) float64 { return r.CPUPerGB }),
		Latency: latency.Summary{
			Count: uint64(mf(func(r Run) float64 { return float64(r.Latency.Count) })),
			Mean:  md(func(r Run) time.Duration { return r.Latency.Mean }),
			P50:   md(func(r Run) time.Duration { return r.Latency.P50 }),
			P99:   md(func(r Run) time.Duration { return r.Latency.P99 }),
			P999:  md(func(r Run) time.Duration { return r.Latency.P999 }),
			Max:   md(func(r Run) time.Duration { return r.Latency.Max }),
		},
	}
}

// ratios fills each row's wharf/relay ratios when wharf ran.
func ratios(rows []Row) {
	var w *Run
	for i := range rows {
		if rows[i].Relay == "wharf" && rows[i].Median.Err == "" && rows[i].Skipped == "" {
			w = &rows[i].Median
		}
	}
	if w == nil {
		return
	}
	for i := range rows {
		m := rows[i].Median
		if m.Err != "" || rows[i].Skipped != "" {
			continue
		}
		if m.Delivered > 0 {
			rows[i].RateVsWharf = w.Delivered / m.Delivered
		}
		if m.MsgPerCPU > 0 {
			rows[i].CPUVsWharf = w.MsgPerCPU / m.MsgPerCPU
		}
	}
}

// ThisMachine reads cores, CPU model, kernel and memory from /proc.
func ThisMachine() Machine {
	var m Machine
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(line, ":")
			switch strings.TrimSpace(k) {
			case "processor":
				m.Cores++
			case "model name":
				m.CPU = strings.TrimSpace(v)
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		fmt.Sscanf(strings.TrimPrefix(strings.SplitN(string(b), "\n", 2)[0], "MemTotal:"), "%d", &kb)
		m.MemoryMB = kb >> 10
	}
	return m
}

// awaitUnique waits until tr has n distinct messages, polling every few
// microseconds (the wait only paces the sender; latency is what the
// receiver measures from the stamps). false when ctx ends or nothing new
// arrives within limit: a lost message would stall the run.
func awaitUnique(ctx context.Context, tr *recv.Tracker, n uint64, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for tr.Unique() < n {
		if ctx.Err() != nil || time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Microsecond)
	}
	return true
}
