using System;
using UserTcp.Stack.Wire;

namespace UserTcp.Stack.Tcp;

// Receive path. Call chain: TcpLayer.Receive -> (table lookup) -> OnSegment -> InputSynSent | InputSynchronized
//   -> ProcessAck (window, RTT, congestion, loss recovery) -> ProcessData (reassembly) -> ProcessFin -> Output.
public sealed partial class TcpConnection
{
    /// <summary>Entry point for a segment addressed to this connection.</summary>
    internal void OnSegment(ref TcpSegment seg, long nowUs)
    {
        // Header prediction first: the common segment of an established connection goes straight to the lean path;
        // everything else takes the full RFC 9293 processing (tests switch the short path off and compare).
        if (Predicted(ref seg) && _layer.ReceiveFastPath)
        {
            _layer.ReceiveFastPathSegments++;
            InputPredicted(ref seg, nowUs);
            if (OutputIdle(nowUs))
            {
                // The ACK of everything (or of part, the rest timed), a request under the delayed ACK: Output would
                // send nothing and arm nothing; its checks are spared.
                UpdateReadiness();
                return;
            }
        }
        else switch (State)
        {
            case TcpState.SynSent:
                InputSynSent(ref seg, nowUs);
                break;
            case TcpState.Closed:
            case TcpState.Listen:
                return;
            case TcpState.SynReceived when _layer.ReceiveFastPath && PredictedHandshakeAck(ref seg):
                // The ACK that completes a passive open: the handshake step, then what InputPredicted does.
                if (!AcceptHandshakeAck(ref seg, nowUs)) break; // refused (queue full, listener closed): not counted
                _layer.ReceiveFastPathSegments++;
                _layer.ReceiveFastPathHandshakeAcks++;
                InputPredicted(ref seg, nowUs);
                if (OutputIdle(nowUs)) { UpdateReadiness(); return; } // (as after a predicted segment)
                break;
            case TcpState.LastAck when _layer.ReceiveFastPath && PredictedLastAck(ref seg):
                // The ACK of our FIN ends an orphan in LAST-ACK: InputSynchronized would update state nobody reads
                // any more (RTT, congestion window, timers, send ring), then terminate.
                _layer.ReceiveFastPathSegments++;
                _layer.ReceiveFastPathLastAcks++;
                Terminate(SocketError.Success, nowUs);
                break;
            case TcpState.FinWait1 or TcpState.FinWait2 when _layer.ReceiveFastPath && PredictedClosingFin(ref seg):
                // The peer's FIN (with the ACK of ours) ends an orphan's active close: straight to TIME-WAIT, where
                // InputSynchronized would first update RTT, congestion window, send ring and the FIN-WAIT-2 timer.
                _layer.ReceiveFastPathSegments++;
                _layer.ReceiveFastPathTimeWaits++;
                TakeClosingFin(ref seg, nowUs);
                break;
            default:
                InputSynchronized(ref seg, nowUs);
                break;
        }
        if (State != TcpState.Closed) Output(nowUs);
        UpdateReadiness();
    }

    /// <summary>True when <see cref="Output"/> would do nothing for an established connection (or one in CLOSE-WAIT,
    /// which Output treats alike; the peer's FIN just taken with its ACK delayed): no recovery, no FIN,
    /// nothing queued past SND.NXT (and no rewind: SND.NXT = SND.MAX), no ACK owed now or by the delayed-ACK
    /// deadline, and the timer question settled (the RTO armed, or nothing in flight and nothing waiting).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private bool OutputIdle(long nowUs) =>
        (State is TcpState.Established or TcpState.CloseWait) && (_flags & (ConnFlags.AckNow | ConnFlags.FinQueued | ConnFlags.InRecovery)) == 0
        && _sndNxt == _sndMax && _sndMax == DataEndSeq() && (_rtoAt != 0 || _sndUna == _sndMax) && !Reached(nowUs, _delAckAt);

    /// <summary>RFC 9293 §3.10.7.3, SYN-SENT.</summary>
    private void InputSynSent(ref TcpSegment seg, long nowUs)
    {
        bool ack = seg.Has(TcpFlags.Ack);
        if (ack && (seg.Ack <= _iss || seg.Ack > _sndMax))
        {
            // Unacceptable ACK: reset the other side unless it is itself a reset.
            if (!seg.Has(TcpFlags.Rst)) SendRst(seg.Ack, default, withAck: false, nowUs);
            _layer.Counters.Drop(DropReason.TcpBadAck);
            return;
        }
        if (seg.Has(TcpFlags.Rst))
        {
            // Only a RST that acknowledges our SYN is believed (RFC 9293; RFC 5961 §3 keeps this rule in SYN-SENT).
            if (ack)
            {
                _layer.Counters.TcpRstReceived++;
                Terminate(SocketError.ConnectionRefused, nowUs);
            }
            else _layer.Counters.Drop(DropReason.TcpBadFlags);
            return;
        }
        if (!seg.Has(TcpFlags.Syn))
        {
            _layer.Counters.Drop(DropReason.TcpBadFlags);
            return;
        }
        _irs = seg.Seq;
        _rcvNxt = seg.Seq + 1;
        // The window our SYN offered (unscaled) now has a left edge.
        _rcvAdvEdge = _rcvNxt + (int)Math.Min(_rcv.Free, 65535);
        ApplySynOptions(seg.Options, weOffered: true);
        _lastRecvMs = (uint)(nowUs / 1000);
        if (seg.Options.HasTimestamps && Has(ConnFlags.Timestamps)) { _tsRecent = seg.Options.TsVal; _tsRecentSec = (uint)(nowUs / 1_000_000); }
        if (ack)
        {
            // Our SYN is acknowledged: ESTABLISHED.
            if (Has(ConnFlags.RttTiming) && !Has(ConnFlags.Retransmitting)) RttSample((uint)nowUs - _rttStartUs);
            Clear(ConnFlags.RttTiming | ConnFlags.Retransmitting);
            _sndUna = seg.Ack;
            if (_sndNxt < _sndUna) _sndNxt = _sndUna;
            _sndWnd = seg.Window; // unscaled in a SYN segment
            _maxSndWnd = _sndWnd;
            _sndWl1 = seg.Seq;
            _sndWl2 = seg.Ack;
            _rtt.ResetBackoff();
            _rtoAt = 0;
            _cc.Mss = _mss;
            State = TcpState.Established;
            Set(ConnFlags.AckNow);
            EnterQuickAck();
            ArmKeepalive(nowUs);
            if (!seg.Payload.IsEmpty || seg.Has(TcpFlags.Fin))
            {
                seg.Seq += 1;
                ProcessData(ref seg, nowUs);
                ProcessFin(ref seg, nowUs);
            }
            if (Has(ConnFlags.FinQueued)) State = TcpState.FinWait1;
        }
        else
        {
            // Simultaneous open (RFC 9293 Figure 8): answer with SYN-ACK from the same ISS.
            _sndWnd = seg.Window;
            _maxSndWnd = _sndWnd;
            _sndWl1 = seg.Seq;
            _sndWl2 = _iss;
            State = TcpState.SynReceived;
            _sndNxt = _iss;
            Clear(ConnFlags.RttTiming);
        }
    }

