#!/usr/bin/env bash
# `make demo`: the same stock nginx binary and configuration, served to the same client (wrk), once on the Linux
# kernel and once on usertcp, alternating A B A B, then a side-by-side table and a verdict.
#
# Topology (scripts/testnet.sh): a client namespace (kernel TCP, wrk) and a server namespace joined by a veth pair.
#   kernel run:  nginx in the server namespace on the kernel stack (198.18.0.2 configured on the veth)
#   usertcp run: nginx under LD_PRELOAD=build/libusertcp.so; the veth has no kernel address, the user-level stack
#                owns 198.18.0.2 and moves packets through DPDK (net_af_packet on the veth)
# One nginx worker (the headline configuration: one server worker, one client thread per core on this 2-core
# machine). Environment: DEMO_ROUNDS (3), DEMO_SECONDS (5), DEMO_CONNECTIONS (50), DEMO_FILE (index.html|4k.bin).
set -euo pipefail
cd "$(dirname "$0")/.."
lib=$(pwd)/build/libusertcp.so
rounds=${DEMO_ROUNDS:-3}
secs=${DEMO_SECONDS:-5}
conns=${DEMO_CONNECTIONS:-50}
file=${DEMO_FILE:-4k.bin}
suffix=d$$
cli=ut-cli$suffix srv=ut-srv$suffix
work=$(mktemp -d /tmp/usertcp-demo-XXXXXX)
chmod 755 "$work"

stop_nginx() { [ -s "$work/nginx.pid" ] && kill -QUIT "$(cat "$work/nginx.pid")" 2>/dev/null; for _ in $(seq 50); do [ -e "$work/nginx.pid" ] || break; sleep 0.1; done; pkill -f "nginx -p $work" 2>/dev/null || true; }
cleanup() {
  stop_nginx || true
  scripts/testnet.sh down --suffix "$suffix" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'echo; echo "demo: interrupted, cleaning up"; exit 130' INT TERM

for tool in wrk ip; do command -v $tool >/dev/null || { echo "demo: $tool missing: run make setup" >&2; exit 1; }; done
[ -x /usr/sbin/nginx ] || { echo "demo: nginx missing: run make setup" >&2; exit 1; }

echo "demo: creating the test network (namespaces $cli, $srv)"
scripts/testnet.sh up --suffix "$suffix" >/dev/null
mkdir -p "$work/www" "$work/tmp"
head -c 64 /dev/urandom > "$work/www/64.bin"
head -c 4096 /dev/urandom > "$work/www/4k.bin"
echo "hello from nginx" > "$work/www/index.html"
write_conf() { # workers
cat > "$work/nginx.conf" <<CONF
# Stock nginx settings; 'user root' because opening a DPDK device needs CAP_NET_RAW in the worker.
user root;
worker_processes $1;
pid $work/nginx.pid;
error_log $work/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 65;
  keepalive_requests 100000;
  client_body_temp_path $work/tmp; proxy_temp_path $work/tmp; fastcgi_temp_path $work/tmp; uwsgi_temp_path $work/tmp; scgi_temp_path $work/tmp;
  server { listen 80; root $work/www; }
}
CONF
}
write_conf 1

start_nginx() { # kernel|usertcp
  if [ "$1" = kernel ]; then
    ip netns exec "$srv" ip addr add 198.18.0.2/24 dev ut-srv0
    ip netns exec "$srv" /usr/sbin/nginx -p "$work" -c "$work/nginx.conf"
  else
    ip netns exec "$srv" ip addr flush dev ut-srv0
    ip netns exec "$srv" env LD_PRELOAD="$lib" USERTCP_IP=198.18.0.2/24 USERTCP_DEV=net_af_packet0,iface=ut-srv0 \
      USERTCP_DPDK_ARGS="--log-level=*:error" /usr/sbin/nginx -p "$work" -c "$work/nginx.conf"
  fi
  for _ in $(seq 50); do [ -s "$work/nginx.pid" ] && break; sleep 0.1; done
  # Ready when a request is answered (the usertcp worker starts its stack and DPDK on its first wait).
  for _ in $(seq 100); do ip netns exec "$cli" curl -s -m 1 -o /dev/null "http://198.18.0.2/index.html" && return 0; sleep 0.1; done
  echo "demo: nginx on $1 did not answer; its log:" >&2; cat "$work/error.log" >&2; return 1
}

