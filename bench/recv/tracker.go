// Package recv holds the bench's receivers (TCP, UDP, Kafka) and the
// exact loss/duplicate accounting behind them.
//
// Receivers parse only the stamp (see bench/stamp) out of each message,
// hand (stream, seq, send time) records to a Tracker in batches, and the
// Tracker keeps, per sender stream, exactly which sequence numbers were
// seen: a sliding bitmap window of the most recent 2^20 sequence numbers
// plus a sorted list of missing ranges that slid out of the window. A
// late message that fills a recorded gap is counted as reordered, not as
// a duplicate, so the counts are exact for any reordering the memory
// bound allows (up to MaxGapRanges separate holes per stream; beyond that
// the oldest holes are forgotten and counted in Report.UntrackedGaps).
package recv

import (
	"slices"
	"sync"
	"time"

	"wharf/bench/latency"
)

const (
	windowBits  = 1 << 20 // sequence numbers held in the bitmap per stream
	windowWords = windowBits / 64
	// MaxGapRanges bounds the missing ranges remembered per stream.
	MaxGapRanges = 1 << 16
)

// Record is one received stamped message.
type Record struct {
	Stream uint32
	Seq    uint64
	// Sent is the send time in Unix nanoseconds.
	Sent int64
}

// span is a half-open range [lo, hi) of missing sequence numbers.
type span struct{ lo, hi uint64 }

// stream is the seen-set of one sender stream.
type stream struct {
	base      uint64   // window start, multiple of 64: every seq < base is seen or in gaps
	bits      []uint64 // ring of windowWords words; word for seq is (seq/64)%windowWords
	end       uint64   // highest seq seen + 1
	gaps      []span   // sorted missing ranges below base
	untracked uint64   // holes forgotten because gaps hit MaxGapRanges
	unique    uint64
	total     uint64
	dups      uint64
	reordered uint64 // arrivals with seq below the highest seen so far
}

func newStream() *stream { return &stream{bits: make([]uint64, windowWords)} }

func (s *stream) add(seq uint64) {
	s.total++
	if seq+1 < s.end {
		s.reordered++
	}
	if seq+1 > s.end {
		s.end = seq + 1
	}
	if seq < s.base {
		// Below the window: a late arrival filling a recorded hole, or a dup.
		i, found := slices.BinarySearchFunc(s.gaps, seq, func(g span, seq uint64) int {
			switch {
			case g.hi <= seq:
				return -1
			case g.lo > seq:
				return 1
			}
			return 0
		})
		if !found {
			s.dups++
			return
		}
		g := s.gaps[i]
		switch {
		case g.lo == seq && g.hi == seq+1:
			s.gaps = slices.Delete(s.gaps, i, i+1)
		case g.lo == seq:
			s.gaps[i].lo++
		case g.hi == seq+1:
			s.gaps[i].hi--
		default:
			s.gaps[i].hi = seq
			s.gaps = slices.Insert(s.gaps, i+1, span{seq + 1, g.hi})
		}
		s.unique++
		return
	}
	for seq >= s.base+windowBits {
		s.slide()
	}
	w := &s.bits[(seq/64)%windowWords]
	m := uint64(1) << (seq % 64)
	if *w&m != 0 {
		s.dups++
		return
	}
	*w |= m
	s.unique++
}

// slide moves the window up by one word, turning its unseen bits into gaps.
func (s *stream) slide() {
	w := &s.bits[(s.base/64)%windowWords]
	if *w != ^uint64(0) {
		for b := uint64(0); b < 64; b++ {
			if *w&(1<<b) == 0 {
				s.addGap(s.base + b)
			}
		}
	}
	*w = 0
	s.base += 64
}

func (s *stream) addGap(seq uint64) {
	if n := len(s.gaps); n > 0 && s.gaps[n-1].hi == seq {
		s.gaps[n-1].hi++
		return
	}
	if len(s.gaps) >= MaxGapRanges {
		s.untracked += s.gaps[0].hi - s.gaps[0].lo
		s.gaps = slices.Delete(s.gaps, 0, 1)
	}
	s.gaps = append(s.gaps, span{seq, seq + 1})
}

// Tracker accounts for every stamped message of one run. It is safe for
// concurrent use; receivers call Add with batches to keep locking rare.
type Tracker struct {
	mu      sync.Mutex
	streams map[uint32]*stream
	hist    latency.Histogram
	foreign uint64 // stamped messages of another run
	bad     uint64 // frames without a parseable stamp
	bytes   uint64
	samples []string // first unstamped messages (truncated)
	first   time.Time
	last    time.Time
	run     string // the run accounted when none was given (adopt)
}

// adopt returns the run id the Tracker accounts: the first one offered
// when the receiver was given none.
func (t *Tracker) adopt(run []byte) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.run == "" {
		t.run = string(run)
	}
	return t.run
}

// NewTracker returns an empty Tracker.
func NewTracker() *Tracker { return &Tracker{streams: map[uint32]*stream{}} }

