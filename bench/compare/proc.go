package compare

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// clockTick is USER_HZ, the unit of /proc/PID/stat CPU times (100 on Linux).
const clockTick = 10 * time.Millisecond

// usage is a process tree's CPU time and memory at one instant.
type usage struct {
	cpu time.Duration // utime+stime of live members plus their reaped children
	rss int64         // sum of VmHWM (peak RSS) over live members, bytes
}

// treeUsage samples pid and all its descendants from /proc. Forking
// relays (socat) and multi-threaded ones (threads share the process's
// /proc/PID/stat) are both covered.
func treeUsage(pid int) usage {
	var u usage
	seen := map[int]bool{}
	var walk func(int)
	walk = func(p int) {
		if seen[p] {
			return
		}
		seen[p] = true
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p)); err == nil {
			if i := bytes.LastIndexByte(st, ')'); i > 0 {
				f := strings.Fields(string(st[i+1:]))
				// f[0] is field 3 (state); utime..cstime are fields 14..17.
				if len(f) > 15 {
					for _, s := range f[11:15] {
						n, _ := strconv.ParseInt(s, 10, 64)
						u.cpu += time.Duration(n) * clockTick
					}
				}
			}
		}
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p)); err == nil {
			for _, line := range strings.Split(string(st), "\n") {
				if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
					kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
					u.rss += kb << 10
				}
			}
		}
		tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", p))
		for _, t := range tasks {
			ch, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", p, t.Name()))
			for _, c := range strings.Fields(string(ch)) {
				if n, err := strconv.Atoi(c); err == nil {
					walk(n)
				}
			}
		}
	}
	walk(pid)
	return u
}

// Proc is a started relay process.
type Proc struct {
	cmd    *exec.Cmd
	done   chan struct{}
	err    error
	output *tailBuffer
}

// startProc starts argv with env added, its output kept (last 8 KiB) for
// error messages.
func startProc(argv []string, env []string, dir string) (*Proc, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = dir
	out := &tailBuffer{max: 8 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	p := &Proc{cmd: cmd, done: make(chan struct{}), output: out}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Exited reports whether the process has ended, with its error and output.
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, fmt.Errorf("exited (%v): %s", p.err, p.output.String())
	default:
		return false, nil
	}
}

// Stop sends SIGTERM to the process group, then SIGKILL after grace.
func (p *Proc) Stop(grace time.Duration) {
	syscall.Kill(-p.Pid(), syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		syscall.Kill(-p.Pid(), syscall.SIGKILL)
		<-p.done
	}
}

// waitListening waits until something accepts TCP connections on addr,
// or, for UDP, until a socket is bound to its port (from /proc/net/udp).
func waitListening(ctx context.Context, scheme, addr string, p *Proc, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	_, port, _ := net.SplitHostPort(addr)
	for {
		if exited, err := p.Exited(); exited {
			return err
		}
		if scheme == "tcp" || scheme == "relp" || scheme == "tls" {
			c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
			if err == nil {
				c.Close()
				return nil
			}
		} else if udpBound(port) {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("nothing listening on %s://%s after %v: %s", scheme, addr, timeout, p.output.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func udpBound(port string) bool {
	n, _ := strconv.Atoi(port)
	hex := fmt.Sprintf(":%04X ", n)
	for _, f := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		b, _ := os.ReadFile(f)
		for _, line := range strings.Split(string(b), "\n") {
			fs := strings.Fields(line)
			if len(fs) > 2 && strings.HasSuffix(fs[1]+" ", hex) {
				return true
			}
		}
	}
	return false
}

// freePort returns a port that was free a moment ago on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	// Also check UDP, since relays bind both in some scenarios.
	port := l.Addr().(*net.TCPAddr).Port
	u, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return freePort()
	}
	u.Close()
	return port, nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}

// Splice is the framing-blind byte-copy relay used as the ceiling: it
// accepts TCP connections on listen and copies each one's bytes to a new
// connection to to, and that one's bytes back (io.Copy between TCP
// sockets uses splice(2)); one side's end of stream is passed on as a
// half-close. It runs
// until ctx ends. It is run as its own process (wharf-bench splice) so its
// CPU time is measured like any other relay's.
func Splice(ctx context.Context, listen, to string) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("bench/compare: splice: %w", err)
	}
	context.AfterFunc(ctx, func() { ln.Close() })
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		in, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("bench/compare: splice: accept: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer in.Close()
			out, err := net.Dial("tcp", to)
			if err != nil {
				return
			}
			defer out.Close()
			stop := context.AfterFunc(ctx, func() { in.Close(); out.Close() })
			defer stop()
			back := make(chan struct{})
			go func() { // server to client (the proxy scenarios stream this way)
				defer close(back)
				io.Copy(in, out)
				in.(*net.TCPConn).CloseWrite()
			}()
			io.Copy(out, in)
			out.(*net.TCPConn).CloseWrite()
			<-back
		}()
	}
}

// machineBusy is the whole machine's non-idle CPU time so far (/proc/stat).
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var busy int64
	for i, v := range f[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		if i >= 8 { // guest times are already in user
			break
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		busy += n
	}
	return time.Duration(busy) * clockTick
}

// selfCPU is this process's (generator and receiver) CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
