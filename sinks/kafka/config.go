package kafka

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"wharf/conf"
	"wharf/sinks"
)

func init() { sinks.Register("kafka", configType, New) }

// Defaults of a kafka sink's keys, each with its reason.
const (
	// DefaultBatchSize is librdkafka's batch.num.messages: a produce
	// request is a round trip the sink waits for, so a Kafka batch is
	// bounded by batch_bytes (1MiB, about 3400 messages of 300 B) rather
	// than by count. 1000 made the sink wait for a round trip every 300KB
	// (make bench, TCP in to Kafka: 458k -> 585k msg/s with 4000).
	DefaultBatchSize = 10000
	// DefaultBatchBytes is librdkafka's batch.size (1000000): with
	// Kafka's record framing (~3% for 300 B messages) a full batch stays
	// under the broker's default message.max.bytes (1048588) and goes out
	// as one produce request; 1MiB of raw bytes framed came to just over
	// it and was split into two.
	DefaultBatchBytes = 1000000
	// DefaultEncoding forwards the bytes as received: consumers already
	// parse syslog, and re-encoding costs CPU per message.
	DefaultEncoding = "raw"
	// DefaultKey "none" spreads messages over all partitions; keying by
	// host keeps per-host order but skews partitions.
	DefaultKey = "none"
	// DefaultBalancerKeyed is used when a key is set: hashing keeps one
	// key on one partition, which is the point of setting a key.
	DefaultBalancerKeyed = "hash"
	// DefaultBalancerUnkeyed is used with key "none": even spread with no
	// per-message state (kafka-go's own default).
	DefaultBalancerUnkeyed = "round_robin"
	// DefaultCompression is "none": logs compress well, but the right
	// codec depends on the cluster; opt in knowingly.
	DefaultCompression = "none"
	// DefaultRequiredAcks "one" is acknowledged by the partition leader:
	// the usual latency/durability trade-off for logs.
	DefaultRequiredAcks = "one"
	// DefaultWriteTimeout matches kafka-go's and the broker's
	// request.timeout: a produce slower than that is a failed batch.
	DefaultWriteTimeout = 10 * time.Second
)

// Config is a kafka sink's own keys in [sink.NAME] (type = "kafka").
type Config struct {
	// Brokers are host:port seed brokers.
	Brokers []string `toml:"brokers"`
	// Topic to produce to.
	Topic string `toml:"topic"`
	// Key picks the message key: "none" (default), "hostname", "app_name".
	Key string `toml:"key"`
	// Balancer: "hash" (default when Key is set), "round_robin", "least_bytes".
	Balancer string `toml:"balancer"`
	// Compression: "none", "gzip", "snappy", "lz4", "zstd".
	Compression string `toml:"compression"`
	// RequiredAcks: "none", "one", "all".
	RequiredAcks string `toml:"required_acks"`
	// WriteTimeout bounds one produce request.
	WriteTimeout conf.Duration `toml:"write_timeout"`

	// TLS makes the sink connect to its brokers with TLS; any tls_* key
	// implies it.
	TLS bool `toml:"tls"`
	// ClientTLS holds the tls_* keys.
	conf.ClientTLS

	// SASLMechanism authenticates to the brokers: "PLAIN",
	// "SCRAM-SHA-256" or "SCRAM-SHA-512"; empty for none.
	SASLMechanism string `toml:"sasl_mechanism"`
	// SASLUsername is the SASL user.
	SASLUsername string `toml:"sasl_username"`
	// SASLPassword is the SASL password.
	SASLPassword string `toml:"sasl_password"`
	// SASLPasswordFile names a file holding the password (surrounding
	// whitespace trimmed), instead of SASLPassword, so the config file
	// can stay world-readable.
	SASLPasswordFile string `toml:"sasl_password_file"`
}

