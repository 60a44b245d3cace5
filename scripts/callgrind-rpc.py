#!/usr/bin/env python3
"""Instructions per 64 B RPC on usertcp, from callgrind (issue "A/B against the kernel", target <= 1,500 in stack + shim).

bench/rpc/rpc_server runs under valgrind --tool=callgrind on usertcp (DPDK af_packet on the veth of a private
scripts/testnet.sh topology, ordinary pages); bench/rpc/rpc_client on the kernel in the client namespace sends a
fixed number of 64-byte echo RPCs over a few connections. Two runs with different numbers of RPCs; the difference of
their instruction counts divided by the difference of RPCs is the cost of one RPC without start-up and exit. The
counts are split by object: the application (rpc_server itself), the stack + shim (libusertcp.so: interposed calls,
TCP/IP, waits), the C runtime it calls (libc, ld.so, vdso), and the DPDK device (librte_*, libusertcp-dpdk.so).
The kernel's instructions (af_packet syscalls) are not visible to callgrind and not counted.

--churn S1,S2 measures short connections instead: `rpc_client hold HOST 7000 1` then `churn S` (connect, close once
established, --conns in flight, for S seconds) against the server, once for each of two durations; the difference of the
counts is divided by the difference of the server's passive opens (from its USERTCP_STATS lines), which also gives
the bytes the server allocated per accepted connection.

--client-churn S1,S2 measures the connecting side instead (topology (a) runs wrk on usertcp too): rpc_server runs on
the kernel in the client namespace (198.18.0.1), and `rpc_client hold 198.18.0.1 7000 1` then `churn S` runs under
callgrind on usertcp in the server namespace; the difference is divided by the difference of the client's active
opens (its USERTCP_STATS lines).

Needs root, `make`, `make valgrind` (build/valgrind/libusertcp.so: the library with a GC heap valgrind can host) and
`make -C bench/rpc`. Usage: scripts/callgrind-rpc.py [--requests 4000,20000] [--conns 10] [--keep DIR]
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIB = os.path.join(ROOT, "build", "valgrind", "libusertcp.so")
BENCH = os.path.join(ROOT, "build", "bench")
CACHE_SIM = []  # --cache-sim: ["--cache-sim=yes"] (valgrind's simulated I1/D1/LL caches, deterministic)
CACHE_EVENTS = ("D1mr", "D1mw", "DLmr", "DLmw")
SRV_IP = "198.18.0.2"
CLI_IP = "198.18.0.1"


def self_costs(path, event="Ir"):
    """Callgrind's self cost of one event (Ir; with --cache-sim also D1mr, DLmr, ...) per (object, function) from a
    callgrind.out file."""
    names, fnames, costs = {}, {}, {}
    ob = fn = None
    skip_next = False
    col = 1  # cost lines are "line ev1 ev2 ..." (positions: line)
    with open(path, errors="replace") as f:
        for line in f:
            if not line or line[0] == "#":
                continue
            if line.startswith("events:"):
                col = 1 + line.split()[1:].index(event)
                continue
            c = line[0]
            if c.isdigit() or c in "+-*":
                if skip_next:  # the inclusive cost of a call, not self cost
                    skip_next = False
                    continue
                parts = line.split()
                if len(parts) > col and ob is not None:
                    costs[(ob, fn)] = costs.get((ob, fn), 0) + int(parts[col])
                continue
            m = re.match(r"(c?ob|c?fn)=\((\d+)\)(?: (.*))?", line.strip())
            if m:
                table = names if m.group(1).endswith("ob") else fnames
                if m.group(3):
                    table[m.group(2)] = m.group(3)
                if m.group(1) == "ob":
                    ob = names.get(m.group(2), m.group(2))
                elif m.group(1) == "fn":
                    fn = fnames.get(m.group(2), m.group(2))
            elif line.startswith("calls="):
                skip_next = True
    return costs


class Symbols:
    """Names for the managed code of libusertcp.so. Valgrind cannot place NativeAOT's code section in the object
    (it reports the object as '???' and the function by address); the symbol table of the .dbg file and the load
    address (found as the page offset that makes the most '???' entry points symbol addresses) name them."""

    def __init__(self, dbg, addresses):
        out = subprocess.run(["nm", "-n", dbg], text=True, capture_output=True).stdout
        self.addr, self.name = [], []
        for l in out.splitlines():
            p = l.split(None, 2)
            if len(p) == 3 and p[1] in "tT":
                self.addr.append(int(p[0], 16))
                self.name.append(p[2])
        known = set(self.addr)
        self.base, best = 0, -1
        for base in range(0x4000000, 0x5000000, 0x1000):
            hit = sum(1 for a in addresses if a - base in known)
            if hit > best:
                self.base, best = base, hit
        self.end = self.base + (self.addr[-1] if self.addr else 0) + 0x10000

    def lookup(self, address):
        import bisect
        if not self.base <= address < self.end:
            return None
        i = bisect.bisect_right(self.addr, address - self.base) - 1
        return self.name[i] if i >= 0 else None


def group(obj):
    base = os.path.basename(obj)
    if base in ("rpc_server", "rpc_client", "nginx", "wrk"):
        return f"application ({base})"
    if base == "libusertcp.so" or obj == "libusertcp.so":
        return "stack + shim (libusertcp.so)"
    if base.startswith("librte_") or base == "libusertcp-dpdk.so":
        return "DPDK device (librte_*, glue)"
    return "C runtime (libc, ld.so, vdso, other)"


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw)


def run_once(suffix, work, requests, conns, churn=None, size=64, memif=None):
    srv, cli = f"ut-srv{suffix}", f"ut-cli{suffix}"
    out = os.path.join(work, f"callgrind.{requests}")
    log = open(os.path.join(work, f"server.{requests}.log"), "w")
    dev, client_ns, client_env = "net_af_packet0,iface=ut-srv0", cli, []
    if memif is not None:
        # Topology (a): the client is on usertcp too (the ordinary build, not under valgrind), in the server's
        # namespace, at the other end of one memif link whose socket lives in the work directory.
        sock = os.path.join(work, f"memif.{requests}.sock")
        dev = f"net_memif0,role=server,socket={sock}{memif}"
        client_ns = srv
        client_env = ["env", f"LD_PRELOAD={os.path.join(ROOT, 'build', 'libusertcp.so')}", f"USERTCP_IP={CLI_IP}/24",
                      f"USERTCP_DEV=net_memif1,role=client,socket={sock}{memif}",
                      "USERTCP_DPDK_ARGS=--log-level=*:error"]
    cmd = ["ip", "netns", "exec", srv, "env", f"LD_PRELOAD={LIB}", f"USERTCP_IP={SRV_IP}/24",
           f"USERTCP_DEV={dev}", "USERTCP_DPDK_ARGS=--log-level=*:error --no-huge",
           "USERTCP_STATS=1", "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"] + CACHE_SIM + [
           f"{BENCH}/rpc_server", "7000"]
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        if memif is not None:
            # No probe connection: a memif client that comes and goes while the (slow, valgrind) server is still
            # answering its handshake trips DPDK 22.11's disconnect race (PANIC in eal-intr-thread). Wait for the
            # server's memif socket (abstract, named after socket=), then give its stack time to listen; the measured
            # client's first SYN may still go out before the link is up, and is retransmitted.
            for _ in range(240):
                if p.poll() is not None:
                    raise RuntimeError(f"server exited: see {log.name}")
                if sock in subprocess.run(["ip", "netns", "exec", srv, "ss", "-xlH"], capture_output=True,
                                          text=True).stdout:
                    break
                time.sleep(0.5)
            else:
                raise RuntimeError("server did not open its memif socket")
            time.sleep(10)
        for _ in range(0 if memif is not None else 240):
            r = subprocess.run(["ip", "netns", "exec", client_ns] + client_env + ["timeout", "1", "bash", "-c",
                                f"exec 3<>/dev/tcp/{SRV_IP}/7000"], capture_output=True)
            if r.returncode == 0:
                break
            if p.poll() is not None:
                raise RuntimeError(f"server exited: see {log.name}")
            time.sleep(0.5)
        else:
            if memif is None:
                raise RuntimeError("server did not start listening")
        if churn:
            res = sh(["ip", "netns", "exec", client_ns] + client_env + [f"{BENCH}/rpc_client", "hold", SRV_IP, "7000", "1"],
                     input=f"churn {churn} {conns}\nquit\n")
            line = " ".join(res.stdout.split())
        else:
            res = sh(["ip", "netns", "exec", client_ns] + client_env + [f"{BENCH}/rpc_client", "echo", SRV_IP, "7000", str(conns), "600",
                      str(size), str(requests)])
            line = res.stdout.strip()
            kv = dict(x.split("=") for x in line.split())
            if int(kv["requests"]) != requests or kv["errors"] != "0":
                raise RuntimeError(f"client: {line}")
    finally:
        stop(p, signal.SIGTERM, 60)
        log.close()
    return self_costs(out), line, stats_lines(log.name)


def run_client_once(suffix, work, tag, conns, churn):
    """rpc_client on usertcp under callgrind (churn), rpc_server on the kernel in the client namespace."""
    srv, cli = f"ut-srv{suffix}", f"ut-cli{suffix}"
    out = os.path.join(work, f"callgrind.{tag}")
    log = open(os.path.join(work, f"client.{tag}.log"), "w")
    server = subprocess.Popen(["ip", "netns", "exec", cli, f"{BENCH}/rpc_server", "7000"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        cmd = ["ip", "netns", "exec", srv, "env", f"LD_PRELOAD={LIB}", f"USERTCP_IP={SRV_IP}/24",
               "USERTCP_DEV=net_af_packet0,iface=ut-srv0", "USERTCP_DPDK_ARGS=--log-level=*:error --no-huge",
               "USERTCP_STATS=1", "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
               f"{BENCH}/rpc_client", "hold", CLI_IP, "7000", "1"]
        res = subprocess.run(cmd, input=f"churn {churn} {conns}\nquit\n", text=True, stdout=subprocess.PIPE,
                             stderr=log, timeout=600)
        line = " ".join(res.stdout.split())
    finally:
        stop(server, signal.SIGINT, 10)
        log.close()
    return self_costs(out), line, stats_lines(log.name)


def stop(proc, sig, timeout):
    """Sends sig and waits up to timeout seconds, then kills."""
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def stats_lines(path):
    """The USERTCP_STATS lines of a process's log."""
    return [l.strip() for l in open(path, errors="replace") if ": stats: " in l]


