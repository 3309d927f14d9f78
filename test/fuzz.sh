#!/usr/bin/env bash
# Runs every native fuzz target for a number of executions each (default
# 20000x; `make fuzz` runs 1000000x). The budget is a count, not a
# duration: with a duration Go's fuzzing coordinator can end on its own
# deadline while a worker is still busy on a loaded machine and report
# "context deadline exceeded" with no failing input (go.dev/issue/75804);
# a count has no deadline to race, so a run ends by itself and any failure
# is real. A failure prints the fuzzer's output and, when there is one,
# the new failing input under testdata/fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-20000x}
if ! [[ $n =~ ^[0-9]+x$ ]]; then
  echo "fuzz.sh: budget $n: give a number of executions such as 20000x (a duration races Go's fuzzing deadline)" >&2
  exit 2
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for f in $(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true); do
    echo "fuzz: $pkg $f ($n)"
    before=$( (ls "$dir/testdata/fuzz/$f" 2>/dev/null || true) | wc -l)
    if ! go test -run '^$' -fuzz "^$f\$" -fuzztime "$n" "$pkg" >"$out" 2>&1; then
      after=$( (ls "$dir/testdata/fuzz/$f" 2>/dev/null || true) | wc -l)
      tail -n 40 "$out"
      echo "fuzz: $pkg $f failed (new inputs in $dir/testdata/fuzz/$f: $((after - before)))" >&2
      exit 1
    fi
  done
done
