using System;
using UserTcp.Stack.Tcp;
using Xunit;

namespace UserTcp.Tests.Tcp.Blocks;

public class CongestionControlTests
{
    private const int Mss = 1000;

    /// <summary>One RTT of a window-limited sender: the whole cwnd is acknowledged in per-segment ACKs.</summary>
    private static void AckOneWindow(ICongestionControl cc, ref long nowUs, long rttUs, int segmentsPerAck = 1)
    {
        long window = cc.Cwnd;
        long acks = Math.Max(1, window / (Mss * segmentsPerAck));
        long inFlight = window;
        for (long i = 0; i < acks; i++)
        {
            long now = nowUs + rttUs * (i + 1) / acks;
            cc.OnAck((long)Mss * segmentsPerAck, rttUs, now, inFlight);
            inFlight = Math.Max(cc.Cwnd, inFlight); // the sender refills the window as it opens
        }
        nowUs += rttUs;
    }

    [Theory]
    [InlineData(536, 5360)]
    [InlineData(1460, 14600)]
    [InlineData(9000, 18000)]
    public void InitialWindowFollowsRfc6928(int mss, long iw)
    {
        Assert.Equal(iw, new NewReno(mss).Cwnd);
        Assert.Equal(iw, new Cubic(mss).Cwnd);
        var cc = new NewReno(1460);
        cc.Mss = mss;
        Assert.Equal(iw, cc.Cwnd);
    }

    [Theory]
    [InlineData(false, 1)]
    [InlineData(false, 2)]
    [InlineData(true, 1)]
    [InlineData(true, 2)]
    public void SlowStartDoublesPerRtt(bool cubic, int segmentsPerAck)
    {
        ICongestionControl cc = cubic ? new Cubic(Mss) : new NewReno(Mss);
        long now = 0;
        Assert.Equal(10 * Mss, cc.Cwnd);
        AckOneWindow(cc, ref now, 10_000, segmentsPerAck);
        Assert.Equal(20 * Mss, cc.Cwnd);
        AckOneWindow(cc, ref now, 10_000, segmentsPerAck);
        Assert.Equal(40 * Mss, cc.Cwnd);
        AckOneWindow(cc, ref now, 10_000, segmentsPerAck);
        Assert.Equal(80 * Mss, cc.Cwnd);
    }

    [Fact]
    public void SlowStartByteCountingIsLimitedToTwoSegmentsPerAck()
    {
        var cc = new NewReno(Mss);
        cc.OnAck(10 * Mss, 0, 1, 10 * Mss); // one stretch ACK for the whole window
        Assert.Equal(12 * Mss, cc.Cwnd);
        cc.OnAck(500, 0, 2, 12 * Mss);      // partial segment counts as bytes
        Assert.Equal(12 * Mss + 500, cc.Cwnd);
    }

    [Fact]
    public void ApplicationLimitedSenderDoesNotGrow()
    {
        var cc = new NewReno(Mss);
        cc.OnAck(Mss, 0, 1, 2 * Mss);       // only 2 of 10 segments in flight
        Assert.Equal(10 * Mss, cc.Cwnd);
        cc.OnAck(0, 0, 1, 10 * Mss);
        Assert.Equal(10 * Mss, cc.Cwnd);
    }

    [Fact]
    public void NewRenoHalvesOnFastRetransmitAndAddsOneSegmentPerRttAfter()
    {
        var cc = new NewReno(Mss);
        long now = 0;
        for (int i = 0; i < 3; i++) AckOneWindow(cc, ref now, 10_000); // 80 segments
        cc.OnEnterRecovery(now, 80 * Mss);
        Assert.True(cc.InRecovery);
        Assert.Equal(40 * Mss, cc.Ssthresh);
        Assert.Equal(40 * Mss, cc.Cwnd);
        cc.OnAck(5 * Mss, 10_000, now, 80 * Mss);  // partial ACK: no growth in recovery
        Assert.Equal(40 * Mss, cc.Cwnd);
        cc.OnExitRecovery(now);
        Assert.False(cc.InRecovery);
        Assert.Equal(40 * Mss, cc.Cwnd);
        AckOneWindow(cc, ref now, 10_000);
        Assert.Equal(41 * Mss, cc.Cwnd);
        AckOneWindow(cc, ref now, 10_000);
        Assert.Equal(42 * Mss, cc.Cwnd);
        cc.OnEnterRecovery(now, 3 * Mss);          // small flight: floor of 2 segments
        Assert.Equal(2 * Mss, cc.Ssthresh);
    }

