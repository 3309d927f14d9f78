#!/usr/bin/env bash
# kafka.sh: a real single-node Apache Kafka (KRaft, broker+controller in one
# JVM) on loopback for wharf's integration tests. Jars come from Maven
# Central via test/kafka/pom.xml and are cached in ~/.m2.
#
#   kafka.sh fetch                 copy the broker jars into var/kafka/lib
#   kafka.sh start                 format fresh storage, start, wait until it answers
#   kafka.sh stop                  SIGTERM, wait, SIGKILL; safe to repeat
#   kafka.sh restart               stop, then start keeping the data (fault tests)
#   kafka.sh status                exit 0 when running and answering
#   kafka.sh pid                   print the broker's pid (fault tests pause it with SIGSTOP)
#   kafka.sh env                   print the export lines for the tests
#   kafka.sh topic NAME PARTITIONS create a topic (no-op if it exists)
#
# Environment:
#   KAFKA_PORT             PLAINTEXT port (default 9092)
#   KAFKA_CONTROLLER_PORT  KRaft controller port (default KAFKA_PORT+1)
#   KAFKA_SASL_PORT        SASL_SSL port (default KAFKA_PORT+2): TLS with a
#                          certificate from a test CA made by openssl under
#                          $DIR/tls, SASL PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512
#                          for user "wharf" (password in `env`)
#   KAFKA_DIR              state directory (default var/kafka; the jars stay
#                          in var/kafka/lib), for a second broker beside the first
#   KAFKA_HEAP             JVM heap (default 512m)
#   KAFKA_START_TIMEOUT    seconds start waits for the broker (default 90)
#
# Everything lives under var/kafka/ at the repo root: lib/ (jars), data/
# (log dirs, wiped on every start: this is a throwaway test broker),
# server.properties, log4j2.properties, server.log, kafka.pid.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
POM="$ROOT/test/kafka/pom.xml"
DIR=${KAFKA_DIR:-$ROOT/var/kafka}
LIB="$ROOT/var/kafka/lib"
DATA="$DIR/data"
PIDFILE="$DIR/kafka.pid"
LOG="$DIR/server.log"
PORT=${KAFKA_PORT:-9092}
CPORT=${KAFKA_CONTROLLER_PORT:-$((PORT + 1))}
SPORT=${KAFKA_SASL_PORT:-$((PORT + 2))}
SASL_USER=wharf
SASL_PASSWORD=wharf-test-secret
TLSDIR="$DIR/tls"
HEAP=${KAFKA_HEAP:-512m}
START_TIMEOUT=${KAFKA_START_TIMEOUT:-90}
BROKER="127.0.0.1:$PORT"

die() { echo "kafka.sh: $*" >&2; exit 1; }

need_lib() {
	compgen -G "$LIB/kafka_2.13-*.jar" >/dev/null ||
		die "no broker jars in $LIB; run: bash test/kafka/kafka.sh fetch"
}

# java_tool CLASS ARGS...: run a Kafka command-line tool from the jars,
# logging only warnings to stderr.
java_tool() {
	java -Xmx256m -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
		-Dlog4j2.configurationFile="$DIR/tools-log4j2.properties" \
		-cp "$LIB/*" "$@"
}

