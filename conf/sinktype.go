package conf

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
)

// This file is how conf learns about sink types without knowing them. A
// sink package (sinks/kafka, sinks/syslog, ...) declares a struct of its
// own keys with their defaults, validation and reference text, and
// registers it (through sinks.Register) under its type name. Load decodes
// the [sink.NAME] table once for the keys every sink has (Sink) and once
// into a fresh struct of the type it names (Sink.Options), from one
// MetaData, so positions, unknown keys and "did you mean" work for type
// keys as for the others. Adding a sink type does not touch conf.

// SinkOptions is a sink type's own settings: the keys of [sink.NAME]
// beyond those every sink has. Implementations are pointers to structs
// with toml tags (embedded structs, such as ClientTLS, are flattened).
type SinkOptions interface {
	// ApplyDefaults fills every unset field. It is idempotent.
	ApplyDefaults()
	// Validate reports every problem through c. It runs after
	// ApplyDefaults.
	Validate(c *SinkCheck)
	// Describe writes the resolved settings for `wharf check`, one line
	// per call of pr (indented by the caller).
	Describe(pr func(format string, args ...any))
}

// SinkType is what a sink type tells conf about its config.
type SinkType struct {
	// New returns a fresh, zero options struct to decode into.
	New func() SinkOptions
	// Encodings the type writes, in the order error messages list them.
	Encodings []string
	// DefaultEncoding is the encoding when none is set.
	DefaultEncoding string
	// BatchSize and BatchBytes are the type's default batch; zero means
	// DefaultBatchSize and DefaultBatchBytes.
	BatchSize  int
	BatchBytes Size
	// Order places the type in lists (error messages, the reference):
	// lower first.
	Order int
	// Intro and Keys are the type's section of the config reference.
	Intro string
	Keys  []KeyDoc
}

var (
	sinkTypesMu sync.RWMutex
	sinkTypes   = map[string]*SinkType{}
)

// RegisterSinkType makes a sink type's config known; sinks.Register calls
// it. Registering a name twice panics (a programming error).
func RegisterSinkType(name string, t SinkType) {
	sinkTypesMu.Lock()
	defer sinkTypesMu.Unlock()
	if _, dup := sinkTypes[name]; dup {
		panic("conf: sink type registered twice: " + name)
	}
	if t.New == nil {
		panic("conf: sink type " + name + " has no New")
	}
	sinkTypes[name] = &t
}

// sinkType returns the registered type, nil for an unknown one.
func sinkType(name string) *SinkType {
	sinkTypesMu.RLock()
	defer sinkTypesMu.RUnlock()
	return sinkTypes[name]
}

// SinkTypes lists the registered sink types in their Order.
func SinkTypes() []string {
	sinkTypesMu.RLock()
	defer sinkTypesMu.RUnlock()
	out := make([]string, 0, len(sinkTypes))
	for k := range sinkTypes {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := sinkTypes[out[i]], sinkTypes[out[j]]
		if a.Order != b.Order {
			return a.Order < b.Order
		}
		return out[i] < out[j]
	})
	return out
}

// DefaultEncoding returns the default encoding of a sink type ("" for an
// unknown type).
func DefaultEncoding(typ string) string {
	if t := sinkType(typ); t != nil {
		return t.DefaultEncoding
	}
	return ""
}

// DefaultBatch is a sink type's default batch_size and batch_bytes.
func DefaultBatch(typ string) (int, Size) {
	n, b := DefaultBatchSize, Size(DefaultBatchBytes)
	if t := sinkType(typ); t != nil {
		if t.BatchSize > 0 {
			n = t.BatchSize
		}
		if t.BatchBytes > 0 {
			b = t.BatchBytes
		}
	}
	return n, b
}

// SinkCheck is what a sink type's Validate reports through: errors and
// warnings with a path relative to the sink's table.
type SinkCheck struct {
	v    *validator
	path string // "sink.NAME"
}

// Path is the sink's table, "sink.NAME", for messages that name it.
func (c *SinkCheck) Path() string { return c.path }

// Errorf reports a problem with key ("brokers[1]"; "" for the table
// itself, as for a missing required key).
func (c *SinkCheck) Errorf(key, format string, args ...any) {
	c.v.errAt(c.key(key), format, args...)
}

// Warnf reports a non-fatal finding about key.
func (c *SinkCheck) Warnf(key, format string, args ...any) {
	c.v.warn(c.key(key), format, args...)
}

// Enum reports val when it is not one of allowed.
func (c *SinkCheck) Enum(key, val string, allowed ...string) {
	c.v.enum(c.path, key, val, allowed...)
}

// NotNegative reports a negative duration.
func (c *SinkCheck) NotNegative(key string, d Duration) {
	if d.Duration < 0 {
		c.Errorf(key, "must not be negative")
	}
}

func (c *SinkCheck) key(k string) string {
	if k == "" {
		return c.path
	}
	if strings.HasPrefix(k, "[") {
		return c.path + k
	}
	return c.path + "." + k
}

// optionKeys lists the toml keys of a sink type's options, flattening
// embedded structs.
func optionKeys(t *SinkType) []string {
	return tomlKeys(reflect.TypeOf(t.New()).Elem())
}