// Add accounts for a batch of records received at now (Unix ns), plus
// counts of messages that were not records: foreign (another run's
// stamp) and bad (no stamp), and the bytes read. recs is not retained.
func (t *Tracker) Add(now int64, recs []Record, foreign, bad, bytes uint64) {
	if len(recs) == 0 && foreign == 0 && bad == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	ts := time.Unix(0, now)
	if len(recs) > 0 {
		if t.first.IsZero() {
			t.first = ts
		}
		t.last = ts
	}
	var s *stream
	cur := ^uint32(0)
	for _, r := range recs {
		if r.Stream != cur || s == nil {
			cur = r.Stream
			s = t.streams[cur]
			if s == nil {
				s = newStream()
				t.streams[cur] = s
			}
		}
		s.add(r.Seq)
		t.hist.Record(now - r.Sent)
	}
	t.foreign += foreign
	t.bad += bad
	t.bytes += bytes
}

func (t *Tracker) addSamples(s []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, x := range s {
		if len(t.samples) < maxSamples {
			t.samples = append(t.samples, x)
		}
	}
}

// Received is the number of records added so far (duplicates included).
func (t *Tracker) Received() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var n uint64
	for _, s := range t.streams {
		n += s.total
	}
	return n
}

// Unique is the number of distinct messages received so far.
func (t *Tracker) Unique() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var n uint64
	for _, s := range t.streams {
		n += s.unique
	}
	return n
}

// StreamReport is the accounting of one sender stream.
type StreamReport struct {
	Stream    uint32 `json:"stream"`
	Received  uint64 `json:"received"`
	Unique    uint64 `json:"unique"`
	Dups      uint64 `json:"duplicates"`
	Reordered uint64 `json:"reordered"`
	// Expected is how many the sender sent (0 when not known).
	Expected uint64 `json:"expected,omitempty"`
	// Lost is Expected - Unique when Expected is known, else the holes
	// below the highest sequence number seen.
	Lost uint64 `json:"lost"`
	// HighestSeq is the highest sequence number seen.
	HighestSeq uint64 `json:"highest_seq"`
}

// Report is the accounting of a whole run.
type Report struct {
	Received  uint64  `json:"received"`
	Unique    uint64  `json:"unique"`
	Dups      uint64  `json:"duplicates"`
	Reordered uint64  `json:"reordered"`
	Expected  uint64  `json:"expected,omitempty"`
	Lost      uint64  `json:"lost"`
	LossPct   float64 `json:"loss_pct"`
	Foreign   uint64  `json:"foreign"`
	Bad       uint64  `json:"bad"`
	// BadSamples are the first few messages without a stamp (at most 200
	// bytes each), to see what a relay did to them.
	BadSamples    []string        `json:"bad_samples,omitempty"`
	UntrackedGaps uint64          `json:"untracked_gaps"`
	Bytes         uint64          `json:"bytes"`
	First         time.Time       `json:"first"`      // first message received
	Last          time.Time       `json:"last"`       // last message received
	Elapsed       time.Duration   `json:"elapsed_ns"` // first to last message received
	Rate          float64         `json:"rate"`       // Unique / Elapsed
	Latency       latency.Summary `json:"latency"`
	Streams       []StreamReport  `json:"streams"`
}

// Report summarises the run. expected, when non-nil, is what each sender
// stream sent (gen.Result.Sent): it makes tail loss visible, which the
// receiver alone cannot see.
func (t *Tracker) Report(expected []uint64) Report {
	t.mu.Lock()
	defer t.mu.Unlock()
	var r Report
	ids := make([]uint32, 0, len(t.streams))
	for id := range t.streams {
		ids = append(ids, id)
	}
	for id := range expected {
		if _, ok := t.streams[uint32(id)]; !ok {
			ids = append(ids, uint32(id))
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		s := t.streams[id]
		if s == nil {
			s = newStream()
		}
		sr := StreamReport{Stream: id, Received: s.total, Unique: s.unique, Dups: s.dups, Reordered: s.reordered}
		if s.end > 0 {
			sr.HighestSeq = s.end - 1
		}
		sr.Lost = s.end - s.unique
		if int(id) < len(expected) {
			sr.Expected = expected[id]
			if sr.Expected >= s.unique {
				sr.Lost = sr.Expected - s.unique
			}
		}
		r.Streams = append(r.Streams, sr)
		r.Received += sr.Received
		r.Unique += sr.Unique
		r.Dups += sr.Dups
		r.Reordered += sr.Reordered
		r.Expected += sr.Expected
		r.Lost += sr.Lost
		r.UntrackedGaps += s.untracked
	}
	if d := r.Expected; d > 0 {
		r.LossPct = 100 * float64(r.Lost) / float64(d)
	} else if d := r.Unique + r.Lost; d > 0 {
		r.LossPct = 100 * float64(r.Lost) / float64(d)
	}
	r.Foreign, r.Bad, r.Bytes = t.foreign, t.bad, t.bytes
	r.BadSamples = slices.Clone(t.samples)
	r.First, r.Last = t.first, t.last
	r.Elapsed = t.last.Sub(t.first)
	if r.Elapsed > 0 {
		r.Rate = float64(r.Unique) / r.Elapsed.Seconds()
	}
	r.Latency = t.hist.Summary()
	return r
}
