using System;
using System.Runtime.CompilerServices;
using System.Threading;
using UserTcp.Interpose.Native;
using UserTcp.Stack.Tcp;

namespace UserTcp.Interpose;

/// <summary>
/// Hand-off of unaccepted connections between the processes of a group (docs/architecture.md, "A closing listener's
/// queue"). With the kernel, a listening socket inherited by several processes has one accept queue: one process
/// closing its descriptor leaves the queued connections to the others. Here every process has its own stack and its
/// own queue, so when a process closes its last descriptor of a listener that another process of the group still
/// holds (nginx's old worker on reload: the master and the new workers hold it), each connection still in its queue
/// (established, not accepted) or half-open (SYN-RECEIVED) is exported into an entry of the shared hand-off area and
/// its flow claim is moved to that entry (a marker owner, see <see cref="Marker"/>); the first process that polls
/// with a listener open on that port imports it into its own accept queue and takes the claim. While an entry
/// waits, every process drops the flow's segments (the peer retransmits). An entry lives while some process of the
/// group still holds a listener on the port (as the kernel keeps a queue until its socket's last descriptor closes),
/// at most <see cref="HandOffLimitUs"/>; after that the marker is dead, the flow belongs to nobody, and the group's
/// leader answers the peer's next segment with a reset, as the close would have done.
///
/// Area (after the claims): header [0] pending entries (i32), [4] entries ever used (high water, i32); then
/// <see cref="HandOffEntries"/> entries of <see cref="HandOffEntryBytes"/>: [0] state (i32: 0 free, 1 being written,
/// 2 ready, 3 being taken), [4] generation (i32), [8] pid of the exporter or taker (i32), [16] export time (µs, i64,
/// the monotonic clock every process shares), [24] the marker claim value (u64), [32] <see cref="TcpTransferState"/>,
/// [256] the unread bytes (at most <see cref="HandOffDataBytes"/>; a connection with more is reset as before).
/// </summary>
internal sealed unsafe partial class FlowGroup : ITcpHandOffSink
{
    internal const int HandOffEntries = 256, HandOffEntryBytes = 4096, HandOffHeaderBytes = 4096;
    internal const int HandOffDataBytes = HandOffEntryBytes - 256;
    private const int Free = 0, Writing = 1, Ready = 2, Taking = 3;
    private const uint MarkerBit = 0x8000_0000;
    private readonly byte* _handOff;
    private long _lastAdoptUs = long.MinValue / 2;
    /// <summary>How long an exported connection may wait for an adopter at most (µs).</summary>
    internal long HandOffLimitUs = 10_000_000;
    /// <summary>How long an exported connection waits when only processes without a stack hold its port (µs): then
    /// the next process to poll resets it.</summary>
    internal long NoAdopterUs = 2_000_000;
    /// <summary>Connections this process exported, adopted, and gave up (expired or not importable), for the log.</summary>
    internal long HandedOff, Adopted, HandOffsExpired;
    /// <summary>The log (the process's own, Kernel.Log, when joined for real; none in tests).</summary>
    internal Action<int, string>? Log;

    static FlowGroup()
    {
        if (sizeof(TcpTransferState) > 224) throw new InvalidOperationException("TcpTransferState outgrew its hand-off slot");
    }

    private int* Pending => (int*)_handOff;
    private int* HighWater => (int*)(_handOff + 4);
    private byte* Entry(int i) => _handOff + HandOffHeaderBytes + (long)i * HandOffEntryBytes;
    private static ref int StateOf(byte* e) => ref *(int*)e;
    private static ref int GenOf(byte* e) => ref *(int*)(e + 4);
    private static ref int PidOf(byte* e) => ref *(int*)(e + 8);
    private static ref long TimeOf(byte* e) => ref *(long*)(e + 16);
    private static ref ulong MarkerOf(byte* e) => ref *(ulong*)(e + 24);
    private static ref TcpTransferState TransferOf(byte* e) => ref *(TcpTransferState*)(e + 32);
    private static byte* DataOf(byte* e) => e + 256;

    /// <summary>True while some exported connection waits somewhere in the group (one shared read per poll).</summary>
    internal bool HandOffPending => Volatile.Read(ref *Pending) > 0;

    /// <summary>A marker owner: the high bit, a 15-bit generation and the entry's index, so a claim left behind by an
    /// entry that was since reused never looks alive.</summary>
    private static uint Marker(int index, int gen) => MarkerBit | (uint)(gen & 0x7FFF) << 16 | (uint)index;

