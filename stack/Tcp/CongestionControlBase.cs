using System;

namespace UserTcp.Stack.Tcp;

/// <summary>
/// What NewReno and CUBIC share: initial window (RFC 6928), slow start with appropriate byte counting (RFC 3465,
/// L = 2), the loss window after a timeout (RFC 5681 §3.1), restart after idle (RFC 5681 §4.1) and the recovery
/// flag. Subclasses supply congestion avoidance and the multiplicative decrease. cwnd is kept as a double so
/// per-ACK fractional increases are not lost.
/// </summary>
public abstract class CongestionControlBase : ICongestionControl
{
    /// <summary>"Arbitrarily high" initial ssthresh (RFC 5681 §3.1); above any window TCP can advertise.</summary>
    public const long InitialSsthresh = int.MaxValue;
    /// <summary>RFC 3465 limit L on slow start increase per ACK, in segments.</summary>
    protected const int AbcLimit = 2;

    private int _mss;
    private bool _anyAck;
    private bool _timeoutSeries;     // RTO fired and nothing new was acknowledged since (RFC 5681 §3.1)
    protected double _cwnd;
    protected long _ssthresh = InitialSsthresh;

    protected CongestionControlBase(int mss)
    {
        if (mss <= 0) throw new ArgumentOutOfRangeException(nameof(mss));
        _mss = mss;
        _cwnd = InitialWindow(mss);
    }

    public int Mss
    {
        get => _mss;
        set
        {
            if (value <= 0) throw new ArgumentOutOfRangeException(nameof(value));
            _mss = value;
            if (!_anyAck && !_timeoutSeries) _cwnd = InitialWindow(value);
        }
    }

    public long Cwnd => (long)_cwnd;
    public long Ssthresh => _ssthresh;
    public bool InRecovery { get; private set; }

    /// <summary>RFC 6928: IW = min(10*MSS, max(2*MSS, 14600)).</summary>
    public static long InitialWindow(int mss) => Math.Min(10L * mss, Math.Max(2L * mss, 14600));

    public void OnAck(long bytesAcked, long rttUs, long nowUs, long inFlight)
    {
        if (bytesAcked <= 0) return;
        _anyAck = true;
        _timeoutSeries = false;
        if (InRecovery) return;
        if (2 * inFlight < (long)_cwnd) return; // application-limited: the window was not tested
        if (_cwnd < _ssthresh)
        {
            // Slow start: grow by the bytes acknowledged, at most L*SMSS per ACK (RFC 3465 §2.2), and not past
            // ssthresh; the rest of this ACK is left to congestion avoidance from the next one.
            double grown = _cwnd + Math.Min(bytesAcked, (long)AbcLimit * _mss);
            _cwnd = Math.Min(grown, _ssthresh);
            return;
        }
        CongestionAvoidance(bytesAcked, rttUs, nowUs);
    }

    public void OnEnterRecovery(long nowUs, long inFlight)
    {
        if (InRecovery) return;
        InRecovery = true;
        _ssthresh = ReduceOnLoss(nowUs, inFlight, timeout: false);
        _cwnd = _ssthresh;
    }

    public void OnExitRecovery(long nowUs)
    {
        if (!InRecovery) return;
        InRecovery = false;
        _cwnd = _ssthresh;
        StartNewAvoidancePhase(nowUs, afterTimeout: false);
    }

    public void OnRetransmitTimeout(long nowUs, long inFlight)
    {
        if (!_timeoutSeries)
        {
            // A timeout during fast recovery is the same congestion event: ssthresh was already reduced for it, so
            // it is kept rather than reduced a second time (as Linux does).
            if (!InRecovery) _ssthresh = ReduceOnLoss(nowUs, inFlight, timeout: true);
            _timeoutSeries = true;
        }
        InRecovery = false;
        _cwnd = _mss; // loss window, RFC 5681 §3.1
        StartNewAvoidancePhase(nowUs, afterTimeout: true);
    }

    public void OnIdleRestart(long nowUs)
    {
        _cwnd = Math.Min(_cwnd, InitialWindow(_mss));
        StartNewAvoidancePhase(nowUs, afterTimeout: false);
    }

    /// <summary>Congestion avoidance growth for one ACK (cwnd &gt;= ssthresh, not in recovery).</summary>
    protected abstract void CongestionAvoidance(long bytesAcked, long rttUs, long nowUs);

    /// <summary>Returns the new ssthresh for a congestion event (at least 2*SMSS) and updates private state.</summary>
    protected abstract long ReduceOnLoss(long nowUs, long inFlight, bool timeout);

    /// <summary>Forget the current growth epoch: the next congestion avoidance ACK starts a new one.</summary>
    protected virtual void StartNewAvoidancePhase(long nowUs, bool afterTimeout)
    {
    }
}