    /// <summary>RFC 9293 §3.10.7.4: every synchronized state plus SYN-RECEIVED.</summary>
    private void InputSynchronized(ref TcpSegment seg, long nowUs)
    {
        bool rst = seg.Has(TcpFlags.Rst);
        TcpLayer layer = _layer;

        // RFC 7323 §5.3 PAWS: a segment whose timestamp is older than TS.Recent is a duplicate from an earlier
        // wrap of the sequence space (or forged). TS.Recent older than 24 days is invalid (§5.5). A reordered pure
        // duplicate ACK that changes nothing but the duplicate-ACK count passes (DisorderedAck).
        if (Has(ConnFlags.Timestamps) && seg.Options.HasTimestamps && !rst
            && unchecked((int)(seg.Options.TsVal - _tsRecent)) < 0 && TsRecentValid(nowUs) && !DisorderedAck(ref seg))
        {
            layer.Counters.Drop(DropReason.TcpPaws);
            Set(ConnFlags.AckNow);
            return;
        }

        if (State == TcpState.SynReceived && Has(ConnFlags.Passive) && seg.Has(TcpFlags.Syn) && !seg.Has(TcpFlags.Ack)
            && !rst && seg.Seq == _irs)
        {
            // The peer retransmitted its SYN (our SYN-ACK was lost or is late): send the SYN-ACK again.
            _sndNxt = _iss;
            return;
        }

        if (State == TcpState.SynReceived && !Has(ConnFlags.Passive) && seg.Has(TcpFlags.Syn) && seg.Has(TcpFlags.Ack)
            && !rst && seg.Seq + 1 == _rcvNxt && seg.Ack == _sndNxt)
        {
            // Simultaneous open: the peer's SYN-ACK repeats its SYN and acknowledges ours. Take it as the ACK that
            // completes the handshake (Linux does the same instead of a challenge ACK).
            seg.Seq += 1;
            seg.Flags &= ~TcpFlags.Syn;
        }

        // First: is the segment in the window? (RFC 9293 §3.10.7.4, the four-case table)
        int segLen = seg.Length;
        int rcvWnd = Math.Max(0, _rcvAdvEdge - _rcvNxt);
        bool acceptable;
        if (segLen == 0)
            acceptable = rcvWnd == 0 ? seg.Seq == _rcvNxt : seg.Seq.InRange(_rcvNxt, _rcvNxt + rcvWnd) || seg.Seq == _rcvNxt;
        else
            acceptable = rcvWnd != 0 && (seg.Seq.InRange(_rcvNxt, _rcvNxt + rcvWnd)
                || (seg.Seq + (segLen - 1)).InRange(_rcvNxt, _rcvNxt + rcvWnd));
        if (!acceptable)
        {
            if (State == TcpState.TimeWait && seg.Has(TcpFlags.Fin) && !rst)
            {
                // A retransmitted FIN in TIME-WAIT: acknowledge it and restart the 2 MSL timer.
                ArmWait(nowUs + 2 * layer.Config.MslUs);
            }
            if (!rst) Set(ConnFlags.AckNow); // duplicate or out-of-window: tell the peer where we are
            // RFC 2883: data we already have (a spurious retransmission, often after reordering) is reported in a
            // D-SACK block of that ACK, so the sender can undo its congestion response and learn the reordering.
            if (!rst && segLen > 0 && Has(ConnFlags.Sack) && seg.Seq + segLen <= _rcvNxt && seg.Payload.Length > 0)
                layer.NoteDuplicate(this, seg.Seq, seg.Seq + seg.Payload.Length);
            layer.Counters.Drop(DropReason.TcpOutOfWindow);
            return;
        }

        // Second: RST. RFC 5961 §3.2: only an exact RCV.NXT match resets; any other in-window RST gets a challenge ACK.
        if (rst)
        {
            if (seg.Seq != _rcvNxt)
            {
                SendChallengeAck(nowUs);
                return;
            }
            layer.Counters.TcpRstReceived++;
            switch (State)
            {
                case TcpState.SynReceived:
                    // Passive: the peer gave up; the listener simply forgets it. Active (simultaneous open): refused.
                    Terminate(Has(ConnFlags.Passive) ? SocketError.ConnectionRefused : SocketError.ConnectionRefused, nowUs);
                    return;
                case TcpState.Closing:
                case TcpState.LastAck:
                case TcpState.TimeWait:
                    Terminate(SocketError.Success, nowUs);
                    return;
                case TcpState.CloseWait:
                    // The peer had already closed its side: Linux reports this reset as EPIPE, not ECONNRESET.
                    Terminate(SocketError.BrokenPipe, nowUs);
                    return;
                default:
                    Terminate(SocketError.ConnectionReset, nowUs);
                    return;
            }
        }

        // Fourth: SYN in a synchronized state. RFC 5961 §4: never reset on it, send a challenge ACK instead.
        if (seg.Has(TcpFlags.Syn))
        {
            SendChallengeAck(nowUs);
            return;
        }

        // Fifth: ACK.
        if (!seg.Has(TcpFlags.Ack))
        {
            layer.Counters.Drop(DropReason.TcpBadFlags);
            return;
        }

        if (State == TcpState.SynReceived && !AcceptHandshakeAck(ref seg, nowUs)) return;

        // RFC 5961 §5.2: acceptable ACKs lie in [SND.UNA - MAX.SND.WND, SND.NXT]. Anything newer acknowledges data
        // never sent (RFC 9293: send an ACK and drop); anything older is a blind-injection attempt (challenge ACK).
        if (seg.Ack > _sndMax)
        {
            Set(ConnFlags.AckNow);
            layer.Counters.Drop(DropReason.TcpBadAck);
            return;
        }
        if (seg.Ack < _sndUna - (int)Math.Min(_maxSndWnd, int.MaxValue))
        {
            SendChallengeAck(nowUs);
            layer.Counters.Drop(DropReason.TcpBadAck);
            return;
        }

        _lastRecvMs = (uint)(nowUs / 1000);
        _keepProbes = 0;
        if (KeepAlive) ArmKeepalive(nowUs);

        // RFC 7323 §4.3: remember the peer's timestamp if this segment covers the left window edge and is not older
        // (a disordered ACK passed PAWS with an older one; an invalid TS.Recent is replaced by any).
        if (Has(ConnFlags.Timestamps) && seg.Options.HasTimestamps && seg.Seq <= _rcvNxt
            && (unchecked((int)(seg.Options.TsVal - _tsRecent)) >= 0 || !TsRecentValid(nowUs)))
        {
            _tsRecent = seg.Options.TsVal;
            _tsRecentSec = (uint)(nowUs / 1_000_000);
        }

        ProcessAck(ref seg, nowUs);
        if (State == TcpState.Closed) return;

        // Our FIN acknowledged?
        bool finAcked = Has(ConnFlags.FinQueued) && _sndUna == _finSeq + 1;
        switch (State)
        {
            case TcpState.FinWait1:
                if (finAcked)
                {
                    State = TcpState.FinWait2;
                    // An orphan must not wait forever for the peer's FIN (Linux tcp_fin_timeout).
                    if (IsOrphan) ArmWait(nowUs + layer.Config.FinWait2TimeoutUs);
                }
                break;
            case TcpState.Closing:
                if (finAcked) EnterTimeWait(nowUs);
                break;
            case TcpState.LastAck:
                if (finAcked)
                {
                    Terminate(SocketError.Success, nowUs);
                    return;
                }
                break;
            case TcpState.TimeWait:
                // Only a retransmitted FIN matters here (handled by the window check and ProcessFin).
                break;
        }

        // Seventh: segment text (URG is not supported: urgent bytes are delivered inline).
        if (!seg.Payload.IsEmpty && IsOrphan && State is TcpState.FinWait1 or TcpState.FinWait2
            && seg.Seq + seg.Payload.Length > _rcvNxt)
        {
            // Nobody will ever read this: the application closed the socket. Abort and tell the peer, as Linux does
            // (RFC 9293 §3.10.4 leaves it open; RFC 2525 §2.17 recommends the reset).
            SendRst(seg.Ack, default, withAck: false, nowUs);
            Terminate(SocketError.ConnectionAborted, nowUs);
            return;
        }
        if (!seg.Payload.IsEmpty)
        {
            if (State is TcpState.Established or TcpState.FinWait1 or TcpState.FinWait2)
                ProcessData(ref seg, nowUs);
            else
                layer.Counters.Drop(DropReason.TcpBadFlags); // data after the peer's FIN
        }

        // Eighth: FIN.
        ProcessFin(ref seg, nowUs);
    }

