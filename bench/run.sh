#!/usr/bin/env bash
# bench/run.sh: what `make bench` runs after `make build`. Installs the
# peers (bench/peers/install.sh), makes a Kafka broker available for the
# Kafka scenario (WHARF_KAFKA_BROKERS if set, else a running test broker,
# else test/kafka/kafka.sh start, after kafka.sh fetch (Maven) if its jars
# are missing, stopped again at the end), then runs
# every scenario and writes bench/results/.
#
#   bash bench/run.sh [wharf-bench compare flags...]
#   BENCH_RUNS=1 bash bench/run.sh -relays wharf,haproxy -scenarios tcp
#   BENCH_KAFKA=0 bash bench/run.sh          # no Kafka scenario
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

[[ -x bin/wharf-bench ]] || go build -o bin/wharf-bench ./cmd/wharf-bench
[[ -x bin/wharf ]] || echo "bench/run.sh: bin/wharf missing (make build): wharf's rows will say not run" >&2
bash bench/peers/install.sh

if [[ -z "${WHARF_KAFKA_BROKERS:-}" && "${BENCH_KAFKA:-1}" != 0 ]]; then
	if bash test/kafka/kafka.sh status >/dev/null 2>&1; then
		eval "$(bash test/kafka/kafka.sh env)"
	elif bash test/kafka/kafka.sh start || { bash test/kafka/kafka.sh fetch && bash test/kafka/kafka.sh start; }; then
		trap 'bash test/kafka/kafka.sh stop' EXIT
		eval "$(bash test/kafka/kafka.sh env)"
	else
		echo "bench/run.sh: no Kafka broker: Kafka scenario skipped" >&2
	fi
fi
[[ "${BENCH_KAFKA:-1}" == 0 ]] && unset WHARF_KAFKA_BROKERS

# A broker just started keeps a CPU busy for a while: wait, up to a
# minute, until the machine is below 10% busy over 2 s (compare.Settle).
bin/wharf-bench settle -busy 0.1 -window 2s -max 1m

# On a shared machine neighbours skew the figures; as root, run the
# harness and the relays at a higher priority (BENCH_NICE=0 to disable).
nice=()
[[ "$(id -u)" == 0 && "${BENCH_NICE:--10}" != 0 ]] && nice=(-nice "${BENCH_NICE:--10}")

bin/wharf-bench compare -root . -runs "${BENCH_RUNS:-3}" -out bench/results "${nice[@]}" "$@"
