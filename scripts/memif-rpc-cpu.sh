#!/bin/bash
# Request/response cost over memif (topology (a), docs/benchmarks.md "Session 5, devicea"): bench/rpc's rpc_server and
# rpc_client echo both on usertcp over one memif link in the current namespace (or both on the kernel over 127.0.0.1
# with LIB=kernel), one run of SECONDS; prints requests/s, the CPU time of both processes together (utime + stime from
# /usr/bin/time, DPDK start-up included) and requests per CPU-second, which moves less with a loaded machine than the
# rate does.
# Usage: scripts/memif-rpc-cpu.sh LIB|kernel SIZE SECONDS [CONNS]
#   EXTRA_DEV=,mtu=16000,trusted=1 appends device arguments to both ends; TAG names the socket. Needs make -C bench/rpc.
set -uo pipefail
lib=$1; size=$2; t=$3; conns=${4:-10}
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/lib/memif-pair.sh"
memif_pair "$lib" "${TAG:-memif-rpc}" "${EXTRA_DEV:-}"
port=$((7300 + $$ % 500))
/usr/bin/time -o "$work/s.time" -f "%U %S" "${srvcmd[@]}" timeout $((t + 20)) "$root/build/bench/rpc_server" $port >"$work/s.log" 2>&1 &
srv=$!; sleep 1.5
out=$(/usr/bin/time -o "$work/c.time" -f "%U %S" "${clicmd[@]}" timeout $((t + 15)) "$root/build/bench/rpc_client" echo $host $port "$conns" "$t" "$size" 2>/dev/null)
kill -INT $(pgrep -P $srv) 2>/dev/null; wait $srv 2>/dev/null # timeout passes SIGINT on to rpc_server
reqs=$(echo "$out" | tr ' ' '\n' | awk -F= '$1 == "requests" {print $2}')
cpu=$(memif_pair_cpu)
awk -v r="${reqs:-0}" -v c="${cpu:-0}" -v t="$t" 'BEGIN { printf "%.0f req/s, %.2f cpu-s, %.0f requests per cpu-s\n", r / t, c, (c > 0 ? r / c : 0) }'
