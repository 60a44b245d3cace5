using System;
using System.Collections.Generic;
using System.Text;
using UserTcp.Stack;
using UserTcp.Stack.Phy;
using UserTcp.Stack.Tcp;
using Xunit;

namespace UserTcp.Tests.Tcp;

/// <summary>
/// Export and import of unaccepted connections (stack/Tcp/TcpTransfer.cs): one server layer closes its listener and
/// hands its queued and half-open children to a second layer with the same address (two processes of a group on one
/// device), which continues each byte stream where the first left it.
/// </summary>
public class TcpHandOffTests
{
    private sealed class Sink : ITcpHandOffSink
    {
        public readonly List<(TcpTransferState State, byte[] Data)> Taken = new();
        public bool Refuse;
        public bool Offer(in TcpTransferState state, ReadOnlySpan<byte> first, ReadOnlySpan<byte> second)
        {
            if (Refuse) return false;
            var data = new byte[first.Length + second.Length];
            first.CopyTo(data);
            second.CopyTo(data.AsSpan(first.Length));
            Taken.Add((state, data));
            return true;
        }
    }

    private static TcpLayer SecondServer(TcpTestNet net, out StackCounters counters)
    {
        counters = new StackCounters();
        return new TcpLayer(new TcpConfig { Seed = 33 }, net.B, counters, net.B.Buffers);
    }

    private static string ReadAll(TcpTestNet net, TcpConnection c, int length)
    {
        var buf = new byte[4096];
        var sb = new StringBuilder();
        Assert.True(net.RunUntil(() =>
        {
            int n;
            while ((n = c.Receive(buf, false, net.NowUs, out _)) > 0) sb.Append(Encoding.ASCII.GetString(buf, 0, n));
            return sb.Length >= length;
        }, 30_000_000), $"read {sb.Length} of {length} bytes: \"{sb}\"");
        return sb.ToString();
    }

    private static void Send(TcpTestNet net, TcpConnection c, string text)
    {
        int n = c.Send(Encoding.ASCII.GetBytes(text), net.NowUs, out SocketError e);
        Assert.True(n == text.Length, $"send: {n} bytes, {e}");
    }

    [Fact]
    public void AQueuedConnectionWithUnreadBytesContinuesInTheAdopter()
    {
        using var net = new TcpTestNet();
        TcpLayer first = net.B.Layer;
        TcpLayer second = SecondServer(net, out StackCounters secondCounters);
        TcpListener l1 = first.Listen(80, 16, out _)!;
        TcpListener l2 = second.Listen(80, 16, out _)!;
        TcpConnection c = net.A.Layer.Connect(0, net.B.Address, 80, net.NowUs, out _)!;
        c.UserHandle = 1;
        Assert.True(net.RunUntil(() => l1.PendingAccepts == 1 && c.State == TcpState.Established, 10_000_000));
        // The request arrives, but the first server's ACK of it is lost: the client will retransmit it to the adopter,
        // which must take it as a duplicate (the bytes travel with the state).
        bool dropAcks = true;
        net.DropFilter = (from, p) => dropAcks && from == net.B;
        Send(net, c, "GET / HTTP/1.1\r\n\r\n");
        TcpConnection queued = first.Find(new TcpTuple(net.B.Address, 80, net.A.Address, c.LocalPort))!;
        Assert.True(net.RunUntil(() => queued.BytesReadable == 18, 1_000_000));
        (bool ts, bool sack, int sws, int rws, int mss) = (queued.TimestampsEnabled, queued.SackEnabled,
            queued.SendWindowScale, queued.ReceiveWindowScale, queued.SendMss);

        var sink = new Sink();
        Assert.Equal(1, first.ExportChildren(80, sink, net.NowUs));
        long rstBefore = net.B.Counters.TcpRstSent;
        first.CloseListener(l1, net.NowUs);
        Assert.Equal(rstBefore, net.B.Counters.TcpRstSent); // no reset: the connection moved
        Assert.Equal(0, first.ConnectionCount);
        Assert.Equal(18, sink.Taken[0].Data.Length);
        Assert.Equal((uint)TcpState.Established, sink.Taken[0].State.State);

        net.B.Layer = second; // the segments now reach the adopting process
        dropAcks = false;
        TcpConnection? imported = second.ImportChild(sink.Taken[0].State, sink.Taken[0].Data, net.NowUs);
        Assert.NotNull(imported);
        Assert.Equal(1, l2.PendingAccepts);
        TcpConnection s = l2.Accept()!;
        Assert.Same(imported, s);
        s.UserHandle = 2;
        Assert.Equal((ts, sack, sws, rws, mss), (s.TimestampsEnabled, s.SackEnabled, s.SendWindowScale, s.ReceiveWindowScale, s.SendMss));
        Assert.Equal("GET / HTTP/1.1\r\n\r\n", ReadAll(net, s, 18));
        // The client's retransmission of the request reaches the adopter: acknowledged, not delivered twice.
        Assert.True(net.RunUntil(() => c.BytesQueuedToSend == 0, 10_000_000), "the request was never acknowledged");
        Send(net, c, "more");
        Assert.Equal("more", ReadAll(net, s, 4));
        Send(net, s, "HTTP/1.1 200 OK\r\n\r\n");
        Assert.Equal("HTTP/1.1 200 OK\r\n\r\n", ReadAll(net, c, 19));
        Assert.Equal(TcpState.Established, c.State);
        Assert.Equal(0, secondCounters.TcpRstSent);
        Assert.Equal(0, net.A.Counters.TcpRstSent);
        // And it closes cleanly from the adopter.
        s.Close(false, net.NowUs);
        Assert.Equal("", ReadAll(net, c, 0));
        Assert.True(net.RunUntil(() => c.State == TcpState.CloseWait, 5_000_000));
    }

