using System;
using UserTcp.Stack;
using UserTcp.Stack.Tcp;
using UserTcp.Stack.Wire;
using Xunit;

namespace UserTcp.Tests.Tcp;

/// <summary>RFC 9293 state-diagram arcs and RFC 5961 cases: put a connection in a state by driving segments,
/// inject one segment, check the reply and the new state.</summary>
public class TcpStateTests
{
    private const uint P = TcpScript.PeerIss;

    [Fact]
    public void SynToClosedPortGetsRstAck()
    {
        using var t = new TcpScript();
        t.Inject(TcpFlags.Syn, 777, 0, dstPort: 81);
        Sent r = t.Expect(TcpFlags.Rst | TcpFlags.Ack);
        Assert.Equal(0u, r.Seq);
        Assert.Equal(778u, r.Ack);
        Assert.Equal(1, t.Counters.Drops(DropReason.TcpNoSocket));
    }

    [Fact]
    public void AckToClosedPortGetsRstFromAckNumber_RstGetsNothing()
    {
        using var t = new TcpScript();
        t.Inject(TcpFlags.Ack, 777, 4242, dstPort: 81);
        Sent r = t.Expect(TcpFlags.Rst);
        Assert.Equal(4242u, r.Seq);
        t.Inject(TcpFlags.Rst, 777, 0, dstPort: 81);
        t.ExpectNothing();
    }

    [Fact]
    public void ListenSynGetsSynAckWithMssThenAckEstablishes()
    {
        using var t = new TcpScript();
        TcpListener l = t.Layer.Listen(80, 8, out _)!;
        var opt = new TcpOptions { HasMss = true, Mss = 1460, HasWindowScale = true, WindowScale = 7, SackPermitted = true, HasTimestamps = true, TsVal = 99 };
        t.Inject(TcpFlags.Syn, P, 0, 64240, opt: opt);
        Sent sa = t.Expect(TcpFlags.Syn | TcpFlags.Ack);
        Assert.Equal(P + 1, sa.Ack);
        Assert.True(sa.Options.HasMss);
        Assert.Equal(1460, sa.Options.Mss);
        Assert.True(sa.Options.HasWindowScale && sa.Options.SackPermitted && sa.Options.HasTimestamps);
        Assert.Equal(99u, sa.Options.TsEcr);
        Assert.Null(l.Accept());
        t.Inject(TcpFlags.Ack, P + 1, sa.Seq + 1, 502, opt: new TcpOptions { HasTimestamps = true, TsVal = 100, TsEcr = sa.Options.TsVal });
        TcpConnection? c = l.Accept();
        Assert.NotNull(c);
        Assert.Equal(TcpState.Established, c!.State);
        Assert.Equal(502u << 7, c.PeerWindow);
        Assert.Equal(1448, c.SendMss);
    }

    [Fact]
    public void SynWithoutOptionsAnsweredWithoutThem()
    {
        using var t = new TcpScript();
        t.Layer.Listen(80, 8, out _);
        t.Inject(TcpFlags.Syn, P, 0);
        Sent sa = t.Expect(TcpFlags.Syn | TcpFlags.Ack);
        Assert.True(sa.Options.HasMss);
        Assert.False(sa.Options.HasWindowScale || sa.Options.SackPermitted || sa.Options.HasTimestamps);
    }

    [Fact]
    public void SynReceivedBadAckGetsRst_DuplicateSynGetsSynAckAgain()
    {
        using var t = new TcpScript();
        TcpListener l = t.Layer.Listen(80, 8, out _)!;
        t.Inject(TcpFlags.Syn, P, 0);
        Sent sa = t.Expect(TcpFlags.Syn | TcpFlags.Ack);
        t.Inject(TcpFlags.Ack, P + 1, sa.Seq + 5000);
        Assert.Equal(sa.Seq + 5000, t.Expect(TcpFlags.Rst).Seq);
        t.Inject(TcpFlags.Syn, P, 0);
        Sent again = t.Expect(TcpFlags.Syn | TcpFlags.Ack);
        Assert.Equal(sa.Seq, again.Seq);
        t.Inject(TcpFlags.Ack, P + 1, sa.Seq + 1);
        Assert.NotNull(l.Accept());
    }

    [Fact]
    public void SynAckRetransmittedWithBackoffThenGivesUp()
    {
        using var t = new TcpScript();
        TcpListener l = t.Layer.Listen(80, 8, out _)!;
        t.Inject(TcpFlags.Syn, P, 0);
        t.Expect(TcpFlags.Syn | TcpFlags.Ack);
        t.Advance(999_000);
        t.ExpectNothing();
        t.Advance(2_000);
        t.Expect(TcpFlags.Syn | TcpFlags.Ack); // after 1 s
        t.Advance(1_990_000);
        t.ExpectNothing();
        t.Advance(20_000);
        t.Expect(TcpFlags.Syn | TcpFlags.Ack); // after 2 s more
        t.Advance(200_000_000);
        Assert.Equal(0, t.Layer.ConnectionCount);
        Assert.Equal(0, l.HalfOpen);
    }

    [Fact]
    public void SynSentSynAckEstablishesAndAcks()
    {
        using var t = new TcpScript();
        TcpConnection c = t.SynSent(out uint iss);
        t.Inject(TcpFlags.Syn | TcpFlags.Ack, P, iss + 1, dstPort: c.LocalPort,
            opt: new TcpOptions { HasMss = true, Mss = 1000 });
        Sent a = t.Expect(TcpFlags.Ack);
        Assert.Equal(P + 1, a.Ack);
        Assert.Equal(iss + 1, a.Seq);
        Assert.Equal(TcpState.Established, c.State);
        Assert.Equal(1000, c.SendMss);
        Assert.False(c.TimestampsEnabled);
    }

    [Fact]
    public void ActiveOpenWindowStartsAtPeerIsn()
    {
        // Regression: the receive window's right edge must be anchored at RCV.NXT once the SYN-ACK arrives.
        using var t = new TcpScript();
        TcpConnection c = t.SynSent(out uint iss);
        uint peer = 0x8000_0100; // far (in sequence space) from anything the SYN could have implied
        t.Inject(TcpFlags.Syn | TcpFlags.Ack, peer, iss + 1, dstPort: c.LocalPort);
        t.Expect(TcpFlags.Ack);
        // Beyond the 64 KiB the SYN offered (no window scaling negotiated): not acceptable, answered with an ACK.
        t.Inject(TcpFlags.Ack, peer + 1 + 70_000, iss + 1, dstPort: c.LocalPort, payload: new byte[10]);
        Assert.Equal(peer + 1, t.Expect(TcpFlags.Ack).Ack);
        Assert.Equal(0, c.BytesReadable);
        // In order: accepted.
        t.Inject(TcpFlags.Ack, peer + 1, iss + 1, dstPort: c.LocalPort, payload: new byte[10]);
        Assert.Equal(10, c.BytesReadable);
    }

    [Fact]
    public void SynSentRstWithAcceptableAckRefuses_WithoutAckIgnored_BadAckGetsRst()
    {
        using var t = new TcpScript();
        TcpConnection c = t.SynSent(out uint iss);
        t.Inject(TcpFlags.Rst, 0, 0, dstPort: c.LocalPort);
        Assert.Equal(TcpState.SynSent, c.State);
        t.Inject(TcpFlags.Ack, 5, iss + 100, dstPort: c.LocalPort);
        Assert.Equal(iss + 100, t.Expect(TcpFlags.Rst).Seq);
        Assert.Equal(TcpState.SynSent, c.State);
        t.Inject(TcpFlags.Rst | TcpFlags.Ack, 0, iss + 1, dstPort: c.LocalPort);
        Assert.Equal(TcpState.Closed, c.State);
        Assert.Equal(SocketError.ConnectionRefused, c.TakeError());
    }

