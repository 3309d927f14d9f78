//go:build race

package kafka

// raceEnabled: the race detector makes sync.Pool drop items at random, so
// kafka-go's pooled buffers get allocated again; allocation counts are
// meaningless then.
const raceEnabled = true
