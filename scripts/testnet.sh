#!/usr/bin/env bash
# Test network for usertcp: two network namespaces joined by a veth pair, addresses from 198.18.0.0/15 only
# (RFC 2544 benchmarking range, never routed).
#
#   namespace <prefix>-cli<suffix>   veth ut-cli0  198.18.0.1/24   kernel TCP/IP stack (ping, curl, iperf3 ...)
#   namespace <prefix>-srv<suffix>   veth ut-srv0  no kernel IP     the user-level stack owns 198.18.0.2 through
#                                                                  DPDK net_af_packet (iface=ut-srv0)
#
# The interfaces live only inside their namespaces, so their names do not collide between parallel runs; the
# namespace names carry the suffix. Checksum, segmentation and receive offloads are turned off on both ends: with
# them the kernel would hand the user-level stack frames with unfinished checksums and 64 KB TSO "frames".
#
# Usage: scripts/testnet.sh up|down|status [options]
#   --prefix P        namespace prefix (default ut)
#   --suffix S        namespace suffix, e.g. a pid, for parallel runs (default none)
#   --loss PCT        netem: drop PCT% of frames (each direction)
#   --delay MS        netem: one-way delay in ms (each direction)
#   --jitter MS       netem: delay jitter in ms (needs --delay)
#   --reorder PCT     netem: send PCT% of frames early, out of order (needs --delay)
#   --duplicate PCT   netem: duplicate PCT% of frames
#   --rate RATE       netem: rate limit, e.g. 100mbit
#   --netem-on SIDE   which egress gets netem: both (default), cli (cli->srv), srv (srv->cli)
#   --mtu N           MTU of both veth ends (default 1500)
#   --hugepages N     make sure at least N 2 MiB hugepages are reserved (system-wide; never lowered, kept by down)
#   --all             down/status: every namespace with the prefix, whatever the suffix
#
# up is idempotent (it recreates the topology from scratch); down always succeeds and removes everything it made.
# Needs root, iproute2 (ip, tc) and ethtool.
set -euo pipefail

PREFIX=ut
SUFFIX=
LOSS= DELAY= JITTER= REORDER= DUPLICATE= RATE=
NETEM_ON=both
MTU=1500
HUGEPAGES=
ALL=0

CLI_IP=198.18.0.1/24
SRV_IP=198.18.0.2          # owned by the user-level stack; not configured in the kernel
CLI_MAC=02:00:c6:12:00:01
SRV_MAC=02:00:c6:12:00:02

die() { echo "testnet: $*" >&2; exit 1; }

[ $# -ge 1 ] || die "usage: $0 up|down|status [options] (see the header of this script)"
CMD=$1; shift
while [ $# -gt 0 ]; do
    case $1 in
        --prefix) PREFIX=$2; shift 2 ;;
        --suffix) SUFFIX=$2; shift 2 ;;
        --loss) LOSS=$2; shift 2 ;;
        --delay) DELAY=$2; shift 2 ;;
        --jitter) JITTER=$2; shift 2 ;;
        --reorder) REORDER=$2; shift 2 ;;
        --duplicate) DUPLICATE=$2; shift 2 ;;
        --rate) RATE=$2; shift 2 ;;
        --netem-on) NETEM_ON=$2; shift 2 ;;
        --mtu) MTU=$2; shift 2 ;;
        --hugepages) HUGEPAGES=$2; shift 2 ;;
        --all) ALL=1; shift ;;
        *) die "unknown option $1" ;;
    esac
done

[[ $PREFIX =~ ^[A-Za-z0-9_-]+$ ]] || die "bad --prefix '$PREFIX'"
[[ -z $SUFFIX || $SUFFIX =~ ^[A-Za-z0-9_-]+$ ]] || die "bad --suffix '$SUFFIX'"
case $NETEM_ON in both|cli|srv) ;; *) die "--netem-on must be both, cli or srv" ;; esac
[ -n "$REORDER" ] && [ -z "$DELAY" ] && die "--reorder needs --delay (netem reorders by not delaying some frames)"
[ -n "$JITTER" ] && [ -z "$DELAY" ] && die "--jitter needs --delay"

CLI_NS=$PREFIX-cli$SUFFIX
SRV_NS=$PREFIX-srv$SUFFIX

need_root() { [ "$(id -u)" -eq 0 ] || die "needs root (network namespaces)"; }

ns_exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx -- "$1"; }

# Namespaces this invocation is about: the pair, or with --all every one with the prefix.
our_namespaces() {
    if [ "$ALL" -eq 1 ]; then
        ip netns list 2>/dev/null | awk '{print $1}' | grep -E -- "^${PREFIX}-(cli|srv)" || true
    else
        for ns in "$CLI_NS" "$SRV_NS"; do ns_exists "$ns" && echo "$ns"; done
        true
    fi
}

