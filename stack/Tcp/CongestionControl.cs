using System;

namespace UserTcp.Stack.Tcp;

/// <summary>
/// The congestion controller of one connection, NewReno or CUBIC, as a 32-byte struct held inline by the
/// connection. CUBIC's memory between congestion events (W_max, K, W_est, cwnd_prior, the last RTT) is in a
/// <see cref="CubicEpoch"/> side object that only a connection that has had a congestion event holds: until the
/// first one, the window only grows in slow start (ssthresh starts "arbitrarily high") and none of it is read, so an
/// idle or loss-free connection carries one null reference instead of 36 bytes. <see cref="NewReno"/> and <see cref="Cubic"/> are thin
/// classes over it for code that wants an <see cref="ICongestionControl"/> object.
///
/// What both share: initial window (RFC 6928), slow start with appropriate byte counting (RFC 3465, L = 2), the loss
/// window after a timeout (RFC 5681 §3.1), restart after idle (RFC 5681 §4.1) and the recovery flag. cwnd is kept as
/// a double so per-ACK fractional increases are not lost.
///
/// NewReno (RFC 5681, RFC 6582 for the recovery episode boundaries the connection tracks): congestion avoidance
/// with byte counting, one SMSS each time a full cwnd of bytes has been acknowledged; on loss ssthresh =
/// max(FlightSize / 2, 2*SMSS) (RFC 5681 eq. 4).
///
/// CUBIC (RFC 9438): after a congestion event the window follows W_cubic(t) = C*(t - K)^3 + W_max (§4.2), t in
/// seconds since the congestion avoidance stage began, windows in segments: concave up to the old maximum W_max,
/// flat around it, convex beyond. It never grows slower than Reno would (the Reno-friendly estimate W_est, §4.3).
/// Multiplicative decrease by beta = 0.7 (§4.6) with fast convergence (§4.7). Time is the caller's nowUs, so it
/// runs unchanged in virtual time.
/// </summary>
public struct CongestionState
{
    /// <summary>"Arbitrarily high" initial ssthresh (RFC 5681 §3.1); above any window TCP can advertise.</summary>
    public const long InitialSsthresh = int.MaxValue;
    /// <summary>RFC 3465 limit L on slow start increase per ACK, in segments.</summary>
    private const int AbcLimit = 2;
    public const double C = 0.4;
    public const double Beta = 0.7;
    /// <summary>Reno-friendly additive increase, 3(1 - beta)/(1 + beta) segments per RTT (§4.3).</summary>
    private const double AlphaFriendly = 3 * (1 - Beta) / (1 + Beta);

    [Flags]
    private enum F : byte
    {
        AnyAck = 1,
        TimeoutSeries = 2,   // RTO fired and nothing new was acknowledged since (RFC 5681 §3.1)
        InRecovery = 4,
        AfterTimeout = 8,    // CUBIC §4.8: the next stage starts from the current window
        FastConvergence = 16,
        Cubic = 32,
    }

    private double _cwnd;       // bytes
    private long _aux;          // CUBIC: start of the current avoidance stage (µs, -1 = not started); NewReno: bytes_acked (RFC 3465 §2.1)
    private CubicEpoch? _epoch; // CUBIC, from the first congestion event on (null before: every value in it 0)
    private int _ssthresh;
    private ushort _mss;        // at most 65535 (the MSS option is 16 bits)
    private F _f;

    /// <summary>True for CUBIC before its first congestion event: the connection hands it a
    /// <see cref="CubicEpoch"/> from its layer's free list (<see cref="AttachEpoch"/>) before reporting one, so
    /// that a loss allocates nothing. Without one the controller allocates its own when it needs it.</summary>
    internal readonly bool WantsEpoch => _epoch == null && Has(F.Cubic);
    internal void AttachEpoch(CubicEpoch e)
    {
        e.Clear();
        _epoch = e;
    }
    /// <summary>Takes the side object back (connection reset for reuse), or null when there is none.</summary>
    internal CubicEpoch? DetachEpoch()
    {
        CubicEpoch? e = _epoch;
        _epoch = null;
        return e;
    }
    /// <summary>Whether the side object is held (tests, bench/IdleMemory).</summary>
    internal readonly bool HasEpoch => _epoch != null;

    private CubicEpoch Epoch => _epoch ??= new CubicEpoch();

    public CongestionState(CongestionAlgorithm algorithm, int mss, bool fastConvergence = true)
    {
        if (mss <= 0) throw new ArgumentOutOfRangeException(nameof(mss));
        mss = Math.Min(mss, ushort.MaxValue); // a segment's MSS option is 16 bits: a larger route MTU cannot use more
        this = default;
        _mss = (ushort)mss;
        _cwnd = InitialWindow(mss);
        _ssthresh = (int)InitialSsthresh;
        if (algorithm == CongestionAlgorithm.Cubic)
        {
            _f = F.Cubic | (fastConvergence ? F.FastConvergence : 0);
            _aux = -1;
        }
    }