    [Fact]
    public void SimultaneousOpen()
    {
        using var t = new TcpScript();
        TcpConnection c = t.SynSent(out uint iss);
        t.Inject(TcpFlags.Syn, P, 0, dstPort: c.LocalPort, opt: new TcpOptions { HasMss = true, Mss = 1460 });
        Sent sa = t.Expect(TcpFlags.Syn | TcpFlags.Ack);
        Assert.Equal(iss, sa.Seq);
        Assert.Equal(P + 1, sa.Ack);
        Assert.Equal(TcpState.SynReceived, c.State);
        t.Inject(TcpFlags.Syn | TcpFlags.Ack, P, iss + 1, dstPort: c.LocalPort);
        // The peer's SYN-ACK acknowledges our SYN: established without a challenge ACK.
        Assert.Equal(TcpState.Established, c.State);
        t.ExpectNothing();
        // A later SYN-ACK (duplicate) is a SYN in a synchronized state: challenge ACK.
        t.Inject(TcpFlags.Syn | TcpFlags.Ack, P, iss + 1, dstPort: c.LocalPort);
        t.Expect(TcpFlags.Ack);
    }

    [Fact]
    public void SynSentRetriesThenTimesOut()
    {
        using var t = new TcpScript(new TcpConfig { Seed = 1, SynRetries = 2 });
        TcpConnection c = t.SynSent(out _);
        t.Advance(1_000_000);
        t.Expect(TcpFlags.Syn);
        t.Advance(2_000_000);
        t.Expect(TcpFlags.Syn);
        t.Advance(4_000_000);
        Assert.Equal(TcpState.Closed, c.State);
        Assert.Equal(SocketError.TimedOut, c.TakeError());
    }

    [Fact]
    public void IcmpPortUnreachableInSynSentRefuses()
    {
        using var t = new TcpScript();
        TcpConnection c = t.SynSent(out uint iss);
        var quote = new byte[28];
        quote[0] = 0x45; quote[9] = 6;
        TcpScript.Us.Write(quote.AsSpan(12)); TcpScript.Peer.Write(quote.AsSpan(16));
        quote[20] = (byte)(c.LocalPort >> 8); quote[21] = (byte)c.LocalPort;
        quote[22] = (byte)(t.PeerPort >> 8); quote[23] = (byte)t.PeerPort;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(quote.AsSpan(24), iss + 77); // not in flight
        t.Layer.ReceiveIcmpError(TcpIcmpError.PortUnreachable, quote, 0, t.NowUs);
        Assert.Equal(TcpState.SynSent, c.State);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(quote.AsSpan(24), iss);
        t.Layer.ReceiveIcmpError(TcpIcmpError.PortUnreachable, quote, 0, t.NowUs);
        Assert.Equal(TcpState.Closed, c.State);
        Assert.Equal(SocketError.ConnectionRefused, c.TakeError());
    }

    // ---- RFC 5961 ----

    [Fact]
    public void InWindowRstNotExactGetsChallengeAck_ExactRstResets()
    {
        using var t = new TcpScript();
        TcpConnection c = t.Established(out uint iss);
        t.Inject(TcpFlags.Rst, P + 1 + 100, 0);
        Sent ch = t.Expect(TcpFlags.Ack);
        Assert.Equal(P + 1, ch.Ack);
        Assert.Equal(TcpState.Established, c.State);
        Assert.Equal(1, t.Counters.TcpChallengeAcks);
        t.Inject(TcpFlags.Rst, P + 1, 0);
        t.ExpectNothing();
        Assert.Equal(TcpState.Closed, c.State);
        Assert.Equal(SocketError.ConnectionReset, c.TakeError());
    }

    [Fact]
    public void OutOfWindowRstIgnoredSilently()
    {
        using var t = new TcpScript();
        TcpConnection c = t.Established(out _);
        t.Inject(TcpFlags.Rst, P + 1 + 10_000_000, 0);
        t.ExpectNothing();
        Assert.Equal(TcpState.Established, c.State);
    }

    [Fact]
    public void InWindowSynGetsChallengeAck()
    {
        using var t = new TcpScript();
        TcpConnection c = t.Established(out uint iss);
        t.Inject(TcpFlags.Syn, P + 50, 0);
        Sent ch = t.Expect(TcpFlags.Ack);
        Assert.Equal(P + 1, ch.Ack);
        Assert.Equal(iss + 1, ch.Seq);
        Assert.Equal(TcpState.Established, c.State);
    }

    [Fact]
    public void FutureAckIsAckedAndDropped_OldAckGetsChallenge()
    {
        using var t = new TcpScript();
        TcpConnection c = t.Established(out uint iss);
        t.Inject(TcpFlags.Ack, P + 1, iss + 1 + 1000, payload: new byte[] { 1, 2, 3 });
        Sent a = t.Expect(TcpFlags.Ack);
        Assert.Equal(P + 1, a.Ack); // data not accepted
        Assert.Equal(0, c.BytesReadable);
        t.Inject(TcpFlags.Ack, P + 1, iss + 1 - 200_000, payload: new byte[] { 1, 2, 3 });
        t.Expect(TcpFlags.Ack);
        Assert.Equal(0, c.BytesReadable);
        Assert.Equal(TcpState.Established, c.State);
    }

    [Fact]
    public void ChallengeAcksAreRateLimited()
    {
        using var t = new TcpScript(new TcpConfig { Seed = 1, ChallengeAckLimit = 3 });
        t.Established(out _);
        for (int i = 0; i < 10; i++) t.Inject(TcpFlags.Rst, P + 100 + (uint)i, 0);
        Assert.Equal(3, t.Out.Count);
        Assert.Equal(7, t.Counters.Drops(DropReason.TcpChallengeAckRateLimited));
        t.Out.Clear();
        t.NowUs += 1_000_000;
        t.Inject(TcpFlags.Rst, P + 100, 0);
        t.Expect(TcpFlags.Ack);
    }

    [Fact]
    public void OutOfWindowDataGetsDupAck()
    {
        using var t = new TcpScript();
        TcpConnection c = t.Established(out _);
        t.Inject(TcpFlags.Ack | TcpFlags.Psh, P + 1 - 100, 0 + 0, payload: new byte[50]); // entirely old (ack field ignored? no: ack 0 is old)
        Sent a = t.Expect(TcpFlags.Ack);
        Assert.Equal(P + 1, a.Ack);
        Assert.Equal(TcpState.Established, c.State);
    }

    [Fact]
    public void PawsDropsOldTimestamp()
    {
        using var t = new TcpScript();
        var syn = new TcpOptions { HasMss = true, Mss = 1460, HasTimestamps = true, TsVal = 1000 };
        TcpConnection c = t.Established(out uint iss, syn);
        t.Inject(TcpFlags.Ack, P + 1, iss + 1, payload: new byte[] { 9 }, opt: new TcpOptions { HasTimestamps = true, TsVal = 500, TsEcr = 0 });
        Sent a = t.Expect(TcpFlags.Ack);
        Assert.Equal(P + 1, a.Ack);
        Assert.Equal(0, c.BytesReadable);
        Assert.Equal(1, t.Counters.Drops(DropReason.TcpPaws));
        t.Inject(TcpFlags.Ack, P + 1, iss + 1, payload: new byte[] { 9 }, opt: new TcpOptions { HasTimestamps = true, TsVal = 6000, TsEcr = 0 });
        Assert.Equal(1, c.BytesReadable);
    }

    // ---- data and ACK policy ----

