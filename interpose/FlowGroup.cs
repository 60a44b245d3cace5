using System;
using System.Runtime.InteropServices;
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
/// Layout (bytes): [0] magic, [8] family token, [16] member pids (64 x u32); [1024] listeners held by processes
/// without a stack (384 x u64 pid &lt;&lt; 32 | port, written by cshim/group.c: nginx's master);
/// [4096] listeners per port (65536 x i32); [4096 + 256 KiB] claims: 65536 buckets x 4 ways of u64
/// (tag &lt;&lt; 32 | owner pid; 0 = free). A claim whose owner died is free for the taking. After the claims: the
/// hand-off area for connections a closing listener passes on (FlowGroup.HandOff.cs), whose entries can own claims.
///
/// A flow's claim may live in either of two windows of 4 buckets (16 slots, 128 contiguous bytes each) whose homes
/// come from independent bits of its hash; a new claim goes to the emptier window. So a bucket that happens to draw
/// more than 4 of the live flows does not turn a SYN away: with claims confined to one 4-way bucket, 10,000
/// connections in 16,384 buckets left ~6 buckets over-full, and those SYNs (and every retransmission) went unanswered
/// for as long as the other connections lived. Now the first refusal comes at about 78 % of the 262,144 slots; a claim
/// that finds no room is refused with <see cref="FlowOwner.NoRoom"/>, a counted drop (the peer retries).
///
/// Two processes claiming the same new flow at once normally pick the same first free slot, and the compare-and-swap
/// picks the winner. If a slot frees between their two scans they can pick different slots; each re-reads the window
/// after its insert and the claim further along the window gives way to the earlier one (a race of microseconds,
/// only on a SYN seen by both while a neighbouring flow closes).
/// </summary>
internal sealed unsafe partial class FlowGroup : IFlowOwnership
{
    private const int MaxMembers = 64, Buckets = 65536, Ways = 4, Window = 4, Slots = 2 * Window * Ways;
    /// <summary>Bytes of the shared area (cshim/group.h UT_GROUP_BYTES must match).</summary>
    internal const int AreaBytes = ClaimsEnd + HandOffHeaderBytes + HandOffEntries * HandOffEntryBytes;
    private const int ClaimsEnd = 4096 + 65536 * 4 + Buckets * Ways * 8;
    internal const ulong Magic = 0x7573657274637031UL;
    private readonly byte* _base;
    private readonly int* _members;
    private readonly int* _listeners;
    private readonly ulong* _claims;
    private readonly int _pid;
    private readonly Func<int, bool> _alive;
    private readonly Func<long> _clock;
    // Claims of connections that ended, kept for ReleaseDelayUs before they are given up (see Release): a ring of
    // (slot, claim value, the slot's generation then, due time), oldest first. A claim taken again meanwhile (a new
    // connection on the same tuple, or a hand-off) moves its slot's generation on, so the old entry leaves it alone.
    private PendingRelease[] _pending = new PendingRelease[256];
    private int _pendingHead, _pendingCount;
    // Per claim slot (process-private): bumped whenever this process takes a claim it already held.
    private readonly ushort* _gen;

    private struct PendingRelease
    {
        public int Slot;
        public ushort Gen;
        public ulong Value;
        public long DueUs;
    }

    /// <summary>How long the claim of an ended connection is kept (µs).</summary>
    internal long ReleaseDelayUs = 1_000_000;
    private bool _leader;
    private long _leaderCheckedUs = long.MinValue / 2; // far in the past, without overflowing "now - checked"

    private FlowGroup(byte* area, int pid, Func<int, bool> alive, Func<long> clock)
    {
        _clock = clock;
        _base = area;
        _members = (int*)(area + 16);
        _listeners = (int*)(area + 4096);
        _claims = (ulong*)(area + 4096 + 65536 * 4);
        _pid = pid;
        _alive = alive;
        _handOff = area + ClaimsEnd;
        // Zeroed pages from the kernel: only the pages of slots this process re-claims are ever touched.
        _gen = (ushort*)NativeMemory.AllocZeroed((nuint)(Buckets * Ways * sizeof(ushort)));
    }