    public readonly CongestionAlgorithm Algorithm => Has(F.Cubic) ? CongestionAlgorithm.Cubic : CongestionAlgorithm.NewReno;
    public readonly bool FastConvergence => Has(F.FastConvergence);

    private readonly bool Has(F f) => (_f & f) != 0;
    private void Set(F f, bool on) => _f = on ? _f | f : _f & ~f;

    public int Mss
    {
        readonly get => _mss;
        set
        {
            if (value <= 0) throw new ArgumentOutOfRangeException(nameof(value));
            _mss = (ushort)Math.Min(value, ushort.MaxValue);
            if (!Has(F.AnyAck) && !Has(F.TimeoutSeries)) _cwnd = InitialWindow(_mss);
        }
    }

    public readonly long Cwnd => Truncate(_cwnd);

    /// <summary>(long)v for a window (non-negative, far below 2^63): one cvttsd2si where the plain cast calls the
    /// runtime's saturating conversion helper (it handles NaN and out-of-range values a window never has). Read on
    /// every send decision and every ACK.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static long Truncate(double v) => System.Runtime.Intrinsics.X86.Sse2.X64.IsSupported
        ? System.Runtime.Intrinsics.X86.Sse2.X64.ConvertToInt64WithTruncation(System.Runtime.Intrinsics.Vector128.CreateScalarUnsafe(v))
        : (long)v;
    public readonly long Ssthresh => _ssthresh;
    public readonly bool InRecovery => Has(F.InRecovery);

    /// <summary>RFC 6928: IW = min(10*MSS, max(2*MSS, 14600)).</summary>
    public static long InitialWindow(int mss) => Math.Min(10L * mss, Math.Max(2L * mss, 14600));

    /// <summary>See <see cref="ICongestionControl.OnAck"/>.</summary>
    public void OnAck(long bytesAcked, long rttUs, long nowUs, long inFlight)
    {
        if (bytesAcked <= 0) return;
        _f = (_f | F.AnyAck) & ~F.TimeoutSeries;
        if (Has(F.InRecovery)) return;
        if (2 * inFlight < Truncate(_cwnd)) return; // application-limited: the window was not tested
        if (_cwnd < _ssthresh)
        {
            // Slow start: grow by the bytes acknowledged, at most L*SMSS per ACK (RFC 3465 §2.2), and not past
            // ssthresh; the rest of this ACK is left to congestion avoidance from the next one.
            double grown = _cwnd + Math.Min(bytesAcked, (long)AbcLimit * _mss);
            _cwnd = Math.Min(grown, _ssthresh);
            return;
        }
        if (Has(F.Cubic)) CubicAvoidance(bytesAcked, rttUs, nowUs);
        else RenoAvoidance(bytesAcked);
    }

    public void OnEnterRecovery(long nowUs, long inFlight)
    {
        if (Has(F.InRecovery)) return;
        Set(F.InRecovery, true);
        SetSsthresh(ReduceOnLoss(inFlight, timeout: false));
        _cwnd = _ssthresh;
    }

    public void OnExitRecovery(long nowUs)
    {
        if (!Has(F.InRecovery)) return;
        Set(F.InRecovery, false);
        _cwnd = _ssthresh;
        StartNewAvoidancePhase(afterTimeout: false);
    }

    public void OnRetransmitTimeout(long nowUs, long inFlight)
    {
        if (!Has(F.TimeoutSeries))
        {
            // A timeout during fast recovery is the same congestion event: ssthresh was already reduced for it, so
            // it is kept rather than reduced a second time (as Linux does).
            if (!Has(F.InRecovery)) SetSsthresh(ReduceOnLoss(inFlight, timeout: true));
            Set(F.TimeoutSeries, true);
        }
        Set(F.InRecovery, false);
        _cwnd = _mss; // loss window, RFC 5681 §3.1
        StartNewAvoidancePhase(afterTimeout: true);
    }

    public void OnIdleRestart(long nowUs)
    {
        _cwnd = Math.Min(_cwnd, InitialWindow(_mss));
        StartNewAvoidancePhase(afterTimeout: false);
    }

    private void SetSsthresh(long v) => _ssthresh = (int)Math.Min(v, InitialSsthresh);

