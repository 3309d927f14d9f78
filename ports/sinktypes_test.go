package ports

// The test configs name sink types, which their packages register, as in
// cmd/wharf.
import (
	_ "wharf/sinks/file"
	_ "wharf/sinks/kafka"
	_ "wharf/sinks/stdout"
	_ "wharf/sinks/syslog"
)
