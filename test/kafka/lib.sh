# Shared by kafka.sh (one broker) and cluster.sh (three brokers): sourced
# once LIB (the broker jars) and DIR (where configs go) are set and die is
# defined.

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

# port_open PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# write_log4j: the brokers' log config (INFO, the chatty loggers at WARN)
# and the tools' (warnings to stderr) in $DIR.
write_log4j() {
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
