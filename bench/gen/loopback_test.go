package gen_test

import (
	"context"
	"testing"
	"time"

	"wharf/bench/gen"
	"wharf/bench/recv"
	"wharf/bench/stamp"
)

// loopback sends cfg to a fresh receiver and returns both sides' results.
func loopback(t *testing.T, scheme string, cfg gen.Config) (gen.Result, recv.Report) {
	t.Helper()
	srv, err := recv.Listen(scheme+"://127.0.0.1:0", "")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cfg.Target = scheme + "://" + srv.Addr().String()
	g, err := gen.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := g.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	recv.Wait(ctx, srv.Tracker, recv.WaitOptions{Count: res.Total, Idle: time.Second})
	return res, srv.Tracker.Report(res.Sent)
}

func TestLoopbackTCP(t *testing.T) {
	f := func(framing, format string, conns int, rate float64) {
		t.Helper()
		const n = 200000
		res, rep := loopback(t, "tcp", gen.Config{Framing: framing, Format: format, Conns: conns, Rate: rate, Count: n})
		if res.Total != n || rep.Unique != n || rep.Lost != 0 || rep.Dups != 0 || rep.Bad != 0 || rep.Reordered != 0 || len(rep.Streams) != conns {
			t.Fatalf("%s/%s conns=%d: sent %d, report %+v", framing, format, conns, res.Total, rep)
		}
		if rep.Latency.Count != n || rep.Latency.P50 <= 0 {
			t.Fatalf("latency %+v", rep.Latency)
		}
		t.Logf("%s/%s conns=%d rate=%.0f: sent %.0f msg/s, latency p50 %v p99 %v", framing, format, conns, rate, res.Rate, rep.Latency.P50, rep.Latency.P99)
	}
	f(stamp.OctetCounting, stamp.RFC5424, 1, 0)
	f(stamp.LF, stamp.RFC3164, 3, 0)
	f(stamp.OctetCounting, stamp.RFC5424, 2, 400000) // paced: 0.5 s
}

func TestLoopbackUDP(t *testing.T) {
	// A modest rate the receiver keeps up with even on a busy 2-core box.
	const n = 200000
	res, rep := loopback(t, "udp", gen.Config{Conns: 2, Rate: 100000, Count: n})
	if res.Total != n || rep.Unique+rep.Lost != n || rep.Dups != 0 || rep.Bad != 0 {
		t.Fatalf("sent %d, report %+v", res.Total, rep)
	}
	// Loopback UDP may drop under a CPU-starved receiver; it must be rare.
	if rep.LossPct > 1 {
		t.Fatalf("loss %.2f%% at 100k msg/s on loopback", rep.LossPct)
	}
	if el := res.Elapsed; el < 1900*time.Millisecond || el > 4*time.Second {
		t.Fatalf("pacing: 200k messages at 100k/s took %v", el)
	}
	t.Logf("udp: sent %.0f msg/s, lost %d, p50 %v", res.Rate, rep.Lost, rep.Latency.P50)
}

func TestDurationStops(t *testing.T) {
	start := time.Now()
	res, rep := loopback(t, "tcp", gen.Config{Duration: 300 * time.Millisecond, Rate: 10000, Conns: 2})
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("a 300 ms run took %v", d)
	}
	if res.Total < 2000 || res.Total > 4000 || rep.Unique != res.Total || rep.Lost != 0 {
		t.Fatalf("sent %d, received %+v", res.Total, rep)
	}
}

func TestConfigErrors(t *testing.T) {
	f := func(cfg gen.Config) {
		t.Helper()
		if _, err := gen.New(cfg); err == nil {
			t.Fatalf("New(%+v) accepted", cfg)
		}
	}
	f(gen.Config{Target: "127.0.0.1:514", Count: 1})
	f(gen.Config{Target: "http://127.0.0.1:514", Count: 1})
	f(gen.Config{Target: "tcp://127.0.0.1:514"})
	f(gen.Config{Target: "tcp://127.0.0.1:514", Count: 1, Format: "json"})
	f(gen.Config{Target: "tcp://127.0.0.1:514", Count: 1, Framing: "nul"})
}

// relp:// generator against a relp:// receiver: a RELP session per stream,
// every message acknowledged, none lost.
func TestLoopbackRELP(t *testing.T) {
	const n = 100000
	res, rep := loopback(t, "relp", gen.Config{Format: stamp.RFC5424, Conns: 2, Count: n})
	if res.Total != n || rep.Unique != n || rep.Lost != 0 || rep.Dups != 0 || rep.Bad != 0 || len(rep.Streams) != 2 {
		t.Fatalf("sent %d, report %+v", res.Total, rep)
	}
	t.Logf("relp: sent %.0f msg/s, latency p50 %v p99 %v", res.Rate, rep.Latency.P50, rep.Latency.P99)
}
