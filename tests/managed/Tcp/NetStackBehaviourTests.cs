using System;
using UserTcp.Stack;
using UserTcp.Stack.Phy;
using UserTcp.Stack.Tcp;
using UserTcp.Stack.Wire;
using Xunit;

namespace UserTcp.Tests.Tcp;

/// <summary>Integration behaviours through two NetStacks: flow control, timers, SYN floods, Nagle.</summary>
public class NetStackBehaviourTests
{
    [Fact]
    public void ReceiverStopsReadingZeroWindowThenResumes()
    {
        var small = new TcpConfig { Seed = 3, ReceiveBufferSize = 8192, SendBufferSize = 65536 };
        using var p = new StackPair(tcpA: new TcpConfig { Seed = 5, SendBufferSize = 65536 }, tcpB: small);
        var (l, c, s) = NetStackTests.Connect(p);
        var data = new byte[200_000];
        new Random(9).NextBytes(data);
        int sent = 0;
        // The receiver does not read: the sender fills the 8 KiB window, then its own buffer, then blocks.
        Assert.True(p.RunUntil(() =>
        {
            int n = p.A.Send(c, data.AsSpan(sent, Math.Min(16384, data.Length - sent)), out SocketError e);
            sent += n;
            return n == 0 && e == SocketError.WouldBlock;
        }, 10_000_000), $"sent {sent}");
        p.RunUntil(() => false, 30_000_000); // 30 s of zero window: persist probes keep the connection alive
        Assert.Equal(TcpState.Established, p.A.GetState(c));
        Assert.InRange(p.B.Tcp.Find(new TcpTuple(StackPair.AddrB, 8080, StackPair.AddrA, LocalPort(p.A, c)))!.BytesReadable, 8192 - 1448, 8192);
        // Now read everything: the window opens and the rest flows.
        var got = new byte[data.Length];
        int recvd = 0;
        var buf = new byte[4096];
        Assert.True(p.RunUntil(() =>
        {
            if (sent < data.Length) sent += p.A.Send(c, data.AsSpan(sent, Math.Min(16384, data.Length - sent)), out _);
            int n;
            while ((n = p.B.Receive(s, buf, false, out _)) > 0) { buf.AsSpan(0, n).CopyTo(got.AsSpan(recvd)); recvd += n; }
            return recvd == data.Length;
        }, 60_000_000));
        Assert.Equal(data, got);
        NetStackTests.CloseAndCheckLeaks(p, (p.A, c), (p.B, s), (p.B, l));
    }

    private static ushort LocalPort(NetStack st, int h)
    {
        st.GetLocalEndpoint(h, out _, out ushort port);
        return port;
    }

    [Fact]
    public void KeepaliveAndUserTimeoutThroughOptions()
    {
        using var p = new StackPair();
        var (l, c, s) = NetStackTests.Connect(p);
        Assert.Equal(SocketError.Success, p.A.SetOption(c, SocketOption.KeepIdleUs, 5_000_000));
        Assert.Equal(SocketError.Success, p.A.SetOption(c, SocketOption.KeepIntervalUs, 1_000_000));
        Assert.Equal(SocketError.Success, p.A.SetOption(c, SocketOption.KeepCount, 2));
        Assert.Equal(SocketError.Success, p.A.SetOption(c, SocketOption.KeepAlive, 1));
        Assert.Equal(SocketError.Success, p.A.GetOption(c, SocketOption.KeepCount, out long kc));
        Assert.Equal(2, kc);
        // Healthy peer: probes are answered for a long idle time.
        Assert.False(p.RunUntil(() => p.A.GetState(c) != TcpState.Established, 60_000_000));
        // Peer vanishes (its stack simply stops being polled: B's device keeps the frames, nothing answers).
        long t0 = p.NowUs;
        bool dead = RunOnlyA(p, () => p.A.GetState(c) == TcpState.Closed, 60_000_000);
        Assert.True(dead);
        long took = p.NowUs - t0;
        Assert.InRange(took, 2_000_000, 8_000_000); // rest of the 5 s idle period + 2 unanswered probes 1 s apart
        p.A.GetError(c, out SocketError err);
        Assert.Equal(SocketError.TimedOut, err);

        // User timeout: unacknowledged data with a silent peer is dropped after 3 s, before the retry count would.
        using var q = new StackPair();
        var (l2, c2, s2) = NetStackTests.Connect(q);
        q.A.SetOption(c2, SocketOption.UserTimeoutUs, 3_000_000);
        long t1 = q.NowUs;
        q.A.Send(c2, new byte[1000], out _);
        Assert.True(RunOnlyA(q, () => q.A.GetState(c2) == TcpState.Closed, 60_000_000));
        Assert.InRange(q.NowUs - t1, 2_500_000, 5_000_000);
        q.A.GetError(c2, out err);
        Assert.Equal(SocketError.TimedOut, err);
        _ = l; _ = s; _ = l2; _ = s2;
    }

    /// <summary>Drives only stack A (B is "gone").</summary>
    private static bool RunOnlyA(StackPair p, Func<bool> done, long maxUs)
    {
        long end = p.NowUs + maxUs;
        while (true)
        {
            p.DevA.Advance(p.NowUs);
            p.A.Poll(p.NowUs);
            if (done()) return true;
            long next = Math.Min(p.A.PollAt(), p.DevA.NextReleaseUs);
            if (next > end) return false;
            p.NowUs = Math.Max(p.NowUs + 1, next);
        }
    }

