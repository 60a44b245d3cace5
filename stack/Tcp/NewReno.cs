namespace UserTcp.Stack.Tcp;

/// <summary>An <see cref="ICongestionControl"/> object over a <see cref="CongestionState"/> (connections hold the
/// state inline; these objects serve tests and callers that want one algorithm by type).</summary>
public abstract class CongestionControlObject : ICongestionControl
{
    private protected CongestionState _s;

    private protected CongestionControlObject(CongestionState state) => _s = state;

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

/// <summary>Reno/NewReno window management (RFC 5681, RFC 3465) as an <see cref="ICongestionControl"/> object; the
/// algorithm is <see cref="CongestionState"/>, which connections hold inline.</summary>
public sealed class NewReno : CongestionControlObject
{
    public NewReno(int mss) : base(new CongestionState(CongestionAlgorithm.NewReno, mss)) { }
}