    /// <summary>RFC 7323 §5.5: TS.Recent set more than 24 days ago is no longer used to reject segments.</summary>
    private bool TsRecentValid(long nowUs) => (uint)(nowUs / 1_000_000) - _tsRecentSec < 24u * 86400;

    /// <summary>
    /// A pure ACK whose timestamp is older than TS.Recent only because it was overtaken on the way (ACKs sent from
    /// several CPUs or queues of the peer, a reordering path): RFC 7323 §5.3's PAWS would drop it, although it is no
    /// old duplicate from an earlier wrap — the RFC's own notes concede PAWS may discard valid segments, and Linux
    /// accepts such ACKs (its "disordered ACK" rule). It is accepted when it can only count as a duplicate ACK
    /// (RFC 5681 §2) and carry SACK blocks, nothing that a stale segment could set back: no data, SYN, FIN or RST;
    /// exactly at RCV.NXT; acknowledging exactly SND.UNA; the same send window (so the window update, which our rule
    /// would apply for SEG.SEQ = RCV.NXT, changes nothing); and its TSval within one retransmission timeout of
    /// TS.Recent (read in milliseconds, as Linux does without knowing the peer's clock rate), so an old duplicate
    /// from a previous wrap still fails. TS.Recent is not set back by it. Not in SYN-RECEIVED or TIME-WAIT.
    /// </summary>
    private bool DisorderedAck(ref TcpSegment seg)
    {
        if (State is TcpState.SynReceived or TcpState.TimeWait
            || (seg.Flags & (TcpFlags.Syn | TcpFlags.Fin | TcpFlags.Rst | TcpFlags.Ack)) != TcpFlags.Ack
            || !seg.Payload.IsEmpty || seg.Seq != _rcvNxt || seg.Ack != _sndUna
            || ((uint)seg.Window << _sndScale) != _sndWnd)
            return false;
        uint behind = unchecked(_tsRecent - seg.Options.TsVal);
        return behind <= CurrentRtoUs / 1000;
    }