def opens_and_bytes(stats, kind="passive"):
    """Passive opens and bytes allocated over the server's life, from its USERTCP_STATS lines."""
    text = " ".join(stats)
    opens = int(re.search(kind + r" opens (\d+)", text).group(1))
    alloc = int(re.search(r"allocated (\d+) B", text).group(1))
    return opens, alloc


def resolve(costs, syms):
    """(object, function) -> cost with the managed code of libusertcp.so named and put in its object."""
    out = {}
    for (ob, fn), v in costs.items():
        if ob == "???" and fn and fn.startswith("0x"):
            name = syms.lookup(int(fn.split("'")[0], 16))
            if name:
                ob, fn = "libusertcp.so", name
        out[(ob, fn)] = out.get((ob, fn), 0) + v
    return out


def addresses(costs):
    return {int(fn.split("'")[0], 16) for (ob, fn) in costs if ob == "???" and fn and fn.startswith("0x")}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", default="4000,20000", help="two RPC counts, comma-separated")
    ap.add_argument("--conns", type=int, default=10)
    ap.add_argument("--size", type=int, default=64, help="request (and echoed response) size in bytes")
    ap.add_argument("--churn", help="two churn durations in seconds, comma-separated: cost per accepted connection")
    ap.add_argument("--client-churn", help="two churn durations: cost per connection of a usertcp rpc_client "
                    "(connect side) against a kernel rpc_server")
    ap.add_argument("--lib", help="the library to measure (default build/valgrind/libusertcp.so; e.g. a scratch build "
                    "of another commit, its .dbg next to it)")
    ap.add_argument("--keep", help="directory to keep the callgrind files in")
    ap.add_argument("--top", type=int, default=30, help="functions listed")
    ap.add_argument("--files", help="analyse existing callgrind files FILE1,FILE2 (no runs)")
    ap.add_argument("--suffix", help="scripts/testnet.sh suffix of the private topology (default cgPID)")
    ap.add_argument("--cache-sim", action="store_true",
                    help="also simulate the caches (valgrind --cache-sim=yes): D1 and last-level misses per RPC, in "
                         "total and by function (what a larger buffer or another pool order costs in memory traffic)")
    ap.add_argument("--memif", nargs="?", const="", default=None, metavar="OPTS",
                    help="topology (a): the server on net_memif (role=server) and the client on usertcp too (role=client, "
                         "ordinary build) instead of af_packet and the kernel; OPTS is appended to both USERTCP_DEV "
                         "(e.g. ,mtu=16000,trusted=1). The socket is in the work directory (--keep)")
    a = ap.parse_args()
    global LIB, CACHE_SIM
    if a.cache_sim:
        if a.client_churn or a.files:
            ap.error("--cache-sim works with the RPC and --churn runs only (not with --client-churn or --files)")
        CACHE_SIM = ["--cache-sim=yes"]
    if a.lib:
        LIB = os.path.abspath(a.lib)
    n1, n2 = (int(x) for x in a.requests.split(","))
    for f in (LIB, f"{BENCH}/rpc_server", f"{BENCH}/rpc_client"):
        if not os.path.exists(f):
            sys.exit(f"callgrind-rpc: {f} is missing: run make, make valgrind and make -C bench/rpc")
    if a.files:
        f1, f2 = a.files.split(",")
        report(a, n1, n2, self_costs(f1), self_costs(f2), "", "", [], None)
        return
    suffix = a.suffix or f"cg{os.getpid() % 100000}"
    work = a.keep or tempfile.mkdtemp(prefix="usertcp-cg-")
    os.makedirs(work, exist_ok=True)
    sh([os.path.join(ROOT, "scripts", "testnet.sh"), "up", "--suffix", suffix])
    try:
        if a.client_churn:
            s1, s2 = a.client_churn.split(",")
            c1, line1, stats1 = run_client_once(suffix, work, 1, a.conns, s1)
            c2, line2, stats2 = run_client_once(suffix, work, 2, a.conns, s2)
            (n1, a1), (n2, a2) = opens_and_bytes(stats1, "active"), opens_and_bytes(stats2, "active")
            print(f"active opens {n1} / {n2}; allocated {a1:,} / {a2:,} B: "
                  f"{(a2 - a1) / max(1, n2 - n1):,.0f} B per connection")
            stats2 = stats1 + stats2
        elif a.churn:
            s1, s2 = a.churn.split(",")
            c1, line1, stats1 = run_once(suffix, work, 1, a.conns, s1, memif=a.memif)
            c2, line2, stats2 = run_once(suffix, work, 2, a.conns, s2, memif=a.memif)
            (n1, a1), (n2, a2) = opens_and_bytes(stats1), opens_and_bytes(stats2)
            print(f"passive opens {n1} / {n2}; allocated {a1:,} / {a2:,} B: "
                  f"{(a2 - a1) / max(1, n2 - n1):,.0f} B per accepted connection")
            stats2 = stats1 + stats2
        else:
            c1, line1, stats1 = run_once(suffix, work, n1, a.conns, size=a.size, memif=a.memif)
            c2, line2, stats2 = run_once(suffix, work, n2, a.conns, size=a.size, memif=a.memif)
    finally:
        subprocess.run([os.path.join(ROOT, "scripts", "testnet.sh"), "down", "--suffix", suffix], capture_output=True)
    if a.cache_sim:
        cache_report(a, n1, n2, work)
    report(a, n1, n2, c1, c2, line1, line2, stats2, work)


