#!/usr/bin/env bash
# nginx -s reload under load, repeated: 2 nginx workers on usertcp over af_packet (testnet), wrk on the kernel side,
# kill -HUP to the master 1 s into a 4 s run; optionally two `nice 19` busy loops to load the cores. Prints, per run,
# wrk's socket errors and the resets the server sent (tcpdump in the client namespace: [R] from 198.18.0.2).
# --quit: one run with kill -QUIT (graceful quit) instead of reloads. PCAP_FILTER/KEEP_PCAP: capture more, keep it.
# --hups N: N reloads 0.7 s apart in each run (default 1).
# Usage: scripts/nginx-reload.sh [--runs N] [--busy] [--quit] [--hups N] [--lib PATH] [--suffix S]
set -uo pipefail
cd "$(dirname "$0")/.."
runs=5 busy=0 sig=HUP hups=1 lib=$(pwd)/build/libusertcp.so suffix=reload
while [ $# -gt 0 ]; do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --busy) busy=1; shift ;;
    --quit) sig=QUIT runs=1; shift ;;
    --hups) hups=$2; shift 2 ;;
    --lib) lib=$(realpath "$2"); shift 2 ;;
    --suffix) suffix=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
cli=ut-cli$suffix srv=ut-srv$suffix
work=$(mktemp -d /tmp/usertcp-reload-XXXXXX)
chmod 755 "$work"
busy_pids=() tcpdump_pid=
cleanup() {
  [ -s "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null
  for p in "${busy_pids[@]}" $tcpdump_pid; do kill "$p" 2>/dev/null; done
  sleep 0.5
  scripts/testnet.sh down --suffix "$suffix" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
scripts/testnet.sh up --suffix "$suffix" >/dev/null || { echo "cannot create the test network"; exit 1; }
mkdir -p "$work/www" "$work/tmp"
head -c 4096 /dev/urandom > "$work/www/f4096.bin"
cat > "$work/nginx.conf" <<CONF
user root;
worker_processes 2;
pid $work/nginx.pid;
error_log $work/error.log info;
events { worker_connections 1024; }
http {
  access_log off; sendfile on; tcp_nopush on; keepalive_timeout 30;
  client_body_temp_path $work/tmp; proxy_temp_path $work/tmp; fastcgi_temp_path $work/tmp; uwsgi_temp_path $work/tmp; scgi_temp_path $work/tmp;
  server { listen 80; root $work/www; }
}
CONF
ip netns exec "$srv" env LD_PRELOAD="$lib" USERTCP_IP=198.18.0.2/24 USERTCP_DEV=net_af_packet0,iface=ut-srv0 \
  USERTCP_DPDK_ARGS="--log-level=*:error" USERTCP_LOG="${USERTCP_LOG:-warn}" /usr/sbin/nginx -p "$work" -c "$work/nginx.conf"
for _ in $(seq 100); do ip netns exec "$cli" curl -s -m 1 -o /dev/null http://198.18.0.2/f4096.bin && break; sleep 0.1; done
if [ $busy = 1 ]; then
  for _ in 1 2; do nice -n 19 bash -c 'while :; do :; done' & busy_pids+=($!); done
fi
ip netns exec "$cli" tcpdump -i ut-cli0 -nn -U -s 96 -w "$work/cap.pcap" "${PCAP_FILTER:-tcp[tcpflags] & tcp-rst != 0 and src host 198.18.0.2}" 2>/dev/null &
tcpdump_pid=$!
sleep 0.5
m=$(cat "$work/nginx.pid")
for r in $(seq "$runs"); do
  old=$(pgrep -P "$m" | sort | tr '\n' ' ')
  ( sleep 1; kill -$sig "$m"; for _ in $(seq 2 "$hups"); do sleep 0.7; kill -$sig "$m"; done ) &
  hup=$!
  out=$(ip netns exec "$cli" wrk -t2 -c40 -d4s http://198.18.0.2/f4096.bin 2>&1)
  wait "$hup"
  sleep 1
  new=$(pgrep -P "$m" | sort | tr '\n' ' ')
  errs=$(echo "$out" | sed -n 's/.*Socket errors: \(.*\)/\1/p')
  rps=$(echo "$out" | awk '/^Requests\/sec/{print int($2)}')
  echo "run $r: socket errors: ${errs:-none}; req/s ${rps:-?}; workers replaced: $([ "$old" != "$new" ] && echo yes || echo no)"
done
kill "$tcpdump_pid" 2>/dev/null; wait "$tcpdump_pid" 2>/dev/null; tcpdump_pid=
echo "resets sent by the server over all runs: $(tcpdump -nn -r "$work/cap.pcap" "tcp[tcpflags] & tcp-rst != 0 and src host 198.18.0.2" 2>/dev/null | wc -l)"
[ -n "${KEEP_PCAP:-}" ] && cp "$work/cap.pcap" "$KEEP_PCAP"
grep -h "handed to the group\|adopted" "$work/error.log" 2>/dev/null | tail -3