    /// <summary>RFC 9293 §3.10.7.4 fifth step in SYN-RECEIVED: the ACK that completes the handshake (ESTABLISHED),
    /// or its refusals (an unacceptable ACK draws a reset; a closed listener aborts; a full accept queue ignores it).
    /// False when the segment's processing ends here.</summary>
    private bool AcceptHandshakeAck(ref TcpSegment seg, long nowUs)
    {
        if (!(seg.Ack > _sndUna && seg.Ack <= _sndMax))
        {
            // RFC 9293: an unacceptable ACK in SYN-RECEIVED draws <SEQ=SEG.ACK><CTL=RST>.
            SendRst(seg.Ack, default, withAck: false, nowUs);
            _layer.Counters.Drop(DropReason.TcpBadAck);
            return false;
        }
        if (Listener != null && Listener.Closed)
        {
            Abort(nowUs);
            return false;
        }
        if (Listener != null && !Listener.CanAcceptMore)
        {
            // Accept queue full: like Linux, ignore the ACK; the peer retransmits and we may have room then.
            _layer.Counters.Drop(DropReason.TcpBacklogFull);
            Clear(ConnFlags.AckNow);
            return false;
        }
        State = TcpState.Established;
        _sndWnd = (uint)seg.Window << _sndScale;
        _maxSndWnd = Math.Max(_maxSndWnd, _sndWnd);
        _sndWl1 = seg.Seq;
        _sndWl2 = seg.Ack;
        _waitAt = 0;
        _layer.Counters.TcpPassiveOpens++;
        EnterQuickAck();
        ArmKeepalive(nowUs);
        if (Has(ConnFlags.FinQueued)) State = TcpState.FinWait1;
        Listener?.OnChildEstablished(this);
        return true;
    }

    /// <summary>Header prediction: the segment is the common case of an established connection, for which the
    /// checks of <see cref="InputSynchronized"/> are known to pass without effect: ACK, maybe FIN, no SYN or RST,
    /// exactly at RCV.NXT (so acceptable: any payload or FIN needs an open window), the ACK within [SND.UNA, SND.MAX] (neither
    /// too new nor too old, RFC 5961 §5.2), the timestamp not older than TS.Recent (PAWS passes) and present when
    /// negotiated, and no receive shutdown, peer FIN or out-of-order data pending.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private bool Predicted(ref TcpSegment seg)
    {
        if (State != TcpState.Established
            || (seg.Flags & (TcpFlags.Syn | TcpFlags.Rst | TcpFlags.Ack)) != TcpFlags.Ack
            || !AtRcvNxtInOrderAndFresh(ref seg))
            return false;
        if (seg.Ack < _sndUna || seg.Ack > _sndMax) return false;
        return (seg.Payload.IsEmpty && (seg.Flags & TcpFlags.Fin) == 0) || _rcvAdvEdge - _rcvNxt > 0;
    }

    /// <summary>What <see cref="Predicted"/> and <see cref="PredictedHandshakeAck"/> both require: the segment starts
    /// at RCV.NXT with nothing out of order held and nothing closing on our receive side (no receive shutdown, no
    /// FIN of the peer's seen or taken, none of ours queued), and its timestamp is present when negotiated and not
    /// older than TS.Recent (PAWS passes).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private bool AtRcvNxtInOrderAndFresh(ref TcpSegment seg) =>
        seg.Seq == _rcvNxt
        && (_flags & (ConnFlags.ReadShutdown | ConnFlags.PeerFinSeen | ConnFlags.FinReceived | ConnFlags.FinQueued)) == 0
        && _ooo == null
        && (!Has(ConnFlags.Timestamps) || (seg.Options.HasTimestamps && unchecked((int)(seg.Options.TsVal - _tsRecent)) >= 0));

    /// <summary>The ACK that completes a passive open, in the form <see cref="InputSynchronized"/> takes through its
    /// SYN-RECEIVED step and then exactly as a predicted segment (<see cref="Predicted"/>'s conditions): ACK only, at
    /// RCV.NXT, acknowledging our SYN (SND.UNA &lt; SEG.ACK &lt;= SND.MAX), the timestamp present when negotiated and
    /// not older than TS.Recent, no FIN queued or seen, any payload inside an open window.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private bool PredictedHandshakeAck(ref TcpSegment seg)
    {
        if (!Has(ConnFlags.Passive)
            || (seg.Flags & (TcpFlags.Syn | TcpFlags.Fin | TcpFlags.Rst | TcpFlags.Ack)) != TcpFlags.Ack
            || !AtRcvNxtInOrderAndFresh(ref seg))
            return false;
        if (!(seg.Ack > _sndUna && seg.Ack <= _sndMax)) return false;
        return seg.Payload.IsEmpty || _rcvAdvEdge - _rcvNxt > 0;
    }

    /// <summary>The last segment of a passive close, for an orphan (the application closed: nothing reads its
    /// state): ACK only, no payload, at RCV.NXT, acknowledging our FIN (SEG.ACK = FIN + 1 = SND.MAX), the timestamp
    /// present when negotiated and not older than TS.Recent. <see cref="InputSynchronized"/> ends it with
    /// <see cref="Terminate"/>, sending nothing.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private bool PredictedLastAck(ref TcpSegment seg)
    {
        if (!IsOrphan || (seg.Flags & (TcpFlags.Syn | TcpFlags.Fin | TcpFlags.Rst | TcpFlags.Ack)) != TcpFlags.Ack
            || seg.Seq != _rcvNxt || !seg.Payload.IsEmpty || !Has(ConnFlags.FinQueued)
            || seg.Ack != _sndMax || _sndMax != _finSeq + 1)
            return false;
        return !Has(ConnFlags.Timestamps)
            || (seg.Options.HasTimestamps && unchecked((int)(seg.Options.TsVal - _tsRecent)) >= 0);
    }

