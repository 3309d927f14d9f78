package e2e

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"wharf/internal/testenv"
)

// TestTraditionalFileLikeRsyslog: the same util-linux logger messages,
// sent over TCP to rsyslog writing RSYSLOG_TraditionalFileFormat and to
// wharf writing a file sink with encoding = "traditional" (what the
// migration guide translates "*.* /var/log/messages" to), give the same
// lines byte for byte, also for a message with a LF inside (one line,
// the LF written "#012"). Before, the guide said encoding = "rfc3164", whose
// lines start with "<PRI>" (the forwarding format), which log parsers
// and logwatch rules moved from rsyslog do not expect (audit).
func TestTraditionalFileLikeRsyslog(t *testing.T) {
	fileLikeRsyslog(t, "RSYSLOG_TraditionalFileFormat", "traditional")
}

// TestTraditionalRFC3339FileLikeRsyslog: encoding = "traditional-rfc3339"
// writes rsyslog's RSYSLOG_FileFormat, its built-in default for files
// (the line of TestTraditionalFileLikeRsyslog with an RFC 3339 timestamp
// that keeps the sender's fraction and offset), byte for byte.
func TestTraditionalRFC3339FileLikeRsyslog(t *testing.T) {
	fileLikeRsyslog(t, "RSYSLOG_FileFormat", "traditional-rfc3339")
}

// fileLikeRsyslog sends the same messages to rsyslog writing a file with
// template and to wharf writing a file sink with encoding, and compares
// the lines.
func fileLikeRsyslog(t *testing.T, template, encoding string) {
	logger := testenv.Tool(t, "logger")
	rsPort, port := testenv.FreePort(t), testenv.FreePort(t)
	r := startRsyslog(t, fmt.Sprintf(`module(load="imtcp")
input(type="imtcp" port="%d" address="127.0.0.1")
action(type="omfile" file="DIR/messages" template="%s")
`, rsPort, template), fmt.Sprintf("127.0.0.1:%d", rsPort))
	dir := t.TempDir()
	in := startIn(t, dir, "127.0.0.1:0", fmt.Sprintf(`[admin]
listen = "{{ADMIN}}"
[frontend.edge]
bind = ["tcp://127.0.0.1:%d"]
sinks = ["messages"]
[sink.messages]
type = "file"
path = "{{DIR}}/messages"
encoding = %q
`, port, encoding))

	// logger writes each message once, to a listener here; the same
	// bytes then go to both (one timestamp for both).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		var all []byte
		for {
			c, err := ln.Accept()
			if err != nil {
				got <- all
				return
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			b, _ := io.ReadAll(c)
			c.Close()
			all = append(all, b...)
		}
	}()
	sends := [][]string{
		{"--rfc3164", "--id=4242", "-t", "myapp", "hello traditional"},
		{"--rfc3164", "-t", "cron", "-p", "cron.info", "job done"},
		{"--rfc5424", "--id=7", "-t", "app5424", "-p", "local3.err", "from an RFC5424 sender"},
	}
	lp := ln.Addr().(*net.TCPAddr).Port
	for _, a := range sends {
		args := append([]string{"-n", "127.0.0.1", "-P", fmt.Sprint(lp), "-T", "--octet-count"}, a...)
		if out, err := exec.Command(logger, args...).CombinedOutput(); err != nil {
			t.Fatalf("logger %v: %v\n%s", args, err, out)
		}
	}
	ln.Close()
	stream := <-got
	// A message with a LF inside (octet counting carries it) must stay one
	// line, not forge a second one: rsyslog writes the LF as "#012".
	forged := "<14>Dec  6 05:10:11 web1 app[7]: user input: x\nDec  6 05:10:12 dc01 sshd[1]: Accepted password for root"
	stream = fmt.Appendf(stream, "%d %s", len(forged), forged)
	sends = append(sends, nil)
	// Timestamps in other shapes: RFC5424 with Z and milliseconds, with
	// a negative offset and no fraction; BSD with an ISO 8601 timestamp.
	for _, m := range []string{
		"<165>1 2026-12-06T05:10:11.123Z host5 app5 99 ID47 - zulu millis",
		"<165>1 2026-12-06T00:10:11-05:00 host5 app5 - - - offset",
		"<13>2026-12-06T05:10:11.5+01:00 host6 iso[3]: iso 8601 bsd",
	} {
		stream = fmt.Appendf(stream, "%d %s", len(m), m)
		sends = append(sends, nil)
	}
	for _, p := range []int{rsPort, port} {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(stream); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	read := func(path string) []string {
		b, _ := os.ReadFile(path)
		return strings.Split(strings.TrimSpace(string(b)), "\n")
	}
	rsFile, wharfFile := filepath.Join(r.dir, "messages"), filepath.Join(dir, "messages")
	if !testenv.Poll(10*time.Second, func() bool {
		return len(read(rsFile)) == len(sends) && len(read(wharfFile)) == len(sends)
	}) {
		t.Fatalf("rsyslog and wharf did not both write %d lines:\nrsyslog %q\nwharf %q", len(sends), read(rsFile), read(wharfFile))
	}
	want, have := read(rsFile), read(wharfFile)
	// An RFC5424 sender has no "TAG:" in its message: rsyslog writes its
	// APP-NAME[PROCID] without the colon ("app5424[7] from ..."), wharf
	// with it, as for every other line (documented under encoding).
	for i, app := range map[int]string{2: "app5424[7]", 4: "app5[99]", 5: "app5"} {
		want[i] = strings.Replace(want[i], app+" ", app+": ", 1)
	}
	for i := range want {
		if encoding == "traditional" && i >= 5 {
			// A timestamp with an offset other than wharf's zone: rsyslog
			// writes the sender's wall clock, wharf converts it to its
			// local zone (documented under encoding).
			continue
		}
		if have[i] != want[i] {
			t.Errorf("line %d:\nrsyslog: %q\nwharf:   %q", i, want[i], have[i])
		}
	}
	t.Logf("rsyslog and wharf wrote:\n%s", strings.Join(have, "\n"))
	in.stop()
}