    [Fact]
    public void NewRenoTimeoutCollapsesToOneSegmentAndKeepsSsthreshOnRepeats()
    {
        var cc = new NewReno(Mss);
        long now = 0;
        for (int i = 0; i < 2; i++) AckOneWindow(cc, ref now, 10_000); // 40 segments
        cc.OnRetransmitTimeout(now, 40 * Mss);
        Assert.Equal(Mss, cc.Cwnd);
        Assert.Equal(20 * Mss, cc.Ssthresh);
        cc.OnRetransmitTimeout(now, Mss);           // backed-off retransmission of the same segment
        Assert.Equal(Mss, cc.Cwnd);
        Assert.Equal(20 * Mss, cc.Ssthresh);
        cc.OnAck(Mss, 10_000, now, Mss);            // progress: slow start again
        Assert.Equal(2 * Mss, cc.Cwnd);
        cc.OnRetransmitTimeout(now, 2 * Mss);       // a new timeout series recomputes ssthresh
        Assert.Equal(2 * Mss, cc.Ssthresh);
    }

    [Fact]
    public void SlowStartStopsAtSsthresh()
    {
        var cc = new NewReno(Mss);
        cc.OnRetransmitTimeout(0, 7 * Mss);         // ssthresh = 3.5 segments
        long now = 0;
        AckOneWindow(cc, ref now, 10_000);          // 1 -> 2
        AckOneWindow(cc, ref now, 10_000);          // 2 -> 3.5 (capped)
        Assert.Equal(3500, cc.Cwnd);
    }

    [Fact]
    public void IdleRestartShrinksToInitialWindow()
    {
        var cc = new NewReno(Mss);
        long now = 0;
        for (int i = 0; i < 2; i++) AckOneWindow(cc, ref now, 10_000);
        cc.OnIdleRestart(now);
        Assert.Equal(10 * Mss, cc.Cwnd);
        var small = new NewReno(Mss);
        small.OnRetransmitTimeout(0, 10 * Mss);
        small.OnIdleRestart(0);
        Assert.Equal(Mss, small.Cwnd);
    }

    [Fact]
    public void CubicReducesByPointSevenWithFastConvergence()
    {
        var cc = new Cubic(Mss);
        long now = 0;
        for (int i = 0; i < 4; i++) AckOneWindow(cc, ref now, 10_000); // 160 segments
        Assert.Equal(160 * Mss, cc.Cwnd);
        cc.OnEnterRecovery(now, 160 * Mss);
        Assert.Equal(112 * Mss, cc.Ssthresh);
        Assert.Equal(112 * Mss, cc.Cwnd);
        Assert.Equal(160 * Mss, cc.WMaxBytes);
        cc.OnExitRecovery(now);
        // Lose again below the old maximum: W_max = cwnd * (1 + beta) / 2.
        cc.OnEnterRecovery(now, 112 * Mss);
        Assert.Equal(95_200, cc.WMaxBytes);
        Assert.Equal(78_400, cc.Cwnd);
        var slow = new Cubic(Mss, fastConvergence: false);
        slow.OnEnterRecovery(0, 10 * Mss);
        slow.OnExitRecovery(0);
        slow.OnEnterRecovery(0, 7 * Mss);
        Assert.Equal(7 * Mss, slow.WMaxBytes);
    }