running_pid() {
	[[ -f $PIDFILE ]] || return 1
	local pid
	pid=$(<"$PIDFILE")
	[[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
	echo "$pid"
}

# port_open PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# answers: the broker returns metadata naming itself. kcat when available
# (a real Kafka metadata request), else just the TCP accept.
answers() {
	if command -v kcat >/dev/null; then
		kcat -b "$BROKER" -L -m 2 2>/dev/null | grep -q "at 127.0.0.1:$PORT"
	else
		port_open "$PORT"
	fi
}

cmd_fetch() {
	command -v mvn >/dev/null || die "mvn not found; apt-get install -y maven"
	mkdir -p "$DIR"
	local tmp="$DIR/lib.tmp"
	rm -rf "$tmp"
	# Offline first: a second fetch needs no network once ~/.m2 has the jars.
	if ! mvn -q -o -f "$POM" dependency:copy-dependencies -DincludeScope=runtime \
		-DoutputDirectory="$tmp" >/dev/null 2>&1; then
		rm -rf "$tmp"
		mvn -q -f "$POM" dependency:copy-dependencies -DincludeScope=runtime \
			-DoutputDirectory="$tmp" || die "maven could not fetch the Kafka jars (see above)"
	fi
	# Swap whole directories so jars of an older version never linger.
	rm -rf "$LIB"
	mv "$tmp" "$LIB"
	echo "kafka.sh: $(ls "$LIB" | wc -l) jars in $LIB ($(ls "$LIB" | grep -o '^kafka_2.13-.*\.jar'))"
}

# make_tls: a CA and a broker certificate for 127.0.0.1/localhost, once.
# Kafka reads PEM directly (ssl.keystore.type=PEM): the keystore file is
# the unencrypted PKCS#8 key followed by the certificate.
make_tls() {
	[[ -s $TLSDIR/keystore.pem ]] && return 0
	command -v openssl >/dev/null || die "openssl not found; apt-get install -y openssl"
	mkdir -p "$TLSDIR"
	(
		cd "$TLSDIR"
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
			-subj "/CN=wharf test Kafka CA" -keyout ca.key -out ca.pem 2>/dev/null
		printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >broker.ext
		openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
			-subj "/CN=wharf test Kafka broker" -keyout broker.key -out broker.csr 2>/dev/null
		openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
			-extfile broker.ext -out broker.pem 2>/dev/null
		cat broker.key broker.pem >keystore.pem
		chmod 600 ./*.key keystore.pem
	) || die "making the TLS certificates in $TLSDIR failed"
}

write_configs() {
	cat >"$DIR/server.properties" <<EOF
# Generated by test/kafka/kafka.sh: single-node KRaft test broker.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CPORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT,SASL_SSL://127.0.0.1:$SPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT,SASL_SSL://127.0.0.1:$SPORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL
# SASL_SSL for the TLS/SASL tests: PLAIN from the JAAS line, SCRAM users
# stored in the metadata log at format time (StorageTool --add-scram).
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$SASL_USER="$SASL_PASSWORD";
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PEM
ssl.keystore.location=$TLSDIR/keystore.pem
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=$DATA
num.partitions=3
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# Test data is throwaway: keep it small and quick to clean.
log.retention.hours=2
log.segment.bytes=67108864
EOF
	cat >"$DIR/log4j2.properties" <<EOF
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.raft.name = org.apache.kafka.raft
logger.raft.level = WARN
# Config dumps (every property, every client) are most of the log otherwise.
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
EOF
	cat >"$DIR/tools-log4j2.properties" <<EOF
status = warn
appender.err.type = Console
appender.err.name = ERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = %p %m%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = ERR
EOF
}

cmd_start() {
	need_lib
	command -v java >/dev/null || die "java not found; Kafka 4 needs Java 17+"
	if pid=$(running_pid); then
		answers && { echo "kafka.sh: already running (pid $pid) on $BROKER"; return 0; }
		die "pid $pid is running but $BROKER does not answer; run: bash test/kafka/kafka.sh stop"
	fi
	for p in "$PORT" "$CPORT" "$SPORT"; do
		port_open "$p" && die "127.0.0.1:$p is already in use by another process; stop it or set KAFKA_PORT"
	done
	mkdir -p "$DIR"
	make_tls
	write_configs
	if [ -n "${KAFKA_KEEP_DATA:-}" ] && [ -d "$DATA" ]; then
		echo "kafka.sh: keeping the data in $DATA (restart)"
	else
		rm -rf "$DATA"
		# A cluster id is a base64url UUID (22 characters); making it here
		# saves a JVM start (StorageTool random-uuid).
		local id
		# An id that starts with '-' reads as an option to the tool's argument
		# parser ("expected one argument"): 1 start in 64 failed that way.
		# Kafka's own Uuid.randomUuid redraws those, so do we.
		id=-
		while [[ $id == -* ]]; do
			id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
		done
		java_tool kafka.tools.StorageTool format -t "$id" -c "$DIR/server.properties" \
			--add-scram "SCRAM-SHA-256=[name=$SASL_USER,password=$SASL_PASSWORD]" \
			--add-scram "SCRAM-SHA-512=[name=$SASL_USER,password=$SASL_PASSWORD]" >"$DIR/format.log" 2>&1 ||
			{ cat "$DIR/format.log" >&2; die "formatting $DATA failed"; }
	fi

	: >"$LOG"
	# setsid: the broker must not die with the shell that started it.
	setsid java -Xms"$HEAP" -Xmx"$HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
		-Djava.awt.headless=true \
		-Dlog4j2.configurationFile="$DIR/log4j2.properties" \
		-Dkafka.logs.dir="$DIR" \
		-cp "$LIB/*" kafka.Kafka "$DIR/server.properties" \
		>>"$LOG" 2>&1 </dev/null &
	local pid=$!
	echo "$pid" >"$PIDFILE"

	local deadline=$((SECONDS + START_TIMEOUT))
	until answers; do
		if ! kill -0 "$pid" 2>/dev/null; then
			tail -n 40 "$LOG" >&2
			rm -f "$PIDFILE"
			die "broker exited during start; log above, full log in $LOG"
		fi
		if ((SECONDS >= deadline)); then
			tail -n 40 "$LOG" >&2
			cmd_stop >&2
			die "broker did not answer on $BROKER within ${START_TIMEOUT}s; log above, full log in $LOG"
		fi
		sleep 0.5
	done
	echo "kafka.sh: Kafka $(kafka_version) up on $BROKER, SASL_SSL on 127.0.0.1:$SPORT (pid $pid, log $LOG)"
}

kafka_version() {
	ls "$LIB" | sed -n 's/^kafka_2\.13-\(.*\)\.jar$/\1/p'
}

cmd_stop() {
	local pid
	if ! pid=$(running_pid); then
		rm -f "$PIDFILE"
		echo "kafka.sh: not running"
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null || true
	local i
	for ((i = 0; i < 60; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.5
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "kafka.sh: pid $pid ignored SIGTERM for 30s; sending SIGKILL" >&2
		kill -KILL "$pid" 2>/dev/null || true
		sleep 0.5
	fi
	rm -f "$PIDFILE"
	echo "kafka.sh: stopped (pid $pid)"
}

cmd_status() {
	local pid
	pid=$(running_pid) || { echo "kafka.sh: not running"; return 1; }
	answers || { echo "kafka.sh: pid $pid running but $BROKER does not answer"; return 1; }
	echo "kafka.sh: running (pid $pid) on $BROKER"
}

cmd_topic() {
	[[ $# -eq 2 && $2 =~ ^[0-9]+$ ]] || die "usage: kafka.sh topic NAME PARTITIONS"
	need_lib
	[[ -f $DIR/tools-log4j2.properties ]] || write_configs
	java_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BROKER" \
		--create --if-not-exists --topic "$1" --partitions "$2" --replication-factor 1
}

case ${1:-} in
fetch) cmd_fetch ;;
start) cmd_start ;;
stop) cmd_stop ;;
restart) cmd_stop; KAFKA_KEEP_DATA=1 cmd_start ;;
status) cmd_status ;;
pid) running_pid || die "not running" ;;
env)
	echo "export WHARF_KAFKA_BROKERS=$BROKER"
	echo "export WHARF_KAFKA_SASL_BROKERS=127.0.0.1:$SPORT"
	echo "export WHARF_KAFKA_CA=$TLSDIR/ca.pem"
	echo "export WHARF_KAFKA_SASL_USER=$SASL_USER"
	echo "export WHARF_KAFKA_SASL_PASSWORD=$SASL_PASSWORD"
	;;
topic) shift; cmd_topic "$@" ;;
*) die "usage: kafka.sh fetch|start|stop|restart|status|pid|env|topic NAME PARTITIONS" ;;
esac
