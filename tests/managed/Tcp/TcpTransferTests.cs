using System;
using System.Security.Cryptography;
using UserTcp.Stack;
using UserTcp.Stack.Tcp;
using UserTcp.Stack.Wire;
using Xunit;

namespace UserTcp.Tests.Tcp;

public class TcpLayerTransferTests
{
    internal sealed class Events : ITcpEvents
    {
        public int Readiness, Accepts, Released;
        public void OnReadinessChanged(TcpConnection connection, Readiness readiness) => Readiness++;
        public void OnAcceptReady(TcpListener listener) => Accepts++;
        public void OnReleased(TcpConnection connection) => Released++;
    }

    internal static (TcpConnection client, TcpConnection server) Connect(TcpTestNet net, ushort port = 80)
    {
        TcpListener l = net.B.Layer.Listen(port, 16, out _)!;
        TcpConnection c = net.A.Layer.Connect(0, net.B.Address, port, net.NowUs, out SocketError e)!;
        Assert.Equal(SocketError.InProgress, e);
        c.UserHandle = 1;
        TcpConnection? s = null;
        Assert.True(net.RunUntil(() => (s ??= l.Accept()) != null && c.State == TcpState.Established, 10_000_000));
        s!.UserHandle = 2;
        net.B.Layer.CloseListener(l, net.NowUs);
        return (c, s);
    }

    /// <summary>Pumps <paramref name="data"/> from one side to the other, reading as it arrives; returns what arrived.</summary>
    internal static byte[] Transfer(TcpTestNet net, TcpConnection from, TcpConnection to, byte[] data, long maxUs, bool closeAfter = true)
    {
        var got = new byte[data.Length];
        int sent = 0, recvd = 0;
        bool eof = false;
        var buf = new byte[64 * 1024];
        bool ok = net.RunUntil(() =>
        {
            while (sent < data.Length)
            {
                int n = from.Send(data.AsSpan(sent, Math.Min(64 * 1024, data.Length - sent)), net.NowUs, out SocketError e);
                if (n == 0) { Assert.Equal(SocketError.WouldBlock, e); break; }
                sent += n;
            }
            if (sent == data.Length && closeAfter && from.State is TcpState.Established or TcpState.CloseWait)
                from.Shutdown(false, true, net.NowUs);
            while (true)
            {
                int n = to.Receive(buf, false, net.NowUs, out SocketError e);
                if (n > 0)
                {
                    Assert.True(recvd + n <= got.Length, "received more bytes than sent");
                    buf.AsSpan(0, n).CopyTo(got.AsSpan(recvd));
                    recvd += n;
                    continue;
                }
                if (e == SocketError.Success) eof = true;
                else Assert.Equal(SocketError.WouldBlock, e);
                break;
            }
            return closeAfter ? eof : recvd == data.Length;
        }, maxUs);
        Assert.True(ok, $"transfer did not finish: sent {sent} received {recvd} of {data.Length}; from {from} to {to}");
        Assert.Equal(data.Length, recvd);
        return got;
    }

    [Fact]
    public void HandshakeNegotiatesOptions()
    {
        using var net = new TcpTestNet();
        var (c, s) = Connect(net);
        Assert.Equal(TcpState.Established, c.State);
        Assert.Equal(TcpState.Established, s.State);
        Assert.True(c.TimestampsEnabled && s.TimestampsEnabled);
        Assert.True(c.SackEnabled && s.SackEnabled);
        Assert.Equal(1448, c.SendMss);
        Assert.Equal(new TcpConfig().OurWindowScale, c.SendWindowScale);
        Assert.False(c.HoldsBuffers);
        Assert.False(s.HoldsBuffers);
    }

    [Theory]
    [InlineData(0.0, 1)]
    [InlineData(1.0, 2)]
    [InlineData(5.0, 3)]
    public void OneMegabyteBothWays(double loss, int seed)
    {
        using var net = new TcpTestNet(seed);
        var (c, s) = Connect(net);
        net.LossPercent = loss;
        var data = new byte[1 << 20];
        new Random(seed).NextBytes(data);
        byte[] got = Transfer(net, c, s, data, 600_000_000);
        Assert.Equal(SHA256.HashData(data), SHA256.HashData(got));
        byte[] back = Transfer(net, s, c, data, 600_000_000);
        Assert.Equal(SHA256.HashData(data), SHA256.HashData(back));
        net.LossPercent = 0;
        c.Close(false, net.NowUs);
        s.Close(false, net.NowUs);
        Assert.True(net.RunUntil(() => net.A.Layer.ConnectionCount == 0 && net.B.Layer.ConnectionCount == 0, 200_000_000));
        Assert.Equal(0, net.A.Buffers.OutstandingBlocks);
        Assert.Equal(0, net.B.Buffers.OutstandingBlocks);
        Assert.Equal(0, net.InFlightCount);
        Assert.Equal(0, net.A.Pool.Outstanding);
        Assert.Equal(0, net.B.Pool.Outstanding);
    }
}

public class TcpLayerStatsProbe
{
    [Fact]
    public void LossCausesRetransmissions()
    {
        using var net = new TcpTestNet(7);
        var (c, s) = TcpLayerTransferTests.Connect(net);
        net.LossPercent = 5;
        var data = new byte[1 << 20];
        new Random(7).NextBytes(data);
        long t0 = net.NowUs;
        TcpLayerTransferTests.Transfer(net, c, s, data, 600_000_000);
        Assert.True(net.Lost > 0);
        Assert.True(net.A.Counters.TcpRetransmits > 0);
        Console.WriteLine($"lost={net.Lost} rtx={net.A.Counters.TcpRetransmits} fast={net.A.Counters.TcpFastRetransmits} rto={net.A.Counters.TcpTimeouts} time={(net.NowUs - t0) / 1000}ms srtt={c.SmoothedRttUs} cwnd={c.CongestionWindow}");
    }
}
