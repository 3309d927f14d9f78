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

func init() { sinks.Register("stdout", configType, New) }

// DefaultEncoding prints messages as received, like a tail.
const DefaultEncoding = "raw"

// Config is a stdout sink's own keys: it has none beyond the common ones.
type Config struct{}

// configType is what conf knows of the stdout type.
var configType = conf.SinkType{
	New:             func() conf.SinkOptions { return &Config{} },
	Encodings:       []string{"raw", "rfc5424", "rfc3164", "traditional", "traditional-rfc3339", "json"},
	DefaultEncoding: DefaultEncoding,
	Order:           40,
	Intro:           "Writes each message as a line to standard output. Only the common keys apply.",
}

// ApplyDefaults does nothing: there are no keys.
func (*Config) ApplyDefaults() {}

// Validate does nothing: there are no keys.
func (*Config) Validate(*conf.SinkCheck) {}

// Describe writes nothing: there are no keys.
func (*Config) Describe(func(string, ...any)) {}

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

// New builds a stdout sink from its config section, with defaults
// applied (sinks.New applies them).
func New(name string, cfg *conf.Sink) (sinks.Sink, error) {
	enc, err := sinks.ParseEncoding(cfg.Encoding)
	if err != nil {
		return nil, fmt.Errorf("sinks/stdout: sink %q: encoding: %w", name, err)
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
		b = s.enc.AppendLine(b, m)
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

var _ conf.SinkOptions = (*Config)(nil)