    [Fact]
    public void DelayedAckAfterTimerOrEverySecondFullSegment()
    {
        using var t = new TcpScript();
        TcpConnection c = t.Established(out uint iss, new TcpOptions { HasMss = true, Mss = 1460 });
        // Quick-ACK mode at the start (as Linux): the first 16 segments are acknowledged at once.
        uint seq = P + 1;
        for (int i = 0; i < 16; i++)
        {
            t.Inject(TcpFlags.Ack, seq, iss + 1, payload: new byte[10]);
            seq += 10;
            Assert.Equal(seq, t.Expect(TcpFlags.Ack).Ack);
        }
        Assert.Equal(160, c.Receive(new byte[200], false, t.NowUs, out _));
        t.Out.Clear();
        const uint Q = 160;
        t.Inject(TcpFlags.Ack, P + 1 + Q, iss + 1, payload: new byte[100]);
        t.ExpectNothing();
        t.Advance(39_000);
        t.ExpectNothing();
        t.Advance(2_000);
        Assert.Equal(P + Q + 101, t.Expect(TcpFlags.Ack).Ack);
        t.Inject(TcpFlags.Ack, P + Q + 101, iss + 1, payload: new byte[1460]);
        t.ExpectNothing();
        t.Inject(TcpFlags.Ack, P + Q + 1561, iss + 1, payload: new byte[1460]);
        Assert.Equal(P + Q + 3021, t.Expect(TcpFlags.Ack).Ack);
        Assert.Equal(3020, c.BytesReadable);
    }

    [Fact]
    public void InAReceiveBurst_InOrderDataIsAcknowledgedOnceAtItsEnd_OtherAcksAtOnce()
    {
        using var t = new TcpScript();
        TcpConnection c = t.Established(out uint iss, new TcpOptions { HasMss = true, Mss = 1460 });
        uint seq = P + 1;
        for (int i = 0; i < 16; i++) // quick-ACK mode first: each acknowledged at once, also inside a burst
        {
            t.Layer.BeginReceiveBurst();
            t.Inject(TcpFlags.Ack, seq, iss + 1, payload: new byte[10]);
            seq += 10;
            Assert.Equal(seq, t.Expect(TcpFlags.Ack).Ack);
            t.Layer.EndReceiveBurst(t.NowUs);
            t.ExpectNothing();
        }
        // Six full segments in one burst: one ACK, at the end, for all of them.
        t.Layer.BeginReceiveBurst();
        for (int i = 0; i < 6; i++)
        {
            t.Inject(TcpFlags.Ack, seq, iss + 1, payload: new byte[1460]);
            seq += 1460;
        }
        t.ExpectNothing();
        t.Layer.EndReceiveBurst(t.NowUs);
        Assert.Equal(seq, t.Expect(TcpFlags.Ack).Ack);
        t.ExpectNothing();
        // Out of order inside a burst: the duplicate ACK leaves at once (fast retransmit needs each one).
        t.Layer.BeginReceiveBurst();
        t.Inject(TcpFlags.Ack, seq + 1460, iss + 1, payload: new byte[1460]);
        Assert.Equal(seq, t.Expect(TcpFlags.Ack).Ack);
        t.Inject(TcpFlags.Ack, seq + 2920, iss + 1, payload: new byte[1460]);
        Assert.Equal(seq, t.Expect(TcpFlags.Ack).Ack);
        t.Layer.EndReceiveBurst(t.NowUs);
        t.ExpectNothing();
        // The hole filled: acknowledged at once, up to the end of what was held.
        t.Inject(TcpFlags.Ack, seq, iss + 1, payload: new byte[1460]);
        seq += 3 * 1460;
        Assert.Equal(seq, t.Expect(TcpFlags.Ack).Ack);
        // Data sent during the burst carries the ACK: nothing more at its end.
        t.Layer.BeginReceiveBurst();
        for (int i = 0; i < 2; i++)
        {
            t.Inject(TcpFlags.Ack, seq, iss + 1, payload: new byte[1460]);
            seq += 1460;
        }
        Assert.Equal(5, c.Send(new byte[5], t.NowUs, out _));
        Assert.Equal(seq, t.Expect(TcpFlags.Ack | TcpFlags.Psh).Ack);
        t.Layer.EndReceiveBurst(t.NowUs);
        t.ExpectNothing();
        // Outside a burst: every second full segment, as before.
        t.Inject(TcpFlags.Ack, seq, iss + 6, payload: new byte[1460]);
        t.ExpectNothing();
        t.Inject(TcpFlags.Ack, seq + 1460, iss + 6, payload: new byte[1460]);
        Assert.Equal(seq + 2920, t.Expect(TcpFlags.Ack).Ack);
        Assert.True(c.BytesReadable > 0);
    }

    [Fact]
    public void ABurstAckIsNotSentForAConnectionClosedInTheBurst()
    {
        using var t = new TcpScript();
        TcpConnection c = t.Established(out uint iss, new TcpOptions { HasMss = true, Mss = 1460 });
        uint seq = P + 1;
        for (int i = 0; i < 16; i++)
        {
            t.Inject(TcpFlags.Ack, seq, iss + 1, payload: new byte[10]);
            seq += 10;
            t.Expect(TcpFlags.Ack);
        }
        t.Layer.BeginReceiveBurst();
        t.Inject(TcpFlags.Ack, seq, iss + 1, payload: new byte[1460]);
        t.Inject(TcpFlags.Ack, seq + 1460, iss + 1, payload: new byte[1460]);
        t.ExpectNothing();
        t.Inject(TcpFlags.Rst, seq + 2920, 0);
        Assert.Equal(TcpState.Closed, c.State);
        t.Layer.EndReceiveBurst(t.NowUs);
        t.ExpectNothing();
    }

    [Fact]
    public void ADuplicateSegmentIsReportedInADsackBlock_OnlyWithSack()
    {
        using var t = new TcpScript();
        var syn = new TcpOptions { HasMss = true, Mss = 1460, SackPermitted = true };
        TcpConnection c = t.Established(out uint iss, syn);
        t.Inject(TcpFlags.Ack, P + 1, iss + 1, payload: new byte[100]);
        Assert.Equal(P + 101, t.Expect(TcpFlags.Ack).Ack); // quick ACK
        // The same segment again (a spurious retransmission): RFC 2883 D-SACK, the duplicate range as first block.
        t.Inject(TcpFlags.Ack, P + 1, iss + 1, payload: new byte[100]);
        Sent d = t.Expect(TcpFlags.Ack);
        Assert.Equal(P + 101, d.Ack);
        Assert.Equal(1, d.Options.SackCount);
        Assert.Equal(new SackBlock(P + 1, P + 101), d.Options.GetSack(0));
        // Only once: the next ACK carries no block.
        t.Inject(TcpFlags.Ack, P + 101, iss + 1, payload: new byte[10]);
        Sent next = t.Expect(TcpFlags.Ack);
        Assert.Equal(P + 111, next.Ack);
        Assert.Equal(0, next.Options.SackCount);

        // Without SACK negotiated: a plain duplicate ACK.
        using var u = new TcpScript();
        u.Established(out uint iss2, new TcpOptions { HasMss = true, Mss = 1460 });
        u.Inject(TcpFlags.Ack, P + 1, iss2 + 1, payload: new byte[100]);
        u.Expect(TcpFlags.Ack);
        u.Inject(TcpFlags.Ack, P + 1, iss2 + 1, payload: new byte[100]);
        Assert.Equal(0, u.Expect(TcpFlags.Ack).Options.SackCount);
    }

    [Fact]
    public void AReplyEndsQuickAckMode_NextRequestsAckRidesOnTheReply()
    {
        using var t = new TcpScript();
        TcpConnection c = t.Established(out uint iss, new TcpOptions { HasMss = true, Mss = 1460 });
        // Quick-ACK mode: the first request is acknowledged at once.
        t.Inject(TcpFlags.Ack | TcpFlags.Psh, P + 1, iss + 1, payload: new byte[64]);
        Assert.Equal(P + 65, t.Expect(TcpFlags.Ack).Ack);
        Assert.Equal(64, c.Receive(new byte[100], false, t.NowUs, out _));
        t.Out.Clear(); // a window update (the 16-bit window without scaling grows back)
        // The application answers within the delayed-ACK time: an interactive connection (Linux's pingpong mode).
        t.Advance(1_000);
        Assert.Equal(64, c.Send(new byte[64], t.NowUs, out _));
        t.Expect(TcpFlags.Ack | TcpFlags.Psh);
        // The next request is no longer acknowledged on its own: the reply carries the ACK.
        t.Inject(TcpFlags.Ack | TcpFlags.Psh, P + 65, iss + 65, payload: new byte[64]);
        t.ExpectNothing();
        Assert.Equal(64, c.Receive(new byte[100], false, t.NowUs, out _));
        t.Out.Clear();
        Assert.Equal(64, c.Send(new byte[64], t.NowUs, out _));
        Sent reply = t.Expect(TcpFlags.Ack | TcpFlags.Psh);
        Assert.Equal(P + 129, reply.Ack);
        t.ExpectNothing();
        // Unanswered, a request is still acknowledged by the delayed-ACK timer.
        t.Inject(TcpFlags.Ack | TcpFlags.Psh, P + 129, iss + 129, payload: new byte[64]);
        t.ExpectNothing();
        t.Advance(41_000);
        Assert.Equal(P + 193, t.Expect(TcpFlags.Ack).Ack);
    }

