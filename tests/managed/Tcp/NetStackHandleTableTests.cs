using System.Reflection;
using UserTcp.Stack;
using UserTcp.Stack.Tcp;
using Xunit;

namespace UserTcp.Tests.Tcp;

/// <summary>NetStack's handle table: a connected handle's slot holds its <see cref="TcpConnection"/> (no object per
/// connection in the façade), and what only the socket knew (SO_LINGER, SO_REUSEADDR, options set before connect)
/// still takes effect.</summary>
public class NetStackHandleTableTests
{
    private static object? SlotOf(NetStack st, int handle)
    {
        var slots = (ChunkedTable<object>)typeof(NetStack).GetField("_slots", BindingFlags.Instance | BindingFlags.NonPublic)!.GetValue(st)!;
        return slots.Get(handle);
    }

    [Fact]
    public void ConnectedAndAcceptedHandlesHoldTheConnectionItself()
    {
        using var p = new StackPair();
        var (l, c, s) = NetStackTests.Connect(p);
        Assert.IsType<TcpConnection>(SlotOf(p.A, c));
        Assert.Same(p.A.GetConnection(c), SlotOf(p.A, c));
        Assert.Same(p.B.GetConnection(s), SlotOf(p.B, s));
        Assert.IsNotType<TcpConnection>(SlotOf(p.B, l));
        Assert.Null(p.B.GetConnection(l));
        Assert.Equal(TcpState.Listen, p.B.GetState(l));
        NetStackTests.CloseAndCheckLeaks(p, (p.A, c), (p.B, s), (p.B, l));
    }

    [Fact]
    public void FreedHandlesAreReusedLatestFirstAndReportBadHandle()
    {
        using var p = new StackPair();
        Assert.Equal(SocketError.Success, p.A.Open(out int h1));
        Assert.Equal(SocketError.Success, p.A.Open(out int h2));
        Assert.Equal(SocketError.Success, p.A.Open(out int h3));
        Assert.Equal(3, p.A.OpenSockets);
        Assert.Equal(SocketError.Success, p.A.Close(h1));
        Assert.Equal(SocketError.Success, p.A.Close(h3));
        Assert.Equal(SocketError.BadHandle, p.A.Close(h3));
        Assert.Equal(SocketError.BadHandle, p.A.SetOption(h1, SocketOption.NoDelay, 1));
        Assert.Equal(SocketError.BadHandle, p.A.GetOption(h1, SocketOption.NoDelay, out _));
        Assert.Equal(SocketError.BadHandle, p.A.GetError(h1, out _));
        Assert.Equal(Readiness.Err | Readiness.Hup, p.A.GetReadiness(h3));
        Assert.Equal(1, p.A.OpenSockets);
        Assert.Equal(SocketError.Success, p.A.Open(out int again));
        Assert.Equal(h3, again);
        // A reused handle starts from the defaults, whatever its earlier socket had set.
        Assert.Equal(SocketError.Success, p.A.GetOption(again, SocketOption.NoDelay, out long nd));
        Assert.Equal(0, nd);
        Assert.Equal(SocketError.Success, p.A.GetOption(again, SocketOption.LingerUs, out long linger));
        Assert.Equal(-1, linger);
        Assert.Equal(SocketError.Success, p.A.Open(out int next));
        Assert.Equal(h1, next);
        Assert.Equal(SocketError.Success, p.A.Close(h2));
        Assert.Equal(SocketError.Success, p.A.Close(again));
        Assert.Equal(SocketError.Success, p.A.Close(next));
        Assert.Equal(0, p.A.OpenSockets);
    }