worker_ticks() { local t=0; for p in $(pgrep -P "$(cat "$work/nginx.pid")"); do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo $t; }

hz=$(getconf CLK_TCK)
results=$work/results.csv
: > "$results"
for r in $(seq "$rounds"); do
  for side in kernel usertcp; do
    start_nginx $side
    c0=$(worker_ticks)
    echo "demo: round $r/$rounds, $side: wrk -t1 -c$conns -d${secs}s http://198.18.0.2/$file"
    out=$(ip netns exec "$cli" wrk -t1 -c"$conns" -d"${secs}s" --latency "http://198.18.0.2/$file")
    c1=$(worker_ticks)
    stop_nginx
    rps=$(echo "$out" | awk '/^Requests\/sec/{print $2}')
    p50=$(echo "$out" | awk '$1=="50%"{print $2}')
    p99=$(echo "$out" | awk '$1=="99%"{print $2}')
    errs=$(echo "$out" | awk '/Non-2xx|Socket errors/{print}' | tr '\n' ' ')
    [ -n "$errs" ] && echo "demo:   $side: $errs"
    echo "$side,$rps,$p50,$p99,$c0,$c1" >> "$results"
  done
done

# nginx's default configuration (worker_processes auto: one worker per core), one round each.
write_conf auto
for side in kernel usertcp; do
  start_nginx $side
  echo "demo: default configuration (worker_processes auto), $side"
  out=$(ip netns exec "$cli" wrk -t2 -c"$conns" -d"${secs}s" "http://198.18.0.2/$file")
  stop_nginx
  echo "auto-$side,$(echo "$out" | awk '/^Requests\/sec/{print $2}')" >> "$work/auto.csv"
done

python3 - "$results" "$hz" "$secs" "$file" "$conns" "$work/auto.csv" <<'PY'
import csv, statistics, sys, re
rows = list(csv.reader(open(sys.argv[1]))); hz = int(sys.argv[2]); secs = float(sys.argv[3])
def us(v):
    m = re.match(r"([\d.]+)(us|ms|s)", v); x = float(m.group(1))
    return x * {"us": 1, "ms": 1000, "s": 1e6}[m.group(2)]
def stats(side):
    rs = [r for r in rows if r[0] == side]
    rps = [float(r[1]) for r in rs]
    cpu = [100 * (int(r[5]) - int(r[4])) / hz / secs for r in rs]
    return dict(rps=statistics.median(rps), spread=max(rps) - min(rps), p50=statistics.median(us(r[2]) for r in rs),
                p99=statistics.median(us(r[3]) for r in rs), cpu=statistics.median(cpu))
k, u = stats("kernel"), stats("usertcp")
print()
print(f"nginx, {sys.argv[4]}, keep-alive, {sys.argv[5]} connections, 1 worker; median of {len(rows)//2} rounds")
print(f"{'':30} {'kernel':>12} {'usertcp':>12} {'usertcp/kernel':>15}")
print(f"{'requests/s':30} {k['rps']:12.0f} {u['rps']:12.0f} {u['rps']/k['rps']:15.2f}")
print(f"{'  spread (max-min)':30} {k['spread']:12.0f} {u['spread']:12.0f}")
print(f"{'latency p50 (us)':30} {k['p50']:12.0f} {u['p50']:12.0f} {u['p50']/k['p50']:15.2f}")
print(f"{'latency p99 (us)':30} {k['p99']:12.0f} {u['p99']:12.0f} {u['p99']/k['p99']:15.2f}")
print(f"{'server CPU (% of one core)':30} {k['cpu']:12.1f} {u['cpu']:12.1f}")
auto = dict(r.strip().split(",") for r in open(sys.argv[6]))
ak, au = float(auto["auto-kernel"]), float(auto["auto-usertcp"])
print(f"{'default config (auto workers)':30} {ak:12.0f} {au:12.0f} {au/ak:15.2f}   requests/s, one round, wrk -t2")
ratio = u['rps'] / k['rps']
word = "faster than" if ratio > 1.05 else ("on par with" if ratio > 0.95 else "slower than")
print()
print(f"verdict: nginx on usertcp is {word} the kernel: {ratio:.2f}x the requests per second "
      f"(client: wrk on the kernel in another namespace, over a veth pair; server CPU counted for the worker).")
PY