    [Fact]
    public void QuickAckModeStaysWhenTheSenderIsSilentLong()
    {
        using var t = new TcpScript();
        TcpConnection c = t.Established(out uint iss, new TcpOptions { HasMss = true, Mss = 1460 });
        t.Inject(TcpFlags.Ack | TcpFlags.Psh, P + 1, iss + 1, payload: new byte[64]);
        t.Expect(TcpFlags.Ack);
        // Data sent long after the peer's last segment is not a reply: quick-ACK mode goes on.
        t.Advance(100_000);
        Assert.Equal(64, c.Send(new byte[64], t.NowUs, out _));
        t.Expect(TcpFlags.Ack | TcpFlags.Psh);
        t.Inject(TcpFlags.Ack | TcpFlags.Psh, P + 65, iss + 65, payload: new byte[64]);
        Assert.Equal(P + 129, t.Expect(TcpFlags.Ack).Ack);
    }

    [Fact]
    public void OutOfOrderDataAckedAtOnceWithSackAndReassembled()
    {
        using var t = new TcpScript();
        var syn = new TcpOptions { HasMss = true, Mss = 1460, SackPermitted = true };
        TcpConnection c = t.Established(out uint iss, syn);
        byte[] a = new byte[100], b = new byte[100];
        Array.Fill(a, (byte)1); Array.Fill(b, (byte)2);
        t.Inject(TcpFlags.Ack, P + 101, iss + 1, payload: b);
        Sent dup = t.Expect(TcpFlags.Ack);
        Assert.Equal(P + 1, dup.Ack);
        Assert.Equal(1, dup.Options.SackCount);
        Assert.Equal(new SackBlock(P + 101, P + 201), dup.Options.GetSack(0));
        Assert.Equal(0, c.BytesReadable);
        t.Inject(TcpFlags.Ack, P + 1, iss + 1, payload: a);
        Sent full = t.Expect(TcpFlags.Ack);
        Assert.Equal(P + 201, full.Ack);
        Assert.Equal(0, full.Options.SackCount);
        var buf = new byte[300];
        Assert.Equal(200, c.Receive(buf, false, t.NowUs, out _));
        Assert.All(buf[..100], x => Assert.Equal(1, x));
        Assert.All(buf[100..200], x => Assert.Equal(2, x));
        t.Advance(new TcpConfig().IdleBufferReleaseUs); // drained blocks go back after the idle delay
        Assert.False(c.HoldsBuffers);
    }

    /// <summary>A drained ring keeps its block for the next request and gives it back once the connection has been
    /// idle for <see cref="TcpConfig.IdleBufferReleaseUs"/>; with the delay 0 it goes back at once.</summary>
    [Fact]
    public void DrainedRingKeepsItsBlockUntilIdle()
    {
        using var t = new TcpScript();
        TcpConnection c = t.Established(out uint iss);
        var buf = new byte[300];
        t.Inject(TcpFlags.Ack, P + 1, iss + 1, payload: new byte[100]);
        Assert.Equal(100, c.Receive(buf, false, t.NowUs, out _));
        Assert.True(c.HoldsBuffers);
        Assert.Equal(1, t.Buffers.OutstandingBlocks);
        t.Inject(TcpFlags.Ack, P + 101, iss + 1, payload: new byte[100]);
        Assert.Equal(1, t.Buffers.OutstandingBlocks);
        Assert.Equal(0, t.Buffers.BytesCached);                 // the same block: nothing was returned and rented
        Assert.Equal(100, c.Receive(buf, false, t.NowUs, out _));
        long delay = new TcpConfig().IdleBufferReleaseUs;
        t.Advance(delay / 2);
        Assert.True(c.HoldsBuffers);
        t.Advance(delay);
        Assert.False(c.HoldsBuffers);
        Assert.Equal(0, t.Buffers.OutstandingBlocks);
        Assert.Equal(TcpState.Established, c.State);

        using var t0 = new TcpScript(new TcpConfig { Seed = 42, IdleBufferReleaseUs = 0 });
        TcpConnection c0 = t0.Established(out uint iss0);
        t0.Inject(TcpFlags.Ack, P + 1, iss0 + 1, payload: new byte[100]);
        Assert.Equal(100, c0.Receive(buf, false, t0.NowUs, out _));
        Assert.False(c0.HoldsBuffers);
        Assert.Equal(0, t0.Buffers.OutstandingBlocks);
    }

    [Fact]
    public void ManyHolesBeyondAssemblerCapacityStillReassembleAndRelease()
    {
        using var t = new TcpScript();
        var syn = new TcpOptions { HasMss = true, Mss = 1460, SackPermitted = true };
        TcpConnection c = t.Established(out uint iss, syn);
        var all = new byte[800];
        new Random(4).NextBytes(all);
        // Every other 10-byte piece, from the far end inwards: 40 disjoint intervals for a 16-entry assembler.
        for (int i = 79; i >= 1; i -= 2)
            t.Inject(TcpFlags.Ack, P + 1 + (uint)(i * 10), iss + 1, payload: all[(i * 10)..(i * 10 + 10)]);
        t.Out.Clear();
        Assert.Equal(0, c.BytesReadable);
        // Now everything in order (retransmissions): the stream must come out exact.
        for (int i = 0; i < 80; i++)
            t.Inject(TcpFlags.Ack, P + 1 + (uint)(i * 10), iss + 1, payload: all[(i * 10)..(i * 10 + 10)]);
        Assert.Equal(800, c.BytesReadable);
        var buf = new byte[1000];
        Assert.Equal(800, c.Receive(buf, false, t.NowUs, out _));
        Assert.Equal(all, buf[..800]);
        t.Advance(new TcpConfig().IdleBufferReleaseUs); // drained blocks go back after the idle delay
        Assert.False(c.HoldsBuffers);
        Assert.Equal(0, t.Layer.AssemblersInUse);
        Assert.Equal(0, t.Buffers.OutstandingBlocks);
    }

    // ---- closing ----

    [Fact]
    public void PassiveClose()
    {
        using var t = new TcpScript();
        TcpConnection c = t.Established(out uint iss);
        t.Inject(TcpFlags.Fin | TcpFlags.Ack, P + 1, iss + 1);
        // The ACK of the FIN waits (as on Linux) and rides on our FIN when the application closes at once.
        t.ExpectNothing();
        Assert.Equal(TcpState.CloseWait, c.State);
        Assert.Equal(0, c.Receive(new byte[10], false, t.NowUs, out SocketError e));
        Assert.Equal(SocketError.Success, e); // EOF
        Assert.True((c.GetReadiness() & Readiness.RdHup) != 0);
        c.Close(false, t.NowUs);
        Sent fin = t.Expect(TcpFlags.Fin | TcpFlags.Ack);
        Assert.Equal(iss + 1, fin.Seq);
        Assert.Equal(P + 2, fin.Ack);
        t.ExpectNothing();
        Assert.Equal(TcpState.LastAck, c.State);
        t.Inject(TcpFlags.Ack, P + 2, iss + 2);
        Assert.Equal(TcpState.Closed, c.State);
        Assert.Equal(0, t.Layer.ConnectionCount);
        t.Advance(100_000); // the delayed-ACK deadline of the FIN passes without a segment
        t.ExpectNothing();
    }

