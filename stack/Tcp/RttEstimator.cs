using System;

namespace UserTcp.Stack.Tcp;

/// <summary>
/// RTO limits (RFC 6298 §2, §5), shared by every connection of a layer: the per-connection state is the
/// <see cref="RttEstimator"/> struct, this holds what is the same for all of them.
/// </summary>
public sealed class RtoPolicy
{
    public RtoPolicy(long minRtoUs = 200_000, long maxRtoUs = 120_000_000, long initialRtoUs = 1_000_000,
        long granularityUs = 1000, int maxBackoff = 15)
    {
        if (minRtoUs < 0 || maxRtoUs < minRtoUs || maxRtoUs > int.MaxValue || initialRtoUs <= 0 || granularityUs <= 0
            || maxBackoff < 0 || maxBackoff > 30)
            throw new ArgumentOutOfRangeException(nameof(minRtoUs), "invalid RTO configuration");
        MinRtoUs = minRtoUs;
        MaxRtoUs = maxRtoUs;
        InitialRtoUs = initialRtoUs;
        GranularityUs = granularityUs;
        MaxBackoff = maxBackoff;
    }

    public long MinRtoUs { get; }
    /// <summary>At most int.MaxValue µs (35 minutes): the estimator keeps 32-bit values.</summary>
    public long MaxRtoUs { get; }
    public long InitialRtoUs { get; }
    /// <summary>G in RFC 6298: the clock granularity (the timer wheel tick).</summary>
    public long GranularityUs { get; }
    /// <summary>How many timeouts double the RTO (later ones keep it; it is also capped by MaxRto).</summary>
    public int MaxBackoff { get; }

    /// <summary>The same limits as a layer with this configuration uses.</summary>
    public static RtoPolicy From(TcpConfig c) =>
        new(c.MinRtoUs, Math.Min(c.MaxRtoUs, int.MaxValue), c.InitialRtoUs, 1000, 30);
}

/// <summary>
/// Round-trip time estimation and retransmission timeout (RFC 6298), in microseconds: the one implementation,
/// used by every <see cref="TcpConnection"/>. A 16-byte struct (SRTT, RTTVAR, the RTO before backoff as 32-bit
/// values, the backoff count) held inline by the connection; the limits come from a shared <see cref="RtoPolicy"/>
/// passed to the calls that need them.
/// The caller feeds valid samples only: Karn's rule (no samples from retransmitted segments, RFC 6298 §3) is its
/// job, as is deciding when a sample is taken (once per RTT from a timed segment, or per ACK from the timestamp
/// echo, RFC 7323 §4).
/// 13 bytes with 1-byte packing (the three 32-bit values stay at their natural offsets within the struct), so the
/// connection holding it inline does not pad it to 16.
/// </summary>
[System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential, Pack = 1)]
public struct RttEstimator
{
    // RFC 6298 §2: alpha = 1/8, beta = 1/4, K = 4.
    private const int AlphaShift = 3;
    private const int BetaShift = 2;
    private const int K = 4;
    /// <summary>Samples are clamped to this (17.9 minutes) so the arithmetic stays in 32 bits.</summary>
    public const long MaxSampleUs = 1L << 30;

    private int _srttUs;     // 0 = no sample yet (samples are at least 1 µs)
    private int _rttvarUs;
    private int _baseRtoUs;  // RTO from the estimate alone, clamped to [MinRto, MaxRto]
    private byte _backoff;   // consecutive timeouts (saturates at 255)

    /// <summary>A new connection's estimator (RFC 6298 §2.1: RTO = initial RTO, no estimate).</summary>
    public RttEstimator(RtoPolicy policy) => Reset(policy);

    public readonly bool HasSample => _srttUs != 0;
    /// <summary>Smoothed RTT (0 before the first sample).</summary>
    public readonly long SrttUs => _srttUs;
    /// <summary>RTT variation (0 before the first sample).</summary>
    public readonly long RttVarUs => _rttvarUs;
    /// <summary>RTO from the estimate alone.</summary>
    public readonly long BaseRtoUs => _baseRtoUs;
    /// <summary>Consecutive timeouts since the last valid sample or progress (the connection's retry count).</summary>
    public readonly int Backoff => _backoff;

