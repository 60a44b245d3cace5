#!/usr/bin/env bash
# One W4 measurement in topology (b) with the counters that do not depend on the machine's load: iperf3 single flow
# between the kernel client (namespace ut-cli<S>) and an iperf3 server in ut-srv<S>, on the kernel or on usertcp (the
# packet socket device or DPDK's net_af_packet). Prints Gbit/s, the server's CPU seconds, segments and ACKs per MB and retransmissions from the
# client's kernel counters (nstat), and for usertcp the server's exit statistics (USERTCP_STATS: device bursts,
# drops, retransmissions). With STRACE=1 the server runs under `strace -c -f` (system calls per MB; slows it).
#
# Usage: scripts/bulk-probe.sh kernel|usertcp c2s|s2c [SECONDS] [--suffix S]
#   the topology must be up: scripts/testnet.sh up --suffix S (default suffix: bulk)
#   env: LIB (default build/libusertcp.so), DEV (USERTCP_DEV: `packet` = packet:ut-srv0, the default; `af_packet` =
#   net_af_packet0,iface=ut-srv0; or any USERTCP_DEV string, e.g. packet:ut-srv0,tso=0), EXTRA_ENV (more VAR=value
#   for the usertcp server), STRACE=1, OUT (directory for logs, default /tmp/bulk-probe), KRX=drop (usertcp: the
#   server namespace's kernel drops the frames after af_packet's tap, as scripts/ab.py --srv-kernel-rx drop; default
#   keep)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SIDE=${1:?kernel|usertcp}; DIR=${2:?c2s|s2c}; SECS=${3:-5}
SUFFIX=bulk
[ "${4:-}" = --suffix ] && SUFFIX=$5
CLI=ut-cli$SUFFIX SRV=ut-srv$SUFFIX
LIB=${LIB:-$ROOT/build/libusertcp.so}
DEV=${DEV:-packet}
case $DEV in
    packet) DEV=packet:ut-srv0 ;;                      # the packet socket device, TSO on (docs/packet-socket.md)
    af_packet) DEV=net_af_packet0,iface=ut-srv0 ;;    # DPDK's af_packet PMD (the default before session 5)
esac
OUT=${OUT:-/tmp/bulk-probe}
mkdir -p "$OUT"
LOG=$OUT/server-$SIDE-$DIR.log
: > "$LOG"

ip -n "$SRV" addr flush dev ut-srv0
ip netns exec "$SRV" tc qdisc del dev ut-srv0 clsact 2>/dev/null || true
if [ "$SIDE" = usertcp ] && [ "${KRX:-keep}" = drop ]; then
    ip netns exec "$SRV" tc qdisc add dev ut-srv0 clsact
    ip netns exec "$SRV" tc filter add dev ut-srv0 ingress bpf da bytecode '1,6 0 0 2,'
fi
if [ "$SIDE" = kernel ]; then
    ip -n "$SRV" addr add 198.18.0.2/24 dev ut-srv0
    ENV=()
else
    ENV=(LD_PRELOAD="$LIB" USERTCP_IP=198.18.0.2/24 USERTCP_DEV="$DEV" USERTCP_STATS=1
         USERTCP_DPDK_ARGS="--log-level=*:error" ${EXTRA_ENV:-})
fi
WRAP=()
[ "${STRACE:-0}" = 1 ] && WRAP=(strace -c -f -o "$OUT/strace-$SIDE-$DIR.txt")
ip netns exec "$SRV" /usr/bin/time -f "server cpu user %U sys %S" "${WRAP[@]}" env "${ENV[@]}" \
    iperf3 -4 -s -p 5201 -I "$OUT/iperf3.pid" >>"$LOG" 2>&1 &
SPID=$!
for _ in $(seq 100); do
    ip netns exec "$CLI" bash -c 'exec 3<>/dev/tcp/198.18.0.2/5201' 2>/dev/null && break
    sleep 0.1
done
sleep 0.3
export NSTAT_HISTORY=$OUT/nstat.hist; rm -f "$NSTAT_HISTORY"
ip netns exec "$CLI" nstat -n >/dev/null
FLAG=(); [ "$DIR" = s2c ] && FLAG=(-R)
J=$(ip netns exec "$CLI" /usr/bin/time -o "$OUT/client-time.txt" -f "client cpu user %U sys %S" \
    iperf3 -4 -c 198.18.0.2 -p 5201 -t "$SECS" -J "${FLAG[@]}" || true)
NS=$(ip netns exec "$CLI" nstat 2>/dev/null || true)
kill -TERM "$(cat "$OUT/iperf3.pid")" 2>/dev/null || true
wait $SPID || true
python3 - "$J" "$NS" "$LOG" "$SIDE" "$DIR" "$OUT/client-time.txt" <<'EOF'
import json, re, sys
j, ns, log, side, d = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
try:
    e = json.loads(j)["end"]
    bps = e["sum_received"]["bits_per_second"]; mb = e["sum_received"]["bytes"] / 1e6
except Exception as x:
    print("iperf3 failed:", x, j[-300:]); sys.exit(1)
c = {}
for line in ns.splitlines():
    f = line.split()
    if len(f) >= 2 and f[1].isdigit(): c[f[0]] = int(f[1])
g = lambda k: c.get(k, 0)
text = open(log, errors="replace").read()
cpu = re.search(r"server cpu user ([\d.]+) sys ([\d.]+)", text)
u, s = (float(cpu.group(1)), float(cpu.group(2))) if cpu else (0, 0)
ccpu = re.search(r"client cpu user ([\d.]+) sys ([\d.]+)", open(sys.argv[6]).read())
cu, cs = (float(ccpu.group(1)), float(ccpu.group(2))) if ccpu else (0, 0)
print(f"{side} {d}: {bps/1e9:.2f} Gbit/s, {mb:.0f} MB; server cpu user {u:.2f} s sys {s:.2f} s = "
      f"{(u+s)/mb*1000:.2f} ms/MB; client cpu {cu+cs:.2f} s; both {(u+s+cu+cs)/mb*1000:.2f} ms/MB; client in {g('TcpInSegs')/mb:.1f} out {g('TcpOutSegs')/mb:.1f} segs/MB, "
      f"retrans {g('TcpRetransSegs')}, delayed acks {g('TcpExtDelayedACKs')}, ofo {g('TcpExtTCPOFOQueue')}, "
      f"rcv pruned {g('TcpExtRcvPruned')}; client loss probes {g('TcpExtTCPLossProbes')}, timeouts "
      f"{g('TcpExtTCPTimeouts')}, fast retransmits {g('TcpExtTCPFastRetrans')}, D-SACKs received {g('TcpExtTCPDSACKRecv')}")
for line in text.splitlines():
    if ": stats: " in line and any(k in line for k in ("packets rx", "drops", "device", "waits")):
        print("  " + line.split(": stats: ", 1)[1])
        m = re.search(r"tx calls (\d+)", line)
        if m: print(f"  tx kicks per MB {int(m.group(1))/mb:.1f}")
EOF
