namespace UserTcp.Stack.Tcp;

/// <summary>
/// A congestion controller for one connection. Windows are in bytes, times in microseconds (virtual time).
///
/// Who decides what: the connection detects loss (three duplicate ACKs or SACK, RFC 5681 §3.2 / RFC 6675; the
/// retransmission timer, RFC 6298) and tells the controller; the controller only owns cwnd and ssthresh.
/// During recovery cwnd stays at ssthresh and the connection limits transmissions by its estimate of the bytes in
/// the network (RFC 6675 "pipe", or RFC 6937 PRR): new data may be sent while pipe &lt; cwnd. A sender without SACK
/// can estimate pipe as FlightSize minus one SMSS per duplicate ACK, which is the same as RFC 5681 window inflation.
/// </summary>
public interface ICongestionControl
{
    /// <summary>SMSS in bytes. Setting it before the first ACK also recomputes the initial window.</summary>
    int Mss { get; set; }
    /// <summary>Congestion window in bytes.</summary>
    long Cwnd { get; }
    /// <summary>Slow start threshold in bytes (very large until the first loss).</summary>
    long Ssthresh { get; }
    /// <summary>Between <see cref="OnEnterRecovery"/> and <see cref="OnExitRecovery"/>.</summary>
    bool InRecovery { get; }

    /// <summary>
    /// New data was cumulatively acknowledged. <paramref name="inFlight"/> is FlightSize when the ACK arrived
    /// (before removing <paramref name="bytesAcked"/>): the window only grows while the sender is using it (at least
    /// half of cwnd in flight), so an application-limited connection does not build up a window it never tested
    /// (RFC 7661 spirit). <paramref name="rttUs"/> is the latest RTT sample or SRTT (0 if none). No growth while in
    /// recovery.
    /// </summary>
    void OnAck(long bytesAcked, long rttUs, long nowUs, long inFlight);

    /// <summary>
    /// Fast retransmit: loss detected by duplicate ACKs/SACK (RFC 5681 §3.2, RFC 6675). Sets ssthresh (NewReno:
    /// max(FlightSize/2, 2*SMSS); CUBIC: cwnd*0.7) and cwnd = ssthresh. Call once per recovery episode.
    /// </summary>
    void OnEnterRecovery(long nowUs, long inFlight);

    /// <summary>Recovery ended (everything outstanding at its start was acknowledged, RFC 6582 / RFC 6675).</summary>
    void OnExitRecovery(long nowUs);

    /// <summary>
    /// The retransmission timer expired (RFC 5681 §3.1): ssthresh from FlightSize (only on the first timeout of a
    /// series; later ones keep it), cwnd = 1 SMSS (the loss window). Also ends any recovery.
    /// </summary>
    void OnRetransmitTimeout(long nowUs, long inFlight);

    /// <summary>
    /// The connection was idle for more than an RTO and is about to send (RFC 5681 §4.1): cwnd = min(IW, cwnd).
    /// The caller decides when this applies.
    /// </summary>
    void OnIdleRestart(long nowUs);
}
