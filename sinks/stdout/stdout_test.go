package stdout

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"wharf/conf"
	"wharf/message"
	"wharf/sinks"
)

// countingWriter records how many Write calls a batch took.
type countingWriter struct {
	bytes.Buffer
	calls int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.calls++
	return w.Buffer.Write(p)
}

func TestStdoutWritesOneBufferPerBatch(t *testing.T) {
	f := func(enc sinks.Encoding, raws []string, check func(out string)) {
		t.Helper()
		w := &countingWriter{}
		s := NewWriter("out", w, enc)
		var batch []*message.Message
		for _, r := range raws {
			m := message.New([]byte(r))
			defer m.Release()
			batch = append(batch, m)
		}
		if err := s.Write(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
		if w.calls != 1 {
			t.Errorf("%d writes for one batch, want 1", w.calls)
		}
		check(w.String())
	}
	f(sinks.EncodingRaw, []string{"<13>one", "two \xff"}, func(out string) {
		if out != "<13>one\ntwo \xff\n" {
			t.Errorf("raw output %q", out)
		}
	})
	f(sinks.EncodingJSON, []string{"a\"b", "c\nd"}, func(out string) {
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) != 2 {
			t.Fatalf("%d lines: %q", len(lines), out)
		}
		for i, want := range []string{"a\"b", "c\nd"} {
			var obj struct{ Raw string }
			if err := json.Unmarshal([]byte(lines[i]), &obj); err != nil || obj.Raw != want {
				t.Errorf("line %d %q: %v, raw %q", i, lines[i], err, obj.Raw)
			}
		}
	})
}

func TestStdoutFactory(t *testing.T) {
	f := func(enc string, wantErr bool) {
		t.Helper()
		s, err := sinks.New("x", &conf.Sink{Type: "stdout", Encoding: enc})
		if (err != nil) != wantErr {
			t.Fatalf("encoding %q: err %v", enc, err)
		}
		if err == nil && s.(*Stdout).w == nil {
			t.Fatal("no writer")
		}
	}
	f("", false)
	f("json", false)
	f("rfc5424", false)
	f("xml", true)
}
