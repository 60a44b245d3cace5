#!/usr/bin/env bash
# Measures the shim's added cost per call on kernel fds: the same Google Benchmark binary without and with
# LD_PRELOAD=build/libusertcp.so, alternating A B A B ..., median of each. Writes a markdown table to stdout.
# Usage: scripts/bench-shim.sh [rounds]   (run by `make bench`)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
bin=build/tests/shim_bench
lib=$(pwd)/build/libusertcp.so
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for i in $(seq "$rounds"); do
  taskset -c 1 "$bin" --benchmark_format=csv --benchmark_min_time=0.3 2>/dev/null | grep '^"BM_' > "$tmp/kernel.$i"
  LD_PRELOAD=$lib taskset -c 1 "$bin" --benchmark_format=csv --benchmark_min_time=0.3 2>/dev/null | grep '^"BM_' > "$tmp/usertcp.$i"
done
python3 - "$tmp" "$rounds" <<'PY'
import csv, statistics, sys, glob, os
tmp, rounds = sys.argv[1], int(sys.argv[2])
def load(kind):
    data = {}
    for f in sorted(glob.glob(os.path.join(tmp, kind + ".*"))):
        for row in csv.reader(open(f)):
            data.setdefault(row[0].strip('"'), []).append(float(row[3]))  # cpu_time, ns
    return data
k, u = load("kernel"), load("usertcp")
print(f"| call (kernel fd) | kernel ns (median of {rounds}) | under LD_PRELOAD ns | added ns | spread ns (max-min, kernel) |")
print("|---|---|---|---|---|")
for name in k:
    km, um = statistics.median(k[name]), statistics.median(u[name])
    print(f"| {name[3:]} | {km:.1f} | {um:.1f} | {um-km:+.1f} | {max(k[name])-min(k[name]):.1f} |")
PY

# Instructions added per call, counted by callgrind (stable, unlike time on a shared VM): the same loop of
# N calls without and with the preload, difference divided by N (start-up cost cancels out with two N values).
echo
echo "| call (kernel fd) | instructions added per call (callgrind) |"
echo "|---|---|"
loop=build/tests/shim_loop
ir() { # preload? call n
  local out=$tmp/cg.$RANDOM
  if [ "$1" = yes ]; then LD_PRELOAD=$lib valgrind --tool=callgrind --callgrind-out-file="$out" "$loop" "$2" "$3" >/dev/null 2>&1
  else valgrind --tool=callgrind --callgrind-out-file="$out" "$loop" "$2" "$3" >/dev/null 2>&1; fi
  awk '/^summary:/{print $2}' "$out"
}
for call in read write epoll_wait poll; do
  k1=$(ir no $call 1000); k2=$(ir no $call 11000); u1=$(ir yes $call 1000); u2=$(ir yes $call 11000)
  echo "| $call | $(( ((u2 - u1) - (k2 - k1)) / 10000 )) |"
done
