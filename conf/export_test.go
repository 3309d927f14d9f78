package conf

// UnregisterSinkType removes a type a test registered, so later tests
// (the reference golden) do not see it.
func UnregisterSinkType(name string) {
	sinkTypesMu.Lock()
	defer sinkTypesMu.Unlock()
	delete(sinkTypes, name)
}