    [Fact]
    public void PassiveClose_FinAcknowledgedAfterTheDelayedAckTimeWhenTheApplicationDoesNotClose()
    {
        using var t = new TcpScript();
        TcpConnection c = t.Established(out uint iss);
        t.Inject(TcpFlags.Fin | TcpFlags.Ack, P + 1, iss + 1);
        Assert.Equal(TcpState.CloseWait, c.State);
        t.Advance(new TcpConfig().DelayedAckUs - 1_000);
        t.ExpectNothing();
        t.Advance(2_000);
        Sent ack = t.Expect(TcpFlags.Ack);
        Assert.Equal(P + 2, ack.Ack);
        Assert.Equal(iss + 1, ack.Seq);
        t.ExpectNothing();
        // The peer's retransmitted FIN (a duplicate now) is acknowledged at once.
        t.Inject(TcpFlags.Fin | TcpFlags.Ack, P + 1, iss + 1);
        Assert.Equal(P + 2, t.Expect(TcpFlags.Ack).Ack);
        // Data sent in CLOSE-WAIT carries the ACK as usual; the close then sends the FIN.
        Assert.Equal(3, c.Send(new byte[] { 1, 2, 3 }, t.NowUs, out _));
        Sent data = t.Expect(TcpFlags.Ack | TcpFlags.Psh);
        Assert.Equal(P + 2, data.Ack);
        c.Close(false, t.NowUs);
        Assert.Equal(iss + 4, t.Expect(TcpFlags.Fin | TcpFlags.Ack).Seq);
        Assert.Equal(TcpState.LastAck, c.State);
    }

    [Fact]
    public void PassiveClose_FinAckedAtOnceWhenNotDelayedOrWhenDataOwesAnAckNow()
    {
        // DelayFinAck off: the FIN's ACK leaves at once (the behaviour before).
        using (var t = new TcpScript(new TcpConfig { Seed = 42, DelayFinAck = false }))
        {
            TcpConnection c = t.Established(out uint iss);
            t.Inject(TcpFlags.Fin | TcpFlags.Ack, P + 1, iss + 1);
            Assert.Equal(P + 2, t.Expect(TcpFlags.Ack).Ack);
            Assert.Equal(TcpState.CloseWait, c.State);
        }
        // DelayFinAck off, data with the FIN in quick-ACK mode: acknowledged at once.
        using (var t = new TcpScript(new TcpConfig { Seed = 42, DelayFinAck = false }))
        {
            TcpConnection c = t.Established(out uint iss);
            t.Inject(TcpFlags.Fin | TcpFlags.Ack | TcpFlags.Psh, P + 1, iss + 1, payload: new byte[] { 7, 8 });
            Assert.Equal(P + 4, t.Expect(TcpFlags.Ack).Ack);
            Assert.Equal(TcpState.CloseWait, c.State);
        }
    }

    /// <summary>Data carried with the FIN at the start of a connection (quick-ACK mode): Linux's tcp_fin enters
    /// pingpong mode before __tcp_ack_snd_check decides, so the ACK is delayed like a bare FIN's and rides on the
    /// reply or the FIN; unanswered, the delayed-ACK timer sends it. Both receive paths.</summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void PassiveClose_DataWithTheFinInQuickAckMode_AckIsDelayedAndRidesOnTheReply(bool shortPath)
    {
        using (var t = new TcpScript())
        {
            t.Layer.ReceiveFastPath = shortPath;
            TcpConnection c = t.Established(out uint iss, new TcpOptions { HasMss = true, Mss = 1460 });
            long before = t.Layer.ReceiveFastPathFins;
            t.Inject(TcpFlags.Fin | TcpFlags.Ack | TcpFlags.Psh, P + 1, iss + 1, payload: new byte[] { 7, 8 });
            Assert.Equal(shortPath ? before + 1 : before, t.Layer.ReceiveFastPathFins);
            Assert.Equal(TcpState.CloseWait, c.State);
            t.ExpectNothing();
            var buf = new byte[10];
            Assert.Equal(2, c.Receive(buf, false, t.NowUs, out _));
            Assert.Equal(0, c.Receive(buf, false, t.NowUs, out _)); // end of stream
            t.ExpectNothing();
            Assert.Equal(3, c.Send(new byte[] { 1, 2, 3 }, t.NowUs, out _));
            Sent reply = t.Expect(TcpFlags.Ack | TcpFlags.Psh);
            Assert.Equal(P + 4, reply.Ack);
            c.Close(false, t.NowUs);
            Sent fin = t.Expect(TcpFlags.Fin | TcpFlags.Ack);
            Assert.Equal(P + 4, fin.Ack);
            Assert.Equal(iss + 4, fin.Seq);
            t.Advance(100_000);
            t.ExpectNothing(); // the delayed-ACK deadline found nothing owed
        }
        using (var t = new TcpScript())
        {
            t.Layer.ReceiveFastPath = shortPath;
            TcpConnection c = t.Established(out uint iss, new TcpOptions { HasMss = true, Mss = 1460 });
            t.Inject(TcpFlags.Fin | TcpFlags.Ack | TcpFlags.Psh, P + 1, iss + 1, payload: new byte[] { 7, 8 });
            t.Advance(new TcpConfig().DelayedAckUs - 1_000);
            t.ExpectNothing();
            t.Advance(2_000);
            Sent ack = t.Expect(TcpFlags.Ack);
            Assert.Equal(P + 4, ack.Ack);
            t.ExpectNothing();
            Assert.Equal(TcpState.CloseWait, c.State);
        }
    }

    /// <summary>The fallbacks of <see cref="PassiveClose_DataWithTheFinInQuickAckMode_AckIsDelayedAndRidesOnTheReply"/>:
    /// two full segments' worth of data with the FIN is acknowledged at once (Linux: more than one full frame
    /// received), and so is data cut at the window's edge in quick-ACK mode (the FIN beyond it is not taken: no
    /// pingpong mode).</summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void PassiveClose_DataWithTheFin_AckedAtOnceForTwoFullSegmentsOrAFinPastTheWindow(bool shortPath)
    {
        using (var t = new TcpScript())
        {
            t.Layer.ReceiveFastPath = shortPath;
            TcpConnection c = t.Established(out uint iss, new TcpOptions { HasMss = true, Mss = 1460 });
            t.Inject(TcpFlags.Fin | TcpFlags.Ack | TcpFlags.Psh, P + 1, iss + 1, payload: new byte[2 * 1460]);
            Assert.Equal(P + 2 + 2 * 1460, t.Expect(TcpFlags.Ack).Ack);
            Assert.Equal(TcpState.CloseWait, c.State);
        }
        using (var t = new TcpScript(new TcpConfig { Seed = 7, ReceiveBufferSize = 2000 }))
        {
            t.Layer.ReceiveFastPath = shortPath;
            TcpConnection c = t.Established(out uint iss, new TcpOptions { HasMss = true, Mss = 1460 });
            t.Inject(TcpFlags.Fin | TcpFlags.Ack | TcpFlags.Psh, P + 1, iss + 1, payload: new byte[2500]);
            Sent ack = t.Expect(TcpFlags.Ack);
            Assert.Equal(P + 1 + 2000, ack.Ack);
            Assert.Equal(TcpState.Established, c.State);
            t.ExpectNothing();
        }
    }

