using System;
using System.Reflection;
using UserTcp.Stack;
using UserTcp.Stack.Phy;
using UserTcp.Stack.Tcp;
using UserTcp.Stack.Wire;
using Xunit;
using Xunit.Abstractions;

namespace UserTcp.Tests.Tcp;

/// <summary>
/// Short connections in steady state: open, connect, accept, one request and answer, close on both ends (the client
/// closes first and goes through TIME-WAIT), repeated. After a warm-up pass that fills the pools (connection objects,
/// sockets, tables) the loop must allocate nothing: each connection's objects are reused, not collected.
/// </summary>
public class ShortConnectionAllocationTests
{
    private readonly ITestOutputHelper _out;
    public ShortConnectionAllocationTests(ITestOutputHelper output) => _out = output;

    private sealed class Churn
    {
        public StackPair P = null!;
        public int Listener;
        public readonly byte[] Request = new byte[64], Buf = new byte[256];
        private int _c = -1, _s = -1, _phase;
        public int Done;

        // xUnit's Assert.Equal allocates (boxed comparers), so the measured loop checks by hand.
        private static void Check(bool ok)
        {
            if (!ok) throw new InvalidOperationException("unexpected result in the short-connection loop");
        }

        // One step of the state machine of the current connection; returns true when a connection completed.
        public bool Step()
        {
            NetStack a = P.A, b = P.B;
            switch (_phase)
            {
                case 0:
                    Check(a.Open(out _c) == SocketError.Success);
                    Check(a.Connect(_c, StackPair.AddrB, 8080) == SocketError.InProgress);
                    _phase = 1;
                    return false;
                case 1:
                    if (b.Accept(Listener, out _s, out _, out _) != SocketError.Success) return false;
                    _phase = 2;
                    goto case 2;
                case 2:
                    if ((a.GetReadiness(_c) & Readiness.Out) == 0) return false;
                    Check(a.Send(_c, Request, out _) == Request.Length);
                    _phase = 3;
                    goto case 3;
                case 3:
                    if (b.Receive(_s, Buf, false, out _) != Request.Length) return false;
                    Check(b.Send(_s, Request, out _) == Request.Length);
                    _phase = 4;
                    goto case 4;
                case 4:
                    if (a.Receive(_c, Buf, false, out _) != Request.Length) return false;
                    Check(a.Close(_c) == SocketError.Success); // the client closes first: TIME-WAIT on A
                    _phase = 5;
                    goto case 5;
                case 5:
                    if (b.Receive(_s, Buf, false, out _) != 0) return false; // end of stream
                    Check(b.Close(_s) == SocketError.Success);
                    _phase = 0;
                    Done++;
                    return true;
            }
            return false;
        }
    }

    [Fact]
    public void SteadyShortConnectionsAllocateNothing()
    {
        // TIME-WAIT is shortened so that the steady state (connections leaving TIME-WAIT as fast as new ones enter)
        // comes within the warm-up; the pool bound is far above the number of connections alive at once.
        var cfgA = new TcpConfig { Seed = 1, MslUs = 100_000 };
        var cfgB = new TcpConfig { Seed = 2, MslUs = 100_000 };
        using var p = new StackPair(new FaultConfig { DelayUs = 100 }, tcpA: cfgA, tcpB: cfgB);
        Assert.Equal(SocketError.Success, p.B.Open(out int l));
        Assert.Equal(SocketError.Success, p.B.Bind(l, Ipv4Address.Any, 8080));
        Assert.Equal(SocketError.Success, p.B.Listen(l, 64));
        var churn = new Churn { P = p, Listener = l };
        int target = 0;
        Func<bool> step = () =>
        {
            while (churn.Step()) { if (churn.Done >= target) return true; }
            return churn.Done >= target;
        };
        // Warm-up: JIT, ARP, pools, table growth, several TIME-WAIT periods.
        target = 3000;
        Assert.True(p.RunUntil(step, 100_000_000_000));
        const int n = 3000;
        target += n;
        int gen0 = GC.CollectionCount(0);
        long before = GC.GetAllocatedBytesForCurrentThread();
        bool done = p.RunUntil(step, 100_000_000_000);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        int collections = GC.CollectionCount(0) - gen0;
        Assert.True(done);
        _out.WriteLine($"{n} short connections: {allocated} bytes allocated ({(double)allocated / n:F1} per connection), " +
            $"{collections} gen0 collections; A connections now {p.A.Tcp.ConnectionCount}");
        Assert.Equal(0, allocated);
        NetStackTests.CloseAndCheckLeaks(p, (p.B, l));
    }

