using UserTcp.Stack.Tcp;
using Xunit;

namespace UserTcp.Tests.Tcp.Blocks;

public class RttEstimatorTests
{
    [Fact]
    public void InitialRtoIsOneSecond()
    {
        var pr = new RtoPolicy();
        var r = new RttEstimator(pr);
        Assert.False(r.HasSample);
        Assert.Equal(1_000_000, r.RtoUs(pr));
    }

    [Fact]
    public void FirstAndSubsequentSamplesFollowRfc6298()
    {
        var pr = new RtoPolicy();
        var r = new RttEstimator(pr);
        Assert.True(r.AddSample(100_000, pr));
        Assert.Equal(100_000, r.SrttUs);
        Assert.Equal(50_000, r.RttVarUs);
        Assert.Equal(300_000, r.RtoUs(pr));          // 100 + 4 * 50 ms

        r.AddSample(60_000, pr);
        Assert.Equal(47_500, r.RttVarUs);        // 3/4 * 50 + 1/4 * |100 - 60|
        Assert.Equal(95_000, r.SrttUs);          // 7/8 * 100 + 1/8 * 60
        Assert.Equal(285_000, r.RtoUs(pr));          // 95 + 4 * 47.5

        r.AddSample(140_000, pr);
        Assert.Equal(47_500 + (45_000 - 47_500) / 4, r.RttVarUs); // 46_875
        Assert.Equal(95_000 + 45_000 / 8, r.SrttUs);             // 100_625
        Assert.Equal(100_625 + 4 * 46_875, r.RtoUs(pr));
    }

    [Fact]
    public void MinimumRtoAndGranularity()
    {
        var pr = new RtoPolicy();
        var r = new RttEstimator(pr);
        r.AddSample(1_000, pr);
        Assert.Equal(200_000, r.RtoUs(pr));           // 1 + 4 * 0.5 ms, clamped to 200 ms

        // Without a minimum, a steady RTT makes RTTVAR small and G = 1 ms is the floor on the variance term.
        var pg = new RtoPolicy(minRtoUs: 0, granularityUs: 1000);
        var g = new RttEstimator(pg);
        for (int i = 0; i < 100; i++) g.AddSample(10_000, pg);
        Assert.Equal(10_000, g.SrttUs);
        Assert.True(4 * g.RttVarUs < 1000);
        Assert.Equal(11_000, g.RtoUs(pg));
    }

    [Fact]
    public void ExponentialBackoffIsCappedAndClearedBySample()
    {
        var pr = new RtoPolicy(maxRtoUs: 60_000_000);
        var r = new RttEstimator(pr);
        r.AddSample(100_000, pr);
        r.OnTimeout();
        Assert.Equal(600_000, r.RtoUs(pr));
        r.OnTimeout();
        Assert.Equal(1_200_000, r.RtoUs(pr));
        for (int i = 0; i < 20; i++) r.OnTimeout();
        Assert.Equal(22, r.Backoff);             // counted on (the connection's retry count); doubling stops at 15
        Assert.Equal(60_000_000, r.RtoUs(pr));
        r.AddSample(100_000, pr);
        Assert.Equal(0, r.Backoff);
        Assert.Equal(100_000 + 4 * 37_500, r.RtoUs(pr)); // RTTVAR 3/4 * 50 ms
    }

    [Fact]
    public void MaxRtoClampsTheEstimate()
    {
        var pr = new RtoPolicy(maxRtoUs: 2_000_000);
        var r = new RttEstimator(pr);
        r.AddSample(1_500_000, pr);
        Assert.Equal(2_000_000, r.RtoUs(pr));
    }

    [Fact]
    public void TimestampSamplesUseScaledGains()
    {
        Assert.Equal(1, RttEstimator.ExpectedSamples(1000, 1460));
        Assert.Equal(5, RttEstimator.ExpectedSamples(14_600, 1460));
        Assert.Equal(4, RttEstimator.ExpectedSamples(11_680, 1460));
        var pr = new RtoPolicy();
        var r = new RttEstimator(pr);
        r.AddSample(100_000, pr, 5);                  // first sample: same as RFC 6298 §2.2
        Assert.Equal(100_000, r.SrttUs);
        r.AddSample(20_000, pr, 5);
        Assert.Equal(100_000 - 80_000 / 40, r.SrttUs);            // alpha / 5
        Assert.Equal(50_000 + (80_000 - 50_000) / 20, r.RttVarUs); // beta / 5
        Assert.False(r.AddSample(-1, pr));
    }

    [Fact]
    public void HandshakeRetransmissionRaisesRtoToThreeSeconds()
    {
        var pr = new RtoPolicy();
        var r = new RttEstimator(pr);
        r.OnTimeout();
        Assert.Equal(2_000_000, r.RtoUs(pr));
        r.OnHandshakeRetransmitted(pr);
        Assert.Equal(3_000_000, r.RtoUs(pr));
        var ps = new RtoPolicy();
        var s = new RttEstimator(ps);
        s.AddSample(100_000, ps);
        s.OnHandshakeRetransmitted(ps);
        Assert.Equal(300_000, s.RtoUs(ps));
    }
}
