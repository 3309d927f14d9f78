package proxy

// Retired returns how many backends a reload removed or replaced are
// still open (waiting for what is in flight to them).
func (s *Set) Retired() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.retired)
}