    ~FlowGroup() => NativeMemory.Free(_gen);

    internal ulong Token => *(ulong*)(_base + 8);

    /// <summary>Joins the family's group, or returns null when there is no shared area (or no room).</summary>
    internal static FlowGroup? Join(byte* area)
    {
        FlowGroup? g = Join(area, Environment.ProcessId, pid => Kernel.PidAlive(pid) != 0, () => Engine.NowUs);
        if (g is not null) g.Log = Kernel.Log;
        return g;
    }

    /// <summary>Joins as <paramref name="pid"/>, with <paramref name="alive"/> telling whether a member still lives
    /// (tests run several members in one process).</summary>
    internal static FlowGroup? Join(byte* area, int pid, Func<int, bool> alive, Func<long> clock)
    {
        if (area == null || *(ulong*)area != Magic) return null;
        var g = new FlowGroup(area, pid, alive, clock);
        for (int i = 0; i < MaxMembers; i++)
        {
            int cur = Volatile.Read(ref g._members[i]);
            if (cur != 0 && alive(cur)) continue;
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
            long now = _clock();
            ReleaseDue(now);
            if (now - _leaderCheckedUs < 1_000_000) return _leader;
            _leaderCheckedUs = now;
            _leader = false;
            for (int i = 0; i < MaxMembers; i++)
            {
                int pid = Volatile.Read(ref _members[i]);
                if (pid == 0 || !_alive(pid)) continue;
                _leader = pid == _pid;
                break;
            }
            return _leader;
        }
    }

    /// <summary>Some process of the family listens on <paramref name="port"/>: a started one (its stack counts it), or
    /// one that holds the listening socket without a stack (nginx's master while its workers restart on a reload: the
    /// old ones closed their listeners, the new ones have not started yet). A SYN then waits for the peer's retry
    /// instead of being refused.</summary>
    public bool GroupListens(ushort port)
    {
        if (Volatile.Read(ref _listeners[port]) > 0) return true;
        ulong* held = (ulong*)(_base + 1024);
        for (int i = 0; i < 384; i++)
        {
            ulong v = Volatile.Read(ref held[i]);
            if (v != 0 && (ushort)v == port && _alive((int)(v >> 32))) return true;
        }
        return false;
    }

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

    /// <summary>The flow's two windows: <see cref="Window"/> buckets from each of two homes taken from independent
    /// bits of the hash (the tag is a third part). Slot <paramref name="i"/> runs over both, 0 .. Slots - 1.</summary>
    private ulong* Slot(ulong h, int i) => _claims + SlotIndex(h, i);

    /// <summary>The index in the claim table of the flow's slot <paramref name="i"/>.</summary>
    private static int SlotIndex(ulong h, int i)
    {
        int home = (int)(i < Window * Ways ? h : h >> 16) & (Buckets - 1);
        i &= Window * Ways - 1;
        return ((home + i / Ways) & (Buckets - 1)) * Ways + (i & (Ways - 1));
    }

    /// <summary>The flow's first slot holding <paramref name="value"/> (whole claim value), or -1.</summary>
    private int FindSlot(ulong h, ulong value)
    {
        int home0 = (int)h & (Buckets - 1), home1 = (int)(h >> 16) & (Buckets - 1);
        for (int b = 0; b < 2 * Window; b++)
        {
            ulong* bucket = _claims + ((b < Window ? home0 + b : home1 + b - Window) & (Buckets - 1)) * Ways;
            for (int k = 0; k < Ways; k++)
                if (Volatile.Read(ref bucket[k]) == value) return b * Ways + k;
        }
        return -1;
    }

