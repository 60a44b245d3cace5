using System;

namespace UserTcp.Stack.Tcp;

/// <summary>
/// Round-trip time estimation and retransmission timeout (RFC 6298), in microseconds.
/// The caller feeds valid samples only: Karn's rule (no samples from retransmitted segments, RFC 6298 §3) is its
/// job, as is deciding when a sample is taken (once per RTT from a timed segment, or per ACK from the timestamp
/// echo, RFC 7323 §4).
/// </summary>
public sealed class RttEstimator
{
    // RFC 6298 §2: alpha = 1/8, beta = 1/4, K = 4.
    private const int AlphaShift = 3;
    private const int BetaShift = 2;
    private const int K = 4;

    public RttEstimator(long minRtoUs = 200_000, long maxRtoUs = 120_000_000, long initialRtoUs = 1_000_000,
        long granularityUs = 1000, int maxBackoff = 15)
    {
        if (minRtoUs < 0 || maxRtoUs < minRtoUs || initialRtoUs <= 0 || granularityUs <= 0 || maxBackoff < 0 || maxBackoff > 30)
            throw new ArgumentOutOfRangeException(nameof(minRtoUs), "invalid RTO configuration");
        MinRtoUs = minRtoUs;
        MaxRtoUs = maxRtoUs;
        InitialRtoUs = initialRtoUs;
        GranularityUs = granularityUs;
        MaxBackoff = maxBackoff;
        Reset();
    }

    public long MinRtoUs { get; }
    public long MaxRtoUs { get; }
    public long InitialRtoUs { get; }
    /// <summary>G in RFC 6298: the clock granularity (the timer wheel tick).</summary>
    public long GranularityUs { get; }
    public int MaxBackoff { get; }

    public bool HasSample { get; private set; }
    /// <summary>Smoothed RTT (0 before the first sample).</summary>
    public long SrttUs { get; private set; }
    /// <summary>RTT variation (0 before the first sample).</summary>
    public long RttVarUs { get; private set; }
    /// <summary>The most recent sample.</summary>
    public long LatestRttUs { get; private set; }
    /// <summary>The smallest sample seen (long.MaxValue before the first).</summary>
    public long MinRttUs { get; private set; }
    /// <summary>RTO from the estimate alone, clamped to [MinRto, MaxRto].</summary>
    public long BaseRtoUs { get; private set; }
    /// <summary>Number of consecutive timeouts (each doubles the RTO, RFC 6298 §5.5).</summary>
    public int Backoff { get; private set; }

    /// <summary>The timeout to arm now: BaseRto * 2^Backoff, at most MaxRto.</summary>
    public long RtoUs
    {
        get
        {
            long rto = BaseRtoUs;
            for (int i = 0; i < Backoff && rto < MaxRtoUs; i++) rto <<= 1;
            return Math.Min(rto, MaxRtoUs);
        }
    }

    /// <summary>Back to the state of a new connection (RFC 6298 §2.1: RTO = initial RTO, no estimate).</summary>
    public void Reset()
    {
        HasSample = false;
        SrttUs = 0;
        RttVarUs = 0;
        LatestRttUs = 0;
        MinRttUs = long.MaxValue;
        Backoff = 0;
        BaseRtoUs = Math.Clamp(InitialRtoUs, MinRtoUs, MaxRtoUs);
    }

    /// <summary>
    /// Adds an RTT measurement. <paramref name="expectedSamples"/> &gt; 1 spreads the gains when samples come per
    /// ACK from timestamps (RFC 7323 Appendix G: alpha and beta divided by the samples expected per RTT; see
    /// <see cref="ExpectedSamples"/>), so the estimate has the same memory as with one sample per RTT. A new sample
    /// also clears the backoff (RFC 6298 §5: the backed-off RTO is kept until a valid sample arrives).
    /// Negative samples are ignored (returns false).
    /// </summary>
    public bool AddSample(long rttUs, int expectedSamples = 1)
    {
        if (rttUs < 0) return false;
        long n = Math.Max(expectedSamples, 1);
        LatestRttUs = rttUs;
        if (rttUs < MinRttUs) MinRttUs = rttUs;
        if (!HasSample)
        {
            // RFC 6298 §2.2.
            SrttUs = rttUs;
            RttVarUs = rttUs / 2;
            HasSample = true;
        }
        else
        {
            // RFC 6298 §2.3, RTTVAR first since it uses the old SRTT.
            long err = Math.Abs(SrttUs - rttUs);
            RttVarUs += (err - RttVarUs) / ((1L << BetaShift) * n);
            SrttUs += (rttUs - SrttUs) / ((1L << AlphaShift) * n);
        }
        BaseRtoUs = Math.Clamp(SrttUs + Math.Max(GranularityUs, K * RttVarUs), MinRtoUs, MaxRtoUs);
        Backoff = 0;
        return true;
    }

    /// <summary>The retransmission timer expired: double the RTO (RFC 6298 §5.5), up to MaxBackoff/MaxRto.</summary>
    public void OnTimeout()
    {
        if (Backoff < MaxBackoff) Backoff++;
    }

    /// <summary>Clears the backoff without a sample (e.g. new data acknowledged after a timeout, RFC 6298 §5.7 spirit).</summary>
    public void ResetBackoff() => Backoff = 0;

    /// <summary>
    /// RFC 6298 §5.7: when a SYN (or SYN-ACK) had to be retransmitted and no RTT sample came out of the handshake,
    /// data transfer starts with an RTO of at least 3 s.
    /// </summary>
    public void OnHandshakeRetransmitted()
    {
        if (!HasSample) BaseRtoUs = Math.Clamp(Math.Max(BaseRtoUs, 3_000_000), MinRtoUs, MaxRtoUs);
        Backoff = 0;
    }

    /// <summary>Samples per RTT when every ACK carries a timestamp echo: ceil(FlightSize / (2 * SMSS)), at least 1.</summary>
    public static int ExpectedSamples(long flightSizeBytes, int mss)
    {
        if (mss <= 0 || flightSizeBytes <= 0) return 1;
        long n = (flightSizeBytes + 2L * mss - 1) / (2L * mss);
        return (int)Math.Clamp(n, 1, int.MaxValue);
    }
}
