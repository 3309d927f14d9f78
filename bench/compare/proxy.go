package compare

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The proxy scenarios ("http" and "tcpproxy") measure wharf's proxy
// frontends against HAProxy and nginx. The backend runs inside the harness
// (its CPU counts as the harness's, not the relay's); the load comes from
// wrk (http) or from Go readers in the harness (tcpproxy).

// httpBody is what the HTTP backend answers to every request: a small
// fixed body, so the run measures per-request overhead, not bandwidth.
var httpBody = bytes.Repeat([]byte("wharf-bench backend response body 0123456789abcdef\n"), 3)[:128]

// startHTTPBackend serves httpBody on 127.0.0.1 with Go's net/http
// (keep-alive on, HTTP/1.1). Close stops it.
func startHTTPBackend() (addr string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("bench/compare: http backend: %w", err)
	}
	ct, cl := []string{"text/plain"}, []string{strconv.Itoa(len(httpBody))}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h["Content-Type"] = ct // shared, never modified by net/http
			h["Content-Length"] = cl
			w.Write(httpBody)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	go srv.Serve(ln)
	return ln.Addr().String(), func() { srv.Close() }, nil
}

// streamChunk is what the stream backend writes, over and over; the
// readers check that a connection starts with it.
var streamChunk = func() []byte {
	b := make([]byte, 1<<20)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}()

// startStreamBackend accepts TCP connections on 127.0.0.1 and writes
// streamChunk to each until the peer goes away. stop closes the listener
// and every open connection and waits for their goroutines.
func startStreamBackend() (addr string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("bench/compare: stream backend: %w", err)
	}
	var (
		mu    sync.Mutex
		conns = map[net.Conn]bool{}
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return // net.ErrClosed on stop; nothing else to do in a bench backend
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					if _, err := c.Write(streamChunk); err != nil {
						break
					}
				}
				c.Close()
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
			}()
		}
	}()
	return ln.Addr().String(), func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}, nil
}

// meter measures a relay over one run: CPU of its process tree, peak RSS
// (sampled every 250 ms), the harness's own CPU and the machine's, and
// draws the progress line.
type meter struct {
	pid          int
	u0           usage
	busy0, self0 time.Duration
	start        time.Time
	peak         atomic.Int64
	stop, done   chan struct{}
}

// startMeter begins measuring pid. line, when progress is set, returns
// the status text drawn every tick.
// meteredRun runs a load generator (wrk, h2load) for about secs against
// the relay p while metering p's CPU and memory, and returns the run with
// those figures filled in and the tool's output. It fails when the relay
// died meanwhile or the tool failed.
func meteredRun(cmd *exec.Cmd, p *Proc, progress io.Writer, label, tool string, secs int) (Run, string, error) {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	m := startMeter(p.Pid(), progress, func(el time.Duration) string {
		return fmt.Sprintf("%s: %s %.1fs/%ds", label, tool, el.Seconds(), secs)
	})
	err := cmd.Run()
	var child time.Duration
	if cmd.ProcessState != nil {
		child = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	var r Run
	m.finish(&r, child)
	if exited, perr := p.Exited(); exited {
		return r, "", fmt.Errorf("relay died during the run: %v", perr)
	}
	if err != nil {
		return r, "", fmt.Errorf("%s: %v: %s", tool, err, oneLine(out.String()))
	}
	return r, out.String(), nil
}

func startMeter(pid int, progress io.Writer, line func(elapsed time.Duration) string) *meter {
	m := &meter{pid: pid, u0: treeUsage(pid), busy0: machineBusy(), self0: selfCPU(), start: time.Now(),
		stop: make(chan struct{}), done: make(chan struct{})}
	m.peak.Store(m.u0.rss)
	go func() {
		defer close(m.done)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-m.stop:
				return
			case <-t.C:
			}
			if u := treeUsage(pid); u.rss > m.peak.Load() {
				m.peak.Store(u.rss)
			}
			if progress != nil {
				fmt.Fprintf(progress, "\r\033[K%s", line(time.Since(m.start)))
			}
		}
	}()
	return m
}

