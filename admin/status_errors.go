package admin

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// LastError is a component's most recent warning or error log line.
type LastError struct {
	Time    time.Time `json:"time"`
	Level   string    `json:"level"`
	Message string    `json:"message"`
}

// ErrorLog remembers the last warning or error that wharf logged for each
// sink, frontend bind and backend server, for the status page. It sits in
// the log pipeline as a slog.Handler wrapper (Handler), so components
// need not know it exists: a record is attributed by its "sink",
// "frontend"/"bind" or "backend"/"server" attributes (usually set with
// Logger.With). Safe for concurrent use.
type ErrorLog struct {
	mu    sync.Mutex
	byKey map[string]LastError
}

// NewErrorLog returns an empty ErrorLog.
func NewErrorLog() *ErrorLog { return &ErrorLog{byKey: map[string]LastError{}} }

// Handler wraps next: every record still goes to next as before (next's
// level decides), and records at Warn or above are also remembered.
func (e *ErrorLog) Handler(next slog.Handler) slog.Handler {
	return &errorHandler{next: next, log: e}
}

func (e *ErrorLog) last(kind, name string) *LastError {
	e.mu.Lock()
	defer e.mu.Unlock()
	if le, ok := e.byKey[kind+":"+name]; ok {
		return &le
	}
	return nil
}

type errorHandler struct {
	next  slog.Handler
	log   *ErrorLog
	attrs []slog.Attr // attributes given to WithAttrs outside any group
	group bool
}

func (h *errorHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || h.next.Enabled(ctx, l)
}

func (h *errorHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		h.remember(r)
	}
	if !h.next.Enabled(ctx, r.Level) {
		return nil
	}
	return h.next.Handle(ctx, r)
}

func (h *errorHandler) remember(r slog.Record) {
	var sink, frontend, bind, backend, server, errText string
	see := func(a slog.Attr) {
		v := a.Value.Resolve().String()
		switch a.Key {
		case "sink":
			sink = v
		case "frontend":
			frontend = v
		case "bind":
			bind = v
		case "backend":
			backend = v
		case "server":
			server = v
		case "err", "error":
			errText = v
		}
	}
	for _, a := range h.attrs {
		see(a)
	}
	if !h.group {
		r.Attrs(func(a slog.Attr) bool { see(a); return true })
	}
	msg := r.Message
	if errText != "" {
		msg += ": " + errText
	}
	le := LastError{Time: r.Time.UTC(), Level: r.Level.String(), Message: msg}
	var keys []string
	switch {
	case sink != "":
		keys = append(keys, "sink:"+sink)
	case backend != "" && server != "":
		keys = append(keys, "server:"+backend+"/"+server)
	case frontend != "" && bind != "":
		keys = append(keys, "bind:"+frontend+" "+bind)
	case frontend != "":
		keys = append(keys, "frontend:"+frontend)
	}
	if len(keys) == 0 {
		return
	}
	h.log.mu.Lock()
	for _, k := range keys {
		h.log.byKey[k] = le
	}
	h.log.mu.Unlock()
}

func (h *errorHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(as)
	if !h.group {
		c.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	}
	return &c
}

func (h *errorHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	c.group = true
	return &c
}
