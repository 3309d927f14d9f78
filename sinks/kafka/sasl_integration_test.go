package kafka

// Against the SASL_SSL listener of the broker test/kafka/kafka.sh starts:
// TLS verified with the test CA, then SASL PLAIN, SCRAM-SHA-256 and
// SCRAM-SHA-512 as user WHARF_KAFKA_SASL_USER.

import (
	"context"
	"strings"
	"testing"
	"time"

	"wharf/conf"
	"wharf/internal/testenv"
	"wharf/message"
)

func TestKafkaTLSAndSASL(t *testing.T) {
	plainBrokers := testenv.Env(t, "WHARF_KAFKA_BROKERS")
	brokers := testenv.Env(t, "WHARF_KAFKA_SASL_BROKERS")
	ca := testenv.Env(t, "WHARF_KAFKA_CA")
	user := testenv.Env(t, "WHARF_KAFKA_SASL_USER")
	password := testenv.Env(t, "WHARF_KAFKA_SASL_PASSWORD")
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			topic := newTopic(t, plainBrokers, 2)
			cfg := conf.Sink{Type: "kafka", BatchSize: 200, Options: &Config{Brokers: strings.Split(brokers, ","), Topic: topic, Key: "hostname", SASLMechanism: mech, SASLUsername: user, SASLPassword: password, WriteTimeout: conf.Duration{Duration: 10 * time.Second}, ClientTLS: conf.ClientTLS{TLSCA: ca}}}
			want := produce(t, cfg, 1000, 200)
			checkRecords(t, mech, readTopic(t, plainBrokers, topic), want)
		})
	}

	// Refusals name the problem: a wrong password, and a CA that did not
	// sign the broker's certificate.
	f := func(name string, cfg conf.Sink, wantErr string) {
		t.Helper()
		cfg.Type, kc(&cfg).Brokers, kc(&cfg).Topic = "kafka", strings.Split(brokers, ","), "wharf-test.refused"
		kc(&cfg).WriteTimeout = conf.Duration{Duration: 3 * time.Second}
		s, err := newFromConf("it", &cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err = s.Write(ctx, []*message.Message{syslogMessage(0)})
		t.Logf("%s: %v", name, err)
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("%s: Write error %v, want one containing %q", name, err, wantErr)
		}
	}
	f("wrong password", conf.Sink{Options: &Config{SASLMechanism: "SCRAM-SHA-512", SASLUsername: user, SASLPassword: "wrong", ClientTLS: conf.ClientTLS{TLSCA: ca}}}, "Authentication")
	f("no TLS", conf.Sink{Options: &Config{SASLMechanism: "PLAIN", SASLUsername: user, SASLPassword: password}}, "expecting TLS")
	f("wrong CA", conf.Sink{Options: &Config{TLS: true, SASLMechanism: "PLAIN", SASLUsername: user, SASLPassword: password}}, "certificate signed by unknown authority")
}
