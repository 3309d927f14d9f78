#!/usr/bin/env bash
# instr.sh: instructions and simulated L1 data-cache misses per message of
# a Go benchmark, under cachegrind. Deterministic, unlike wall or CPU time
# on a shared VM, and there where the VM exposes no hardware counters
# (perf stat -e instructions: not supported). Producer and sink runner run
# on one P (GOMAXPROCS=1), so the figure is all the work per message.
#
#   bench/instr.sh [package] [benchmark regexp]
#   bench/instr.sh ./ingest 'RelayPathTCPFramed/header'   (the default)
#
# The per-message figure is the slope between two runs (LO and HI
# messages), so start-up and the benchmark's set-up cancel out. To compare
# two commits, run it in a worktree of each.
set -euo pipefail
pkg=${1:-./ingest}
bench=${2:-RelayPathTCPFramed/header}
lo=${LO:-100000}
hi=${HI:-300000}
if ! command -v valgrind >/dev/null; then
	if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
		echo "instr.sh: installing valgrind" >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null ||
			{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null; }
	fi
	command -v valgrind >/dev/null || { echo "instr.sh: valgrind not installed (apt-get install valgrind)" >&2; exit 1; }
fi
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go test -c -o "$tmp/t" "$pkg"
run() { # $1 = messages; prints "instructions D1-misses"
	GOMAXPROCS=1 valgrind --tool=cachegrind --cache-sim=yes --cachegrind-out-file=/dev/null \
		"$tmp/t" -test.run '^$' -test.bench "$bench" -test.benchtime "${1}x" 2>&1 |
		awk '/I +refs:/ {gsub(",", "", $4); i=$4} /D1 +misses:/ {gsub(",", "", $4); d=$4} END {print i, d}'
}
read -r i1 d1 < <(run "$lo")
read -r i2 d2 < <(run "$hi")
awk -v i1="$i1" -v i2="$i2" -v d1="$d1" -v d2="$d2" -v n=$((hi - lo)) -v b="$bench" \
	'BEGIN { printf "%s: %.0f instructions, %.1f L1 data misses per message (cachegrind, GOMAXPROCS=1)\n", b, (i2-i1)/n, (d2-d1)/n }'