def cache_report(a, n1, n2, work):
    """Simulated cache misses per RPC (difference of the two runs), in total and for the functions with the most."""
    unit = "accepted connection" if a.churn else "RPC"
    tag1, tag2 = (1, 2) if a.churn else (n1, n2)
    per = {}
    for ev in CACHE_EVENTS:
        c1 = self_costs(os.path.join(work, f"callgrind.{tag1}"), ev)
        c2 = self_costs(os.path.join(work, f"callgrind.{tag2}"), ev)
        per[ev] = {k: (c2.get(k, 0) - c1.get(k, 0)) / (n2 - n1) for k in set(c1) | set(c2)}
    print(f"simulated cache misses per {unit}: " + ", ".join(f"{ev} {sum(per[ev].values()):,.1f}" for ev in CACHE_EVENTS))
    both = {}
    for ev in CACHE_EVENTS:
        for k, v in per[ev].items():
            both.setdefault(k, [0.0] * len(CACHE_EVENTS))[CACHE_EVENTS.index(ev)] += v
    print(f"by function (top {a.top} by D1 misses): " + " ".join(f"{ev:>7}" for ev in CACHE_EVENTS))
    for (obj, fn), v in sorted(both.items(), key=lambda kv: -(kv[1][0] + kv[1][1]))[:a.top]:
        print("  " + " ".join(f"{x:7.2f}" for x in v) + f"  {os.path.basename(obj)}  {fn}")