    /// <summary>The last segment an orphan's active close waits for (the application closed first, as a web server
    /// does after a `Connection: close` response): FIN and ACK only, no payload, at RCV.NXT with an open window and
    /// nothing out of order, acknowledging our FIN (SEG.ACK = FIN + 1 = SND.MAX; in FIN-WAIT-2 it already was), no
    /// FIN of the peer's seen yet, no SACK scoreboard, recovery or persist state, the timestamp present when
    /// negotiated and not older than TS.Recent. <see cref="InputSynchronized"/> takes it into TIME-WAIT with the
    /// ACK owed now; <see cref="TakeClosingFin"/> does that with what TIME-WAIT keeps.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private bool PredictedClosingFin(ref TcpSegment seg)
    {
        if (!IsOrphan || (seg.Flags & (TcpFlags.Syn | TcpFlags.Fin | TcpFlags.Rst | TcpFlags.Ack)) != (TcpFlags.Fin | TcpFlags.Ack)
            || seg.Seq != _rcvNxt || !seg.Payload.IsEmpty || _ooo != null || _sack != null || _rcvAdvEdge - _rcvNxt <= 0
            || (_flags & (ConnFlags.FinQueued | ConnFlags.PeerFinSeen | ConnFlags.FinReceived | ConnFlags.InRecovery | ConnFlags.Persist))
                != ConnFlags.FinQueued
            || seg.Ack != _sndMax || _sndMax != _finSeq + 1)
            return false;
        return !Has(ConnFlags.Timestamps)
            || (seg.Options.HasTimestamps && unchecked((int)(seg.Options.TsVal - _tsRecent)) >= 0);
    }

    /// <summary>What <see cref="InputSynchronized"/> leaves behind for a segment <see cref="PredictedClosingFin"/>
    /// accepted, without what TIME-WAIT discards anyway (RTT sample, congestion control, send ring, retransmission
    /// and FIN-WAIT-2 timers): TS.Recent, the ACK of our FIN and the send window, the FIN taken, TIME-WAIT, and the
    /// ACK owed now (the caller's Output sends it).</summary>
    private void TakeClosingFin(ref TcpSegment seg, long nowUs)
    {
        _lastRecvMs = (uint)(nowUs / 1000);
        _keepProbes = 0;
        if (Has(ConnFlags.Timestamps))
        {
            _tsRecent = seg.Options.TsVal;
            _tsRecentSec = (uint)(nowUs / 1_000_000);
        }
        SeqNumber ack = seg.Ack;
        if (_sndWl1 < seg.Seq || (_sndWl1 == seg.Seq && _sndWl2 <= ack))
        {
            uint wnd = (uint)seg.Window << _sndScale;
            _sndWnd = wnd;
            _sndWl1 = seg.Seq;
            _sndWl2 = ack;
            if (wnd > _maxSndWnd) _maxSndWnd = wnd;
        }
        if (ack > _sndUna)
        {
            _sndUna = ack;
            _rtt.ResetBackoff();
            _firstLossMs = 0;
        }
        _sndNxt = _sndMax;
        Clear(ConnFlags.Retransmitting);
        _peerFinSeq = seg.Seq;
        _rcvNxt += 1;
        _rcvAdvEdge = SeqNumber.Max(_rcvAdvEdge, _rcvNxt);
        Set(ConnFlags.PeerFinSeen | ConnFlags.FinReceived | ConnFlags.AckNow);
        EnterTimeWait(nowUs);
    }

    /// <summary>What <see cref="InputSynchronized"/> does for a segment <see cref="Predicted"/> accepted: the
    /// keepalive and TS.Recent updates, ACK processing, then the data (in order, so straight into the ring), then
    /// the FIN.</summary>
    private void InputPredicted(ref TcpSegment seg, long nowUs)
    {
        _lastRecvMs = (uint)(nowUs / 1000);
        _keepProbes = 0;
        if (KeepAlive) ArmKeepalive(nowUs);
        if (Has(ConnFlags.Timestamps))
        {
            _tsRecent = seg.Options.TsVal; // RFC 7323 §4.3: the segment starts at RCV.NXT
            _tsRecentSec = (uint)(nowUs / 1_000_000);
        }
        ProcessAck(ref seg, nowUs);
        if (!seg.Payload.IsEmpty && State == TcpState.Established)
        {
            // In order with nothing out of order held: ProcessData's first cases (duplicate bytes, the peer's FIN,
            // SHUT_RD, holes) cannot apply, so the bytes are appended where it would write them.
            if (_rcv.HasOutOfOrderBytes) ProcessData(ref seg, nowUs);
            else AppendInOrder(seg.Payload, FinDelaysItsAck(ref seg), nowUs);
        }
        if ((seg.Flags & TcpFlags.Fin) != 0)
        {
            _layer.ReceiveFastPathFins++;
            ProcessFin(ref seg, nowUs);
        }
    }

    /// <summary><see cref="ProcessData"/> for a segment at RCV.NXT while no out-of-order bytes are held (neither in
    /// the assembler nor in the ring), the peer's FIN not seen and the receive side not shut: the bytes inside the
    /// advertised window are appended to the ring, then the same ACK policy.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private void AppendInOrder(Span<byte> data, bool finDelaysAck, long nowUs)
    {
        int limit = _rcvAdvEdge - _rcvNxt;
        if (limit <= 0) { Set(ConnFlags.AckNow); return; }
        int whole = data.Length;
        if (data.Length > limit) data = data[..limit];
        int n = _rcv.Write(_layer.Buffers, data); // = WriteAt(0, data) then Advance(n) when nothing lies past Count
        if (n < data.Length) _layer.Counters.Drop(DropReason.TcpReceiveBufferFull);
        if (n == 0) { Set(ConnFlags.AckNow); return; }
        _rcvNxt += n;
        _unackedBytes += n;
        AckInOrder(finDelaysAck && n == whole, nowUs);
    }

