using System;
using System.Collections.Generic;
using System.Security.Cryptography;
using UserTcp.Stack;
using UserTcp.Stack.Phy;
using UserTcp.Stack.Tcp;
using UserTcp.Stack.Wire;
using Xunit;

namespace UserTcp.Tests.Tcp;

public class NetStackTests
{
    private sealed class Recorder : IReadinessListener
    {
        public readonly List<(int, Readiness)> Events = new();
        public void OnReadinessChanged(int handle, Readiness readiness) => Events.Add((handle, readiness));
    }

    internal static (int listener, int client, int server) Connect(StackPair p, ushort port = 8080)
    {
        Assert.Equal(SocketError.Success, p.B.Open(out int l));
        Assert.Equal(SocketError.Success, p.B.Bind(l, Ipv4Address.Any, port));
        Assert.Equal(SocketError.Success, p.B.Listen(l, 16));
        Assert.Equal(SocketError.Success, p.A.Open(out int c));
        Assert.Equal(SocketError.InProgress, p.A.Connect(c, StackPair.AddrB, port));
        int s = -1;
        Assert.True(p.RunUntil(() => s >= 0 || p.B.Accept(l, out s, out _, out _) == SocketError.Success, 10_000_000));
        Assert.True(p.RunUntil(() => (p.A.GetReadiness(c) & Readiness.Out) != 0, 10_000_000));
        return (l, c, s);
    }

    internal static byte[] Transfer(StackPair p, NetStack from, int fh, NetStack to, int th, byte[] data, long maxUs)
    {
        var got = new byte[data.Length];
        int sent = 0, recvd = 0;
        bool eof = false, shut = false;
        var buf = new byte[32 * 1024];
        bool ok = p.RunUntil(() =>
        {
            while (sent < data.Length)
            {
                int n = from.Send(fh, data.AsSpan(sent, Math.Min(32 * 1024, data.Length - sent)), out SocketError e);
                if (n == 0) { Assert.Equal(SocketError.WouldBlock, e); break; }
                sent += n;
            }
            if (sent == data.Length && !shut) { Assert.Equal(SocketError.Success, from.Shutdown(fh, ShutdownHow.Write)); shut = true; }
            while (true)
            {
                int n = to.Receive(th, buf, false, out SocketError e);
                if (n > 0) { buf.AsSpan(0, n).CopyTo(got.AsSpan(recvd)); recvd += n; continue; }
                if (e == SocketError.Success) eof = true; else Assert.Equal(SocketError.WouldBlock, e);
                break;
            }
            return eof;
        }, maxUs);
        Assert.True(ok, $"transfer stalled: sent {sent} received {recvd} of {data.Length} at {p.NowUs} us");
        Assert.Equal(data.Length, recvd);
        return got;
    }

    internal static void CloseAndCheckLeaks(StackPair p, params (NetStack, int)[] handles)
    {
        foreach (var (s, h) in handles) Assert.Equal(SocketError.Success, s.Close(h));
        Assert.True(p.RunUntil(() => p.A.Tcp.ConnectionCount == 0 && p.B.Tcp.ConnectionCount == 0, 300_000_000),
            $"connections left: A {p.A.Tcp.ConnectionCount} B {p.B.Tcp.ConnectionCount}");
        Assert.Equal(0, p.A.Buffers.OutstandingBlocks);
        Assert.Equal(0, p.B.Buffers.OutstandingBlocks);
        Assert.Equal(0, p.A.Tcp.AssemblersInUse);
        Assert.Equal(0, p.B.Tcp.AssemblersInUse);
        Assert.Equal(0, p.A.OpenSockets);
        Assert.Equal(0, p.B.OpenSockets);
        p.A.Dispose();
        p.B.Dispose();
        p.DevA.Dispose();
        p.DevB.Dispose();
        Assert.Equal(0, p.Link.A.Pool.Outstanding);
        Assert.Equal(0, p.Link.B.Pool.Outstanding);
    }

