#!/bin/bash
# Idle server CPU and the connect time after quiet spells (docs/benchmarks.md, "Idle server CPU and connection
# latency"): nginx (one worker) on usertcp over net_af_packet in a test network of its own; one request, 2 s to settle,
# the worker's utime+stime over WINDOW seconds (USER_HZ ticks), then ROUNDS connects each after 1 s of quiet
# (curl's time_connect, from the kernel namespace). Usage: scripts/idle-measure.sh [LIB|kernel] [SUFFIX] [WINDOW] [ROUNDS]
# LIB=kernel: the same nginx on the kernel stack (198.18.0.2 on the veth), for the connect time's floor.
set -euo pipefail
cd "$(dirname "$0")/.."
lib=${1:-build/libusertcp.so}; [ "$lib" = kernel ] || lib=$(realpath "$lib"); sfx=${2:-idm}; window=${3:-10}; rounds=${4:-10}
cli=ut-cli$sfx; srv=ut-srv$sfx
work=$(mktemp -d /tmp/usertcp-idle.XXXXXX); mkdir -p "$work/www" "$work/tmp"
# The one page served: the readiness check and every timed connect fetch it (its size does not matter here).
printf 'usertcp idle-measure\n' > "$work/www/index.html"
cat > "$work/nginx.conf" <<CONF
user root;
worker_processes 1;
pid $work/nginx.pid;
error_log $work/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/tmp; proxy_temp_path $work/tmp; fastcgi_temp_path $work/tmp; uwsgi_temp_path $work/tmp; scgi_temp_path $work/tmp;
  server { listen 80; root $work/www; }
}
CONF
scripts/testnet.sh up --suffix "$sfx" >/dev/null
cleanup() {
  [ -s "$work/nginx.pid" ] && kill -QUIT "$(cat "$work/nginx.pid")" 2>/dev/null || true
  for _ in $(seq 50); do [ -e "$work/nginx.pid" ] || break; sleep 0.1; done
  scripts/testnet.sh down --suffix "$sfx" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
if [ "$lib" = kernel ]; then
  ip netns exec "$srv" ip addr add 198.18.0.2/24 dev ut-srv0
  ip netns exec "$srv" /usr/sbin/nginx -p "$work" -c "$work/nginx.conf"
else
  ip netns exec "$srv" env LD_PRELOAD="$lib" USERTCP_IP=198.18.0.2/24 USERTCP_DEV=net_af_packet0,iface=ut-srv0 \
    USERTCP_DPDK_ARGS="--log-level=*:error" /usr/sbin/nginx -p "$work" -c "$work/nginx.conf"
fi
for _ in $(seq 50); do [ -s "$work/nginx.pid" ] && break; sleep 0.1; done
ok=0
for _ in $(seq 100); do ip netns exec "$cli" curl -s -m 1 -o /dev/null http://198.18.0.2/ && { ok=1; break; }; sleep 0.1; done
[ $ok = 1 ] || { echo "nginx did not answer" >&2; tail -5 "$work/error.log" >&2; exit 1; }
worker=$(pgrep -P "$(cat "$work/nginx.pid")" | head -1)
ticks() { awk '{print $14 + $15}' "/proc/$worker/stat"; }
sleep 2
t0=$(ticks); s0=$(date +%s.%N); sleep "$window"; t1=$(ticks); s1=$(date +%s.%N)
hz=$(getconf CLK_TCK)
awk -v t="$((t1 - t0))" -v hz="$hz" -v a="$s0" -v b="$s1" 'BEGIN { printf "idle worker CPU: %.2f %% of a core (%d ticks in %.1f s)\n", 100 * t / hz / (b - a), t, b - a }'
times=()
for _ in $(seq "$rounds"); do
  sleep 1
  times+=("$(ip netns exec "$cli" curl -s -o /dev/null -w '%{time_connect}' http://198.18.0.2/)")
done
printf '%s\n' "${times[@]}" | sort -n | awk '{ v[NR] = $1 * 1e6 } END { printf "connect after 1 s quiet (us): min %.0f p50 %.0f max %.0f (n=%d)\n", v[1], v[int((NR + 1) / 2)], v[NR], NR }'