    /// <summary>The segment carries a FIN that <see cref="ProcessFin"/> takes with its ACK delayed (ESTABLISHED ->
    /// CLOSE-WAIT with <see cref="TcpConfig.DelayFinAck"/>) once all of its data is taken. Linux's tcp_fin enters
    /// pingpong mode before the ACK is decided, so quick-ACK mode no longer acknowledges that data at once: the ACK
    /// waits for the delayed-ACK timer or rides on the application's reply or FIN.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private bool FinDelaysItsAck(ref TcpSegment seg) =>
        (seg.Flags & TcpFlags.Fin) != 0 && State == TcpState.Established && _layer.Config.DelayFinAck;

    /// <summary>The ACK owed for in-order data just taken. Delayed ACK: at least every second full-sized segment
    /// (RFC 5681 §4.2); otherwise within the timer. In quick-ACK mode (start of the connection) every segment is
    /// acknowledged at once.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private void AckInOrder(bool finDelaysAck, long nowUs)
    {
        // (finDelaysAck: the segment's FIN follows with its ACK delayed: quick-ACK mode does not apply, as on Linux.)
        if (_quickAcks > 0 && !finDelaysAck) { _quickAcks--; Set(ConnFlags.AckNow); }
        else if (_unackedBytes >= 2 * _peerMss) { if (!_layer.DeferAckToBurstEnd(this)) Set(ConnFlags.AckNow); }
        else if (_delAckAt == 0) { _delAckAt = DeadlineMs(nowUs + _layer.Config.DelayedAckUs); ScheduleAt(_delAckAt); }
    }

    /// <summary>Acknowledgment processing: SND.UNA, send window, RTT, congestion window and loss recovery.</summary>
    private void ProcessAck(ref TcpSegment seg, long nowUs)
    {
        SeqNumber ack = seg.Ack;
        uint wnd = (uint)seg.Window << _sndScale;
        TcpLayer layer = _layer;

        if (Has(ConnFlags.Sack) && seg.Options.SackCount > 0 && _sndMax > _sndUna)
        {
            SackScoreboard sb = _sack ??= layer.RentScoreboard();
            for (int i = 0; i < seg.Options.SackCount; i++)
            {
                SackBlock b = seg.Options.GetSack(i);
                sb.Add(new SeqNumber(b.Start), new SeqNumber(b.End), SeqNumber.Max(ack, _sndUna), _sndMax);
            }
            if (sb.IsEmpty) DropScoreboard();
        }

        // RFC 5681 §2 duplicate ACK: no data, no SYN/FIN, same ACK and window, data outstanding.
        bool duplicate = ack == _sndUna && seg.Payload.IsEmpty && !seg.Has(TcpFlags.Syn | TcpFlags.Fin)
            && wnd == _sndWnd && _sndMax > _sndUna;

        // Window update (RFC 9293 §3.10.7.4: SND.WL1/WL2 guard against old segments).
        if (_sndWl1 < seg.Seq || (_sndWl1 == seg.Seq && _sndWl2 <= ack))
        {
            bool opened = _sndWnd == 0 && wnd > 0;
            _sndWnd = wnd;
            _sndWl1 = seg.Seq;
            _sndWl2 = ack;
            if (wnd > _maxSndWnd) _maxSndWnd = wnd;
            if (opened && Has(ConnFlags.Persist))
            {
                // The window opened: stop probing and send at once.
                Clear(ConnFlags.Persist);
                _rtoAt = 0;
                _rtt.ResetBackoff();
                if (_sndNxt > _sndUna) { _sndNxt = _sndUna; Set(ConnFlags.Retransmitting); }
            }
        }

        if (ack > _sndUna)
        {
            int acked = ack - _sndUna;
            long flightBefore = _sndMax - _sndUna;
            // RTT (RFC 6298 §3 with Karn): a timed segment that was never retransmitted, or a timestamp echo
            // (RFC 7323 §4.1 allows samples from retransmissions because the echo identifies the transmission).
            if (Has(ConnFlags.RttTiming) && ack > _rttSeq)
            {
                Clear(ConnFlags.RttTiming);
                RttSample((uint)nowUs - _rttStartUs);
            }
            else if (Has(ConnFlags.Timestamps) && seg.Options.HasTimestamps && seg.Options.TsEcr != 0 && !Has(ConnFlags.RttTiming))
            {
                long ms = unchecked((int)(TsNow(nowUs) - seg.Options.TsEcr));
                if (ms >= 0 && ms < 600_000) RttSample(Math.Max(ms * 1000, 1));
            }

            int dataAcked = acked;
            if (_sndUna == _iss) dataAcked--;                                    // our SYN
            if (Has(ConnFlags.FinQueued) && ack == _finSeq + 1) dataAcked--;     // our FIN
            if (dataAcked > 0) _snd.Consume(Math.Min(dataAcked, _snd.Count));
            _sndUna = ack;
            if (_sndNxt < _sndUna) _sndNxt = _sndUna;
            if (_sndNxt >= _sndMax) Clear(ConnFlags.Retransmitting);
            if (_sack != null)
            {
                _sack.Advance(ack);
                if (_sack.IsEmpty) DropScoreboard();
            }
            _rtt.ResetBackoff();
            _firstLossMs = 0;

            OnNewAck(ack, acked, flightBefore, nowUs);

            // RFC 6298 §5.2/5.3: stop the timer when everything is acknowledged, else restart it.
            if (_sndUna == _sndMax) { if (!Has(ConnFlags.Persist)) _rtoAt = 0; }
            else { Clear(ConnFlags.Persist); _rtoAt = DeadlineMs(nowUs + CurrentRtoUs); }
            if (_rtoAt != 0) ScheduleAt(_rtoAt); // the other deadlines did not change
            if (_snd.IsDrained) OnBuffersDrained(nowUs);
        }
        else if (duplicate)
        {
            OnDuplicateAck(nowUs);
        }
    }

