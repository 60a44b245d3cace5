#!/usr/bin/env python3
"""Calls and inclusive cost per unit (RPC or connection) of every caller -> callee edge, from the two callgrind files
scripts/callgrind-rpc.py keeps: (run 2 - run 1) / PER, the managed functions of libusertcp.so named as
callgrind-rpc.py names them.

Usage: scripts/callgrind-calls.py DIR/callgrind.1 DIR/callgrind.2 PER LIB [FILTER]
  PER: the difference of RPCs (16000) or of opens (the churn runs' first line); LIB: the library measured
  (build/valgrind/libusertcp.so, its .dbg next to it); FILTER: only edges with this text in the caller or the callee.
Output: calls per unit, inclusive instructions per unit, caller -> callee (e.g. `main -> close` is what one close()
costs per connection, everything below it included).
"""
import importlib.util, re, sys, os
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("cg", os.path.join(ROOT, "scripts", "callgrind-rpc.py"))
cg = importlib.util.module_from_spec(spec); spec.loader.exec_module(cg)

INCL = {}
def calls(path):
    fnames = {}; out = {}; cfn = None; fn = None; incl_next = None
    with open(path, errors="replace") as f:
        for line in f:
            m = re.match(r"(c?fn)=\((\d+)\)(?: (.*))?", line.strip())
            if m:
                if m.group(3): fnames[m.group(2)] = m.group(3)
                if m.group(1) == "cfn": cfn = fnames.get(m.group(2), m.group(2))
                else: fn = fnames.get(m.group(2), m.group(2))
                continue
            if line.startswith("calls="):
                n = int(line.split("=")[1].split()[0])
                out[(fn, cfn)] = out.get((fn, cfn), 0) + n
                incl_next = (fn, cfn)
                continue
            if incl_next is not None:
                parts = line.split()
                INCL[(incl_next, path)] = INCL.get((incl_next, path), 0) + int(parts[-1])
                incl_next = None
    return out

f1, f2, per, lib = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
c1, c2 = calls(f1), calls(f2)
addrs = set()
for k in list(c1) + list(c2):
    for x in k:
        if x and x.startswith("0x"): addrs.add(int(x.split("'")[0], 16))
syms = cg.Symbols(lib + ".dbg", addrs)
def nm(x):
    if x and x.startswith("0x"):
        try: return syms.lookup(int(x.split("'")[0], 16)) or x
        except Exception: return x
    return x
tot = {}
for k in set(c1) | set(c2):
    d = (c2.get(k, 0) - c1.get(k, 0)) / per
    if abs(d) < 0.05: continue
    inc = (INCL.get((k, f2), 0) - INCL.get((k, f1), 0)) / per
    tot[(nm(k[0]), nm(k[1]))] = (d, inc)
filt = sys.argv[5] if len(sys.argv) > 5 else ""
for (a, b), (d, inc) in sorted(tot.items(), key=lambda x: -x[1][0]):
    if filt and filt not in (a or "") and filt not in (b or ""): continue
    print(f"{d:8.2f} {inc:9.0f}  {a} -> {b}")
