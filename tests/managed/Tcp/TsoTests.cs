using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Security.Cryptography;
using UserTcp.Stack;
using UserTcp.Stack.Iface;
using UserTcp.Stack.Phy;
using UserTcp.Stack.Tcp;
using UserTcp.Stack.Wire;
using Xunit;

namespace UserTcp.Tests.Tcp;

/// <summary>TCP segmentation offload: the send loop's large segments (<see cref="PacketBuf.SegmentSize"/>) and the
/// software segmentation MemoryLink does for them (<see cref="OffloadEmulation.WriteSegment"/>).</summary>
public unsafe class TsoTests
{
    /// <summary>A device wrapper that records the TCP segments its inner device receives: (seq, payload length,
    /// flags) per frame, in order.</summary>
    private sealed class Recorder : IDevice
    {
        private readonly IDevice _inner;
        public readonly List<(uint Seq, int Len, byte Flags)> Seen = new();
        public Recorder(IDevice inner) => _inner = inner;
        public DeviceCapabilities Capabilities => _inner.Capabilities;
        public int Allocate(Span<PacketBuf> burst) => _inner.Allocate(burst);
        public int Transmit(ReadOnlySpan<PacketBuf> burst) => _inner.Transmit(burst);
        public void Free(ref PacketBuf packet) => _inner.Free(ref packet);
        public int Receive(Span<PacketBuf> burst)
        {
            int n = _inner.Receive(burst);
            for (int i = 0; i < n; i++)
            {
                Span<byte> f = burst[i].Data;
                if (f.Length < 54 || f[12] != 8 || f[13] != 0 || f[23] != 6) continue;
                int ihl = (f[14] & 0xF) * 4, total = BinaryPrimitives.ReadUInt16BigEndian(f[16..]);
                Span<byte> t = f[(14 + ihl)..];
                int thl = (t[12] >> 4) * 4;
                Seen.Add((BinaryPrimitives.ReadUInt32BigEndian(t[4..]), total - ihl - thl, t[13]));
            }
            return n;
        }
    }

    /// <summary>Two stacks over a MemoryLink with A's device offering <paramref name="tso"/> bytes of TSO (0: none)
    /// and checksum offload on transmit; B checks every checksum in software and records what arrives.</summary>
    private sealed class Pair : IDisposable
    {
        public readonly MemoryLink Link;
        public readonly Recorder RecB;
        public readonly NetStack A, B;
        public long NowUs = 1_000;

        public Pair(int tso, TcpConfig? tcpA = null)
        {
            var capsA = new DeviceCapabilities { MacAddress = new MacAddress(0x02_00_00_00_00_01), TxTcpChecksum = true, TsoMaxBytes = tso };
            var capsB = new DeviceCapabilities { MacAddress = new MacAddress(0x02_00_00_00_00_02) };
            Link = new MemoryLink(new MemoryLinkConfig { Capabilities = capsA, PoolSize = 256, RxQueueCapacity = 1024 },
                new MemoryLinkConfig { Capabilities = capsB, PoolSize = 2048, RxQueueCapacity = 1024 });
            RecB = new Recorder(Link.B);
            A = new NetStack(Link.A, new StackConfig { Interface = new InterfaceConfig { Address = StackPair.AddrA }, Tcp = tcpA ?? new TcpConfig { Seed = 1 } });
            B = new NetStack(RecB, new StackConfig { Interface = new InterfaceConfig { Address = StackPair.AddrB }, Tcp = new TcpConfig { Seed = 2 } });
        }

        public bool RunUntil(Func<bool> done, long maxUs)
        {
            long end = NowUs + maxUs;
            while (true)
            {
                A.Poll(NowUs);
                B.Poll(NowUs);
                if (done()) return true;
                if (Link.A.RxQueued > 0 || Link.B.RxQueued > 0) continue;
                long next = Math.Min(A.PollAt(), B.PollAt());
                if (next > end) return done();
                NowUs = Math.Max(NowUs + 1, next);
            }
        }

