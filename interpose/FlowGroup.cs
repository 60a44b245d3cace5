using System;
using System.Threading;
using UserTcp.Interpose.Native;
using UserTcp.Stack.Tcp;

namespace UserTcp.Interpose;

/// <summary>
/// Flows shared out between the processes of one family (a process and the children it forks, e.g. nginx's workers)
/// that run the user-level stack on the same device. On net_af_packet every process receives every frame, so for each
/// flow exactly one process must answer: the first to claim it. State lives in memory the C shim mapped shared before
/// the first fork (cshim/group.c); every change is one compare-and-swap, and only segments that match no local
/// connection ever look at it (a SYN, or a stray), so the data path of established connections never touches it.
///
/// Layout (bytes): [0] magic, [8] family token, [16] member pids (64 x u32);
/// [4096] listeners per port (65536 x i32); [4096 + 256 KiB] claims: 16384 buckets x 4 ways of u64, a flow probing
/// two neighbouring buckets
/// (tag &lt;&lt; 32 | owner pid; 0 = free). A claim whose owner died is free for the taking.
/// </summary>
internal sealed unsafe class FlowGroup : IFlowOwnership
{
    private const int MaxMembers = 64, Buckets = 16384, Ways = 4;
    private const ulong Magic = 0x7573657274637031UL;
    private readonly byte* _base;
    private readonly int* _members;
    private readonly int* _listeners;
    private readonly ulong* _claims;
    private readonly int _pid = Environment.ProcessId;
    private bool _leader;
    private long _leaderCheckedUs = long.MinValue / 2; // far in the past, without overflowing "now - checked"

    private FlowGroup(byte* area)
    {
        _base = area;
        _members = (int*)(area + 16);
        _listeners = (int*)(area + 4096);
        _claims = (ulong*)(area + 4096 + 65536 * 4);
    }

    internal ulong Token => *(ulong*)(_base + 8);

    /// <summary>Joins the family's group, or returns null when there is no shared area (or no room).</summary>
    internal static FlowGroup? Join(byte* area)
    {
        if (area == null || *(ulong*)area != Magic) return null;
        var g = new FlowGroup(area);
        for (int i = 0; i < MaxMembers; i++)
        {
            int cur = Volatile.Read(ref g._members[i]);
            if (cur != 0 && Kernel.PidAlive(cur) != 0) continue;
            if (Interlocked.CompareExchange(ref g._members[i], g._pid, cur) == cur) return g;
        }
        Kernel.Log(1, "the process group is full (64 members); this process does not share its device");
        return null;
    }

    /// <summary>Gives up membership (this process will not run a stack on the device after all).</summary>
    internal void Leave()
    {
        for (int i = 0; i < MaxMembers; i++)
            if (Interlocked.CompareExchange(ref _members[i], 0, _pid) == _pid) return;
    }

    public bool IsLeader
    {
        get
        {
            long now = Engine.NowUs;
            if (now - _leaderCheckedUs < 1_000_000) return _leader;
            _leaderCheckedUs = now;
            _leader = false;
            for (int i = 0; i < MaxMembers; i++)
            {
                int pid = Volatile.Read(ref _members[i]);
                if (pid == 0 || Kernel.PidAlive(pid) == 0) continue;
                _leader = pid == _pid;
                break;
            }
            return _leader;
        }
    }

    public bool GroupListens(ushort port) => Volatile.Read(ref _listeners[port]) > 0;

    internal void ListenerAdded(ushort port) => Interlocked.Increment(ref _listeners[port]);
    internal void ListenerRemoved(ushort port) => Interlocked.Decrement(ref _listeners[port]);

    private static ulong Hash(in TcpTuple t)
    {
        // splitmix64 over the parts that differ between flows (one local address per interface).
        ulong x = (ulong)t.RemoteAddress.Value << 32 | (ulong)t.RemotePort << 16 | t.LocalPort;
        x += 0x9E3779B97F4A7C15UL;
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9UL;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBUL;
        return x ^ (x >> 31);
    }

    /// <summary>A flow's claim lives in one of two neighbouring buckets (8 ways): with one bucket of 4, about one
    /// flow in 1,500 found its bucket full at 10,000 flows and its SYNs went unanswered for good.</summary>
    private ulong* Slots(ulong h) => _claims + (int)(h & (Buckets - 2)) * Ways;
    private const int Probe = 2 * Ways;

    public FlowOwner Claim(in TcpTuple tuple)
    {
        ulong h = Hash(tuple);
        ulong* bucket = Slots(h);
        ulong tag = (h >> 32) | 1;
        ulong mine = tag << 32 | (uint)_pid;
        for (int attempt = 0; attempt < 8; attempt++)
        {
            int free = -1;
            for (int w = 0; w < Probe; w++)
            {
                ulong v = Volatile.Read(ref bucket[w]);
                if (v == 0) { if (free < 0) free = w; continue; }
                if (v >> 32 != tag) continue;
                int owner = (int)(uint)v;
                if (owner == _pid) return FlowOwner.Mine;
                if (Kernel.PidAlive(owner) != 0) return FlowOwner.Other;
                if (Interlocked.CompareExchange(ref bucket[w], mine, v) == v) return FlowOwner.Mine;
                goto retry;
            }
            if (free < 0)
            {
                // A full bucket: reclaim a slot whose owner died, else give up on this SYN (the peer retries).
                for (int w = 0; w < Probe; w++)
                {
                    ulong v = Volatile.Read(ref bucket[w]);
                    if (Kernel.PidAlive((int)(uint)v) == 0 && Interlocked.CompareExchange(ref bucket[w], 0, v) == v) goto retry;
                }
                return FlowOwner.Nobody;
            }
            if (Interlocked.CompareExchange(ref bucket[free], mine, 0) == 0) return FlowOwner.Mine;
        retry:;
        }
        return FlowOwner.Nobody;
    }

    public FlowOwner Lookup(in TcpTuple tuple)
    {
        ulong h = Hash(tuple);
        ulong* bucket = Slots(h);
        ulong tag = (h >> 32) | 1;
        for (int w = 0; w < Probe; w++)
        {
            ulong v = Volatile.Read(ref bucket[w]);
            if (v == 0 || v >> 32 != tag) continue;
            int owner = (int)(uint)v;
            if (owner == _pid) return FlowOwner.Mine;
            return Kernel.PidAlive(owner) != 0 ? FlowOwner.Other : FlowOwner.Nobody;
        }
        return FlowOwner.Nobody;
    }

    public void Release(in TcpTuple tuple)
    {
        ulong h = Hash(tuple);
        ulong* bucket = Slots(h);
        ulong mine = ((h >> 32) | 1) << 32 | (uint)_pid;
        for (int w = 0; w < Probe; w++)
            if (Interlocked.CompareExchange(ref bucket[w], 0, mine) == mine) return;
    }
}
