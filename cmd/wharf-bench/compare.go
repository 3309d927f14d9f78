package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"wharf/bench/compare"
)

// compareArgs are compare's settings beyond compare.Options.
type compareArgs struct {
	out   string
	quiet bool
	nice  int
}

// runSettle waits for a quiet machine (compare.Settle). Not settling is
// a warning, not an error: the runs go ahead and report others' CPU.
func runSettle(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("settle", flag.ExitOnError)
	busy := fs.Float64("busy", 0.1, "quiet below this share of all CPUs in use")
	window := fs.Duration("window", 2*time.Second, "measured over this long")
	max := fs.Duration("max", time.Minute, "give up after this long")
	fs.Parse(args)
	if !compare.Settle(ctx, *busy, *window, *max) && ctx.Err() == nil {
		fmt.Fprintf(os.Stderr, "wharf-bench settle: the machine stayed above %.0f%% busy for %v (a neighbour?): figures may be noisy\n", *busy*100, *max)
	}
	return nil
}

func runCompare(ctx context.Context, args []string) error {
	o, a, err := parseCompare(args)
	if err != nil {
		return err
	}
	if a.nice != 0 {
		if err := renice(a.nice); err != nil {
			return fmt.Errorf("wharf-bench compare: -nice %d: %w", a.nice, err)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	o.Exe = exe
	if o.Root, err = filepath.Abs(o.Root); err != nil {
		return err
	}
	if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 && !a.quiet {
		o.Progress = os.Stderr
	}
	o.Log = os.Stderr
	if len(o.Brokers) == 0 && o.Wants("kafka") {
		fmt.Fprintln(os.Stderr, "wharf-bench compare: no Kafka brokers (-kafka or WHARF_KAFKA_BROKERS): Kafka scenario skipped")
	}
	res, cerr := compare.Compare(ctx, o)
	if res == nil {
		return cerr
	}
	compare.Markdown(os.Stdout, res, "")
	if a.out != "" {
		dir := a.out
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(o.Root, dir)
		}
		paths, err := compare.WriteFiles(res, dir)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "wharf-bench compare: wrote %s\n", strings.Join(paths, ", "))
	}
	return cerr
}

// parseCompare reads compare's flags. Without -scenarios every kind
// runs (compare.Kinds): make bench passes none.
func parseCompare(args []string) (compare.Options, compareArgs, error) {
	fs := flag.NewFlagSet("compare", flag.ExitOnError)
	var o compare.Options
	var a compareArgs
	fs.StringVar(&o.Root, "root", ".", "repository root (bin/wharf, var/peers)")
	fs.IntVar(&o.Runs, "runs", 3, "runs per relay and scenario (median reported)")
	fs.DurationVar(&o.TCPDuration, "tcp-duration", 0, "generator time per TCP/Kafka run (default 8s)")
	fs.DurationVar(&o.UDPDuration, "udp-duration", 0, "generator time per UDP run (default 5s)")
	fs.IntVar(&o.TCPConns, "conns", 2, "generator connections in TCP scenarios")
	fs.IntVar(&o.Size, "size", 300, "message size in bytes")
	fs.IntVar(&o.WriteSize, "write-size", 0, "generator TCP bytes per write (default 256 KiB; the message size mimics loggen's one write per message)")
	rates := fs.String("udp-rates", "25000,50000,100000,200000,300000,400000,max", "UDP offered rates, comma-separated; max = as fast as possible")
	fs.DurationVar(&o.ProxyDuration, "proxy-duration", 0, "load time per HTTP and TCP proxy run (default 5s)")
	fs.IntVar(&o.HTTPConns, "http-conns", 64, "wrk connections (-c) in the HTTP proxy scenario; the h2 scenario keeps as many streams in flight (h2load -c N/8 -m 8)")
	fs.IntVar(&o.HTTPThreads, "http-threads", 1, "wrk threads (-t) in the HTTP proxy scenario")
	fs.IntVar(&o.StreamConns, "stream-conns", 4, "reader connections in the TCP proxy scenario")
	scen := fs.String("scenarios", "", "scenario kinds to run, comma-separated (default all: "+strings.Join(compare.Kinds, ",")+"; kafka needs -kafka or $WHARF_KAFKA_BROKERS, http wrk, h2 h2load)")
	fs.Float64Var(&o.CeilingStart, "ceiling-start", 0, "udpceiling: first step's rate in msg/s (default 100000); doubled while steps are lossless")
	fs.Float64Var(&o.CeilingStep, "ceiling-step", 0, "udpceiling: resolution in msg/s: bisection stops when the lossless and the lossy rate are this close (default 25000)")
	fs.Float64Var(&o.CeilingMax, "ceiling-max", 0, "udpceiling: highest rate tried (default 2000000)")
	fs.IntVar(&o.CeilingSteps, "ceiling-steps", 0, "udpceiling: most steps per relay (default 10); each step is one -udp-duration run")
	fs.IntVar(&o.CeilingConns, "ceiling-conns", 0, "udpceiling: generator UDP sockets (default 2)")
	relays := fs.String("relays", "", "relays to run, comma-separated (default all installed: wharf,byte-copy,socat,haproxy,haproxy-1t,nginx,nginx-1w,rsyslog,syslog-ng)")
	brokers := fs.String("kafka", os.Getenv("WHARF_KAFKA_BROKERS"), "Kafka brokers for the Kafka scenario")
	fs.StringVar(&a.out, "out", "bench/results", "folder for <date>.md/.json and latest.md/.json/.svg ('' writes nothing)")
	fs.BoolVar(&a.quiet, "q", false, "no progress display even on a terminal")
	fs.IntVar(&a.nice, "nice", 0, "scheduling priority for the harness and the relays it starts (-20..19; negative needs root): on a shared machine, -10 keeps neighbours from skewing the figures")
	fs.Parse(args)
	o.Scenarios = splitList(*scen)
	o.Relays = splitList(*relays)
	o.Brokers = splitList(*brokers)
	for _, r := range splitList(*rates) {
		if r == "max" {
			o.UDPRates = append(o.UDPRates, 0)
			continue
		}
		v, err := strconv.ParseFloat(r, 64)
		if err != nil || v <= 0 {
			return o, a, fmt.Errorf("wharf-bench compare: -udp-rates: %q is neither a positive rate nor max", r)
		}
		o.UDPRates = append(o.UDPRates, v)
	}
	return o, a, nil
}

func runSplice(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("splice", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:5514", "host:port to accept TCP on")
	to := fs.String("to", "127.0.0.1:5515", "host:port to copy each connection to")
	fs.Parse(args)
	return compare.Splice(ctx, *listen, *to)
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// renice sets the priority of every thread of this process; threads and
// processes started later inherit it. (Linux applies nice per thread.)
func renice(n int) error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, n); err != nil {
			return err
		}
	}
	return nil
}