// ownersOf lists the registered types whose options have key, in Order.
func ownersOf(key string) []string {
	var out []string
	for _, name := range SinkTypes() {
		for _, k := range optionKeys(sinkType(name)) {
			if k == key {
				out = append(out, name)
				break
			}
		}
	}
	return out
}

// typeList renders the registered types for a message: "a, b, c" or,
// with last, "a, b or c".
func typeList(last string) string {
	ts := SinkTypes()
	if last == "" || len(ts) < 2 {
		return strings.Join(ts, ", ")
	}
	return strings.Join(ts[:len(ts)-1], ", ") + " " + last + " " + ts[len(ts)-1]
}

// sinkTypeDefaults renders a per-type default for the reference: the
// common value, then each type that differs ("1000, kafka 10000").
func sinkTypeDefaults(common string, of func(*SinkType) string) string {
	parts := []string{common}
	for _, name := range SinkTypes() {
		if v := of(sinkType(name)); v != "" && v != common {
			parts = append(parts, name+" "+v)
		}
	}
	return strings.Join(parts, ", ")
}

// ClientTLS is the TLS client settings a sink type can embed (kafka,
// syslog tls:// servers): files are checked by Validate and read by
// LoadCertPool/LoadKeyPair where the sink builds its tls.Config.
type ClientTLS struct {
	// TLSCA is a PEM file of CA certificates that verify the server; empty
	// uses the system roots.
	TLSCA string `toml:"tls_ca"`
	// TLSCert is a PEM client certificate (chain) file, for servers that
	// require mutual TLS; set with TLSKey.
	TLSCert string `toml:"tls_cert"`
	// TLSKey is the private key file for TLSCert.
	TLSKey string `toml:"tls_key"`
	// TLSServerName is the name the server certificate must carry; empty
	// uses the host of the server address.
	TLSServerName string `toml:"tls_server_name"`
	// TLSInsecureSkipVerify accepts any server certificate. For tests only:
	// it makes TLS open to interception.
	TLSInsecureSkipVerify bool `toml:"tls_insecure_skip_verify"`
	// TLSCiphers lists the TLS 1.2 cipher suites offered to the server
	// (IANA names as Go spells them); empty offers only the ECDHE AEAD
	// suites (DefaultTLSCiphers).
	TLSCiphers []string `toml:"tls_ciphers"`
}

// IsSet reports whether any of the keys is set.
func (t *ClientTLS) IsSet() bool {
	return t.TLSCA != "" || t.TLSCert != "" || t.TLSKey != "" || t.TLSServerName != "" || t.TLSInsecureSkipVerify || len(t.TLSCiphers) > 0
}

// CipherSuites returns the suite IDs for tls.Config.CipherSuites:
// TLSCiphers, or DefaultTLSCiphers when it is empty.
func (t *ClientTLS) CipherSuites() ([]uint16, error) {
	ids, _, err := ParseTLSCiphers(t.TLSCiphers)
	return ids, err
}

// Validate checks the pair and the CA file, and warns about skipped
// verification.
func (t *ClientTLS) Validate(c *SinkCheck) {
	if (t.TLSCert == "") != (t.TLSKey == "") {
		c.Errorf("", "set both tls_cert and tls_key (a client certificate), or neither")
	} else if t.TLSCert != "" {
		checkKeyPair("tls_cert", "tls_key", t.TLSCert, t.TLSKey, func(key, msg string) {
			c.Errorf(key, "%s", msg)
		})
	}
	if t.TLSCA != "" {
		if _, err := LoadCertPool(t.TLSCA); err != nil {
			c.Errorf("tls_ca", "%v", err)
		}
	}
	if len(t.TLSCiphers) > 0 {
		if _, weak, err := ParseTLSCiphers(t.TLSCiphers); err != nil {
			c.Errorf("tls_ciphers", "%v", err)
		} else if len(weak) > 0 {
			c.Warnf("tls_ciphers", "%s: Go classes these suites as insecure; offer them only for a peer that has nothing better", strings.Join(weak, ", "))
		}
	}
	if t.TLSInsecureSkipVerify {
		c.Warnf("tls_insecure_skip_verify", "server certificates are not verified; anyone on the path can read and alter the logs (meant for tests)")
	}
}

// Describe renders the settings for `wharf check`.
func (t *ClientTLS) Describe() string {
	parts := []string{"tls"}
	switch {
	case t.TLSInsecureSkipVerify:
		parts = append(parts, "server certificate NOT verified (tls_insecure_skip_verify)")
	case t.TLSCA != "":
		parts = append(parts, "ca "+t.TLSCA)
	default:
		parts = append(parts, "ca system roots")
	}
	if t.TLSServerName != "" {
		parts = append(parts, "server_name "+t.TLSServerName)
	}
	if t.TLSCert != "" {
		parts = append(parts, "client cert "+t.TLSCert)
	}
	if len(t.TLSCiphers) > 0 {
		parts = append(parts, "ciphers "+strings.Join(t.TLSCiphers, ":"))
	}
	return strings.Join(parts, ", ")
}

// ParseHostPort checks "host:port" with a non-empty host and a port in
// 1-65535, for sink types' server addresses.
func ParseHostPort(s string) (host string, port int, err error) {
	return parseHostPort(s, false)
}

// errUnknownType is the message for a sink whose type is not registered.
func errUnknownType(typ string) string {
	return fmt.Sprintf("type %q is not one of %s", typ, typeList(""))
}