    /// <summary>The timeout to arm now: BaseRto * 2^min(Backoff, MaxBackoff), at most MaxRto.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public readonly long RtoUs(RtoPolicy policy) => _backoff == 0 ? _baseRtoUs : BackedOffRtoUs(policy);

    private readonly long BackedOffRtoUs(RtoPolicy policy)
    {
        long rto = _baseRtoUs;
        int n = Math.Min(_backoff, policy.MaxBackoff);
        for (int i = 0; i < n && rto < policy.MaxRtoUs; i++) rto <<= 1;
        return Math.Min(rto, policy.MaxRtoUs);
    }

    /// <summary>Back to the state of a new connection.</summary>
    public void Reset(RtoPolicy policy)
    {
        _srttUs = 0;
        _rttvarUs = 0;
        _backoff = 0;
        _baseRtoUs = (int)Math.Clamp(policy.InitialRtoUs, policy.MinRtoUs, policy.MaxRtoUs);
    }

    /// <summary>
    /// Adds an RTT measurement. <paramref name="expectedSamples"/> &gt; 1 spreads the gains when samples come per
    /// ACK from timestamps (RFC 7323 Appendix G: alpha and beta divided by the samples expected per RTT; see
    /// <see cref="ExpectedSamples"/>), so the estimate has the same memory as with one sample per RTT. A new sample
    /// also clears the backoff (RFC 6298 §5: the backed-off RTO is kept until a valid sample arrives).
    /// Negative samples are ignored (returns false); 0 counts as 1 µs.
    /// </summary>
    public bool AddSample(long rttUs, RtoPolicy policy, int expectedSamples = 1)
    {
        if (rttUs < 0) return false;
        long rtt = Math.Clamp(rttUs, 1, MaxSampleUs);
        long n = Math.Max(expectedSamples, 1);
        long srtt, rttvar;
        if (_srttUs == 0)
        {
            // RFC 6298 §2.2.
            srtt = rtt;
            rttvar = rtt / 2;
        }
        else
        {
            // RFC 6298 §2.3, RTTVAR first since it uses the old SRTT.
            srtt = _srttUs;
            rttvar = _rttvarUs;
            long err = Math.Abs(srtt - rtt);
            if (n == 1)
            {
                // The usual single sample: constant divisors (shifts, not two 64-bit divisions).
                rttvar += (err - rttvar) / (1L << BetaShift);
                srtt += (rtt - srtt) / (1L << AlphaShift);
            }
            else
            {
                rttvar += (err - rttvar) / ((1L << BetaShift) * n);
                srtt += (rtt - srtt) / ((1L << AlphaShift) * n);
            }
            if (srtt < 1) srtt = 1;
        }
        _srttUs = (int)srtt;
        _rttvarUs = (int)rttvar;
        _baseRtoUs = (int)Math.Clamp(srtt + Math.Max(policy.GranularityUs, K * rttvar), policy.MinRtoUs, policy.MaxRtoUs);
        _backoff = 0;
        return true;
    }

    /// <summary>The retransmission timer expired: one more backoff step (RFC 6298 §5.5).</summary>
    public void OnTimeout()
    {
        if (_backoff < byte.MaxValue) _backoff++;
    }

    /// <summary>Clears the backoff without a sample (new data acknowledged after a timeout, RFC 6298 §5.7 spirit).</summary>
    public void ResetBackoff() => _backoff = 0;

    /// <summary>
    /// RFC 6298 §5.7: when a SYN (or SYN-ACK) had to be retransmitted and no RTT sample came out of the handshake,
    /// data transfer starts with an RTO of at least 3 s.
    /// </summary>
    public void OnHandshakeRetransmitted(RtoPolicy policy)
    {
        if (_srttUs == 0) _baseRtoUs = (int)Math.Clamp(Math.Max(_baseRtoUs, 3_000_000), policy.MinRtoUs, policy.MaxRtoUs);
        _backoff = 0;
    }

    /// <summary>Samples per RTT when every ACK carries a timestamp echo: ceil(FlightSize / (2 * SMSS)), at least 1.</summary>
    public static int ExpectedSamples(long flightSizeBytes, int mss)
    {
        if (mss <= 0 || flightSizeBytes <= 0) return 1;
        long n = (flightSizeBytes + 2L * mss - 1) / (2L * mss);
        return (int)Math.Clamp(n, 1, int.MaxValue);
    }
}
