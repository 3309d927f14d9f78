package diskbuf

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const crashEnv = "WHARF_DISKBUF_CRASH_DIR"

var crashOpts = Options{MaxSegmentBytes: 8 << 10, MaxTotalBytes: 64 << 20, Fsync: FsyncAlways}

// TestCrashChild is the process TestKill9 kills: two goroutines append
// "<round> <producer> <seq>" records and print each one once Append has
// returned. It only runs when re-executed by TestKill9.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		t.Skip("re-executed by TestKill9 only")
	}
	round := os.Getenv(crashEnv + "_ROUND")
	b, err := Open(dir, crashOpts)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for p := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100000 { // bounded; the parent kills long before
				rec := fmt.Sprintf("%s %d %d %s", round, p, i, strings.Repeat("y", i%200))
				if err := b.Append(context.Background(), []byte(rec)); err != nil {
					fmt.Println("append:", err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Fprintf(out, "ok %d %d\n", p, i)
				out.Flush()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	os.Exit(3)
}

// kill -9 while appending with Fsync "always": after reopening, every
// record whose Append had returned is there, in order per producer, and
// the torn tail (if the kill hit a write) is truncated and counted.
func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	dir := t.TempDir()
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$")
		cmd.Env = append(os.Environ(), crashEnv+"="+dir, crashEnv+"_ROUND="+strconv.Itoa(round))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		confirmed := [2]int{-1, -1}
		sc := bufio.NewScanner(stdout)
		deadline := time.Now().Add(5 * time.Second)
		want := 150 + 100*round
		for n := 0; n < want && time.Now().Before(deadline) && sc.Scan(); n++ {
			var p, i int
			if _, err := fmt.Sscanf(sc.Text(), "ok %d %d", &p, &i); err != nil {
				t.Fatalf("child: %s", sc.Text())
			}
			confirmed[p] = i
		}
		cmd.Process.Signal(syscall.SIGKILL)
		go func() {
			for sc.Scan() {
			}
		}()
		cmd.Wait()
		if confirmed[0] < 0 && confirmed[1] < 0 {
			t.Fatalf("round %d: child confirmed nothing", round)
		}

		b := openT(t, dir, crashOpts)
		next := [2]int{}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		for {
			recs, err := b.Next(ctx, 500, 0)
			if err != nil {
				break // drained: deadline
			}
			for _, r := range recs {
				var rd, p, i int
				if _, err := fmt.Sscanf(string(r.Data), "%d %d %d", &rd, &p, &i); err != nil {
					t.Fatalf("round %d: bad record %q", round, r.Data)
				}
				if rd != round {
					t.Fatalf("round %d: record of round %d was confirmed before", round, rd)
				}
				if i != next[p] {
					t.Fatalf("round %d producer %d: got %d, want %d", round, p, i, next[p])
				}
				next[p]++
			}
			if err := b.Ack(recs[len(recs)-1].Pos); err != nil {
				t.Fatal(err)
			}
			if next[0] > confirmed[0] && next[1] > confirmed[1] {
				cancel()
				ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
			}
		}
		cancel()
		for p := range 2 {
			if next[p] <= confirmed[p] {
				t.Fatalf("round %d producer %d: %d records survived, Append had returned for %d", round, p, next[p], confirmed[p]+1)
			}
		}
		s := b.Stats()
		t.Logf("round %d: confirmed %v, found %v, stats %+v", round, confirmed, next, s)
		if s.CorruptRecords != 0 {
			t.Fatalf("round %d: corruption after kill -9: %+v", round, s)
		}
		b.Close()
	}
}