    [Fact]
    public void ActiveCloseThroughTimeWait()
    {
        using var t = new TcpScript(new TcpConfig { Seed = 5, MslUs = 1_000_000 });
        TcpConnection c = t.Established(out uint iss);
        c.Shutdown(false, true, t.NowUs);
        Sent fin = t.Expect(TcpFlags.Fin | TcpFlags.Ack);
        Assert.Equal(TcpState.FinWait1, c.State);
        t.Inject(TcpFlags.Ack, P + 1, iss + 2);
        Assert.Equal(TcpState.FinWait2, c.State);
        t.Inject(TcpFlags.Fin | TcpFlags.Ack, P + 1, iss + 2);
        Assert.Equal(P + 2, t.Expect(TcpFlags.Ack).Ack);
        Assert.Equal(TcpState.TimeWait, c.State);
        // A retransmitted FIN is acknowledged again.
        t.Inject(TcpFlags.Fin | TcpFlags.Ack, P + 1, iss + 2);
        Assert.Equal(P + 2, t.Expect(TcpFlags.Ack).Ack);
        t.Advance(1_900_000);
        Assert.Equal(TcpState.TimeWait, c.State);
        t.Advance(200_000);
        Assert.Equal(TcpState.Closed, c.State);
        Assert.Equal(0, t.Layer.ConnectionCount);
        _ = fin;
    }

    [Fact]
    public void TimeWaitOverflowClosesAfterTheFinalAck()
    {
        using var t = new TcpScript(new TcpConfig { Seed = 5, MaxTimeWait = 0 });
        TcpConnection c = t.Established(out uint iss);
        c.Shutdown(false, true, t.NowUs);
        t.Expect(TcpFlags.Fin | TcpFlags.Ack);
        t.Inject(TcpFlags.Ack, P + 1, iss + 2);
        t.Inject(TcpFlags.Fin | TcpFlags.Ack, P + 1, iss + 2);
        // The peer's FIN is still acknowledged; the connection then goes at the next timer sweep, not after 2 MSL.
        Assert.Equal(P + 2, t.Expect(TcpFlags.Ack).Ack);
        Assert.Equal(1, t.Layer.TimeWaitCount);
        t.Advance(10_000);
        Assert.Equal(TcpState.Closed, c.State);
        Assert.Equal(0, t.Layer.TimeWaitCount);
        Assert.Equal(0, t.Layer.ConnectionCount);
    }

    [Fact]
    public void TimeWaitIsCountedUntilItEnds()
    {
        using var t = new TcpScript(new TcpConfig { Seed = 5, MslUs = 1_000_000 });
        TcpConnection c = t.Established(out uint iss);
        c.Shutdown(false, true, t.NowUs);
        t.Expect(TcpFlags.Fin | TcpFlags.Ack);
        t.Inject(TcpFlags.Fin | TcpFlags.Ack, P + 1, iss + 2);
        t.Expect(TcpFlags.Ack);
        Assert.Equal(1, t.Layer.TimeWaitCount);
        t.Advance(1_000_000);
        Assert.Equal(TcpState.TimeWait, c.State);
        t.Advance(1_100_000);
        Assert.Equal(TcpState.Closed, c.State);
        Assert.Equal(0, t.Layer.TimeWaitCount);
    }

    [Fact]
    public void SimultaneousClose()
    {
        using var t = new TcpScript();
        TcpConnection c = t.Established(out uint iss);
        c.Shutdown(false, true, t.NowUs);
        t.Expect(TcpFlags.Fin | TcpFlags.Ack);
        t.Inject(TcpFlags.Fin | TcpFlags.Ack, P + 1, iss + 1); // peer's FIN does not ack ours
        Assert.Equal(P + 2, t.Expect(TcpFlags.Ack).Ack);
        Assert.Equal(TcpState.Closing, c.State);
        t.Inject(TcpFlags.Ack, P + 2, iss + 2);
        Assert.Equal(TcpState.TimeWait, c.State);
    }

    [Fact]
    public void FinWait1FinAckGoesStraightToTimeWait()
    {
        using var t = new TcpScript();
        TcpConnection c = t.Established(out uint iss);
        c.Shutdown(false, true, t.NowUs);
        t.Expect(TcpFlags.Fin | TcpFlags.Ack);
        t.Inject(TcpFlags.Fin | TcpFlags.Ack, P + 1, iss + 2);
        t.Expect(TcpFlags.Ack);
        Assert.Equal(TcpState.TimeWait, c.State);
    }

    [Fact]
    public void TimeWaitReusedByNewerSyn()
    {
        using var t = new TcpScript();
        TcpConnection c = t.Established(out uint iss);
        c.Shutdown(false, true, t.NowUs);
        t.Expect(TcpFlags.Fin | TcpFlags.Ack);
        t.Inject(TcpFlags.Fin | TcpFlags.Ack, P + 1, iss + 2);
        t.Expect(TcpFlags.Ack);
        Assert.Equal(TcpState.TimeWait, c.State);
        // An old SYN (lower sequence) only gets the TIME-WAIT ACK.
        t.Inject(TcpFlags.Syn, P - 5000, 0);
        t.Expect(TcpFlags.Ack);
        // A newer SYN starts a fresh connection on the same tuple.
        t.Inject(TcpFlags.Syn, P + 100_000, 0);
        Sent sa = t.Expect(TcpFlags.Syn | TcpFlags.Ack);
        Assert.Equal(P + 100_001, sa.Ack);
        Assert.Equal(TcpState.Closed, c.State);
    }

    [Fact]
    public void CloseWithUnreadDataResets()
    {
        using var t = new TcpScript();
        TcpConnection c = t.Established(out uint iss);
        t.Inject(TcpFlags.Ack, P + 1, iss + 1, payload: new byte[10]);
        t.Expect(TcpFlags.Ack); // quick ACK
        c.Close(false, t.NowUs);
        Sent r = t.Expect(TcpFlags.Rst);
        Assert.Equal(iss + 1, r.Seq);
        Assert.Equal(0, t.Layer.ConnectionCount);
    }

    [Fact]
    public void DataAfterCloseResetsConnection()
    {
        using var t = new TcpScript();
        TcpConnection c = t.Established(out uint iss);
        c.Close(false, t.NowUs);
        t.Expect(TcpFlags.Fin | TcpFlags.Ack);
        Assert.Equal(TcpState.FinWait1, c.State);
        t.Inject(TcpFlags.Ack | TcpFlags.Psh, P + 1, iss + 2, payload: new byte[] { 1, 2 });
        Assert.Equal(iss + 2, t.Expect(TcpFlags.Rst).Seq);
        Assert.Equal(0, t.Layer.ConnectionCount);
    }

    [Fact]
    public void LingerZeroAborts()
    {
        using var t = new TcpScript();
        TcpConnection c = t.Established(out uint iss);
        c.Close(true, t.NowUs);
        t.Expect(TcpFlags.Rst);
        Assert.Equal(0, t.Layer.ConnectionCount);
    }

    [Fact]
    public void HalfCloseStillReceives()
    {
        using var t = new TcpScript();
        TcpConnection c = t.Established(out uint iss);
        c.Shutdown(false, true, t.NowUs);
        t.Expect(TcpFlags.Fin | TcpFlags.Ack);
        t.Inject(TcpFlags.Ack, P + 1, iss + 2);
        Assert.Equal(TcpState.FinWait2, c.State);
        t.Inject(TcpFlags.Ack | TcpFlags.Psh, P + 1, iss + 2, payload: new byte[] { 1, 2, 3 });
        Assert.Equal(3, c.BytesReadable);
        Assert.Equal(SocketError.BrokenPipe, SendErr(c, t));
    }

    private static SocketError SendErr(TcpConnection c, TcpScript t)
    {
        c.Send(new byte[] { 1 }, t.NowUs, out SocketError e);
        return e;
    }

    // ---- timers ----

