package route

// needsFullParse reads a sink type's default encoding, which its package
// registers, as in cmd/wharf.
import (
	_ "wharf/sinks/file"
	_ "wharf/sinks/kafka"
	_ "wharf/sinks/stdout"
	_ "wharf/sinks/syslog"
)
