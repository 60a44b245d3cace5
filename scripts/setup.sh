#!/usr/bin/env bash
# Installs everything usertcp's build, tests and demo need on a fresh Debian 12 machine. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(build-essential pkg-config googletest libgtest-dev libbenchmark-dev dpdk libdpdk-dev nginx wrk curl
      iproute2 iputils-ping netcat-openbsd socat tcpdump python3 procps gnuplot-nox redis-server redis-tools iperf3 ethtool)
missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# nginx from Debian starts a system service on install; the tests and the demo run their own instances.
if command -v systemctl >/dev/null && systemctl is-active --quiet nginx 2>/dev/null; then systemctl stop nginx || true; fi
pkill -x nginx 2>/dev/null || true
if command -v systemctl >/dev/null; then systemctl stop redis-server iperf3 2>/dev/null || true; fi
pkill -x redis-server 2>/dev/null || true

command -v dotnet >/dev/null || { echo "setup: the .NET SDK (dotnet) is required" >&2; exit 1; }
dotnet restore Interpose.sln --nologo -v quiet
dotnet restore aot/UserTcp.Aot.csproj --nologo -v quiet
echo "setup: done"