down() {
    local ns
    for ns in $(our_namespaces); do
        # Deleting the namespace destroys the veth end inside it, and with it the peer.
        ip netns del "$ns" 2>/dev/null || true
    done
}

netem_args() {
    local a=()
    [ -n "$DELAY" ] && a+=(delay "${DELAY}ms") && [ -n "$JITTER" ] && a+=("${JITTER}ms")
    [ -n "$LOSS" ] && a+=(loss "${LOSS}%")
    [ -n "$REORDER" ] && a+=(reorder "${REORDER}%")
    [ -n "$DUPLICATE" ] && a+=(duplicate "${DUPLICATE}%")
    [ -n "$RATE" ] && a+=(rate "$RATE")
    echo "${a[@]}"
}

no_offloads() { # ns ifname
    ip netns exec "$1" ethtool -K "$2" tx off rx off tso off gso off gro off >/dev/null 2>&1 ||
        ip netns exec "$1" ethtool -K "$2" tx off tso off gso off >/dev/null 2>&1 ||
        echo "testnet: warning: could not turn off offloads on $2 (is ethtool installed?)" >&2
}

reserve_hugepages() {
    local want=$1 have
    have=$(cat /proc/sys/vm/nr_hugepages)
    if [ "$have" -lt "$want" ]; then
        echo "$want" > /proc/sys/vm/nr_hugepages
        have=$(cat /proc/sys/vm/nr_hugepages)
    fi
    [ "$have" -ge "$want" ] || echo "testnet: warning: asked for $want hugepages, the kernel reserved $have" >&2
    echo "hugepages: $(awk '/HugePages_Total/ {t=$2} /HugePages_Free/ {f=$2} END {print t " reserved, " f " free"}' /proc/meminfo)"
}

up() {
    down
    ip netns add "$CLI_NS"
    ip netns add "$SRV_NS"
    # Create both ends directly inside their namespaces: nothing ever appears in the caller's namespace.
    ip link add name ut-cli0 netns "$CLI_NS" address "$CLI_MAC" mtu "$MTU" type veth \
        peer name ut-srv0 netns "$SRV_NS" address "$SRV_MAC" mtu "$MTU"
    local ns
    for ns in "$CLI_NS" "$SRV_NS"; do
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 || true
        ip -n "$ns" link set lo up
    done
    ip -n "$CLI_NS" addr add "$CLI_IP" dev ut-cli0
    ip -n "$CLI_NS" link set ut-cli0 up
    ip -n "$SRV_NS" link set ut-srv0 up
    no_offloads "$CLI_NS" ut-cli0
    no_offloads "$SRV_NS" ut-srv0

    local args
    args=$(netem_args)
    if [ -n "$args" ]; then
        command -v modprobe >/dev/null && modprobe -q sch_netem 2>/dev/null || true
        local side dev
        for side in cli srv; do
            [ "$NETEM_ON" = both ] || [ "$NETEM_ON" = "$side" ] || continue
            ns=$CLI_NS dev=ut-cli0
            [ $side = srv ] && ns=$SRV_NS dev=ut-srv0
            # shellcheck disable=SC2086
            if ! ip netns exec "$ns" tc qdisc replace dev "$dev" root netem $args; then
                down
                die "cannot add netem on $dev: the kernel has no sch_netem (CONFIG_NET_SCH_NETEM); nothing left up"
            fi
        done
    fi
    [ -n "$HUGEPAGES" ] && reserve_hugepages "$HUGEPAGES"
    echo "up: $CLI_NS (ut-cli0 $CLI_IP $CLI_MAC) <-> $SRV_NS (ut-srv0, user stack $SRV_IP, $SRV_MAC)${args:+ netem: $args on $NETEM_ON}"
}

status() {
    local ns found=0
    for ns in $(our_namespaces); do
        found=1
        echo "== $ns"
        ip -n "$ns" -br addr show 2>/dev/null | grep -v '^lo ' || true
        ip netns exec "$ns" tc qdisc show 2>/dev/null | grep netem || true
    done
    [ "$found" -eq 1 ] || echo "down ($CLI_NS, $SRV_NS absent)"
    awk '/HugePages_Total/ {t=$2} /HugePages_Free/ {f=$2} END {print "hugepages: " t " reserved, " f " free"}' /proc/meminfo
}

case $CMD in
    up) need_root; up ;;
    down) need_root; down; [ -n "$HUGEPAGES" ] && reserve_hugepages "$HUGEPAGES"; true ;;
    status) status ;;
    *) die "unknown command $CMD (up, down, status)" ;;
esac
