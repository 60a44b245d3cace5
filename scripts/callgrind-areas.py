#!/usr/bin/env python3
"""Instructions per 64 B RPC split by source area, from the two callgrind files scripts/callgrind-rpc.py keeps.

Usage: scripts/callgrind-rpc.py --keep DIR && scripts/callgrind-areas.py DIR [--lib build/valgrind/libusertcp.so]
           [--requests 4000,20000]

Names the managed functions of libusertcp.so as callgrind-rpc.py does and sums their self cost per RPC by namespace:
stack/Tcp, stack/Wire, stack/Iface, stack/Phy, stack/Dpdk, interpose, the copies (SpanHelpers.Memmove), locks and
threading (Monitor, Lock, spin waits: they vary from run to run with thread interleaving under valgrind), the rest of
the runtime. The last line is the TCP/IP stack proper (Tcp + Wire + Iface + Phy), the part that does not depend on
how the progress thread and the application thread happened to contend in a run.
"""
import argparse
import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("cg", os.path.join(ROOT, "scripts", "callgrind-rpc.py"))
cg = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cg)

AREAS = (("UserTcp_Stack_UserTcp_Stack_Tcp_", "stack/Tcp"), ("UserTcp_Stack_UserTcp_Stack_Wire_", "stack/Wire"),
         ("UserTcp_Stack_UserTcp_Stack_Iface_", "stack/Iface"), ("UserTcp_Stack_UserTcp_Stack_Phy_", "stack/Phy"),
         ("UserTcp_Stack_UserTcp_Stack_Dpdk_", "stack/Dpdk"), ("UserTcp_Stack_", "stack, other"),
         ("UserTcp_Interpose_", "interpose"), ("S_P_CoreLib_System_SpanHelpers__Memmove", "copies (Memmove)"),
         ("S_P_CoreLib_System_Threading", "locks and threading"), ("S_P_CoreLib_", "runtime, other"))


def area(fn):
    for prefix, name in AREAS:
        if fn and fn.startswith(prefix):
            return name
    return "libusertcp.so, other"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", help="the --keep directory of scripts/callgrind-rpc.py")
    ap.add_argument("--lib", default=os.path.join(ROOT, "build", "valgrind", "libusertcp.so"))
    ap.add_argument("--requests", default="4000,20000")
    ap.add_argument("--per", type=float, help="divide by this instead of the difference of --requests (churn: "
                    "the difference of passive opens; the files are callgrind.1 and callgrind.2, --requests 1,2)")
    a = ap.parse_args()
    n1, n2 = (int(x) for x in a.requests.split(","))
    c1 = cg.self_costs(os.path.join(a.dir, f"callgrind.{n1}"))
    c2 = cg.self_costs(os.path.join(a.dir, f"callgrind.{n2}"))
    syms = cg.Symbols(a.lib + ".dbg", cg.addresses(c1) | cg.addresses(c2))
    c1, c2 = cg.resolve(c1, syms), cg.resolve(c2, syms)
    per = {}
    for key in set(c1) | set(c2):
        ob, fn = key
        if ob != "libusertcp.so":
            continue
        name = area(fn)
        per[name] = per.get(name, 0) + (c2.get(key, 0) - c1.get(key, 0)) / (a.per or (n2 - n1))
    print(f"libusertcp.so per RPC by area ({a.dir}):")
    for name, v in sorted(per.items(), key=lambda x: -x[1]):
        print(f"  {v:8,.0f}  {name}")
    stack = sum(v for k, v in per.items() if k in ("stack/Tcp", "stack/Wire", "stack/Iface", "stack/Phy"))
    print(f"  {stack:8,.0f}  = TCP/IP stack (stack/Tcp + Wire + Iface + Phy)")


if __name__ == "__main__":
    main()
