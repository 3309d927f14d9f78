package diskbuf

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
)

const (
	ckMagic = "wharfck1"
	ckSize  = len(ckMagic) + 8 + 8 + 4
)

func putU64(b []byte, v uint64) {
	putU32(b[0:4], uint32(v))
	putU32(b[4:8], uint32(v>>32))
}

func getU64(b []byte) uint64 { return uint64(getU32(b[0:4])) | uint64(getU32(b[4:8]))<<32 }

// encodeCheckpoint returns the ack file's bytes for p.
func encodeCheckpoint(p Position) []byte {
	b := make([]byte, ckSize)
	copy(b, ckMagic)
	putU64(b[8:], p.Seg)
	putU64(b[16:], uint64(p.Off))
	putU32(b[24:], crc32.Checksum(b[:24], castagnoli))
	return b
}

// decodeCheckpoint parses an ack file; ok is false when it is not one.
func decodeCheckpoint(b []byte) (p Position, ok bool) {
	if len(b) != ckSize || string(b[:8]) != ckMagic || crc32.Checksum(b[:24], castagnoli) != getU32(b[24:]) {
		return Position{}, false
	}
	off := getU64(b[16:])
	if off > 1<<62 {
		return Position{}, false
	}
	return Position{Seg: getU64(b[8:]), Off: int64(off)}, true
}

// readCheckpoint reads dir's ack file. A missing file gives ok false; an
// invalid one ok and present false. Only I/O errors other than "not
// found" are errors.
func readCheckpoint(dir string) (p Position, ok, present bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, ackName))
	if errors.Is(err, fs.ErrNotExist) {
		return Position{}, false, false, nil
	}
	if err != nil {
		return Position{}, false, true, fmt.Errorf("diskbuf: read checkpoint: %w", err)
	}
	p, ok = decodeCheckpoint(b)
	return p, ok, true, nil
}

// saveCheckpoint replaces dir's ack file atomically: write ack.tmp,
// (fsync), rename over ack, (fsync the directory).
func saveCheckpoint(dir string, p Position, sync bool) error {
	tmp := filepath.Join(dir, ackName+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("diskbuf: write checkpoint: %w", err)
	}
	_, err = f.Write(encodeCheckpoint(p))
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, ackName))
	}
	if err == nil && sync {
		var d *os.File
		if d, err = os.Open(dir); err == nil {
			err = d.Sync()
			d.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("diskbuf: write checkpoint: %w", err)
	}
	return nil
}
