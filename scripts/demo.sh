#!/usr/bin/env bash
# `make demo`: stock nginx (master + 2 workers, same configuration) served to the same client (wrk), once on the
# kernel and once under LD_PRELOAD=build/libusertcp.so, alternating A B A B, and a side-by-side table.
#
# HONEST SCOPE (today): the user-level stack is not yet attached to a network device inside the library, so this
# A/B runs nginx on 127.0.0.1 with no offload configured: every socket stays on the kernel and the run measures what
# interposition costs an unmodified server. When the DPDK data path lands, this script switches to the test network
# (scripts/testnet.sh) with the server's sockets on usertcp.
set -euo pipefail
cd "$(dirname "$0")/.."
lib=$(pwd)/build/libusertcp.so
rounds=${DEMO_ROUNDS:-3}
secs=${DEMO_SECONDS:-5}
conns=${DEMO_CONNECTIONS:-50}
work=$(mktemp -d /tmp/usertcp-demo-XXXXXX)
chmod 755 "$work"
cleanup() {
  for p in "$work"/*/nginx.pid; do [ -f "$p" ] && kill -QUIT "$(cat "$p")" 2>/dev/null || true; done
  sleep 0.3
  rm -rf "$work"
}
trap cleanup EXIT
trap 'echo; echo "demo: interrupted, cleaning up"; exit 130' INT TERM

for tool in nginx wrk; do command -v $tool >/dev/null || [ -x /usr/sbin/$tool ] || { echo "demo: $tool missing: run make setup" >&2; exit 1; }; done
mkdir -p "$work/www"
head -c 64 /dev/urandom > "$work/www/64.bin"
head -c 4096 /dev/urandom > "$work/www/4k.bin"

start_nginx() { # name preload port
  local dir="$work/$1"
  mkdir -p "$dir/tmp"
  cat > "$dir/nginx.conf" <<CONF
worker_processes 2;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  keepalive_timeout 65;
  keepalive_requests 100000;
  client_body_temp_path $dir/tmp; proxy_temp_path $dir/tmp; fastcgi_temp_path $dir/tmp; uwsgi_temp_path $dir/tmp; scgi_temp_path $dir/tmp;
  server { listen 127.0.0.1:$3; root $work/www; }
}
CONF
  env ${2:+LD_PRELOAD=$2} /usr/sbin/nginx -p "$dir" -c "$dir/nginx.conf"
  for _ in $(seq 50); do [ -s "$dir/nginx.pid" ] && break; sleep 0.1; done
  sleep 0.3
}

server_cpu_ticks() { # master pid -> utime+stime of master and workers
  local m=$1 t=0
  for p in $m $(pgrep -P "$m"); do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
  echo $t
}

port_k=$((20000 + RANDOM % 10000)); port_u=$((port_k + 1))
echo "demo: starting nginx on the kernel (:$port_k) and under LD_PRELOAD (:$port_u)"
start_nginx kernel "" $port_k
start_nginx usertcp "$lib" $port_u
hz=$(getconf CLK_TCK)
results=$work/results.csv
: > "$results"
for r in $(seq "$rounds"); do
  for side in kernel usertcp; do
    port=$port_k; [ $side = usertcp ] && port=$port_u
    master=$(cat "$work/$side/nginx.pid")
    c0=$(server_cpu_ticks "$master")
    echo "demo: round $r/$rounds, $side: wrk -t1 -c$conns -d${secs}s /4k.bin"
    out=$(wrk -t1 -c"$conns" -d"${secs}s" --latency "http://127.0.0.1:$port/4k.bin")
    c1=$(server_cpu_ticks "$master")
    rps=$(echo "$out" | awk '/^Requests\/sec/{print $2}')
    p50=$(echo "$out" | awk '$1=="50%"{print $2}')
    p99=$(echo "$out" | awk '$1=="99%"{print $2}')
    cpu=$(python3 -c "print(round(100*($c1-$c0)/$hz/$secs,1))")
    echo "$side,$rps,$p50,$p99,$cpu" >> "$results"
  done
done
python3 - "$results" <<'PY'
import csv, statistics, sys, re
rows = list(csv.reader(open(sys.argv[1])))
def us(v):
    m = re.match(r"([\d.]+)(us|ms|s)", v); x = float(m.group(1))
    return x * {"us": 1, "ms": 1000, "s": 1e6}[m.group(2)]
def med(side, i, f=float): return statistics.median(f(r[i]) for r in rows if r[0] == side)
k = dict(rps=med("kernel", 1), p50=med("kernel", 2, us), p99=med("kernel", 3, us), cpu=med("kernel", 4))
u = dict(rps=med("usertcp", 1), p50=med("usertcp", 2, us), p99=med("usertcp", 3, us), cpu=med("usertcp", 4))
print()
print(f"{'nginx 4 KiB keep-alive (median)':34} {'kernel':>12} {'LD_PRELOAD':>12} {'ratio':>7}")
print(f"{'requests/s':34} {k['rps']:12.0f} {u['rps']:12.0f} {u['rps']/k['rps']:7.2f}")
print(f"{'latency p50 (us)':34} {k['p50']:12.0f} {u['p50']:12.0f} {u['p50']/k['p50']:7.2f}")
print(f"{'latency p99 (us)':34} {k['p99']:12.0f} {u['p99']:12.0f} {u['p99']/k['p99']:7.2f}")
print(f"{'server CPU (% of one core)':34} {k['cpu']:12.1f} {u['cpu']:12.1f}")
ratio = u['rps'] / k['rps']
# Loopback runs on this 2-core machine swing by several percent between rounds: call anything within 10% "on par".
verdict = "on par with" if abs(ratio - 1) < 0.10 else ("faster than" if ratio > 1 else "slower than")
print()
print(f"verdict: with no offload configured, nginx under usertcp's interposer is {verdict} the bare kernel "
      f"({ratio:.2f}x requests/s).")
print("note: the user-level data path (DPDK device + TCP stack in the library) is not wired in yet; this demo does "
      "not yet show usertcp's own TCP. See README.md, 'Status'.")
PY
