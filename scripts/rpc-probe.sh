#!/usr/bin/env bash
# One W3 measurement in topology (b) with load-independent counters: bench/rpc/rpc_server in ut-srv<S> on the kernel
# or on usertcp over net_af_packet, `rpc_client echo` with CONNS connections for SECS seconds in ut-cli<S>. Prints the
# client's result line, its kernel counters (nstat: segments, pure ACKs, retransmissions, tail-loss probes), both
# processes' CPU and, for usertcp, the server's exit statistics (device bursts = frames per af_packet kick).
#
# Usage: scripts/rpc-probe.sh kernel|usertcp CONNS SECS [perf]
#   the topology must be up: scripts/testnet.sh up --suffix S; make -C bench/rpc
#   env: SUFFIX (default bulk), LIB, EXTRA_ENV, KRX=drop (as in scripts/bulk-probe.sh), OUT (default /tmp/rpc-probe);
#   perf: `perf record -e cpu-clock -g` of the server for 2 s in the middle of the run (OUT/perf-SIDE.data)
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SIDE=${1:?kernel|usertcp} CONNS=${2:?conns} SECS=${3:?seconds} PERF=${4:-}
S=${SUFFIX:-bulk}; CLI=ut-cli$S SRV=ut-srv$S
LIB=${LIB:-$ROOT/build/libusertcp.so}
OUT=${OUT:-/tmp/rpc-probe}; mkdir -p "$OUT"
ip -n "$SRV" addr flush dev ut-srv0
ip netns exec "$SRV" tc qdisc del dev ut-srv0 clsact 2>/dev/null
if [ "$SIDE" = usertcp ] && [ "${KRX:-keep}" = drop ]; then
    ip netns exec "$SRV" tc qdisc add dev ut-srv0 clsact
    ip netns exec "$SRV" tc filter add dev ut-srv0 ingress bpf da bytecode '1,6 0 0 2,'
fi
if [ "$SIDE" = kernel ]; then ip -n "$SRV" addr add 198.18.0.2/24 dev ut-srv0; ENV=(); else
    ENV=(LD_PRELOAD="$LIB" USERTCP_IP=198.18.0.2/24 USERTCP_DEV=net_af_packet0,iface=ut-srv0 USERTCP_STATS=1
         "USERTCP_DPDK_ARGS=--log-level=*:error" ${EXTRA_ENV:-}); fi
ip netns exec "$SRV" /usr/bin/time -f "server cpu user %U sys %S" env "${ENV[@]}" "$ROOT/build/bench/rpc_server" 7000 \
    > "$OUT/server-$SIDE.log" 2>&1 &
for _ in $(seq 100); do ip netns exec "$CLI" bash -c 'exec 3<>/dev/tcp/198.18.0.2/7000' 2>/dev/null && break; sleep 0.1; done
# The server's pid: the rpc_server inside this namespace (never a name match across the machine).
SPID=""
for p in $(ip netns pids "$SRV"); do [ "$(cat /proc/$p/comm 2>/dev/null)" = rpc_server ] && SPID=$p; done
PERFPID=""
if [ -n "$PERF" ] && [ -n "$SPID" ]; then
    ( sleep $((SECS / 2 + 2)); perf record -q -e cpu-clock -g -p "$SPID" -o "$OUT/perf-$SIDE.data" -- sleep 2 >/dev/null 2>&1 ) &
    PERFPID=$!
fi
export NSTAT_HISTORY=$OUT/nstat.hist; rm -f "$NSTAT_HISTORY"; ip netns exec "$CLI" nstat -n
ip netns exec "$CLI" /usr/bin/time -f "client cpu user %U sys %S" "$ROOT/build/bench/rpc_client" echo 198.18.0.2 7000 "$CONNS" "$SECS"
ip netns exec "$CLI" nstat | grep -E "TcpInSegs|TcpOutSegs|TcpRetransSegs|DelayedACK|TCPPureAcks|TCPHPAcks|Timeouts|LossProbe|SynRetrans"
[ -n "$PERFPID" ] && wait "$PERFPID"
[ -n "$SPID" ] && kill -INT "$SPID"
sleep 1.5
grep -E "server cpu|device bursts|drops|packets rx|waits" "$OUT/server-$SIDE.log" | sed 's/.*stats: //'
