namespace UserTcp.Stack.Tcp;

/// <summary>CUBIC (RFC 9438) as an <see cref="ICongestionControl"/> object; the algorithm is
/// <see cref="CongestionState"/>, which connections hold inline.</summary>
public sealed class Cubic : CongestionControlObject
{
    public const double C = CongestionState.C;
    public const double Beta = CongestionState.Beta;

    public Cubic(int mss, bool fastConvergence = true)
        : base(new CongestionState(CongestionAlgorithm.Cubic, mss, fastConvergence)) { }

    public bool FastConvergence => _s.FastConvergence;
    /// <summary>W_max in bytes (window before the last reduction, possibly lowered by fast convergence).</summary>
    public long WMaxBytes => _s.WMaxBytes;
    /// <summary>K in microseconds for the current stage (time to return to W_max), 0 before a stage starts.</summary>
    public long KUs => _s.KUs;
    /// <summary>W_cubic(t) in bytes for the current stage, t measured from its start.</summary>
    public double WCubicBytes(double tSeconds) => _s.WCubicBytes(tSeconds);
}
