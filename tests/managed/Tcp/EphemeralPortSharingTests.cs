using UserTcp.Stack;
using UserTcp.Stack.Tcp;
using Xunit;

namespace UserTcp.Tests.Tcp;

/// <summary>Active opens share an ephemeral port once none is free, as long as the 4-tuple is unique (Linux's
/// connect() without bind()): one local address reaches each remote port from the whole range.</summary>
public class EphemeralPortSharingTests
{
    [Fact]
    public void OncePortsRunOutActiveOpensShareThemAcrossDestinations()
    {
        var ca = new TcpConfig { Seed = 4, EphemeralPortFirst = 40000, EphemeralPortLast = 40001 };
        var cb = new TcpConfig { Seed = 5 };
        using var net = new TcpTestNet(7, ca, cb);
        TcpListener l80 = net.B.Layer.Listen(80, 16, out _)!;
        TcpListener l81 = net.B.Layer.Listen(81, 16, out _)!;
        var conns = new System.Collections.Generic.List<TcpConnection>();
        // Two free ports: both go to port 80.
        for (int i = 0; i < 2; i++) conns.Add(net.A.Layer.Connect(0, net.B.Address, 80, net.NowUs, out _)!);
        // A third to port 80 has no unused 4-tuple left.
        Assert.Null(net.A.Layer.Connect(0, net.B.Address, 80, net.NowUs, out SocketError err));
        Assert.Equal(SocketError.AddressNotAvailable, err);
        // Port 81 reuses both local ports.
        for (int i = 0; i < 2; i++) conns.Add(net.A.Layer.Connect(0, net.B.Address, 81, net.NowUs, out _)!);
        Assert.Null(net.A.Layer.Connect(0, net.B.Address, 81, net.NowUs, out _));
        net.RunUntil(() => l80.PendingAccepts == 2 && l81.PendingAccepts == 2, 5_000_000);
        Assert.All(conns, c => Assert.Equal(TcpState.Established, c.State));
        Assert.Equal(2, new System.Collections.Generic.HashSet<ushort>(conns.ConvertAll(c => c.LocalPort)).Count);

        // A port held by a bound socket (not an ephemeral active open) is never shared.
        net.A.Layer.AcquirePort(40000);
        conns[1].Abort(net.NowUs); // frees one tuple towards port 80 (whichever local port it used)
        ushort freed = conns[1].LocalPort;
        TcpConnection? again = net.A.Layer.Connect(0, net.B.Address, 80, net.NowUs, out _);
        if (freed == 40000) Assert.Null(again); // 40000 also has a bound holder now: not shareable
        else Assert.Equal(freed, again!.LocalPort);
    }
}