// finish ends the measurement and fills r's CPU, PeakRSS, HarnessCPU and
// OthersBusy. child is CPU used by the harness's own child processes
// (wrk), which /proc/self does not include.
func (m *meter) finish(r *Run, child time.Duration) {
	u1 := treeUsage(m.pid)
	busy1, self1 := machineBusy(), selfCPU()
	wall := time.Since(m.start)
	close(m.stop)
	<-m.done
	r.PeakRSS = max(m.peak.Load(), u1.rss)
	r.CPU = (u1.cpu - m.u0.cpu).Seconds()
	r.HarnessCPU = (self1 - m.self0 + child).Seconds()
	if others := (busy1 - m.busy0).Seconds() - r.CPU - r.HarnessCPU; others > 0 {
		r.OthersBusy = others / (wall.Seconds() * float64(runtime.NumCPU()))
	}
}

// startRelay starts rl for a proxy scenario whose backend is at backend
// and waits until it accepts connections.
func startRelay(ctx context.Context, o Options, sc Scenario, rl *Relay, dir, backend string) (*Proc, string, error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	s := Setup{Kind: sc.Kind, In: "tcp", InAddr: fmt.Sprintf("127.0.0.1:%d", port), OutAddr: backend, Dir: dir, Root: o.Root, Exe: o.Exe}
	p, err := rl.Start(s)
	if err != nil {
		return nil, "", err
	}
	if err := waitListening(ctx, "tcp", s.InAddr, p, 15*time.Second); err != nil {
		p.Stop(5 * time.Second)
		return nil, "", err
	}
	return p, s.InAddr, nil
}

// wrkScript makes wrk print its summary as one machine-readable line:
// requests, duration (µs), bytes, socket errors (connect, read, write,
// timeout), non-2xx/3xx responses, and latency p50, p99, p99.9, max and
// mean in µs from wrk's own histogram (the one --latency prints).
const wrkScript = `-- Written by wharf-bench compare.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WHARF-BENCH %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f\n",
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.timeout, e.status,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean))
end
`

// wrkResult is wrk's summary line.
type wrkResult struct {
	requests, bytes, sockErrs, non2xx uint64
	duration                          time.Duration
	p50, p99, p999, max, mean         time.Duration
}

// parseWrk finds the WHARF-BENCH line in wrk's output.
func parseWrk(out string) (wrkResult, error) {
	var w wrkResult
	for _, line := range strings.Split(out, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "WHARF-BENCH ")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 13 {
			break
		}
		v := make([]uint64, len(f))
		for i, s := range f {
			n, err := strconv.ParseFloat(s, 64)
			if err != nil || n < 0 {
				return w, fmt.Errorf("bench/compare: wrk summary field %d is %q", i, s)
			}
			v[i] = uint64(n)
		}
		us := func(x uint64) time.Duration { return time.Duration(x) * time.Microsecond }
		w = wrkResult{requests: v[0], duration: us(v[1]), bytes: v[2], sockErrs: v[3] + v[4] + v[5] + v[6], non2xx: v[7],
			p50: us(v[8]), p99: us(v[9]), p999: us(v[10]), max: us(v[11]), mean: us(v[12])}
		return w, nil
	}
	return w, fmt.Errorf("bench/compare: no summary line in wrk's output: %s", oneLine(out))
}

// runHTTP is one HTTP proxy run: backend, relay, one checked request,
// then wrk through the relay.
func runHTTP(ctx context.Context, o Options, sc Scenario, rl *Relay, dir, label string) Run {
	fail := func(err error) Run { return Run{Err: err.Error()} }
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		return fail(errors.New("wrk not installed (bash bench/peers/install.sh)"))
	}
	backend, stopBackend, err := startHTTPBackend()
	if err != nil {
		return fail(err)
	}
	defer stopBackend()
	p, in, err := startRelay(ctx, o, sc, rl, dir, backend)
	if err != nil {
		return fail(err)
	}
	defer p.Stop(5 * time.Second)
	url := "http://" + in + "/"
	if err := checkHTTP(ctx, url); err != nil {
		return fail(err)
	}
	script, err := write(dir, "summary.lua", wrkScript)
	if err != nil {
		return fail(err)
	}
	secs := max(1, int(sc.Duration.Round(time.Second)/time.Second))
	cmd := exec.CommandContext(ctx, wrk, fmt.Sprintf("-t%d", o.HTTPThreads), fmt.Sprintf("-c%d", o.HTTPConns),
		fmt.Sprintf("-d%ds", secs), "--latency", "--timeout", "5s", "-s", script, url)
	r, out, err := meteredRun(cmd, p, o.Progress, label, "wrk", secs)
	if err != nil {
		return fail(err)
	}
	w, err := parseWrk(out)
	if err != nil {
		return fail(err)
	}
	r.Requests, r.Non2xx, r.SocketErrors = w.requests, w.non2xx, w.sockErrs
	r.Latency.Count, r.Latency.P50, r.Latency.P99, r.Latency.P999, r.Latency.Max, r.Latency.Mean = w.requests, w.p50, w.p99, w.p999, w.max, w.mean
	if w.duration > 0 {
		r.Delivered = float64(w.requests) / w.duration.Seconds()
	}
	if w.requests > 0 {
		r.CPUPerM = r.CPU / float64(w.requests) * 1e6
	}
	if r.CPU > 0 {
		r.MsgPerCPU = float64(w.requests) / r.CPU
	}
	if w.requests == 0 {
		r.Err = "wrk completed no request: " + oneLine(out)
	}
	return r
}

