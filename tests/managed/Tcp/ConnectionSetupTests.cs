using System;
using System.Collections.Generic;
using System.Linq;
using UserTcp.Stack;
using UserTcp.Stack.Phy;
using UserTcp.Stack.Tcp;
using UserTcp.Stack.Wire;
using Xunit;

namespace UserTcp.Tests.Tcp;

/// <summary>The per-connection set-up paths made cheaper in session 4 (rxpath): one keyed hash for the ISN and the
/// timestamp offset, the flat port table, the keyed multiply-shift connection table, and the SYN option fast path.
/// Each fast path must give what the general path gives, and fall back to it for anything else.</summary>
public class ConnectionSetupTests
{
    private static readonly Ipv4Address A = new(10, 0, 0, 1), B = new(10, 0, 0, 9);

    // ------------------------------------------------------------------------------------------------------------
    // ISN and timestamp offset
    // ------------------------------------------------------------------------------------------------------------

    [Fact]
    public void IsnDiffersPerTupleAndMovesWithTheClock()
    {
        var g = new IsnGenerator(7);
        const long Now = 123_456_789;
        var isns = new HashSet<uint>();
        var offsets = new HashSet<uint>();
        for (ushort p = 1000; p < 1400; p++)
        {
            var t = new TcpTuple(A, 80, B, p);
            SeqNumber isn = g.Isn(t, Now, out uint off);
            isns.Add(isn.Value);
            offsets.Add(off);
            // RFC 6528: M, the 4 µs clock, moves the ISN of one tuple forward with time.
            Assert.Equal(1000u, g.Isn(t, Now + 4000, out uint off2).Value - isn.Value);
            Assert.Equal(off, off2); // the offset depends on the tuple only
            Assert.Equal(off, g.TimestampOffset(t)); // the cookie path's offset is the same one
            Assert.Equal(isn, g.Isn(t, Now));
        }
        Assert.True(isns.Count >= 399, $"{isns.Count} distinct ISNs of 400 tuples");
        Assert.True(offsets.Count >= 399, $"{offsets.Count} distinct offsets of 400 tuples");
        // The two halves are not the same value (nor one a shift of the other's clock-free part).
        var t0 = new TcpTuple(A, 80, B, 1000);
        Assert.NotEqual(g.Isn(t0, 0, out uint o0).Value, o0);
        // Another key (seed): other values for the same tuple.
        var g2 = new IsnGenerator(8);
        Assert.NotEqual(g.Isn(t0, Now).Value, g2.Isn(t0, Now).Value);
        Assert.NotEqual(g.TimestampOffset(t0), g2.TimestampOffset(t0));
    }

    [Fact]
    public void SynAckTimestampCarriesThePerTupleOffset()
    {
        using var s = new TcpScript();
        s.Layer.Listen(80, 8, out _);
        var syn = new TcpOptions { HasMss = true, Mss = 1460, HasTimestamps = true, TsVal = 77, SackPermitted = true, HasWindowScale = true, WindowScale = 7 };
        var tsvals = new List<uint>();
        var isses = new List<uint>();
        for (ushort p = 5000; p < 5004; p++)
        {
            s.Inject(TcpFlags.Syn, 1000, 0, opt: syn, srcPort: p);
            Sent sa = s.Expect(TcpFlags.Syn | TcpFlags.Ack);
            Assert.True(sa.Options.HasTimestamps);
            Assert.Equal(77u, sa.Options.TsEcr);
            tsvals.Add(sa.Options.TsVal);
            isses.Add(sa.Seq);
            var t = new TcpTuple(TcpScript.Us, 80, TcpScript.Peer, p);
            Assert.Equal(s.Layer.Isn.Isn(t, s.NowUs).Value, sa.Seq);
        }
        // Same clock for all four: only the per-tuple offset and F make them differ.
        Assert.Equal(4, tsvals.Distinct().Count());
        Assert.Equal(4, isses.Distinct().Count());
    }

    // ------------------------------------------------------------------------------------------------------------
    // Ports
    // ------------------------------------------------------------------------------------------------------------