    [Fact]
    public void CubicTimeoutCollapsesToOneSegment()
    {
        var cc = new Cubic(Mss);
        long now = 0;
        for (int i = 0; i < 2; i++) AckOneWindow(cc, ref now, 10_000); // 40 segments
        cc.OnRetransmitTimeout(now, 40 * Mss);
        Assert.Equal(Mss, cc.Cwnd);
        Assert.Equal(28 * Mss, cc.Ssthresh);
        cc.OnRetransmitTimeout(now, Mss);
        Assert.Equal(28 * Mss, cc.Ssthresh);
        // Slow start back to ssthresh, then the first stage after a timeout starts with K = 0 at that window.
        while (cc.Cwnd < cc.Ssthresh) cc.OnAck(Mss, 10_000, now, cc.Cwnd);
        Assert.Equal(28 * Mss, cc.Cwnd);
        AckOneWindow(cc, ref now, 10_000);
        Assert.Equal(0, cc.KUs);
        Assert.Equal(28 * Mss, cc.WMaxBytes);
        Assert.True(cc.Cwnd > 28 * Mss);
    }

    /// <summary>
    /// W_max = 100 segments, RTT 100 ms: after the reduction to 70, the window follows C*(t - K)^3 + W_max with
    /// K = cbrt(100 * 0.3 / 0.4) = 4.217 s (concave up to W_max, plateau, then convex), in virtual time.
    /// </summary>
    [Fact]
    public void CubicFollowsTheCubicCurve()
    {
        var cc = new Cubic(Mss);
        long now = 0;
        while (cc.Cwnd < 100 * Mss) cc.OnAck(Mss, 100_000, now, cc.Cwnd);
        Assert.Equal(100 * Mss, cc.Cwnd);
        cc.OnEnterRecovery(now, 100 * Mss);
        cc.OnExitRecovery(now);
        Assert.Equal(70 * Mss, cc.Cwnd);
        long start = now;
        double k = Math.Cbrt(100 * 0.3 / 0.4);
        double maxErr = 0;
        while (now - start < 7_000_000)
        {
            AckOneWindow(cc, ref now, 100_000);
            double t = (now - start) / 1e6;
            double expect = 0.4 * Math.Pow(t - k, 3) + 100;
            double got = cc.Cwnd / (double)Mss;
            maxErr = Math.Max(maxErr, Math.Abs(got - expect) / expect);
            Assert.True(Math.Abs(got - expect) <= 0.05 * expect + 1, $"t={t:F1}s cwnd={got:F1} expected {expect:F1}");
        }
        Assert.Equal((long)(k * 1e6), cc.KUs, 1.0);
        // Past K the window is convex and above W_max: 0.4 * (7 - 4.217)^3 + 100 = 108.6 segments.
        Assert.InRange(cc.Cwnd / (double)Mss, 104, 113);
    }

    /// <summary>With a 1 ms RTT Reno would grow faster than the cubic curve, so CUBIC follows W_est (§4.3).</summary>
    [Fact]
    public void CubicRenoFriendlyRegion()
    {
        var cc = new Cubic(Mss);
        long now = 0;
        while (cc.Cwnd < 100 * Mss) cc.OnAck(Mss, 1000, now, cc.Cwnd);
        cc.OnEnterRecovery(now, 100 * Mss);
        cc.OnExitRecovery(now);
        for (int i = 0; i < 20; i++) AckOneWindow(cc, ref now, 1000);
        double west = 70 + 20 * 3 * 0.3 / 1.7;      // 80.6 segments after 20 RTTs
        double wcubic = 0.4 * Math.Pow(0.020 - Math.Cbrt(75), 3) + 100; // 70.4
        Assert.InRange(cc.Cwnd / (double)Mss, west - 1.5, west + 1.5);
        Assert.True(cc.Cwnd / (double)Mss > wcubic + 5);
    }
}
