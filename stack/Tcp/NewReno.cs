using System;

namespace UserTcp.Stack.Tcp;

/// <summary>
/// Reno/NewReno window management (RFC 5681, RFC 6582 for the recovery episode boundaries the connection tracks):
/// slow start and congestion avoidance with appropriate byte counting (RFC 3465): cwnd grows by one SMSS each time
/// a full cwnd of bytes has been acknowledged. On loss ssthresh = max(FlightSize / 2, 2*SMSS) (RFC 5681 eq. 4).
/// </summary>
public sealed class NewReno : CongestionControlBase
{
    private long _bytesAcked; // RFC 3465 §2.1 bytes_acked counter for congestion avoidance

    public NewReno(int mss) : base(mss)
    {
    }

    protected override void CongestionAvoidance(long bytesAcked, long rttUs, long nowUs)
    {
        _bytesAcked += bytesAcked;
        long cwnd = (long)_cwnd;
        if (_bytesAcked >= cwnd)
        {
            _bytesAcked -= cwnd;
            _cwnd += Mss;
        }
    }

    protected override long ReduceOnLoss(long nowUs, long inFlight, bool timeout)
    {
        _bytesAcked = 0;
        return Math.Max(inFlight / 2, 2L * Mss);
    }

    protected override void StartNewAvoidancePhase(long nowUs, bool afterTimeout) => _bytesAcked = 0;
}
