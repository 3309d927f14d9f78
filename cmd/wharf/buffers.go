package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"sort"
	"sync"

	"wharf/conf"
	"wharf/metrics"
	"wharf/sinks"
	"wharf/sinks/diskbuf"
)

// openBuffer opens a sink's disk buffer, if its config has one, and
// exports the buffer's counters. The caller closes it after the sink's
// runner has closed.
func openBuffer(name string, sc *conf.Sink, reg *metrics.Registry, log *slog.Logger) (*diskbuf.Buffer, sinks.Spool, error) {
	bc := sc.Buffer
	if bc == nil {
		return nil, nil, nil
	}
	b, err := diskbuf.Open(bc.Dir, diskbuf.Options{
		MaxSegmentBytes: int64(bc.SegmentBytes),
		MaxTotalBytes:   int64(bc.MaxBytes),
		Fsync:           bc.Fsync,
		FsyncInterval:   bc.FsyncInterval.Duration,
		OnFull:          bc.OnFull,
		Log:             log.With("sink", name),
	})
	if err != nil {
		return nil, nil, fmt.Errorf("sink %q: buffer %s: %w", name, bc.Dir, err)
	}
	l := []string{"sink", name}
	stat := func(f func(diskbuf.Stats) float64) func() float64 {
		return func() float64 { return f(b.Stats()) }
	}
	// The counters "since start" sum every buffer the sink has had in
	// this run: a reload that gives it a new dir registers them again
	// for the new buffer, and the old one's counts (records it lost
	// while moving, say) must not vanish from them, or from the exit
	// status that wharf_buffer_lost_records_total feeds.
	all := bufferHistory.add(reg, name, b)
	total := func(f func(diskbuf.Stats) float64) func() float64 {
		return func() float64 {
			var n float64
			for _, ob := range all() {
				n += f(ob.Stats())
			}
			return n
		}
	}
	reg.GaugeFunc("wharf_buffer_bytes", "Bytes of the sink's disk buffer segment files.", stat(func(s diskbuf.Stats) float64 { return float64(s.Bytes) }), l...)
	reg.GaugeFunc("wharf_buffer_pending_records", "Records in the disk buffer not yet confirmed by the sink, those from before a restart included (what wharf check counts as pending).", stat(func(s diskbuf.Stats) float64 { return float64(s.Pending) }), l...)
	reg.CounterFunc("wharf_buffer_corrupt_records_total", "Corrupt regions the disk buffer reader skipped (CRC or length), since start.", total(func(s diskbuf.Stats) float64 { return float64(s.CorruptRecords) }), l...)
	reg.CounterFunc("wharf_buffer_torn_tails_total", "Torn tails (partial last records after a crash) truncated at open.", total(func(s diskbuf.Stats) float64 { return float64(s.TornTails) }), l...)
	reg.GaugeFunc("wharf_buffer_writable", "1 while the disk buffer can be written; 0 while its disk is full, read-only or failing (TCP input then waits, see /readyz).", stat(func(s diskbuf.Stats) float64 {
		if s.Unwritable {
			return 0
		}
		return 1
	}), l...)
	reg.CounterFunc("wharf_buffer_sync_errors_total", "Failed fsyncs of the disk buffer since start: records written meanwhile are delivered, but may not survive a power cut (while they fail, /readyz is 503 naming the buffer).", total(func(s diskbuf.Stats) float64 { return float64(s.SyncErrors) }), l...)
	reg.CounterFunc("wharf_buffer_lost_records_total", "Records in segment files removed from disk (the buffer directory deleted while in use) before they were delivered, since start.", total(func(s diskbuf.Stats) float64 { return float64(s.LostRecords) }), l...)
	reg.CounterFunc("wharf_buffer_removals_total", "Times the buffer directory or its active segment was found removed while in use and was made again, since start.", total(func(s diskbuf.Stats) float64 { return float64(s.Removals) }), l...)
	reg.CounterFunc("wharf_buffer_dropped_full_total", "Records refused because the buffer was full (on_full = drop_newest).", total(func(s diskbuf.Stats) float64 { return float64(s.DroppedFull) }), l...)
	if st := b.Stats(); st.Bytes > 0 {
		log.Info("disk buffer holds data from the last run; unconfirmed records are delivered first",
			"sink", name, "dir", bc.Dir, "bytes", st.Bytes, "segments", st.Segments, "torn_tails", st.TornTails)
	}
	return b, diskbuf.NewSpool(b), nil
}

