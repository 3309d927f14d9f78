// Command wharf-bench is wharf's load-test harness: a syslog generator
// (gen), receivers that account for loss, duplicates and latency (recv),
// and side-by-side relay runs of wharf and its peers (compare).
//
//	wharf-bench gen -target tcp://127.0.0.1:5514 -duration 10s
//	wharf-bench recv -listen tcp://127.0.0.1:5515 -idle 2s
//	wharf-bench recv -topic logs -run RUN -metrics 127.0.0.1:9600,127.0.0.1:9601 -sent 200000   (the ledger)
//	wharf-bench compare -runs 3
//	wharf-bench splice -listen 127.0.0.1:5514 -to 127.0.0.1:5515   (the byte-copy ceiling relay)
//	wharf-bench settle -busy 0.1 -max 1m   (wait for a quiet machine before compare)
//
// See bench/README.md for the method.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"wharf/bench/gen"
	"wharf/bench/recv"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "gen":
		err = runGen(ctx, os.Args[2:])
	case "recv":
		err = runRecv(ctx, os.Args[2:])
	case "compare":
		err = runCompare(ctx, os.Args[2:])
	case "splice":
		err = runSplice(ctx, os.Args[2:])
	case "settle":
		err = runSettle(ctx, os.Args[2:])
	case "-h", "-help", "--help", "help":
		usage()
	default:
		fmt.Fprintf(os.Stderr, "wharf-bench: unknown command %q\n", os.Args[1])
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, `usage: wharf-bench gen|recv|compare|splice|settle [flags]   (wharf-bench CMD -h for flags)`)
	os.Exit(2)
}

func runGen(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("gen", flag.ExitOnError)
	var c gen.Config
	fs.StringVar(&c.Target, "target", "tcp://127.0.0.1:5514", "tcp://host:port or udp://host:port")
	fs.StringVar(&c.Format, "format", "rfc5424", "rfc5424 or rfc3164")
	fs.StringVar(&c.Framing, "framing", "octet-counting", "TCP framing: octet-counting or lf")
	fs.IntVar(&c.Size, "size", 300, "message size in bytes (without framing)")
	fs.IntVar(&c.Conns, "conns", 1, "connections (UDP: sockets); each is its own sequence stream")
	fs.Float64Var(&c.Rate, "rate", 0, "total offered rate in msg/s (0: as fast as possible)")
	fs.DurationVar(&c.Duration, "duration", 0, "run time (0: until -count)")
	fs.Uint64Var(&c.Count, "count", 0, "messages in total (0: until -duration)")
	fs.StringVar(&c.Run, "run", "", "run id stamped into messages (default random)")
	fs.IntVar(&c.WriteSize, "write-size", 256<<10, "TCP bytes per write")
	fs.IntVar(&c.Batch, "batch", 1024, "UDP datagrams per sendmmsg")
	fs.BoolVar(&c.NoGSO, "no-gso", false, "UDP: one sendmmsg entry per datagram instead of UDP_SEGMENT offload")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	fs.Parse(args)
	if c.Duration == 0 && c.Count == 0 {
		c.Duration = 10 * time.Second
	}
	g, err := gen.New(c)
	if err != nil {
		return err
	}
	cpu0 := cpuTime()
	res, err := g.Run(ctx)
	cpu := cpuTime() - cpu0
	if *asJSON {
		json.NewEncoder(os.Stdout).Encode(res)
	} else {
		fmt.Printf("run %s: sent %d messages (%d bytes) in %v: %.0f msg/s, %.1f MB/s; per stream %v; send errors %d; generator CPU %.2fs = %.0f msg per CPU second\n",
			res.Run, res.Total, res.Bytes, res.Elapsed.Round(time.Millisecond), res.Rate,
			float64(res.Bytes)/res.Elapsed.Seconds()/1e6, res.Sent, res.SendErrors, cpu.Seconds(), float64(res.Total)/cpu.Seconds())
	}
	return err
}