        public (int l, int c, int s) Connect()
        {
            Assert.Equal(SocketError.Success, B.Open(out int l));
            Assert.Equal(SocketError.Success, B.Bind(l, Ipv4Address.Any, 8080));
            Assert.Equal(SocketError.Success, B.Listen(l, 4));
            Assert.Equal(SocketError.Success, A.Open(out int c));
            Assert.Equal(SocketError.InProgress, A.Connect(c, StackPair.AddrB, 8080));
            int s = -1;
            Assert.True(RunUntil(() => s >= 0 || B.Accept(l, out s, out _, out _) == SocketError.Success, 10_000_000));
            Assert.True(RunUntil(() => (A.GetReadiness(c) & Readiness.Out) != 0, 10_000_000));
            return (l, c, s);
        }

        /// <summary>Sends <paramref name="data"/> from A (in 100 KB writes, then shutdown) and reads it all at B.</summary>
        public byte[] Send(int c, int s, byte[] data)
        {
            var got = new byte[data.Length];
            int sent = 0, recvd = 0;
            bool eof = false, shut = false;
            var buf = new byte[64 * 1024];
            Assert.True(RunUntil(() =>
            {
                while (sent < data.Length)
                {
                    int n = A.Send(c, data.AsSpan(sent, Math.Min(100_000, data.Length - sent)), out SocketError e);
                    if (n == 0) { Assert.Equal(SocketError.WouldBlock, e); break; }
                    sent += n;
                }
                if (sent == data.Length && !shut) { Assert.Equal(SocketError.Success, A.Shutdown(c, ShutdownHow.Write)); shut = true; }
                while (true)
                {
                    int n = B.Receive(s, buf, false, out SocketError e);
                    if (n > 0) { buf.AsSpan(0, n).CopyTo(got.AsSpan(recvd)); recvd += n; continue; }
                    if (e == SocketError.Success) eof = true; else Assert.Equal(SocketError.WouldBlock, e);
                    break;
                }
                return eof;
            }, 2_000_000_000), $"stalled: sent {sent} received {recvd} of {data.Length}");
            Assert.Equal(data.Length, recvd);
            return got;
        }

        public void Dispose()
        {
            A.Dispose();
            B.Dispose();
            Link.Dispose();
        }
    }

    private static (uint Seq, int Len, byte Flags)[] DataSegments(Recorder r, uint iss) =>
        r.Seen.FindAll(x => x.Len > 0 || (x.Flags & 1) != 0).ConvertAll(x => (x.Seq - iss, x.Len, x.Flags)).ToArray();

    [Theory]
    [InlineData(65536)]
    [InlineData(16000)]
    public void LargeSegments_ArriveAsTheSameSegmentsTheMssLoopSends(int tso)
    {
        var data = new byte[3_000_000 + 777];
        new Random(5).NextBytes(data);
        (uint Seq, int Len, byte Flags)[] With, Without;
        long large;
        using (var p = new Pair(tso))
        {
            var (l, c, s) = p.Connect();
            uint iss = p.RecB.Seen[0].Seq;
            Assert.Equal(SHA256.HashData(data), SHA256.HashData(p.Send(c, s, data)));
            large = p.Link.A.TxLargeSegments;
            Assert.Equal(0, p.B.Counters.Drops(DropReason.TcpBadChecksum));
            Assert.Equal(0, p.B.Counters.Drops(DropReason.Ipv4BadChecksum));
            Assert.Equal(0, p.Link.A.TxOversizeDropped + p.Link.A.TxMalformedDropped);
            // Fewer segments left the stack than pieces reached the wire.
            Assert.True(p.A.Counters.TcpSegmentsOut < p.Link.A.TxFrames / 2, $"{p.A.Counters.TcpSegmentsOut} segments, {p.Link.A.TxFrames} frames");
            With = DataSegments(p.RecB, iss);
        }
        using (var p = new Pair(0))
        {
            var (l, c, s) = p.Connect();
            uint iss = p.RecB.Seen[0].Seq;
            Assert.Equal(SHA256.HashData(data), SHA256.HashData(p.Send(c, s, data)));
            Assert.Equal(0, p.Link.A.TxLargeSegments); // no capability: no large segment
            Without = DataSegments(p.RecB, iss);
        }
        Assert.True(large > 10, $"only {large} large segments");
        int mss = 1448;
        foreach (var (seq, len, _) in With) Assert.True(len <= mss, $"piece of {len} bytes at {seq}");
        // Same bytes, cut the same way: the pieces are the segments the MSS-at-a-time loop sends.
        Assert.Equal(Array.ConvertAll(Without, x => (x.Item1, x.Item2)), Array.ConvertAll(With, x => (x.Item1, x.Item2)));
        // FIN only once, on the last piece.
        Assert.Single(With, x => (x.Flags & 1) != 0);
        Assert.Equal(data.Length + 1u, With[^1].Seq + (uint)With[^1].Len);
    }