// verifyBuffers is `wharf check`'s look at every configured disk buffer
// that exists: records, pending, corruption. It reports whether all were
// readable and intact.
func verifyBuffers(cfg *conf.Config, w io.Writer) bool {
	names := make([]string, 0, len(cfg.Sinks))
	for n, sc := range cfg.Sinks {
		if sc.Buffer != nil {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	ok := true
	for _, n := range names {
		dir := cfg.Sinks[n].Buffer.Dir
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(w, "buffer of sink %s (%s): does not exist yet (created at start)\n", n, dir)
			continue
		}
		rep, err := diskbuf.VerifyProgress(dir, progressLine(os.Stderr, "verifying buffer of sink "+n))
		endProgress(os.Stderr)
		switch {
		case err != nil:
			fmt.Fprintf(w, "buffer of sink %s (%s): cannot verify: %v\n", n, dir, err)
			ok = false
		case rep.CorruptRecords > 0 || rep.TornTailBytes > 0:
			fmt.Fprintf(w, "buffer of sink %s (%s): %d segments, %d records (%d pending), %d corrupt regions, %d torn tail bytes: they will be skipped and counted at start\n",
				n, dir, rep.Segments, rep.Records, rep.Pending, rep.CorruptRecords, rep.TornTailBytes)
		default:
			fmt.Fprintf(w, "buffer of sink %s (%s): %d segments, %d records (%d pending), intact\n", n, dir, rep.Segments, rep.Records, rep.Pending)
		}
	}
	return ok
}

// progressLine returns a progress callback that redraws one line on w
// when w is a terminal, and nothing otherwise (logs and pipes stay clean).
func progressLine(w *os.File, what string) func(done, total int64) {
	if !isTerminal(w) {
		return nil
	}
	return func(done, total int64) {
		if total <= 0 {
			return
		}
		fmt.Fprintf(w, "\r%s: %3d%% of %d MiB", what, done*100/total, total>>20)
	}
}

// endProgress clears a progress line.
func endProgress(w *os.File) {
	if isTerminal(w) {
		fmt.Fprint(w, "\r\033[K")
	}
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// bufferHistory keeps, per metrics registry and sink name, every disk
// buffer the sink has had since start, for openBuffer's counters. It is
// not pruned: it grows by one entry per reload that gives a buffered
// sink a new dir (an operator's edit, not traffic), each a closed
// Buffer whose files are closed.
var bufferHistory = &buffersByName{m: map[*metrics.Registry]map[string][]*diskbuf.Buffer{}}

type buffersByName struct {
	mu sync.Mutex
	m  map[*metrics.Registry]map[string][]*diskbuf.Buffer
}

// add records b as one of name's buffers in reg and returns a function
// that lists them all (safe for concurrent use).
func (h *buffersByName) add(reg *metrics.Registry, name string, b *diskbuf.Buffer) func() []*diskbuf.Buffer {
	h.mu.Lock()
	defer h.mu.Unlock()
	byName := h.m[reg]
	if byName == nil {
		byName = map[string][]*diskbuf.Buffer{}
		h.m[reg] = byName
	}
	if !slices.Contains(byName[name], b) {
		byName[name] = append(byName[name], b)
	}
	return func() []*diskbuf.Buffer {
		h.mu.Lock()
		defer h.mu.Unlock()
		return slices.Clone(h.m[reg][name])
	}
}