    [Fact]
    public void ReusedConnectionIsIndistinguishableFromANewOne()
    {
        // A connection that went through everything that leaves state behind (options, data both ways with losses
        // so SACK, timers and reassembly run, TIME-WAIT on A) is released to the pool; the next open gets it back.
        using var p = new StackPair(new FaultConfig { DelayUs = 100, LossPercent = 5, ReorderPercent = 5 });
        var (l, c, s) = NetStackTests.Connect(p);
        var data = new byte[300_000];
        new Random(5).NextBytes(data);
        Assert.Equal(SocketError.Success, p.A.SetOption(c, SocketOption.NoDelay, 1));
        Assert.Equal(SocketError.Success, p.A.SetOption(c, SocketOption.KeepAlive, 1));
        NetStackTests.Transfer(p, p.A, c, p.B, s, data, 100_000_000);
        NetStackTests.CloseAndCheckLeaks(p, (p.A, c), (p.B, s), (p.B, l));
        Assert.True(p.A.Tcp.PooledConnections > 0);
        Assert.True(p.B.Tcp.PooledConnections > 0);
        var tuple = new TcpTuple(StackPair.AddrA, 40000, StackPair.AddrB, 80);
        foreach (TcpLayer layer in new[] { p.A.Tcp, p.B.Tcp })
        {
            int pooled = layer.PooledConnections;
            TcpConnection reused = layer.NewConnection(tuple);
            Assert.Equal(pooled - 1, layer.PooledConnections);
            var fresh = new TcpConnection(layer, tuple);
            Assert.NotSame(fresh, reused);
            int compared = 0;
            for (Type? t = typeof(TcpConnection); t != null && t != typeof(object); t = t.BaseType)
            {
                foreach (FieldInfo f in t.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic
                    | BindingFlags.DeclaredOnly))
                {
                    Assert.True(Equals(f.GetValue(fresh), f.GetValue(reused)),
                        $"{t.Name}.{f.Name}: new {f.GetValue(fresh)}, reused {f.GetValue(reused)}");
                    compared++;
                }
            }
            // The state kept in TcpConnection.RareState reads through properties with the old fields' names.
            foreach (PropertyInfo pr in typeof(TcpConnection).GetProperties(BindingFlags.Instance | BindingFlags.NonPublic
                | BindingFlags.DeclaredOnly))
            {
                if (!pr.Name.StartsWith('_') && pr.Name is not ("Listener" or "NextInQueue")) continue;
                Assert.True(Equals(pr.GetValue(fresh), pr.GetValue(reused)),
                    $"{pr.Name}: new {pr.GetValue(fresh)}, reused {pr.GetValue(reused)}");
                compared++;
            }
            Assert.False(reused.HasRareState);
            _out.WriteLine($"{compared} fields equal");
            Assert.True(compared > 60, $"only {compared} fields");
        }
    }

    [Fact]
    public void ReleaseTwiceKeepsOneCopyOnTheFreeList()
    {
        // close() of a connection that already finished on its own, then a second release path: the object must be
        // on the free list once, or two later opens would share it.
        using var p = new StackPair();
        var (l, c, s) = NetStackTests.Connect(p);
        TcpConnection conn = p.A.GetConnection(c)!;
        Assert.Equal(SocketError.Success, p.B.Close(s, abort: true)); // RST: A's connection closes under its handle
        Assert.True(p.RunUntil(() => conn.State == TcpState.Closed, 1_000_000));
        int before = p.A.Tcp.PooledConnections;
        Assert.Equal(SocketError.Success, p.A.Close(c));
        Assert.Equal(before + 1, p.A.Tcp.PooledConnections);
        conn.Close(abort: false, p.NowUs); // a stale reference closing again: no effect on the pool
        Assert.Equal(before + 1, p.A.Tcp.PooledConnections);
        var t1 = p.A.Tcp.NewConnection(new TcpTuple(StackPair.AddrA, 1, StackPair.AddrB, 2));
        var t2 = p.A.Tcp.NewConnection(new TcpTuple(StackPair.AddrA, 3, StackPair.AddrB, 4));
        Assert.NotSame(t1, t2);
        NetStackTests.CloseAndCheckLeaks(p, (p.B, l));
    }
}
