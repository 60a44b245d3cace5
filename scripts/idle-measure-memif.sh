#!/bin/bash
# Idle CPU of both ends of a memif link (topology (a)) and the round trip after quiet spells (docs/benchmarks.md,
# "Idle server CPU and connection latency"): bench/rpc's rpc_server (memif server end) and rpc_client holding N idle
# connections (client end), both on usertcp; 3 s to settle after the connections opened, then each process's
# utime+stime over WINDOW seconds (USER_HZ ticks), then ROUNDS one-byte echoes on a held connection, each after 1 s of
# quiet (rpc_client's "ping": write, poll() for the echo).
# Usage: scripts/idle-measure-memif.sh [LIB] [N] [WINDOW] [ROUNDS] [TAG]   (TAG names the memif socket: /tmp/TAG-*.sock)
set -euo pipefail
cd "$(dirname "$0")/.."
lib=$(realpath "${1:-build/libusertcp.so}"); n=${2:-10000}; window=${3:-10}; rounds=${4:-10}; tag=${5:-idle-memif}
sock=/tmp/$tag-$$.sock
common=(LD_PRELOAD="$lib" USERTCP_VIRTUAL_FDS=1 "USERTCP_DPDK_ARGS=--log-level=*:error")
env "${common[@]}" USERTCP_IP=198.18.0.2/24 USERTCP_DEV="net_memif0,role=server,socket=$sock" \
  build/bench/rpc_server 7000 1 > /tmp/$tag-$$.srv.log 2>&1 &
srv=$!
cleanup() {
  [ -n "${cli_pid:-}" ] && kill "$cli_pid" 2>/dev/null || true
  sleep 0.5 # the server sees the link go down before it exits (memif close race, docs/dpdk.md)
  kill "$srv" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -f "$sock" /tmp/$tag-$$.srv.log
}
trap cleanup EXIT
sleep 2
coproc CLI { exec env "${common[@]}" USERTCP_IP=198.18.0.1/24 USERTCP_DEV="net_memif1,role=client,socket=$sock" \
  RPC_CONNECT_SECONDS=60 build/bench/rpc_client hold 198.18.0.2 7000 "$n"; }
cli_pid=$CLI_PID
read -r opened <&"${CLI[0]}"
echo "$opened"
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
sleep 3
s0=$(ticks "$srv"); c0=$(ticks "$cli_pid"); a=$(date +%s.%N)
sleep "$window"
s1=$(ticks "$srv"); c1=$(ticks "$cli_pid"); b=$(date +%s.%N)
hz=$(getconf CLK_TCK)
awk -v s="$((s1 - s0))" -v c="$((c1 - c0))" -v hz="$hz" -v a="$a" -v b="$b" -v n="$n" 'BEGIN {
  printf "idle CPU holding %d connections: server %.2f %%, client %.2f %% of a core (%d and %d ticks in %.1f s)\n",
    n, 100 * s / hz / (b - a), 100 * c / hz / (b - a), s, c, b - a }'
times=()
for _ in $(seq "$rounds"); do
  sleep 1
  echo ping >&"${CLI[1]}"
  read -r line <&"${CLI[0]}"
  times+=("${line#ping_us=}")
done
printf '%s\n' "${times[@]}" | sort -n | awk '{ v[NR] = $1 } END { printf "echo after 1 s quiet (us): min %.0f p50 %.0f max %.0f (n=%d)\n", v[1], v[int((NR + 1) / 2)], v[NR], NR }'
echo quit >&"${CLI[1]}"
wait "$cli_pid" 2>/dev/null || true
cli_pid=