    [Fact]
    public void ConnectAcceptEndpointsAndReadiness()
    {
        using var p = new StackPair();
        var rec = new Recorder();
        p.A.ReadinessListener = rec;
        var (l, c, s) = Connect(p);
        Assert.Contains(rec.Events, e => e.Item1 == c && (e.Item2 & Readiness.Out) != 0);
        Assert.Equal(SocketError.Success, p.A.GetLocalEndpoint(c, out var la, out ushort lp));
        Assert.Equal(StackPair.AddrA, la);
        Assert.InRange(lp, 32768, 60999);
        Assert.Equal(SocketError.Success, p.B.GetRemoteEndpoint(s, out var ra, out ushort rp));
        Assert.Equal(StackPair.AddrA, ra);
        Assert.Equal(lp, rp);
        Assert.Equal(TcpState.Established, p.A.GetState(c));
        Assert.Equal(SocketError.WouldBlock, p.B.Accept(l, out _, out _, out _));
        Assert.Equal(0, p.B.Receive(s, new byte[10], false, out SocketError e));
        Assert.Equal(SocketError.WouldBlock, e);
        Assert.Equal(5, p.A.Send(c, new byte[] { 1, 2, 3, 4, 5 }, out _));
        Assert.True(p.RunUntil(() => (p.B.GetReadiness(s) & Readiness.In) != 0, 1_000_000));
        var buf = new byte[10];
        Assert.Equal(2, p.B.Receive(s, buf.AsSpan(0, 2), true, out _)); // peek leaves the bytes
        Assert.Equal(5, p.B.Receive(s, buf, false, out _));
        Assert.Equal(new byte[] { 1, 2, 3, 4, 5 }, buf[..5]);
        CloseAndCheckLeaks(p, (p.A, c), (p.B, s), (p.B, l));
    }

    [Fact]
    public void AcceptedSocketReportsDataThatArrivedBeforeAccept()
    {
        using var p = new StackPair();
        var rec = new Recorder();
        p.B.ReadinessListener = rec;
        p.B.Open(out int l);
        p.B.Bind(l, Ipv4Address.Any, 8080);
        p.B.Listen(l, 4);
        p.A.Open(out int c);
        p.A.Connect(c, StackPair.AddrB, 8080);
        Assert.True(p.RunUntil(() => p.B.GetReadiness(l) == Readiness.In, 1_000_000));
        Assert.Contains(rec.Events, e => e.Item1 == l && e.Item2 == Readiness.In);
        p.A.Send(c, new byte[] { 1, 2, 3 }, out _);
        p.RunUntil(() => false, 100_000);
        rec.Events.Clear();
        Assert.Equal(SocketError.Success, p.B.Accept(l, out int s, out _, out _));
        Assert.Contains(rec.Events, e => e.Item1 == s && (e.Item2 & Readiness.In) != 0);
        Assert.Equal(SocketError.Success, p.A.Close(c, abort: true));
        Assert.True(p.RunUntil(() => (p.B.GetReadiness(s) & Readiness.Err) != 0, 1_000_000));
        // Linux order after a reset: bytes already received first, then the error, then end of stream.
        Assert.Equal(3, p.B.Receive(s, new byte[10], false, out _));
        Assert.Equal(0, p.B.Receive(s, new byte[10], false, out SocketError e1));
        Assert.Equal(SocketError.ConnectionReset, e1);
        Assert.Equal(0, p.B.Receive(s, new byte[10], false, out e1));
        Assert.Equal(SocketError.Success, e1);
        p.B.Close(s);
        p.B.Close(l);
        p.A.Close(c);
        Assert.Equal(0, p.B.Buffers.OutstandingBlocks);
    }