    [Fact]
    public void PortTableCountsHoldersAndIgnoresExtraReleases()
    {
        var t = new PortTable();
        Assert.False(t.InUse(80));
        Assert.True(t.Acquire(80));
        Assert.False(t.Acquire(80));
        Assert.Equal(2, t.Users(80));
        Assert.Equal(1, t.Count);
        Assert.False(t.Release(80));
        Assert.True(t.InUse(80));
        Assert.True(t.Release(80));
        Assert.False(t.InUse(80));
        Assert.False(t.Release(80)); // nobody holds it: stays free, count unchanged
        Assert.Equal(0, t.Users(80));
        Assert.Equal(0, t.Count);
        Assert.True(t.Acquire(0)); Assert.True(t.Acquire(65535));
        Assert.Equal(2, t.Count);
    }

    [Fact]
    public void ListenerPortIsHeldByItsChildrenUntilTheLastCloses()
    {
        using var s = new TcpScript();
        TcpConnection c1 = s.Established(out uint iss1);
        s.PeerPort = 5001;
        s.Inject(TcpFlags.Syn, TcpScript.PeerIss, 0);
        Sent sa = s.Expect(TcpFlags.Syn | TcpFlags.Ack);
        s.Inject(TcpFlags.Ack, TcpScript.PeerIss + 1, sa.Seq + 1);
        Assert.True(s.Layer.PortInUse(80));
        c1.Abort(s.NowUs);
        Assert.True(s.Layer.PortInUse(80)); // the second child still holds it
        TcpConnection c2 = s.Layer.Find(new TcpTuple(TcpScript.Us, 80, TcpScript.Peer, 5001))!;
        c2.Abort(s.NowUs);
        _ = iss1;
        Assert.False(s.Layer.PortInUse(80)); // Listen does not hold a use of the port; its children did
    }

    [Fact]
    public void EphemeralPortsAreReusedAfterRelease()
    {
        using var s = new TcpScript(new TcpConfig { Seed = 3, EphemeralPortFirst = 41000, EphemeralPortLast = 41002 });
        var seen = new List<ushort>();
        for (int round = 0; round < 3; round++)
        {
            var conns = new List<TcpConnection>();
            for (int i = 0; i < 3; i++)
            {
                TcpConnection c = s.Layer.Connect(0, TcpScript.Peer, (ushort)(6000 + i), s.NowUs, out SocketError e)!;
                Assert.Equal(SocketError.InProgress, e);
                conns.Add(c);
                seen.Add(c.LocalPort);
            }
            // All three held, each once: no fourth free port (it would have to share; a new destination can).
            Assert.Equal(0, s.Layer.AllocateEphemeralPort());
            Assert.Equal(3, conns.Select(c => c.LocalPort).Distinct().Count());
            foreach (TcpConnection c in conns) c.Abort(s.NowUs);
            for (ushort p = 41000; p <= 41002; p++) Assert.False(s.Layer.PortInUse(p));
            Assert.NotEqual(0, s.Layer.AllocateEphemeralPort());
            s.Out.Clear();
        }
        Assert.True(seen.All(p => p is >= 41000 and <= 41002));
    }

    [Fact]
    public void OfferedWindowScaleIsTheSmallestShiftThatFitsTheLargestBuffer()
    {
        foreach (int max in new[] { 0, 1, 4096, 65535, 65536, 65537, 131071, 131072, 1 << 20, (1 << 20) + 1, 1 << 29, 1 << 30, int.MaxValue })
        {
            byte expected = 0;
            while (expected < 14 && (max >> expected) > 65535) expected++;
            Assert.Equal(expected, new TcpConfig { MaxBufferSize = max }.OurWindowScale);
        }
    }