    [Fact]
    public void AHalfOpenConnectionCompletesInTheAdopter()
    {
        using var net = new TcpTestNet(2);
        TcpLayer first = net.B.Layer;
        TcpLayer second = SecondServer(net, out StackCounters secondCounters);
        TcpListener l1 = first.Listen(80, 16, out _)!;
        TcpListener l2 = second.Listen(80, 16, out _)!;
        // The client's ACK of the SYN-ACK is lost: the first server stays in SYN-RECEIVED.
        int fromClient = 0;
        net.DropFilter = (from, p) => from == net.A && ++fromClient > 1; // the SYN passes, then nothing
        TcpConnection c = net.A.Layer.Connect(0, net.B.Address, 80, net.NowUs, out _)!;
        c.UserHandle = 1;
        Assert.True(net.RunUntil(() => c.State == TcpState.Established, 10_000_000));
        Assert.Equal(1, l1.HalfOpen);
        var sink = new Sink();
        Assert.Equal(1, first.ExportChildren(80, sink, net.NowUs));
        Assert.Equal((uint)TcpState.SynReceived, sink.Taken[0].State.State);
        first.CloseListener(l1, net.NowUs);
        Assert.Equal(0, first.ConnectionCount);
        net.DropFilter = null;
        net.B.Layer = second;
        Assert.NotNull(second.ImportChild(sink.Taken[0].State, sink.Taken[0].Data, net.NowUs));
        Assert.Equal(1, l2.HalfOpen);
        // The adopter resends the SYN-ACK; the client's ACK completes the handshake there.
        TcpConnection? s = null;
        Assert.True(net.RunUntil(() => (s ??= l2.Accept()) != null, 10_000_000));
        s!.UserHandle = 2;
        Send(net, c, "ping");
        Assert.Equal("ping", ReadAll(net, s, 4));
        Send(net, s, "pong");
        Assert.Equal("pong", ReadAll(net, c, 4));
        Assert.Equal(0, secondCounters.TcpRstSent);
        Assert.Equal(0, l2.HalfOpen);
    }

    [Fact]
    public void ARefusedOfferIsResetAsBefore()
    {
        using var net = new TcpTestNet(3);
        TcpListener l1 = net.B.Layer.Listen(80, 16, out _)!;
        TcpConnection c = net.A.Layer.Connect(0, net.B.Address, 80, net.NowUs, out _)!;
        c.UserHandle = 1;
        Assert.True(net.RunUntil(() => l1.PendingAccepts == 1 && c.State == TcpState.Established, 10_000_000));
        Assert.Equal(0, net.B.Layer.ExportChildren(80, new Sink { Refuse = true }, net.NowUs));
        net.B.Layer.CloseListener(l1, net.NowUs);
        Assert.True(net.RunUntil(() => c.State == TcpState.Closed, 1_000_000));
        Assert.Equal(SocketError.ConnectionReset, c.TakeError());
    }

    [Fact]
    public void ImportIsRefusedWithoutAListenerOrForABadState()
    {
        using var net = new TcpTestNet(4);
        TcpListener l1 = net.B.Layer.Listen(80, 16, out _)!;
        TcpConnection c = net.A.Layer.Connect(0, net.B.Address, 80, net.NowUs, out _)!;
        c.UserHandle = 1;
        Assert.True(net.RunUntil(() => l1.PendingAccepts == 1, 10_000_000));
        var sink = new Sink();
        Assert.Equal(1, net.B.Layer.ExportChildren(80, sink, net.NowUs));
        TcpLayer second = SecondServer(net, out _);
        TcpTransferState st = sink.Taken[0].State;
        Assert.Null(second.ImportChild(st, sink.Taken[0].Data, net.NowUs)); // nothing listens on 80 there
        second.Listen(80, 16, out _);
        TcpTransferState bad = st;
        bad.State = (uint)TcpState.TimeWait;
        Assert.Null(second.ImportChild(bad, sink.Taken[0].Data, net.NowUs));
        bad = st;
        bad.DataLength = 5;
        Assert.Null(second.ImportChild(bad, sink.Taken[0].Data, net.NowUs));
        bad = st;
        bad.Version = 99;
        Assert.Null(second.ImportChild(bad, sink.Taken[0].Data, net.NowUs));
        Assert.Equal(0, second.ConnectionCount);
        Assert.NotNull(second.ImportChild(st, sink.Taken[0].Data, net.NowUs));
        Assert.Null(second.ImportChild(st, sink.Taken[0].Data, net.NowUs)); // the tuple is in use now
        Assert.Equal(1, second.ConnectionCount);
    }
}
