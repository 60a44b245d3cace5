using System;
using System.Collections.Generic;
using System.Linq;
using UserTcp.Stack;
using UserTcp.Stack.Phy;
using UserTcp.Stack.Tcp;
using Xunit;

namespace UserTcp.Tests.Tcp;

/// <summary>
/// The short send paths (TcpConnection.TrySendRun, TransmitSyn) must send exactly what the full send logic sends. Each
/// scenario runs twice in virtual time with the same seeds, once with the path and once without, and every segment
/// either side put on the wire (bytes, so flags, sequence and acknowledgment numbers, windows, options, timestamps and
/// payload) must be the same in both runs. The scenarios mix what the path must leave to the full logic: Nagle and
/// cork holding small segments, multi-segment writes, loss (retransmission timeouts, SACK recovery, duplicate ACKs),
/// a zero window with persist probes, and the FIN.
/// </summary>
public class TcpSendFastPathTests
{
    internal sealed record Result(List<byte[]> Segments, long FastSegments, long Retransmits, long Timeouts, byte[] ServerGot,
        byte[] ClientGot, long ReceiveFastSegments = 0, long[]? ReceiveFastOpenClose = null, long DirectSends = 0);

    /// <summary>One scenario; <paramref name="receiveFast"/>, <paramref name="reorder"/> and <paramref name="duplicate"/>
    /// serve the receive path's tests (TcpReceiveFastPathTests).</summary>
    internal static Result Run(bool fast, int seed, double loss, bool noDelay, bool cork, int serverRcvBuf, bool slowReader,
        TcpConfig? client = null, TcpConfig? server = null, int rounds = 40, double handshakeLoss = 0,
        bool receiveFast = true, double reorder = 0, double duplicate = 0, bool finWithData = false)
    {
        var segments = new List<byte[]>();
        using var net = new TcpTestNet(seed,
            client ?? new TcpConfig { Seed = 11 },
            server ?? new TcpConfig { Seed = 22, ReceiveBufferSize = serverRcvBuf });
        net.A.Layer.SendFastPath = fast;
        net.B.Layer.SendFastPath = fast;
        net.A.Layer.ReceiveFastPath = receiveFast;
        net.B.Layer.ReceiveFastPath = receiveFast;
        net.DropFilter = (from, p) => { segments.Add(p.Data.ToArray()); return false; };
        net.LossPercent = handshakeLoss;
        var (c, s) = TcpLayerTransferTests.Connect(net);
        c.NoDelay = noDelay;
        s.NoDelay = noDelay;
        net.LossPercent = loss;
        net.ReorderPercent = reorder;
        net.DuplicatePercent = duplicate;

        var rng = new Random(seed);
        var toServer = new List<byte>();
        var toClient = new List<byte>();
        var buf = new byte[256 * 1024];
        var srvGot = new List<byte>();
        var cliGot = new List<byte>();
        // Request/response rounds of varied sizes: 1..100 B (one short segment), around one MSS, and several MSS.
        for (int round = 0; round < rounds; round++)
        {
            int size = (round % 4) switch { 0 => 1 + rng.Next(100), 1 => 1400 + rng.Next(100), 2 => 4096, _ => 1 + rng.Next(9000) };
            var req = new byte[size];
            rng.NextBytes(req);
            toServer.AddRange(req);
            if (cork && round % 5 == 0) c.Cork = true;
            int sent = 0;
            // The request in two writes sometimes: the second finds the first in flight (Nagle).
            int first = round % 3 == 0 ? size / 2 : size;
            sent += c.Send(req.AsSpan(0, Math.Max(1, first)), net.NowUs, out _);
            int want = srvGot.Count + size;
            Assert.True(net.RunUntil(() =>
            {
                if (sent < size) sent += c.Send(req.AsSpan(sent), net.NowUs, out _);
                if (cork && c.Cork && sent == size) { c.Cork = false; c.Send(ReadOnlySpan<byte>.Empty, net.NowUs, out _); }
                // A slow reader takes at most 700 bytes per event: the sender meets small and zero windows.
                int n = s.Receive(slowReader ? buf.AsSpan(0, 700) : buf, false, net.NowUs, out _);
                if (n > 0) srvGot.AddRange(buf.AsSpan(0, n).ToArray());
                return srvGot.Count >= want;
            }, 600_000_000), $"round {round}: request not delivered ({srvGot.Count} of {want})");
            // The response: echo a slice of it back.
            int rsize = Math.Max(1, size / (1 + round % 3));
            var resp = req.AsSpan(0, rsize).ToArray();
            toClient.AddRange(resp);
            int rsent = 0;
            int rwant = cliGot.Count + rsize;
            Assert.True(net.RunUntil(() =>
            {
                if (rsent < rsize) rsent += s.Send(resp.AsSpan(rsent), net.NowUs, out _);
                int n = c.Receive(buf, false, net.NowUs, out _);
                if (n > 0) cliGot.AddRange(buf.AsSpan(0, n).ToArray());
                return cliGot.Count >= rwant;
            }, 600_000_000), $"round {round}: response not delivered");
            if (round % 7 == 6) net.RunFor(rng.Next(300_000)); // idle: delayed ACKs, restart after idle
        }
        net.LossPercent = 0;
        net.ReorderPercent = 0;
        net.DuplicatePercent = 0;
        if (finWithData)
        {
            // The client's last bytes and its FIN in one segment (corked, they wait for the FIN): the receiver takes
            // data and FIN together (header prediction on the short path).
            var tail = new byte[300];
            rng.NextBytes(tail);
            toServer.AddRange(tail);
            c.Cork = true;
            Assert.Equal(tail.Length, c.Send(tail, net.NowUs, out _));
        }
        c.Shutdown(false, true, net.NowUs);
        Assert.True(net.RunUntil(() =>
        {
            int n = s.Receive(buf, false, net.NowUs, out SocketError e);
            if (n > 0) srvGot.AddRange(buf.AsSpan(0, n).ToArray());
            return n == 0 && e == SocketError.Success;
        }, 60_000_000));
        s.Close(false, net.NowUs);
        c.Close(false, net.NowUs);
        net.RunUntil(() => net.A.Layer.ConnectionCount == 0 && net.B.Layer.ConnectionCount == 0, 200_000_000);
        Assert.Equal(toServer, srvGot);
        Assert.Equal(toClient, cliGot);
        return new Result(segments, net.A.Layer.SendFastPathSegments + net.B.Layer.SendFastPathSegments,
            net.A.Counters.TcpRetransmits + net.B.Counters.TcpRetransmits, net.A.Counters.TcpTimeouts + net.B.Counters.TcpTimeouts,
            srvGot.ToArray(), cliGot.ToArray(), net.A.Layer.ReceiveFastPathSegments + net.B.Layer.ReceiveFastPathSegments,
            new[]
            {
                net.A.Layer.ReceiveFastPathHandshakeAcks + net.B.Layer.ReceiveFastPathHandshakeAcks,
                net.A.Layer.ReceiveFastPathFins + net.B.Layer.ReceiveFastPathFins,
                net.A.Layer.ReceiveFastPathLastAcks + net.B.Layer.ReceiveFastPathLastAcks,
                net.A.Layer.ReceiveFastPathTimeWaits + net.B.Layer.ReceiveFastPathTimeWaits,
            },
            net.A.Layer.SendDirectCalls + net.B.Layer.SendDirectCalls);
    }

