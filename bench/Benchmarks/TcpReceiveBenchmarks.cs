using System;
using BenchmarkDotNet.Attributes;
using UserTcp.Bench.Harness;
using UserTcp.Stack;
using UserTcp.Stack.Phy;
using UserTcp.Stack.Tcp;

namespace UserTcp.Bench.Benchmarks;

/// <summary>
/// Receive path, per in-order full-sized data segment: checksum (unless offloaded), header and option parsing,
/// 4-tuple lookup, RFC 9293/5961/7323 acceptability checks, copy into the receive ring, the delayed-ACK decision
/// and, every second segment, building and "transmitting" an ACK (the sink recycles the buffer). After each batch
/// of <see cref="Batch"/> segments the application reads everything (one copy out, the ring block goes back to the
/// pool, and a window update may be sent), as an event loop would after a readiness wake-up.
/// The sender is played by the benchmark: one segment captured from a real <see cref="TcpLayer"/> after the
/// handshake is replayed with increasing sequence numbers (timestamps stay valid: TSval does not move).
/// </summary>
[Config(typeof(BenchConfig))]
public class TcpReceiveBenchmarks
{
    public const int Batch = 32;

    /// <summary>True: the NIC verified the checksum (RxTcpChecksumGood); false: the stack verifies it in software.</summary>
    [Params(false, true)]
    public bool ChecksumOffload;

    private LayerPair _net = null!;
    private TcpConnection _client = null!, _server = null!;
    private SegmentTemplate _seg = null!;
    private uint _seq;
    private readonly byte[] _app = new byte[256 * 1024];

    [GlobalSetup]
    public void Setup()
    {
        _net = new LayerPair(new TcpConfig { Seed = 1 }, new TcpConfig { Seed = 2 });
        TcpListener l = _net.B.Layer.Listen(80, 16, out _)!;
        (_client, _server) = _net.Connect(l);
        var payload = new byte[_client.SendMss];
        for (int i = 0; i < payload.Length; i++) payload[i] = (byte)(i * 7);
        _net.A.CaptureNext = true;
        _client.Send(payload, _net.NowUs, out _);
        _net.Pump();
        _seg = new SegmentTemplate(_net.A.Captured);
        if (_seg.PayloadLength != payload.Length) throw new InvalidOperationException($"captured {_seg.PayloadLength} payload bytes");
        _seq = _seg.Seq + (uint)_seg.PayloadLength;
        Drain();
        _net.Settle();
        _net.A.Discard = _net.B.Discard = true;

        // Leave quick-ACK mode (the first in-order segments are acknowledged one by one, as Linux does).
        for (int i = 0; i < 4; i++) ReceiveBatch();
        // Self-check: one batch must be accepted whole, without drops, with about one ACK per two segments.
        long acksBefore = _net.B.Sent;
        long read = ReceiveBatch();
        long acks = _net.B.Sent - acksBefore;
        if (read != (long)Batch * _seg.PayloadLength || _net.B.Counters.TotalDrops != 0 || acks < Batch / 2 || acks > Batch / 2 + 2)
            throw new InvalidOperationException($"receive path not exercised as intended: read {read}, drops {_net.B.Counters.TotalDrops}, acks {acks}");
        Console.WriteLine($"// receive: {_seg.Bytes.Length}-byte segments ({_seg.PayloadLength} payload), {acks} ACKs per {Batch} segments");
    }

    [Benchmark(OperationsPerInvoke = Batch)]
    public long ReceiveInOrder() => ReceiveBatch();

    private long ReceiveBatch()
    {
        PacketOffloads flags = ChecksumOffload ? PacketOffloads.RxTcpChecksumGood : PacketOffloads.None;
        TcpLayer layer = _net.B.Layer;
        long now = _net.NowUs;
        uint len = (uint)_seg.PayloadLength;
        for (int i = 0; i < Batch; i++)
        {
            _seg.SetSeq(_seq);
            _seq += len;
            layer.Receive(LayerPair.AddrA, LayerPair.AddrB, _seg.Span, flags, now);
        }
        return Drain();
    }

    private long Drain()
    {
        long total = 0;
        int n;
        while ((n = _server.Receive(_app, false, _net.NowUs, out _)) > 0) total += n;
        return total;
    }

    [GlobalCleanup]
    public void Cleanup() => _net.Dispose();
}
