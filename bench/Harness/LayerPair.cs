using System;
using UserTcp.Stack;
using UserTcp.Stack.Phy;
using UserTcp.Stack.Tcp;
using UserTcp.Stack.Wire;

namespace UserTcp.Bench.Harness;

/// <summary>
/// Two <see cref="TcpLayer"/>s joined by a zero-delay FIFO "wire" in virtual time (no Ethernet or IPv4: a segment
/// goes from one layer's transmit straight to the other's receive). Each end can instead be switched to
/// <see cref="BenchEnd.Discard"/>, where what it transmits is dropped and its buffer recycled at once; the
/// microbenchmarks then play the peer themselves with pre-built segments. Nothing here allocates after
/// construction, so allocation figures measured around it belong to the stack.
/// </summary>
internal sealed unsafe class LayerPair : IDisposable
{
    public static readonly Ipv4Address AddrA = new(10, 0, 0, 1), AddrB = new(10, 0, 0, 2);

    public sealed class BenchEnd : ITcpTransmit
    {
        private readonly LayerPair _net;
        public readonly NativePacketPool Pool;
        public readonly BufferPool Buffers;
        public readonly StackCounters Counters = new();
        public TcpLayer Layer = null!;
        public BenchEnd Peer = null!;
        /// <summary>Drop (and recycle) everything this end transmits instead of putting it on the wire.</summary>
        public bool Discard;
        /// <summary>When set, the next transmitted segment is copied into <see cref="Captured"/> (then cleared).</summary>
        public bool CaptureNext;
        public byte[] Captured = Array.Empty<byte>();
        /// <summary>When set, every transmitted segment is copied into <see cref="Captured"/> (setup only: allocates).</summary>
        public bool CaptureAll;
        public long Sent;
        public long SentBytes;
        /// <summary>TCP payload bytes transmitted (headers excluded).</summary>
        public long SentPayload;
        public bool Offload { get; set; }

        public BenchEnd(LayerPair net, Ipv4Address address, int packets, BufferPool buffers)
        {
            _net = net;
            LocalAddress = address;
            Pool = new NativePacketPool(packets, 2048);
            Buffers = buffers;
        }

        public Ipv4Address LocalAddress { get; }
        public int Mtu => 1500;
        public bool TxChecksumOffload => Offload;
        public bool TryAllocate(out PacketBuf packet) => Pool.TryRent(out packet);

        public void Send(ref PacketBuf packet, Ipv4Address destination, long nowUs)
        {
            Sent++;
            SentBytes += packet.Length;
            SentPayload += packet.Length - (packet.Data[12] >> 4) * 4;
            if (CaptureNext || CaptureAll)
            {
                CaptureNext = false;
                Captured = packet.Data.ToArray();
            }
            if (Discard) Pool.Return(ref packet);
            else _net.Enqueue(this, ref packet);
        }
    }

    private struct InFlight
    {
        public PacketBuf Packet;
        public BenchEnd From;
    }

    private readonly InFlight[] _ring;
    private int _head, _count;
    public readonly BenchEnd A, B;
    public long NowUs = 1_000_000;
    public long Delivered;

    public LayerPair(TcpConfig configA, TcpConfig configB, BufferPool? buffersA = null, BufferPool? buffersB = null,
        int packets = 4096)
    {
        _ring = new InFlight[2 * packets];
        A = new BenchEnd(this, AddrA, packets, buffersA ?? BufferPool.CreateDefault(256L << 20));
        B = new BenchEnd(this, AddrB, packets, buffersB ?? BufferPool.CreateDefault(256L << 20));
        A.Peer = B;
        B.Peer = A;
        A.Layer = new TcpLayer(configA, A, A.Counters, A.Buffers);
        B.Layer = new TcpLayer(configB, B, B.Counters, B.Buffers);
    }

    private void Enqueue(BenchEnd from, ref PacketBuf p)
    {
        if (_count == _ring.Length) { from.Pool.Return(ref p); return; } // cannot happen with pools smaller than the ring
        _ring[(_head + _count) % _ring.Length] = new InFlight { Packet = p, From = from };
        _count++;
    }

    public int InFlightCount => _count;

    /// <summary>Delivers queued segments in order (including the ones the deliveries cause) until the wire is empty.</summary>
    public void Pump()
    {
        while (_count > 0)
        {
            InFlight f = _ring[_head];
            _ring[_head] = default;
            _head = (_head + 1) % _ring.Length;
            _count--;
            BenchEnd to = f.From.Peer;
            Delivered++;
            to.Layer.Receive(f.From.LocalAddress, to.LocalAddress, f.Packet.Data, PacketOffloads.None, NowUs);
            f.From.Pool.Return(ref f.Packet);
        }
    }

    /// <summary>Moves virtual time forward, runs both layers' timers and delivers what they send.</summary>
    public void Advance(long us)
    {
        NowUs += us;
        A.Layer.PollTimers(NowUs);
        B.Layer.PollTimers(NowUs);
        Pump();
    }

    /// <summary>Runs timers event by event (delayed ACKs, retransmissions) until none is due within
    /// <paramref name="horizonUs"/> of virtual time.</summary>
    public void Settle(long horizonUs = 1_000_000)
    {
        long end = NowUs + horizonUs;
        Pump();
        while (true)
        {
            long next = Math.Min(A.Layer.PollAt(), B.Layer.PollAt());
            if (next > end) return;
            Advance(Math.Max(0, next - NowUs));
        }
    }

    /// <summary>Opens one connection from A to <paramref name="port"/> on B (which must listen) and accepts it.</summary>
    public (TcpConnection Client, TcpConnection Server) Connect(TcpListener listener, ushort localPort = 0)
    {
        TcpConnection c = A.Layer.Connect(localPort, AddrB, listener.Port, NowUs, out SocketError e)
            ?? throw new InvalidOperationException($"connect failed: {e}");
        Pump();
        TcpConnection s = listener.Accept() ?? throw new InvalidOperationException("no connection to accept");
        if (c.State != TcpState.Established || s.State != TcpState.Established)
            throw new InvalidOperationException($"handshake did not complete: {c.State}/{s.State}");
        return (c, s);
    }

    /// <summary>Non-zero drop counters, for error messages.</summary>
    public static string Drops(StackCounters c)
    {
        var parts = new System.Collections.Generic.List<string>();
        foreach (DropReason r in Enum.GetValues<DropReason>())
            if (r != DropReason.Count && c.Drops(r) != 0) parts.Add($"{r} {c.Drops(r)}");
        return string.Join(", ", parts);
    }

    public void Dispose()
    {
        while (_count > 0)
        {
            InFlight f = _ring[_head];
            _head = (_head + 1) % _ring.Length;
            _count--;
            f.From.Pool.Return(ref f.Packet);
        }
    }
}
