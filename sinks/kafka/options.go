package kafka

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
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

// options is a sink's validated configuration: conf.Sink mapped onto
// kafka-go types, with defaults filled in for zero values.
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

// parseOptions validates cfg and fills defaults for zero values, so a
// conf.Sink built by hand (without conf.Load) works too. It reports every
// problem at once, each naming the config key.
func parseOptions(name string, cfg *conf.Sink) (options, error) {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("sinks/kafka: sink %q: %s: %s", name, key, fmt.Sprintf(format, args...)))
	}
	o := options{
		topic:        cfg.Topic,
		writeTimeout: cfg.WriteTimeout.Duration,
		batchSize:    cfg.BatchSize,
		batchBytes:   int64(cfg.BatchBytes),
	}

	if len(cfg.Brokers) == 0 {
		bad("brokers", "no brokers given; set brokers = [\"host:9092\"]")
	}
	for i, b := range cfg.Brokers {
		host, port, err := net.SplitHostPort(b)
		if err != nil {
			bad(fmt.Sprintf("brokers[%d]", i), "%q is not host:port: %v", b, err)
			continue
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			bad(fmt.Sprintf("brokers[%d]", i), "%q: port %q out of range 1..65535", b, port)
			continue
		}
		if host == "" {
			bad(fmt.Sprintf("brokers[%d]", i), "%q: empty host", b)
			continue
		}
		o.brokers = append(o.brokers, b)
	}

	if err := checkTopic(cfg.Topic); err != nil {
		bad("topic", "%v", err)
	}

	switch orDefault(cfg.Key, conf.DefaultKafkaKey) {
	case "none":
		o.key = keyNone
	case "hostname":
		o.key = keyHostname
	case "app_name":
		o.key = keyAppName
	default:
		bad("key", "unknown key %q (want none, hostname or app_name)", cfg.Key)
	}

	o.balancer = cfg.Balancer
	if o.balancer == "" {
		o.balancer = conf.DefaultKafkaBalancerUnkeyed
		if o.key != keyNone {
			o.balancer = conf.DefaultKafkaBalancerKeyed
		}
	}
	if newBalancer(o.balancer) == nil {
		bad("balancer", "unknown balancer %q (want hash, round_robin or least_bytes)", cfg.Balancer)
	}

	switch orDefault(cfg.Compression, conf.DefaultKafkaCompression) {
	case "none":
		o.compression = 0
	case "gzip":
		o.compression = kafkago.Gzip
	case "snappy":
		o.compression = kafkago.Snappy
	case "lz4":
		o.compression = kafkago.Lz4
	case "zstd":
		o.compression = kafkago.Zstd
	default:
		bad("compression", "unknown compression %q (want none, gzip, snappy, lz4 or zstd)", cfg.Compression)
	}

	switch orDefault(cfg.RequiredAcks, conf.DefaultKafkaRequiredAcks) {
	case "none":
		o.acks = kafkago.RequireNone
	case "one":
		o.acks = kafkago.RequireOne
	case "all":
		o.acks = kafkago.RequireAll
	default:
		bad("required_acks", "unknown value %q (want none, one or all)", cfg.RequiredAcks)
	}

	switch {
	case o.writeTimeout < 0:
		bad("write_timeout", "%s is negative", o.writeTimeout)
	case o.writeTimeout == 0:
		o.writeTimeout = conf.DefaultKafkaWriteTimeout
	}
	switch {
	case o.batchSize < 0:
		bad("batch_size", "%d is negative", o.batchSize)
	case o.batchSize == 0:
		o.batchSize = conf.DefaultBatchSize
	}
	switch {
	case o.batchBytes < 0:
		bad("batch_bytes", "%d is negative", o.batchBytes)
	case o.batchBytes == 0:
		o.batchBytes = int64(conf.DefaultBatchBytes)
	}

	e, err := sinks.ParseEncoding(orDefault(cfg.Encoding, conf.DefaultKafkaEncoding))
	if err != nil {
		bad("encoding", "unknown encoding %q (want raw, rfc5424 or json)", cfg.Encoding)
	}
	o.encoding = e

	if cfg.KafkaTLS() {
		o.tls = &tls.Config{
			MinVersion:         tls.VersionTLS12,
			ServerName:         cfg.TLSServerName, // "" : kafka-go sets each broker's host
			InsecureSkipVerify: cfg.TLSInsecureSkipVerify,
		}
		if cfg.TLSCA != "" {
			pool, err := conf.LoadCertPool(cfg.TLSCA)
			if err != nil {
				bad("tls_ca", "%v", err)
			}
			o.tls.RootCAs = pool
		}
		switch {
		case (cfg.TLSCert == "") != (cfg.TLSKey == ""):
			bad("tls_cert", "set both tls_cert and tls_key, or neither")
		case cfg.TLSCert != "":
			pair, err := conf.LoadKeyPair(cfg.TLSCert, cfg.TLSKey)
			if err != nil {
				bad("tls_cert", "%v", err)
			}
			o.tls.Certificates = []tls.Certificate{pair}
		}
	}
	if cfg.SASLMechanism != "" || cfg.SASLUsername != "" || cfg.SASLPassword != "" {
		m, err := saslMechanism(cfg.SASLMechanism, cfg.SASLUsername, cfg.SASLPassword)
		if err != nil {
			bad("sasl_mechanism", "%v", err)
		}
		o.sasl = m
	}

	return o, errors.Join(errs...)
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

// orDefault returns s, or def when s is empty (a zero conf.Sink).
func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
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