    /// <summary>Congestion response to an ACK that advances SND.UNA (RFC 5681 §3.1, RFC 6582 §3.2, RFC 6675 §5).
    /// <paramref name="flightBefore"/> is FlightSize when the ACK arrived.</summary>
    private void OnNewAck(SeqNumber ack, int acked, long flightBefore, long nowUs)
    {
        if (Has(ConnFlags.InRecovery))
        {
            if (ack >= _recover)
            {
                // Full acknowledgment: recovery is over; the controller sets cwnd = ssthresh (RFC 6582 §3.2 step 3,
                // option 2, as Linux does).
                Clear(ConnFlags.InRecovery);
                _cc.OnExitRecovery(nowUs);
                _inflation = 0;
                _dupAcks = 0;
            }
            else if (!Has(ConnFlags.Sack) || _sack == null)
            {
                // Partial acknowledgment (NewReno): retransmit the next hole at once and deflate the window by the
                // amount acknowledged, adding back one MSS (RFC 6582 §3.2 step 3).
                RetransmitHead(nowUs);
                _inflation = Math.Max(0, _inflation - acked + (acked >= _mss ? _mss : 0));
            }
            // With SACK, SendRecovery (called from Output) picks holes by the pipe rule.
            return;
        }
        _dupAcks = 0;
        _cc.OnAck(acked, _rtt.SrttUs, nowUs, flightBefore);
    }

    /// <summary>Third duplicate ACK (or SACKed data three segments past a hole) starts fast retransmit and recovery
    /// (RFC 5681 §3.2, RFC 6582, RFC 6675 §5).</summary>
    private void OnDuplicateAck(long nowUs)
    {
        _dupAcks++;
        if (Has(ConnFlags.InRecovery))
        {
            if (!Has(ConnFlags.Sack)) _inflation += _mss; // NewReno inflation: one more segment left the network
            return;
        }
        bool sackLoss = _sack != null && _sack.SackedBetween(_sndUna, _sndMax) >= 3 * _mss;
        if (_dupAcks < 3 && !sackLoss) return;
        // RFC 6582 §3.2 step 2: only start a new recovery when this loss lies past the previous recovery point.
        if (_sndUna < _recover) return;
        long flight = Math.Max(0, _sndMax - _sndUna);
        TakeCubicEpoch();
        _cc.OnEnterRecovery(nowUs, flight);
        _recover = _sndMax;
        _highRxt = _sndUna;
        Set(ConnFlags.InRecovery);
        Clear(ConnFlags.RttTiming); // Karn: the timed segment may be retransmitted
        _layer.Counters.TcpFastRetransmits++;
        RetransmitHead(nowUs);
        if (Has(ConnFlags.Sack))
        {
            _inflation = 0;
            _highRxt = _sndUna + Math.Min(_mss, Math.Max(1, DataEndSeq() - _sndUna));
        }
        else _inflation = 3 * _mss; // the three segments the duplicate ACKs report as delivered
    }

    /// <summary>Stores segment text: in order into the ring, out of order into the ring plus the assembler.
    /// ACK policy (RFC 9293 §3.8.6.3, RFC 5681 §4.2): every second full segment or after the delayed-ACK timer;
    /// at once for out-of-order data or data that fills a hole.</summary>
    private void ProcessData(ref TcpSegment seg, long nowUs)
    {
        Span<byte> data = seg.Payload;
        SeqNumber seq = seg.Seq;
        if (seq < _rcvNxt)
        {
            int dup = _rcvNxt - seq;
            if (dup >= data.Length) { Set(ConnFlags.AckNow); return; }
            data = data[dup..];
            seq = _rcvNxt;
        }
        if (Has(ConnFlags.PeerFinSeen))
        {
            int room = _peerFinSeq - seq;
            if (room <= 0) return;
            if (data.Length > room) data = data[..room];
        }
        if (Has(ConnFlags.ReadShutdown))
        {
            // SHUT_RD: acknowledge and discard (in order only; out-of-order bytes would be discarded later anyway).
            if (seq == _rcvNxt && _ooo == null)
            {
                _rcvNxt += data.Length;
                _rcvAdvEdge = SeqNumber.Max(_rcvAdvEdge, _rcvNxt);
                Set(ConnFlags.AckNow);
            }
            return;
        }
        int offset = seq - _rcvNxt;
        // Only bytes inside the window we advertised are kept (the rest is cut, RFC 9293 §3.10.7.4).
        int limit = _rcvAdvEdge - _rcvNxt - offset;
        if (limit <= 0) { Set(ConnFlags.AckNow); return; }
        if (data.Length > limit) data = data[..limit];

        if (offset == 0 && (_ooo == null || _ooo.IsEmpty))
        {
            int n = _rcv.WriteAt(_layer.Buffers, 0, data);
            if (n < data.Length) _layer.Counters.Drop(DropReason.TcpReceiveBufferFull);
            if (n == 0) { Set(ConnFlags.AckNow); return; }
            _rcv.Advance(n);
            _rcvNxt += n;
            _unackedBytes += n;
            AckInOrder(FinDelaysItsAck(ref seg) && _rcvNxt == seg.Seq + seg.Payload.Length, nowUs);
            return;
        }

        // Out of order, or in order while holes are pending.
        _ooo ??= _layer.RentAssembler();
        if (_ooo == null) { _layer.Counters.Drop(DropReason.TcpReceiveBufferFull); Set(ConnFlags.AckNow); return; }
        int stored = _rcv.WriteAt(_layer.Buffers, offset, data);
        bool added = stored > 0 && _ooo.Add(offset, stored);
        if (added)
        {
            int ready = _ooo.PopContiguous();
            if (ready > 0)
            {
                _rcv.Advance(ready);
                _rcvNxt += ready;
            }
        }
        else _layer.Counters.Drop(DropReason.TcpReceiveBufferFull);
        // Bytes the assembler does not track (refused, or an interval it evicted for a nearer one) are forgotten so
        // the ring's extent always matches the intervals and the block can go back to the pool when drained.
        _rcv.ForgetOutOfOrderFrom(_ooo.HighestEnd);
        Set(ConnFlags.AckNow);
        if (_ooo.IsEmpty) { _layer.ReturnAssembler(_ooo); _ooo = null; OnBuffersDrained(nowUs); }
    }

