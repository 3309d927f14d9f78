// Package ascii formats numbers into byte slices on hot paths.
package ascii

// AppendUint appends n in decimal to dst, as strconv.AppendUint(dst, n,
// 10) does, but writes the digits in place: strconv formats numbers of
// 100 and up into a scratch array and copies them over, a memmove call
// per number that showed in profiles of the syslog sink's octet-counting
// prefix (one per message). It allocates only when dst has no room.
//
// Numbers below 10,000 (the lengths of most messages; the default
// max_message_size is 64 KiB) are written from a table of digit pairs
// without a loop: the syslog sink's 3-digit prefix took 82 instructions
// through the loop, 37 so (bench/instr.sh).
func AppendUint(dst []byte, n uint64) []byte {
	switch {
	case n < 10:
		return append(dst, byte('0'+n))
	case n < 100:
		return append(dst, digitPairs[2*n], digitPairs[2*n+1])
	case n < 1000:
		q := n / 100
		r := n - q*100
		return append(dst, byte('0'+q), digitPairs[2*r], digitPairs[2*r+1])
	case n < 10000:
		q := n / 100
		r := n - q*100
		return append(dst, digitPairs[2*q], digitPairs[2*q+1], digitPairs[2*r], digitPairs[2*r+1])
	}
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

// digitPairs is "00", "01", ... "99" back to back.
const digitPairs = "" +
	"00010203040506070809" +
	"10111213141516171819" +
	"20212223242526272829" +
	"30313233343536373839" +
	"40414243444546474849" +
	"50515253545556575859" +
	"60616263646566676869" +
	"70717273747576777879" +
	"80818283848586878889" +
	"90919293949596979899"
