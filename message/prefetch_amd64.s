#include "textflag.h"

// func prefetchW(p unsafe.Pointer, n uintptr)
TEXT ·prefetchW(SB), NOSPLIT|NOFRAME, $0-16
	MOVQ p+0(FP), AX
	MOVQ n+8(FP), CX
	ADDQ AX, CX
loop:
	CMPQ AX, CX
	JAE  done
	// PREFETCHW (AX): 0F 0D /1, which Go's assembler does not name.
	BYTE $0x0F; BYTE $0x0D; BYTE $0x08
	ADDQ $64, AX
	JMP  loop
done:
	RET