    [Fact]
    public void WithLoss_LargeSegmentsAndMssRetransmissions_DeliverTheSameBytes()
    {
        // A's device segments; B's receive path drops and reorders pieces (FaultInjectingDevice over the link).
        var capsA = new DeviceCapabilities { MacAddress = new MacAddress(0x02_00_00_00_00_01), TxTcpChecksum = true, TsoMaxBytes = 65536 };
        var capsB = new DeviceCapabilities { MacAddress = new MacAddress(0x02_00_00_00_00_02) };
        using var p = new StackPair(new FaultConfig { DelayUs = 200, LossPercent = 2, ReorderPercent = 2 }, seed: 9, tsoA: 65536, poolSize: 512);
        var (l, c, s) = NetStackTests.Connect(p);
        var data = new byte[2_000_000];
        new Random(9).NextBytes(data);
        Assert.Equal(SHA256.HashData(data), SHA256.HashData(NetStackTests.Transfer(p, p.A, c, p.B, s, data, 2_000_000_000)));
        Assert.True(p.Link.A.TxLargeSegments > 0);
        Assert.True(p.A.Counters.TcpRetransmits > 0, "no loss recovery exercised");
        // And back, B (no TSO) to A: the receive side of A is unaffected.
        Assert.Equal(SHA256.HashData(data), SHA256.HashData(NetStackTests.Transfer(p, p.B, s, p.A, c, data, 2_000_000_000)));
        NetStackTests.CloseAndCheckLeaks(p, (p.A, c), (p.B, s), (p.B, l));
        _ = capsA; _ = capsB;
    }

    [Fact]
    public void TsoWithoutChecksumOffload_IsNotUsed()
    {
        // A device that reports TSO but not TCP checksum offload cannot take a pseudo-header sum: the layer ignores TSO.
        var caps = new DeviceCapabilities { MacAddress = new MacAddress(0x02_00_00_00_00_01), TsoMaxBytes = 65536 };
        using var link = new MemoryLink(new MemoryLinkConfig { Capabilities = caps, PoolSize = 8 }, new MemoryLinkConfig { PoolSize = 8 });
        using var a = new NetStack(link.A, new StackConfig { Interface = new InterfaceConfig { Address = StackPair.AddrA } });
        Assert.Equal(0, a.Tcp.TsoMax);
        var caps2 = new DeviceCapabilities { MacAddress = new MacAddress(0x02_00_00_00_00_01), TxTcpChecksum = true, TsoMaxBytes = 1 << 20 };
        using var link2 = new MemoryLink(new MemoryLinkConfig { Capabilities = caps2, PoolSize = 8, BufferSize = 70_000 }, new MemoryLinkConfig { PoolSize = 8 });
        using var a2 = new NetStack(link2.A, new StackConfig { Interface = new InterfaceConfig { Address = StackPair.AddrA } });
        Assert.Equal(65535 - 80, a2.Tcp.TsoMax); // one IPv4 packet at most
    }