def report(a, n1, n2, c1, c2, line1, line2, stats2, work):
    syms = Symbols(LIB + ".dbg", addresses(c1) | addresses(c2))
    c1, c2 = resolve(c1, syms), resolve(c2, syms)
    groups1, groups2 = {}, {}
    for c, g in ((c1, groups1), (c2, groups2)):
        for (obj, _fn), v in c.items():
            g[group(obj)] = g.get(group(obj), 0) + v
    per = {k: (groups2.get(k, 0) - groups1.get(k, 0)) / (n2 - n1) for k in set(groups1) | set(groups2)}
    unit = "accepted connection" if a.churn else "connection" if a.client_churn else "RPC"
    dev = "af_packet" if getattr(a, "memif", None) is None else f"memif{a.memif}, client on usertcp"
    if a.client_churn:
        print(f"callgrind, rpc_client on usertcp (af_packet), short connections (churn {a.client_churn} s) to a kernel "
              f"rpc_server: {n1} and {n2} active opens")
    elif a.churn:
        print(f"callgrind, rpc_server on usertcp ({dev}), short connections (churn {a.churn} s): "
              f"{n1} and {n2} passive opens")
    else:
        print(f"callgrind, rpc_server on usertcp ({dev}), {a.conns} connections, {a.size} B echo RPCs: runs of {n1} and {n2}")
    print(f"  run 1: {line1}")
    print(f"  run 2: {line2}")
    for s in stats2:
        print(f"  {s}")
    print(f"{'object group':40} {'Ir run 1':>14} {'Ir run 2':>14} {'Ir per ' + unit:>11}")
    for k in sorted(per, key=lambda k: -per[k]):
        print(f"{k:40} {groups1.get(k, 0):14,} {groups2.get(k, 0):14,} {per[k]:11,.0f}")
    app = sum(v for k, v in per.items() if k.startswith("application"))
    total = sum(per.values())
    print(f"{'total':40} {sum(groups1.values()):14,} {sum(groups2.values()):14,} {total:11,.0f}")
    print(f"instructions per {unit}, everything but the application: {total - app:,.0f} (application: {app:,.0f})")
    top, funcs = {}, {}
    for c, sign in ((c2, 1), (c1, -1)):
        for (obj, fn), v in c.items():
            top[obj] = top.get(obj, 0) + sign * v
            funcs[(obj, fn)] = funcs.get((obj, fn), 0) + sign * v
    print(f"by object, per {unit}:")
    for obj, v in sorted(top.items(), key=lambda kv: -kv[1])[:8]:
        print(f"  {v / (n2 - n1):9,.0f}  {obj}")
    print(f"by function, per {unit} (top {a.top}):")
    for (obj, fn), v in sorted(funcs.items(), key=lambda kv: -kv[1])[:a.top]:
        print(f"  {v / (n2 - n1):9,.1f}  {os.path.basename(obj)}  {fn}")
    if work and a.keep:
        print(f"callgrind files: {work}")
    elif work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
