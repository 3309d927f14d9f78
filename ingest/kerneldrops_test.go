package ingest

import (
	"bufio"
	"strings"
	"testing"
)

func TestScanUDPTable(t *testing.T) {
	table := `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
 1234: 0100007F:158A 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 51234 2 0000000000000000 17
 1235: 0100007F:158A 00000000:0000 07 00000000:00001000 00:00000000 00000000     0        0 51235 2 0000000000000000 3
 1236: 00000000:0044 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 51236 2 0000000000000000 99
`
	f := func(port uint16, want udpPort) {
		t.Helper()
		got, err := scanUDPTable(bufio.NewScanner(strings.NewReader(table)), port)
		if err != nil || got != want {
			t.Errorf("port %d: got %+v, %v; want %+v", port, got, err, want)
		}
	}
	f(5514, udpPort{sockets: 2, queued: 0x1000, drops: 20}) // two reuseport sockets on 0x158A
	f(68, udpPort{sockets: 1, drops: 99})
	f(9, udpPort{})
}

func TestUDPKernelDropsReadsProc(t *testing.T) {
	// The real /proc must parse without error (the value depends on the host).
	if _, err := udpKernelDrops("/proc", 5514); err != nil {
		t.Fatal(err)
	}
}