    public FlowOwner Claim(in TcpTuple tuple)
    {
        ulong h = Hash(tuple);
        ulong tag = (h >> 32) | 1;
        ulong mine = Mine(h);
        int home0 = (int)h & (Buckets - 1), home1 = (int)(h >> 16) & (Buckets - 1);
        for (int attempt = 0; attempt < 8; attempt++)
        {
            // One pass over both windows: the flow's claim (the first slot with its tag), else the first free slot
            // and the free count of each window; a new claim goes to the emptier window. Most buckets are empty: one
            // test covers a bucket's four ways.
            int free0 = -1, free1 = -1, n0 = 0, n1 = 0, found = -1;
            ulong v = 0;
            for (int w = 0; w < 2 && found < 0; w++)
            {
                int home = w == 0 ? home0 : home1, first = -1, n = 0;
                for (int b = 0; b < Window; b++)
                {
                    ulong* bucket = _claims + ((home + b) & (Buckets - 1)) * Ways;
                    if ((Volatile.Read(ref bucket[0]) | Volatile.Read(ref bucket[1]) | Volatile.Read(ref bucket[2])
                         | Volatile.Read(ref bucket[3])) == 0)
                    {
                        if (n == 0) first = (w * Window + b) * Ways;
                        n += Ways;
                        continue;
                    }
                    for (int k = 0; k < Ways; k++)
                    {
                        v = Volatile.Read(ref bucket[k]);
                        if (v == 0) { if (n++ == 0) first = (w * Window + b) * Ways + k; }
                        else if (v >> 32 == tag) { found = (w * Window + b) * Ways + k; break; }
                    }
                    if (found >= 0) break;
                }
                if (w == 0) { free0 = first; n0 = n; }
                else { free1 = first; n1 = n; }
            }
            if (found >= 0)
            {
                uint owner = (uint)v;
                if (owner == (uint)_pid)
                {
                    // Ours still: an ended connection's claim waiting for its delayed release, now a new connection on
                    // the same tuple; the pending release must leave it alone.
                    KeepFromDelayedRelease(h, found);
                    return FlowOwner.Mine;
                }
                if (OwnerAlive(owner)) return FlowOwner.Other;
                // The flow's claim outlived its owner: take it over in place.
                if (Interlocked.CompareExchange(ref *Slot(h, found), mine, v) == v) return Confirm(h, found, tag);
                continue;
            }
            int free = n1 > n0 ? free1 : free0;
            if (free < 0)
            {
                // Both windows full: reclaim one slot whose owner died, else refuse this SYN (the peer retries).
                bool reclaimed = false;
                for (int i = 0; i < Slots && !reclaimed; i++)
                {
                    ulong w = Volatile.Read(ref *Slot(h, i));
                    reclaimed = w != 0 && !OwnerAlive((uint)w) && Interlocked.CompareExchange(ref *Slot(h, i), 0, w) == w;
                }
                if (!reclaimed) return FlowOwner.NoRoom;
                continue;
            }
            if (Interlocked.CompareExchange(ref *Slot(h, free), mine, 0) == 0) return Confirm(h, free, tag);
        }
        return FlowOwner.NoRoom;
    }

    /// <summary>After inserting our claim at <paramref name="at"/>: if a live relative holds the same flow at an
    /// earlier slot (it inserted concurrently where a slot freed meanwhile), it wins and ours is withdrawn.</summary>
    private FlowOwner Confirm(ulong h, int at, ulong tag)
    {
        for (int i = 0; i < at; i++)
        {
            ulong v = Volatile.Read(ref *Slot(h, i));
            if (v == 0 || v >> 32 != tag || (int)(uint)v == _pid || !OwnerAlive((uint)v)) continue;
            Interlocked.CompareExchange(ref *Slot(h, at), 0, Mine(h));
            return FlowOwner.Other;
        }
        return FlowOwner.Mine;
    }

