#!/usr/bin/env bash
# Runs every native fuzz target for the given time each (default 5s).
# A failure prints the fuzzer's output. A failing input (a crasher file
# under testdata/fuzz/) always fails the run; a failure without one (the
# fuzzing engine timing out on a loaded machine, "context deadline
# exceeded" when the time ends during baseline coverage) is retried up
# to twice.
set -euo pipefail
cd "$(dirname "$0")/.."
t=${1:-5s}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for f in $(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true); do
    echo "fuzz: $pkg $f ($t)"
    for try in 1 2 3; do
      before=$( (ls "$dir/testdata/fuzz/$f" 2>/dev/null || true) | wc -l)
      if go test -run '^$' -fuzz "^$f\$" -fuzztime "$t" "$pkg" >"$out" 2>&1; then
        break
      fi
      after=$( (ls "$dir/testdata/fuzz/$f" 2>/dev/null || true) | wc -l)
      tail -n 40 "$out"
      if [ "$after" -gt "$before" ] || [ "$try" = 3 ]; then
        echo "fuzz: $pkg $f failed (new inputs in $dir/testdata/fuzz/$f: $((after - before)))" >&2
        exit 1
      fi
      echo "fuzz: $pkg $f failed without a failing input (attempt $try of 3); trying again" >&2
    done
  done
done
