using System;
using UserTcp.Stack;
using UserTcp.Stack.Tcp;
using UserTcp.Stack.Wire;
using Xunit;

namespace UserTcp.Tests.Tcp;

/// <summary>RFC 7323 §5 PAWS and its exception for reordered pure duplicate ACKs (Linux's "disordered ACK"): a pure
/// ACK of SND.UNA at RCV.NXT with the same window and a TSval at most one RTO older than TS.Recent counts as a
/// duplicate ACK; anything that could set state back (data, a FIN, a new ACK, another window, a much older TSval)
/// is still dropped. Each case runs with the receive fast path on and off (it must defer to the full path).</summary>
public class TcpPawsTests
{
    private const uint P = TcpScript.PeerIss;

    private static readonly TcpOptions Syn = new() { HasMss = true, Mss = 1000, HasTimestamps = true, TsVal = 1000 };

    private static TcpOptions Ts(uint tsVal) => new() { HasTimestamps = true, TsVal = tsVal };

    /// <summary>An established connection with timestamps that sent its initial window of 988-byte segments
    /// (NewReno, so duplicate ACKs alone start fast retransmit), the first one acknowledged by a segment with TSval
    /// 2000 (<paramref name="una"/>: SND.UNA then).</summary>
    private static TcpConnection Sending(TcpScript t, out uint una, bool fastPath)
    {
        t.Layer.ReceiveFastPath = fastPath;
        TcpConnection c = t.Established(out uint iss, Syn);
        c.NoDelay = true;
        Assert.Equal(20_000, c.Send(new byte[20_000], t.NowUs, out _));
        while (t.Out.Count > 0) t.Out.Dequeue();
        una = iss + 1 + (uint)c.SendMss;
        t.Inject(TcpFlags.Ack, P + 1, una, opt: Ts(2000));
        while (t.Out.Count > 0) t.Out.Dequeue();
        Assert.Equal(0, t.Counters.Drops(DropReason.TcpPaws));
        return c;
    }

