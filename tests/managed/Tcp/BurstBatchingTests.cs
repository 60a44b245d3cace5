using System;
using UserTcp.Stack;
using UserTcp.Stack.Tcp;
using Xunit;

namespace UserTcp.Tests.Tcp;

/// <summary>Transmit batching across socket calls (<see cref="NetStack.DeferFlush"/>) and one ACK per receive burst
/// for in-order data (<see cref="TcpLayer.BeginReceiveBurst"/>, driven by <see cref="NetStack.Poll"/>).</summary>
public class BurstBatchingTests
{
    [Fact]
    public void DeferFlush_RepliesWaitInTheBatchUntilFlushOrPoll()
    {
        using var p = new StackPair();
        var (_, c1, s1) = NetStackTests.Connect(p);
        var (_, c2, s2) = NetStackTests.Connect(p, 8081);
        long before = p.B.Counters.TxPackets;
        p.B.DeferFlush = true;
        Assert.Equal(3, p.B.Send(s1, new byte[] { 1, 2, 3 }, out _));
        Assert.Equal(2, p.B.Send(s2, new byte[] { 4, 5 }, out _));
        Assert.Equal(before, p.B.Counters.TxPackets); // both replies still in the interface's batch
        p.B.DeferFlush = false;
        p.B.Flush();
        Assert.Equal(before + 2, p.B.Counters.TxPackets); // one burst
        var buf = new byte[8];
        int n1 = 0, n2 = 0;
        Assert.True(p.RunUntil(() =>
        {
            n1 += Math.Max(0, p.A.Receive(c1, buf, false, out _));
            n2 += Math.Max(0, p.A.Receive(c2, buf, false, out _));
            return n1 == 3 && n2 == 2;
        }, 10_000_000));

        p.RunUntil(() => false, 300_000); // the delayed ACKs arrive: nothing in flight, so Nagle holds nothing back
        // Without DeferFlush a send leaves at once; with it, the next Poll sends what waits.
        before = p.B.Counters.TxPackets;
        Assert.Equal(1, p.B.Send(s1, new byte[] { 6 }, out _));
        Assert.Equal(before + 1, p.B.Counters.TxPackets);
        p.B.DeferFlush = true;
        Assert.Equal(1, p.B.Send(s2, new byte[] { 7 }, out _));
        p.B.DeferFlush = false;
        Assert.Equal(before + 1, p.B.Counters.TxPackets);
        p.B.Poll(p.NowUs);
        Assert.Equal(before + 2, p.B.Counters.TxPackets);
    }

    [Fact]
    public void BulkReceiver_AcknowledgesOncePerReceiveBurst_AndTheDataArrivesIntact()
    {
        using var p = new StackPair();
        var (_, c, s) = NetStackTests.Connect(p);
        var data = new byte[2 << 20];
        new Random(5).NextBytes(data);
        long acksBefore = p.B.Counters.TcpSegmentsOut, segsBefore = p.A.Counters.TcpSegmentsOut;
        byte[] got = NetStackTests.Transfer(p, p.A, c, p.B, s, data, 60_000_000);
        Assert.Equal(data, got);
        long dataSegments = p.A.Counters.TcpSegmentsOut - segsBefore;
        long acks = p.B.Counters.TcpSegmentsOut - acksBefore;
        // Every second full segment would be ~dataSegments / 2; bursts of up to 32 frames need far fewer.
        Assert.True(acks < dataSegments / 3, $"{acks} ACKs for {dataSegments} data segments");
    }
}
