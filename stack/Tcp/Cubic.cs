using System;

namespace UserTcp.Stack.Tcp;

/// <summary>
/// CUBIC (RFC 9438). After a congestion event the window follows W_cubic(t) = C*(t - K)^3 + W_max (§4.2), t in
/// seconds since the congestion avoidance stage began, windows in segments: concave up to the old maximum W_max,
/// flat around it, convex beyond. It never grows slower than Reno would (the Reno-friendly estimate W_est, §4.3).
/// Multiplicative decrease by beta = 0.7 (§4.6) with fast convergence (§4.7). Time is the caller's nowUs, so it
/// runs unchanged in virtual time.
/// </summary>
public sealed class Cubic : CongestionControlBase
{
    public const double C = 0.4;
    public const double Beta = 0.7;
    /// <summary>Reno-friendly additive increase, 3(1 - beta)/(1 + beta) segments per RTT (§4.3).</summary>
    private const double AlphaFriendly = 3 * (1 - Beta) / (1 + Beta);

    private long _epochStartUs = -1; // start of the current congestion avoidance stage; -1 = not started
    private double _wMax;            // segments
    private double _k;               // seconds
    private double _wEst;            // segments
    private double _cwndPrior;       // segments: cwnd before the last reduction
    private bool _afterTimeout;
    private long _lastRttUs;

    public Cubic(int mss, bool fastConvergence = true) : base(mss)
    {
        FastConvergence = fastConvergence;
    }

    public bool FastConvergence { get; }
    /// <summary>W_max in bytes (window before the last reduction, possibly lowered by fast convergence).</summary>
    public long WMaxBytes => (long)(_wMax * Mss);
    /// <summary>K in microseconds for the current stage (time to return to W_max), 0 before a stage starts.</summary>
    public long KUs => (long)(_k * 1e6);

    /// <summary>W_cubic(t) in bytes for the current stage, t measured from its start.</summary>
    public double WCubicBytes(double tSeconds) => WCubic(tSeconds) * Mss;

    private double WCubic(double t)
    {
        double d = t - _k;
        return C * d * d * d + _wMax;
    }

    protected override void CongestionAvoidance(long bytesAcked, long rttUs, long nowUs)
    {
        int mss = Mss;
        if (rttUs > 0) _lastRttUs = rttUs;
        double cwnd = _cwnd / mss;
        if (_epochStartUs < 0)
        {
            _epochStartUs = nowUs;
            if (_afterTimeout)
            {
                // §4.8: the first stage after a timeout starts from the current window with K = 0.
                _wMax = cwnd;
                _afterTimeout = false;
            }
            // §4.2 with cwnd_epoch = cwnd: the curve passes through the current window at t = 0 (K < 0 when the
            // window is already above W_max, e.g. when leaving slow start: a convex start).
            _k = Math.Cbrt((_wMax - cwnd) / C);
            _wEst = cwnd;
        }
        double acked = (double)bytesAcked / mss;
        double t = Math.Max(0, nowUs - _epochStartUs) / 1e6;
        double rtt = _lastRttUs / 1e6;

        // §4.3: Reno-friendly estimate, alpha switching to 1 once the old window is regained.
        double alpha = _wEst >= _cwndPrior ? 1.0 : AlphaFriendly;
        _wEst += alpha * acked / cwnd;

        double wCubic = WCubic(t);
        if (wCubic < _wEst)
        {
            cwnd = Math.Max(cwnd, _wEst);
        }
        else
        {
            // §4.2: aim at W_cubic one RTT ahead, moving at most halfway again per RTT (target <= 1.5 cwnd),
            // (target - cwnd) / cwnd per acknowledged segment.
            double target = Math.Clamp(WCubic(t + rtt), cwnd, 1.5 * cwnd);
            cwnd += (target - cwnd) / cwnd * acked;
        }
        _cwnd = cwnd * mss;
    }

    protected override long ReduceOnLoss(long nowUs, long inFlight, bool timeout)
    {
        double cwnd = _cwnd / Mss;
        // §4.7 fast convergence: a flow whose window keeps shrinking releases bandwidth to newcomers.
        _wMax = FastConvergence && cwnd < _wMax ? cwnd * (1 + Beta) / 2 : cwnd;
        _cwndPrior = cwnd;
        _epochStartUs = -1;
        _afterTimeout = timeout;
        // §4.6: ssthresh = cwnd * beta (cwnd rather than FlightSize, as Linux does), at least 2 segments.
        return Math.Max((long)(_cwnd * Beta), 2L * Mss);
    }

    protected override void StartNewAvoidancePhase(long nowUs, bool afterTimeout)
    {
        _epochStartUs = -1;
        if (afterTimeout) _afterTimeout = true;
    }
}
