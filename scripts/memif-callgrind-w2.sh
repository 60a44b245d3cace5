#!/bin/bash
# Instructions per W2 request in topology (a) (docs/benchmarks.md, "Session 6, memif64"): nginx (one process,
# `master_process off`) and `wrk -t1 -c10` both on usertcp over one memif link in the current network namespace, one
# of them under callgrind (SIDE server: nginx, with build/valgrind/libusertcp.so; SIDE client: wrk), the other on the
# ordinary build. Two runs of S1 and S2 seconds; the difference of the instruction counts divided by the difference of
# the requests wrk counted is the cost of one request on that side, split by object as scripts/callgrind-rpc.py does.
# Usage: scripts/memif-callgrind-w2.sh server|client S1,S2 [DEVOPTS [FILE]]
#   DEVOPTS is appended to both USERTCP_DEV (default ,mtu=16000,trusted=1: topology (a)'s); FILE 64.bin or 4k.bin.
#   VGLIB=path overrides the library under callgrind (e.g. a scratch build of another commit, with its glue beside it);
#   TAG names the memif sockets; KEEP=DIR keeps the callgrind files. Needs root, make, make valgrind, nginx, wrk.
#   W1=1 measures short connections instead (wrk -H "Connection: close": nginx closes after each response, so the
#   cost per request is the cost per connection on either side); CONNS sets wrk's -c (default 10).
set -uo pipefail
side=$1; durations=$2; opts=${3-,mtu=16000,trusted=1}; file=${4:-64.bin}
root=$(cd "$(dirname "$0")/.." && pwd)
vglib=$(realpath "${VGLIB:-$root/build/valgrind/libusertcp.so}"); lib=$root/build/libusertcp.so
tag=${TAG:-memif-cg-w2}; port=$((8100 + $$ % 800))
work=${KEEP:-$(mktemp -d /tmp/$tag.XXXXXX)}; mkdir -p "$work/www" "$work/tmp"
[ -n "${KEEP:-}" ] || trap 'rm -rf "$work"' EXIT
for f in "$vglib" "$lib"; do [ -f "$f" ] || { echo "memif-callgrind-w2: $f missing (make; make valgrind)"; exit 1; }; done
head -c 64 /dev/urandom >"$work/www/64.bin"; head -c 4096 /dev/urandom >"$work/www/4k.bin"
cat >"$work/nginx.conf" <<EOF
user root;
daemon off;
master_process off;
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 1024; }
http {
  access_log off; sendfile on; tcp_nopush on; keepalive_timeout 65; keepalive_requests 100000;
  client_body_temp_path $work/tmp; proxy_temp_path $work/tmp; fastcgi_temp_path $work/tmp; uwsgi_temp_path $work/tmp; scgi_temp_path $work/tmp;
  server { listen $port; root $work/www; }
}
EOF
# end VAR N LIB [MORE_DPDK_ARGS]: VAR=(env ...), the prefix that runs a program as memif end N (0: the server at
# 198.18.0.2, 1: the client at 198.18.0.1) on LIB, over the socket $sock.
end() {
  local -n a=$1
  a=(env "LD_PRELOAD=$3" "USERTCP_IP=198.18.0.$((2 - $2))/24"
     "USERTCP_DEV=net_memif$2,role=$([ "$2" = 0 ] && echo server || echo client),socket=$sock$opts"
     "USERTCP_DPDK_ARGS=--log-level=*:error${4:-}")
}
files=() counts=()
for t in ${durations//,/ }; do
  sock=$work/$tag-$t.sock out=$work/callgrind.$t
  vg=(valgrind --tool=callgrind "--callgrind-out-file=$out")
  # The measured side runs the valgrind build under callgrind (no hugepages under valgrind), the other the ordinary one.
  if [ "$side" = server ]; then
    end srv 0 "$vglib" " --no-huge"; srv+=("${vg[@]}"); end cli 1 "$lib"
  else
    end srv 0 "$lib"; end cli 1 "$vglib" " --no-huge"; cli+=("${vg[@]}")
  fi
  "${srv[@]}" /usr/sbin/nginx -p "$work" -c "$work/nginx.conf" >"$work/nginx-$t.log" 2>&1 &
  ngx=$!
  # DPDK's memif server listens on an abstract UNIX socket named after socket=; then give the stack time to listen.
  for _ in $(seq 240); do ss -xlH | grep -qF "@$sock" && break; sleep 0.5; done
  sleep $([ "$side" = server ] && echo 10 || echo 1)
  "${cli[@]}" wrk -t1 -c${CONNS:-10} -d${t}s ${W1:+-H "Connection: close"} "http://198.18.0.2:$port/$file" >"$work/wrk-$t.txt" 2>&1
  kill -QUIT $ngx 2>/dev/null
  for _ in $(seq 60); do kill -0 $ngx 2>/dev/null || break; sleep 1; done
  kill -TERM $ngx 2>/dev/null; wait $ngx 2>/dev/null
  n=$(awk '/requests in/ {print $1}' "$work/wrk-$t.txt")
  [ -n "$n" ] && [ -f "$out" ] || { echo "memif-callgrind-w2: run of $t s failed: $(tail -3 "$work/wrk-$t.txt" "$work/nginx-$t.log")"; exit 1; }
  files+=("$out"); counts+=("$n")
done
echo "memif-callgrind-w2: $side under callgrind, $file, devopts '$opts', wrk requests ${counts[*]}"
python3 "$root/scripts/callgrind-rpc.py" --lib "$vglib" --files "$(IFS=,; echo "${files[*]}")" \
  --requests "$(IFS=,; echo "${counts[*]}")" --top "${TOP:-25}" | sed -n '/object group/,$p'