    [Fact]
    public void OptionsSetBeforeConnectReadBackFromTheConnection()
    {
        using var p = new StackPair();
        Assert.Equal(SocketError.Success, p.B.Open(out int l));
        Assert.Equal(SocketError.Success, p.B.SetOption(l, SocketOption.KeepIdleUs, 30_000_000));
        Assert.Equal(SocketError.Success, p.B.Bind(l, default, 8080));
        Assert.Equal(SocketError.Success, p.B.Listen(l, 16));
        Assert.Equal(SocketError.Success, p.A.Open(out int c));
        Assert.Equal(SocketError.Success, p.A.SetOption(c, SocketOption.ReuseAddress, 1));
        Assert.Equal(SocketError.Success, p.A.SetOption(c, SocketOption.NoDelay, 1));
        Assert.Equal(SocketError.Success, p.A.SetOption(c, SocketOption.LingerUs, 5_000_000));
        Assert.Equal(SocketError.Success, p.A.Bind(c, default, 4000));
        Assert.Equal(SocketError.InProgress, p.A.Connect(c, StackPair.AddrB, 8080));
        int s = -1;
        Assert.True(p.RunUntil(() => s >= 0 || p.B.Accept(l, out s, out _, out _) == SocketError.Success, 10_000_000));
        Assert.IsType<TcpConnection>(SlotOf(p.A, c));
        Assert.Equal(SocketError.Success, p.A.GetOption(c, SocketOption.ReuseAddress, out long reuse));
        Assert.Equal(1, reuse);
        Assert.Equal(SocketError.Success, p.A.GetOption(c, SocketOption.NoDelay, out long nd));
        Assert.Equal(1, nd);
        Assert.Equal(SocketError.Success, p.A.GetOption(c, SocketOption.LingerUs, out long linger));
        Assert.Equal(5_000_000, linger);
        // The accepted connection inherited the listener's keepalive idle time.
        Assert.Equal(SocketError.Success, p.B.GetOption(s, SocketOption.KeepIdleUs, out long idle));
        Assert.Equal(30_000_000, idle);
        Assert.Equal(SocketError.Success, p.B.GetOption(s, SocketOption.ReuseAddress, out long reuseB));
        Assert.Equal(0, reuseB);
        Assert.Equal(SocketError.Success, p.A.SetOption(c, SocketOption.ReuseAddress, 0));
        Assert.Equal(SocketError.Success, p.A.GetOption(c, SocketOption.ReuseAddress, out reuse));
        Assert.Equal(0, reuse);
        NetStackTests.CloseAndCheckLeaks(p, (p.A, c), (p.B, s), (p.B, l));
    }

    [Theory]
    [InlineData(false)] // SO_LINGER 0 set on the connected socket
    [InlineData(true)]  // set before connect, carried over to the connection
    public void LingerZeroResetsOnClose(bool beforeConnect)
    {
        using var p = new StackPair();
        Assert.Equal(SocketError.Success, p.B.Open(out int l));
        Assert.Equal(SocketError.Success, p.B.Bind(l, default, 8080));
        Assert.Equal(SocketError.Success, p.B.Listen(l, 16));
        Assert.Equal(SocketError.Success, p.A.Open(out int c));
        if (beforeConnect) Assert.Equal(SocketError.Success, p.A.SetOption(c, SocketOption.LingerUs, 0));
        Assert.Equal(SocketError.InProgress, p.A.Connect(c, StackPair.AddrB, 8080));
        int s = -1;
        Assert.True(p.RunUntil(() => s >= 0 || p.B.Accept(l, out s, out _, out _) == SocketError.Success, 10_000_000));
        Assert.True(p.RunUntil(() => (p.A.GetReadiness(c) & Readiness.Out) != 0, 10_000_000));
        if (!beforeConnect) Assert.Equal(SocketError.Success, p.A.SetOption(c, SocketOption.LingerUs, 0));
        Assert.Equal(SocketError.Success, p.A.Close(c));
        // An abortive close: the peer sees a reset, not an end of stream, and A keeps no connection (no TIME-WAIT).
        var buf = new byte[16];
        SocketError err = SocketError.WouldBlock;
        Assert.True(p.RunUntil(() => p.B.Receive(s, buf, false, out err) == 0 && err != SocketError.WouldBlock, 10_000_000));
        Assert.Equal(SocketError.ConnectionReset, err);
        Assert.Equal(0, p.A.Tcp.ConnectionCount);
        NetStackTests.CloseAndCheckLeaks(p, (p.B, s), (p.B, l));
    }
}
