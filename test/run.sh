#!/usr/bin/env bash
# Starts the real peers on loopback (Apache Kafka in KRaft mode, a
# syslog-ng downstream collector), exports where they are, runs every Go
# test with WHARF_INTEGRATION=1 (so a test whose peer is missing fails
# instead of skipping), runs short fuzz passes, and stops the peers.
set -euo pipefail
cd "$(dirname "$0")/.."

cleanup() {
  bash test/kafka/cluster.sh stop >/dev/null 2>&1 || true
  bash test/collector/syslog-ng.sh stop || true
  bash test/kafka/kafka.sh stop || true
}
trap cleanup EXIT

# A port of its own, so a developer's broker on 9092 does not collide.
export KAFKA_PORT=${KAFKA_PORT:-19092}
bash test/kafka/kafka.sh start
eval "$(bash test/kafka/kafka.sh env)"
bash test/collector/syslog-ng.sh start
eval "$(bash test/collector/syslog-ng.sh env)"
eval "$(bash test/rsyslog/rsyslog.sh env)" # the RELP tests start their own rsyslogd

export WHARF_INTEGRATION=1
# The binary under test is built apart from bin/: make build's bin/wharf
# (with the version in its ldflags) is not replaced by an unversioned one.
testbin=$(mktemp -d)
trap 'cleanup; rm -rf "$testbin"' EXIT
go build -o "$testbin/wharf" ./cmd/wharf
export WHARF_BIN="$testbin/wharf"

go vet ./...
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './var/*'))
if [ -n "$unformatted" ]; then echo "gofmt would change: $unformatted" >&2; exit 1; fi
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
go test -count=1 -timeout 15m ./...
go test -count=1 -race -timeout 10m ./sinks/ ./route/ ./ingest/... ./relp/ ./admin/
# The HTTP proxy under -race with its default engine (event-loop: the
# loops and the goroutines they hand connections to share state; the
# both-engines tests run goroutines too), then its tests again with
# engine = "goroutines" on every plain HTTP frontend they start (TLS and
# accept_proxy frontends always use goroutines).
go test -count=1 -race -timeout 10m ./proxy/httpproxy/
WHARF_TEST_HTTP_ENGINE=goroutines go test -count=1 -timeout 10m ./proxy/httpproxy/
# Fault tests stop and restart the shared peers: alone, after the rest.
# The fault matrix's three-node Kafka cluster (KRaft, RF 3,
# min.insync.replicas 2, loopback ports 29092-29104) runs only here.
bash test/kafka/cluster.sh start
eval "$(bash test/kafka/cluster.sh env)"
WHARF_FAULT=1 go test -count=1 -timeout 12m -run '^TestFault' -v ./test/e2e/ | grep -E '^(=== RUN|--- |PASS|FAIL|ok)|_test.go|^        (node|senders|ledger)'
bash test/kafka/cluster.sh stop

bash test/fuzz.sh 20000x
