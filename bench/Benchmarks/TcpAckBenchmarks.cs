using System;
using BenchmarkDotNet.Attributes;
using UserTcp.Bench.Harness;
using UserTcp.Stack;
using UserTcp.Stack.Tcp;

namespace UserTcp.Bench.Benchmarks;

/// <summary>
/// Pure ACK processing on the sender: each operation is one ACK that advances SND.UNA by two segments (what a
/// delayed-ACK receiver sends). Per ACK: parsing, lookup, PAWS and acceptability checks, window update, RTT sample
/// from the timestamp echo, slow-start/avoidance, freeing acknowledged bytes from the send ring, re-arming the RTO
/// and an Output pass that finds nothing new to send.
/// To keep sending out of the measurement, each iteration's setup queues and emits 32 MiB (the send buffer, with a
/// 128 MiB peer window and a cwnd grown beforehand), and the iteration then consumes it one ACK at a time. The last
/// ACK of an iteration empties the send ring, which goes back to the pool.
/// </summary>
[Config(typeof(AckBenchConfig))]
public class TcpAckBenchmarks
{
    private const int Mss = 1448;
    private const int SendBuffer = 2 * Mss * AcksPerIteration;
    /// <summary>11 584 ACKs of 2 MSS = 33 548 288 bytes: just under a 32 MiB send buffer (about a millisecond of
    /// ACK processing per iteration, long enough to time).</summary>
    public const int AcksPerIteration = 11584;

    private SenderRig _rig = null!;
    private byte[] _data = null!;

    [GlobalSetup]
    public void Setup()
    {
        var sender = new TcpConfig { Seed = 1, SendBufferSize = SendBuffer, MaxBufferSize = 64 << 20 };
        var receiver = new TcpConfig { Seed = 2, MaxBufferSize = 64 << 20 };
        var pool = new BufferPool(128L << 20, 4096, 16384, 65536, 262144, 1 << 20, 32 << 20);
        _rig = new SenderRig(sender, receiver, pool, rawWindow: 0xFFFF);
        if (_rig.Mss != Mss) throw new InvalidOperationException($"MSS {_rig.Mss}, benchmark assumes {Mss}");
        _data = new byte[SendBuffer];
        // Grow cwnd until the whole buffer goes out at once (slow start doubles per round).
        for (int round = 0; round < 20; round++)
        {
            Fill();
            while (_rig.Client.BytesQueuedToSend > 0)
                if (_rig.AckEmitted(2 * Mss) == 0) throw new InvalidOperationException("sender stalled during warm-up");
        }
        Fill();
        if (_rig.Unacked != SendBuffer || _rig.Client.BytesQueuedToSend != SendBuffer)
            throw new InvalidOperationException($"only {_rig.Unacked} of {SendBuffer} bytes in flight (cwnd {_rig.Client.CongestionWindow})");
        for (int i = 0; i < AcksPerIteration; i++) _rig.AckOnce(2 * Mss);
        if (_rig.Client.BytesQueuedToSend != 0 || _rig.Net.A.Counters.TotalDrops != 0 || _rig.Client.HoldsBuffers)
            throw new InvalidOperationException("ACKs did not drain the send buffer");
        Console.WriteLine($"// ack: {AcksPerIteration} ACKs per iteration, cwnd {_rig.Client.CongestionWindow}, window {_rig.Client.PeerWindow}");
    }

    private void Fill()
    {
        int n = _rig.Client.Send(_data, _rig.Net.NowUs, out SocketError e);
        if (n != _data.Length) throw new InvalidOperationException($"write took {n} bytes ({e})");
    }

    [IterationSetup]
    public void QueueData() => Fill();

    /// <summary>Each iteration must have consumed exactly what its setup queued, without drops.</summary>
    [IterationCleanup]
    public void Check()
    {
        if (_rig.Client.BytesQueuedToSend != 0 || _rig.Net.A.Counters.TotalDrops != 0)
            throw new InvalidOperationException($"iteration left {_rig.Client.BytesQueuedToSend} bytes queued, drops {_rig.Net.A.Counters.TotalDrops}");
    }

    [Benchmark]
    public void ProcessAck() => _rig.AckOnce(2 * Mss);

    [GlobalCleanup]
    public void Cleanup() => _rig.Dispose();
}
