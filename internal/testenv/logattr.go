package testenv

import (
	"strconv"
	"strings"
)

// LogAttr finds the first line of a wharf text log (slog's text format,
// wharf's default) whose message is msg and returns the value of its
// attribute key, e.g. LogAttr(stderr, "admin listening", "addr"). Tests
// that start wharf with port 0 read the bound addresses back this way.
func LogAttr(log, msg, key string) (string, bool) {
	quoted := "msg=" + msg
	if strings.ContainsAny(msg, " \"=") {
		quoted = "msg=" + strconv.Quote(msg)
	}
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, " "+quoted+" ") {
			continue
		}
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, key+"="); ok {
				return v, true
			}
		}
	}
	return "", false
}