    [Fact]
    public void ConnectToClosedPortIsRefused()
    {
        using var p = new StackPair();
        p.A.Open(out int c);
        Assert.Equal(SocketError.InProgress, p.A.Connect(c, StackPair.AddrB, 9));
        Assert.True(p.RunUntil(() => (p.A.GetReadiness(c) & Readiness.Err) != 0, 5_000_000));
        Assert.Equal(SocketError.Success, p.A.GetError(c, out SocketError err));
        Assert.Equal(SocketError.ConnectionRefused, err);
        p.A.GetError(c, out err);
        Assert.Equal(SocketError.Success, err); // cleared by reading
        Assert.Equal(0, p.A.Send(c, new byte[1], out err));
        Assert.Equal(SocketError.BrokenPipe, err);
        Assert.Equal(0, p.A.Receive(c, new byte[1], false, out err));
        Assert.Equal(SocketError.Success, err); // end of stream
        p.A.Close(c);
    }

    [Fact]
    public void BindConflictsAndReuseAddress()
    {
        using var p = new StackPair();
        p.B.Open(out int a);
        p.B.Open(out int b);
        Assert.Equal(SocketError.Success, p.B.Bind(a, Ipv4Address.Any, 7000));
        Assert.Equal(SocketError.AddressInUse, p.B.Bind(b, Ipv4Address.Any, 7000));
        Assert.Equal(SocketError.AddressNotAvailable, p.B.Bind(b, new Ipv4Address(1, 2, 3, 4), 7001));
        Assert.Equal(SocketError.InvalidArgument, p.B.Bind(a, Ipv4Address.Any, 7002));
        p.B.SetOption(b, SocketOption.ReuseAddress, 1);
        Assert.Equal(SocketError.Success, p.B.Bind(b, Ipv4Address.Any, 7000)); // nobody listens yet
        p.B.Close(b);
        Assert.Equal(SocketError.Success, p.B.Listen(a, 4));
        p.B.Open(out int d);
        p.B.SetOption(d, SocketOption.ReuseAddress, 1);
        Assert.Equal(SocketError.AddressInUse, p.B.Bind(d, Ipv4Address.Any, 7000)); // a listener holds it
        p.B.Close(d);
        p.B.Close(a);
        p.B.Open(out int e);
        Assert.Equal(SocketError.Success, p.B.Bind(e, Ipv4Address.Any, 7000));
        p.B.Close(e);
        Assert.Equal(SocketError.BadHandle, p.B.Close(e));
    }

    public static TheoryData<string, double, double, double, double, int, int> FaultCases => new()
    {
        // name, loss %, reorder %, duplicate %, corrupt %, socket buffer size, seed
        { "clean", 0, 0, 0, 0, 256 * 1024, 1 },
        { "loss1", 1, 0, 0, 0, 256 * 1024, 2 },
        { "loss5", 5, 0, 0, 0, 256 * 1024, 3 },
        { "loss10", 10, 0, 0, 0, 256 * 1024, 4 },
        { "reorder", 0, 5, 0, 0, 256 * 1024, 5 },
        { "duplicate", 0, 0, 5, 0, 256 * 1024, 6 },
        { "corrupt", 0, 0, 0, 2, 256 * 1024, 7 },
        { "smallwindow-loss2", 2, 2, 0, 0, 4096, 8 },
        { "largewindow-loss1", 1, 1, 1, 0, 1 << 20, 9 },
    };

    [Theory]
    [MemberData(nameof(FaultCases))]
    public void OneMegabyteBothWaysOverMemoryLink(string name, double loss, double reorder, double dup, double corrupt, int buffer, int seed)
    {
        var faults = new FaultConfig { DelayUs = 100, LossPercent = loss, ReorderPercent = reorder, DuplicatePercent = dup, CorruptPercent = corrupt };
        TcpConfig Cfg(ulong s) => new() { Seed = s, SendBufferSize = buffer, ReceiveBufferSize = buffer };
        using var p = new StackPair(faults, seed, Cfg(1), Cfg(2));
        var (l, c, s) = Connect(p);
        var data = new byte[1 << 20];
        new Random(seed).NextBytes(data);
        byte[] got = Transfer(p, p.A, c, p.B, s, data, 2_000_000_000);
        Assert.Equal(SHA256.HashData(data), SHA256.HashData(got));
        byte[] back = Transfer(p, p.B, s, p.A, c, data, 2_000_000_000);
        Assert.Equal(SHA256.HashData(data), SHA256.HashData(back));
        CloseAndCheckLeaks(p, (p.A, c), (p.B, s), (p.B, l));
        _ = name;
    }