    [Fact]
    public void RetransmissionTimeoutBacksOffAndUserTimeoutAborts()
    {
        using var t = new TcpScript();
        TcpConnection c = t.Established(out uint iss);
        c.UserTimeoutUs = 10_000_000;
        Assert.Equal(5, c.Send(new byte[] { 1, 2, 3, 4, 5 }, t.NowUs, out _));
        Sent d = t.Expect(TcpFlags.Ack | TcpFlags.Psh);
        Assert.Equal(5, d.Payload.Length);
        long rto = c.RtoUs;
        t.Advance(rto - 1000);
        t.ExpectNothing();
        t.Advance(2000);
        Sent r1 = t.Expect(TcpFlags.Ack | TcpFlags.Psh);
        Assert.Equal(d.Seq, r1.Seq);
        Assert.Equal(c.SendMss, c.CongestionWindow); // RFC 5681 loss window: one segment
        t.Advance(2 * rto - 2000);
        t.ExpectNothing();
        t.Advance(3000);
        t.Expect(TcpFlags.Ack | TcpFlags.Psh);
        t.Advance(20_000_000);
        Assert.Equal(TcpState.Closed, c.State);
        Assert.Equal(SocketError.TimedOut, c.TakeError());
    }

    [Fact]
    public void KeepaliveProbesThenTimesOut()
    {
        using var t = new TcpScript();
        TcpConnection c = t.Established(out uint iss);
        c.KeepIdleUs = 10_000_000;
        c.KeepIntervalUs = 1_000_000;
        c.KeepCount = 3;
        c.SetKeepAlive(true, t.NowUs);
        t.Advance(9_900_000);
        t.ExpectNothing();
        t.Advance(200_000);
        Sent probe = t.Expect(TcpFlags.Ack);
        Assert.Equal(iss, probe.Seq); // SND.UNA - 1
        // The peer answers: the connection stays and the idle period starts over.
        t.Inject(TcpFlags.Ack, P + 1, iss + 1);
        t.Advance(9_000_000);
        t.ExpectNothing();
        t.Advance(1_100_000);
        t.Expect(TcpFlags.Ack);
        t.Advance(1_000_000);
        t.Expect(TcpFlags.Ack);
        t.Advance(1_000_000);
        t.Expect(TcpFlags.Ack);
        Assert.Equal(TcpState.Established, c.State);
        t.Advance(1_000_000);
        Assert.Equal(TcpState.Closed, c.State);
        Assert.Equal(SocketError.TimedOut, c.TakeError());
    }

