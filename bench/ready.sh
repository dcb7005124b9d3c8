#!/usr/bin/env bash
# Sandbox boot benchmark: kernel start → core.ready, as the guest's clock sees it (the agent logs
# CLOCK_BOOTTIME at ready), and host wall time of `msb create` (process start → the CLI returns
# with the sandbox ready), several runs, medians. Not a timed test.
#
#   bench/ready.sh [RUNS]        BUILD=build MEMORY=128M
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
runs=${1:-3}
msb=${BUILD:-$root/build}/msb
[ -x "$msb" ] || { echo "$msb missing: build the msb target first" >&2; exit 1; }
[ -e /dev/kvm ] || { echo "/dev/kvm not found" >&2; exit 1; }
home=$(mktemp -d /tmp/msb-bench-ready.XXXXXX)
export MSB_HOME=$home
trap '"$msb" rm -f bench-ready >/dev/null 2>&1 || true; rm -rf "$home"' EXIT

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
results=$(mktemp)
for i in $(seq 1 "$runs"); do
    start=$(date +%s%N)
    "$msb" create --name bench-ready -m "${MEMORY:-128M}" >/dev/null
    end=$(date +%s%N)
    line=$("$msb" logs bench-ready | grep -m1 'agent ready in' || true)
    guest=$(sed -n 's/.*; \([0-9.]*\)\(s\|ms\) since kernel start.*/\1 \2/p' <<<"$line" |
        awk '{ print ($2 == "s") ? $1 * 1000 : $1 }')
    host_ms=$(( (end - start) / 1000000 ))
    echo "run $i: create→ready ${host_ms} ms (host); kernel→core.ready ${guest:-?} ms (guest clock)"
    echo "$host_ms ${guest:-0}" >>"$results"
    "$msb" rm -f bench-ready >/dev/null
done
echo "median over $runs runs: create→ready $(cut -d' ' -f1 "$results" | median) ms (host), kernel→core.ready $(cut -d' ' -f2 "$results" | median) ms (guest clock)"
rm -f "$results"
