package recv

import (
	"math/rand/v2"
	"testing"
)

// feed adds seqs of stream 0 to a fresh tracker in batches of 7.
func feed(seqs []uint64) *Tracker {
	t := NewTracker()
	for len(seqs) > 0 {
		n := min(7, len(seqs))
		recs := make([]Record, n)
		for i := range recs {
			recs[i] = Record{Stream: 0, Seq: seqs[i], Sent: 1}
		}
		t.Add(2, recs, 0, 0, 0)
		seqs = seqs[n:]
	}
	return t
}

func seqRange(lo, hi uint64) []uint64 {
	var s []uint64
	for i := lo; i < hi; i++ {
		s = append(s, i)
	}
	return s
}

func TestTrackerAccounting(t *testing.T) {
	f := func(name string, seqs []uint64, expected uint64, unique, dups, lost, reordered uint64) {
		t.Helper()
		r := feed(seqs).Report([]uint64{expected})
		if r.Unique != unique || r.Dups != dups || r.Lost != lost || r.Reordered != reordered || r.Received != uint64(len(seqs)) {
			t.Fatalf("%s: got unique=%d dups=%d lost=%d reordered=%d received=%d; want %d %d %d %d %d",
				name, r.Unique, r.Dups, r.Lost, r.Reordered, r.Received, unique, dups, lost, reordered, len(seqs))
		}
	}
	f("in order", seqRange(0, 1000), 1000, 1000, 0, 0, 0)
	f("tail loss seen only with expected", seqRange(0, 900), 1000, 900, 0, 100, 0)
	f("holes", append(seqRange(0, 10), seqRange(20, 30)...), 30, 20, 0, 10, 0)
	f("dups", append(seqRange(0, 10), 3, 3, 9), 10, 10, 3, 0, 2)
	f("swap", []uint64{0, 2, 1, 3}, 4, 4, 0, 0, 1)
	f("first message lost", seqRange(1, 5), 5, 4, 0, 1, 0)
	f("empty", nil, 10, 0, 0, 10, 0)

	// Beyond the bitmap window: holes become gap ranges, late arrivals fill them.
	big := append(seqRange(0, 100), seqRange(200, 3*windowBits)...)
	f("hole slides out of window", big, 3*windowBits, 3*windowBits-100, 0, 100, 0)
	late := append(append([]uint64{}, big...), 150, 150, 100, 199, 50)
	f("late fill of old hole, then dup", late, 3*windowBits, 3*windowBits-97, 2, 97, 5)
}

func TestTrackerStreamsAndRuns(t *testing.T) {
	tr := NewTracker()
	tr.Add(10, []Record{{0, 0, 1}, {1, 0, 1}, {1, 1, 1}, {0, 1, 1}, {2, 5, 1}}, 4, 3, 100)
	r := tr.Report([]uint64{2, 3, 6, 1})
	if len(r.Streams) != 4 || r.Unique != 5 || r.Lost != 1+5+1 || r.Foreign != 4 || r.Bad != 3 || r.Bytes != 100 {
		t.Fatalf("report %+v", r)
	}
	if r.Streams[3].Lost != 1 || r.Streams[2].HighestSeq != 5 {
		t.Fatalf("streams %+v", r.Streams)
	}
	if r.Latency.Count != 5 || r.Latency.Max != 9 {
		t.Fatalf("latency %+v", r.Latency)
	}
}

// TestTrackerRandom checks the counts against a map under random loss,
// duplication and local reordering across the window boundary.
func TestTrackerRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const n = 3 * windowBits
	var seqs []uint64
	seen := map[uint64]bool{}
	var dups uint64
	for i := uint64(0); i < n; i++ {
		switch x := r.IntN(1000); {
		case x < 5: // lost
			continue
		case x < 8: // duplicated
			seqs = append(seqs, i)
			dups++
		}
		seqs = append(seqs, i)
		seen[i] = true
	}
	for i := 0; i < 20000; i++ { // local reordering
		a := r.IntN(len(seqs) - 100)
		b := a + r.IntN(100)
		seqs[a], seqs[b] = seqs[b], seqs[a]
	}
	rep := feed(seqs).Report([]uint64{n})
	if rep.Unique != uint64(len(seen)) || rep.Dups != dups || rep.Lost != n-uint64(len(seen)) {
		t.Fatalf("unique %d dups %d lost %d; want %d %d %d", rep.Unique, rep.Dups, rep.Lost, len(seen), dups, n-uint64(len(seen)))
	}
}
