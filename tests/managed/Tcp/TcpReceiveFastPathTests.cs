using System;
using UserTcp.Stack.Tcp;
using Xunit;
using static UserTcp.Tests.Tcp.TcpSendFastPathTests;

namespace UserTcp.Tests.Tcp;

/// <summary>
/// The receive side's short path (header prediction in TcpConnection.OnSegment, then InputPredicted with its in-order
/// data append and ACK processing) must do exactly what the full RFC 9293 input processing does. Each scenario runs
/// twice in virtual time with the same seeds, short path on and off (<c>TcpLayer.ReceiveFastPath</c>); every segment
/// both sides sent (so every ACK, window, timestamp echo and retransmission the receiver's state drives) must be byte
/// for byte the same, and the data delivered too. The scenarios feed the fallbacks: loss (out-of-order data, holes,
/// SACK), reordering, duplicated segments (PAWS, D-SACK, old ACKs), small and zero windows, the FIN, segments without
/// timestamps.
/// </summary>
public class TcpReceiveFastPathTests
{
    private static void AssertSame(Result full, Result withPath)
    {
        Assert.Equal(0, full.ReceiveFastSegments);
        Assert.True(withPath.ReceiveFastSegments > 0, "the predicted path was never taken");
        Assert.Equal(full.ServerGot, withPath.ServerGot);
        Assert.Equal(full.ClientGot, withPath.ClientGot);
        Assert.Equal(full.Segments.Count, withPath.Segments.Count);
        for (int i = 0; i < full.Segments.Count; i++)
            Assert.True(full.Segments[i].AsSpan().SequenceEqual(withPath.Segments[i]), $"segment {i} of {full.Segments.Count} differs");
    }

    [Theory]
    [InlineData(31, false)]
    [InlineData(32, true)]
    public void SameSegmentsWithoutLoss(int seed, bool noDelay)
    {
        Result full = Run(true, seed, 0, noDelay, false, 256 * 1024, false, receiveFast: false);
        Result withPath = Run(true, seed, 0, noDelay, false, 256 * 1024, false, receiveFast: true);
        AssertSame(full, withPath);
    }

    [Theory]
    [InlineData(33, 8, 0, 0)]
    [InlineData(34, 3, 10, 0)]
    [InlineData(35, 0, 15, 5)]
    [InlineData(36, 4, 5, 10)]
    public void SameSegmentsWithLossReorderingAndDuplicates(int seed, double loss, double reorder, double duplicate)
    {
        Result full = Run(true, seed, loss, true, false, 256 * 1024, false, rounds: 30, receiveFast: false, reorder: reorder, duplicate: duplicate);
        Result withPath = Run(true, seed, loss, true, false, 256 * 1024, false, rounds: 30, receiveFast: true, reorder: reorder, duplicate: duplicate);
        Assert.True(full.Retransmits > 0 || duplicate > 0, "nothing unusual happened: no fallback was exercised");
        AssertSame(full, withPath);
    }

    [Theory]
    [InlineData(37)]
    [InlineData(38)]
    public void SameSegmentsWithSmallAndZeroWindows(int seed)
    {
        // A 4 KB receive buffer read 700 bytes at a time: data cut at the window edge, window updates, persist probes.
        Result full = Run(true, seed, 0, true, false, 4096, true, receiveFast: false);
        Result withPath = Run(true, seed, 0, true, false, 4096, true, receiveFast: true);
        AssertSame(full, withPath);
    }

    [Theory]
    [InlineData(false, true)]
    [InlineData(true, false)]
    [InlineData(false, false)]
    public void SameSegmentsWithoutTimestampsOrSack(bool timestamps, bool sack)
    {
        var client = new TcpConfig { Seed = 11, Timestamps = timestamps, Sack = sack };
        var server = new TcpConfig { Seed = 22, Timestamps = timestamps, Sack = sack };
        Result full = Run(true, 39, 4, true, false, 0, false, client, server, rounds: 20, receiveFast: false, reorder: 5);
        Result withPath = Run(true, 39, 4, true, false, 0, false, client, server, rounds: 20, receiveFast: true, reorder: 5);
        AssertSame(full, withPath);
    }

    /// <summary>The short paths of opening and closing (the handshake's last ACK at the listener's side, the peer's
    /// FIN in ESTABLISHED, the ACK that ends an orphan in LAST-ACK): the same segments as the full input processing,
    /// with the handshake's ACK lost sometimes (the first data segment then completes the open) and with the FIN's
    /// ACK delayed or not.</summary>
    [Theory]
    [InlineData(41, 0, true)]
    [InlineData(42, 40, true)]
    [InlineData(43, 40, false)]
    [InlineData(44, 0, false)]
    public void SameSegmentsThroughOpenAndClose(int seed, double handshakeLoss, bool delayFinAck)
    {
        var client = new TcpConfig { Seed = 11, DelayFinAck = delayFinAck };
        var server = new TcpConfig { Seed = 22, DelayFinAck = delayFinAck };
        Result full = Run(true, seed, 0, true, false, 0, false, client, server, rounds: 3, handshakeLoss: handshakeLoss, receiveFast: false);
        Result withPath = Run(true, seed, 0, true, false, 0, false, client, server, rounds: 3, handshakeLoss: handshakeLoss, receiveFast: true);
        AssertSame(full, withPath);
        Assert.Equal(new long[4], full.ReceiveFastOpenClose);
        Assert.True(withPath.ReceiveFastOpenClose![0] > 0, "no handshake ACK took the short path");
        Assert.True(withPath.ReceiveFastOpenClose[1] > 0, "no FIN took the short path");
        Assert.True(withPath.ReceiveFastOpenClose[2] > 0, "no LAST-ACK ACK took the short path");
        // The client closes first: its FIN-WAIT-1 (the peer's FIN carries the ACK of ours, delayFinAck) or FIN-WAIT-2
        // takes the peer's FIN into TIME-WAIT on the short path.
        Assert.True(withPath.ReceiveFastOpenClose[3] > 0, "no FIN took the short path into TIME-WAIT");
    }

    [Theory]
    [InlineData(45, true)]
    [InlineData(46, false)]
    public void SameSegmentsWhenTheFinCarriesData(int seed, bool delayFinAck)
    {
        // The common close of a request/response peer (write, then shutdown/close): data and FIN in one segment, taken
        // by the receiver's header prediction on the short path and by InputSynchronized on the full one.
        var client = new TcpConfig { Seed = 11, DelayFinAck = delayFinAck };
        var server = new TcpConfig { Seed = 22, DelayFinAck = delayFinAck };
        Result full = Run(true, seed, 0, true, false, 0, false, client, server, rounds: 3, receiveFast: false, finWithData: true);
        Result withPath = Run(true, seed, 0, true, false, 0, false, client, server, rounds: 3, receiveFast: true, finWithData: true);
        AssertSame(full, withPath);
        static bool DataAndFin(byte[] seg) => (seg[13] & 0x01) != 0 && seg.Length > (seg[12] >> 4) * 4;
        Assert.Contains(withPath.Segments, DataAndFin);
        Assert.True(withPath.ReceiveFastOpenClose![1] > 0, "the FIN with data did not take the short path");
    }
}
