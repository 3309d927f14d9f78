// Package stdout is the sink that prints messages on standard output, one
// encoded message per line.
package stdout

import (
	"context"
	"fmt"
	"io"
	"os"

	"wharf/conf"
	"wharf/message"
	"wharf/sinks"
)

func init() { sinks.Register("stdout", New) }

// Stdout writes each batch as encoded lines ("\n"-terminated) in one Write
// call to its writer.
//
// Concurrency: as every Sink, Write is called by one Runner goroutine and
// never concurrently with itself or Close.
type Stdout struct {
	name string
	w    io.Writer
	enc  sinks.Encoding
	buf  []byte // reused per batch
}

// New builds a stdout sink from its config section. Encoding defaults to raw.
func New(name string, cfg *conf.Sink) (sinks.Sink, error) {
	enc := sinks.EncodingRaw
	if cfg.Encoding != "" {
		var err error
		if enc, err = sinks.ParseEncoding(cfg.Encoding); err != nil {
			return nil, fmt.Errorf("sinks/stdout: sink %q: encoding: %w", name, err)
		}
	}
	return NewWriter(name, os.Stdout, enc), nil
}

// NewWriter returns a sink that writes to w instead of os.Stdout.
func NewWriter(name string, w io.Writer, enc sinks.Encoding) *Stdout {
	return &Stdout{name: name, w: w, enc: enc, buf: make([]byte, 0, 64<<10)}
}

// Write encodes the batch into a reused buffer and writes it at once.
func (s *Stdout) Write(_ context.Context, batch []*message.Message) error {
	b := s.buf[:0]
	for _, m := range batch {
		b = s.enc.Append(b, m)
		b = append(b, '\n')
	}
	s.buf = b
	if _, err := s.w.Write(b); err != nil {
		return fmt.Errorf("sinks/stdout: sink %q: write: %w", s.name, err)
	}
	return nil
}

// Close does nothing: standard output stays open for wharf's own use.
func (s *Stdout) Close() error { return nil }

var _ sinks.Sink = (*Stdout)(nil)