    /// <summary>Returns the new ssthresh for a congestion event (at least 2*SMSS) and updates private state.</summary>
    private long ReduceOnLoss(long inFlight, bool timeout)
    {
        if (!Has(F.Cubic))
        {
            _aux = 0;
            return Math.Max(inFlight / 2, 2L * _mss);
        }
        double cwnd = _cwnd / _mss;
        CubicEpoch e = Epoch;
        // §4.7 fast convergence: a flow whose window keeps shrinking releases bandwidth to newcomers.
        e.WMax = Has(F.FastConvergence) && cwnd < e.WMax ? cwnd * (1 + Beta) / 2 : cwnd;
        e.CwndPrior = cwnd;
        _aux = -1;
        Set(F.AfterTimeout, timeout);
        // §4.6: ssthresh = cwnd * beta (cwnd rather than FlightSize, as Linux does), at least 2 segments.
        return Math.Max((long)(_cwnd * Beta), 2L * _mss);
    }

    /// <summary>Forget the current growth epoch: the next congestion avoidance ACK starts a new one.</summary>
    private void StartNewAvoidancePhase(bool afterTimeout)
    {
        if (!Has(F.Cubic))
        {
            _aux = 0;
            return;
        }
        _aux = -1;
        if (afterTimeout) Set(F.AfterTimeout, true);
    }

    private void RenoAvoidance(long bytesAcked)
    {
        _aux += bytesAcked;
        long cwnd = Truncate(_cwnd);
        if (_aux >= cwnd)
        {
            _aux -= cwnd;
            _cwnd += _mss;
        }
    }

    // --- CUBIC ---

    /// <summary>W_max in bytes (window before the last reduction, possibly lowered by fast convergence).</summary>
    public readonly long WMaxBytes => (long)((_epoch?.WMax ?? 0) * _mss);
    /// <summary>K in microseconds for the current stage (time to return to W_max), 0 before a stage starts.</summary>
    public readonly long KUs => (long)((_epoch?.K ?? 0) * 1e6);

    /// <summary>W_cubic(t) in bytes for the current stage, t measured from its start.</summary>
    public readonly double WCubicBytes(double tSeconds) => WCubic(_epoch ?? CubicEpoch.Zero, tSeconds) * _mss;

    private static double WCubic(CubicEpoch e, double t)
    {
        double d = t - e.K;
        return C * d * d * d + e.WMax;
    }

    private void CubicAvoidance(long bytesAcked, long rttUs, long nowUs)
    {
        int mss = _mss;
        CubicEpoch e = Epoch;
        if (rttUs > 0) e.LastRttUs = (int)Math.Min(rttUs, int.MaxValue);
        double cwnd = _cwnd / mss;
        if (_aux < 0)
        {
            _aux = nowUs;
            if (Has(F.AfterTimeout))
            {
                // §4.8: the first stage after a timeout starts from the current window with K = 0.
                e.WMax = cwnd;
                Set(F.AfterTimeout, false);
            }
            // §4.2 with cwnd_epoch = cwnd: the curve passes through the current window at t = 0 (K < 0 when the
            // window is already above W_max, e.g. when leaving slow start: a convex start).
            e.K = Math.Cbrt((e.WMax - cwnd) / C);
            e.WEst = cwnd;
        }
        double acked = (double)bytesAcked / mss;
        double t = Math.Max(0, nowUs - _aux) / 1e6;
        double rtt = e.LastRttUs / 1e6;

        // §4.3: Reno-friendly estimate, alpha switching to 1 once the old window is regained.
        double alpha = e.WEst >= e.CwndPrior ? 1.0 : AlphaFriendly;
        e.WEst += alpha * acked / cwnd;

        double wCubic = WCubic(e, t);
        if (wCubic < e.WEst)
        {
            cwnd = Math.Max(cwnd, e.WEst);
        }
        else
        {
            // §4.2: aim at W_cubic one RTT ahead, moving at most halfway again per RTT (target <= 1.5 cwnd),
            // (target - cwnd) / cwnd per acknowledged segment.
            double target = Math.Clamp(WCubic(e, t + rtt), cwnd, 1.5 * cwnd);
            cwnd += (target - cwnd) / cwnd * acked;
        }
        _cwnd = cwnd * mss;
    }
}

/// <summary>
/// CUBIC's memory between congestion events (RFC 9438): W_max, K, W_est and cwnd_prior in segments and seconds, and
/// the last RTT sample. Held by a <see cref="CongestionState"/> from its first congestion event on (a connection takes
/// it from its layer's free list and gives it back when it is reset for reuse).
/// </summary>
public sealed class CubicEpoch
{
    internal static readonly CubicEpoch Zero = new();
    internal double WMax;       // segments
    internal double K;          // seconds
    internal double WEst;       // segments
    internal double CwndPrior;  // segments, cwnd before the last reduction
    internal int LastRttUs;
    internal CubicEpoch? NextFree; // the layer's free list (TcpLayer.FreeCubicEpochs)

    internal void Clear()
    {
        WMax = K = WEst = CwndPrior = 0;
        LastRttUs = 0;
        NextFree = null;
    }
}
