//go:build !race

package kafka

// raceEnabled: see race_test.go.
const raceEnabled = false
