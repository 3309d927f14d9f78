// Package ascii formats numbers into byte slices on hot paths.
package ascii

// AppendUint appends n in decimal to dst, as strconv.AppendUint(dst, n,
// 10) does, but writes the digits in place: strconv formats numbers of
// 100 and up into a scratch array and copies them over, a memmove call
// per number that showed in profiles of the syslog sink's octet-counting
// prefix (one per message). It allocates only when dst has no room.
func AppendUint(dst []byte, n uint64) []byte {
	d := 1
	for v := n; v >= 10; v /= 10 {
		d++
	}
	l := len(dst)
	if cap(dst)-l < d {
		dst = append(dst, make([]byte, d)...)
	}
	dst = dst[:l+d]
	for i := l + d - 1; i > l; i-- {
		q := n / 10
		dst[i] = byte('0' + n - q*10)
		n = q
	}
	dst[l] = byte('0' + n)
	return dst
}
