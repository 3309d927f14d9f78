package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"wharf/internal/testenv"
)

// lineCollector is a syslog collector on loopback that counts the seq=N
// numbers of the LF-framed lines it is sent.
type lineCollector struct {
	addr string
	mu   sync.Mutex
	got  map[int]int
	junk []string // lines without a seq
}

var udpSeqRE = regexp.MustCompile(`udpseq=(\d+)`)

func newLineCollector(t *testing.T) *lineCollector {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &lineCollector{addr: ln.Addr().String(), got: map[int]int{}}
	testenv.ServeEach(t, ln, func(conn net.Conn) {
		defer conn.Close()
		sc := bufio.NewScanner(conn)
		for sc.Scan() {
			m := udpSeqRE.FindStringSubmatch(sc.Text())
			c.mu.Lock()
			if m == nil {
				c.junk = append(c.junk, sc.Text())
			} else {
				n, _ := strconv.Atoi(m[1])
				c.got[n]++
			}
			c.mu.Unlock()
		}
	})
	return c
}

// distinct returns how many different seqs arrived.
func (c *lineCollector) distinct() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got)
}

// TestReloadKeepsUDPBind holds the README's "binds present in both configs
// keep their sockets (no UDP gap)": a sender paced at 2,000 datagrams/s
// into a udp:// bind while six reloads (three POST /reload, three SIGHUP)
// add and remove another frontend and sink around it. Every datagram must
// reach the collector behind the frontend's syslog sink exactly once, and
// the kernel must have dropped none on the port.
func TestReloadKeepsUDPBind(t *testing.T) {
	coll := newLineCollector(t)
	port, otherPort := testenv.FreePort(t), testenv.FreePort(t)
	dir := t.TempDir()
	admin := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	base := fmt.Sprintf(`[admin]
listen = %q
[frontend.edge]
bind = ["udp://127.0.0.1:%d"]
sinks = ["coll"]
[sink.coll]
type = "syslog"
servers = ["tcp://%s"]
out_framing = "lf"
encoding = "raw"
batch_timeout = "5ms"
`, admin, port, coll.addr)
	// extra is what the reloads add and remove: another frontend, its own
	// bind and a file sink.
	extra := fmt.Sprintf(`[frontend.other]
bind = ["tcp://127.0.0.1:%d"]
sinks = ["side"]
[sink.side]
type = "file"
path = "%s/side.log"
`, otherPort, dir)
	write := func(withExtra bool) {
		t.Helper()
		cfg := base
		if withExtra {
			cfg += extra
		}
		if err := os.WriteFile(filepath.Join(dir, "wharf.toml"), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	in := startIn(t, dir, admin, base)

	const (
		total = 8000 // 4 s at 2,000/s
		burst = 10   // datagrams per 5 ms tick
	)
	u, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	// A datagram to a closed port comes back as ECONNREFUSED on the next
	// write of a connected socket: counted, the sending goes on.
	sent := make(chan int, 1)
	go func() {
		refused := 0
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for seq := 0; seq < total; {
			<-tick.C
			for k := 0; k < burst && seq < total; k++ {
				if _, err := fmt.Fprintf(u, "<13>1 2026-12-06T10:00:00Z h app - - - udpseq=%d", seq); err != nil {
					refused++
				}
				seq++
			}
		}
		sent <- refused
	}()

	// Six reloads while it sends, alternating POST /reload and SIGHUP, each
	// adding or removing frontend "other" and sink "side".
	ok := 0.0
	for i := range 6 {
		time.Sleep(450 * time.Millisecond)
		write(i%2 == 0)
		if i%2 == 0 {
			if code, body := post(t, "http://"+admin+"/reload"); code != 200 {
				t.Fatalf("reload %d: POST /reload = %d: %s", i, code, body)
			}
		} else {
			in.cmd.Process.Signal(syscall.SIGHUP)
		}
		ok++
		testenv.Eventually(t, fmt.Sprintf("reload %d applied", i), func() bool {
			return in.metric("wharf_config_reloads_total", `result="ok"`) >= ok
		})
	}
	refused := <-sent
	testenv.Poll(15*time.Second, func() bool { return coll.distinct() == total })

	received := in.metric("wharf_frontend_received_total", `frontend="edge"`)
	kernelDrops := in.metric("wharf_frontend_udp_kernel_drops_total", `frontend="edge"`)
	in.stop()
	coll.mu.Lock()
	defer coll.mu.Unlock()
	missing, dups, first := 0, 0, -1
	for seq := range total {
		switch n := coll.got[seq]; {
		case n == 0:
			missing++
			if first < 0 {
				first = seq
			}
		case n > 1:
			dups += n - 1
		}
	}
	t.Logf("sent %d datagrams over 6 reloads (%d writes refused: port closed): wharf received %v, collector has %d distinct, %d missing (first %d), %d duplicates; udp kernel drops %v",
		total, refused, received, len(coll.got), missing, first, dups, kernelDrops)
	if missing > 0 || dups > 0 || len(coll.junk) > 0 {
		t.Errorf("%d of %d datagrams missing (first seq %d), %d duplicated, %d lines without a seq: the reloads did not keep the UDP bind whole", missing, total, first, dups, len(coll.junk))
	}
	if kernelDrops != 0 {
		t.Errorf("wharf_frontend_udp_kernel_drops_total = %v, want 0", kernelDrops)
	}
}