    [Fact]
    public void ChildrenInheritTheListenersTimesAndActiveOpensTheConfigs()
    {
        using var s = new TcpScript(new TcpConfig { Seed = 42, KeepAliveIdleUs = 7_000_500, KeepAliveIntervalUs = 999 });
        TcpListener l = s.Layer.Listen(80, 8, out _)!;
        l.KeepAlive = true;
        l.KeepIdleUs = 1500;          // rounded up to whole milliseconds, as a connection keeps it
        l.KeepIntervalUs = 2_000_000;
        l.UserTimeoutUs = 3_000_001;
        l.KeepCount = 4;
        Assert.Equal(2000, l.KeepIdleUs);
        s.Inject(TcpFlags.Syn, 1000, 0);
        TcpConnection child = s.Layer.Find(new TcpTuple(TcpScript.Us, 80, TcpScript.Peer, s.PeerPort))!;
        Assert.True(child.KeepAlive);
        Assert.Equal(2000, child.KeepIdleUs);
        Assert.Equal(2_000_000, child.KeepIntervalUs);
        Assert.Equal(3_001_000, child.UserTimeoutUs);
        Assert.Equal(4, child.KeepCount);
        s.Out.Clear();
        TcpConnection active = s.Layer.Connect(0, TcpScript.Peer, 6000, s.NowUs, out _)!;
        Assert.Equal(7_001_000, active.KeepIdleUs);
        Assert.Equal(1000, active.KeepIntervalUs);
        Assert.Equal(0, active.UserTimeoutUs);
        Assert.False(active.KeepAlive);
    }

    // ------------------------------------------------------------------------------------------------------------
    // Connection table
    // ------------------------------------------------------------------------------------------------------------

    private static TcpConnection NewConn(TcpLayer layer, in TcpTuple t) => layer.NewConnection(t);

    [Fact]
    public void ConnectionTableFindsReplacesAndGrows()
    {
        using var s = new TcpScript();
        var table = new ConnectionTable(16, 99);
        var conns = new List<TcpConnection>();
        for (int i = 0; i < 1000; i++)
        {
            var t = new TcpTuple(A, 80, new Ipv4Address(10, 1, (byte)(i >> 8), (byte)i), (ushort)(1024 + i * 7));
            TcpConnection c = NewConn(s.Layer, t);
            Assert.Null(table.AddOrReplace(c));
            conns.Add(c);
        }
        Assert.Equal(1000, table.Count);
        Assert.True(table.Buckets >= 1000);
        foreach (TcpConnection c in conns)
        {
            Assert.True(table.TryGetValue(c.Tuple, out TcpConnection? f));
            Assert.Same(c, f);
        }
        // A second connection on a tuple in the table replaces the first, which is returned.
        TcpConnection again = NewConn(s.Layer, conns[500].Tuple);
        Assert.Same(conns[500], table.AddOrReplace(again));
        Assert.Equal(1000, table.Count);
        Assert.True(table.TryGetValue(conns[500].Tuple, out TcpConnection? g));
        Assert.Same(again, g);
        Assert.Null(conns[500].NextInTable);
        Assert.True(table.Remove(again));
        Assert.False(table.ContainsKey(conns[500].Tuple));
        Assert.False(table.Remove(again));
        Assert.Equal(999, table.Count);
    }

    [Fact]
    public void ConnectionTableGrowsFrom16AndAWalkSeesEachConnectionOnce()
    {
        // 20 000 connections: 32 768 buckets after eleven doublings from 16.
        using var s = new TcpScript();
        var table = new ConnectionTable(16, 7);
        var conns = new List<TcpConnection>();
        for (int i = 0; i < 20_000; i++)
        {
            var t = new TcpTuple(A, (ushort)(80 + i % 3), new Ipv4Address(10, 2, (byte)(i >> 8), (byte)i), (ushort)(2000 + i % 50_000));
            TcpConnection c = NewConn(s.Layer, t);
            table.Add(c);
            conns.Add(c);
        }
        Assert.Equal(20_000, table.Count);
        Assert.Equal(32_768, table.Buckets);
        foreach (TcpConnection c in conns)
        {
            Assert.True(table.TryGetValue(c.Tuple, out TcpConnection? f));
            Assert.Same(c, f);
        }
        var seen = new HashSet<TcpConnection>(ReferenceEqualityComparer.Instance);
        for (int b = 0; b < table.Buckets; b++)
            for (TcpConnection? c = table.Head(b); c != null; c = c.NextInTable)
                Assert.True(seen.Add(c));
        Assert.Equal(20_000, seen.Count);
        for (int i = 0; i < 20_000; i += 2) Assert.True(table.Remove(conns[i]));
        Assert.Equal(10_000, table.Count);
        for (int i = 0; i < 20_000; i++) Assert.Equal(i % 2 == 1, table.ContainsKey(conns[i].Tuple));
    }

