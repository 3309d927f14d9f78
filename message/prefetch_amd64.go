package message

import "unsafe"

// prefetchW asks the CPU to bring the n bytes at p into this core's cache
// for writing (PREFETCHW, one per 64-byte line), without waiting for
// them. It is a hint: it never faults and changes no memory. A CPU
// without PREFETCHW (Intel before Broadwell) runs the opcode as a no-op.
//
//go:noescape
func prefetchW(p unsafe.Pointer, n uintptr)
