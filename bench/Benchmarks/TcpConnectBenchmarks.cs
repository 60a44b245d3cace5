using System;
using BenchmarkDotNet.Attributes;
using UserTcp.Bench.Harness;
using UserTcp.Stack;
using UserTcp.Stack.Tcp;

namespace UserTcp.Bench.Benchmarks;

/// <summary>
/// One whole connection life between two in-memory <see cref="TcpLayer"/>s, per operation: active open from an
/// ephemeral port, SYN / SYN-ACK / ACK, accept, 100 bytes client to server and 100 back (each read by the other
/// application), client close (FIN), server close (FIN), final ACK; every segment is built, checksummed, parsed and
/// verified. TIME-WAIT, which the client holds, is disposed of according to <see cref="TimeWait"/>.
/// Allocations are expected here (a connection object and its two ring descriptors per end, ring blocks rented
/// on first data); they are what <c>B/op</c> reports.
/// </summary>
[Config(typeof(BenchConfig))]
public class TcpConnectBenchmarks
{
    public enum TimeWaitMode
    {
        /// <summary>Virtual time jumps 2*MSL (60 s) after the close and the timer sweep frees the TIME-WAIT
        /// connection, so each connection uses a new ephemeral port: the path a busy client takes.</summary>
        Expire,
        /// <summary>The client reconnects from the same local port at once; the new SYN takes over the tuple still in
        /// TIME-WAIT (our own connect may reuse it, as Linux does with tcp_tw_reuse).</summary>
        Reuse,
    }

    [Params(TimeWaitMode.Expire, TimeWaitMode.Reuse)]
    public TimeWaitMode TimeWait;

    private LayerPair _net = null!;
    private TcpListener _listener = null!;
    private readonly byte[] _msg = new byte[100];
    private readonly byte[] _buf = new byte[4096];
    private long _msl2;

    [GlobalSetup]
    public void Setup()
    {
        var a = new TcpConfig { Seed = 1 };
        _msl2 = 2 * a.MslUs + 1;
        _net = new LayerPair(a, new TcpConfig { Seed = 2 });
        _listener = _net.B.Layer.Listen(80, 128, out _)!;
        for (int i = 0; i < 3; i++) OpenClose();
        long before = _net.A.Sent + _net.B.Sent;
        OpenClose();
        long segments = _net.A.Sent + _net.B.Sent - before;
        int left = _net.A.Layer.ConnectionCount + _net.B.Layer.ConnectionCount;
        int expectLeft = TimeWait == TimeWaitMode.Reuse ? 1 : 0; // the latest TIME-WAIT, taken over by the next round
        if (left != expectLeft || _net.A.Counters.TotalDrops + _net.B.Counters.TotalDrops != 0
            || _net.A.Buffers.BytesInUse + _net.B.Buffers.BytesInUse != 0)
            throw new InvalidOperationException($"connection life not clean: {left} left, drops {_net.A.Counters.TotalDrops + _net.B.Counters.TotalDrops}");
        Console.WriteLine($"// connect/close: {segments} segments per connection, {left} connection(s) left between rounds");
    }

    [Benchmark]
    public void OpenClose()
    {
        LayerPair net = _net;
        ushort port = TimeWait == TimeWaitMode.Reuse ? (ushort)40000 : (ushort)0;
        TcpConnection c = net.A.Layer.Connect(port, LayerPair.AddrB, 80, net.NowUs, out SocketError e)
            ?? throw new InvalidOperationException($"connect: {e}");
        net.Pump();
        TcpConnection s = _listener.Accept() ?? throw new InvalidOperationException("accept");
        c.Send(_msg, net.NowUs, out _);
        net.Pump();
        s.Receive(_buf, false, net.NowUs, out _);
        s.Send(_msg, net.NowUs, out _);
        net.Pump();
        c.Receive(_buf, false, net.NowUs, out _);
        c.Close(false, net.NowUs);
        net.Pump();
        s.Close(false, net.NowUs);
        net.Pump();
        if (TimeWait == TimeWaitMode.Expire)
        {
            // Jump 2*MSL, then follow the timer schedule (the wheel may fire up to one tick late) until the
            // TIME-WAIT connection is gone.
            net.Advance(_msl2);
            while (net.A.Layer.ConnectionCount > 0)
            {
                long next = net.A.Layer.PollAt();
                if (next == long.MaxValue) throw new InvalidOperationException("TIME-WAIT connection without a timer");
                net.Advance(Math.Max(1, next - net.NowUs));
            }
        }
    }

    [GlobalCleanup]
    public void Cleanup() => _net.Dispose();
}