    [Fact]
    public void ConnectionTableSpreadsChosenRemotePortsAndDependsOnItsKey()
    {
        // An attacker's tuples: one address, consecutive source ports, and ports differing only in high bits.
        var t1 = new ConnectionTable(1024, 1);
        var t2 = new ConnectionTable(1024, 2);
        int[] load = new int[t1.Buckets];
        int same = 0;
        for (int p = 0; p < 4096; p++)
        {
            var t = new TcpTuple(A, 80, B, (ushort)(p < 2048 ? p : (p - 2048) << 5));
            int b1 = t1.BucketOf(t);
            Assert.InRange(b1, 0, t1.Buckets - 1);
            load[b1]++;
            if (b1 == t2.BucketOf(t)) same++;
        }
        // 4096 keys in 1024 buckets: 4 on average; a universal hash keeps the longest chain short.
        Assert.True(load.Max() <= 16, $"longest chain {load.Max()}");
        Assert.True(load.Count(n => n == 0) < 200, $"{load.Count(n => n == 0)} empty buckets");
        // Another key places the same tuples elsewhere (1 in 1024 by chance).
        Assert.True(same < 40, $"{same} of 4096 in the same bucket under both keys");
    }

    // ------------------------------------------------------------------------------------------------------------
    // SYN option fast path
    // ------------------------------------------------------------------------------------------------------------

    private static byte[] LinuxSynOptions(ushort mss, uint tsVal, uint tsEcr, byte ws) => new byte[]
    {
        2, 4, (byte)(mss >> 8), (byte)mss, 4, 2, 8, 10,
        (byte)(tsVal >> 24), (byte)(tsVal >> 16), (byte)(tsVal >> 8), (byte)tsVal,
        (byte)(tsEcr >> 24), (byte)(tsEcr >> 16), (byte)(tsEcr >> 8), (byte)tsEcr,
        1, 3, 3, ws,
    };

    private static void AssertSameAsGeneral(byte[] bytes)
    {
        bool fast = TcpOptions.TryParse(bytes, out TcpOptions f, out DropReason fr);
        TcpOptions g = default;
        bool general = TcpOptions.ParseGeneral(bytes, ref g, out DropReason gr);
        Assert.Equal(general, fast);
        Assert.Equal(gr, fr);
        if (!general) return;
        Assert.Equal(g.HasMss, f.HasMss); Assert.Equal(g.Mss, f.Mss);
        Assert.Equal(g.HasWindowScale, f.HasWindowScale); Assert.Equal(g.WindowScale, f.WindowScale);
        Assert.Equal(g.SackPermitted, f.SackPermitted);
        Assert.Equal(g.HasTimestamps, f.HasTimestamps); Assert.Equal(g.TsVal, f.TsVal); Assert.Equal(g.TsEcr, f.TsEcr);
        Assert.Equal(g.SackCount, f.SackCount);
        for (int i = 0; i < g.SackCount; i++) Assert.Equal(g.GetSack(i), f.GetSack(i));
    }

    [Fact]
    public void SynOptionFastPathMatchesTheGeneralParser()
    {
        var rng = new Random(5);
        for (int i = 0; i < 2000; i++)
        {
            byte[] b = LinuxSynOptions((ushort)rng.Next(0, 65536), (uint)rng.NextInt64(0, 1L << 32),
                (uint)rng.NextInt64(0, 1L << 32), (byte)rng.Next(0, 256));
            AssertSameAsGeneral(b);
        }
        Assert.True(TcpOptions.TryParse(LinuxSynOptions(1460, 5, 6, 20), out TcpOptions o, out _));
        Assert.Equal(14, o.WindowScale); // capped as in the general parser
        Assert.True(o.HasMss && o.SackPermitted && o.HasTimestamps && o.HasWindowScale);
        // What this stack emits for a SYN takes the same path and gives back what was emitted.
        var ours = new TcpOptions { HasMss = true, Mss = 1448, SackPermitted = true, HasTimestamps = true, TsVal = 9, TsEcr = 3, HasWindowScale = true, WindowScale = 9 };
        byte[] e = new byte[ours.Length];
        ours.Emit(e);
        Assert.True(TcpOptions.TryParse(e, out TcpOptions back, out _));
        Assert.Equal(ours.Mss, back.Mss); Assert.Equal(ours.WindowScale, back.WindowScale);
        Assert.Equal(ours.TsVal, back.TsVal); Assert.Equal(ours.TsEcr, back.TsEcr);
    }