    [Fact]
    public void ZeroWindowProbeThenWindowOpens()
    {
        using var t = new TcpScript();
        TcpConnection c = t.Established(out uint iss, window: 0);
        Assert.Equal(3, c.Send(new byte[] { 7, 8, 9 }, t.NowUs, out _));
        t.ExpectNothing(); // zero window: nothing may be sent
        t.Advance(c.RtoUs + 1000);
        Sent probe = t.Expect(TcpFlags.Ack);
        Assert.Equal(iss, probe.Seq);
        Assert.Empty(probe.Payload);
        t.Inject(TcpFlags.Ack, P + 1, iss + 1, window: 0);
        t.Advance(5_000_000);
        Assert.True(t.Out.Count >= 1); // probes keep coming, backing off
        t.Out.Clear();
        t.Inject(TcpFlags.Ack, P + 1, iss + 1, window: 1000);
        Sent d = t.Expect(TcpFlags.Ack | TcpFlags.Psh);
        Assert.Equal(new byte[] { 7, 8, 9 }, d.Payload);
        Assert.Equal(iss + 1, d.Seq);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void HandshakeAckWhileTheAcceptQueueIsFull_IsIgnoredThenCompletesAfterAnAccept(bool receiveFastPath)
    {
        // The ACK that would complete a passive open while the accept queue is full is ignored (Linux; the peer
        // retransmits it), by the handshake's short path and by the full path alike; once the application accepts,
        // the retransmitted ACK completes the open.
        using var t = new TcpScript();
        t.Layer.ReceiveFastPath = receiveFastPath;
        TcpListener l = t.Layer.Listen(80, 2, out _)!;
        uint SynAck(ushort port, uint seq)
        {
            t.Inject(TcpFlags.Syn, seq, 0, srcPort: port);
            return t.Expect(TcpFlags.Syn | TcpFlags.Ack).Seq;
        }
        uint a = SynAck(6000, 1000);
        t.Inject(TcpFlags.Ack, 1001, a + 1, srcPort: 6000);
        uint b = SynAck(6001, 2000);
        uint c = SynAck(6002, 3000);
        t.Inject(TcpFlags.Ack, 2001, b + 1, srcPort: 6001); // the queue holds two now: full
        t.Inject(TcpFlags.Ack, 3001, c + 1, srcPort: 6002);
        Assert.Equal(1, t.Counters.Drops(DropReason.TcpBacklogFull));
        t.ExpectNothing();
        Assert.Equal(0, t.Layer.ReceiveFastPathHandshakeAcks - (receiveFastPath ? 2 : 0)); // the refused one not counted
        Assert.NotNull(l.Accept());
        t.Inject(TcpFlags.Ack, 3001, c + 1, srcPort: 6002);
        Assert.NotNull(l.Accept());
        TcpConnection? third = l.Accept();
        Assert.NotNull(third);
        Assert.Equal(TcpState.Established, third!.State);
        Assert.Null(l.Accept());
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void HandshakeAckAfterTheListenerClosed_AbortsTheHalfOpenChildWithAReset(bool receiveFastPath)
    {
        using var t = new TcpScript();
        t.Layer.ReceiveFastPath = receiveFastPath;
        TcpListener l = t.Layer.Listen(80, 8, out _)!;
        t.Inject(TcpFlags.Syn, P, 0);
        Sent sa = t.Expect(TcpFlags.Syn | TcpFlags.Ack);
        t.Layer.CloseListener(l, t.NowUs);
        while (t.Out.Count > 0 && (t.Out.Peek().Flags & TcpFlags.Rst) == 0) t.Out.Dequeue();
        bool resetAtClose = t.Out.Count > 0;
        t.Out.Clear();
        t.Inject(TcpFlags.Ack, P + 1, sa.Seq + 1);
        // Either the close already reset the half-open child (then the ACK finds no connection and draws a reset),
        // or the ACK aborts it now: in both cases the peer gets a reset and no connection is left.
        Assert.True(resetAtClose || t.Out.Count > 0, "the peer is told with a reset");
        if (t.Out.Count > 0) t.Expect(TcpFlags.Rst);
        Assert.Equal(0, t.Layer.ConnectionCount);
        Assert.Equal(0, t.Layer.ReceiveFastPathHandshakeAcks);
    }

    [Fact]
    public void SynCookiesWhenBacklogOverflows()
    {
        using var t = new TcpScript();
        TcpListener l = t.Layer.Listen(80, 1, out _)!;
        t.Inject(TcpFlags.Syn, P, 0, srcPort: 6000);
        t.Expect(TcpFlags.Syn | TcpFlags.Ack); // stateful
        Assert.Equal(1, l.HalfOpen);
        t.Inject(TcpFlags.Syn, 9000, 0, srcPort: 6001, opt: new TcpOptions { HasMss = true, Mss = 1460, HasWindowScale = true, WindowScale = 7 });
        Sent cookie = t.Expect(TcpFlags.Syn | TcpFlags.Ack);
        Assert.Equal(1, t.Counters.TcpSynCookiesSent);
        Assert.False(cookie.Options.HasWindowScale);
        Assert.Equal(1, t.Layer.ConnectionCount); // no state for the cookie
        // A forged ACK is refused.
        t.Inject(TcpFlags.Ack, 9001, cookie.Seq + 2, srcPort: 6001);
        t.Expect(TcpFlags.Rst);
        t.Inject(TcpFlags.Ack, 9001, cookie.Seq + 1, srcPort: 6001, payload: new byte[] { 42 });
        Assert.Equal(1, t.Counters.TcpSynCookiesAccepted);
        TcpConnection? c = l.Accept();
        Assert.NotNull(c);
        Assert.Equal(TcpState.Established, c!.State);
        Assert.Equal(1460, c.SendMss);
        Assert.Equal(1, c.BytesReadable);
    }

    [Fact]
    public void FastRetransmitOnThreeDupAcksHalvesWindow()
    {
        using var t = new TcpScript(new TcpConfig { Seed = 3, CongestionControl = CongestionAlgorithm.NewReno });
        TcpConnection c = t.Established(out uint iss, new TcpOptions { HasMss = true, Mss = 1000 });
        c.NoDelay = true;
        Assert.Equal(10_000, c.Send(new byte[10_000], t.NowUs, out _));
        for (int i = 0; i < 10; i++) t.Expect(i == 9 ? TcpFlags.Ack | TcpFlags.Psh : TcpFlags.Ack);
        long before = c.CongestionWindow;
        for (int i = 0; i < 4; i++) t.Inject(TcpFlags.Ack, P + 1, iss + 1 + 1000);
        Sent rtx = t.Expect(TcpFlags.Ack);
        Assert.Equal(iss + 1 + 1000, rtx.Seq);
        Assert.Equal(1, t.Counters.TcpFastRetransmits);
        Assert.True(c.SlowStartThreshold <= before / 2 + 1000, $"ssthresh {c.SlowStartThreshold} cwnd before {before}");
        t.Inject(TcpFlags.Ack, P + 1, iss + 1 + 10_000);
        Assert.Equal(c.SlowStartThreshold, c.CongestionWindow);
    }

    [Fact]
    public void LimitedTransmitSendsNewDataOnTheFirstTwoDupAcks()
    {
        // RFC 3042: each of the first two duplicate ACKs lets one new segment out past cwnd, so that a small window
        // still produces the third duplicate ACK (fast retransmit) instead of waiting for a timeout.
        using var t = new TcpScript(new TcpConfig { Seed = 3, CongestionControl = CongestionAlgorithm.NewReno });
        TcpConnection c = t.Established(out uint iss, new TcpOptions { HasMss = true, Mss = 1000 });
        c.NoDelay = true;
        Assert.Equal(20_000, c.Send(new byte[20_000], t.NowUs, out _));
        for (int i = 0; i < 10; i++) t.Expect(TcpFlags.Ack);          // the initial window: 10 segments
        Assert.Empty(t.Out);
        t.Inject(TcpFlags.Ack, P + 1, iss + 1 + 1000);               // first segment acknowledged: slow start
        while (t.Out.Count > 0) t.Out.Dequeue();
        uint next = (uint)(iss + 1 + 1000 + c.CongestionWindow);
        t.Inject(TcpFlags.Ack, P + 1, iss + 1 + 1000);               // duplicate #1
        Sent a = t.Expect(TcpFlags.Ack);
        Assert.Equal(next, a.Seq);
        t.Inject(TcpFlags.Ack, P + 1, iss + 1 + 1000);               // duplicate #2
        Sent b = t.Expect(TcpFlags.Ack);
        Assert.Equal(next + 1000, b.Seq);
        Assert.Equal(0, t.Counters.TcpFastRetransmits);
        t.Inject(TcpFlags.Ack, P + 1, iss + 1 + 1000);               // duplicate #3: fast retransmit of the hole
        Sent rtx = t.Expect(TcpFlags.Ack);
        Assert.Equal(iss + 1 + 1000, rtx.Seq);
        Assert.Equal(1, t.Counters.TcpFastRetransmits);
    }
}

public class TcpMoreStateTests
{
    private const uint P = TcpScript.PeerIss;

    [Fact]
    public void ReadinessFollowsLinuxPollRules()
    {
        using var t = new TcpScript();
        TcpConnection c = t.SynSent(out uint iss);
        Assert.Equal(Readiness.None, c.GetReadiness());
        t.Inject(TcpFlags.Syn | TcpFlags.Ack, P, iss + 1, dstPort: c.LocalPort);
        Assert.Equal(Readiness.Out, c.GetReadiness());
        t.Inject(TcpFlags.Ack, P + 1, iss + 1, dstPort: c.LocalPort, payload: new byte[] { 1 });
        Assert.Equal(Readiness.Out | Readiness.In, c.GetReadiness());
        c.Shutdown(false, true, t.NowUs); // write side shut: OUT stays (writes fail at once)
        Assert.Equal(Readiness.Out | Readiness.In, c.GetReadiness());
        t.Inject(TcpFlags.Fin | TcpFlags.Ack, P + 2, iss + 2, dstPort: c.LocalPort);
        Assert.Equal(Readiness.Out | Readiness.In | Readiness.RdHup | Readiness.Hup, c.GetReadiness());
        t.Inject(TcpFlags.Rst, P + 3, 0, dstPort: c.LocalPort);
    }

    [Fact]
    public void FragmentationNeededLowersMssAndResends()
    {
        using var t = new TcpScript();
        TcpConnection c = t.Established(out uint iss, new TcpOptions { HasMss = true, Mss = 1460 });
        c.Send(new byte[3000], t.NowUs, out _);
        Sent first = t.Expect(TcpFlags.Ack);
        Assert.Equal(1460, first.Payload.Length);
        t.Out.Clear();
        var quote = new byte[28];
        quote[0] = 0x45; quote[9] = 6;
        TcpScript.Us.Write(quote.AsSpan(12)); TcpScript.Peer.Write(quote.AsSpan(16));
        quote[20] = 0; quote[21] = 80;
        quote[22] = (byte)(t.PeerPort >> 8); quote[23] = (byte)t.PeerPort;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(quote.AsSpan(24), iss + 1);
        t.Layer.ReceiveIcmpError(TcpIcmpError.FragmentationNeeded, quote, 1000, t.NowUs);
        Assert.Equal(960, c.SendMss);
        Sent again = t.Out.Dequeue();
        Assert.Equal(iss + 1, again.Seq);
        Assert.Equal(960, again.Payload.Length);
    }

    [Fact]
    public void CorkHoldsPartialSegmentsUntilUncorked()
    {
        using var t = new TcpScript();
        TcpConnection c = t.Established(out uint iss, new TcpOptions { HasMss = true, Mss = 1000 });
        c.Cork = true;
        c.Send(new byte[500], t.NowUs, out _);
        t.ExpectNothing();
        c.Send(new byte[700], t.NowUs, out _);
        Assert.Equal(1000, t.Expect(TcpFlags.Ack).Payload.Length); // a full segment goes
        t.ExpectNothing();                                          // the 200-byte tail waits
        c.Cork = false;
        c.Flush(t.NowUs);
        t.ExpectNothing(); // uncorked, but Nagle still holds a small segment while data is unacknowledged (as Linux)
        t.Inject(TcpFlags.Ack, P + 1, iss + 1 + 1000);
        Assert.Equal(200, t.Expect(TcpFlags.Ack | TcpFlags.Psh).Payload.Length);
    }
}

public class TcpWindowShrinkTests
{
    private const uint P = TcpScript.PeerIss;

    [Fact]
    public void WindowClosedWithDataInFlightIsProbedNotAbandoned()
    {
        using var t = new TcpScript();
        TcpConnection c = t.Established(out uint iss, new TcpOptions { HasMss = true, Mss = 1000 });
        c.Send(new byte[2000], t.NowUs, out _);
        t.Expect(TcpFlags.Ack);
        t.Expect(TcpFlags.Ack | TcpFlags.Psh);
        // The peer acknowledges nothing new and closes its window (it shrank its buffer).
        t.Inject(TcpFlags.Ack, P + 1, iss + 1, window: 0);
        t.Out.Clear();
        t.Advance(30_000_000);
        Assert.True(t.Out.Count >= 3, "timeout then zero-window probes must keep coming");
        Assert.All(t.Out, s => Assert.True(s.Payload.Length == 0, $"no data into a zero window: {s}"));
        t.Out.Clear();
        Assert.Equal(TcpState.Established, c.State);
        t.Inject(TcpFlags.Ack, P + 1, iss + 1, window: 5000);
        Sent d = t.Expect(TcpFlags.Ack);
        Assert.Equal(iss + 1, d.Seq);
        Assert.Equal(1000, d.Payload.Length);
    }
}
