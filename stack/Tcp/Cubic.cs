namespace UserTcp.Stack.Tcp;

/// <summary>CUBIC (RFC 9438) as an <see cref="ICongestionControl"/> object; the algorithm is
/// <see cref="CongestionState"/>, which connections hold inline.</summary>
public sealed class Cubic : ICongestionControl
{
    public const double C = CongestionState.C;
    public const double Beta = CongestionState.Beta;

    private CongestionState _s;

    public Cubic(int mss, bool fastConvergence = true) => _s = new CongestionState(CongestionAlgorithm.Cubic, mss, fastConvergence);

    public bool FastConvergence => _s.FastConvergence;
    /// <summary>W_max in bytes (window before the last reduction, possibly lowered by fast convergence).</summary>
    public long WMaxBytes => _s.WMaxBytes;
    /// <summary>K in microseconds for the current stage (time to return to W_max), 0 before a stage starts.</summary>
    public long KUs => _s.KUs;
    /// <summary>W_cubic(t) in bytes for the current stage, t measured from its start.</summary>
    public double WCubicBytes(double tSeconds) => _s.WCubicBytes(tSeconds);

    public int Mss { get => _s.Mss; set => _s.Mss = value; }
    public long Cwnd => _s.Cwnd;
    public long Ssthresh => _s.Ssthresh;
    public bool InRecovery => _s.InRecovery;
    public void OnAck(long bytesAcked, long rttUs, long nowUs, long inFlight) => _s.OnAck(bytesAcked, rttUs, nowUs, inFlight);
    public void OnEnterRecovery(long nowUs, long inFlight) => _s.OnEnterRecovery(nowUs, inFlight);
    public void OnExitRecovery(long nowUs) => _s.OnExitRecovery(nowUs);
    public void OnRetransmitTimeout(long nowUs, long inFlight) => _s.OnRetransmitTimeout(nowUs, inFlight);
    public void OnIdleRestart(long nowUs) => _s.OnIdleRestart(nowUs);
}
