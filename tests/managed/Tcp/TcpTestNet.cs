using System;
using UserTcp.Stack;
using UserTcp.Stack.Phy;
using UserTcp.Stack.Tcp;
using UserTcp.Stack.Wire;

namespace UserTcp.Tests.Tcp;

/// <summary>
/// Two <see cref="TcpLayer"/>s joined by a simulated IPv4 path in virtual time (no Ethernet/IP layers: segments go
/// straight from one layer's transmit to the other's receive). Seeded faults: loss, duplication, reordering,
/// corruption, delay. Allocation-free while running (fixed arrays), so it can sit inside allocation measurements.
/// </summary>
internal sealed unsafe class TcpTestNet : IDisposable
{
    public sealed class End : ITcpTransmit
    {
        public readonly TcpTestNet Net;
        public readonly NativePacketPool Pool;
        public readonly BufferPool Buffers;
        public readonly StackCounters Counters = new();
        public TcpLayer Layer = null!;
        public End Peer = null!;
        public Ipv4Address Address { get; }
        public int MtuValue = 1500;
        public bool Offload;
        public long Sent;

        public End(TcpTestNet net, Ipv4Address address, int packets)
        {
            Net = net;
            Address = address;
            Pool = new NativePacketPool(packets, 2048);
            Buffers = BufferPool.CreateDefault(64L << 20);
        }

        public Ipv4Address LocalAddress => Address;
        public int Mtu => MtuValue;
        public bool TxChecksumOffload => Offload;
        public bool TryAllocate(out PacketBuf packet) => Pool.TryRent(out packet);
        public void Send(ref PacketBuf packet, Ipv4Address destination, long nowUs)
        {
            Sent++;
            Net.Enqueue(this, ref packet, nowUs);
        }
    }

    private struct InFlight
    {
        public PacketBuf Packet;
        public End From;
        public long DueUs;
        public long Order;
    }

    private readonly InFlight[] _q = new InFlight[8192];
    private int _count;
    private long _order;
    private readonly Random _rng;
    public readonly End A, B;
    public long NowUs;
    public long DelayUs = 100;
    public double LossPercent, DuplicatePercent, ReorderPercent, CorruptPercent;
    public long Lost, Delivered;
    /// <summary>When set, decides per packet whether to drop it (after the random faults).</summary>
    public Func<End, PacketBuf, bool>? DropFilter;

    public TcpTestNet(int seed = 1, TcpConfig? configA = null, TcpConfig? configB = null, int packets = 4096)
    {
        _rng = new Random(seed);
        A = new End(this, new Ipv4Address(10, 0, 0, 1), packets);
        B = new End(this, new Ipv4Address(10, 0, 0, 2), packets);
        A.Peer = B;
        B.Peer = A;
        A.Layer = new TcpLayer(configA ?? new TcpConfig { Seed = 11 }, A, A.Counters, A.Buffers);
        B.Layer = new TcpLayer(configB ?? new TcpConfig { Seed = 22 }, B, B.Counters, B.Buffers);
    }

    private void Enqueue(End from, ref PacketBuf p, long nowUs)
    {
        if (DropFilter != null && DropFilter(from, p)) { Lost++; from.Pool.Return(ref p); return; }
        if (LossPercent > 0 && _rng.NextDouble() * 100 < LossPercent) { Lost++; from.Pool.Return(ref p); return; }
        if (_count + 2 > _q.Length) { Lost++; from.Pool.Return(ref p); return; } // path queue full: tail drop
        if (CorruptPercent > 0 && _rng.NextDouble() * 100 < CorruptPercent)
        {
            Span<byte> d = p.Data;
            d[_rng.Next(d.Length)] ^= (byte)(1 + _rng.Next(255));
        }
        long due = nowUs + DelayUs;
        if (ReorderPercent > 0 && _rng.NextDouble() * 100 < ReorderPercent) due += DelayUs / 2 + _rng.Next((int)Math.Max(1, DelayUs));
        if (DuplicatePercent > 0 && _rng.NextDouble() * 100 < DuplicatePercent && from.Pool.TryRent(out PacketBuf copy))
        {
            copy.SetLength(p.Length);
            p.Data.CopyTo(copy.Data);
            _q[_count++] = new InFlight { Packet = copy, From = from, DueUs = due + 1, Order = _order++ };
        }
        _q[_count++] = new InFlight { Packet = p, From = from, DueUs = due, Order = _order++ };
    }

    private long NextDelivery()
    {
        long m = long.MaxValue;
        for (int i = 0; i < _count; i++) if (_q[i].DueUs < m) m = _q[i].DueUs;
        return m;
    }

    /// <summary>Delivers everything due at <see cref="NowUs"/> in order, then runs both layers' timers.</summary>
    private void DeliverDue()
    {
        while (true)
        {
            int best = -1;
            for (int i = 0; i < _count; i++)
                if (_q[i].DueUs <= NowUs && (best < 0 || _q[i].DueUs < _q[best].DueUs
                    || (_q[i].DueUs == _q[best].DueUs && _q[i].Order < _q[best].Order))) best = i;
            if (best < 0) break;
            InFlight f = _q[best];
            _q[best] = _q[--_count];
            End to = f.From.Peer;
            Delivered++;
            to.Layer.Receive(f.From.Address, to.Address, f.Packet.Data, PacketOffloads.None, NowUs);
            f.From.Pool.Return(ref f.Packet);
        }
        A.Layer.PollTimers(NowUs);
        B.Layer.PollTimers(NowUs);
    }

    /// <summary>Advances virtual time event by event until <paramref name="done"/> or <paramref name="maxUs"/> of
    /// virtual time passes. Returns whether <paramref name="done"/> became true.</summary>
    public bool RunUntil(Func<bool> done, long maxUs = 60_000_000)
    {
        long end = NowUs + maxUs;
        DeliverDue();
        while (!done())
        {
            long next = Math.Min(NextDelivery(), Math.Min(A.Layer.PollAt(), B.Layer.PollAt()));
            if (next == long.MaxValue || next > end) { NowUs = Math.Max(NowUs, Math.Min(end, next)); return done(); }
            NowUs = Math.Max(NowUs, next);
            DeliverDue();
        }
        return true;
    }

    /// <summary>Runs until nothing is queued or due within <paramref name="maxUs"/>.</summary>
    public void RunFor(long maxUs)
    {
        long end = NowUs + maxUs;
        while (true)
        {
            long next = Math.Min(NextDelivery(), Math.Min(A.Layer.PollAt(), B.Layer.PollAt()));
            if (next > end) { NowUs = end; DeliverDue(); return; }
            NowUs = Math.Max(NowUs, next);
            DeliverDue();
        }
    }

    public int InFlightCount => _count;

    public void Dispose()
    {
        for (int i = 0; i < _count; i++) _q[i].From.Pool.Return(ref _q[i].Packet);
        _count = 0;
    }
}
