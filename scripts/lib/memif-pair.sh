# Sourced by scripts/memif-rpc-cpu.sh and scripts/memif-iperf-cpu.sh: one server and one client process over one memif
# link in the current namespace (both on usertcp), or both on the kernel over 127.0.0.1 (LIB "kernel").
#
# memif_pair LIB TAG DEVOPTS [CLIENT_EXTRA] sets
#   sock, work   the memif socket path and a scratch directory (mktemp's template), both removed at exit;
#   srvcmd, clicmd   the `env ...` prefixes that run a program as the server end (198.18.0.2, role=server) and the
#                client end (198.18.0.1, role=client), DEVOPTS appended to both devices, CLIENT_EXTRA to the client's;
#   host         the address the client connects to.
# memif_pair_cpu prints the CPU seconds (utime + stime) of both processes, written by
#   /usr/bin/time -f "%U %S" to $work/s.time and $work/c.time.
memif_pair() {
  local lib=$1 tag=$2 opts=$3 cli_extra=${4:-}
  sock=/tmp/$tag-$$.sock
  work=$(mktemp -d "/tmp/$tag.XXXXXX")
  trap 'rm -rf "$work" "$sock"' EXIT
  if [ "$lib" = kernel ]; then
    srvcmd=(env); clicmd=(env); host=127.0.0.1
    return
  fi
  local common=(LD_PRELOAD="$(realpath "$lib")" "USERTCP_DPDK_ARGS=--log-level=*:error")
  srvcmd=(env "${common[@]}" USERTCP_IP=198.18.0.2/24 USERTCP_DEV="net_memif0,role=server,socket=$sock$opts")
  clicmd=(env "${common[@]}" USERTCP_IP=198.18.0.1/24 USERTCP_DEV="net_memif1,role=client,socket=$sock$opts$cli_extra")
  host=198.18.0.2
}

memif_pair_cpu() { cat "$work/s.time" "$work/c.time" 2>/dev/null | awk '{s += $1 + $2} END {print s}'; }