// configType is what conf knows of the kafka type.
var configType = conf.SinkType{
	New:             func() conf.SinkOptions { return &Config{} },
	Encodings:       []string{"raw", "rfc5424", "rfc3164", "traditional", "traditional-rfc3339", "json"},
	DefaultEncoding: DefaultEncoding,
	BatchSize:       DefaultBatchSize,
	BatchBytes:      DefaultBatchBytes,
	Order:           10,
	Keys: []conf.KeyDoc{
		{Key: "brokers", Type: "array of strings", Default: "required", Doc: "Seed brokers, `host:port`."},
		{Key: "topic", Type: "string", Default: "required", Doc: "Topic to produce to."},
		{Key: "key", Type: "string", Default: conf.RefString(DefaultKey), Doc: "Message key: `none`, `hostname`, `app_name`."},
		{Key: "balancer", Type: "string", Default: conf.RefString(DefaultBalancerKeyed) + " with a key, else " + conf.RefString(DefaultBalancerUnkeyed), Doc: "Partition choice: `hash`, `round_robin`, `least_bytes`."},
		{Key: "compression", Type: "string", Default: conf.RefString(DefaultCompression), Doc: "`none`, `gzip`, `snappy`, `lz4`, `zstd`."},
		{Key: "required_acks", Type: "string", Default: conf.RefString(DefaultRequiredAcks), Doc: "`none`, `one` (leader), `all` (in-sync replicas)."},
		{Key: "write_timeout", Type: "duration", Default: conf.RefDuration(DefaultWriteTimeout), Doc: "Bound on one produce request."},
		{Key: "tls", Type: "boolean", Default: "`false`", Doc: "Connect to the brokers with TLS (minimum 1.2). Any `tls_*` key turns it on too."},
		{Key: "tls_ca", Type: "string", Default: "system roots", Doc: "PEM file of CA certificates that verify the brokers."},
		{Key: "tls_cert", Type: "string", Default: "none", Doc: "PEM client certificate (chain) for brokers that require mutual TLS (`ssl.client.auth=required`); with `tls_key`."},
		{Key: "tls_key", Type: "string", Default: "none", Doc: "Private key file for `tls_cert`."},
		{Key: "tls_server_name", Type: "string", Default: "each broker's host", Doc: "Name the broker certificates must carry, when it differs from the host the broker advertises."},
		{Key: "tls_insecure_skip_verify", Type: "boolean", Default: "`false`", Doc: "Accept any broker certificate. **For tests only**; warned about by `wharf check`."},
		{Key: "tls_ciphers", Type: "array of strings", Default: "ECDHE AEAD suites", Doc: "Brokers: " + conf.TLSCiphersDoc + " Kafka: `ssl.cipher.suites`."},
		{Key: "sasl_mechanism", Type: "string", Default: "none", Doc: "SASL authentication: `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512` (Kafka's `sasl.mechanism`). `PLAIN` without TLS is warned about: it sends the password in clear."},
		{Key: "sasl_username", Type: "string", Default: "none", Doc: "SASL user; required with `sasl_mechanism`."},
		{Key: "sasl_password", Type: "string", Default: "none", Doc: "SASL password; required with `sasl_mechanism` (or `sasl_password_file`). Keep the config file's permissions tight (0600), or use `sasl_password_file` or `\"${VAR}\"`."},
		{Key: "sasl_password_file", Type: "string", Default: "none", Doc: "File holding the SASL password (surrounding whitespace trimmed), instead of `sasl_password`, so the config file can stay world-readable; read at start and on reload."},
	},
}

// ApplyDefaults fills every unset key.
func (c *Config) ApplyDefaults() {
	setStr(&c.Key, DefaultKey)
	if c.Key == "none" {
		setStr(&c.Balancer, DefaultBalancerUnkeyed)
	} else {
		setStr(&c.Balancer, DefaultBalancerKeyed)
	}
	setStr(&c.Compression, DefaultCompression)
	setStr(&c.RequiredAcks, DefaultRequiredAcks)
	if c.WriteTimeout.Duration == 0 {
		c.WriteTimeout.Duration = DefaultWriteTimeout
	}
}

func setStr(p *string, def string) {
	if *p == "" {
		*p = def
	}
}

// UsesTLS reports whether the sink talks TLS to its brokers: tls = true,
// or any tls_* key set.
func (c *Config) UsesTLS() bool { return c.TLS || c.ClientTLS.IsSet() }