    /// <summary>A connecting pair whose sender's device claims TSO but hands out MTU-sized buffers.</summary>
    private static (MemoryLink link, NetStack a, NetStack b, int l, int c) SmallBufferPair()
    {
        var capsA = new DeviceCapabilities { MacAddress = new MacAddress(0x02_00_00_00_00_01), TxTcpChecksum = true, TsoMaxBytes = 65536 };
        var link = new MemoryLink(new MemoryLinkConfig { Capabilities = capsA, PoolSize = 512, BufferSize = 2048, RxQueueCapacity = 1024 },
            new MemoryLinkConfig { PoolSize = 2048, RxQueueCapacity = 1024 });
        var a = new NetStack(link.A, new StackConfig { Interface = new InterfaceConfig { Address = StackPair.AddrA }, Tcp = new TcpConfig { Seed = 1 } });
        var b = new NetStack(link.B, new StackConfig { Interface = new InterfaceConfig { Address = StackPair.AddrB }, Tcp = new TcpConfig { Seed = 2 } });
        Assert.Equal(SocketError.Success, b.Open(out int l));
        Assert.Equal(SocketError.Success, b.Bind(l, Ipv4Address.Any, 8080));
        Assert.Equal(SocketError.Success, b.Listen(l, 4));
        Assert.Equal(SocketError.Success, a.Open(out int c));
        Assert.Equal(SocketError.InProgress, a.Connect(c, StackPair.AddrB, 8080));
        return (link, a, b, l, c);
    }

    [Fact]
    public void BuffersSmallerThanPromised_SegmentsShrinkToWhatFits()
    {
        // A device that reports TSO but hands out MTU-sized buffers: each "large" segment is cut down to the whole
        // MSS pieces that fit (here one), nothing is lost or sent twice.
        var (link, a, b, l, c) = SmallBufferPair();
        using var _link = link;
        using var _a = a;
        using var _b = b;
        long now = 1_000;
        int s = -1, sent = 0, got = 0;
        var data = new byte[500_000];
        new Random(8).NextBytes(data);
        var recv = new byte[data.Length];
        for (int i = 0; i < 200_000 && got < data.Length; i++, now += 100)
        {
            a.Poll(now);
            b.Poll(now);
            if (s < 0) { b.Accept(l, out s, out _, out _); continue; }
            if (sent < data.Length) sent += Math.Max(0, a.Send(c, data.AsSpan(sent), out _));
            got += Math.Max(0, b.Receive(s, recv.AsSpan(got), false, out _));
        }
        Assert.Equal(data.Length, got);
        Assert.Equal(data, recv);
        Assert.Equal(0, link.A.TxLargeSegments);
        Assert.Equal(0, link.A.TxOversizeDropped);
    }

    [Fact]
    public void BuffersSmallerThanPromised_FinQueuedBehindTheData_GoesWithTheLastByte()
    {
        // As above, with the FIN queued behind all the data (shutdown after the last send): a large segment cut short
        // by the buffer must not carry the FIN, or the peer would take the rest for data after the FIN.
        var (link, a, b, l, c) = SmallBufferPair();
        using var _link = link;
        using var _a = a;
        using var _b = b;
        long now = 1_000;
        int s = -1, got = 0;
        var data = new byte[60_000];
        new Random(9).NextBytes(data);
        var recv = new byte[data.Length + 1];
        bool queued = false, eof = false;
        for (int i = 0; i < 200_000 && !eof; i++, now += 100)
        {
            a.Poll(now);
            b.Poll(now);
            if (s < 0) { b.Accept(l, out s, out _, out _); continue; }
            if (!queued)
            {
                // All the data and the FIN in one go, before anything is sent: the first large segment carries it all.
                Assert.Equal(data.Length, a.Send(c, data, out _));
                Assert.Equal(SocketError.Success, a.Shutdown(c, ShutdownHow.Write));
                queued = true;
            }
            int n = b.Receive(s, recv.AsSpan(got), false, out SocketError e);
            if (n > 0) got += n;
            else if (n == 0 && e == SocketError.Success) eof = true;
        }
        Assert.True(eof);
        Assert.Equal(data.Length, got);
        Assert.Equal(data, recv.AsSpan(0, got).ToArray());
        Assert.Equal(0, link.A.TxOversizeDropped);
    }

