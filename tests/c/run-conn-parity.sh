#!/usr/bin/env bash
# Runs tests/c/conn_parity_test twice over the test network, with the same expectations:
#   kernel:  in ut-srv<suffix> with 198.18.0.2/24 configured on ut-srv0 (the kernel's TCP is the oracle)
#   usertcp: the same binary under LD_PRELOAD in ut-srv<suffix> without a kernel address (the user stack owns it)
# The peer (tests/c/progs/peer.c, kernel TCP) runs in ut-cli<suffix> at 198.18.0.1 and takes orders over a UNIX
# socket. Needs root. Usage: run-conn-parity.sh [kernel|usertcp|both] [gtest args...]   (default both)
# Exit status: 0 when every run passed. Creates and always removes its own namespaces and peer.
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
B=${UT_TEST_BUILD:-$root/build}
mode=${1:-both}
[ $# -gt 0 ] && shift
bin=${UT_CONN_BIN:-$B/tests/conn_parity_test}
peer=$B/tests/progs/peer
lib=$B/libusertcp.so
for f in "$bin" "$peer" "$lib"; do [ -x "$f" ] || [ -f "$f" ] || { echo "run-conn-parity: missing $f (make test-c builds it)"; exit 1; }; done
[ "$(id -u)" = 0 ] || { echo "run-conn-parity: needs root (network namespaces)"; exit 1; }

suffix=p$$
cli=ut-cli$suffix srv=ut-srv$suffix
work=$(mktemp -d /tmp/usertcp-conn-XXXXXX)
peer_pid=
cleanup() {
  [ -n "$peer_pid" ] && kill "$peer_pid" 2>/dev/null && wait "$peer_pid" 2>/dev/null
  scripts/testnet.sh down --suffix "$suffix" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

scripts/testnet.sh up --suffix "$suffix" >/dev/null || { echo "run-conn-parity: cannot create the test network"; exit 1; }
ip netns exec "$cli" "$peer" "$work/ctl" >"$work/peer.log" 2>&1 &
peer_pid=$!
for _ in $(seq 50); do [ -S "$work/ctl" ] && break; sleep 0.1; done
[ -S "$work/ctl" ] || { echo "run-conn-parity: the peer did not start: $(cat "$work/peer.log")"; exit 1; }

rc=0
run_kernel() {
  echo "--- conn parity on the kernel"
  ip -n "$srv" addr add 198.18.0.2/24 dev ut-srv0 || return 1
  ip netns exec "$srv" env PEER_CTL="$work/ctl" timeout 300 "$bin" "$@"
  local r=$?
  ip -n "$srv" addr del 198.18.0.2/24 dev ut-srv0
  # The peer's neighbour entry stays valid: the user stack answers from the same MAC address.
  return $r
}
run_usertcp() {
  echo "--- conn parity on usertcp"
  ip netns exec "$srv" env PEER_CTL="$work/ctl" LD_PRELOAD="$lib" USERTCP_IP=198.18.0.2/24 \
    USERTCP_DEV=net_af_packet0,iface=ut-srv0 USERTCP_DPDK_ARGS="--log-level=*:error" timeout 300 "$bin" "$@"
}
case $mode in
  kernel) run_kernel "$@" || rc=1 ;;
  usertcp) run_usertcp "$@" || rc=1 ;;
  both) run_kernel "$@" || rc=1; run_usertcp "$@" || rc=1 ;;
  *) echo "usage: $0 [kernel|usertcp|both] [gtest args...]"; exit 2 ;;
esac
exit $rc