    /// <summary>Whether a claim's owner still holds it: a live process, or a hand-off entry still waiting.</summary>
    private bool OwnerAlive(uint owner)
    {
        if ((owner & MarkerBit) == 0) return _alive((int)owner);
        int index = (int)(owner & 0xFFFF);
        if (index >= HandOffEntries) return false;
        byte* e = Entry(index);
        if ((Volatile.Read(ref GenOf(e)) & 0x7FFF) != (owner >> 16 & 0x7FFF)) return false;
        return Volatile.Read(ref StateOf(e)) switch
        {
            Writing or Taking => _alive(Volatile.Read(ref PidOf(e))),
            Ready => EntryValid(e, _clock()),
            _ => false,
        };
    }

    private bool EntryValid(byte* e, long now) =>
        now - Volatile.Read(ref TimeOf(e)) < HandOffLimitUs && GroupListens(TransferOf(e).LocalPort);

    /// <summary>Some other process of the group holds a listener on <paramref name="port"/> (a started one, or one
    /// without a stack); call after this process's own listener was counted out.</summary>
    internal bool OthersListen(ushort port)
    {
        if (Volatile.Read(ref _listeners[port]) > 0) return true;
        ulong* held = (ulong*)(_base + 1024);
        for (int i = 0; i < 384; i++)
        {
            ulong v = Volatile.Read(ref held[i]);
            if (v != 0 && (ushort)v == port && (int)(v >> 32) != _pid && _alive((int)(v >> 32))) return true;
        }
        return false;
    }

    /// <summary>This process's stack listener on <paramref name="port"/> is about to close (caller holds the stack's
    /// lock and has already counted the listener out): if another process still holds the port, its unaccepted
    /// connections move to the hand-off area instead of being reset. Returns how many moved.</summary>
    internal int ExportOnClose(TcpLayer layer, ushort port, long nowUs)
    {
        if (!OthersListen(port)) return 0;
        int n = layer.ExportChildren(port, this, nowUs);
        HandedOff += n;
        if (n > 0) Log?.Invoke(2, $"listener on port {port} closed: {n} unaccepted connections handed to the group");
        return n;
    }

    public bool Offer(in TcpTransferState state, ReadOnlySpan<byte> first, ReadOnlySpan<byte> second)
    {
        int length = first.Length + second.Length;
        if (length > HandOffDataBytes || length != state.DataLength) return false;
        ulong h = Hash(state.Tuple);
        ulong tag = (h >> 32) | 1;
        ulong mine = tag << 32 | (uint)_pid;
        int slot = FindSlot(h, mine);
        if (slot < 0) return false;
        KeepFromDelayedRelease(h, slot); // a delayed release must not drop the marker (or a later claim) later
        for (int i = 0; i < HandOffEntries; i++)
        {
            byte* e = Entry(i);
            int s = Volatile.Read(ref StateOf(e));
            if (s != Free && !(s == Writing && !_alive(Volatile.Read(ref PidOf(e))))) continue;
            if (Interlocked.CompareExchange(ref StateOf(e), Writing, s) != s) continue;
            int gen = (Volatile.Read(ref GenOf(e)) + 1) & 0x7FFF;
            Volatile.Write(ref GenOf(e), gen);
            Volatile.Write(ref PidOf(e), _pid);
            TimeOf(e) = _clock();
            ulong marker = tag << 32 | Marker(i, gen);
            MarkerOf(e) = marker;
            TransferOf(e) = state;
            first.CopyTo(new Span<byte>(DataOf(e), HandOffDataBytes));
            second.CopyTo(new Span<byte>(DataOf(e) + first.Length, HandOffDataBytes - first.Length));
            // The claim moves to the entry (it is alive while "being written"), then the entry is published.
            if (Interlocked.CompareExchange(ref *Slot(h, slot), marker, mine) != mine)
            {
                Volatile.Write(ref StateOf(e), Free);
                return false;
            }
            int hw;
            while ((hw = Volatile.Read(ref *HighWater)) <= i && Interlocked.CompareExchange(ref *HighWater, i + 1, hw) != hw) { }
            Interlocked.Increment(ref *Pending);
            Volatile.Write(ref StateOf(e), Ready);
            return true;
        }
        return false;
    }