    private static TcpScript Script() => new(new TcpConfig { Seed = 3, CongestionControl = CongestionAlgorithm.NewReno });

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void ReorderedDuplicateAck_OlderTsval_CountsTowardFastRetransmit_TsRecentNotSetBack(bool fastPath)
    {
        using var t = Script();
        TcpConnection c = Sending(t, out uint una, fastPath);
        // Three duplicate ACKs, sent with TSval 2001, 2002, 2003 and arriving 2002, 2003, 2001.
        t.Inject(TcpFlags.Ack, P + 1, una, opt: Ts(2002));
        t.Inject(TcpFlags.Ack, P + 1, una, opt: Ts(2003));
        while (t.Out.Count > 0) t.Out.Dequeue(); // limited transmit
        t.Inject(TcpFlags.Ack, P + 1, una, opt: Ts(2001));
        Assert.Equal(0, t.Counters.Drops(DropReason.TcpPaws));
        Assert.Equal(1, t.Counters.TcpFastRetransmits);
        Sent rtx = t.Expect(TcpFlags.Ack);
        Assert.Equal(una, rtx.Seq);
        Assert.Equal(2003u, rtx.Options.TsEcr); // TS.Recent stays at the newest TSval
        Assert.Equal(TcpState.Established, c.State);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void OlderTsval_WithData_StillDropped(bool fastPath)
    {
        using var t = Script();
        TcpConnection c = Sending(t, out uint una, fastPath);
        t.Inject(TcpFlags.Ack, P + 1, una, payload: new byte[] { 7 }, opt: Ts(1999));
        Assert.Equal(1, t.Counters.Drops(DropReason.TcpPaws));
        Assert.Equal(0, c.BytesReadable);
        Assert.Equal(P + 1, t.Expect(TcpFlags.Ack).Ack); // the ACK RFC 7323 §5.3 R1 asks for
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void OlderTsval_AckingNewData_StillDropped(bool fastPath)
    {
        using var t = Script();
        TcpConnection c = Sending(t, out uint una, fastPath);
        int queued = c.BytesQueuedToSend;
        t.Inject(TcpFlags.Ack, P + 1, una + 2 * (uint)c.SendMss, opt: Ts(1999));
        Assert.Equal(1, t.Counters.Drops(DropReason.TcpPaws));
        Assert.Equal(queued, c.BytesQueuedToSend); // SND.UNA did not move
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void OlderTsval_OtherWindow_StillDropped(bool fastPath)
    {
        using var t = Script();
        TcpConnection c = Sending(t, out uint una, fastPath);
        uint window = c.PeerWindow;
        // A smaller window (a stale one: the window update rule would take it for SEG.SEQ = RCV.NXT), and zero.
        t.Inject(TcpFlags.Ack, P + 1, una, window: 1000, opt: Ts(1999));
        Assert.Equal(window, c.PeerWindow);
        t.Inject(TcpFlags.Ack, P + 1, una, window: 0, opt: Ts(1999));
        Assert.Equal(window, c.PeerWindow);
        Assert.Equal(2, t.Counters.Drops(DropReason.TcpPaws));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void OlderTsval_FinOrOlderAckOrWrongSeq_StillDropped(bool fastPath)
    {
        using var t = Script();
        TcpConnection c = Sending(t, out uint una, fastPath);
        t.Inject(TcpFlags.Ack | TcpFlags.Fin, P + 1, una, opt: Ts(1999));
        Assert.Equal(TcpState.Established, c.State);
        t.Inject(TcpFlags.Ack, P + 1, una - 1, opt: Ts(1999));        // an older ACK number
        t.Inject(TcpFlags.Ack, P + 2, una, opt: Ts(1999)); // past RCV.NXT
        Assert.Equal(3, t.Counters.Drops(DropReason.TcpPaws));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void DuplicateAck_TsvalOlderThanOneRto_StillDropped(bool fastPath)
    {
        using var t = Script();
        TcpConnection c = Sending(t, out uint una, fastPath);
        long rtoMs = c.RtoUs / 1000;
        Assert.True(rtoMs < 1900, $"RTO {rtoMs} ms");
        t.Inject(TcpFlags.Ack, P + 1, una, opt: Ts((uint)(2000 - rtoMs - 1))); // an old duplicate (a previous wrap)
        Assert.Equal(1, t.Counters.Drops(DropReason.TcpPaws));
        t.Inject(TcpFlags.Ack, P + 1, una, opt: Ts((uint)(2000 - rtoMs)));     // within the replay window
        Assert.Equal(1, t.Counters.Drops(DropReason.TcpPaws));
    }

    [Fact]
    public void SynReceived_OlderTsvalOnTheHandshakeAck_StillDropped()
    {
        using var t = Script();
        TcpListener l = t.Layer.Listen(80, 8, out _)!;
        t.Inject(TcpFlags.Syn, P, 0, opt: Syn);
        Sent sa = t.Expect(TcpFlags.Syn | TcpFlags.Ack);
        t.Inject(TcpFlags.Ack, P + 1, sa.Seq + 1, opt: Ts(999));
        Assert.Equal(1, t.Counters.Drops(DropReason.TcpPaws));
        Assert.Null(l.Accept());
        t.Inject(TcpFlags.Ack, P + 1, sa.Seq + 1, opt: Ts(1001));
        Assert.NotNull(l.Accept());
    }

    [Fact]
    public void TsRecentOlderThan24Days_IsReplacedByAnOlderTsval()
    {
        // RFC 7323 §5.5: after 24 days of silence TS.Recent no longer rejects, and the next segment's TSval (older
        // here, the peer's clock wrapped or restarted) becomes TS.Recent, so the segments after it pass again.
        using var t = Script();
        t.Layer.ReceiveFastPath = false;
        TcpConnection c = t.Established(out uint iss, Syn);
        t.Inject(TcpFlags.Ack, P + 1, iss + 1, payload: new byte[] { 1 }, opt: Ts(50_000));
        Assert.Equal(1, c.BytesReadable);
        c.KeepAlive = false;
        t.NowUs += 25L * 86400 * 1_000_000;
        t.Inject(TcpFlags.Ack, P + 2, iss + 1, payload: new byte[] { 2 }, opt: Ts(10));
        Assert.Equal(2, c.BytesReadable);
        t.Inject(TcpFlags.Ack, P + 3, iss + 1, payload: new byte[] { 3 }, opt: Ts(11));
        Assert.Equal(3, c.BytesReadable);
        Assert.Equal(0, t.Counters.Drops(DropReason.TcpPaws));
    }
}
