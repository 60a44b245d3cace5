#!/usr/bin/env python3
"""A/B benchmark harness: the same unmodified server on the Linux kernel and on usertcp, alternately.

Topology (b) of the issue "A/B against the kernel" (scripts/testnet.sh): a client namespace (kernel TCP; wrk,
iperf3, bench/rpc/rpc_client) and a server namespace joined by a veth pair.
  kernel run:  the server in the server namespace on the kernel stack (198.18.0.2 configured on the veth)
  usertcp run: the same binary under LD_PRELOAD=build/libusertcp.so, USERTCP_DEV=packet:ut-srv0 (the packet
               socket device with TSO; --usertcp-dev af_packet: DPDK's net_af_packet0,iface=ut-srv0), no kernel
               address on the veth
Each measurement starts a fresh server, runs the client, stops the server; within a round kernel then usertcp
(A B A B ...). Reported: median over the rounds, spread (max - min), ratio usertcp/kernel of the medians.

Workloads (see docs/benchmarks.md, section "A/B against the kernel"):
  W2  nginx keep-alive, 64 B and 4 KB files, wrk: requests/s, latency p50/p99, server CPU; plus one round of the
      default configuration (worker_processes auto, wrk -t2)
  W1  nginx, a new connection per request (wrk -H "Connection: close"), 64 B: connections/s
  W4  iperf3 -4 single flow, both directions: Gbit/s
  W3  bench/rpc echo, 64 B request/response, closed loop over many connections: requests/s, p50/p99
  W6  bench/rpc server holding N idle connections: server CPU over --idle-seconds
  W5  (same runs as W6) server memory per idle connection and the connection rate while holding them
  W5a W5 at scale in topology (a): 100k and 1M idle connections (--w5-conns), both ends on one stack: memory of
      both processes per connection, open time, idle CPU, accept rate while holding them

Not part of `make test`. Needs root, make setup (nginx, wrk, iperf3, gnuplot) and make (build/libusertcp.so).
Usage: scripts/ab.py [--rounds 3] [--seconds 3] [--workloads W2,W1,W4,W3,W6] ...   (see --help)
"""
import argparse
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIB = os.path.join(ROOT, "build", "libusertcp.so")
BENCH = os.path.join(ROOT, "build", "bench")
SRV_IP = "198.18.0.2"
HZ = os.sysconf("SC_CLK_TCK")
SIDES = ("kernel", "usertcp")


def log(msg):
    print(f"ab: {msg}", flush=True)


def run(cmd, check=True, timeout=None, **kw):
    return subprocess.run(cmd, check=check, timeout=timeout, text=True, capture_output=True, **kw)