// Validate reports every problem with the keys.
func (c *Config) Validate(v *conf.SinkCheck) {
	if len(c.Brokers) == 0 {
		v.Errorf("", "kafka sink needs brokers = [\"host:9092\"]")
	}
	for i, b := range c.Brokers {
		if _, _, err := conf.ParseHostPort(b); err != nil {
			v.Errorf(fmt.Sprintf("brokers[%d]", i), "%v", err)
		}
	}
	if c.Topic == "" {
		v.Errorf("", "kafka sink needs topic = \"NAME\"")
	} else if err := checkTopic(c.Topic); err != nil {
		v.Errorf("topic", "%v", err)
	}
	v.Enum("key", c.Key, "none", "hostname", "app_name")
	v.Enum("balancer", c.Balancer, "hash", "round_robin", "least_bytes")
	v.Enum("compression", c.Compression, "none", "gzip", "snappy", "lz4", "zstd")
	v.Enum("required_acks", c.RequiredAcks, "none", "one", "all")
	v.NotNegative("write_timeout", c.WriteTimeout)
	c.ClientTLS.Validate(v)
	c.validateSASL(v)
}

// validateSASL checks the SASL keys.
func (c *Config) validateSASL(v *conf.SinkCheck) {
	if c.SASLPassword != "" && c.SASLPasswordFile != "" {
		v.Errorf("sasl_password", "set sasl_password or sasl_password_file, not both")
	} else if c.SASLPasswordFile != "" {
		if _, err := c.Password(); err != nil {
			v.Errorf("sasl_password_file", "%v", err)
		}
	}
	hasPassword := c.SASLPassword != "" || c.SASLPasswordFile != ""
	if c.SASLMechanism == "" {
		if c.SASLUsername != "" || hasPassword {
			v.Errorf("", "sasl_username/sasl_password need sasl_mechanism = \"PLAIN\", \"SCRAM-SHA-256\" or \"SCRAM-SHA-512\"")
		}
		return
	}
	v.Enum("sasl_mechanism", c.SASLMechanism, "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
	if c.SASLUsername == "" || !hasPassword {
		v.Errorf("", "sasl_mechanism %s needs sasl_username and sasl_password", c.SASLMechanism)
	}
	if c.SASLMechanism == "PLAIN" && !c.UsesTLS() {
		v.Warnf("sasl_mechanism", "PLAIN sends the password in clear text without TLS; set tls = true (or tls_ca)")
	}
}

// Password returns the SASL password: SASLPassword, or the trimmed
// content of SASLPasswordFile.
func (c *Config) Password() (string, error) {
	if c.SASLPasswordFile == "" {
		return c.SASLPassword, nil
	}
	b, err := os.ReadFile(c.SASLPasswordFile)
	if err != nil {
		return "", err
	}
	p := strings.TrimSpace(string(b))
	if p == "" {
		return "", fmt.Errorf("%s is empty", c.SASLPasswordFile)
	}
	return p, nil
}

// Describe writes the resolved settings for `wharf check`.
func (c *Config) Describe(pr func(format string, args ...any)) {
	pr("brokers %s, topic %s", strings.Join(c.Brokers, ", "), c.Topic)
	pr("key %s, balancer %s, compression %s, required_acks %s, write_timeout %s",
		c.Key, c.Balancer, c.Compression, c.RequiredAcks, c.WriteTimeout)
	if c.UsesTLS() {
		pr("%s", c.ClientTLS.Describe())
	}
	switch {
	case c.SASLMechanism != "" && c.SASLPasswordFile != "":
		pr("sasl %s, user %s, password in %s", c.SASLMechanism, c.SASLUsername, c.SASLPasswordFile)
	case c.SASLMechanism != "":
		pr("sasl %s, user %s", c.SASLMechanism, c.SASLUsername)
	}
}

// checkTopic applies Kafka's topic name rules: 1..249 characters of
// [a-zA-Z0-9._-], and not "." or "..".
func checkTopic(t string) error {
	switch {
	case t == "":
		return errors.New("no topic given; set topic = \"NAME\"")
	case t == "." || t == "..":
		return fmt.Errorf("%q is not a valid topic name", t)
	case len(t) > maxTopicLen:
		return fmt.Errorf("topic name is %d characters, Kafka allows %d", len(t), maxTopicLen)
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%q: character %q not allowed (Kafka topics use a-z A-Z 0-9 . _ -)", t, c)
		}
	}
	return nil
}

var _ conf.SinkOptions = (*Config)(nil)