// checkHTTP sends one request on a fresh connection and expects the
// backend's body: a relay that answers with an error page is caught
// before it is measured.
func checkHTTP(ctx context.Context, url string) error {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	var last error
	for i := 0; i < 20 && ctx.Err() == nil; i++ { // a relay may accept before its backend pool is ready
		resp, err := c.Get(url)
		if err == nil {
			b, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && rerr == nil && bytes.Equal(b, httpBody) {
				return nil
			}
			err = fmt.Errorf("status %d, %d body bytes (%v)", resp.StatusCode, len(b), rerr)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("bench/compare: first request through the relay to %s failed: %v", url, last)
}

// runStream is one TCP proxy run: a streaming backend, the relay, and
// o.StreamConns readers pulling through it for sc.Duration.
func runStream(ctx context.Context, o Options, sc Scenario, rl *Relay, dir, label string) Run {
	fail := func(err error) Run { return Run{Err: err.Error()} }
	backend, stopBackend, err := startStreamBackend()
	if err != nil {
		return fail(err)
	}
	defer stopBackend()
	p, in, err := startRelay(ctx, o, sc, rl, dir, backend)
	if err != nil {
		return fail(err)
	}
	defer p.Stop(5 * time.Second)

	var total atomic.Uint64
	m := startMeter(p.Pid(), o.Progress, func(el time.Duration) string {
		return fmt.Sprintf("%s: reading %.1fs/%.0fs, %.2f GB", label, el.Seconds(), sc.Duration.Seconds(), float64(total.Load())/1e9)
	})
	start := time.Now()
	end := start.Add(sc.Duration)
	errs := make(chan error, o.StreamConns)
	for i := 0; i < o.StreamConns; i++ {
		go func() { errs <- pull(ctx, in, end, &total) }()
	}
	var first error
	for i := 0; i < o.StreamConns; i++ {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	el := time.Since(start)
	var r Run
	m.finish(&r, 0)
	if exited, err := p.Exited(); exited {
		return fail(fmt.Errorf("relay died during the run: %v", err))
	}
	if first != nil {
		return fail(first)
	}
	r.Bytes = total.Load()
	r.Delivered = float64(r.Bytes) / el.Seconds()
	if r.Bytes > 0 {
		r.CPUPerGB = r.CPU / float64(r.Bytes) * 1e9
	}
	if r.CPU > 0 {
		r.MsgPerCPU = float64(r.Bytes) / r.CPU
	}
	return r
}

// pull reads one connection through the relay until end, adding what it
// read to total. The stream must start with the backend's chunk.
func pull(ctx context.Context, addr string, end time.Time, total *atomic.Uint64) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("bench/compare: dial relay: %w", err)
	}
	defer c.Close()
	c.SetReadDeadline(end)
	br := bufio.NewReaderSize(c, 256<<10)
	head := make([]byte, 4096)
	if _, err := io.ReadFull(br, head); err != nil {
		return fmt.Errorf("bench/compare: first 4 KiB through the relay: %w", err)
	}
	if !bytes.Equal(head, streamChunk[:len(head)]) {
		return errors.New("bench/compare: the stream through the relay does not start with the backend's bytes")
	}
	total.Add(uint64(len(head)))
	buf := make([]byte, 256<<10)
	for {
		n, err := br.Read(buf)
		total.Add(uint64(n))
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil
			}
			return fmt.Errorf("bench/compare: reading through the relay: %w", err)
		}
	}
}