    private static void AssertSame(Result full, Result withPath)
    {
        Assert.Equal(0, full.FastSegments);
        Assert.True(withPath.FastSegments > 0, "the one-segment path was never taken");
        Assert.Equal(0, full.DirectSends);
        Assert.True(withPath.DirectSends > 0, "no send went straight from Send to the short path");
        Assert.Equal(full.Segments.Count, withPath.Segments.Count);
        for (int i = 0; i < full.Segments.Count; i++)
            Assert.True(full.Segments[i].AsSpan().SequenceEqual(withPath.Segments[i]), $"segment {i} of {full.Segments.Count} differs");
    }

    [Theory]
    [InlineData(1, false, false)]
    [InlineData(2, true, false)]
    [InlineData(3, true, true)]
    [InlineData(4, false, true)]
    public void SameSegmentsWithoutLoss(int seed, bool noDelay, bool cork)
    {
        Result full = Run(false, seed, 0, noDelay, cork, 256 * 1024, false);
        Result withPath = Run(true, seed, 0, noDelay, cork, 256 * 1024, false);
        AssertSame(full, withPath);
    }

    [Theory]
    [InlineData(5, false)]
    [InlineData(6, true)]
    [InlineData(7, true)]
    public void SameSegmentsWithLossRecoveryAndTimeouts(int seed, bool noDelay)
    {
        Result full = Run(false, seed, 8, noDelay, false, 256 * 1024, false);
        Result withPath = Run(true, seed, 8, noDelay, false, 256 * 1024, false);
        Assert.True(full.Retransmits > 0, "the scenario lost nothing: no fallback was exercised");
        AssertSame(full, withPath);
    }

