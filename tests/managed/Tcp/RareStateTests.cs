using System;
using UserTcp.Stack.Tcp;
using Xunit;

namespace UserTcp.Tests.Tcp;

/// <summary>
/// TcpConnection.RareState (loss recovery and keepalive state, outside the connection object): an idle or loss-free
/// connection never takes one, a loss or a non-default keepalive setting does, values read back the same with or
/// without it, and a reset connection gives it back to the layer for the next one.
/// </summary>
public class RareStateTests
{
    [Fact]
    public void LossFreeConnectionsTakeNone()
    {
        using var net = new TcpTestNet(11);
        var (c, s) = TcpLayerTransferTests.Connect(net);
        Assert.False(c.HasRareState);
        Assert.False(s.HasRareState);
        var data = new byte[1 << 20];
        new Random(3).NextBytes(data);
        Assert.Equal(data, TcpLayerTransferTests.Transfer(net, c, s, data, 30_000_000, closeAfter: false));
        Assert.Equal(data, TcpLayerTransferTests.Transfer(net, s, c, data, 30_000_000, closeAfter: false));
        net.RunFor(1_000_000); // delayed ACKs, idle buffer release
        Assert.Equal(0, net.A.Counters.TcpRetransmits);
        Assert.False(c.HasRareState);
        Assert.False(s.HasRareState);
        // Defaults read through the absent state.
        Assert.Equal(new TcpConfig().KeepAliveIdleUs, c.KeepIdleUs);
        Assert.Equal(new TcpConfig().KeepAliveCount, c.KeepCount);
        Assert.Equal(0, c.UserTimeoutUs);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void ALossTakesOneAndAResetGivesItBack(bool sack)
    {
        var cfg = new TcpConfig { Seed = 5, Sack = sack, SendBufferSize = 1 << 20, ReceiveBufferSize = 1 << 20 };
        using var net = new TcpTestNet(5, cfg, cfg);
        var (c, s) = TcpLayerTransferTests.Connect(net);
        int dataSegments = 0;
        bool dropped = false;
        net.DropFilter = (from, p) =>
        {
            if (from != net.A || dropped || p.Length < 1000 || ++dataSegments < 50) return false;
            dropped = true;
            Assert.False(c.HasRareState); // nothing before the loss
            return true;
        };
        var data = new byte[2 << 20];
        new Random(1).NextBytes(data);
        Assert.Equal(data, TcpLayerTransferTests.Transfer(net, c, s, data, 120_000_000, closeAfter: false));
        Assert.True(dropped);
        Assert.Equal(1, net.A.Counters.TcpFastRetransmits);
        Assert.True(c.HasRareState);
        Assert.True(s.HasRareState); // the receiver held out-of-order data (its assembler is kept there)
        // Close both; the client's object goes to the layer's free list with its state, which the next open hands on.
        c.UserHandle = -1;
        c.Close(abort: true, net.NowUs);
        net.RunFor(1_000_000);
        Assert.Null(net.A.Layer.FreeRareStates);
        TcpConnection next = net.A.Layer.NewConnection(new TcpTuple(net.A.Address, 1234, net.B.Address, 80));
        Assert.Same(c, next); // the released object, reset
        Assert.False(next.HasRareState);
        Assert.NotNull(net.A.Layer.FreeRareStates);
    }

    [Fact]
    public void KeepaliveSettingsOtherThanTheDefaultsLiveThere()
    {
        using var net = new TcpTestNet(12);
        var (c, s) = TcpLayerTransferTests.Connect(net);
        c.KeepIdleUs = new TcpConfig().KeepAliveIdleUs; // the default: nothing taken
        c.KeepCount = new TcpConfig().KeepAliveCount;
        c.UserTimeoutUs = 0;
        Assert.False(c.HasRareState);
        c.KeepIdleUs = 30_000_000;
        Assert.True(c.HasRareState);
        Assert.Equal(30_000_000, c.KeepIdleUs);
        Assert.Equal(new TcpConfig().KeepAliveIntervalUs, c.KeepIntervalUs);
        Assert.Equal(new TcpConfig().KeepAliveCount, c.KeepCount);
        s.UserTimeoutUs = 5_000_000;
        s.KeepCount = 3;
        Assert.Equal(5_000_000, s.UserTimeoutUs);
        Assert.Equal(3, s.KeepCount);
        Assert.Equal(new TcpConfig().KeepAliveIdleUs, s.KeepIdleUs);
    }
}