    public FlowOwner Lookup(in TcpTuple tuple)
    {
        if (_pendingCount > 0) ReleaseDue(_clock());
        ulong h = Hash(tuple);
        ulong tag = (h >> 32) | 1;
        int home0 = (int)h & (Buckets - 1), home1 = (int)(h >> 16) & (Buckets - 1);
        for (int b = 0; b < 2 * Window; b++)
        {
            ulong* bucket = _claims + ((b < Window ? home0 + b : home1 + b - Window) & (Buckets - 1)) * Ways;
            for (int k = 0; k < Ways; k++)
            {
                ulong v = Volatile.Read(ref bucket[k]);
                if (v == 0 || v >> 32 != tag) continue;
                uint owner = (uint)v;
                if (owner == (uint)_pid) return FlowOwner.Mine;
                return OwnerAlive(owner) ? FlowOwner.Other : FlowOwner.Nobody;
            }
        }
        return FlowOwner.Nobody;
    }

    /// <summary>
    /// A connection of ours ended. Its claim is kept for <see cref="ReleaseDelayUs"/> before it is given up: every
    /// process receives every frame, and one that polls late may still hold the flow's SYN; claimed at once by that
    /// process, the ended flow would be answered again (a second SYN-ACK, then resets against whatever the peer does
    /// with the tuple next). Seen under load during nginx reloads. Meanwhile a new SYN on the tuple comes back to us.
    /// </summary>
    public void Release(in TcpTuple tuple)
    {
        long now = _clock();
        ReleaseDue(now);
        ulong h = Hash(tuple);
        ulong mine = Mine(h);
        int i = FindSlot(h, mine);
        if (i < 0) return; // not ours (any more)
        ulong* slot = Slot(h, i);
        if (ReleaseDelayUs <= 0)
        {
            Interlocked.CompareExchange(ref *slot, 0, mine);
            return;
        }
        if (_pendingCount == _pending.Length)
        {
            // Grow the ring, oldest first (only while more ended connections wait than ever before).
            var grown = new PendingRelease[_pending.Length * 2];
            for (int j = 0; j < _pendingCount; j++) grown[j] = _pending[(_pendingHead + j) & (_pending.Length - 1)];
            _pending = grown;
            _pendingHead = 0;
        }
        int index = (int)(slot - _claims);
        _pending[(_pendingHead + _pendingCount++) & (_pending.Length - 1)] =
            new PendingRelease { Slot = index, Gen = _gen[index], Value = mine, DueUs = now + ReleaseDelayUs };
    }

    /// <summary>Gives up the claims whose delay has passed (called from the group's frequent entry points).</summary>
    private void ReleaseDue(long now)
    {
        while (_pendingCount > 0)
        {
            ref PendingRelease p = ref _pending[_pendingHead];
            if (p.DueUs > now) return;
            // Not if the claim was taken again since (its slot's generation moved): it belongs to a new connection.
            if (_gen[p.Slot] == p.Gen) Interlocked.CompareExchange(ref _claims[p.Slot], 0, p.Value);
            _pendingHead = (_pendingHead + 1) & (_pending.Length - 1);
            _pendingCount--;
        }
    }

    /// <summary>Gives up this process's claim of <paramref name="tuple"/> now, and any delayed release of it.</summary>
    private void ReleaseNow(in TcpTuple tuple)
    {
        ulong h = Hash(tuple);
        ulong mine = Mine(h);
        int i = FindSlot(h, mine);
        if (i < 0) return;
        KeepFromDelayedRelease(h, i);
        Interlocked.CompareExchange(ref *Slot(h, i), 0, mine);
    }

    /// <summary>A claim of ours at slot <paramref name="i"/> changes hands (hand-off): a delayed release of it, if
    /// one waits, must leave the slot alone.</summary>
    private void KeepFromDelayedRelease(ulong h, int i) => _gen[SlotIndex(h, i)]++;

    /// <summary>This process's claim value for a flow of hash <paramref name="h"/>: the flow's tag (the hash's high
    /// 32 bits, never 0) and our pid.</summary>
    private ulong Mine(ulong h) => ((h >> 32) | 1) << 32 | (uint)_pid;
}
