using System;
using UserTcp.Stack.Tcp;
using Xunit;

namespace UserTcp.Tests.Tcp;

/// <summary>
/// CUBIC's side object (<see cref="CubicEpoch"/>: W_max, K, W_est, cwnd_prior, the last RTT): a loss-free connection
/// holds none, its first congestion event takes one from the layer's free list (or a new one), a reset connection
/// gives it back, and a recycled object behaves like a new one.
/// </summary>
public class CubicEpochTests
{
    [Fact]
    public void LossFreeConnectionsHoldNone()
    {
        using var net = new TcpTestNet(21);
        var (c, s) = TcpLayerTransferTests.Connect(net);
        Assert.Equal(CongestionAlgorithm.Cubic, c.CongestionAlgorithm);
        var data = new byte[1 << 20];
        new Random(4).NextBytes(data);
        Assert.Equal(data, TcpLayerTransferTests.Transfer(net, c, s, data, 30_000_000, closeAfter: false));
        Assert.Equal(data, TcpLayerTransferTests.Transfer(net, s, c, data, 30_000_000, closeAfter: false));
        Assert.Equal(0, net.A.Counters.TcpRetransmits + net.B.Counters.TcpRetransmits);
        Assert.False(c.HasCubicEpoch);
        Assert.False(s.HasCubicEpoch);
    }

    [Fact]
    public void ALossTakesOneAResetGivesItBackAndTheNextLossReusesIt()
    {
        var cfg = new TcpConfig { Seed = 6, SendBufferSize = 1 << 20, ReceiveBufferSize = 1 << 20 };
        using var net = new TcpTestNet(6, cfg, cfg);
        var (c, s) = TcpLayerTransferTests.Connect(net);
        int dataSegments = 0, drops = 0;
        net.DropFilter = (from, p) =>
        {
            if (from != net.A || drops >= 1 || p.Length < 1000 || ++dataSegments < 50) return false;
            drops++;
            Assert.False(c.HasCubicEpoch); // nothing before the loss
            return true;
        };
        var data = new byte[2 << 20];
        new Random(2).NextBytes(data);
        Assert.Equal(data, TcpLayerTransferTests.Transfer(net, c, s, data, 120_000_000, closeAfter: false));
        Assert.Equal(1, drops);
        Assert.True(c.HasCubicEpoch);
        Assert.False(s.HasCubicEpoch); // the receiver had no congestion event
        Assert.Null(net.A.Layer.FreeCubicEpochs);

        c.UserHandle = -1;
        c.Close(abort: true, net.NowUs);
        net.RunFor(1_000_000);
        TcpConnection next = net.A.Layer.NewConnection(new TcpTuple(net.A.Address, 1234, net.B.Address, 80));
        Assert.Same(c, next);
        Assert.False(next.HasCubicEpoch);
        CubicEpoch? freed = net.A.Layer.FreeCubicEpochs;
        Assert.NotNull(freed);

        // A second connection's first loss takes the freed object instead of allocating one.
        var (c2, s2) = TcpLayerTransferTests.Connect(net, port: 81);
        dataSegments = 0;
        drops = 0;
        Assert.Equal(data, TcpLayerTransferTests.Transfer(net, c2, s2, data, 120_000_000, closeAfter: false));
        Assert.Equal(1, drops);
        Assert.True(c2.HasCubicEpoch);
        Assert.Null(net.A.Layer.FreeCubicEpochs);
    }

    [Fact]
    public void ARecycledEpochBehavesLikeANewOne()
    {
        var fresh = new CongestionState(CongestionAlgorithm.Cubic, 1000);
        var recycled = new CongestionState(CongestionAlgorithm.Cubic, 1000);
        var old = new CubicEpoch();
        old.WMax = 5000; old.K = 3; old.WEst = 4000; old.CwndPrior = 6000; old.LastRttUs = 900_000;
        Assert.True(recycled.WantsEpoch);
        recycled.AttachEpoch(old);
        Assert.False(recycled.WantsEpoch);
        long now = 0;
        void Drive(ref CongestionState cc)
        {
            long t = 0;
            for (int i = 0; i < 40; i++) cc.OnAck(1000, 10_000, t += 1000, 1_000_000);
            cc.OnEnterRecovery(t, 60_000);
            cc.OnExitRecovery(t += 10_000);
            for (int i = 0; i < 400; i++) cc.OnAck(1000, 10_000, t += 500, 1_000_000);
            cc.OnRetransmitTimeout(t, 80_000);
            for (int i = 0; i < 200; i++) cc.OnAck(1000, 10_000, t += 500, 1_000_000);
            now = t;
        }
        Drive(ref fresh);
        Drive(ref recycled);
        Assert.True(fresh.HasEpoch); // allocated its own at the first congestion event
        Assert.Equal(fresh.Cwnd, recycled.Cwnd);
        Assert.Equal(fresh.Ssthresh, recycled.Ssthresh);
        Assert.Equal(fresh.WMaxBytes, recycled.WMaxBytes);
        Assert.Equal(fresh.KUs, recycled.KUs);
        Assert.Equal(fresh.WCubicBytes(1.5), recycled.WCubicBytes(1.5));
        Assert.True(now > 0);
    }
}
