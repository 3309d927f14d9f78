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
	var total uint64
	for _, name := range []string{"/net/udp", "/net/udp6"} {
		f, err := os.Open(procRoot + name)
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			return 0, err
		}
		n, err := sumDrops(bufio.NewScanner(f), port)
		f.Close()
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

// sumDrops parses one /proc/net/udp{,6} table. Columns: sl local_address
// rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
// ref pointer drops; local_address is HEXADDR:HEXPORT.
func sumDrops(sc *bufio.Scanner, port uint16) (uint64, error) {
	var total uint64
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
		d, err := strconv.ParseUint(string(fields[len(fields)-1]), 10, 64)
		if err != nil {
			continue
		}
		total += d
	}
	return total, sc.Err()
}