func runRecv(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("recv", flag.ExitOnError)
	listen := fs.String("listen", "tcp://127.0.0.1:5515", "tcp://host:port or udp://host:port")
	brokers := fs.String("kafka", "", "consume from Kafka instead: comma-separated brokers (default $WHARF_KAFKA_BROKERS with -topic)")
	topic := fs.String("topic", "", "Kafka topic to consume from the first offset")
	run := fs.String("run", "", "accept only this run id (others count as foreign)")
	idle := fs.Duration("idle", 3*time.Second, "stop after this long without a new message (after the first)")
	count := fs.Uint64("count", 0, "stop after this many distinct messages")
	expect := fs.String("expect", "", "messages each stream sent, comma-separated (gen's per-stream counts), to count tail loss")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	nodes := fs.String("metrics", "", "wharf admin addresses (host:port, comma-separated): print the ledger, their /metrics beside what was received, and exit 3 when it does not balance")
	sink := fs.String("sink", "", "with -metrics: count only this sink's series")
	sent := fs.Uint64("sent", 0, "with -metrics: what the senders wrote in total (shows what wharf never read)")
	fs.Parse(args)

	var tr *recv.Tracker
	var closer func() error
	if *topic != "" {
		b := *brokers
		if b == "" {
			b = os.Getenv("WHARF_KAFKA_BROKERS")
		}
		if b == "" {
			return fmt.Errorf("wharf-bench recv: -topic needs -kafka brokers or WHARF_KAFKA_BROKERS")
		}
		k, err := recv.Consume(ctx, strings.Split(b, ","), *topic, *run)
		if err != nil {
			return err
		}
		tr, closer = k.Tracker, k.Close
	} else {
		s, err := recv.Listen(*listen, *run)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "wharf-bench recv: listening on %s\n", s.Addr())
		tr, closer = s.Tracker, s.Close
	}
	recv.Wait(ctx, tr, recv.WaitOptions{Count: *count, Idle: *idle})
	closer()
	var exp []uint64
	if *expect != "" {
		for _, f := range strings.Split(*expect, ",") {
			var n uint64
			if _, err := fmt.Sscan(f, &n); err != nil {
				return fmt.Errorf("wharf-bench recv: -expect %q: %v", *expect, err)
			}
			exp = append(exp, n)
		}
	}
	rep := tr.Report(exp)
	var ledger *recv.Ledger
	if *nodes != "" {
		var ns []recv.NodeLedger
		for _, a := range strings.Split(*nodes, ",") {
			n, err := recv.ScrapeNode(context.Background(), a, *sink)
			if err != nil {
				return err
			}
			ns = append(ns, n)
		}
		l := recv.NewLedger(ns, rep, *sent)
		ledger = &l
	}
	if *asJSON {
		err := json.NewEncoder(os.Stdout).Encode(struct {
			recv.Report
			Ledger *recv.Ledger `json:"ledger,omitempty"`
		}{rep, ledger})
		if err == nil && ledger != nil && !ledger.OK() {
			os.Exit(3)
		}
		return err
	}
	fmt.Printf("received %d (unique %d, duplicates %d, reordered %d, lost %d = %.3f%%, foreign %d, no stamp %d)",
		rep.Received, rep.Unique, rep.Dups, rep.Reordered, rep.Lost, rep.LossPct, rep.Foreign, rep.Bad)
	l := rep.Latency
	if *topic != "" {
		// Read from the topic's first offset: what was produced before
		// the read arrives all at once, so the read's duration and rate
		// say nothing of the relay, and "latency" includes the time the
		// messages waited in the topic.
		fmt.Printf("; read in %v\n", rep.Elapsed.Round(time.Millisecond))
		fmt.Printf("send-to-read delay (includes time in the topic before this read): p50 %v  p99 %v  max %v\n", l.P50, l.P99, l.Max)
	} else {
		fmt.Printf(" in %v: %.0f msg/s\n", rep.Elapsed.Round(time.Millisecond), rep.Rate)
		fmt.Printf("latency: p50 %v  p99 %v  p99.9 %v  max %v\n", l.P50, l.P99, l.P999, l.Max)
	}
	if ledger != nil {
		fmt.Print(ledger)
		if !ledger.OK() {
			os.Exit(3)
		}
	}
	return nil
}

// cpuTime is this process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