    [Fact]
    public void TimeWaitExpiresAfterTwoMsl()
    {
        var cfg = new TcpConfig { Seed = 4, MslUs = 2_000_000 };
        using var p = new StackPair(tcpA: cfg);
        var (l, c, s) = NetStackTests.Connect(p);
        p.A.Close(c); // active close: A ends in TIME-WAIT
        Assert.True(p.RunUntil(() => p.B.GetState(s) == TcpState.CloseWait, 1_000_000));
        p.B.Close(s);
        Assert.True(p.RunUntil(() => p.B.Tcp.ConnectionCount == 0, 1_000_000));
        Assert.Equal(1, p.A.Tcp.ConnectionCount); // TIME-WAIT
        long t0 = p.NowUs;
        Assert.True(p.RunUntil(() => p.A.Tcp.ConnectionCount == 0, 10_000_000));
        Assert.InRange(p.NowUs - t0, 3_500_000, 4_100_000);
        p.B.Close(l);
    }

    [Fact]
    public void SynFloodAnsweredWithCookiesAndRealClientsStillConnect()
    {
        using var p = new StackPair(poolSize: 4096);
        p.B.Open(out int l);
        p.B.Bind(l, Ipv4Address.Any, 80);
        p.B.Listen(l, 4);
        // Flood: raw SYNs from many source ports that never complete (their SYN-ACKs go to A, which answers RST...
        // so use spoofed ports A does not own: A replies RST to the SYN-ACK, which B ignores or uses to drop state).
        var flood = new TcpTestSynSource(p);
        for (int i = 0; i < 200; i++) flood.SendSyn((ushort)(20000 + i));
        p.RunUntil(() => false, 100_000);
        Assert.True(p.B.Counters.TcpSynCookiesSent > 0, "backlog overflow must switch to cookies");
        // Real clients connect and are accepted.
        int accepted = 0;
        for (int i = 0; i < 3; i++)
        {
            p.A.Open(out int c);
            Assert.Equal(SocketError.InProgress, p.A.Connect(c, StackPair.AddrB, 80));
            Assert.True(p.RunUntil(() => p.A.GetState(c) == TcpState.Established, 20_000_000), $"client {i}: {p.A.GetState(c)}");
            Assert.True(p.RunUntil(() => p.B.Accept(l, out _, out _, out _) == SocketError.Success, 5_000_000));
            accepted++;
        }
        Assert.Equal(3, accepted);
    }

    [Fact]
    public void NagleHoldsSecondSmallSegmentUntilAck_NoDelaySendsAtOnce()
    {
        using var p = new StackPair(new FaultConfig { DelayUs = 10_000 });
        var (l, c, s) = NetStackTests.Connect(p);
        long before = p.A.Counters.TcpSegmentsOut;
        p.A.Send(c, new byte[10], out _);
        p.A.Send(c, new byte[10], out _);
        p.A.Send(c, new byte[10], out _);
        Assert.Equal(1, p.A.Counters.TcpSegmentsOut - before); // the rest waits for the ACK
        Assert.True(p.RunUntil(() => p.B.Tcp.Find(new TcpTuple(StackPair.AddrB, 8080, StackPair.AddrA, LocalPort(p.A, c)))!.BytesReadable == 30, 1_000_000));
        p.A.SetOption(c, SocketOption.NoDelay, 1);
        before = p.A.Counters.TcpSegmentsOut;
        p.A.Send(c, new byte[10], out _);
        p.A.Send(c, new byte[10], out _);
        Assert.Equal(2, p.A.Counters.TcpSegmentsOut - before);
        _ = l; _ = s;
    }
}

/// <summary>Injects raw SYN frames from a spoofed address on A's side of the link (a flood source).</summary>
internal sealed unsafe class TcpTestSynSource
{
    private readonly StackPair _p;
    public TcpTestSynSource(StackPair p) => _p = p;

    public void SendSyn(ushort srcPort)
    {
        Span<PacketBuf> one = stackalloc PacketBuf[1];
        Assert.Equal(1, _p.Link.A.Allocate(one));
        ref PacketBuf f = ref one[0];
        var spoofed = new Ipv4Address(10, 0, 0, 77);
        int len = 14 + 20 + 20;
        f.SetLength(len);
        Span<byte> d = f.Data;
        new MacAddress(0x02_00_00_00_00_02).Write(d);
        new MacAddress(0x02_00_00_00_00_01).Write(d[6..]);
        d[12] = 0x08; d[13] = 0x00;
        Span<byte> ip = d[14..];
        ip.Clear();
        ip[0] = 0x45; ip[2] = 0; ip[3] = 40; ip[6] = 0x40; ip[8] = 64; ip[9] = 6;
        spoofed.Write(ip[12..]);
        StackPair.AddrB.Write(ip[16..]);
        ushort ipsum = Checksum.Compute(ip[..20]);
        ip[10] = (byte)(ipsum >> 8); ip[11] = (byte)ipsum;
        Span<byte> tcp = ip[20..40];
        TcpHeaderView.Emit(tcp, srcPort, 80, 12345u * srcPort, 0, TcpFlags.Syn, 65535, 20);
        ushort ts = Checksum.Fold(Checksum.Add(Checksum.PseudoHeader(spoofed, StackPair.AddrB, 6, 20), tcp));
        new TcpHeaderView(tcp).Checksum = ts;
        Assert.Equal(1, _p.Link.A.Transmit(one));
    }
}