    /// <summary>The end of a receive burst in which in-order data left this connection owing an ACK
    /// (<see cref="TcpLayer.DeferAckToBurstEnd"/>). Nothing if a segment sent since carried it, or the connection was
    /// closed (and maybe reused) meanwhile.</summary>
    internal void SendBurstAck(long nowUs)
    {
        if (_unackedBytes == 0 || !InTable || Has(ConnFlags.Freed) || State is TcpState.Closed or TcpState.Listen) return;
        Set(ConnFlags.AckNow);
        Output(nowUs);
    }

    /// <summary>Consumes the peer's FIN once every byte before it has arrived (RFC 9293 §3.10.7.4 eighth step).</summary>
    private void ProcessFin(ref TcpSegment seg, long nowUs)
    {
        if (seg.Has(TcpFlags.Fin) && !Has(ConnFlags.PeerFinSeen) && !Has(ConnFlags.FinReceived))
        {
            SeqNumber fin = seg.Seq + seg.Payload.Length;
            if (fin >= _rcvNxt)
            {
                _peerFinSeq = fin;
                Set(ConnFlags.PeerFinSeen);
            }
        }
        if (!Has(ConnFlags.PeerFinSeen) || Has(ConnFlags.FinReceived) || _rcvNxt != _peerFinSeq)
        {
            if (State == TcpState.TimeWait && seg.Has(TcpFlags.Fin))
            {
                Set(ConnFlags.AckNow);
                ArmWait(nowUs + 2 * _layer.Config.MslUs);
            }
            return;
        }
        _rcvNxt += 1;
        _rcvAdvEdge = SeqNumber.Max(_rcvAdvEdge, _rcvNxt);
        if (State == TcpState.Established && _layer.Config.DelayFinAck)
        {
            // ESTABLISHED -> CLOSE-WAIT: the ACK of the FIN is delayed, as Linux does (tcp_fin enters pingpong mode,
            // so the ACK waits for the delayed-ACK timer): an application that closes at end of file sends its FIN
            // with the ACK, one segment instead of two (and the peer receives one instead of two). Data carried with
            // the FIN is not acknowledged at once in quick-ACK mode either (AckInOrder; Linux decides the ACK after
            // tcp_fin set pingpong mode); an ACK owed now for other reasons (two full segments unacknowledged, data
            // past a hole) still leaves now, and an earlier delayed-ACK deadline holds.
            Set(ConnFlags.FinReceived);
            State = TcpState.CloseWait;
            _unackedBytes++; // the FIN's sequence number: the delayed-ACK timer acknowledges what is unacknowledged
            if (_delAckAt == 0) { _delAckAt = DeadlineMs(nowUs + _layer.Config.DelayedAckUs); ScheduleAt(_delAckAt); }
            return;
        }
        Set(ConnFlags.FinReceived | ConnFlags.AckNow);
        switch (State)
        {
            case TcpState.SynReceived:
            case TcpState.Established:
                State = TcpState.CloseWait;
                break;
            case TcpState.FinWait1:
                // Our FIN not yet acknowledged (else we would be in FIN-WAIT-2): simultaneous close.
                State = TcpState.Closing;
                break;
            case TcpState.FinWait2:
                EnterTimeWait(nowUs);
                break;
        }
    }

    private void EnterTimeWait(long nowUs)
    {
        // TIME_WAIT full: this one lasts only until the timer sweep, after the ACK owed now (Linux's overflow).
        bool overflow = _layer.TimeWaitCount >= _layer.Config.MaxTimeWait;
        _layer.TimeWaitCount++;
        // The flow claim of a shared device is released now: with claims held for 2*MSL a busy server fills the
        // group's claim table and new SYNs hashing into a full bucket go unanswered. This process still answers the
        // tuple from its own table; a SYN another process claims meanwhile ends this TIME_WAIT (TcpLayer.OnSegment).
        _layer.Flows?.Release(Tuple);
        State = TcpState.TimeWait;
        _rtoAt = 0;
        _keepAt = 0;
        _delAckAt = 0;
        Clear(ConnFlags.Persist);
        _snd.Clear(_layer.Buffers);
        if (_ooo != null) { _ooo.Clear(); _layer.ReturnAssembler(_ooo); _ooo = null; }
        if (_rcv.Count == 0) _rcv.Clear(_layer.Buffers);
        ArmWait(overflow ? nowUs : nowUs + 2 * _layer.Config.MslUs);
    }

    /// <summary>Decides whether a SYN may reopen this TIME-WAIT tuple (RFC 6191, and RFC 9293 §3.10.7.4 note):
    /// only when its timestamp (or, without timestamps, its sequence number) is newer than anything seen.</summary>
    internal bool TimeWaitAcceptsSyn(ref TcpSegment seg)
    {
        if (State != TcpState.TimeWait) return false;
        if (Has(ConnFlags.Timestamps) && seg.Options.HasTimestamps)
            return unchecked((int)(seg.Options.TsVal - _tsRecent)) > 0;
        return seg.Seq > _rcvNxt;
    }

    /// <summary>RFC 5961 §3.2/§4.2: reply with an ACK for RCV.NXT (rate limited stack-wide, §7).</summary>
    private void SendChallengeAck(long nowUs)
    {
        if (!_layer.AllowChallengeAck(nowUs))
        {
            _layer.Counters.Drop(DropReason.TcpChallengeAckRateLimited);
            return;
        }
        _layer.Counters.TcpChallengeAcks++;
        SendAck(nowUs);
    }

    /// <summary>Updates SRTT/RTTVAR/RTO from one measurement (RFC 6298 §2; also clears the backoff).</summary>
    private void RttSample(long rttUs) => _rtt.AddSample(Math.Max(rttUs, 1), _layer.Rto);
}
