package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"wharf/internal/testenv"
)

// TestReloadLossExitsNonZero guards against a run that lost accepted
// messages exiting 0: a reload removes a sink whose collector is down
// with 1,000 messages queued, and they are counted as dropped (reason
// shutdown) when its drain ends. Exit status 3 says "this run dropped
// messages it had accepted", so the later stop must exit 3 whether the
// drain ended before it ("after") or the stop cut it short ("during":
// before, wharf exited without waiting for the retired sink, so the
// 1,000 were not even counted).
func TestReloadLossExitsNonZero(t *testing.T) {
	for _, when := range []string{"after", "during"} {
		t.Run(when, func(t *testing.T) {
			head := "[admin]\nlisten = \"{{ADMIN}}\"\n[global]\nshutdown_timeout = \"1s\"\n[frontend.edge]\nbind = [\"tcp://127.0.0.1:0\"]\n"
			in := start(t, head+fmt.Sprintf("sinks = [\"fwd\"]\n[sink.fwd]\ntype = \"syslog\"\nservers = [\"tcp://%s\"]\ndial_timeout = \"200ms\"\nretry_backoff = \"50ms\"\n", testenv.ClosedAddr(t)))
			msgs := make([]string, 1000)
			for i := range msgs {
				msgs[i] = fmt.Sprintf("<13>1 2026-12-06T10:00:00Z h app - - - seq=%d", i)
			}
			sendTCP(t, in.bind("edge", "tcp"), msgs)
			testenv.Eventually(t, "1,000 read", func() bool { return in.metric("wharf_frontend_received_total") == 1000 })

			cfgB := strings.ReplaceAll(head, "{{ADMIN}}", in.admin) + fmt.Sprintf("sinks = [\"out\"]\n[sink.out]\ntype = \"file\"\npath = %q\n", filepath.Join(in.dir, "out.log"))
			if err := os.WriteFile(filepath.Join(in.dir, "wharf.toml"), []byte(cfgB), 0o644); err != nil {
				t.Fatal(err)
			}
			if code, body := post(t, "http://"+in.admin+"/reload"); code != 200 {
				t.Fatalf("POST /reload = %d: %s", code, body)
			}
			if when == "after" {
				if got := in.waitMetric(1000, 5*time.Second, "wharf_sink_dropped_total", `sink="fwd"`); got != 1000 {
					t.Fatalf("retired sink's dropped = %v, want 1000", got)
				}
			}
			in.cmd.Process.Signal(os.Interrupt)
			var err error
			select {
			case err = <-in.exited:
			case <-time.After(10 * time.Second):
				t.Fatal("wharf did not exit within 10s of SIGINT")
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 3 {
				t.Fatalf("exit after a reload dropped 1,000 accepted messages (stop %s the drain): %v, want exit status 3\n%s", when, err, in.stderr.String())
			}
			line, ok := "", false
			for _, l := range strings.Split(in.stderr.String(), "\n") {
				if strings.Contains(l, "msg=stopped") {
					line, ok = l, true
				}
			}
			if !ok || !strings.Contains(line, "sink_dropped=1000") {
				t.Errorf("the stopped line does not count the 1,000:\n%s", line)
			}
			t.Log(line)
		})
	}
}

// TestStopDuringHandOverDelivers: a reload points a sink at a new
// collector while a write to the old one is stuck, and a stop follows at
// once. The old runner hands its queue over when that write gives up;
// the stop must close the new runner only after that, so the queue is
// delivered to the new collector. Found in review: the stop closed the
// new runner first (its queue still empty), the hand-over then met a
// closed runner, and everything queued was dropped as "closed" (exit 3).
func TestStopDuringHandOverDelivers(t *testing.T) {
	stuck, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	go func() { // accepts and never reads: writes block once the buffers fill
		for {
			c, err := stuck.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	good, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	sink := &lineSink{}
	go sink.serve(good)

	head := "[admin]\nlisten = \"{{ADMIN}}\"\n[global]\nshutdown_timeout = \"10s\"\n[frontend.edge]\nbind = [\"tcp://127.0.0.1:0\"]\nsinks = [\"fwd\"]\n[sink.fwd]\ntype = \"syslog\"\nwrite_timeout = \"2s\"\nretry_backoff = \"50ms\"\n"
	in := start(t, head+fmt.Sprintf("servers = [\"tcp://%s\"]\n", stuck.Addr()))
	c, err := net.Dial("tcp", in.bind("edge", "tcp"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() { // until wharf holds it back or closes: errors end it
		w := bufio.NewWriterSize(c, 64<<10)
		body := strings.Repeat("x", 200)
		for i := 0; i < 400000; i++ {
			if _, err := fmt.Fprintf(w, "%d <13>1 2026-12-06T10:00:00Z h app - - - %s\n", 46+len(body)+1, body); err != nil {
				return
			}
		}
		w.Flush()
	}()
	// The old collector's buffers fill, a write blocks, the queue builds.
	testenv.Eventually(t, "a queue behind a stuck write", func() bool {
		return in.metric("wharf_sink_queue_bytes", `sink="fwd"`) > 1<<20
	})
	cfgB := strings.ReplaceAll(head, "{{ADMIN}}", in.admin) + fmt.Sprintf("servers = [\"tcp://%s\"]\n", good.Addr())
	if err := os.WriteFile(filepath.Join(in.dir, "wharf.toml"), []byte(cfgB), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, body := post(t, "http://"+in.admin+"/reload"); code != 200 {
		t.Fatalf("POST /reload = %d: %s", code, body)
	}
	in.cmd.Process.Signal(os.Interrupt)
	select {
	case err = <-in.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("wharf did not exit within 20s of SIGINT")
	}
	line := ""
	for _, l := range strings.Split(in.stderr.String(), "\n") {
		if strings.Contains(l, "msg=stopped") {
			line = l
		}
	}
	sink.mu.Lock()
	got := len(sink.msgs)
	sink.mu.Unlock()
	t.Logf("new collector got %d; %s", got, line)
	if err != nil || !strings.Contains(line, "sink_dropped=0") {
		t.Fatalf("stop during a hand-over: exit %v, want 0 with nothing dropped; the new collector got %d\n%s", err, got, line)
	}
	if got == 0 {
		t.Fatal("the new collector got nothing: the queue was not handed over")
	}
}