    [Fact]
    public void NoDelayOff_ShortTailWaitsForTheAck_AsWithoutTso()
    {
        using var p = new Pair(65536);
        var (l, c, s) = p.Connect();
        uint iss = p.RecB.Seen[0].Seq;
        var data = new byte[10_000]; // 6 MSS + 1,312 bytes
        new Random(1).NextBytes(data);
        Assert.Equal(data.Length, p.A.Send(c, data, out _));
        p.A.Poll(p.NowUs);
        Assert.Equal(1, p.Link.A.TxLargeSegments);
        Assert.Equal(6, p.Link.B.RxQueued); // six full pieces; Nagle holds the tail until they are acknowledged
        var buf = new byte[20_000];
        int got = 0;
        Assert.True(p.RunUntil(() => (got += Math.Max(0, p.B.Receive(s, buf.AsSpan(got), false, out _))) == data.Length, 10_000_000));
        Assert.Equal(data, buf.AsSpan(0, got).ToArray());
        var segs = DataSegments(p.RecB, iss);
        Assert.Equal(7, segs.Length);
        Assert.Equal(10_000 - 6 * 1448, segs[6].Len);
        for (int i = 0; i < 6; i++) Assert.Equal((uint)(1 + i * 1448), segs[i].Seq);
        // PSH only on the tail, which ends the queued data (the large segment did not: none of its pieces has it).
        for (int i = 0; i < 6; i++) Assert.Equal(0, segs[i].Flags & 0x08);
        Assert.NotEqual(0, segs[6].Flags & 0x08);
    }

    [Fact]
    public void WriteSegment_FixesLengthsSequenceFlagsAndChecksums()
    {
        var src = new Ipv4Address(10, 0, 0, 1);
        var dst = new Ipv4Address(10, 0, 0, 2);
        const int payload = 4000, seg = 1448, thl = 32;
        var frame = new byte[14 + 20 + thl + payload];
        frame[12] = 8; // IPv4
        Span<byte> ip = frame.AsSpan(14);
        ip[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(20 + thl + payload));
        BinaryPrimitives.WriteUInt16BigEndian(ip[4..], 0xFFFE); // the ID wraps across the pieces
        ip[6] = 0x40; ip[8] = 64; ip[9] = 6;
        src.Write(ip[12..]);
        dst.Write(ip[16..]);
        Span<byte> t = ip[20..];
        BinaryPrimitives.WriteUInt32BigEndian(t[4..], 0xFFFF_F000); // wraps too
        t[12] = (thl / 4) << 4;
        t[13] = 0x80 | 0x10 | 0x08 | 0x01; // CWR ACK PSH FIN
        for (int i = 0; i < payload; i++) t[thl + i] = (byte)(i * 7);
        Assert.Equal(3, OffloadEmulation.CountSegments(frame, seg));
        Assert.Equal(-1, OffloadEmulation.CountSegments(frame.AsSpan(0, 30), seg));
        Assert.Equal(-1, OffloadEmulation.CountSegments(frame, 0));
        byte* d = stackalloc byte[2048];
        for (int i = 0; i < 3; i++)
        {
            int n = OffloadEmulation.WriteSegment(frame, seg, i, d, 2048);
            int len = Math.Min(seg, payload - i * seg);
            Assert.Equal(14 + 20 + thl + len, n);
            var f = new Span<byte>(d, n);
            OffloadEmulation.FillTransmitChecksums(f, ip: true, tcp: true);
            Span<byte> pip = f[14..];
            Assert.Equal(20 + thl + len, BinaryPrimitives.ReadUInt16BigEndian(pip[2..]));
            Assert.Equal((ushort)(0xFFFE + i), BinaryPrimitives.ReadUInt16BigEndian(pip[4..]));
            Assert.Equal(0, Checksum.Compute(pip[..20]));
            Span<byte> pt = pip[20..];
            Assert.Equal(0xFFFF_F000u + (uint)(i * seg), BinaryPrimitives.ReadUInt32BigEndian(pt[4..]));
            byte want = (byte)(0x10 | (i == 0 ? 0x80 : 0) | (i == 2 ? 0x09 : 0));
            Assert.Equal(want, pt[13]);
            uint pseudo = Checksum.PseudoHeader(src, dst, 6, thl + len);
            Assert.Equal(0, Checksum.Fold(Checksum.Add(pseudo, pt)));
            Assert.True(pt[thl..].SequenceEqual(frame.AsSpan(14 + 20 + thl + i * seg, len)));
            Assert.True(pt[20..thl].SequenceEqual(frame.AsSpan(14 + 20 + 20, thl - 20))); // options copied
        }
    }
}
