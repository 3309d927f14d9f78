package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"wharf/internal/testenv"
)

var fileSeqRE = regexp.MustCompile(`fseq=(\d+)$`)

// TestFileFollowsRenameWithinASecond holds the README's "a rename within a
// second" with the file sink's default check interval (the unit test
// checks at every batch): a sender writes a line every 10 ms while the
// file is renamed under the running wharf, as logrotate without
// postrotate does. Every line sent a second or more after the rename is in
// the new file at the original path, and no line is lost or doubled
// across the two files.
func TestFileFollowsRenameWithinASecond(t *testing.T) {
	port := testenv.FreePort(t)
	in := start(t, tcpEdge(port, "out")+`
[sink.out]
type = "file"
path = "{{DIR}}/out.log"
encoding = "raw"
`)
	path := filepath.Join(in.dir, "out.log")
	rotated := path + ".1"
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w := bufio.NewWriter(c)
	var sentAt []time.Time
	send := func() {
		t.Helper()
		m := fmt.Sprintf("<13>1 2026-12-06T10:00:00Z h app - - - fseq=%d", len(sentAt))
		fmt.Fprintf(w, "%d %s", len(m), m)
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		sentAt = append(sentAt, time.Now())
	}
	sendFor := func(d time.Duration) {
		t.Helper()
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
			send()
		}
	}
	sendFor(500 * time.Millisecond)
	if n := len(readLines(t, path, 1, 5*time.Second)); n == 0 {
		t.Fatal("nothing written before the rename")
	}
	if err := os.Rename(path, rotated); err != nil {
		t.Fatal(err)
	}
	renamed := time.Now()
	sendFor(1800 * time.Millisecond)
	sent := len(sentAt)
	seqs := func(file string) []int {
		var out []int
		for _, l := range readLines(t, file, 0, 0) {
			m := fileSeqRE.FindStringSubmatch(l)
			if m == nil {
				t.Fatalf("%s: unexpected line %q", file, l)
			}
			n, _ := strconv.Atoi(m[1])
			out = append(out, n)
		}
		return out
	}
	testenv.Poll(10*time.Second, func() bool {
		return len(readLines(t, path, 0, 0))+len(readLines(t, rotated, 0, 0)) >= sent
	})
	c.Close()
	in.stop()
	old, cur := seqs(rotated), seqs(path)
	count := make([]int, sent)
	for _, n := range append(append([]int(nil), old...), cur...) {
		if n >= sent {
			t.Fatalf("seq %d, only %d sent", n, sent)
		}
		count[n]++
	}
	var lost, doubled []string
	for n, k := range count {
		switch {
		case k == 0:
			lost = append(lost, strconv.Itoa(n))
		case k > 1:
			doubled = append(doubled, strconv.Itoa(n))
		}
	}
	if len(lost) > 0 || len(doubled) > 0 {
		t.Errorf("across both files, lost seqs %v, doubled %v", lost, doubled)
	}
	if len(cur) == 0 {
		t.Fatalf("nothing in the new file %s: the rename was not followed; %d lines went on into the rotated one", path, len(old))
	}
	switched := sentAt[cur[0]].Sub(renamed)
	var late []string // sent a second or more after the rename, in the old file
	for _, n := range old {
		if sentAt[n].Sub(renamed) >= time.Second {
			late = append(late, fmt.Sprintf("%d (+%v)", n, sentAt[n].Sub(renamed).Round(time.Millisecond)))
		}
	}
	t.Logf("%d lines sent; %d in the rotated file, %d in the new one; first line in the new file sent %v after the rename",
		sent, len(old), len(cur), switched.Round(time.Millisecond))
	if len(late) > 0 {
		t.Errorf("lines sent a second or more after the rename went into the rotated file: %s", strings.Join(late, ", "))
	}
	if !strings.Contains(in.stderr.String(), "writing to a new file at its path") {
		t.Errorf("no log line says the sink followed the rename")
	}
}
