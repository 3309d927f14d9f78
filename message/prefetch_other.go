//go:build !amd64

package message

import "unsafe"

// prefetchW is a no-op where wharf has no prefetch instruction for it.
func prefetchW(p unsafe.Pointer, n uintptr) {}