    /// <summary>Called from the poll loop while <see cref="HandOffPending"/> (caller holds the stack's lock):
    /// imports every waiting connection for a port this stack listens on, takes over its claim, and clears entries
    /// whose time ran out or whose port nobody holds any more. Returns how many were imported.</summary>
    internal int Adopt(TcpLayer layer, long nowUs)
    {
        if (nowUs - _lastAdoptUs < 100) return 0;
        _lastAdoptUs = nowUs;
        int adopted = 0;
        int high = Math.Min(Volatile.Read(ref *HighWater), HandOffEntries);
        for (int i = 0; i < high; i++)
        {
            byte* e = Entry(i);
            int s = Volatile.Read(ref StateOf(e));
            if (s == Taking && !_alive(Volatile.Read(ref PidOf(e))))
            {
                // The taker died half way: nothing of it survives; the entry goes.
                if (Interlocked.CompareExchange(ref StateOf(e), Free, Taking) == Taking) Interlocked.Decrement(ref *Pending);
                continue;
            }
            if (s != Ready) continue;
            ushort port = TransferOf(e).LocalPort;
            bool valid = EntryValid(e, nowUs);
            bool reset = false;
            if (valid && !layer.IsListening(port))
            {
                // Only a process without a stack holds the port (nginx -s quit: the master, which never accepts), and
                // for long: nobody will accept it; reset the peer as the kernel does when that holder closes.
                if (Volatile.Read(ref _listeners[port]) > 0 || nowUs - Volatile.Read(ref TimeOf(e)) < NoAdopterUs) continue;
                reset = true;
            }
            if (Interlocked.CompareExchange(ref StateOf(e), Taking, Ready) != Ready) continue;
            Volatile.Write(ref PidOf(e), _pid);
            TcpTransferState st = TransferOf(e);
            ulong marker = MarkerOf(e);
            ulong h = Hash(st.Tuple);
            int slot = FindSlot(h, marker);
            if (!valid || reset)
            {
                if (reset) layer.ResetExported(st, nowUs);
                if (slot >= 0) Interlocked.CompareExchange(ref *Slot(h, slot), 0, marker);
                HandOffsExpired++;
                FreeEntry(e);
                continue;
            }
            ulong mine = Mine(h);
            if (slot < 0 || Interlocked.CompareExchange(ref *Slot(h, slot), mine, marker) != marker)
            {
                FreeEntry(e); // the claim was taken over meanwhile: the flow is someone else's
                continue;
            }
            int length = Math.Clamp(st.DataLength, 0, HandOffDataBytes);
            TcpConnection? c = layer.ImportChild(st, new ReadOnlySpan<byte>(DataOf(e), length), nowUs);
            FreeEntry(e);
            if (c is null)
            {
                // Not importable here (the tuple is in use, a bad state): the flow goes to nobody, and the peer's next
                // segment is answered with a reset by the leader, as the close would have done.
                ReleaseNow(st.Tuple);
                HandOffsExpired++;
                continue;
            }
            adopted++;
        }
        Adopted += adopted;
        if (adopted > 0) Log?.Invoke(2, $"adopted {adopted} connections handed off by a closing listener");
        return adopted;
    }

    /// <summary>Process exit: connections this process exported that no started process listens for are reset now
    /// if no other member is left to do it later (nginx -s quit: the workers exit, the master only holds the port).
    /// Caller holds the stack's lock.</summary>
    internal int ResetOrphanedExports(TcpLayer layer, long nowUs)
    {
        if (!HandOffPending) return 0;
        for (int i = 0; i < MaxMembers; i++)
        {
            int pid = Volatile.Read(ref _members[i]);
            if (pid != 0 && pid != _pid && _alive(pid)) return 0; // a relative lives on: it adopts or resets them
        }
        int n = 0, high = Math.Min(Volatile.Read(ref *HighWater), HandOffEntries);
        for (int i = 0; i < high; i++)
        {
            byte* e = Entry(i);
            if (Volatile.Read(ref StateOf(e)) != Ready || Volatile.Read(ref PidOf(e)) != _pid) continue;
            if (Interlocked.CompareExchange(ref StateOf(e), Taking, Ready) != Ready) continue;
            TcpTransferState st = TransferOf(e);
            layer.ResetExported(st, nowUs);
            ulong h = Hash(st.Tuple);
            int slot = FindSlot(h, MarkerOf(e));
            if (slot >= 0) Interlocked.CompareExchange(ref *Slot(h, slot), 0, MarkerOf(e));
            FreeEntry(e);
            n++;
        }
        HandOffsExpired += n;
        return n;
    }

    private void FreeEntry(byte* e)
    {
        Volatile.Write(ref StateOf(e), Free);
        Interlocked.Decrement(ref *Pending);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    internal int EntriesInUse()
    {
        int n = 0;
        for (int i = 0; i < HandOffEntries; i++) if (Volatile.Read(ref StateOf(Entry(i))) != Free) n++;
        return n;
    }
}
