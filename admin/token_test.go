package admin

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"wharf/metrics"
)

// startWithToken runs an admin server on loopback whose token is *tok
// (tokErr, when set, makes the token unavailable).
func startWithToken(t *testing.T, tok *atomic.Value, tokErr *atomic.Bool) string {
	t.Helper()
	s := New(metrics.NewRegistry(), func() (bool, []string) { return true, nil }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.Handle("POST /reload", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "reloaded") }))
	s.Handle("GET /api/tap", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "tap") }))
	s.Handle("GET /api/status", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "{}") }))
	s.Handle("GET /{$}", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "page") }))
	s.RequireToken(func() (string, error) {
		if tokErr.Load() {
			return "", errors.New("token file gone")
		}
		return tok.Load().(string), nil
	})
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s.Stop(ctx)
	})
	return "http://" + s.Addr()
}

func TestBearerToken(t *testing.T) {
	var tok atomic.Value
	tok.Store("s3cret")
	var tokErr atomic.Bool
	base := startWithToken(t, &tok, &tokErr)
	f := func(method, path, auth string, want int) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s %s (auth %q) = %d %s, want %d", method, path, auth, resp.StatusCode, strings.TrimSpace(string(body)), want)
		}
		if want == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s %s: 401 without WWW-Authenticate: Bearer", method, path)
		}
	}
	// Read-only endpoints stay open.
	for _, p := range []string{"/", "/api/status", "/metrics", "/healthz", "/readyz"} {
		f("GET", p, "", 200)
	}
	f("HEAD", "/metrics", "", 200)
	// Write endpoints need the token.
	for _, p := range []string{"/reload"} {
		f("POST", p, "", 401)
		f("POST", p, "Bearer wrong", 401)
		f("POST", p, "Bearer s3cre", 401)
		f("POST", p, "Basic czNjcmV0", 401)
		f("POST", p, "s3cret", 401)
		f("POST", p, "Bearer s3cret", 200)
		f("POST", p, "bearer s3cret", 200) // the scheme is case-insensitive (RFC 7235)
	}
	for _, p := range []string{"/api/tap", "/debug/pprof/", "/debug/pprof/symbol"} {
		f("GET", p, "", 401)
		f("GET", p, "Bearer s3cret", 200)
	}
	// A method the open endpoints do not serve is not a way around it.
	f("POST", "/metrics", "", 401)
	// Unknown paths are protected too (404 only with the token).
	f("GET", "/nope", "", 401)
	f("GET", "/nope", "Bearer s3cret", 404)

	// A new token applies at once; an unavailable one fails closed.
	tok.Store("next")
	f("POST", "/reload", "Bearer s3cret", 401)
	f("POST", "/reload", "Bearer next", 200)
	tokErr.Store(true)
	f("POST", "/reload", "Bearer next", 503)
	f("GET", "/metrics", "", 200)
	tokErr.Store(false)
	// No token configured: everything open.
	tok.Store("")
	f("POST", "/reload", "", 200)
	f("GET", "/api/tap", "", 200)
}

func TestTokenMatches(t *testing.T) {
	f := func(header, want string, ok bool) {
		t.Helper()
		if got := tokenMatches(header, want); got != ok {
			t.Errorf("tokenMatches(%q, %q) = %v, want %v", header, want, got, ok)
		}
	}
	f("Bearer abc", "abc", true)
	f("BEARER abc", "abc", true)
	f("Bearer  abc ", "abc", true)
	f("Bearer abcd", "abc", false)
	f("Bearer ", "abc", false)
	f("Bearer", "abc", false)
	f("", "abc", false)
	f("Bearerabc", "abc", false)
}