    [Fact]
    public void ChecksumOffloadPath()
    {
        using var p = new StackPair(offload: true);
        var (l, c, s) = Connect(p);
        var data = new byte[200_000];
        new Random(3).NextBytes(data);
        Assert.Equal(SHA256.HashData(data), SHA256.HashData(Transfer(p, p.A, c, p.B, s, data, 100_000_000)));
        CloseAndCheckLeaks(p, (p.A, c), (p.B, s), (p.B, l));
    }

    /// <summary>A's device fills the TCP checksum, so A copies payloads into frames without summing them; B has no
    /// receive offload and verifies every segment in software. Echo exchanges of every size class (one byte, below
    /// and around one MSS, several segments, more than the ring's first block so the copies wrap), then bulk both
    /// ways: nothing is dropped for its checksum and the bytes arrive intact.</summary>
    [Fact]
    public void TransmitChecksumOffload_PayloadCopiedWithoutSum_PeerVerifiesInSoftware()
    {
        using var p = new StackPair(txOffloadA: true);
        var (l, c, s) = Connect(p);
        var rng = new Random(11);
        var buf = new byte[128 * 1024];
        foreach (int size in new[] { 1, 2, 63, 64, 65, 511, 1447, 1448, 1449, 1460, 3000, 4096, 9001, 65536, 100_003, 7 })
        {
            var req = new byte[size];
            rng.NextBytes(req);
            byte[] Exchange(NetStack from, int fh, NetStack to, int th, byte[] data)
            {
                var got = new byte[data.Length];
                int sent = 0, recvd = 0;
                Assert.True(p.RunUntil(() =>
                {
                    while (sent < data.Length)
                    {
                        int n = from.Send(fh, data.AsSpan(sent), out SocketError e);
                        if (n == 0) { Assert.Equal(SocketError.WouldBlock, e); break; }
                        sent += n;
                    }
                    while (recvd < data.Length)
                    {
                        int n = to.Receive(th, buf.AsSpan(0, Math.Min(buf.Length, data.Length - recvd)), false, out SocketError e);
                        if (n <= 0) { Assert.Equal(SocketError.WouldBlock, e); break; }
                        buf.AsSpan(0, n).CopyTo(got.AsSpan(recvd));
                        recvd += n;
                    }
                    return recvd == data.Length;
                }, 100_000_000), $"size {size}: sent {sent} received {recvd}");
                return got;
            }
            byte[] atB = Exchange(p.A, c, p.B, s, req);
            Assert.Equal(req, atB);
            Assert.Equal(req, Exchange(p.B, s, p.A, c, atB));
        }
        var data = new byte[1 << 20];
        rng.NextBytes(data);
        Assert.Equal(SHA256.HashData(data), SHA256.HashData(Transfer(p, p.A, c, p.B, s, data, 2_000_000_000)));
        Assert.Equal(SHA256.HashData(data), SHA256.HashData(Transfer(p, p.B, s, p.A, c, data, 2_000_000_000)));
        Assert.Equal(0, p.B.Counters.Drops(DropReason.TcpBadChecksum));
        Assert.Equal(0, p.A.Counters.Drops(DropReason.TcpBadChecksum));
        Assert.True(p.A.Counters.TcpSegmentsOut > 100);
        CloseAndCheckLeaks(p, (p.A, c), (p.B, s), (p.B, l));
    }
}