    [Fact]
    public void SynOptionLayoutsOffThePatternFallBackToTheGeneralParser()
    {
        byte[] baseline = LinuxSynOptions(1460, 0x11223344, 0, 7);
        // Every byte of the recognised pattern changed to values that make it another layout: same answer as the
        // general parser (malformed lists included).
        byte[] values = { 0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 30, 255 };
        foreach (int at in new[] { 0, 1, 4, 5, 6, 7, 16, 17, 18 })
            foreach (byte v in values)
            {
                byte[] b = (byte[])baseline.Clone();
                b[at] = v;
                AssertSameAsGeneral(b);
            }
        // Other 20-byte layouts: MSS, NOP, NOP, TS, NOP, WS (no SACK-permitted); MSS, NOP, WS, NOP, NOP, TS.
        AssertSameAsGeneral(new byte[] { 2, 4, 5, 180, 1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7 });
        AssertSameAsGeneral(new byte[] { 2, 4, 5, 180, 1, 3, 3, 7, 1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0 });
        Assert.True(TcpOptions.TryParse(new byte[] { 2, 4, 5, 180, 1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7 }, out var o, out _));
        Assert.False(o.SackPermitted);
        Assert.True(o.HasMss && o.HasTimestamps && o.HasWindowScale);
        // Shorter or longer lists around the pattern.
        AssertSameAsGeneral(baseline[..16]);
        AssertSameAsGeneral(baseline.Concat(new byte[] { 1, 1, 1, 0 }).ToArray());
        // Random lists of length 20 starting like the pattern: the fast path only takes exact matches.
        var rng = new Random(6);
        for (int i = 0; i < 5000; i++)
        {
            byte[] b = (byte[])baseline.Clone();
            for (int k = rng.Next(1, 4); k > 0; k--) b[rng.Next(20)] = (byte)rng.Next(256);
            AssertSameAsGeneral(b);
        }
    }

    [Fact]
    public void SynWithOtherOptionLayoutsStillNegotiates()
    {
        // A peer whose SYN is not in the fast path's layout (window scale first, no SACK): the handshake negotiates
        // from the general parse.
        using var s = new TcpScript();
        s.Layer.Listen(80, 8, out _);
        byte[] opts = { 1, 3, 3, 5, 2, 4, 4, 0, 1, 1, 8, 10, 0, 0, 0, 42, 0, 0, 0, 0 };
        int hl = 20 + opts.Length;
        var buf = new byte[hl];
        TcpHeaderView.Emit(buf, 5000, 80, 1000, 0, TcpFlags.Syn, 65535, hl);
        opts.CopyTo(buf, 20);
        new TcpHeaderView(buf).Checksum = Checksum.Fold(Checksum.Add(Checksum.PseudoHeader(TcpScript.Peer, TcpScript.Us, 6, buf.Length), buf));
        s.Layer.Receive(TcpScript.Peer, TcpScript.Us, buf, PacketOffloads.None, s.NowUs);
        Sent sa = s.Expect(TcpFlags.Syn | TcpFlags.Ack);
        Assert.True(sa.Options.HasTimestamps);
        Assert.Equal(42u, sa.Options.TsEcr);
        Assert.True(sa.Options.HasWindowScale);
        Assert.False(sa.Options.SackPermitted);
        TcpConnection c = s.Layer.Find(new TcpTuple(TcpScript.Us, 80, TcpScript.Peer, 5000))!;
        Assert.Equal(5, c.SendWindowScale);
        Assert.Equal(1024 - 12, c.SendMss);
    }
}
