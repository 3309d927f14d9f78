package ingest

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
)

// udpKernelDrops sums the "drops" column of /proc/net/udp and udp6 for
// sockets bound to port: datagrams the kernel discarded because a
// socket's receive buffer was full, before wharf could read them. With
// SO_REUSEPORT each event loop has its own socket on the port; all of
// them are counted. procRoot is "/proc" outside tests.
func udpKernelDrops(procRoot string, port uint16) (uint64, error) {
	st, err := udpPortState(procRoot, port)
	return st.drops, err
}

// udpPort is what the kernel reports of the UDP sockets bound to a port.
type udpPort struct {
	sockets int    // sockets bound to the port (one per event loop)
	queued  uint64 // bytes waiting in their receive queues (rx_queue)
	drops   uint64 // datagrams dropped for a full receive buffer
}

// udpPortState reads /proc/net/udp and udp6 for the sockets bound to port.
func udpPortState(procRoot string, port uint16) (udpPort, error) {
	var total udpPort
	for _, name := range []string{"/net/udp", "/net/udp6"} {
		f, err := os.Open(procRoot + name)
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			return udpPort{}, err
		}
		st, err := scanUDPTable(bufio.NewScanner(f), port)
		f.Close()
		if err != nil {
			return udpPort{}, err
		}
		total.sockets += st.sockets
		total.queued += st.queued
		total.drops += st.drops
	}
	return total, nil
}

// scanUDPTable parses one /proc/net/udp{,6} table. Columns: sl
// local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid
// timeout inode ref pointer drops; local_address is HEXADDR:HEXPORT, the
// queues are hexadecimal byte counts.
func scanUDPTable(sc *bufio.Scanner, port uint16) (udpPort, error) {
	var total udpPort
	first := true
	for sc.Scan() {
		if first { // header
			first = false
			continue
		}
		fields := bytes.Fields(sc.Bytes())
		if len(fields) < 13 {
			continue
		}
		local := fields[1]
		i := bytes.LastIndexByte(local, ':')
		if i < 0 {
			continue
		}
		p, err := strconv.ParseUint(string(local[i+1:]), 16, 16)
		if err != nil || uint16(p) != port {
			continue
		}
		total.sockets++
		if _, rx, ok := bytes.Cut(fields[4], []byte{':'}); ok {
			if q, err := strconv.ParseUint(string(rx), 16, 64); err == nil {
				total.queued += q
			}
		}
		if d, err := strconv.ParseUint(string(fields[len(fields)-1]), 10, 64); err == nil {
			total.drops += d
		}
	}
	return total, sc.Err()
}
