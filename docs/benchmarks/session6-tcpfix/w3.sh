#!/bin/bash
# usage: w3.sh SIDE(kernel|usertcp) LIB CONNS SECONDS [extra USERTCP_DEV opts]
# needs: scripts/testnet.sh up --suffix tfx
set -u
SIDE=$1; LIB=$2; CONNS=${3:-10000}; SECS=${4:-3}; DEVOPT=${5:-}
ROOT=/work/wt/tcpfix
SRV=ut-srvtfx; CLI=ut-clitfx
ip -n $SRV addr flush dev ut-srv0
ip netns exec $SRV tc qdisc del dev ut-srv0 clsact 2>/dev/null
if [ "$SIDE" = kernel ]; then
  ip -n $SRV addr add 198.18.0.2/24 dev ut-srv0
  ip netns exec $SRV $ROOT/build/bench/rpc_server 7000 > /tmp/tfx/srv.log 2>&1 &
else
  ip netns exec $SRV tc qdisc add dev ut-srv0 clsact
  ip netns exec $SRV tc filter add dev ut-srv0 ingress bpf da bytecode "1,6 0 0 2,"
  ip netns exec $SRV env LD_PRELOAD=$LIB USERTCP_IP=198.18.0.2/24 USERTCP_DEV=packet:ut-srv0$DEVOPT USERTCP_DPDK_ARGS=--log-level=*:error USERTCP_STATS=1 $ROOT/build/bench/rpc_server 7000 > /tmp/tfx/srv.log 2>&1 &
fi
SP=$!
for i in $(seq 100); do ip netns exec $CLI timeout 1 bash -c "exec 3<>/dev/tcp/198.18.0.2/7000" 2>/dev/null && break; sleep 0.1; done
ip netns exec $CLI nstat -n >/dev/null
ip netns exec $CLI ${CLIENT:-$ROOT/build/bench/rpc_client} echo 198.18.0.2 7000 $CONNS $SECS
ip netns exec $CLI nstat TcpRetransSegs TcpExtTCPTimeouts TcpExtTCPLossProbes TcpExtTCPSynRetrans TcpExtTCPFastRetrans TcpOutSegs TcpInSegs TcpExtTCPDelivered TcpExtPAWSEstab TcpExtTCPSpuriousRTOs TcpExtTCPDSACKRecv TcpExtTCPAbortOnTimeout 2>/dev/null | tail -n +2 | awk '{printf "%s=%s ", $1, $2} END {print ""}'
grep VmRSS /proc/$SP/status 2>/dev/null; kill $SP; wait $SP 2>/dev/null
[ "$SIDE" = usertcp ] && grep -E "stats:" /tmp/tfx/srv.log | sed 's/^.*stats: //'
