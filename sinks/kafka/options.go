package kafka

import (
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"wharf/conf"
	"wharf/sinks"
)

// keyField is the message field used as the Kafka record key.
type keyField uint8

const (
	keyNone keyField = iota
	keyHostname
	keyAppName
)

// options is a sink's configuration mapped onto kafka-go types.
type options struct {
	brokers      []string
	topic        string
	key          keyField
	balancer     string // config spelling, for messages and tests
	compression  kafkago.Compression
	acks         kafkago.RequiredAcks
	writeTimeout time.Duration
	batchSize    int
	batchBytes   int64
	encoding     sinks.Encoding
	// tls is nil for plaintext brokers; sasl nil for no authentication.
	// Both go on every kafka-go Transport the sink makes.
	tls  *tls.Config
	sasl sasl.Mechanism
}

// maxTopicLen is Kafka's limit on topic names (249 characters).
const maxTopicLen = 249

// The config spellings of the enum keys, mapped onto kafka-go.
var (
	keyFields    = map[string]keyField{"none": keyNone, "hostname": keyHostname, "app_name": keyAppName}
	compressions = map[string]kafkago.Compression{"none": 0, "gzip": kafkago.Gzip, "snappy": kafkago.Snappy, "lz4": kafkago.Lz4, "zstd": kafkago.Zstd}
	acks         = map[string]kafkago.RequiredAcks{"none": kafkago.RequireNone, "one": kafkago.RequireOne, "all": kafkago.RequireAll}
)

// parseOptions maps a sink section, with defaults applied and validated
// (sinks.New does both), onto kafka-go. What can still fail is what
// validation cannot see for good: a topic name Kafka refuses, TLS and
// SASL material. It reports every problem at once, each naming its key.
func parseOptions(name string, cfg *conf.Sink) (options, error) {
	c, ok := cfg.Options.(*Config)
	if !ok {
		return options{}, fmt.Errorf("sinks/kafka: sink %q: options are %T, want *kafka.Config", name, cfg.Options)
	}
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("sinks/kafka: sink %q: %s: %s", name, key, fmt.Sprintf(format, args...)))
	}
	o := options{
		brokers:      c.Brokers,
		topic:        c.Topic,
		balancer:     c.Balancer,
		writeTimeout: c.WriteTimeout.Duration,
		batchSize:    cfg.BatchSize,
		batchBytes:   int64(cfg.BatchBytes),
	}
	if len(c.Brokers) == 0 {
		bad("brokers", "no brokers given; set brokers = [\"host:9092\"]")
	}
	if err := checkTopic(c.Topic); err != nil {
		bad("topic", "%v", err)
	}
	var known bool
	if o.key, known = keyFields[c.Key]; !known {
		bad("key", "unknown key %q (want none, hostname or app_name)", c.Key)
	}
	if newBalancer(o.balancer) == nil {
		bad("balancer", "unknown balancer %q (want hash, round_robin or least_bytes)", c.Balancer)
	}
	if o.compression, known = compressions[c.Compression]; !known {
		bad("compression", "unknown compression %q (want none, gzip, snappy, lz4 or zstd)", c.Compression)
	}
	if o.acks, known = acks[c.RequiredAcks]; !known {
		bad("required_acks", "unknown value %q (want none, one or all)", c.RequiredAcks)
	}
	e, err := sinks.ParseEncoding(cfg.Encoding)
	if err != nil {
		bad("encoding", "unknown encoding %q (want raw, rfc5424 or json)", cfg.Encoding)
	}
	o.encoding = e
	if c.UsesTLS() {
		if o.tls, err = clientTLS(c); err != nil {
			bad("tls_cert", "%v", err)
		}
	}
	if c.SASLMechanism != "" || c.SASLUsername != "" || c.SASLPassword != "" || c.SASLPasswordFile != "" {
		password, err := c.Password()
		if err != nil {
			bad("sasl_password_file", "%v", err)
		} else if o.sasl, err = saslMechanism(c.SASLMechanism, c.SASLUsername, password); err != nil {
			bad("sasl_mechanism", "%v", err)
		}
	}
	return o, errors.Join(errs...)
}

// clientTLS builds the brokers' TLS config: minimum 1.2, tls_ciphers (else
// the ECDHE AEAD suites), tls_ca (else the system roots), tls_cert/tls_key
// for mutual TLS.
func clientTLS(c *Config) (*tls.Config, error) {
	ciphers, err := c.CipherSuites()
	if err != nil {
		return nil, err
	}
	t := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		CipherSuites:       ciphers,         // ECDHE AEAD only unless tls_ciphers says more
		ServerName:         c.TLSServerName, // "" : kafka-go sets each broker's host
		InsecureSkipVerify: c.TLSInsecureSkipVerify,
	}
	if c.TLSCA != "" {
		pool, err := conf.LoadCertPool(c.TLSCA)
		if err != nil {
			return nil, err
		}
		t.RootCAs = pool
	}
	switch {
	case (c.TLSCert == "") != (c.TLSKey == ""):
		return nil, errors.New("set both tls_cert and tls_key, or neither")
	case c.TLSCert != "":
		pair, err := conf.LoadKeyPair(c.TLSCert, c.TLSKey)
		if err != nil {
			return nil, err
		}
		t.Certificates = []tls.Certificate{pair}
	}
	return t, nil
}

// saslMechanism maps the config's SASL keys onto kafka-go's mechanisms.
func saslMechanism(name, user, password string) (sasl.Mechanism, error) {
	if user == "" || password == "" {
		return nil, fmt.Errorf("%q needs sasl_username and sasl_password", name)
	}
	switch name {
	case "PLAIN":
		return plain.Mechanism{Username: user, Password: password}, nil
	case "SCRAM-SHA-256":
		return scram.Mechanism(scram.SHA256, user, password)
	case "SCRAM-SHA-512":
		return scram.Mechanism(scram.SHA512, user, password)
	case "":
		return nil, errors.New("sasl_username/sasl_password given without a mechanism (want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)")
	}
	return nil, fmt.Errorf("unknown mechanism %q (want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)", name)
}

// newBalancer returns a fresh balancer for a config spelling, nil for an
// unknown one. "hash" is murmur2, the Java client's default partitioner,
// so a key lands on the same partition as a Java producer would put it.
func newBalancer(name string) kafkago.Balancer {
	switch name {
	case "hash":
		return kafkago.Murmur2Balancer{}
	case "round_robin":
		return &kafkago.RoundRobin{}
	case "least_bytes":
		return &kafkago.LeastBytes{}
	}
	return nil
}
