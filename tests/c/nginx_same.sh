#!/usr/bin/env bash
# Serves files with a stock-style nginx (master + 2 workers, sendfile, keepalive) on 127.0.0.1, fetched by curl:
# once on the kernel, once with both nginx and curl under LD_PRELOAD (no offload configured). The bytes must be
# identical, the workers must run with the managed runtime never started (1 thread each).
set -euo pipefail
lib=$(readlink -f "$1")
work=$(mktemp -d /tmp/usertcp-nginx-XXXXXX)
trap 'for p in "$work"/run*/nginx.pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null || true; done; rm -rf "$work"' EXIT
chmod 755 "$work"
mkdir -p "$work/www"
head -c 64 /dev/urandom > "$work/www/small.bin"
head -c 1048576 /dev/urandom > "$work/www/big.bin"
echo "hello from nginx" > "$work/www/index.html"

run() { # name preload
  local name=$1 preload=$2 dir="$work/$1" port
  port=$((20000 + RANDOM % 20000))
  mkdir -p "$dir"
  cat > "$dir/nginx.conf" <<CONF
worker_processes 2;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  sendfile on;
  keepalive_timeout 30;
  client_body_temp_path $dir/tmp; proxy_temp_path $dir/tmp; fastcgi_temp_path $dir/tmp; uwsgi_temp_path $dir/tmp; scgi_temp_path $dir/tmp;
  server { listen 127.0.0.1:$port; root $work/www; }
}
CONF
  mkdir -p "$dir/tmp"
  env ${preload:+LD_PRELOAD=$preload} /usr/sbin/nginx -p "$dir" -c "$dir/nginx.conf"
  for _ in $(seq 50); do [ -s "$dir/nginx.pid" ] && break; sleep 0.1; done
  sleep 0.3
  for f in index.html small.bin big.bin; do
    env ${preload:+LD_PRELOAD=$preload} curl -sS --fail "http://127.0.0.1:$port/$f" -o "$dir/$f"
  done
  # keep-alive: two requests on one connection
  env ${preload:+LD_PRELOAD=$preload} curl -sS --fail "http://127.0.0.1:$port/small.bin" "http://127.0.0.1:$port/index.html" -o "$dir/ka1" -o "$dir/ka2"
  if [ -n "$preload" ]; then
    for w in $(pgrep -P "$(cat "$dir/nginx.pid")"); do
      grep -q "$lib" "/proc/$w/maps" || { echo "worker $w does not have usertcp loaded"; exit 1; }
      t=$(awk '/^Threads:/{print $2}' "/proc/$w/status")
      [ "$t" = 1 ] || { echo "worker $w has $t threads: the runtime started"; exit 1; }
    done
  fi
  kill -QUIT "$(cat "$dir/nginx.pid")"
  for _ in $(seq 50); do [ -e "$dir/nginx.pid" ] || break; sleep 0.1; done
}
run kernel ""
run usertcp "$lib"
for f in index.html small.bin big.bin ka1 ka2; do
  cmp "$work/kernel/$f" "$work/www/${f/ka1/small.bin}" >/dev/null 2>&1 || [ "$f" = ka2 ] || { echo "kernel run: $f differs"; exit 1; }
  cmp "$work/kernel/$f" "$work/usertcp/$f" || { echo "$f differs between kernel and usertcp"; exit 1; }
done
echo identical