    [Theory]
    [InlineData(true, true, true, true, true, true)]
    [InlineData(false, true, true, true, true, true)]
    [InlineData(true, false, true, true, false, true)]
    [InlineData(true, true, false, false, true, true)]
    [InlineData(false, false, false, true, true, true)]
    [InlineData(true, true, true, false, false, false)]
    public void SameSynAndSynAckForEveryOptionSet(bool cWs, bool cSack, bool cTs, bool sWs, bool sSack, bool sTs)
    {
        // TransmitSyn writes the SYN and SYN-ACK options itself; TransmitWithOptions builds them through TcpOptions.
        var client = new TcpConfig { Seed = 11, WindowScaling = cWs, Sack = cSack, Timestamps = cTs };
        var server = new TcpConfig { Seed = 22, WindowScaling = sWs, Sack = sSack, Timestamps = sTs };
        Result full = Run(false, 10, 0, true, false, 0, false, client, server, rounds: 4);
        Result withPath = Run(true, 10, 0, true, false, 0, false, client, server, rounds: 4);
        AssertSame(full, withPath);
    }

    [Theory]
    [InlineData(11)]
    [InlineData(12)]
    public void SameSegmentsWhenHandshakeSegmentsAreLost(int seed)
    {
        // Lost SYNs and SYN-ACKs: the retransmitted ones (Karn: no RTT sample) go through TransmitSyn as well.
        Result full = Run(false, seed, 0, true, false, 0, false, null, new TcpConfig { Seed = 22 }, rounds: 6, handshakeLoss: 40);
        Result withPath = Run(true, seed, 0, true, false, 0, false, null, new TcpConfig { Seed = 22 }, rounds: 6, handshakeLoss: 40);
        AssertSame(full, withPath);
    }

    /// <summary>A send after an idle period longer than the RTO restarts from the initial window (RFC 5681 §4.1): the
    /// send straight from Send (<c>TcpConnection.TrySendDirect</c>) must leave it to the full path. cwnd grows well
    /// past the initial window first, so a send that skipped the restart would put more segments out at once.</summary>
    [Fact]
    public void SameSegmentsWhenASendAfterIdleRestartsFromTheInitialWindow()
    {
        static (List<byte[]> Segments, long Direct) Go(bool fast)
        {
            var segments = new List<byte[]>();
            using var net = new TcpTestNet(3, new TcpConfig { Seed = 11 }, new TcpConfig { Seed = 22 });
            net.A.Layer.SendFastPath = fast;
            net.B.Layer.SendFastPath = fast;
            net.DropFilter = (from, p) => { segments.Add(p.Data.ToArray()); return false; };
            var (c, s) = TcpLayerTransferTests.Connect(net);
            c.NoDelay = true;
            var buf = new byte[256 * 1024];
            var data = new byte[60_000];
            new Random(5).NextBytes(data);
            long got = 0;
            for (int round = 0; round < 12; round++)
            {
                if (round == 8) net.RunFor(1_500_000); // idle, then the same sends again
                int sent = 0;
                long want = got + data.Length;
                // A small request first (the short path takes it), then the bulk of the round.
                Assert.True(net.RunUntil(() =>
                {
                    if (sent < data.Length) sent += c.Send(data.AsSpan(sent, sent == 0 ? 64 : data.Length - sent), net.NowUs, out _);
                    got += Math.Max(0, s.Receive(buf, false, net.NowUs, out _));
                    return got >= want;
                }, 60_000_000));
            }
            return (segments, net.A.Layer.SendDirectCalls);
        }
        var full = Go(false);
        var withPath = Go(true);
        Assert.Equal(0, full.Direct);
        Assert.True(withPath.Direct > 0);
        Assert.Equal(full.Segments.Count, withPath.Segments.Count);
        for (int i = 0; i < full.Segments.Count; i++)
            Assert.True(full.Segments[i].AsSpan().SequenceEqual(withPath.Segments[i]), $"segment {i} of {full.Segments.Count} differs");
    }

    [Theory]
    [InlineData(8)]
    [InlineData(9)]
    public void SameSegmentsWithSmallAndZeroWindows(int seed)
    {
        // A 4 KB receive buffer read only now and then: window-limited and zero-window sends, persist probes.
        Result full = Run(false, seed, 0, true, false, 4096, true);
        Result withPath = Run(true, seed, 0, true, false, 4096, true);
        AssertSame(full, withPath);
    }
}
