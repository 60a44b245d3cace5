using System;
using BenchmarkDotNet.Attributes;
using UserTcp.Bench.Harness;
using UserTcp.Stack;
using UserTcp.Stack.Tcp;

namespace UserTcp.Bench.Benchmarks;

/// <summary>
/// Send path, per full-sized data segment: the application write (copy into the send ring, which is rented from
/// the pool when empty), segmentation under cwnd/window/Nagle, header and options (timestamps), checksum (software;
/// the route claims no offload), RTO arming, and hand-off to a sink that recycles the buffer. Then the peer's ACKs
/// arrive, one per two segments as a delayed-ACK receiver sends them, so each segment also carries half an ACK's
/// processing (see <see cref="TcpAckBenchmarks"/> for that cost alone). The send ring drains completely every batch
/// and goes back to the pool, as it would for an application writing in bursts.
/// </summary>
[Config(typeof(BenchConfig))]
public class TcpSendBenchmarks
{
    public const int Batch = 32;

    /// <summary>Bytes per application write: one MSS (many small writes) or the whole batch in one call.</summary>
    [Params(1448, 32 * 1448)]
    public int WriteSize;

    private SenderRig _rig = null!;
    private byte[] _data = null!;

    [GlobalSetup]
    public void Setup()
    {
        _rig = new SenderRig(new TcpConfig { Seed = 1 }, new TcpConfig { Seed = 2 });
        if (_rig.Mss != 1448) throw new InvalidOperationException($"MSS {_rig.Mss}, benchmark assumes 1448");
        _data = new byte[Batch * _rig.Mss];
        for (int i = 0; i < _data.Length; i++) _data[i] = (byte)i;
        // Slow start: grow cwnd past one batch before measuring.
        for (int i = 0; i < 50; i++) SendBatch();
        long segs = _rig.Net.A.Sent;
        int acks = SendBatch();
        segs = _rig.Net.A.Sent - segs;
        if (segs != Batch || acks != Batch / 2 || _rig.Net.A.Counters.TotalDrops != 0 || _rig.Client.BytesQueuedToSend != 0)
            throw new InvalidOperationException($"send path not exercised as intended: {segs} segments, {acks} ACKs, drops {LayerPair.Drops(_rig.Net.A.Counters)}, queued {_rig.Client.BytesQueuedToSend}");
        Console.WriteLine($"// send: {segs} segments and {acks} ACKs per batch, cwnd {_rig.Client.CongestionWindow}");
    }

    [Benchmark(OperationsPerInvoke = Batch)]
    public int SendAndAck() => SendBatch();

    private int SendBatch()
    {
        TcpConnection c = _rig.Client;
        long now = _rig.Net.NowUs;
        for (int off = 0; off < _data.Length; off += WriteSize)
            c.Send(_data.AsSpan(off, Math.Min(WriteSize, _data.Length - off)), now, out _);
        return _rig.AckEmitted(2 * _rig.Mss);
    }

    [GlobalCleanup]
    public void Cleanup() => _rig.Dispose();
}
