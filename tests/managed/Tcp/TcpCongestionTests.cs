using System;
using UserTcp.Stack;
using UserTcp.Stack.Phy;
using UserTcp.Stack.Tcp;
using UserTcp.Stack.Wire;
using Xunit;

namespace UserTcp.Tests.Tcp;

public class TcpCongestionTests
{
    [Theory]
    [InlineData(CongestionAlgorithm.NewReno, true)]
    [InlineData(CongestionAlgorithm.NewReno, false)]
    [InlineData(CongestionAlgorithm.Cubic, true)]
    [InlineData(CongestionAlgorithm.Cubic, false)]
    public void CwndGrowsThenReactsToOneLoss(CongestionAlgorithm algorithm, bool sack)
    {
        var cfg = new TcpConfig { Seed = 5, CongestionControl = algorithm, Sack = sack, SendBufferSize = 1 << 20, ReceiveBufferSize = 1 << 20 };
        using var net = new TcpTestNet(5, cfg, cfg);
        var (c, s) = TcpLayerTransferTests.Connect(net);
        long initial = c.CongestionWindow;
        Assert.Equal(10 * c.SendMss, initial); // RFC 6928
        int dataSegments = 0;
        bool dropped = false;
        long cwndAtLoss = 0;
        // Drop exactly one full-sized data segment from A once slow start has opened the window.
        long maxBeforeRecovery = 0;
        net.DropFilter = (from, p) =>
        {
            if (net.A.Counters.TcpFastRetransmits == 0) maxBeforeRecovery = Math.Max(maxBeforeRecovery, c.CongestionWindow);
            if (from != net.A || dropped || p.Length < 1000) return false;
            if (++dataSegments < 300) return false;
            dropped = true;
            cwndAtLoss = c.CongestionWindow;
            return true;
        };
        var data = new byte[4 << 20];
        new Random(1).NextBytes(data);
        byte[] got = TcpLayerTransferTests.Transfer(net, c, s, data, 120_000_000, closeAfter: false);
        Assert.Equal(data, got);
        Assert.True(dropped);
        Assert.True(cwndAtLoss > 4 * initial, $"slow start should have grown cwnd: {cwndAtLoss} vs {initial}");
        Assert.Equal(1, net.A.Counters.TcpFastRetransmits);
        Assert.Equal(0, net.A.Counters.TcpTimeouts); // recovered without a timeout
        double factor = algorithm == CongestionAlgorithm.Cubic ? 0.7 : 0.5;
        // The loss is detected one RTT after the drop, when slow start has grown cwnd further: ssthresh is the
        // multiplicative decrease of the window at detection (FlightSize/2 for NewReno, 0.7*cwnd for CUBIC).
        Assert.InRange(c.SlowStartThreshold, (long)(maxBeforeRecovery * factor) - 4 * c.SendMss, (long)(maxBeforeRecovery * factor) + 2 * c.SendMss);
        Assert.True(c.SlowStartThreshold >= 2 * c.SendMss);
    }

    [Fact]
    public void TimeoutCollapsesWindowToOneSegment()
    {
        using var net = new TcpTestNet(6);
        var (c, s) = TcpLayerTransferTests.Connect(net);
        var data = new byte[200_000];
        TcpLayerTransferTests.Transfer(net, c, s, data, 10_000_000, closeAfter: false);
        net.RunFor(1_000_000);
        // Blackhole the path for a while: everything in flight is lost, the RTO fires.
        net.DropFilter = (from, p) => true;
        c.Send(new byte[50_000], net.NowUs, out _);
        net.RunFor(c.RtoUs + 10_000);
        Assert.True(net.A.Counters.TcpTimeouts >= 1);
        Assert.Equal(c.SendMss, c.CongestionWindow);
        net.DropFilter = null;
        var buf = new byte[100_000];
        int got = 0;
        Assert.True(net.RunUntil(() => { got += Math.Max(0, s.Receive(buf, false, net.NowUs, out _)); return got == 50_000; }, 60_000_000));
    }
}

public class TcpSackRecoveryTests
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void SeveralLossesInOneWindowRecoverWithoutTimeout(bool sack)
    {
        var cfg = new TcpConfig { Seed = 8, Sack = sack, CongestionControl = CongestionAlgorithm.NewReno, SendBufferSize = 1 << 20, ReceiveBufferSize = 1 << 20 };
        using var net = new TcpTestNet(8, cfg, cfg);
        net.DelayUs = 5_000; // 10 ms RTT so RTO (>= 200 ms) is far from the recovery time
        var (c, s) = TcpLayerTransferTests.Connect(net);
        int dataSegments = 0;
        net.DropFilter = (from, p) =>
        {
            if (from != net.A || p.Length < 1000) return false;
            dataSegments++;
            return dataSegments is 200 or 205 or 211; // three holes in one window
        };
        var data = new byte[2 << 20];
        new Random(2).NextBytes(data);
        Assert.Equal(data, TcpLayerTransferTests.Transfer(net, c, s, data, 60_000_000, closeAfter: false));
        Assert.Equal(0, net.A.Counters.TcpTimeouts);
        Assert.Equal(1, net.A.Counters.TcpFastRetransmits); // one recovery episode for all three
        Assert.Equal(3, net.A.Counters.TcpRetransmits);
    }
}