class Harness:
    def __init__(self, args):
        self.a = args
        self.suffix = args.suffix or f"a{os.getpid()}"
        self.cli = f"ut-cli{self.suffix}"
        self.srv = f"ut-srv{self.suffix}"
        self.work = tempfile.mkdtemp(prefix="usertcp-ab-")
        os.chmod(self.work, 0o755)
        self.procs = []      # Popen objects of servers still running
        self.nginx_pids = []  # nginx master pids still running
        self.results = {}    # name -> list of per-round dicts

    # ---------------------------------------------------------------- network and processes
    def up(self):
        extra = ["--hugepages", str(self.a.hugepages)] if self.a.hugepages else []
        run([os.path.join(ROOT, "scripts", "testnet.sh"), "up", "--suffix", self.suffix] + extra)
        # Client: many short connections end in TIME_WAIT on whichever side closes first; allow reuse and a wide
        # port range so W1 and the churn phase never run out of ports. Server (kernel runs): deep accept queues.
        run(["ip", "netns", "exec", self.cli, "sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1",
             "net.ipv4.ip_local_port_range=1024 65535"])
        run(["ip", "netns", "exec", self.srv, "sysctl", "-qw", "net.core.somaxconn=65535",
             "net.ipv4.tcp_max_syn_backlog=65535"])

    def down(self):
        for p in self.procs:
            self._kill(p)
        self.procs = []
        for pid in self.nginx_pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        subprocess.run([os.path.join(ROOT, "scripts", "testnet.sh"), "down", "--suffix", self.suffix],
                       capture_output=True)
        shutil.rmtree(self.work, ignore_errors=True)

    def cli_cmd(self, cmd):
        return ["ip", "netns", "exec", self.cli] + cmd

    def srv_cmd(self, side, cmd):
        if side == "kernel":
            return ["ip", "netns", "exec", self.srv] + cmd
        return ["ip", "netns", "exec", self.srv, "env", f"LD_PRELOAD={LIB}", f"USERTCP_IP={SRV_IP}/24",
                f"USERTCP_DEV={self.a.usertcp_dev}", "USERTCP_DPDK_ARGS=--log-level=*:error", "USERTCP_STATS=1"] + cmd

    def usertcp_stats(self, side):
        """The GC line USERTCP_STATS=1 printed at the usertcp server's exit (last one in its log): collections per
        generation and bytes allocated over the server's life."""
        if side != "usertcp":
            return {}
        path = os.path.join(self.work, f"server-{side}.log")
        last = None
        if os.path.exists(path):
            for line in open(path, errors="replace"):
                if ": stats: run " in line:
                    last = line
        m = last and re.search(r"gen0 (\d+) gen1 (\d+) gen2 (\d+); allocated (\d+) B", last)
        if not m:
            return {}
        return dict(gc0=int(m.group(1)), gc1=int(m.group(2)), gc2=int(m.group(3)), alloc_b=int(m.group(4)))

    def set_side(self, side):
        run(["ip", "-n", self.srv, "addr", "flush", "dev", "ut-srv0"])
        # usertcp runs: the server namespace's kernel sees every frame too and, after af_packet's tap has its copy,
        # runs each through its IP layer for nothing (no address: route lookup, drop) in whichever context delivers
        # it, ~8 % of the usertcp server's CPU (docs/benchmarks.md, "Session 4, bulk"). A tc ingress filter (cBPF
        # "return TC_ACT_SHOT", direct action) drops them after the tap, as a deployment would keep the kernel off
        # the user-level stack's interface. --srv-kernel-rx keep: leave the kernel's path on.
        subprocess.run(["ip", "netns", "exec", self.srv, "tc", "qdisc", "del", "dev", "ut-srv0", "clsact"],
                       capture_output=True)
        if side == "kernel":
            run(["ip", "-n", self.srv, "addr", "add", f"{SRV_IP}/24", "dev", "ut-srv0"])
        elif self.a.srv_kernel_rx == "drop":
            run(["ip", "netns", "exec", self.srv, "tc", "qdisc", "add", "dev", "ut-srv0", "clsact"])
            run(["ip", "netns", "exec", self.srv, "tc", "filter", "add", "dev", "ut-srv0", "ingress", "bpf", "da",
                 "bytecode", "1,6 0 0 2,"])
        # The client caches the server's MAC (the same on both sides); nothing else to reset.

    def _kill(self, p):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def start_proc(self, side, cmd, port):
        """Start a server (ip netns exec and env exec it, so the Popen pid is the server's pid); wait until the
        client can connect to port."""
        self.set_side(side)
        logf = open(os.path.join(self.work, f"server-{side}.log"), "a")
        p = subprocess.Popen(self.srv_cmd(side, cmd), stdout=logf, stderr=subprocess.STDOUT)
        self.procs.append(p)
        self.wait_port(port, p)
        return p

    def stop_proc(self, p):
        self._kill(p)
        self.procs.remove(p)

    def wait_port(self, port, p=None, tries=150):
        for _ in range(tries):
            if p is not None and p.poll() is not None:
                raise RuntimeError(f"server exited with {p.returncode}: {self.tail_logs()}")
            r = subprocess.run(self.cli_cmd(["timeout", "1", "bash", "-c", f"exec 3<>/dev/tcp/{SRV_IP}/{port}"]),
                               capture_output=True)
            if r.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"server on port {port} did not answer: {self.tail_logs()}")

    def tail_logs(self):
        out = []
        for f in sorted(os.listdir(self.work)):
            if f.endswith(".log"):
                with open(os.path.join(self.work, f), errors="replace") as fh:
                    out.append(f + ": " + " | ".join(fh.read().splitlines()[-3:]))
        return "; ".join(out)

    # nginx ----------------------------------------------------------------------------------------
    def nginx_conf(self, workers):
        d = self.work
        os.makedirs(f"{d}/www", exist_ok=True)
        os.makedirs(f"{d}/tmp", exist_ok=True)
        for name, size in (("64.bin", 64), ("4k.bin", 4096)):
            with open(f"{d}/www/{name}", "wb") as f:
                f.write(os.urandom(size))
        # --nginx-file-cache: nginx keeps the served files open (one open/fstat/close fewer per request, on both
        # sides); off by default (stock settings).
        file_cache = "\n  open_file_cache max=1000 inactive=60s;" if self.a.nginx_file_cache else ""
        conf = f"""# Stock nginx settings; 'user root' because opening a DPDK device needs CAP_NET_RAW in the worker.
user root;
worker_processes {workers};
worker_rlimit_nofile 65536;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log warn;
events {{ worker_connections 16384; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;{file_cache}
  keepalive_timeout 65;
  keepalive_requests 100000;
  client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp; uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;
  server {{ listen 80; root {d}/www; }}
}}
"""
        with open(f"{d}/nginx.conf", "w") as f:
            f.write(conf)

    def start_nginx(self, side, workers="1"):
        self.nginx_conf(workers)
        self.set_side(side)
        pidf = f"{self.work}/nginx.pid"
        run(self.srv_cmd(side, ["/usr/sbin/nginx", "-p", self.work, "-c", f"{self.work}/nginx.conf"]))
        for _ in range(50):
            if os.path.exists(pidf) and open(pidf).read().strip():
                break
            time.sleep(0.1)
        master = int(open(pidf).read())
        self.nginx_pids.append(master)
        self.wait_port(80)
        workers_pids = [int(x) for x in run(["pgrep", "-P", str(master)], check=False).stdout.split()]
        return master, workers_pids

    def stop_nginx(self, master):
        try:
            os.kill(master, signal.SIGQUIT)
        except ProcessLookupError:
            pass
        for _ in range(50):
            if not os.path.exists(f"/proc/{master}"):
                break
            time.sleep(0.1)
        else:
            subprocess.run(["pkill", "-KILL", "-P", str(master)])
            try:
                os.kill(master, signal.SIGKILL)
            except ProcessLookupError:
                pass
            time.sleep(0.3)
        self.nginx_pids.remove(master)

    # measurements ---------------------------------------------------------------------------------
    @staticmethod
    def ticks(pids):
        t = 0
        for pid in pids:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                t += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat(5))
            except FileNotFoundError:
                pass
        return t

    @staticmethod
    def status_kb(pid, key):
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        return 0

    @staticmethod
    def meminfo_kb(key):
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        return 0

    def record(self, name, side, rnd, **values):
        self.results.setdefault(name, []).append(dict(side=side, round=rnd, **values))

    @staticmethod
    def wrk_parse(out):
        def us(v):
            m = re.match(r"([\d.]+)(us|ms|s)$", v)
            return float(m.group(1)) * {"us": 1, "ms": 1000, "s": 1e6}[m.group(2)] if m else None
        rps = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
        p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
        p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
        errs = re.search(r"Socket errors: (.*)", out)
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        return dict(rps=float(rps.group(1)) if rps else None, p50_us=us(p50.group(1)) if p50 else None,
                    p99_us=us(p99.group(1)) if p99 else None,
                    errors=(errs.group(1).strip() if errs else "") + (f" non-2xx {non2xx.group(1)}" if non2xx else ""))

    # ---------------------------------------------------------------- workloads
    def w2(self):
        a = self.a
        for fname in ("64.bin", "4k.bin"):
            name = f"W2 {'64 B' if fname == '64.bin' else '4 KB'}"
            for r in range(1, a.rounds + 1):
                for side in SIDES:
                    master, workers = self.start_nginx(side)
                    c0 = self.ticks(workers)
                    cmd = ["wrk", "-t1", f"-c{a.conns}", f"-d{a.seconds}s", "--latency", f"http://{SRV_IP}/{fname}"]
                    out = run(self.cli_cmd(cmd), timeout=a.seconds + 30).stdout
                    c1 = self.ticks(workers)
                    self.stop_nginx(master)
                    w = self.wrk_parse(out)
                    w["cpu_pct"] = 100.0 * (c1 - c0) / HZ / a.seconds
                    self.record(name, side, r, **w)
                    log(f"{name} round {r} {side}: {w}")
        # nginx's default configuration: worker_processes auto (one worker per core), wrk with two threads.
        for side in SIDES:
            master, workers = self.start_nginx(side, "auto")
            c0 = self.ticks(workers)
            cmd = ["wrk", "-t2", f"-c{a.conns}", f"-d{a.seconds}s", "--latency", f"http://{SRV_IP}/4k.bin"]
            out = run(self.cli_cmd(cmd), timeout=a.seconds + 30).stdout
            c1 = self.ticks(workers)
            self.stop_nginx(master)
            w = self.wrk_parse(out)
            w["cpu_pct"] = 100.0 * (c1 - c0) / HZ / a.seconds
            w["workers"] = len(workers)
            self.record("W2 4 KB, worker_processes auto", side, 1, **w)
            log(f"W2 auto {side}: {w}")

    def w1(self):
        a = self.a
        for r in range(1, a.rounds + 1):
            for side in SIDES:
                master, workers = self.start_nginx(side)
                c0 = self.ticks(workers)
                cmd = ["wrk", "-t1", f"-c{a.conns}", f"-d{a.seconds}s", "--latency", "-H", "Connection: close",
                       f"http://{SRV_IP}/64.bin"]
                out = run(self.cli_cmd(cmd), timeout=a.seconds + 30).stdout
                c1 = self.ticks(workers)
                self.stop_nginx(master)
                w = self.wrk_parse(out)
                w["cpu_pct"] = 100.0 * (c1 - c0) / HZ / a.seconds
                self.record("W1 64 B, Connection: close", side, r, **w)
                log(f"W1 round {r} {side}: {w}")

    def server_and_client(self, topo, side, cmd, port):
        """Starts a server for one run and returns (process, client command maker, server address): topology (b)
        the server namespace with the client on the kernel across the veth; topology (a) see a_start_proc."""
        if topo == "a":
            p, host = self.a_start_proc(side, cmd, port)
            return p, (lambda c: self.a_client_cmd(side, c)), host
        return self.start_proc(side, cmd, port), self.cli_cmd, SRV_IP

    def w4(self, topo="b"):
        a = self.a
        for direction, flag in (("client to server", []), ("server to client", ["-R"])):
            name = ("(a) " if topo == "a" else "") + f"W4 iperf3, {direction}"
            for r in range(1, a.rounds + 1):
                for side in SIDES:
                    p, client, host = self.server_and_client(topo, side, ["iperf3", "-4", "-s", "-p", "5201"], 5201)
                    time.sleep(0.2)  # let iperf3 finish with the readiness probe's connection
                    c0 = self.ticks([p.pid])
                    cmd = ["iperf3", "-4", "-c", host, "-p", "5201", "-t", str(a.seconds), "-J"] + flag
                    res = run(client(cmd), check=False, timeout=a.seconds + 30)
                    c1 = self.ticks([p.pid])
                    self.stop_proc(p)
                    try:
                        j = json.loads(res.stdout)
                        gbps = j["end"]["sum_received"]["bits_per_second"] / 1e9
                        retr = j["end"].get("sum_sent", {}).get("retransmits")
                        err = j.get("error", "")
                    except (ValueError, KeyError) as e:
                        gbps, retr, err = None, None, f"{e}: {res.stdout[-200:]} {res.stderr[-200:]}"
                    self.record(name, side, r, gbps=gbps, retransmits=retr, errors=err,
                                cpu_pct=100.0 * (c1 - c0) / HZ / a.seconds)
                    log(f"{name} round {r} {side}: {gbps} Gbit/s {err}")

    def w3(self, topo="b"):
        a = self.a
        for conns in a.rpc_conns:
            name = ("(a) " if topo == "a" else "") + f"W3 RPC echo 64 B, {conns} connections"
            for r in range(1, a.rounds + 1):
                for side in SIDES:
                    p, client, host = self.server_and_client(topo, side, [f"{BENCH}/rpc_server", "7000"], 7000)
                    c0 = self.ticks([p.pid])
                    t0 = time.time()
                    out = run(client([f"{BENCH}/rpc_client", "echo", host, "7000", str(conns),
                                      str(a.seconds)]), check=False, timeout=a.seconds + 90).stdout
                    c1, t1 = self.ticks([p.pid]), time.time()
                    self.stop_proc(p)
                    kv = dict(x.split("=") for x in out.split())
                    gc = self.usertcp_stats(side)
                    reqs = int(kv.get("requests", 0))
                    if gc and reqs:
                        # Over the server's whole life (start-up and connection set-up included): an upper bound
                        # for steady state.
                        gc["gc_per_1m"] = (gc["gc0"] + gc["gc1"] + gc["gc2"]) * 1e6 / reqs
                        gc["alloc_b_per_req"] = gc["alloc_b"] / reqs
                    self.record(name, side, r, rps=float(kv.get("rps", 0)), p50_us=float(kv.get("p50_us", -1)),
                                p99_us=float(kv.get("p99_us", -1)), open=int(kv.get("open", 0)),
                                errors=kv.get("errors", "?"), cpu_pct=100.0 * (c1 - c0) / HZ / (t1 - t0), **gc)
                    log(f"{name} round {r} {side}: {out.strip()}")

    # ---------------------------------------------------------------- topology (a)
    def memif_opts(self, client=False, w5=False):
        """Device arguments of the memif ends (docs/dpdk.md, "memif MTU"; stack/Dpdk/DpdkPort.cs): `mtu=N` and
        `trusted=1` on both ends (A1-A4 default: mtu=16000,trusted=1, the configuration topology (a) is run in, as
        loopback's 64 KiB MTU without checksums is the kernel's; W5a: the PMD's defaults unless given), and
        `zero-copy=yes` on the client end with --memif-zero-copy."""
        mtu, trusted = (self.a.w5_memif_mtu, self.a.w5_memif_trusted) if w5 else (self.a.memif_mtu, self.a.memif_trusted)
        return ((f",mtu={mtu}" if mtu else "") + (",trusted=1" if trusted else "")
                + (",zero-copy=yes" if client and not w5 and self.a.memif_zero_copy else "")
                + (self.a.memif_extra if not w5 else ""))

    def a_client_cmd(self, side, cmd):
        """Topology (a): the client runs in the server namespace. kernel: over loopback. usertcp: under LD_PRELOAD
        with its own address and the client end of the memif link (a distinct device name: an unrelated process)."""
        if side == "kernel":
            return ["ip", "netns", "exec", self.srv] + cmd
        return ["ip", "netns", "exec", self.srv, "env", f"LD_PRELOAD={LIB}", "USERTCP_IP=198.18.0.1/24",
                f"USERTCP_DEV=net_memif1,role=client,socket={self.memif_sock}{self.memif_opts(client=True)}",
                "USERTCP_DPDK_ARGS=--log-level=*:error"] + cmd

    def a_start_nginx(self, side):
        """nginx for topology (a): kernel, listening on loopback; usertcp, the server end of a fresh memif link."""
        self.memif_sock = f"/tmp/usertcp-ab-{self.a.tag}-{os.getpid()}-{time.monotonic_ns()}.sock"
        self.nginx_conf("1")
        run(["ip", "-n", self.srv, "addr", "flush", "dev", "ut-srv0"])
        pidf = f"{self.work}/nginx.pid"
        if side == "kernel":
            cmd = ["ip", "netns", "exec", self.srv]
        else:
            cmd = ["ip", "netns", "exec", self.srv, "env", f"LD_PRELOAD={LIB}", f"USERTCP_IP={SRV_IP}/24",
                   f"USERTCP_DEV=net_memif0,role=server,socket={self.memif_sock}{self.memif_opts()}",
                   "USERTCP_DPDK_ARGS=--log-level=*:error"]
        run(cmd + ["/usr/sbin/nginx", "-p", self.work, "-c", f"{self.work}/nginx.conf"])
        for _ in range(50):
            if os.path.exists(pidf) and open(pidf).read().strip():
                break
            time.sleep(0.1)
        master = int(open(pidf).read())
        self.nginx_pids.append(master)
        url = "http://127.0.0.1" if side == "kernel" else f"http://{SRV_IP}"
        # Readiness: one curl (on the same stack as the client will be). On usertcp every client process is a new
        # memif connection, so give the server's worker time to set its link up first.
        for _ in range(30):
            r = subprocess.run(self.a_client_cmd(side, ["curl", "-s", "-m", "2", "-o", "/dev/null", f"{url}/64.bin"]),
                               capture_output=True)
            if r.returncode == 0:
                break
            time.sleep(0.3)
        else:
            raise RuntimeError(f"topology (a) nginx on {side} did not answer: {self.tail_logs()}")
        time.sleep(0.5)  # let the server see the curl's memif link go down before the next client connects
        return master, [int(x) for x in run(["pgrep", "-P", str(master)], check=False).stdout.split()], url

    def a_start_proc(self, side, cmd, port):
        """A server other than nginx for topology (a) (bench/rpc, iperf3), started like a_start_nginx: kernel, on
        loopback in the server namespace; usertcp, the server end of a fresh memif link. Returns (process, address
        the client connects to) once a client on the same stack could connect."""
        self.memif_sock = f"/tmp/usertcp-ab-{self.a.tag}-{os.getpid()}-{time.monotonic_ns()}.sock"
        run(["ip", "-n", self.srv, "addr", "flush", "dev", "ut-srv0"])
        if side == "kernel":
            full, host = ["ip", "netns", "exec", self.srv] + cmd, "127.0.0.1"
        else:
            full = ["ip", "netns", "exec", self.srv, "env", f"LD_PRELOAD={LIB}", f"USERTCP_IP={SRV_IP}/24",
                    f"USERTCP_DEV=net_memif0,role=server,socket={self.memif_sock}{self.memif_opts()}",
                    "USERTCP_DPDK_ARGS=--log-level=*:error"] + cmd
            host = SRV_IP
        logf = open(os.path.join(self.work, f"server-a-{side}.log"), "a")
        p = subprocess.Popen(full, stdout=logf, stderr=subprocess.STDOUT)
        self.procs.append(p)
        probe = ["timeout", "2", "bash", "-c", f"exec 3<>/dev/tcp/{host}/{port}"]
        for _ in range(30):
            if p.poll() is not None:
                raise RuntimeError(f"server exited with {p.returncode}: {self.tail_logs()}")
            if subprocess.run(self.a_client_cmd(side, probe), capture_output=True).returncode == 0:
                break
            time.sleep(0.3)
        else:
            raise RuntimeError(f"topology (a) server on {side} did not answer: {self.tail_logs()}")
        time.sleep(0.5)  # as for nginx: the probe's memif link goes down before the measured client connects
        return p, host

    def a_wrk(self, name, fname, extra):
        a = self.a
        for r in range(1, a.rounds + 1):
            for side in SIDES:
                master, workers, url = self.a_start_nginx(side)
                c0 = self.ticks(workers)
                cmd = ["wrk", "-t1", f"-c{a.conns}", f"-d{a.seconds}s", "--latency"] + extra + [f"{url}/{fname}"]
                res = run(self.a_client_cmd(side, cmd), check=False, timeout=a.seconds + 30)
                c1 = self.ticks(workers)
                self.stop_nginx(master)
                w = self.wrk_parse(res.stdout)
                if w["rps"] is None:
                    w["errors"] = (w["errors"] + " " + (res.stdout + res.stderr)[-300:]).strip()
                w["cpu_pct"] = 100.0 * (c1 - c0) / HZ / a.seconds
                self.record(name, side, r, **w)
                log(f"{name} round {r} {side}: {w}")

    def a2(self):
        self.a_wrk("(a) W2 64 B", "64.bin", [])
        self.a_wrk("(a) W2 4 KB", "4k.bin", [])

    def a1(self):
        self.a_wrk("(a) W1 64 B, Connection: close", "64.bin", ["-H", "Connection: close"])

    def a3(self):
        self.w3("a")

    def a4(self):
        self.w4("a")

    def hold_finish(self, h, churn_seconds, wait_s):
        """The end of a `rpc_client hold` run: churn new connections while the held ones stay open, check that every
        held connection still echoes, quit. Returns the two result lines as dicts."""
        def ask(cmd):
            h.stdin.write(cmd + "\n")
            h.stdin.flush()
            return dict(x.split("=") for x in h.stdout.readline().split())
        churn = ask(f"churn {churn_seconds}")
        alive = ask("check")
        h.stdin.write("quit\n")
        h.stdin.flush()
        h.wait(wait_s)
        self.procs.remove(h)
        return churn, alive

    def w6(self):
        """W6 idle CPU and W5 memory/accept rate, on the same runs: rpc_server, N idle connections held by
        rpc_client in the client namespace."""
        a = self.a
        for n in a.idle_conns:
            for r in range(1, a.rounds + 1):
                for side in SIDES:
                    p = self.start_proc(side, [f"{BENCH}/rpc_server", "7000"], 7000)
                    time.sleep(0.5)
                    rss0, huge0 = self.status_kb(p.pid, "VmRSS"), self.status_kb(p.pid, "HugetlbPages")
                    slab0 = self.meminfo_kb("Slab")
                    h = subprocess.Popen(self.cli_cmd([f"{BENCH}/rpc_client", "hold", SRV_IP, "7000", str(n)]),
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                    self.procs.append(h)
                    opened = dict(x.split("=") for x in h.stdout.readline().split())
                    time.sleep(0.5)
                    rss1, huge1 = self.status_kb(p.pid, "VmRSS"), self.status_kb(p.pid, "HugetlbPages")
                    slab1 = self.meminfo_kb("Slab")
                    c0, t0 = self.ticks([p.pid]), time.time()
                    time.sleep(a.idle_seconds)
                    c1, t1 = self.ticks([p.pid]), time.time()
                    churn, alive = self.hold_finish(h, a.churn_seconds, 30)
                    self.stop_proc(p)
                    ok = int(opened.get("opened", 0)) or 1
                    vals = dict(n=n, opened=int(opened.get("opened", 0)), open_rate=float(opened.get("rate", 0)),
                                idle_cpu_pct=100.0 * (c1 - c0) / HZ / (t1 - t0),
                                rss_b_per_conn=(rss1 - rss0) * 1024 / ok, huge_b_per_conn=(huge1 - huge0) * 1024 / ok,
                                slab_b_per_conn=(slab1 - slab0) * 1024 / ok, rss_kb=rss1, huge_kb=huge1,
                                churn_rate=float(churn.get("churn_rate", 0)), churn_failed=int(churn.get("failed", 0)),
                                alive=int(alive.get("alive", 0)))
                    self.record(f"W6/W5 {n} idle connections", side, r, **vals)
                    log(f"W6/W5 n={n} round {r} {side}: {vals}")

    # ---------------------------------------------------------------- W5 in topology (a): 100k .. 1M+ connections
    def w5a(self):
        """W5 at scale, topology (a): bench/rpc server and client holding N idle connections, both ends on usertcp
        over memif (USERTCP_VIRTUAL_FDS=1: the sockets are not kernel fds) vs both on the kernel over loopback.
        N is spread over ceil(N / 25000) server ports (one client address reaches one server port from at most the
        ~28k ephemeral ports). Both processes' memory (VmRSS delta / N), open time, idle CPU of both, the accept
        rate while holding them, and an echo on every connection at the end."""
        a = self.a
        import resource
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        for n in a.w5_conns:
            nports = max(1, -(-n // 25000))
            for r in range(1, a.w5_rounds + 1):
                for side in SIDES:
                    name = f"W5a {n} idle connections"
                    if side == "kernel" and n + 64 > nofile:
                        # Every kernel socket is an fd: one process holds at most RLIMIT_NOFILE of them, and the
                        # hard limit cannot be raised without CAP_SYS_RESOURCE.
                        self.record(name, side, r, n=n, opened=0,
                                    errors=f"kernel: not possible in one process (RLIMIT_NOFILE hard limit {nofile})")
                        log(f"{name} round {r} kernel: skipped, RLIMIT_NOFILE hard limit {nofile}")
                        continue
                    sock = f"/tmp/usertcp-w5-{a.tag}-{os.getpid()}-{time.monotonic_ns()}.sock"
                    run(["ip", "-n", self.srv, "addr", "flush", "dev", "ut-srv0"])
                    ns = ["ip", "netns", "exec", self.srv]
                    if side == "kernel":
                        srv = ns + [f"{BENCH}/rpc_server", "7000", str(nports)]
                        cli = ns + ["env", f"RPC_CONNECT_SECONDS={max(60, n // 2000)}", f"{BENCH}/rpc_client", "hold",
                                    "127.0.0.1", "7000", str(n), str(nports)]
                    else:
                        common = ["USERTCP_VIRTUAL_FDS=1", "USERTCP_DPDK_ARGS=--log-level=*:error", f"LD_PRELOAD={LIB}"]
                        srv = ns + ["env"] + common + [f"USERTCP_IP={SRV_IP}/24",
                                                       f"USERTCP_DEV=net_memif0,role=server,socket={sock}{self.memif_opts(w5=True)}",
                                                       f"{BENCH}/rpc_server", "7000", str(nports)]
                        cli = ns + ["env"] + common + ["USERTCP_IP=198.18.0.1/24",
                                                       f"USERTCP_DEV=net_memif1,role=client,socket={sock}{self.memif_opts(client=True, w5=True)}",
                                                       f"RPC_CONNECT_SECONDS={max(60, n // 2000)}",
                                                       f"{BENCH}/rpc_client", "hold", SRV_IP, "7000", str(n), str(nports)]
                    logf = open(os.path.join(self.work, f"w5a-{side}.log"), "a")
                    p = subprocess.Popen(srv, stdout=logf, stderr=subprocess.STDOUT)
                    self.procs.append(p)
                    time.sleep(2)
                    if p.poll() is not None:
                        raise RuntimeError(f"W5a server exited with {p.returncode}: {self.tail_logs()}")
                    srss0 = self.status_kb(p.pid, "VmRSS")
                    slab0 = self.meminfo_kb("Slab")
                    h = subprocess.Popen(cli, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                    self.procs.append(h)
                    opened = dict(x.split("=") for x in h.stdout.readline().split())
                    # The client counts a connection when its SYN-ACK arrives; the server application may still be
                    # accepting. Wait until the server's CPU use settles (at most 120 s).
                    t_open = time.time()
                    last = self.ticks([p.pid])
                    while time.time() - t_open < 120:
                        time.sleep(1)
                        cur = self.ticks([p.pid])
                        if cur - last <= 2:
                            break
                        last = cur
                    settle = time.time() - t_open
                    srss1, crss1 = self.status_kb(p.pid, "VmRSS"), self.status_kb(h.pid, "VmRSS")
                    slab1 = self.meminfo_kb("Slab")
                    s0, c0, t0 = self.ticks([p.pid]), self.ticks([h.pid]), time.time()
                    time.sleep(a.idle_seconds)
                    s1, c1, t1 = self.ticks([p.pid]), self.ticks([h.pid]), time.time()
                    churn, alive = self.hold_finish(h, a.churn_seconds, 120)
                    self.stop_proc(p)
                    ok = int(opened.get("opened", 0)) or 1
                    crss0 = int(opened.get("rss0_kb", 0))
                    vals = dict(n=n, ports=nports, opened=int(opened.get("opened", 0)),
                                open_s=float(opened.get("seconds", 0)), open_rate=float(opened.get("rate", 0)),
                                settle_s=settle,
                                srv_rss_b_per_conn=(srss1 - srss0) * 1024 / ok,
                                cli_rss_b_per_conn=(crss1 - crss0) * 1024 / ok,
                                slab_b_per_conn=(slab1 - slab0) * 1024 / ok, srv_rss_kb=srss1, cli_rss_kb=crss1,
                                srv_idle_cpu_pct=100.0 * (s1 - s0) / HZ / (t1 - t0),
                                cli_idle_cpu_pct=100.0 * (c1 - c0) / HZ / (t1 - t0),
                                churn_rate=float(churn.get("churn_rate", 0)), churn_failed=int(churn.get("failed", 0)),
                                alive=int(alive.get("alive", 0)))
                    self.record(name, side, r, **vals)
                    log(f"{name} round {r} {side}: {vals}")


# -------------------------------------------------------------------- report
def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def spread(xs):
    xs = [x for x in xs if x is not None]
    return max(xs) - min(xs) if xs else None


def fmt(v, digits=0):
    if v is None:
        return "n/a"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def ratio(u, k):
    return f"{u / k:.2f}" if u is not None and k not in (None, 0) else "n/a"


def side_vals(rows, side, key):
    return [r.get(key) for r in rows if r["side"] == side]


def table(rows, metrics):
    """metrics: list of (key, label, digits). One line per metric: kernel median (spread), usertcp, ratio,
    and the per-round values."""
    out = ["| metric | kernel median | kernel spread | usertcp median | usertcp spread | usertcp/kernel | rounds (kernel; usertcp) |",
           "|---|---|---|---|---|---|---|"]
    for key, label, d in metrics:
        k, u = side_vals(rows, "kernel", key), side_vals(rows, "usertcp", key)
        rounds = ", ".join(fmt(x, d) for x in k) + "; " + ", ".join(fmt(x, d) for x in u)
        out.append(f"| {label} | {fmt(med(k), d)} | {fmt(spread(k), d)} | {fmt(med(u), d)} | {fmt(spread(u), d)} "
                   f"| {ratio(med(u), med(k))} | {rounds} |")
    errs = [f"{r['side']} round {r['round']}: {r['errors']}" for r in rows if r.get("errors") not in (None, "", "0")]
    if errs:
        out.append("")
        out.append("Errors reported by the client: " + "; ".join(errs))
    return "\n".join(out)


def plot(outdir, fname, title, ylabel, groups):
    """groups: list of (label, kernel values, usertcp values): clustered bars at the median, error bars min..max."""
    if not shutil.which("gnuplot"):
        return None
    dat = os.path.join(outdir, fname + ".dat")
    with open(dat, "w") as f:
        f.write("# label kernel_median kernel_min kernel_max usertcp_median usertcp_min usertcp_max\n")
        for label, k, u in groups:
            k = [x for x in k if x is not None] or [0]
            u = [x for x in u if x is not None] or [0]
            f.write(f'"{label}" {med(k)} {min(k)} {max(k)} {med(u)} {min(u)} {max(u)}\n')
    png = os.path.join(outdir, fname + ".png")
    script = f"""set terminal pngcairo size 800,450 noenhanced
set output '{png}'
set title '{title}'
set ylabel '{ylabel}'
set style data histogram
set style histogram errorbars gap 1 lw 1
set style fill solid 0.7 border -1
set yrange [0:*]
set key top right
set grid ytics
plot '{dat}' using 2:3:4:xtic(1) title 'kernel' lc rgb '#4477aa', '' using 5:6:7 title 'usertcp' lc rgb '#ee6677'
"""
    r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    if r.returncode != 0:
        # pngcairo may be missing from gnuplot-nox; the plain png terminal is always there.
        r = subprocess.run(["gnuplot"], input=script.replace("pngcairo", "png"), text=True, capture_output=True)
    os.remove(dat)
    return os.path.basename(png) if r.returncode == 0 else None


def machine_facts():
    def sh(c):
        return subprocess.run(c, shell=True, text=True, capture_output=True).stdout.strip()
    cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
    nginx_v = sh("/usr/sbin/nginx -v 2>&1 | cut -d/ -f2")
    wrk_v = sh("wrk -v 2>&1 | head -1 | cut -d' ' -f1-2")
    iperf_v = sh("iperf3 -v | head -1 | cut -d' ' -f1-2")
    return [
        f"- CPU: {os.cpu_count()} vCPUs, {cpu}",
        f"- memory: {int(Harness.meminfo_kb('MemTotal') / 1024 / 1024 + 0.5)} GiB; kernel {platform.release()}; "
        f"{sh('. /etc/os-release && echo $PRETTY_NAME')}",
        f"- nginx {nginx_v}, {wrk_v}, {iperf_v}",
        f"- hugepages (2 MiB) at the end of the run: {Harness.meminfo_kb('HugePages_Total')} reserved, "
        f"{Harness.meminfo_kb('HugePages_Free')} free (usertcp's EAL uses them when enough are free, otherwise "
        "runs with --no-huge; the W5 table shows the server's HugetlbPages)",
        f"- usertcp commit {sh(f'git -C {ROOT} rev-parse --short HEAD')}"
        f"{' (with uncommitted changes)' if sh(f'git -C {ROOT} status --porcelain -- stack interpose cshim aot') else ''}",
    ]


def write_report(h, started, load0, load1, cmdline, elapsed):
    a, res = h.a, h.results
    outdir = a.out
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, "results.json"), "w") as f:
        json.dump(dict(command=cmdline, date=started, results=res), f, indent=1)
    L = [
        "# A/B against the kernel: measured report",
        "",
        "Generated by the harness; do not edit by hand. Command (run as root from the repository root):",
        "",
        "    " + cmdline,
        "",
        f"Date: {started} (took {elapsed:.0f} s). Machine:",
        "",
        *machine_facts(),
        f"- load average before / after: {load0} / {load1} (the VM is shared with other work; wall-clock rates "
        "move with it)",
        "",
        "Topology (b): the client is on the kernel in namespace ut-cli (wrk, iperf3, bench/rpc/rpc_client), the "
        "server in namespace ut-srv, joined by a veth pair with offloads off. Kernel run: the server on the kernel "
        "with 198.18.0.2 on the veth. usertcp run: the same binary and configuration under "
        f"`LD_PRELOAD=build/libusertcp.so USERTCP_DEV={a.usertcp_dev}` ("
        + ("the packet socket device, TSO on" if a.usertcp_dev.startswith("packet:") else
           "DPDK af_packet PMD" if a.usertcp_dev.startswith("net_af_packet") else "device as given") + "), no kernel "
        "address" + ("; the server namespace's kernel drops the frames after af_packet's tap (tc ingress filter, "
                     "`--srv-kernel-rx drop`)" if a.srv_kernel_rx == "drop" else
                     "; the server namespace's kernel also runs every frame through its IP layer "
                     "(`--srv-kernel-rx keep`)") + ". Every measurement starts a fresh server; each round runs kernel then usertcp. "
        f"{a.rounds} rounds of {a.seconds} s; median, spread = max - min over the rounds, ratio = usertcp median / "
        "kernel median. Server CPU = utime + stime of the server process (nginx: its workers, all threads) over the "
        "run, in % of one core (100 % = one core busy). Raw per-round values: results.json.",
        "",
    ]
    if not any(k.startswith("(a)") for k in res):
        L += ["Topology (a) (both ends on usertcp over net_memif vs both on the kernel over loopback): not measured "
              "in this run.", ""]

    def section(title, names, metrics, plots, note=None):
        L.append(f"## {title}")
        L.append("")
        if note:
            L.append(note)
            L.append("")
        for n in names:
            if n not in res:
                continue
            L.append(f"### {n}")
            L.append("")
            L.append(table(res[n], metrics))
            L.append("")
        for fname, ptitle, ylabel, key, labels in plots:
            groups = [(lab, side_vals(res[n], "kernel", key), side_vals(res[n], "usertcp", key))
                      for n, lab in labels if n in res]
            if groups:
                png = plot(outdir, fname, ptitle, ylabel, groups)
                if png:
                    L.append(f"![{ptitle}]({png})")
                    L.append("")

    wrk_metrics = [("rps", "requests/s", 0), ("p50_us", "latency p50 (us)", 0), ("p99_us", "latency p99 (us)", 0),
                   ("cpu_pct", "server CPU (% of a core)", 1)]
    if any(k.startswith("W2") for k in res):
        section("W2 keep-alive: nginx, wrk",
                ["W2 64 B", "W2 4 KB", "W2 4 KB, worker_processes auto"], wrk_metrics,
                [("w2_rps", "W2 nginx keep-alive: requests/s", "requests/s", "rps",
                  [("W2 64 B", "64 B"), ("W2 4 KB", "4 KB"), ("W2 4 KB, worker_processes auto", "4 KB, auto")]),
                 ("w2_p99", "W2 nginx keep-alive: latency p99", "us", "p99_us",
                  [("W2 64 B", "64 B"), ("W2 4 KB", "4 KB")])],
                f"nginx with one worker (`worker_processes 1`), `wrk -t1 -c{a.conns} -d{a.seconds}s --latency`; the "
                "default configuration (`worker_processes auto`: one worker per core, wrk -t2) one round only. "
                "Configuration: sendfile on, tcp_nopush on, access_log off, keepalive_requests 100000"
                + (", open_file_cache max=1000 inactive=60s." if a.nginx_file_cache else "."))
    if any(k.startswith("W1") for k in res):
        section("W1 short connections: nginx, `Connection: close`", ["W1 64 B, Connection: close"],
                [("rps", "connections/s (= requests/s)", 0), ("p50_us", "latency p50 (us)", 0),
                 ("p99_us", "latency p99 (us)", 0), ("cpu_pct", "server CPU (% of a core)", 1)],
                [("w1_cps", "W1 new connection per request: connections/s", "connections/s", "rps",
                  [("W1 64 B, Connection: close", "64 B, Connection: close")])],
                f"`wrk -t1 -c{a.conns} -d{a.seconds}s -H 'Connection: close'`, 64 B file: nginx closes after each "
                "response, wrk reconnects; one request per connection.")
    # W3 and W4 run in both topologies (w3/w4 with topo "a" are A3/A4): one list of columns for each.
    w3_metrics = [("rps", "requests/s", 0), ("p50_us", "latency p50 (us)", 0), ("p99_us", "latency p99 (us)", 0),
                  ("open", "connections established", 0), ("cpu_pct", "server CPU (% of a core)", 1),
                  ("gc_per_1m", "GC collections per 1M requests (usertcp, whole server life)", 2),
                  ("alloc_b_per_req", "bytes allocated per request (usertcp, whole server life)", 1)]
    w4_metrics = [("gbps", "Gbit/s", 2), ("cpu_pct", "server CPU (% of a core)", 1),
                  ("retransmits", "sender retransmits", 0)]
    w4 = [n for n in res if n.startswith("W4")]
    if w4:
        section("W4 bulk: iperf3, one flow", w4, w4_metrics,
                [("w4_gbps", "W4 iperf3 single flow: Gbit/s", "Gbit/s", "gbps",
                  [(n, n.split(", ")[1]) for n in w4])],
                f"`iperf3 -4 -s` in the server namespace, `iperf3 -4 -c 198.18.0.2 -t {a.seconds}` (and `-R`) in the "
                "client namespace; Gbit/s received.")
    w3 = [n for n in res if n.startswith("W3")]
    if w3:
        section("W3 RPC echo over many connections (bench/rpc)", w3, w3_metrics,
                [("w3_rps", "W3 RPC echo 64 B: requests/s", "requests/s", "rps",
                  [(n, n.split(", ")[1]) for n in w3]),
                 ("w3_p99", "W3 RPC echo 64 B: latency p99", "us", "p99_us", [(n, n.split(", ")[1]) for n in w3])],
                "`build/bench/rpc_server 7000` (one thread, epoll, echoes what it reads) on each stack; "
                f"`build/bench/rpc_client echo 198.18.0.2 7000 N {a.seconds}` on the kernel: opens N connections, "
                "then keeps one 64 B request outstanding on each (closed loop). One client thread, so with many "
                "connections the client's own kernel stack is part of what is measured.")
    w6 = [n for n in res if n.startswith("W6")]
    if w6:
        section("W6 idle CPU and W5 memory per idle connection (bench/rpc server)", w6,
                [("idle_cpu_pct", "idle server CPU (% of a core)", 2), ("rss_b_per_conn", "server RSS delta / N (B)", 0),
                 ("huge_b_per_conn", "server hugepage delta / N (B)", 0),
                 ("slab_b_per_conn", "system Slab delta / N (B)", 0),
                 ("open_rate", "connections/s while opening the N", 0),
                 ("churn_rate", "new connections/s while holding the N", 0),
                 ("opened", "connections opened", 0), ("alive", "still echoing at the end", 0)],
                [("w6_idle_cpu", "W6 idle server CPU holding N idle connections", "% of one core", "idle_cpu_pct",
                  [(n, n.split()[1]) for n in w6]),
                 ("w5_mem", "W5 server RSS per idle connection", "bytes", "rss_b_per_conn",
                  [(n, n.split()[1]) for n in w6]),
                 ("w5_churn", "W5 connection rate while holding N", "connections/s", "churn_rate",
                  [(n, n.split()[1]) for n in w6])],
                f"`build/bench/rpc_server 7000` on each stack; `build/bench/rpc_client hold 198.18.0.2 7000 N` opens "
                "N connections (512 connects in flight; any not established within 20 s counts as failed) and leaves them idle. Method: server VmRSS (and HugetlbPages) "
                "from /proc/PID/status and the system-wide `Slab` of /proc/meminfo, read 0.5 s after the server "
                "started and again 0.5 s after the N were open; delta / N. The kernel's socket memory is slab, not "
                "RSS: in the kernel run the Slab delta covers both ends (the client is on the kernel too, in both "
                "runs), so the kernel server's own cost per connection is about (Slab delta kernel run - Slab delta "
                "usertcp run) / N; Slab is system-wide and the VM is shared, so it is noisy. Idle CPU: server "
                f"utime + stime over {a.idle_seconds} s while the N sit idle. Then {a.churn_seconds} s of new "
                "connections (connect, close; 64 in flight) while the N stay open: the accept rate under load of "
                "held connections. Finally one byte is echoed on each held connection ('still echoing').")
    w5a = [n for n in res if n.startswith("W5a")]
    if w5a:
        section("W5 at scale in topology (a): N idle connections, both ends on one stack", w5a,
                [("srv_rss_b_per_conn", "server VmRSS delta / N (B)", 0), ("cli_rss_b_per_conn", "client VmRSS delta / N (B)", 0),
                 ("slab_b_per_conn", "system Slab delta / N (B)", 0),
                 ("open_s", "time to open the N (s)", 1), ("open_rate", "connections/s while opening", 0),
                 ("settle_s", "server busy after the client saw the N (s)", 0),
                 ("srv_idle_cpu_pct", "idle server CPU (% of a core)", 2), ("cli_idle_cpu_pct", "idle client CPU (% of a core)", 2),
                 ("churn_rate", "new connections/s while holding the N", 0),
                 ("opened", "connections opened", 0), ("alive", "still echoing at the end", 0)],
                [("w5a_mem", "W5 (a): server RSS per idle connection", "bytes", "srv_rss_b_per_conn",
                  [(n, n.split()[1]) for n in w5a])],
                "`build/bench/rpc_server 7000 P` (P = ceil(N / 25000) ports) and `build/bench/rpc_client hold HOST 7000 N "
                "P` in one namespace. kernel: over 127.0.0.1. usertcp: both under LD_PRELOAD with "
                "`USERTCP_VIRTUAL_FDS=1`, server `USERTCP_IP=198.18.0.2/24 USERTCP_DEV=net_memif0,role=server,socket=S`, "
                "client `USERTCP_IP=198.18.0.1/24 USERTCP_DEV=net_memif1,role=client,socket=S`. Memory: VmRSS from "
                "/proc (server: 2 s after start vs after the N settled; client: its own VmRSS before and after opening, "
                "printed by rpc_client); the kernel's socket memory is Slab (both ends in the kernel run). Idle CPU: "
                f"utime + stime over {a.idle_seconds} s. Then {a.churn_seconds} s of new connections to port 7000 "
                "(connect, close; 64 in flight) while the N stay open, and one byte echoed on every held connection.")
    a_names = [n for n in res if n.startswith("(a) W1") or n.startswith("(a) W2")]
    if a_names:
        section("Topology (a): both ends on usertcp over memif vs both on the kernel over loopback", a_names,
                wrk_metrics,
                [("a_rps", "Topology (a), nginx + wrk: requests/s", "requests/s", "rps",
                  [(n, n[4:]) for n in a_names])],
                "Client and server in one namespace. kernel: nginx and wrk over 127.0.0.1. usertcp: nginx under "
                "LD_PRELOAD with USERTCP_IP=198.18.0.2, `USERTCP_DEV=net_memif0,role=server,socket=S`; wrk under "
                "LD_PRELOAD with USERTCP_IP=198.18.0.1, `USERTCP_DEV=net_memif1,role=client,socket=S` (two unrelated "
                f"processes, each its own device). nginx one worker, `wrk -t1 -c{a.conns} -d{a.seconds}s`; W1 adds "
                "`-H 'Connection: close'`. Both usertcp processes poll, so on 2 vCPUs they take both cores; server "
                "CPU counts only nginx's worker. "
                + ("nginx with `open_file_cache max=1000 inactive=60s` on both sides. " if a.nginx_file_cache else "")
                + a_device_note(a))
    a_note = ("Topology (a): client and server in one namespace; kernel: over 127.0.0.1; usertcp: the server under "
              "LD_PRELOAD with `USERTCP_DEV=net_memif0,role=server`, the client under LD_PRELOAD with "
              "`USERTCP_DEV=net_memif1,role=client` (each process its own device, no kernel in the data path). "
              f"MTU: kernel, loopback's 65536; usertcp, {a.memif_mtu or 1500} on both memif ends"
              + (f" (`mtu={a.memif_mtu}` appended to both USERTCP_DEV). " if a.memif_mtu else " (the PMD's default). ")
              + ("Checksums: kernel, none on loopback; usertcp, none either (`trusted=1` on both memif ends). "
                 if a.memif_trusted else "Checksums: kernel, none on loopback; usertcp, computed and verified in software. ")
              + ("Client end in memif's zero-copy mode (`zero-copy=yes`). " if a.memif_zero_copy else "")
              + (f"Both memif ends also `{a.memif_extra.lstrip(',')}`. " if a.memif_extra else ""))
    a3 = [n for n in res if n.startswith("(a) W3")]
    a4 = [n for n in res if n.startswith("(a) W4")]
    if a3:
        section("Topology (a): W3 RPC echo, both ends on usertcp over memif vs both on the kernel over loopback", a3,
                w3_metrics,
                [("a_w3_rps", "Topology (a), W3 RPC echo 64 B: requests/s", "requests/s", "rps",
                  [(n, n.split(", ")[1]) for n in a3])],
                a_note + f"`build/bench/rpc_server 7000` and `build/bench/rpc_client echo ADDR 7000 N {a.seconds}`.")
    if a4:
        section("Topology (a): W4 iperf3, both ends on usertcp over memif vs both on the kernel over loopback", a4,
                w4_metrics,
                [("a_w4_gbps", "Topology (a), W4 iperf3 single flow: Gbit/s", "Gbit/s", "gbps",
                  [(n, n.split(", ")[1]) for n in a4])],
                a_note + f"`iperf3 -4 -s` and `iperf3 -4 -c ADDR -t {a.seconds}` (and `-R`).")
    failed = [(n, r["errors"]) for n, rows in res.items() if n.endswith("FAILED") for r in rows]
    if failed:
        L.append("## Workloads that failed in this run")
        L.append("")
        L.extend(f"- {n}: {e}" for n, e in failed)
        L.append("")
    with open(os.path.join(outdir, "REPORT.md"), "w") as f:
        f.write("\n".join(L).rstrip() + "\n")
    log(f"report written: {os.path.join(outdir, 'REPORT.md')}")


def a_device_note(a):
    """The memif configuration of topology (a)'s usertcp runs, for the report."""
    return (f"memif: `{('mtu=%d' % a.memif_mtu) if a.memif_mtu else 'the PMD default MTU 1500'}"
            f"{',trusted=1' if a.memif_trusted else ''}{a.memif_extra}` on both ends{', `zero-copy=yes` on the client' if a.memif_zero_copy else ''} "
            "(the kernel: loopback, MTU 65536, no checksums).")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=3, help="duration of each wrk/iperf3/echo run")
    ap.add_argument("--conns", type=int, default=50, help="wrk connections (W1, W2)")
    ap.add_argument("--rpc-conns", default="1000,10000", help="W3 connection counts, comma-separated")
    ap.add_argument("--idle-conns", default="1000,10000", help="W6/W5 idle connection counts, comma-separated")
    ap.add_argument("--w5-conns", default="100000,1000000", help="W5a connection counts (topology a), comma-separated")
    ap.add_argument("--w5-rounds", type=int, default=1, help="W5a rounds (each 1M round takes about a minute per stack)")
    ap.add_argument("--idle-seconds", type=float, default=5)
    ap.add_argument("--churn-seconds", type=float, default=2)
    ap.add_argument("--workloads", default="W2,W1,W4,W3,W6", help="any of W2,W1,W4,W3,W6 (W6 also gives W5) in "
                    "topology (b); A2,A1,A3,A4 = W2,W1,W3,W4 in topology (a); W5a = W5 at scale (100k, 1M) in topology (a)")
    ap.add_argument("--memif-mtu", type=int, default=None,
                    help="topology (a): MTU of both memif ends (`mtu=N` in USERTCP_DEV; 0: the PMD's 1500). Default "
                         "16000 for A1-A4 (docs/benchmarks.md, \"Session 5, devicea\"), 0 for W5a. The kernel side runs "
                         "over loopback (MTU 65536)")
    ap.add_argument("--memif-trusted", type=int, nargs="?", const=1, default=None, choices=(0, 1),
                    help="topology (a): `trusted=1` on both memif ends (1, or the flag alone): no checksums computed or "
                         "verified, as the kernel's loopback; 0: computed and verified. Default 1 for A1-A4, 0 for W5a")
    ap.add_argument("--memif-zero-copy", action="store_true",
                    help="topology (a): `zero-copy=yes` on the client end (memif's zero-copy mode, client role only)")
    ap.add_argument("--memif-extra", default="", type=lambda v: v if v == "" or v.startswith(",") else "," + v,
                    help="topology (a), A1-A4: more device arguments appended to both memif ends, e.g. 'rsize=8' "
                         "(log2 of the ring's slots; docs/dpdk.md)")
    ap.add_argument("--nginx-file-cache", action="store_true",
                    help="nginx `open_file_cache max=1000 inactive=60s` on both sides (default: stock settings, every "
                         "request opens, stats and closes its file)")
    ap.add_argument("--suffix", help="scripts/testnet.sh suffix of the private topology (default aPID)")
    ap.add_argument("--tag", default="run", help="word put into the memif socket paths (/tmp/usertcp-ab-TAG-...)")
    ap.add_argument("--usertcp-dev", default="packet",
                    help="topology (b): USERTCP_DEV of the usertcp server: `packet` (default; the kernel packet socket "
                         "device with TSO, packet:ut-srv0, docs/packet-socket.md), `af_packet` (DPDK's af_packet PMD, "
                         "net_af_packet0,iface=ut-srv0, the default before session 5) or any USERTCP_DEV string")
    ap.add_argument("--srv-kernel-rx", choices=("drop", "keep"), default="drop",
                    help="topology (b), usertcp runs: drop the frames in the server namespace's kernel after "
                         "af_packet's tap (tc ingress filter; default) or keep its IP layer running on them",)
    ap.add_argument("--hugepages", type=int, default=0,
                    help="reserve at least this many 2 MiB hugepages first (system-wide, kept); 0: leave as is")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks"))
    ap.add_argument("--lib", help="the library of the usertcp runs (default build/libusertcp.so; e.g. a scratch build "
                    "of another commit)")
    a = ap.parse_args()
    global LIB
    LIB = os.path.abspath(a.lib) if a.lib else LIB
    a.usertcp_dev = {"packet": "packet:ut-srv0", "af_packet": "net_af_packet0,iface=ut-srv0"}.get(a.usertcp_dev, a.usertcp_dev)
    a.rpc_conns = [int(x) for x in a.rpc_conns.split(",") if x]
    a.idle_conns = [int(x) for x in a.idle_conns.split(",") if x]
    a.w5_conns = [int(x) for x in a.w5_conns.split(",") if x]
    # Topology (a)'s memif configuration: A1-A4 default to mtu=16000,trusted=1 (what a user running both ends on
    # usertcp on one host sets, docs/dpdk.md); W5a (memory per connection) keeps the PMD's defaults unless given.
    a.w5_memif_mtu = a.memif_mtu or 0
    a.w5_memif_trusted = bool(a.memif_trusted)
    a.memif_mtu = 16000 if a.memif_mtu is None else a.memif_mtu
    a.memif_trusted = True if a.memif_trusted is None else bool(a.memif_trusted)
    if os.geteuid() != 0:
        sys.exit("ab: needs root (network namespaces)")
    for tool in ("wrk", "iperf3", "ip"):
        if not shutil.which(tool):
            sys.exit(f"ab: {tool} missing: run make setup")
    if not os.path.exists(LIB):
        sys.exit(f"ab: {LIB} missing: run make" if a.lib is None else f"ab: --lib {LIB} does not exist")
    run(["make", "-s", "-C", os.path.join(ROOT, "bench", "rpc")])

    # Cleanup on every exit path: SIGTERM/SIGINT become exceptions so the finally below runs.
    def on_signal(sig, _frame):
        raise KeyboardInterrupt(f"signal {sig}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    resource_nofile()

    cmdline = "scripts/ab.py " + " ".join(shlex.quote(x) for x in sys.argv[1:])
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load0 = " ".join(open("/proc/loadavg").read().split()[:3])
    t0 = time.time()
    h = Harness(a)
    try:
        h.up()
        steps = {"W2": h.w2, "W1": h.w1, "W4": h.w4, "W3": h.w3, "W6": h.w6, "A2": h.a2, "A1": h.a1, "A3": h.a3,
                 "A4": h.a4, "W5A": h.w5a}
        for w in a.workloads.split(","):
            try:
                steps[w.strip().upper() if w.strip().upper() == "W5A" else w.strip()]()
            except (RuntimeError, subprocess.SubprocessError, ValueError, OSError) as e:
                # One workload failing (a server that does not come up, a client that times out) is reported and
                # the harness moves on to the next one.
                log(f"{w} failed: {e}")
                h.results.setdefault(f"{w} FAILED", []).append(dict(side="-", round=0, errors=str(e)[:500]))
                for p in list(h.procs):
                    h._kill(p)
                    h.procs.remove(p)
                for m in list(h.nginx_pids):
                    h.stop_nginx(m)
    finally:
        h.down()
    load1 = " ".join(open("/proc/loadavg").read().split()[:3])
    write_report(h, started, load0, load1, cmdline, time.time() - t0)


def resource_nofile():
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except ValueError:
        pass


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt as e:
        print(f"ab: interrupted ({e}); namespaces and servers cleaned up, no report written", file=sys.stderr)
        sys.exit(130)
