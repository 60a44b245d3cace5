using UserTcp.Stack.Tcp;
using Xunit;

namespace UserTcp.Tests.Tcp.Blocks;

public class RttEstimatorTests
{
    [Fact]
    public void InitialRtoIsOneSecond()
    {
        var r = new RttEstimator();
        Assert.False(r.HasSample);
        Assert.Equal(1_000_000, r.RtoUs);
    }

    [Fact]
    public void FirstAndSubsequentSamplesFollowRfc6298()
    {
        var r = new RttEstimator();
        Assert.True(r.AddSample(100_000));
        Assert.Equal(100_000, r.SrttUs);
        Assert.Equal(50_000, r.RttVarUs);
        Assert.Equal(300_000, r.RtoUs);          // 100 + 4 * 50 ms

        r.AddSample(60_000);
        Assert.Equal(47_500, r.RttVarUs);        // 3/4 * 50 + 1/4 * |100 - 60|
        Assert.Equal(95_000, r.SrttUs);          // 7/8 * 100 + 1/8 * 60
        Assert.Equal(285_000, r.RtoUs);          // 95 + 4 * 47.5

        r.AddSample(140_000);
        Assert.Equal(47_500 + (45_000 - 47_500) / 4, r.RttVarUs); // 46_875
        Assert.Equal(95_000 + 45_000 / 8, r.SrttUs);             // 100_625
        Assert.Equal(100_625 + 4 * 46_875, r.RtoUs);
        Assert.Equal(60_000, r.MinRttUs);
        Assert.Equal(140_000, r.LatestRttUs);
    }

    [Fact]
    public void MinimumRtoAndGranularity()
    {
        var r = new RttEstimator();
        r.AddSample(1_000);
        Assert.Equal(200_000, r.RtoUs);           // 1 + 4 * 0.5 ms, clamped to 200 ms

        // Without a minimum, a steady RTT makes RTTVAR small and G = 1 ms is the floor on the variance term.
        var g = new RttEstimator(minRtoUs: 0, granularityUs: 1000);
        for (int i = 0; i < 100; i++) g.AddSample(10_000);
        Assert.Equal(10_000, g.SrttUs);
        Assert.True(4 * g.RttVarUs < 1000);
        Assert.Equal(11_000, g.RtoUs);
    }

    [Fact]
    public void ExponentialBackoffIsCappedAndClearedBySample()
    {
        var r = new RttEstimator(maxRtoUs: 60_000_000);
        r.AddSample(100_000);
        r.OnTimeout();
        Assert.Equal(600_000, r.RtoUs);
        r.OnTimeout();
        Assert.Equal(1_200_000, r.RtoUs);
        for (int i = 0; i < 20; i++) r.OnTimeout();
        Assert.Equal(15, r.Backoff);
        Assert.Equal(60_000_000, r.RtoUs);
        r.AddSample(100_000);
        Assert.Equal(0, r.Backoff);
        Assert.Equal(100_000 + 4 * 37_500, r.RtoUs); // RTTVAR 3/4 * 50 ms
    }

    [Fact]
    public void MaxRtoClampsTheEstimate()
    {
        var r = new RttEstimator(maxRtoUs: 2_000_000);
        r.AddSample(1_500_000);
        Assert.Equal(2_000_000, r.RtoUs);
    }

    [Fact]
    public void TimestampSamplesUseScaledGains()
    {
        Assert.Equal(1, RttEstimator.ExpectedSamples(1000, 1460));
        Assert.Equal(5, RttEstimator.ExpectedSamples(14_600, 1460));
        Assert.Equal(4, RttEstimator.ExpectedSamples(11_680, 1460));
        var r = new RttEstimator();
        r.AddSample(100_000, 5);                  // first sample: same as RFC 6298 §2.2
        Assert.Equal(100_000, r.SrttUs);
        r.AddSample(20_000, 5);
        Assert.Equal(100_000 - 80_000 / 40, r.SrttUs);            // alpha / 5
        Assert.Equal(50_000 + (80_000 - 50_000) / 20, r.RttVarUs); // beta / 5
        Assert.False(r.AddSample(-1));
    }

    [Fact]
    public void HandshakeRetransmissionRaisesRtoToThreeSeconds()
    {
        var r = new RttEstimator();
        r.OnTimeout();
        Assert.Equal(2_000_000, r.RtoUs);
        r.OnHandshakeRetransmitted();
        Assert.Equal(3_000_000, r.RtoUs);
        var s = new RttEstimator();
        s.AddSample(100_000);
        s.OnHandshakeRetransmitted();
        Assert.Equal(300_000, s.RtoUs);
    }
}
