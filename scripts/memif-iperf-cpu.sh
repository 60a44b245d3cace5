#!/bin/bash
# Bulk transfer cost over memif (topology (a), docs/benchmarks.md "Session 3: what the device offers for bulk
# transfers"): iperf3 server and client both on usertcp over one memif link in the current namespace (or both on the
# kernel over 127.0.0.1 with LIB=kernel), one run of SECONDS; prints the receiver's rate, the CPU time of both
# processes together (utime + stime from /usr/bin/time, DPDK start-up included) and Gbit moved per CPU-second.
# Usage: scripts/memif-iperf-cpu.sh LIB|kernel MTU SECONDS [iperf3 client args, e.g. -R]
#   MTU 0: the PMD's 1500; EXTRA_DEV=,trusted=1 appends more device arguments to both ends, EXTRA_CLI to the client's
#   only (e.g. ,zero-copy=yes); TAG names the socket.
set -uo pipefail
lib=$1; mtu=$2; t=$3; shift 3
. "$(dirname "$0")/lib/memif-pair.sh"
m=""; [ "$mtu" != 0 ] && m=",mtu=$mtu"
memif_pair "$lib" "${TAG:-memif-iperf}" "$m${EXTRA_DEV:-}" "${EXTRA_CLI:-}"
port=$((5300 + $$ % 500))
/usr/bin/time -o "$work/s.time" -f "%U %S" "${srvcmd[@]}" timeout 60 iperf3 -4 -s -1 -p $port >"$work/s.log" 2>&1 &
srv=$!; sleep 1.5
out=$(/usr/bin/time -o "$work/c.time" -f "%U %S" "${clicmd[@]}" timeout 40 iperf3 -4 -c $host -p $port -t "$t" "$@" 2>&1)
wait $srv 2>/dev/null
rate=$(echo "$out" | awk '/receiver$/{v=$7; if ($8 ~ /^M/) v/=1000; print v}')
cpu=$(memif_pair_cpu)
awk -v r="${rate:-0}" -v c="$cpu" -v t="$t" 'BEGIN { printf "%.2f Gbit/s, %.2f cpu-s, %.2f Gbit per cpu-s\n", r, c, (c > 0 ? r * t / c : 0) }'
