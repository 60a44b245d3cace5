#!/usr/bin/env python3
"""C vs managed DPDK packet path, same work, same run, several rounds (docs/benchmarks.md, DPDK section).

  compare.py memif [--rounds N] [--seconds S]     C peer (memif server, cpu 1) + forwarder (memif client, cpu 0):
                                                  the forwarder is build/dpdk-bench fwd (C) or DpdkBench fwd (managed)
  compare.py pair  [--rounds N] [--seconds S]     single process, single thread: both ends of one memif link, the
                                                  peer untimed, the forwarder's step timed (bench.c run_pair)
  compare.py ring  [--rounds N] [--seconds S]     single process, net_ring0 looped onto itself: dpdk-bench loop vs
                                                  DpdkBench loop (and rawloop with --raw)
  compare.py afpacket [--rounds N] [--seconds S]  like memif over a veth pair (created and removed here): C peer on
                                                  one end, forwarder on the other

Each round runs C and managed back to back (the order alternates between rounds). Both print the ns per packet of
timed blocks of 8 full bursts (see bench.c); a round's figure is the median block (p50) and the 10th percentile
(p10). Rates are 1/ns; the ratio is the managed rate over the C rate (1.00 = C speed). Needs root, hugepages
(e.g. echo 512 > /proc/sys/vm/nr_hugepages), `make -f bench/dpdk/bench.mk` and
`dotnet build -c Release bench/dpdk/DpdkBench.csproj` (or --managed PATH, e.g. a NativeAOT publish).
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
C_BIN = os.path.join(ROOT, "build", "dpdk-bench")
GLUE = os.path.join(ROOT, "build", "libusertcp-dpdk.so")
MANAGED = os.path.join(ROOT, "bench", "dpdk", "bin", "Release", "net10.0", "DpdkBench")
BLOCKS = re.compile(r"blocks (\d+), ns per packet min ([\d.]+) p10 ([\d.]+) p50 ([\d.]+)")


def parse(out, what):
    m = BLOCKS.search(out)
    if not m or int(m.group(1)) == 0:
        raise RuntimeError(f"{what}: no timed blocks in output:\n{out}")
    return {"blocks": int(m.group(1)), "min": float(m.group(2)), "p10": float(m.group(3)), "p50": float(m.group(4))}


def run(cmd, timeout):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    if p.returncode != 0 and BLOCKS.search(p.stdout) and "packets forwarded" in p.stdout + "packets forwarded":
        # Measured, then died on the way out: the memif teardown race of DPDK 22.11 (docs/dpdk.md).
        print(f"  (note: {os.path.basename(cmd[0])} {cmd[1]} exited {p.returncode} after printing its results)",
              flush=True)
        return p.stdout
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}:\n{p.stdout}")
    return p.stdout


def forwarder(kind, mode, args, extra):
    if kind == "C":
        return [C_BIN, mode, "--seconds", str(args.seconds), "--cpu", "0"] + extra
    exe = args.aot if kind == "aot" else args.managed
    return [exe, mode, "--seconds", str(args.seconds), "--cpu", "0", "--glue", GLUE] + extra


def with_peer(kind, args, tag, peer_extra, fwd_extra):
    """Starts the C peer, then the forwarder; returns the forwarder's parsed blocks."""
    peer = subprocess.Popen([C_BIN, "peer", "--seconds", str(args.seconds + 6), "--cpu", "1"] + peer_extra,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for attempt in range(5):
            time.sleep(0.5 + attempt)  # the peer's EAL start takes a while on a loaded machine
            try:
                out = run(forwarder(kind, "fwd", args, fwd_extra), args.seconds + 30)
                break
            except RuntimeError as e:
                if "Failed to connect socket" not in str(e) or attempt == 4:
                    raise
    finally:
        try:
            peer.wait(timeout=args.seconds + 10)
        except subprocess.TimeoutExpired:
            peer.terminate()  # our own child, by pid
            peer.wait()
    return parse(out, f"{kind} fwd {tag}")


def one(kind, args, rnd):
    tag = f"{os.getpid()}-{rnd}-{kind}"
    if args.path == "ring":
        mode = "loop" if kind != "raw" else "rawloop"
        return parse(run(forwarder(kind, mode, args, []), args.seconds + 30), f"{kind} loop")
    if args.path == "pair":
        sock = f"/utcmp{tag}.sock"
        return parse(run(forwarder(kind, "rawpair" if kind == "raw" else "pair", args, ["--socket", sock]), args.seconds + 30),
                     f"{kind} pair")
    if args.path == "memif":
        sock = f"/utcmp{tag}.sock"
        return with_peer(kind, args, tag, ["--socket", sock], ["--socket", sock])
    # afpacket: peer on one veth end, forwarder on the other
    return with_peer(kind, args, tag, ["--dev", f"net_af_packet0,iface={args.veth}a"],
                     ["--dev", f"net_af_packet0,iface={args.veth}b"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("path", choices=["memif", "pair", "ring", "afpacket"])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--raw", action="store_true", help="ring, pair: also the managed loop calling the glue directly (rawloop, rawpair)")
    ap.add_argument("--managed", default=MANAGED, help="the managed benchmark executable")
    ap.add_argument("--aot", help="also run this build of the managed benchmark (e.g. build/dpdk-bench-aot/DpdkBench, "
                    "the NativeAOT publish of bench/dpdk/aot) as a third contender")
    ap.add_argument("--veth", default=f"utcmp{os.getpid() % 10000}", help="afpacket: veth pair name prefix")
    args = ap.parse_args()
    kinds = ["C", "managed"] + (["aot"] if args.aot else []) + (["raw"] if args.raw and args.path in ("ring", "pair") else [])
    if args.path == "afpacket":
        subprocess.run(["ip", "link", "add", args.veth + "a", "type", "veth", "peer", "name", args.veth + "b"], check=True)
        for end in "ab":
            subprocess.run(["ip", "link", "set", args.veth + end, "up"], check=True)
    results = {k: [] for k in kinds}
    print(f"# {args.path}, {args.rounds} rounds x {args.seconds} s, load average at start: {os.getloadavg()[0]:.1f}")
    try:
        for rnd in range(args.rounds):
            order = kinds if rnd % 2 == 0 else list(reversed(kinds))
            row = {}
            for k in order:
                row[k] = one(k, args, rnd)
                results[k].append(row[k])
            line = "  ".join(f"{k} min {row[k]['min']:.2f} p10 {row[k]['p10']:.2f} p50 {row[k]['p50']:.2f} ns ({row[k]['blocks']} blocks)"
                             for k in kinds)
            ratio = row["C"]["p50"] / row["managed"]["p50"]
            print(f"round {rnd + 1}: {line}  managed/C rate (p50) {ratio:.3f}", flush=True)
    finally:
        if args.path == "afpacket":
            subprocess.run(["ip", "link", "del", args.veth + "a"])
    print(f"# load average at end: {os.getloadavg()[0]:.1f}")
    for stat in ("min", "p10", "p50"):
        med = {k: statistics.median(r[stat] for r in results[k]) for k in kinds}
        summary = ", ".join(f"{k} {med[k]:.2f} ns ({1e3 / med[k]:.1f} Mpps)" for k in kinds)
        print(f"median of round {stat}: {summary}")
        for k in kinds[1:]:
            ratios = [c[stat] / m[stat] for c, m in zip(results["C"], results[k])]
            print(f"  {k}/C rate {med['C'] / med[k]:.3f}; per-round ratios {min(ratios):.3f}..{max(ratios):.3f} "
                  f"(median {statistics.median(ratios):.3f})")


if __name__ == "__main__":
    sys.exit(main())
