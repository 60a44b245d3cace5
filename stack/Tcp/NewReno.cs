namespace UserTcp.Stack.Tcp;

/// <summary>Reno/NewReno window management (RFC 5681, RFC 3465) as an <see cref="ICongestionControl"/> object; the
/// algorithm is <see cref="CongestionState"/>, which connections hold inline.</summary>
public sealed class NewReno : ICongestionControl
{
    private CongestionState _s;

    public NewReno(int mss) => _s = new CongestionState(CongestionAlgorithm.NewReno, mss);

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
