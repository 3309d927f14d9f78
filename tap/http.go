package tap

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// NoticePrefix starts the lines a tap stream adds itself (start, lost
// lines, end). `wharf tap` moves them to stderr so stdout carries only
// messages.
const NoticePrefix = "# wharf tap: "

// lostReportInterval is how often a stream reports newly lost lines.
const lostReportInterval = time.Second

// Handler serves GET /api/tap: it streams the matching messages of one
// frontend or port as lines (chunked, flushed as they come) until the
// client goes away or the hub closes.
//
// Query parameters: frontend=NAME or port=N (one of them), severity=SEL
// (see ParseSeverity), host=GLOB, app=GLOB, raw=1 (bytes as received,
// control characters and a leading '#' escaped as AppendRaw says, instead
// of JSON objects), buffer=N (lines held for a slow reader, default
// DefaultBuffer, at most the hub's Limits.MaxBuffer; the hub's
// Limits.Bytes bounds them too). Lines starting with NoticePrefix are the
// stream's own notices, e.g. "# wharf tap: lost 120 lines (reader too
// slow ...)"; no message line starts with '#'. While the hub's
// Limits.Taps streams are open, a further request gets 503. A stream
// whose client takes nothing for the hub's Limits.Stall (every write
// waits: the client stopped reading, or died without a FIN) is ended, so
// its place is free again; Hub.Stalled counts these and log (nil: none)
// gets one line for each.
//
// hasPort reports whether a syslog bind listens on a port, so a typo
// is an error instead of a silent stream; nil accepts every port.
func Handler(h *Hub, hasPort func(uint16) bool, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, buffer, err := parseQuery(r, h.Limits().MaxBuffer)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if f.Port != 0 && hasPort != nil && !hasPort(f.Port) {
			http.Error(w, fmt.Sprintf("tap: no syslog bind listens on port %d (see GET /api/status for the binds)", f.Port), http.StatusNotFound)
			return
		}
		s, err := h.Subscribe(f, buffer)
		if err != nil {
			code := http.StatusNotFound
			if errors.Is(err, ErrClosed) || errors.Is(err, ErrTooMany) {
				code = http.StatusServiceUnavailable
			}
			http.Error(w, err.Error(), code)
			return
		}
		defer s.Close()
		if err := stream(w, r, s); errors.Is(err, os.ErrDeadlineExceeded) {
			h.stalled.Add(1)
			if log != nil {
				log.Warn("tap: ended a stream whose client took nothing for the stall limit (stopped reading, or gone without closing); its place is free again",
					"peer", r.RemoteAddr, "tap", describe(f), "stall", h.Limits().Stall, "lost_lines", s.Lost())
			}
		}
	})
}

// parseQuery reads the filter and buffer (0: the default) of a request;
// buffer may be at most maxBuffer lines.
func parseQuery(r *http.Request, maxBuffer int) (Filter, int, error) {
	q := r.URL.Query()
	var f Filter
	f.Frontend = q.Get("frontend")
	if p := q.Get("port"); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return f, 0, fmt.Errorf("tap: port=%q is not a port number 1..65535", p)
		}
		f.Port = uint16(n)
	}
	if (f.Frontend == "") == (f.Port == 0) {
		return f, 0, fmt.Errorf("tap: give exactly one of frontend=NAME or port=N")
	}
	sev, err := ParseSeverity(q.Get("severity"))
	if err != nil {
		return f, 0, err
	}
	f.Severities = sev
	f.Host, f.App = q.Get("host"), q.Get("app")
	switch q.Get("raw") {
	case "", "0", "false":
	default:
		f.Raw = true
	}
	buffer := 0
	if b := q.Get("buffer"); b != "" {
		n, err := strconv.Atoi(b)
		if err != nil || n < 1 || n > maxBuffer {
			return f, 0, fmt.Errorf("tap: buffer=%q is not a line count 1..%d", b, maxBuffer)
		}
		buffer = n
	}
	return f, buffer, nil
}

func describe(f Filter) string {
	var parts []string
	if f.Frontend != "" {
		parts = append(parts, "frontend "+f.Frontend)
	}
	if f.Port != 0 {
		parts = append(parts, "port "+strconv.Itoa(int(f.Port)))
	}
	if f.Severities != 0 {
		var names []string
		for i := 0; i < 8; i++ {
			if f.Severities&(1<<uint(i)) != 0 {
				names = append(names, severityNames[i])
			}
		}
		parts = append(parts, "severity "+strings.Join(names, ","))
	}
	if f.Host != "" {
		parts = append(parts, "host "+f.Host)
	}
	if f.App != "" {
		parts = append(parts, "app "+f.App)
	}
	if f.Raw {
		parts = append(parts, "raw")
	} else {
		parts = append(parts, "json")
	}
	return strings.Join(parts, ", ")
}

var severityNames = [8]string{"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"}

// stream copies the subscriber's lines to w, flushing after each burst,
// and reports lost lines once a second. It returns when the client goes
// away, the hub closes or a write fails; a write that makes no progress
// for Limits.Stall fails with an error wrapping os.ErrDeadlineExceeded
// (each write and flush gets that long from its start).
func stream(w http.ResponseWriter, r *http.Request, s *Subscriber) error {
	lim := s.hub.Limits()
	rc := http.NewResponseController(w)
	// deadline gives the next write lim.Stall; a server without deadlines
	// (a test recorder) just has none.
	deadline := func() { _ = rc.SetWriteDeadline(time.Now().Add(lim.Stall)) }
	flush := func() error { deadline(); return rc.Flush() }
	// A stream ended by the hub leaves the connection open: no deadline
	// for the next request on it.
	defer func() { _ = rc.SetWriteDeadline(time.Time{}) }()
	write := func(l *[]byte) error {
		deadline()
		_, err := w.Write(*l)
		s.Release(l)
		return err
	}
	if s.filter.Raw {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	} else {
		w.Header().Set("Content-Type", "application/x-ndjson")
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	deadline()
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, "%stapping %s\n", NoticePrefix, describe(s.filter))
	if err := flush(); err != nil {
		return err
	}
	tick := time.NewTicker(lostReportInterval)
	defer tick.Stop()
	var reported uint64
	for {
		select {
		case <-r.Context().Done():
			return r.Context().Err()
		case <-s.Done():
			deadline()
			fmt.Fprintf(w, "%send (wharf is shutting down)\n", NoticePrefix)
			return flush()
		case <-tick.C:
			if lost := s.Lost(); lost != reported {
				deadline()
				fmt.Fprintf(w, "%slost %d lines (reader too slow: %d lines or %d KiB waiting, the most a tap holds; %d lost in total)\n",
					NoticePrefix, lost-reported, cap(s.ch), lim.Bytes>>10, lost)
				reported = lost
				if err := flush(); err != nil {
					return err
				}
			}
		case l := <-s.Lines():
			err := write(l)
			// Write what else is waiting, then flush once.
		burst:
			for n := 0; err == nil && n < 1024; n++ {
				select {
				case l := <-s.Lines():
					err = write(l)
				default:
					break burst
				}
			}
			if err == nil {
				err = flush()
			}
			if err != nil {
				return err
			}
		}
	}
}
